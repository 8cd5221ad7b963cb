"""`gsmgw pdu encode` / `gsmgw pdu decode`: output keys, exit codes, one-line errors.

Runs the real console entry point in a subprocess for the contract checks
(exit code, stdout/stderr separation), and click's runner for the rest.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gsmgw.cli import main
from gsmgw.sms import decode_pdu

DECODE_KEYS = [
    "type", "smsc", "number", "text", "alphabet", "class", "timestamp",
    "concat", "mr", "status", "discharge", "report_requested", "udh", "port", "from_port", "national",
]  # fmt: skip


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "gsmgw", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": ""},
    )


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_decode_prints_the_spool_keys_then_the_header_keys():
    """SPOOL.md's keys in its order, then udh, port, from_port and national (issue 13)."""
    result = run("pdu", "decode", "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    assert list(obj) == DECODE_KEYS
    assert obj == {
        "type": "deliver", "smsc": "+27381000015", "number": "27838890001", "text": "hellohello",
        "alphabet": "gsm7", "class": None, "timestamp": "1999-03-29T15:16:59+02:00", "concat": None,
        "mr": None, "status": None, "discharge": None, "report_requested": False,
        "udh": None, "port": None, "from_port": None, "national": None,
    }  # fmt: skip


def test_decode_shows_a_binary_messages_header_and_ports_and_a_texts_national_tables():
    """The WAP push a simulated modem sent from smstools3's example spool file (issue 13)."""
    wap_push = (
        "0071000D91947100000000F10004A8510605040B8423F0010601AE0205040045C60D0378797A00850370706169642F3132"
        "332F6162632E776D6C0011033100010357617020707573682064656D6F2066726F6D20736D73746F6F6C73332E000101"
    )
    obj = json.loads(invoke("pdu", "decode", wap_push).output)
    assert (obj["alphabet"], obj["udh"], obj["port"], obj["from_port"], obj["national"]) == (
        "8bit", "0605040B8423F0", 2948, 9200, None)
    assert obj["text"].startswith("010601AE")  # the data, without the header
    encoded = json.loads(invoke("pdu", "encode", "--to", "+4915112345678", "--national", "hi", "नमस्ते। " * 30).output
                         .splitlines()[0])
    obj = json.loads(invoke("pdu", "decode", encoded["pdu"]).output)
    assert obj["national"] == encoded["national"] == {"locking": "hi", "single": "hi"}
    # "udh" is the header without the concatenation element (that is "concat"): the two shift IEs.
    assert (obj["udh"], obj["concat"]["total"], obj["port"]) == ("06250106240106", 2, None)


def test_decode_emoji_in_a_c_locale_prints_utf8():
    result = run("pdu", "decode", "0004" "0B919471091856F5" "0008" "62114201513000" "04" "D83DDE00")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.decode("utf-8"))["text"] == "😀"


@pytest.mark.parametrize(
    "hex_arg, words",
    [
        ("zz", "not a hex digit"),
        ("012", "odd number"),
        ("0791728301", "SMSC"),
        ("0041010C910661345542F60008A0050003000301306F3044", "TP-UDL"),
    ],
)
def test_decode_bad_input_exits_2_with_one_line(hex_arg, words):
    result = run("pdu", "decode", hex_arg)
    assert result.returncode == 2
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("gsmgw pdu decode: ")


def test_decode_status_report_and_16bit_concat():
    report = json.loads(invoke("pdu", "decode", "0006D60B911326880736F4111011719551401110117195714000").output)
    assert (report["type"], report["mr"], report["status"], report["number"]) == (
        "status-report", 214, 0, "+31628870634",
    )
    assert report["discharge"] == "2011-01-11T17:59:17+01:00" and report["report_requested"] is None
    part = json.loads(
        invoke("pdu", "decode", "0044" "0B919471091856F5" "0000" "62114201513000" "0A" "06080412340302" "C834").output
    )
    assert part["concat"] == {"ref": 0x1234, "total": 3, "seq": 2} and part["text"] == "Hi"


