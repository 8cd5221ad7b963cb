"""Phone numbers and SMS addresses.

Pure code: no I/O.

- `normalize_number` turns what users write into E.164 with a `+`.
- `encode_address` / `decode_address`: TP-OA, TP-DA, TP-RA fields
  (TS 23.040 §9.1.2.5): length in semi-octets, type of address, BCD digits or
  GSM-7 packed alphanumeric text.
- `encode_smsc` / `decode_smsc`: the SMSC field that AT+CMGS/+CMGR put before
  the TPDU (TS 27.005 §3.3.1: length in octets of type + digits, TS 24.011
  §8.2.5.2 for the layout).
"""

from __future__ import annotations

import re

from gsmgw.sms import gsm7
from gsmgw.sms.errors import AddressError

# Type of address (TS 23.040 §9.1.2.5): bit 7 set, TON in bits 6..4, NPI in bits 3..0.
TOA_INTERNATIONAL = 0x91  # TON 001 international, NPI 0001 ISDN/E.164
TOA_UNKNOWN = 0x81  # TON 000 unknown, NPI 0001: digits as the user typed them (short codes)
TOA_NATIONAL = 0xA1  # TON 010 national
TOA_ALPHANUMERIC = 0xD0  # TON 101 alphanumeric (GSM-7 packed), NPI 0000

TON_INTERNATIONAL = 0b001
TON_ALPHANUMERIC = 0b101

_TON_NAMES = {
    0b000: "unknown",
    0b001: "international",
    0b010: "national",
    0b011: "network-specific",
    0b100: "subscriber",
    0b101: "alphanumeric",
    0b110: "abbreviated",
    0b111: "reserved",
}

# E.164 §6: at most 15 digits with the country code. The shortest numbers in
# service (Niue, St Helena, Tokelau) have 7.
E164_MAX_DIGITS = 15
E164_MIN_DIGITS = 7

# The longest alphanumeric address: the field holds at most 10 octets of
# value (TS 23.040 §9.1.2.5), 80 bits, i.e. 11 septets.
ALPHANUMERIC_MAX_CHARS = 11

# BCD semi-octet values above 9 (TS 24.008 §10.5.4.7, table "called party BCD number").
_SEMI_OCTET_CHARS = "0123456789*#abc"
_SEMI_OCTET_VALUE = {char: value for value, char in enumerate(_SEMI_OCTET_CHARS)}

# Also "/", as in the German "0151/12345678".
_SEPARATORS = re.compile(r"[\s\-./()]")
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")

EXAMPLE = "+4915112345678"


def ton_name(toa: int) -> str:
    """The type of number of a TOA octet in words, e.g. 0x91 -> "international" (TS 23.040 §9.1.2.5)."""
    return _TON_NAMES[(toa >> 4) & 0x07]


def _check_country(default_country: str) -> str:
    country = default_country.strip()
    if country.startswith("+"):
        country = country[1:]
    elif country.startswith("00"):
        country = country[2:]
    if not (country.isdigit() and country.isascii() and 1 <= len(country) <= 3 and country[0] != "0"):
        raise AddressError(
            f"default_country {default_country!r} is not a country calling code; "
            f'write the digits without + or 00, e.g. "49" for Germany'
        )
    return country


def _with_country(text: str, default_country: str | None, allowed: str, example: str, what: str) -> str:
    """What a user wrote -> the characters after "+" (country code first). Numbers and number
    patterns both go through here, so that a rule is read exactly as the numbers it must match.

    `allowed`: the characters the result may hold (digits for a number; digits, `*` and `?` for
    a pattern); `what` names them in an error ("digits"). `example` is what error messages
    suggest. The caller checks lengths.
    """
    original = text.strip()
    # "+49 (0)151 …", "0049 (0)151 …", "49 (0)151 …": the bracketed trunk zero is not dialled
    # after a country code. Only at the very start ("(0)151 …") is it the national trunk 0.
    compact = original[:1] + _TRUNK_ZERO.sub("", original[1:])
    compact = _SEPARATORS.sub("", compact)

    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    elif compact.startswith("0"):
        if default_country is None:
            raise AddressError(
                f"{original!r} is a national number (it starts with 0) and no default_country is "
                f"configured; write it in international form, e.g. {example}, or set default_country"
            )
        digits = _check_country(default_country) + compact[1:]
    else:
        digits = compact

    if not (digits and digits.isascii() and all(char in allowed for char in digits)):
        raise AddressError(
            f"{original!r} is not a phone number: only {what}, one leading +, spaces, dashes, dots, "
            f"slashes and parentheses are allowed; write it like {example}"
        )
    if digits.startswith("0"):
        raise AddressError(
            f"{original!r} has no country code (no country code starts with 0); write it like {example}"
        )
    return digits


