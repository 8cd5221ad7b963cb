"""Binary messages and user data headers in spool files, as smstools3 reads them (issue 13).

smstools3 3.1.21 (src/smsd.c readSMSheader, readSMShex, and the binary branch of send1sms) and
its fileformat.html: `Alphabet: binary`/`Binary: yes` make the body 8-bit data taken to the end of
the file; `Hex: yes` makes it hex with comments, STRING:, INLINESTRING: and LENGTH; `UDH: yes` is
the default for binary data and means the data starts with its header; `UDH-DATA:` gives the
header as hex and the body is then data only.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gammu_peer import gammu_decode, needs_gammu
from gsmgw.sms import decode_pdu, encode_submit
from gsmgw.spool.format import SpoolFormatError, hex_dump, make_outgoing, parse_outgoing, read_hex_body

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
TO = "To: +4915112345678\n"
WAP_UDH = bytes.fromhex("0605040B8423F0")


def parse(data: bytes, **kwargs):
    return parse_outgoing(data, now=NOW, **kwargs)


# smstools3's fileformat.html "Wap Push with Hex presentation" example, as printed there.
SMSTOOLS3_WAP_PUSH = b"""To: 358401234567
Alphabet: binary
Hex: yes

// This is a sample Wap Push message:

06 : user Data Header Length (6 Octets)
05 : Identifer Element (16 Bit port addressing)
04 : Length of Parameter values (4 Octets)
# WAP Push connectionless session service (client side), Protocol: WSP/Datagram:
0B 84 : push dest port (2948)
# WAP connectionless session service Protocol: WSP/Datagram:
23 F0 : push originator port (9200)

01 : Push Transaction Id
06 : PDU Type Push, (WAP-230-WSP Table 34)
LENGTH // Headers Length will be placed to this position
AE : Push Header Content-Type: application/vnd.wap.sic 0x2E | 0x80
# (http://www.wapforum.org/wina/wsp-content-type.htm)
LENGTH // This stops the counting and places the number

