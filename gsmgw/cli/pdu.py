"""`gsmgw pdu encode` and `gsmgw pdu decode`: the codec on the command line.

Thin: arguments in, gsmgw.sms called, JSON lines out. Bad input exits 2 with
one line on stderr.
"""

from __future__ import annotations

import json
import secrets
import sys

import click

from gsmgw.sms import (
    AddressError,
    DecodeError,
    count_data_parts,
    count_parts,
    decode_pdu,
    encode_submit,
    normalize_number,
    parse_hex,
    parse_validity,
)


def _print_json(value: dict) -> None:
    # UTF-8 whatever the locale or PYTHONIOENCODING say, so that emoji never crash the output.
    line = json.dumps(value, ensure_ascii=False) + "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        click.echo(line, nl=False)
        return
    sys.stdout.flush()
    buffer.write(line.encode("utf-8"))
    buffer.flush()


def _fail(command: str, message: str) -> None:
    click.echo(f"gsmgw pdu {command}: {message}", err=True)
    sys.exit(2)


@click.group()
def pdu() -> None:
    """Encode or decode SMS PDUs (hex as AT+CMGS, +CMGR and +CMT use it)."""


@pdu.command()
@click.option("--to", "to", required=True, help="Recipient: +4915112345678, 4915112345678, or 0151… with --country.")
@click.option("--report", is_flag=True, help="Request a delivery report (TP-SRR).")
@click.option("--flash", is_flag=True, help="Class 0: shown at once, not stored.")
@click.option("--validity", help='Relative validity: "30 min", "12 hours", "2 days", "1 week" or a TP-VP 0..255.')
@click.option("--country", "default_country", help='Country code for national numbers, e.g. "49".')
@click.option("--ref", type=int, help="Concatenation reference 0..255, 0..65535 with --ref16 (default: random).")
@click.option("--ref16", is_flag=True, help="Use 16-bit concatenation references.")
@click.option("--smsc", help="Put this SMSC number into the PDU (default 00: the SIM's SMSC).")
@click.option("--national", "national", multiple=True, metavar="CODES",
              help="National language tables the text may use: ISO 639-1 codes, e.g. --national hi or hi,tr.")
@click.option("--binary", is_flag=True, help="TEXT is 8-bit data in hex (spaces allowed), sent as binary SMS.")
@click.option("--udh", help="Your own user data header in hex, length octet first, e.g. 0605040B8423F0.")
@click.option("--class", "message_class", type=click.IntRange(0, 3), help="Message class 0..3 in the DCS.")
@click.argument("text")
def encode(
    to: str,
    report: bool,
    flash: bool,
    validity: str | None,
    default_country: str | None,
    ref: int | None,
    ref16: bool,
    smsc: str | None,
    national: tuple[str, ...],
    binary: bool,
    udh: str | None,
    message_class: int | None,
    text: str,
) -> None:
    """Print the SMS-SUBMIT PDUs for TEXT, one JSON object per part per line.

    Each line is {"length": TPDU octets for AT+CMGS, "pdu": hex starting with
    the SMSC field, "part", "parts", "alphabet", "units", "remaining"}, and
    "national" ({"locking", "single"} language codes) when national tables
    carry the text. TEXT "-" reads the text from standard input.
    """
    if text == "-":
        text = sys.stdin.read()
    languages = tuple(code for value in national for code in value.replace(",", " ").split())
    try:
        number = normalize_number(to, default_country)
        vp = parse_validity(validity) if validity is not None else None
        if ref is None:
            ref = secrets.randbelow(0x10000 if ref16 else 0x100)
        if not 0 <= ref <= 0xFFFF:
            raise ValueError(f"--ref {ref} is not a concatenation reference (0..255, or 0..65535 with --ref16)")
        if not ref16 and ref > 0xFF:
            raise ValueError(f"--ref {ref} needs --ref16 (8-bit references are 0..255)")
        header = parse_hex(udh, what="--udh") if udh is not None else None
        if binary:
            data = parse_hex(text, what="the data")
            counted = count_data_parts(data, udh=header, ref16=ref16)
            parts = encode_submit(
                number, data=data, udh=header, report=report, flash=flash, validity=vp, ref=ref, ref16=ref16,
                smsc=smsc, message_class=message_class,
            )  # fmt: skip
        else:
            counted = count_parts(text, ref16=ref16, national_languages=languages, udh=header)
            parts = encode_submit(
                number, text, report=report, flash=flash, validity=vp, ref=ref, ref16=ref16, smsc=smsc,
                national_languages=languages, udh=header, message_class=message_class,
            )  # fmt: skip
    except (AddressError, ValueError) as error:
        _fail("encode", str(error))
        return
    for part in parts:
        line = {
            "length": part.length,
            "pdu": part.pdu,
            "part": part.seq,
            "parts": part.total,
            "alphabet": part.alphabet,
            "units": counted.units,
            "remaining": counted.remaining,
        }
        if counted.national is not None:
            line["national"] = counted.national
        _print_json(line)


@pdu.command()
@click.option("--no-smsc", "no_smsc", is_flag=True, help="The hex is a bare TPDU without the SMSC field.")
@click.option("--smsc", "with_smsc", is_flag=True, help="The hex starts with the SMSC field (no fallback).")
@click.option("--length", "tpdu_length", type=int, help="The <length> the modem printed (TPDU octets).")
@click.argument("hex_digits", metavar="HEX", nargs=-1, required=True)
def decode(no_smsc: bool, with_smsc: bool, tpdu_length: int | None, hex_digits: tuple[str, ...]) -> None:
    """Print one JSON object for the PDU in HEX (spaces and lowercase are fine).

    By default the hex is read with the SMSC field first (as +CMGR/+CMT print
    it) and, if that does not parse, as a bare TPDU. HEX "-" reads standard input.
    """
    if no_smsc and with_smsc:
        _fail("decode", "--smsc and --no-smsc exclude each other; give one")
    smsc_included = False if no_smsc else True if with_smsc else None
    hex_text = sys.stdin.read() if hex_digits == ("-",) else "".join(hex_digits)
    try:
        sms = decode_pdu(hex_text, smsc_included=smsc_included, tpdu_length=tpdu_length)
    except DecodeError as error:
        _fail("decode", str(error))
        return
    _print_json(sms.to_json())
