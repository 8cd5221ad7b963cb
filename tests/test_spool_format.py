"""Spool files (SPOOL.md): reading outgoing files, and the files gsmgw writes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gsmgw.config import Defaults
from gsmgw.spool.format import (
    Headers,
    SpoolFormatError,
    build_failed,
    build_incoming,
    build_report,
    build_sent,
    TRUSTED_HEADERS,
    make_outgoing,
    parse_outgoing,
    read_spool_file,
    report_status,
    seal,
    single_recipient,
    toa_text,
    update_headers,
)

KEY = bytes(range(32))
CET = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=CET)


def parse(data: bytes, **kwargs):
    kwargs.setdefault("now", NOW)
    return parse_outgoing(data, **kwargs)


# --- files as smstools3 users write them ------------------------------------------------------

SMSTOOLS3_FILES = [
    # (name, file, recipients, text, extra checks)
    ("smstools3 manual example", b"To: 491721234567\n\nHello, this is the sms.\n",
     ("+491721234567",), "Hello, this is the sms.", {}),
    ("flash and ISO", b"To: 491721234567\nFlash: yes\nAlphabet: ISO\n\nGr\xfc\xdfe \xa4\n",
     ("+491721234567",), "Grüße €", {"flash": True}),
    ("Latin is ISO-8859-15", b"To: +491721234567\nAlphabet: Latin\n\n\xbd\n",
     ("+491721234567",), "œ", {}),
    ("ISO-8859-1 when named so", b"To: +491721234567\nAlphabet: ISO-8859-1\n\n\xa4\n",
     ("+491721234567",), "¤", {}),
    ("UCS2 body, big-endian", b"To: 491721234567\nAlphabet: UCS2\n\n" + "Привет".encode("utf-16-be"),
     ("+491721234567",), "Привет", {"alphabet": "ucs2"}),
    ("Unicode is UCS2, echo added a newline byte",
     b"To: 491721234567\nAlphabet: Unicode\n\n" + "日本".encode("utf-16-be") + b"\n",
     ("+491721234567",), "日本", {}),
    ("GSM body: one septet per byte with an escape", b"To: 491721234567\nAlphabet: GSM\n\n\x00\x1b\x65\n",
     ("+491721234567",), "@€", {}),
    ("CRLF file", b"To: 491721234567\r\nReport: yes\r\n\r\nline one\r\nline two\r\n",
     ("+491721234567",), "line one\nline two", {"report": True}),
    ("header names in any case", b"TO: 491721234567\nflash: YES\nREPORT: no\n\nx\n",
     ("+491721234567",), "x", {"flash": True, "report": False}),
    ("unknown and ignored headers are kept", b"To: 491721234567\nFrom: me\nX-Ticket: 42\nReplace: 1\n\nx\n",
     ("+491721234567",), "x", {}),
    ("no trailing newline", b"To: 491721234567\n\nexact", ("+491721234567",), "exact", {}),
    ("only one trailing newline is stripped", b"To: 491721234567\n\ntwo\n\n", ("+491721234567",), "two\n", {}),
    ("UTF-8 BOM from an editor", b"\xef\xbb\xbfTo: 491721234567\n\nhi\n", ("+491721234567",), "hi", {}),
    ("several recipients", b"To: +4915112345678, 4917612345678,\n\nhi\n",
     ("+4915112345678", "+4917612345678"), "hi", {}),
    ("a recipient named twice gets one message", b"To: +4915112345678,+49 151 12345678\n\nhi\n",
     ("+4915112345678",), "hi", {}),
    ("empty body is an empty SMS", b"To: 491721234567\n\n", ("+491721234567",), "", {}),
    ("Text: header when the body is empty", b"To: 491721234567\nText: from header\n\n",
     ("+491721234567",), "from header", {}),
    ("Queue: is Modem:", b"To: 491721234567\nQueue: gsm2\n\nx", ("+491721234567",), "x", {"modem": "gsm2"}),
    ("smstools3 short code", b"To: s22 000\n\nSTOP", ("22000",), "STOP", {}),
    ("To_TOA: National sends as dialled", b"To: 0151 123-456\nTo_TOA: National\n\nx", ("0151123456",), "x", {}),
    ("To_TOA: International is the default", b"To: 4915112345678\nTo_TOA: International\n\nx",
     ("+4915112345678",), "x", {}),
    ("Alphabet: Ansi is Latin-9", b"To: 491721234567\nAlphabet: Ansi\n\n\xa4", ("+491721234567",), "€", {}),
    ("Alphabet: UCS-2 and Chinese by their first letters",
     b"To: 491721234567\nAlphabet: Chinese\n\n" + "中文".encode("utf-16-be"), ("+491721234567",), "中文", {}),
    ("UDH: false is harmless", b"To: 491721234567\nUDH: false\n\nx", ("+491721234567",), "x", {}),
    ("smstools3's default ISO-8859-15 when not UTF-8 and no Alphabet:", b"To: 491721234567\n\nGr\xfc\xdfe \xa4\n",
     ("+491721234567",), "Gr\u00fc\u00dfe \u20ac", {"body_alphabet": "ISO"}),
    ("valid UTF-8 stays UTF-8 without Alphabet:", "To: 491721234567\n\nGrüße €\n".encode(),
     ("+491721234567",), "Gr\u00fc\u00dfe \u20ac", {"body_alphabet": "UTF-8"}),
    ("blanks around names and values, CRLF, BOM, Flash, ISO",
     b"\xef\xbb\xbf  To :  491721234567 \r\n\tFlash:yes\r\nAlphabet:   ISO \r\n\r\nH\xe4llo \xa4\r\n",
     ("+491721234567",), "H\u00e4llo \u20ac", {"flash": True, "body_alphabet": "ISO"}),
]


@pytest.mark.parametrize("name,data,recipients,text,checks", SMSTOOLS3_FILES, ids=[row[0] for row in SMSTOOLS3_FILES])
def test_outgoing_files_that_work(name, data, recipients, text, checks):
    message = parse(data)
    assert message.recipients == recipients
    assert message.text == text
    for field, value in checks.items():
        assert getattr(message, field) == value, field


def test_defaults_come_from_config_when_the_file_says_nothing():
    message = parse(b"To: +4915112345678\n\nhi\n", defaults=Defaults(report=False, validity=11, max_parts=2))
    assert (message.report, message.validity, message.max_parts, message.priority) == (False, 11, 2, "normal")
    assert message.flash is False and message.modem is None


def test_validity_priority_dates_and_smsc():
    data = (b"To: 0151 12345678\nValidity: 1 week\nPriority: HIGH\nSend_after: 2026-11-24T12:00:00+01:00\n"
            b"Expires: 2026-11-24 18:00\nSMSC: +491710760000\nMax_parts: 3\n\nhi")
    message = parse(data, default_country="49")
    assert message.recipients == ("+4915112345678",)
    assert message.validity == 173  # TS 23.040 §9.2.3.12.1: 1 week = 7 days = 166 + 7
    assert message.priority == "high"
    assert message.send_after == datetime(2026, 11, 24, 12, 0, tzinfo=CET)
    assert message.expires == datetime(2026, 11, 24, 18, 0, tzinfo=CET)  # no offset: the zone of `now`
    assert message.smsc == "+491710760000"
    assert message.max_parts == 3


def test_relative_expires_counts_from_the_file_time_not_from_now():
    created = NOW - timedelta(hours=1)
    message = parse(b"To: +4915112345678\nExpires: 30 min\n\nhi", created=created)
    assert message.expires == created + timedelta(minutes=30)
    assert parse(b"To: +4915112345678\nExpires: 30 min\n\nhi").expires == NOW + timedelta(minutes=30)


def test_a_file_time_out_of_bounds_counts_from_now():
    # `touch -d 9999-12-31` on a file: a relative time counts from now, never overflows.
    created = datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert parse(b"To: +4915112345678\nExpires: 30 min\n\nhi", created=created).expires == NOW + timedelta(minutes=30)


def test_groups_expand_into_one_message_per_member():
    groups = {"oncall": ("+4915112345678", "+4917612345678")}
    message = parse(b"To: group:oncall, +4915100000000\n\nalarm\n", groups=groups)
    assert message.recipients == ("+4915112345678", "+4917612345678", "+4915100000000")


def test_parts_and_wire_alphabet_are_counted():
    assert parse(b"To: +4915112345678\n\n" + b"a" * 161).parts == 2
    message = parse(b"To: +4915112345678\n\n" + "ä😀".encode())
    assert (message.alphabet, message.parts) == ("ucs2", 1)


BAD_FILES = [
    ("empty", b"", "empty"),
    ("only whitespace", b"\n\n  \n", "empty"),
    ("no blank line", b"To: +4915112345678\n", "no blank line"),
    ("text right after headers", b"To: +4915112345678\nHello there\n", "line 2"),
    ("first line is text", b"Hello\n\nworld", "line 1"),
    ("starts with a blank line", b"\nTo: +4915112345678\n\nhi", "no headers"),
    ("no To:", b"Flash: yes\n\nhi", "no To:"),
    ("empty To:", b"To: \n\nhi", "no recipient"),
    ("bad number", b"To: call me\n\nhi", "not a phone number"),
    ("national number without default_country", b"To: 0151 12345678\n\nhi", "default_country"),
    ("unknown alphabet", b"To: +4915112345678\nAlphabet: EBCDIC\n\nhi", "unknown Alphabet"),
    ("binary data without its UDH", b"To: +4915112345678\nAlphabet: binary\n\nhi", "write 'UDH: no'"),
    ("body declared UTF-8 but is not", b"To: +4915112345678\nAlphabet: UTF-8\n\nGr\xfc\xdfe", "not valid UTF-8"),
    ("UCS2 with an odd length", b"To: +4915112345678\nAlphabet: UCS2\n\n\x00a\x00", "odd number"),
    ("UCS2 broken surrogate", b"To: +4915112345678\nAlphabet: UCS2\n\n\xd8\x00\x00a", "surrogate"),
    ("GSM body with 8-bit bytes", b"To: +4915112345678\nAlphabet: GSM\n\n\xe4", "not a GSM"),
    ("one line of text", b"no header", "line 1"),
    ("bad To_TOA", b"To: +4915112345678\nTo_TOA: weird\n\nhi", "To_TOA"),
    ("To_TOA national with letters", b"To: 0151 CALLME\nTo_TOA: national\n\nhi", "digits"),
    ("bad validity", b"To: +4915112345678\nValidity: forever\n\nhi", "Validity"),
    ("bad priority", b"To: +4915112345678\nPriority: urgent\n\nhi", "Priority"),
    ("bad report", b"To: +4915112345678\nReport: maybe\n\nhi", "neither yes nor no"),
    ("bad expires", b"To: +4915112345678\nExpires: tomorrow\n\nhi", "Expires"),
    ("bad send_after", b"To: +4915112345678\nSend_after: soon\n\nhi", "Send_after"),
    ("bad max_parts", b"To: +4915112345678\nMax_parts: 0\n\nhi", "Max_parts"),
    ("too many parts", b"To: +4915112345678\nMax_parts: 1\n\n" + b"x" * 161, "needs 2 SMS parts"),
    ("autosplit 0 refuses a long text", b"To: +4915112345678\nAutosplit: 0\n\n" + b"x" * 161, "needs 2"),
    ("unknown group", b"To: group:nobody\n\nhi", "group 'nobody'"),
    ("two different modems", b"To: +4915112345678\nModem: a\nQueue: b\n\nhi", "different modems"),
    ("UDH: yes with a text", b"To: +4915112345678\nUDH: yes\n\nhi", "give the header as hex in UDH-DATA:"),
    ("UDH-DATA claims concatenation", b"To: +4915112345678\nUDH-DATA: 050003010201\n\nhi", "claims concatenation"),
    ("Voicecall", b"To: +4915112345678\nVoicecall: yes\n\nTONE: 1,2", "SMS only"),
    ("Text: and a body", b"To: +4915112345678\nText: a\n\nb", "both"),
    # These used to raise OverflowError, which escaped the reader and crashed the daemon at start.
    ("expires far beyond the bound", b"To: +4915112345678\nExpires: 1000000 weeks\n\nhi", "longer than 3650 days"),
    ("send_after 400 digits", b"To: +4915112345678\nSend_after: " + b"9" * 400 + b" s\n\nhi", "longer than 3650 days"),
    ("validity far beyond the bound", b"To: +4915112345678\nValidity: 1000000 weeks\n\nhi", "Validity"),
    ("expires at the end of time", b"To: +4915112345678\nExpires: 9999-12-31T23:59:59-14:00\n\nhi", "within ten years"),
    ("send_after at the start of time", b"To: +4915112345678\nSend_after: 0001-01-01T00:00+14:00\n\nhi", "within ten years"),
]


@pytest.mark.parametrize("name,data,reason", BAD_FILES, ids=[row[0] for row in BAD_FILES])
def test_outgoing_files_that_fail_say_why(name, data, reason):
    with pytest.raises(SpoolFormatError) as caught:
        parse(data)
    assert reason in caught.value.reason


# --- files gsmgw writes -----------------------------------------------------------------------


def test_make_outgoing_round_trips_through_the_parser():
    data = make_outgoing(to=["+4915112345678", "+4917612345678"], text="Zeile 1\nZeile 2 €\n", report=False,
                         flash=True, validity="12 hours", priority="low", modem="gsm1", max_parts=3,
                         expires=NOW + timedelta(hours=1), extra={"Client": "zabbix", "Callback": "https://x/y"})
    message = parse(seal(data, KEY), seal_key=KEY)
    assert message.text == "Zeile 1\nZeile 2 €\n"  # a text's own final newline survives
    assert message.recipients == ("+4915112345678", "+4917612345678")
    assert (message.report, message.flash, message.priority, message.modem) == (False, True, "low", "gsm1")
    assert message.expires == NOW + timedelta(hours=1)
    assert message.headers.get("client") == "zabbix" and message.headers.get("Callback") == "https://x/y"


def test_make_outgoing_refuses_header_injection():
    with pytest.raises(SpoolFormatError):
        make_outgoing(to="+4915112345678", text="x", extra={"Callback": "https://x\nTo: +1900"})


def test_sent_file_keeps_the_original_and_adds_headers():
    original = b"To: +4915112345678\r\nModem: gsm1\r\nX-Ticket: 7\r\n\r\nbody stays\r\n"
    sent = build_sent(original, modem="gsm1", imsi="262011234567890", sent=NOW, parts=2, message_ids=[17, 18])
    assert sent.endswith(b"\r\n\r\nbody stays\r\n")
    headers = read_spool_file(sent).headers
    assert headers.get_all("Modem") == ["gsm1"]  # replaced in place, not duplicated
    assert headers.get("Message_id") == "17,18"
    assert headers.get("Sent") == "2026-11-24T10:00:00+01:00"
    assert headers.get("X-Ticket") == "7" and headers.get("Parts") == "2"
    status = report_status(0).text(0)
    updated = update_headers(update_headers(sent, {"Status": "pending 32 (x)"}), {"Status": status, "Delivered": "t"})
    assert read_spool_file(updated).headers.get_all("Status") == [status]
    assert updated.endswith(b"\r\n\r\nbody stays\r\n")


def test_failed_file_keeps_even_unparsable_content():
    for original in (b"", b"To: +4915112345678\nno blank line", b"\x00\xff binary"):
        failed = build_failed(original, failed=NOW, reason="bad\nfile", attempts=0)
        assert failed.endswith(original)
        headers = read_spool_file(failed).headers
        assert headers.get("Fail_reason") == "bad file"
        assert headers.get("Attempts") == "0"
    kept = build_failed(b"To: +4915112345678\n\nhi\n", failed=NOW, reason="expired", attempts=3)
    assert kept == b"To: +4915112345678\nFailed: 2026-11-24T10:00:00+01:00\nFail_reason: expired\nAttempts: 3\n\nhi\n"


def test_single_recipient_file():
    data = single_recipient(b"To: group:oncall\nFlash: yes\n\nhi\n", "+4915112345678")
    assert data == b"To: +4915112345678\nFlash: yes\n\nhi\n"


def test_incoming_file_matches_spool_md():
    data = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc="+491710760000",
                          sent=datetime(2026, 11, 24, 10, 15, 3, tzinfo=CET),
                          received=datetime(2026, 11, 24, 10, 15, 5, tzinfo=CET), modem="gsm1",
                          imsi="262011234567890", alphabet="gsm7", parts=3, flash=True, incomplete=True,
                          text="Hallo\nWelt")
    assert data == (
        b"From: +4915112345678\nFrom_TOA: 91 international\nFrom_SMSC: +491710760000\n"
        b"Sent: 2026-11-24T10:15:03+01:00\nReceived: 2026-11-24T10:15:05+01:00\nModem: gsm1\n"
        b"IMSI: 262011234567890\nAlphabet: GSM\nParts: 3\nFlash: yes\nIncomplete: yes\n\nHallo\nWelt"
    )
    binary = build_incoming(sender="Vodafone", sender_toa=0xD0, smsc=None, sent=None, received=NOW, modem="gsm1",
                            imsi=None, alphabet="8bit", parts=1, data=b"\x01\xab")
    assert read_spool_file(binary).body == b"01AB"
    assert read_spool_file(binary).headers.get("From_TOA") == "D0 alphanumeric"
    assert read_spool_file(binary).headers.get("Alphabet") == "binary"  # as smstools3 writes it


def test_toa_names_follow_ts_23040():
    assert [toa_text(t) for t in (0x81, 0x91, 0xA1, 0xD0)] == [
        "81 unknown", "91 international", "A1 national", "D0 alphanumeric"]


def test_report_file_and_status_words():
    data = build_report(recipient="+4915112345678", modem="gsm1", message_id=17, sent_file="20261124-x",
                        status=0, discharge=NOW)
    headers = read_spool_file(data).headers
    assert headers.get("Status").startswith("delivered 0 ")
    assert headers.get("Sent_file") == "20261124-x" and headers.get("Discharge") == "2026-11-24T10:00:00+01:00"
    assert data.endswith(b"\n\n")
    assert [report_status(code).word for code in (0x00, 0x21, 0x41, 0x62, 0x90)] == [
        "delivered", "pending", "failed", "failed", "failed"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
@example(text="\ufeffstarts with a BOM character")
@example(text="ends in CR\r")
@example(text="\r\n")
def test_any_text_round_trips(text):
    message = parse(make_outgoing(to="+4915112345678", text=text, max_parts=255))
    assert message.text == text


def test_lone_surrogate_is_refused_with_a_reason():
    with pytest.raises(SpoolFormatError, match="surrogate"):
        make_outgoing(to="+4915112345678", text="a\ud800b")


# --- the seal: trusted headers count only in files the daemon's doors wrote -------------------

DOOR_FILE = make_outgoing(to="+4915112345678", text="Disk full\nsecond line", report=True,
                          extra={"Client": "zabbix", "Callback": "https://app.example/dlr", "Queued": "now"})


def visible(data, key=KEY):
    spool_file = read_spool_file(data, seal_key=key)
    return {name: spool_file.headers.get(name) for name in TRUSTED_HEADERS if spool_file.headers.get(name)}, spool_file.ignored


def test_a_sealed_file_keeps_its_trusted_headers_through_the_daemons_changes():
    sealed = seal(DOOR_FILE, KEY)
    expected = {"Client": "zabbix", "Callback": "https://app.example/dlr"}
    assert visible(sealed) == (expected, ())
    assert parse(sealed, seal_key=KEY).headers.get("Client") == "zabbix"
    sent = build_sent(sealed, modem="gsm1", imsi=None, sent=NOW, parts=1, message_ids=[7])
    assert visible(update_headers(sent, {"Status": "delivered 0 (x)", "Delivered": "now"})) == (expected, ())
    assert visible(build_failed(sealed, failed=NOW, reason="expired", attempts=2)) == (expected, ())
    assert read_spool_file(sealed, seal_key=KEY).headers.get("Seal") is None  # nobody reads the seal itself


@pytest.mark.parametrize(
    "change",
    [
        lambda data: data.replace(b"Client: zabbix", b"Client: admin"),
        lambda data: data.replace(b"Callback: https://app.example/dlr", b"Callback: http://169.254.169.254/"),
        lambda data: data.replace(b"To: +4915112345678", b"To: +4990012345678"),
        lambda data: data.replace(b"Disk full", b"Disk FULL"),
        lambda data: data.replace(b"\n\n", b"\nCallback: http://127.0.0.1/\n\n", 1),  # a second one, last wins
        lambda data: data.replace(b"\n\n", b"\nSmpp_receipt: 1\n\n", 1),
        lambda data: data.replace(b"To: +4915112345678", b"To: +4915112345678, +4917612345678"),
        lambda data: single_recipient(data, "+4917612345678"),
    ],
)
def test_any_change_to_what_the_seal_covers_voids_the_trusted_headers(change):
    changed = change(seal(DOOR_FILE, KEY))
    headers, ignored = visible(changed)
    assert headers == {} and "Client" in ignored
    assert parse(changed, seal_key=KEY).headers.get("Callback") is None
    assert parse(changed, seal_key=KEY).headers.get("Queued") == "now"  # ordinary headers stay


def test_hand_written_files_and_wrong_keys_get_no_trusted_headers():
    hand_written = (b"To: +4915112345678\nClient: zabbix\nCallback: http://10.0.0.1/\nSmpp_source: 1234\n"
                    b"Smpp_receipt: 1\nDlr_mask: 31\nAlertmanager: oncall\nEmail_from: victim@example.org\n"
                    b"Email_message_id: <x@example.org>\n\nhi\n")
    headers, ignored = visible(hand_written)
    assert headers == {} and set(ignored) == set(TRUSTED_HEADERS)
    assert visible(seal(hand_written, KEY), key=bytes(32)) == ({}, ignored)
    assert visible(seal(DOOR_FILE, KEY), key=None)[0] == {}
    assert visible(hand_written.replace(b"\n\n", b"\nSeal: " + b"0" * 64 + b"\n\n"))[0] == {}


def test_sealing_again_replaces_the_seal():
    resealed = seal(single_recipient(seal(DOOR_FILE, KEY), "+4917612345678"), KEY)
    assert resealed.count(b"Seal:") == 1
    assert visible(resealed)[0]["Client"] == "zabbix"


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200),
       client=st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"), crlf=st.booleans())
def test_the_seal_holds_for_any_text_and_breaks_when_the_text_changes(text, client, crlf):
    data = make_outgoing(to="+4915112345678", text=text, extra={"Client": client})
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    sealed = seal(data, KEY)
    assert visible(sealed)[0] == {"Client": client}
    body_start = sealed.index(b"\n\n" if not crlf else b"\r\n\r\n")
    assert visible(sealed[: body_start] + sealed[body_start:] + b"x")[0] == {}


def test_headers_updated_replaces_every_line_of_a_name_in_place_whatever_its_case():
    headers = Headers([("To", "+491"), ("X-Ticket", "7"), ("to", "+492"), ("Client", "app")])
    updated = headers.updated({"TO": "+493", "Callback": "https://a.example/"})
    assert updated.items() == (("To", "+493"), ("X-Ticket", "7"), ("Client", "app"), ("Callback", "https://a.example/"))
    assert updated.get("to") == "+493" and headers.get("To") == "+492"  # the original is unchanged