02 : WBXML version 1.2
05 : SL 1.0 Public Identifier
04 : Charset=ISO-8859-1
00 : String table length
45 : si, with content
C6 : indication, with content and attributes
0D : Token for "href=http://www."
### There should not be extra spaces after keyword:
INLINESTRING:xyz
85 : Token for ".com/"
03 : Inline string follows
STRING:ppaid/123/abc.wml
00 : End of string
11 : si-id
INLINESTRING:1
01 : close of indication attribute list
INLINESTRING:Wap push demo from smstools3.
01 : End of indication element
01 : END of si element
"""

WAP_PUSH_DATA = (
    bytes.fromhex("0106" "01" "AE" "02050400" "45C6" "0D") + b"\x03xyz\x00" + bytes.fromhex("8503")
    + b"ppaid/123/abc.wml" + bytes.fromhex("0011") + b"\x031\x00" + bytes.fromhex("01")
    + b"\x03Wap push demo from smstools3.\x00" + bytes.fromhex("0101")
)


def test_smstools3s_wap_push_example_reads_as_smstools3_reads_it():
    message = parse(SMSTOOLS3_WAP_PUSH)
    assert message.binary and message.alphabet == "8bit" and message.body_alphabet == "binary"
    assert message.udh == WAP_UDH  # UDH: yes is the default: the data starts with its header
    assert message.data == WAP_PUSH_DATA
    assert message.parts == 1 and message.recipients == ("+358401234567",)
    (part,) = encode_submit("+358401234567", data=message.data, udh=message.udh)
    sms = decode_pdu(part.pdu)
    assert (sms.ports.destination, sms.ports.origin) == (2948, 9200) and sms.data == WAP_PUSH_DATA


def test_binary_data_is_taken_to_the_end_of_the_file_as_it_is():
    """smstools3 reads binary data with fread to the end: a final newline is data, not a line end."""
    message = parse(TO.encode() + b"Alphabet: binary\nUDH: no\n\n\x00\x01\xff\n")
    assert message.data == b"\x00\x01\xff\n" and message.udh is None and message.text == ""


def test_binary_yes_is_alphabet_binary_and_udh_data_gives_the_header():
    """UDH-DATA: with binary data: the header comes from the line, the body is data only (smstools3 3.1)."""
    message = parse(TO.encode() + b"Binary: yes\nHex: yes\nUDH-DATA: 06 05 04 0B 84 23 F0\n\n01 06 01 AE\n")
    assert (message.udh, message.data) == (WAP_UDH, bytes.fromhex("010601AE"))


def test_a_text_with_the_senders_header():
    message = parse(TO.encode() + b"UDH-DATA: 06 05 04 0B 84 23 F0\n\nBEGIN:VCARD\n")
    assert not message.binary and message.text == "BEGIN:VCARD" and message.udh == WAP_UDH
    assert message.alphabet == "gsm7"


def test_hex_text_is_read_in_the_body_alphabet():
    """smstools3 >= 3.1.16: Hex: yes works for text too; the octets are the text in its alphabet."""
    assert parse(TO.encode() + b"Hex: yes\n\n48 69 # Hi\nE2 82 AC\n").text == "Hi€"
    assert parse(TO.encode() + b"Hex: yes\nAlphabet: ISO\n\n48A40A\n").text == "H€\n"  # its own newline stays


def test_class_sets_the_message_class():
    assert parse(TO.encode() + b"Class: 1\n\nhi").message_class == 1
    assert parse(TO.encode() + b"Flash: yes\n\nhi").message_class == 0
    assert parse(TO.encode() + b"\nhi").message_class is None


def test_long_binary_data_is_split_with_concatenation_merged_into_the_senders_header():
    data = bytes(range(256)) * 2  # 512 octets
    message = parse(TO.encode() + b"Alphabet: binary\nHex: yes\nUDH-DATA: " + hex_dump(WAP_UDH).encode()
                    + b"\n\n" + data.hex().encode())
    parts = encode_submit("+4915112345678", data=message.data, udh=message.udh, ref=9)
    assert len(parts) == message.parts == 4  # 140 - UDHL - ports (6) - concatenation (5) = 128 octets a part
    joined = b""
    for seq, part in enumerate(parts, start=1):
        sms = decode_pdu(part.pdu)
        assert len(part.udh) + len(sms.data) <= 140  # TP-UD of each part: header and data, 140 octets at most
        assert (sms.concat.ref, sms.concat.seq, sms.concat.total) == (9, seq, 4)
        assert sms.user_udh == WAP_UDH  # the sender's ports in every part, beside the concatenation IE
        joined += sms.data
    assert joined == data


BAD_BINARY_FILES = [
    # (name, headers and body after To:, words the reason must hold)
    ("odd-length hex", b"Alphabet: binary\nHex: yes\nUDH: no\n\n0106A\n", "odd number of hex digits"),
    ("Hex: yes with text that is not hex", b"Hex: yes\n\nHello world\n", "line 1 of the hex body is not hex"),
    ("odd-length UDH-DATA", b"UDH-DATA: 06 05 04 0B 84 23 F\n\nhi", "odd number of hex digits"),
    ("UDH-DATA that is not hex", b"UDH-DATA: ports 2948\n\nhi", "UDH-DATA: is not hex"),
    ("UDH length octet disagrees with its content", b"UDH-DATA: 07 05 04 0B 84 23 F0\n\nhi", "write 06 as its first octet"),
    ("UDH at the start of the data runs past it", b"Alphabet: binary\nHex: yes\n\n09 05 04 0B 84\n", "write 'UDH: no'"),
    ("UDH that claims concatenation itself", b"UDH-DATA: 05 00 03 01 02 01\n\nhi", "claims concatenation itself"),
    ("concatenation at the start of binary data", b"Alphabet: binary\nHex: yes\n\n05 00 03 01 02 01 AA\n",
     "gsmgw splits a long message"),
    ("binary without data", b"Alphabet: binary\nUDH: no\n\n", "has no data"),
    ("LENGTH not closed", b"Alphabet: binary\nHex: yes\nUDH: no\n\nLENGTH\n01 02\n", "second LENGTH"),
    ("Binary: no against Alphabet: binary", b"Alphabet: binary\nBinary: no\n\nx", "remove one of the two lines"),
    ("Binary: yes against a text alphabet", b"Alphabet: UCS2\nBinary: yes\n\nx", "names a text alphabet"),
    ("a class that does not exist", b"Class: 4\n\nhi", "not a message class"),
    ("flash against class 1", b"Flash: yes\nClass: 1\n\nhi", "Flash: yes is class 0"),
    ("binary over Max_parts", b"Alphabet: binary\nUDH: no\nMax_parts: 2\n\n" + b"x" * 400, "needs 3 SMS parts"),
    ("binary over 255 parts", b"Alphabet: binary\nUDH: no\nMax_parts: 255\n\n" + b"x" * (256 * 134),
     "at most 255 (the part count is one octet); send it as several files"),
]


@pytest.mark.parametrize("name, rest, words", BAD_BINARY_FILES, ids=[row[0] for row in BAD_BINARY_FILES])
def test_bad_binary_files_are_refused_saying_what_to_write(name, rest, words):
    with pytest.raises(SpoolFormatError) as caught:
        parse(TO.encode() + rest)
    assert words in caught.value.reason


def test_read_hex_body_keywords():
    assert read_hex_body(b"  LENGTH\nSTRING:ab\nLENGTH\nINLINESTRING:c\n") == b"\x02ab\x03c\x00"
    assert read_hex_body(b"0a0B ' comment\n/ all comment\n\n") == b"\x0a\x0b"


def test_make_outgoing_writes_binary_that_the_reader_reads_back():
    data = b"\x00\xff\n" * 50
    file = make_outgoing(to="+4915112345678", data=data, udh=WAP_UDH, message_class=1, extra={"Client": "c"})
    assert b"Alphabet: binary\nHex: yes\nUDH: no\nUDH-DATA: 06 05 04 0B 84 23 F0\nClass: 1\n" in file
    message = parse(file)
    assert (message.data, message.udh, message.message_class, message.parts) == (data, WAP_UDH, 1, 2)
    text_file = make_outgoing(to="+4915112345678", text="hi\n", udh=WAP_UDH)
    assert (parse(text_file).text, parse(text_file).udh) == ("hi\n", WAP_UDH)
    with pytest.raises(ValueError):
        make_outgoing(to="+4915112345678", text="a", data=b"b")


@needs_gammu
def test_gammu_decodes_what_a_binary_spool_file_sends():
    """The parts the daemon would send for smstools3's WAP push file and for a long binary file with
    ports, read by gammu (python3-gammu): the same header and the same data octets."""
    message = parse(SMSTOOLS3_WAP_PUSH)
    long_data = bytes(range(200))
    long_message = parse(make_outgoing(to="+4915112345678", data=long_data, udh=WAP_UDH))
    parts = encode_submit("+358401234567", data=message.data, udh=message.udh)
    long_parts = encode_submit("+4915112345678", data=long_message.data, udh=long_message.udh, ref=3)
    answers = gammu_decode([part.pdu for part in parts + long_parts])
    assert answers[0]["coding"] == "8bit" and answers[0]["udh"] == WAP_UDH.hex().upper()
    assert answers[0]["text"] == WAP_PUSH_DATA.hex().upper()
    joined = ""
    for answer, part in zip(answers[1:], long_parts):
        assert answer["coding"] == "8bit" and answer["udh"] == part.udh.hex().upper()
        assert answer["udh"].startswith("0B05040B8423F00003") or answer["udh"].startswith("0B00030")
        joined += answer["text"]
    assert joined == long_data.hex().upper()