def normalize_number(text: str, default_country: str | None = None) -> str:
    """A phone number as users write it -> E.164 with `+`, e.g. "+4915112345678".

    Accepted (docs/spool.md `To:`):
      - `+4915112345678`, and `0049…` (00 is the international prefix);
      - `4915112345678`: digits without `+` that do not start with 0 are
        international, as smstools3 reads them;
      - `0151 12345678`: a national number (leading trunk 0), only with
        `default_country` ("49"), which replaces the 0;
      - spaces, dashes, dots, slashes and parentheses are removed; the "(0)" that
        German and Swiss numbers show after the country code is dropped (also when the
        "+" was lost, as it is in an unencoded URL: "49 (0)151 …").
    AddressError otherwise, with what to write instead.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)  # a YAML or JSON number without quotes
    if not isinstance(text, str) or not text.strip():
        raise AddressError(f"the phone number is empty; write it in international form, e.g. {EXAMPLE}")
    original = text.strip()
    digits = _with_country(original, default_country, "0123456789", EXAMPLE, "digits")
    if len(digits) > E164_MAX_DIGITS:
        raise AddressError(
            f"{original!r} has {len(digits)} digits, more than the {E164_MAX_DIGITS} an international "
            f"number can have; check for a doubled prefix and write it like {EXAMPLE}"
        )
    if len(digits) < E164_MIN_DIGITS:
        raise AddressError(
            f"{original!r} is too short for an international number ({len(digits)} digits, at least "
            f"{E164_MIN_DIGITS} with the country code); write it like {EXAMPLE}"
        )
    return "+" + digits


TON_NATIONAL = 0b010


def sender_number(number: str, toa: int | None, default_country: str | None = None) -> str | None:
    """The E.164 form of a received sender address, or None when it cannot be a phone number.

    Only a numeric address whose type of number (TS 23.040 §9.1.2.5) is international or
    national names a subscriber. An alphanumeric sender is a name the sending side chose freely
    ("0301234567" is as easy to send as "Vodafone"), and the unknown, network-specific,
    subscriber and abbreviated types say nothing about which number it is; all of them are None,
    so that no rule that trusts a number (two-way `allow_from`, `ack`) can match them. A national
    number gets `default_country`, with its trunk 0 dropped if the network kept it; without
    `default_country` it is None.
    """
    if toa is None or not number:
        return None
    ton = (toa >> 4) & 0x07
    if ton == TON_INTERNATIONAL:
        digits = number[1:] if number.startswith("+") else number
    elif ton == TON_NATIONAL:
        if default_country is None:
            return None
        try:
            country = _check_country(default_country)
        except AddressError:
            return None
        digits = country + (number[1:] if number.startswith("0") else number)
    else:
        return None
    if not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        return None
    return "+" + digits


PATTERN_EXAMPLE = "+49900*"


def normalize_number_pattern(text: str, default_country: str | None = None) -> str:
    """A number pattern as users write it -> the E.164 form of the numbers it matches.

    `*` stands for any run of digits and `?` for one digit. Everything else is read exactly as
    `normalize_number` reads a number, so "+49 900*", "0049900*", "49900*" and (with
    `default_country` "49") "0900*" all become "+49900*", the form every number that starts
    with +49 900 has after `normalize_number`. A pattern that starts with `*` ("*", "*900*")
    is kept as it is, without separators: it is matched against the whole E.164 form, "+"
    included. AddressError, saying what to write, for anything else, and for a pattern that no
    number can match (more than 15 digits, or no country code).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise AddressError(f"the number pattern is empty; write it like {PATTERN_EXAMPLE!r}")
    original = text.strip()
    if original.startswith("*"):
        compact = _SEPARATORS.sub("", original)
        if not (compact.isascii() and all(char in "0123456789*?" for char in compact)):
            raise AddressError(
                f"{original!r} is not a number pattern: after a leading * only digits, * and ? may "
                f"follow; write it like {PATTERN_EXAMPLE!r} or '*900*'"
            )
        return compact
    if original.startswith("?"):
        raise AddressError(
            f"{original!r} starts with ?, which would stand for the + of the number; write the "
            f"country code after + (like {PATTERN_EXAMPLE!r}) or start with *"
        )
    digits = _with_country(original, default_country, "0123456789*?", repr(PATTERN_EXAMPLE), "digits, * and ?")
    fixed = len(digits) - digits.count("*")
    if fixed > E164_MAX_DIGITS:
        raise AddressError(
            f"{original!r} needs at least {fixed} digits, more than the {E164_MAX_DIGITS} an international "
            f"number can have, so it matches nothing; check for a doubled prefix and write it like "
            f"{PATTERN_EXAMPLE!r}"
        )
    if "*" not in digits and fixed < E164_MIN_DIGITS:
        raise AddressError(
            f"{original!r} has only {fixed} digits and no *, so it matches no international number; "
            f"add * for 'and anything after', like {PATTERN_EXAMPLE!r}"
        )
    return "+" + digits


def encode_semi_octets(digits: str) -> bytes:
    """Digits -> swapped BCD, padded with F (TS 23.040 §9.1.2.3): "4915" -> 94 51."""
    values = []
    for char in digits:
        value = _SEMI_OCTET_VALUE.get(char.lower() if char in "ABC" else char)
        if value is None:
            raise AddressError(f"{char!r} cannot be sent as a digit of a phone number")
        values.append(value)
    if len(values) % 2:
        values.append(0x0F)
    return bytes(values[i] | (values[i + 1] << 4) for i in range(0, len(values), 2))