def test_decode_accepts_split_lowercase_hex_and_no_smsc():
    spaced = invoke("pdu", "decode", "00 04 0b 91 94 71 09 18 56 f5", "00 00 62 11 42 01 51 30 00 01 41")
    assert json.loads(spaced.output)["text"] == "A"
    bare = "040B919471091856F50000621142015130000141"
    assert json.loads(invoke("pdu", "decode", bare).output)["smsc"] is None  # automatic fallback
    assert json.loads(invoke("pdu", "decode", "--no-smsc", bare).output)["text"] == "A"
    forced = invoke("pdu", "decode", "--smsc", bare)
    assert forced.exit_code == 2


def test_decode_reads_stdin_with_dash():
    result = invoke("pdu", "decode", "-", input="0006D60B911326880736F4111011719551401110117195714000\n")
    assert json.loads(result.output)["mr"] == 214


def test_decode_8bit_text_is_hex():
    obj = json.loads(invoke("pdu", "decode", "0591721891F101000B917228214365F700040C48656C6C6F20776F726C6421").output)
    assert (obj["alphabet"], obj["text"]) == ("8bit", "48656C6C6F20776F726C6421")


def test_encode_lines_start_with_length_and_pdu():
    result = run("pdu", "encode", "--to", "+4915112345678", "--report", "--flash", "--validity", "2 days", "hi @")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.decode().splitlines()
    obj = json.loads(line)
    assert list(obj)[:2] == ["length", "pdu"]
    # SMSC 00 | 31 (SUBMIT, VPF relative, SRR) | MR 00 | DA | PID 00 | DCS 10 (class 0) | VP A8 | UDL 4 | "hi @"
    assert obj["pdu"] == "00" "31" "00" "0D91945111325476F8" "00" "10" "A8" "04" "E8340800"
    sms = decode_pdu(obj["pdu"])
    assert (sms.text, sms.report_requested, sms.msg_class, sms.validity) == ("hi @", True, 0, 168)
    assert obj["length"] == len(obj["pdu"]) // 2 - 1
    assert obj["pdu"].startswith("00")


def test_encode_multipart_with_ref_and_default_country():
    result = invoke("pdu", "encode", "--to", "0151 12345678", "--country", "49", "--ref", "300", "--ref16", "€" * 100)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(o["part"], o["parts"], o["alphabet"]) for o in lines] == [(1, 2, "gsm7"), (2, 2, "gsm7")]
    decoded = [decode_pdu(o["pdu"]) for o in lines]
    assert {(s.concat.ref, s.concat.bits) for s in decoded} == {(300, 16)}
    assert "".join(s.text for s in decoded) == "€" * 100
    assert decoded[0].number == "+4915112345678"


def test_encode_reads_stdin_with_dash():
    result = invoke("pdu", "encode", "--to", "+4915112345678", "-", input="from stdin")
    assert decode_pdu(json.loads(result.output)["pdu"]).text == "from stdin"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--to", "hello", "x"], "not a phone number"),
        (["--to", "0151 12345678", "x"], "default_country"),
        (["--to", "+4915112345678", "--validity", "forever", "x"], "validity"),
        (["--to", "+4915112345678", "--ref", "300", "x"], "--ref16"),
        (["--to", "+4915112345678", "--ref16", "--ref", "70000", "x"], "not a concatenation reference"),
    ],
)
def test_encode_bad_input_exits_2_with_one_line(args, words):
    result = run("pdu", "encode", *args)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and words in lines[0]


VECTORS = Path(__file__).parent / "vectors"


def _golden_cases():
    hexes = [
        line.rstrip("\n").split("\t")
        for line in (VECTORS / "pdu_decode.txt").read_text(encoding="utf-8").splitlines(True)
        if line.strip() and not line.startswith("#")
    ]
    expected = [line.split("\t") for line in (VECTORS / "pdu_decode.ok").read_text(encoding="utf-8").splitlines()]
    assert [name for name, _ in hexes] == [name for name, _ in expected]
    return [(name, hex_pdu, json_line) for (name, hex_pdu), (_, json_line) in zip(hexes, expected)]


@pytest.mark.parametrize("name, hex_pdu, expected", _golden_cases(), ids=[c[0] for c in _golden_cases()])
def test_decode_golden_output(name, hex_pdu, expected):
    result = invoke("pdu", "decode", hex_pdu)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip("\n") == expected