def decode_semi_octets(data: bytes, digit_count: int | None = None) -> str:
    """Swapped BCD -> digits; stops at the F filler or after `digit_count` digits (TS 23.040 §9.1.2.3)."""
    chars: list[str] = []
    for octet in data:
        for value in (octet & 0x0F, octet >> 4):
            if value == 0x0F:
                return "".join(chars)
            chars.append(_SEMI_OCTET_CHARS[value])
            if digit_count is not None and len(chars) == digit_count:
                return "".join(chars)
    return "".join(chars)


def address_kind(address: str) -> int:
    """The TOA `encode_address` uses for `address`."""
    if address.startswith("+") and address[1:].isdigit():
        return TOA_INTERNATIONAL
    # Only digits, * and # count as a number: "abc" is an alphanumeric name,
    # though a, b, c exist as BCD values.
    if address and all(char in "0123456789*#" for char in address):
        return TOA_UNKNOWN
    return TOA_ALPHANUMERIC


def encode_address(address: str) -> bytes:
    """An address field (TS 23.040 §9.1.2.5): length, TOA, value.

    "+4915…" is international (TOA 91). Digits without `+` go out as typed
    with TOA 81 (short codes, numbers the caller already normalised
    otherwise). Anything else is an alphanumeric address (TOA D0) of at most
    11 GSM-7 characters, as networks use for senders like "Vodafone".
    """
    toa = address_kind(address)
    if toa == TOA_ALPHANUMERIC and address.startswith("+"):
        raise AddressError(f"{address!r} is not a phone number: after + only digits may follow, e.g. {EXAMPLE}")
    if toa == TOA_ALPHANUMERIC:
        if not address or len(address) > ALPHANUMERIC_MAX_CHARS or not gsm7.is_gsm7(address):
            raise AddressError(
                f"{address!r} is neither a phone number nor an alphanumeric sender "
                f"(1 to {ALPHANUMERIC_MAX_CHARS} GSM characters); write a number like {EXAMPLE}"
            )
        septets = gsm7.encode_septets(address)
        if len(septets) > ALPHANUMERIC_MAX_CHARS:
            raise AddressError(
                f"{address!r} takes {len(septets)} GSM septets; an alphanumeric sender holds at most "
                f"{ALPHANUMERIC_MAX_CHARS}"
            )
        value = gsm7.pack_septets(septets)
        # The length counts the semi-octets that carry bits: 7 septets = 49 bits = 13 semi-octets.
        semi_octets = (len(septets) * 7 + 3) // 4
        return bytes((semi_octets, toa)) + value
    digits = address[1:] if toa == TOA_INTERNATIONAL else address
    if len(digits) > 20:
        raise AddressError(f"{address!r} is longer than the 20 digits an SMS address can hold")
    return bytes((len(digits), toa)) + encode_semi_octets(digits)


def decode_address_value(semi_octets: int, toa: int, value: bytes) -> str:
    """The text of an address value (TS 23.040 §9.1.2.5); `value` has ceil(semi_octets/2) octets."""
    if (toa >> 4) & 0x07 == TON_ALPHANUMERIC:
        # 23.040 §9.1.2.5: alphanumeric values are GSM-7 packed; the length
        # counts semi-octets, so floor(4n/7) whole septets are present.
        septet_total = semi_octets * 4 // 7
        septets = gsm7.unpack_septets(value, septet_total)
        if septet_total % 8 == 0 and septets and septets[-1] == 0 and semi_octets * 4 - septet_total * 7 < 4:
            # Some SMSCs count every semi-octet of the value (2 x octets) instead of the useful
            # ones: 7 characters in 7 octets then read as 8 septets, the last made of the 7 zero
            # fill bits, i.e. a stray "@" ("Telekom@"). A length that counts useful semi-octets
            # (13 for 7 characters) never ends on a whole septet of fill. An 8-character name
            # that really ends in "@" reads the same and loses it: the rarer of the two.
            septets = septets[:-1]
        return gsm7.decode_septets(septets)
    digits = decode_semi_octets(value, semi_octets)
    if (toa >> 4) & 0x07 == TON_INTERNATIONAL and digits:
        return "+" + digits
    return digits


def encode_smsc(smsc: str | None) -> bytes:
    """The SMSC field before the TPDU: 00 (use the SIM's SMSC) or length, TOA, digits
    (TS 27.005 §3.3.1, layout of TS 24.011 §8.2.5.2)."""
    if not smsc:
        return b"\x00"
    toa = address_kind(smsc)
    if toa == TOA_ALPHANUMERIC:
        raise AddressError(f"SMSC {smsc!r} must be a phone number like +491710760000")
    digits = smsc[1:] if toa == TOA_INTERNATIONAL else smsc
    value = encode_semi_octets(digits)
    return bytes((len(value) + 1, toa)) + value
