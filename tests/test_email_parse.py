"""The mail parser (gsmgw.email.parse, gsmgw.email.text): real-world mails as named vectors, the
cases the issue lists as named tests, and hypothesis fuzzers over MIME trees and raw bytes.

Every input ends in a ParsedMail whose SMS text can be sent, or in UnreadableMail with a message
that says what to change; nothing else is ever raised.
"""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmgw.email.parse import MAX_DEPTH, UnreadableMail, decode_header_text, message_text, parse_mail
from gsmgw.email.text import ELLIPSIS, clean_body, fit_parts, html_to_text, sms_text, unflow
from gsmgw.sms import count_parts


def mail(headers: str, body: bytes | str = b"") -> bytes:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return headers.strip("\n").replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body


# --- real-world vectors ------------------------------------------------------------------------

NAGIOS = mail("""
From: nagios@monitor.example.org
To: +4915112345678@sms.example.org
Subject: ** PROBLEM Service Alert: web1/HTTP is CRITICAL **
Message-ID: <20240101100000.1234@monitor.example.org>
Content-Type: text/plain; charset=us-ascii
""", "***** Nagios *****\r\n\r\nNotification Type: PROBLEM\r\n\r\nService: HTTP\r\nHost: web1\r\n"
     "State: CRITICAL\r\n\r\nDate/Time: Mon Jan 1 10:00:00 CET 2024\r\n")

QP_UTF8 = mail("""
From: =?utf-8?q?J=C3=BCrgen?= <juergen@Example.ORG>
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable
""", "Stra=C3=9Fe ges=C3=A4ubert =F0=9F=98=80=F0=9F=8E=89 und ein sehr lang=\r\ner Satz\r\n")

BASE64_LATIN1 = mail("""
Subject: =?ISO-8859-1?B?SGVpevZs?=
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: base64
""", base64.encodebytes("Öltank bei 10 % – bitte nachfüllen".encode("iso-8859-1", "replace")))

ALTERNATIVE = mail("""
Subject: Backup report
Content-Type: multipart/alternative; boundary="alt"
""", "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBackup OK: 12 GB\r\n"
     "--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Backup <b>OK</b>: 12 GB (HTML)</p>\r\n--alt--\r\n")

HTML_ONLY = mail("""
Subject: UPS on battery
Content-Type: text/html; charset=windows-1252
""", b"<html><head><title>t</title><style>p {color:red}</style><script>alert(1)</script></head>"
     b"<body><p>UPS&nbsp;<b>on battery</b></p><table><tr><td>Load</td><td>42&#37;</td></tr></table>"
     b"<div>Runtime: 12 min<br>Temp: 23\xb0C</div></body></html>")

OUTLOOK_REPLY = mail("""
Subject: RE: SMS from +4915112345678
Content-Type: text/plain; charset=utf-8
""", "Ich komme um 10.\r\n\r\n-----Original Message-----\r\nFrom: SMS gateway\r\nSent: Monday\r\n\r\nServer down\r\n")

THUNDERBIRD_REPLY = mail("""
Subject: Re: SMS from +4915112345678
In-Reply-To: <incoming-1.gsmgw@sms.example.org>
Content-Type: text/plain; charset=UTF-8; format=flowed
""", "On my way, will be there in ten \r\nminutes.\r\n\r\nOn 01.01.24 10:00, SMS gateway wrote:\r\n"
     "> Server down\r\n>\r\n\r\n-- \r\nJane Doe\r\nOps\r\n")

GERMAN_THUNDERBIRD_REPLY = mail("""
Subject: Re: SMS from +4915112345678
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit
""", "Ja, ab 18 Uhr. Bis dann!\r\n\r\nAm 06.12.2026 um 18:34 schrieb SMS gateway:\r\n"
     "> Kommst du heute?\r\n\r\n-- \r\nOffice, ACME GmbH\r\n")

GERMAN_GMAIL_WRAPPED_REPLY = mail("""
Subject: Re: SMS from +4915112345678
Content-Type: text/plain; charset=UTF-8
""", "Bin unterwegs.\r\n\r\nAm Mo., 7. Dez. 2026 um 10:00 Uhr schrieb SMS gateway <\r\n"
     "sms@sms.example.org>:\r\n\r\n> Server down\r\n")

DUTCH_REPLY = mail("""
Subject: Re: SMS from +4915112345678
Content-Type: text/plain; charset=UTF-8
""", "Ik kom eraan.\r\nOp 7 dec. 2026 om 10:00 schreef SMS gateway <sms@sms.example.org>:\r\n> Server down\r\n")

GMAIL_HTML_REPLY = mail("""
Subject: Re: SMS from +4915112345678
References: <a@b> <incoming-7.gsmgw@sms.example.org>
Content-Type: multipart/alternative; boundary="g"
""", "--g\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<div dir=\"ltr\">Restarted it.</div><br>"
     "<div class=\"gmail_quote\"><div class=\"gmail_attr\">On Mon, Jan 1, 2024 at 10:00 AM SMS gateway "
     "&lt;sms@sms.example.org&gt; wrote:<br></div><blockquote class=\"gmail_quote\">Server down</blockquote>"
     "</div>\r\n--g--\r\n")

MIXED_WITH_ATTACHMENT = mail("""
Subject: Scan from printer
Content-Type: multipart/mixed; boundary="m"
""", "--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
     "--m\r\nContent-Type: text/plain\r\n\r\nToner low\r\n--m--\r\n")

ZABBIX = mail("""
From: <zabbix@example.org>
To: <+4915112345678@sms.example.org>
Subject: =?UTF-8?B?UHJvYmxlbTogSGlnaCBDUFUgb24gZGIxIOKAlCA5NSAl?=
MIME-Version: 1.0
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: base64
""", "UHJvYmxlbSBzdGFydGVkIGF0IDEwOjAwOjAwIG9uIDIwMjYuMTIuMDcNClByb2JsZW0gbmFtZTog\r\nSGlnaCBDUFUgb24gZGIxDQpIb3N0OiBkYjENClNldmVyaXR5OiBIaWdoDQo=\r\n")

VECTORS = [
    # name, mail, text mode, expected SMS text
    ("nagios", NAGIOS, "subject+body",
     "** PROBLEM Service Alert: web1/HTTP is CRITICAL **: ***** Nagios *****\nNotification Type: PROBLEM\n"
     "Service: HTTP\nHost: web1\nState: CRITICAL\nDate/Time: Mon Jan 1 10:00:00 CET 2024"),
    ("qp-utf8-emoji", QP_UTF8, "body", "Straße gesäubert 😀🎉 und ein sehr langer Satz"),
    ("qp-utf8-subject", QP_UTF8, "subject", "Grüße aus Köln"),
    ("base64-latin1", BASE64_LATIN1, "subject+body", "Heizöl: Öltank bei 10 % ? bitte nachfüllen"),
    ("alternative-prefers-plain", ALTERNATIVE, "body", "Backup OK: 12 GB"),
    ("html-only", HTML_ONLY, "body", "UPS on battery\nLoad 42%\nRuntime: 12 min\nTemp: 23°C"),
    ("outlook-reply", OUTLOOK_REPLY, "subject+body", "Ich komme um 10."),
    ("thunderbird-flowed-reply", THUNDERBIRD_REPLY, "subject+body", "On my way, will be there in ten minutes."),
    ("gmail-html-reply", GMAIL_HTML_REPLY, "subject+body", "Restarted it."),
    ("german-thunderbird-reply", GERMAN_THUNDERBIRD_REPLY, "subject+body", "Ja, ab 18 Uhr. Bis dann!"),
    ("german-gmail-wrapped-reply", GERMAN_GMAIL_WRAPPED_REPLY, "subject+body", "Bin unterwegs."),
    ("dutch-reply", DUTCH_REPLY, "subject+body", "Ik kom eraan."),
    ("attachment-is-not-read", MIXED_WITH_ATTACHMENT, "body", "Toner low"),
    ("subject-only", mail("Subject: Power restored"), "body", "Power restored"),
    ("zabbix-base64", ZABBIX, "subject+body", "Problem: High CPU on db1 — 95 %: Problem started at 10:00:00 on "
     "2026.12.07\nProblem name: High CPU on db1\nHost: db1\nSeverity: High"),
]


@pytest.mark.parametrize("name, data, mode, expected", VECTORS, ids=[vector[0] for vector in VECTORS])
def test_real_world_mails(name, data, mode, expected):
    assert message_text(parse_mail(data), mode, 6) == expected


def test_sender_message_id_and_reply_detection():
    parsed = parse_mail(NAGIOS)
    assert parsed.sender == "nagios@monitor.example.org"
    assert parsed.message_id == "<20240101100000.1234@monitor.example.org>"
    assert not parsed.reply_to_gateway
    assert parse_mail(QP_UTF8).sender == "juergen@example.org"
    assert parse_mail(THUNDERBIRD_REPLY).reply_to_gateway  # In-Reply-To
    assert parse_mail(GMAIL_HTML_REPLY).reply_to_gateway  # References
    assert parse_mail(OUTLOOK_REPLY).reply_to_gateway  # only the subject says so


def test_a_reply_sends_its_body_without_the_subject():
    data = mail("Subject: Re: SMS from +4915112345678\nIn-Reply-To: <x.gsmgw@sms.example.org>", "Yes.\r\n")
    assert message_text(parse_mail(data), "subject+body", 6) == "Yes."


def test_a_reply_with_only_the_quote_is_refused():
    data = mail("Subject: Re: SMS from +4915112345678", "> Server down\r\n")
    with pytest.raises(UnreadableMail, match="above the quoted message"):
        message_text(parse_mail(data), "subject+body", 6)


# --- the cases the issue names -------------------------------------------------------------------

def nested(depth: int, leaf: bytes) -> bytes:
    for level in range(depth):
        boundary = f"level{level}"
        leaf = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()
                + leaf + f"\r\n--{boundary}--\r\n".encode())
    return leaf


def test_multiparts_nested_50_deep_give_the_text():
    data = b"Subject: deep\r\n" + nested(50, b"Content-Type: text/plain\r\n\r\ndeep text\r\n")
    assert message_text(parse_mail(data), "body", 6) == "deep text"


def test_multiparts_nested_deeper_than_the_limit_give_the_subject_and_a_note():
    data = b"Subject: very deep\r\n" + nested(MAX_DEPTH + 10, b"Content-Type: text/plain\r\n\r\ndeep text\r\n")
    parsed = parse_mail(data)
    assert message_text(parsed, "body", 6) == "very deep"
    assert any("deeper" in note for note in parsed.notes)


def test_multiparts_nested_beyond_the_parsers_recursion_are_refused_clearly():
    with pytest.raises(UnreadableMail, match="plain text mail"):
        parse_mail(nested(2000, b"Content-Type: text/plain\r\n\r\nx\r\n"))


def test_a_10_mb_attachment_beside_a_short_text_part():
    attachment = base64.encodebytes(os.urandom(10 * 1024 * 1024 * 3 // 4))
    data = mail('Subject: report\nContent-Type: multipart/mixed; boundary="X"',
                b"--X\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment
                + b"\r\n--X\r\nContent-Type: text/plain\r\n\r\nshort text\r\n--X--\r\n")
    assert len(data) > 10 * 1024 * 1024
    assert message_text(parse_mail(data), "subject+body", 6) == "report: short text"


def test_malformed_mime_without_a_boundary_is_read_from_the_subject():
    data = mail("Subject: no boundary\nContent-Type: multipart/mixed", "--x\r\ngarbage\r\n")
    parsed = parse_mail(data)
    assert message_text(parsed, "subject+body", 6) == "no boundary"
    assert any("no parts" in note for note in parsed.notes)


def test_malformed_mime_without_subject_or_text_is_refused():
    data = mail("Content-Type: multipart/mixed", "--x\r\ngarbage\r\n")
    with pytest.raises(UnreadableMail, match="write the message"):
        message_text(parse_mail(data), "subject+body", 6)


def test_an_unclosed_multipart_still_gives_its_text():
    data = mail('Subject: s\nContent-Type: multipart/mixed; boundary="b"',
                "--b\r\nContent-Type: text/plain\r\n\r\nbody text\r\n")
    assert message_text(parse_mail(data), "body", 6) == "body text"


def test_8bit_headers_are_read_as_utf8_or_windows_1252():
    utf8 = parse_mail("Subject: Grüße\r\nFrom: Jürgen <j@x.org>\r\n\r\nx".encode("utf-8"))
    assert utf8.subject == "Grüße" and utf8.sender == "j@x.org"
    latin = parse_mail("Subject: Grüße €\r\n\r\nx".encode("cp1252"))
    assert latin.subject == "Grüße €"


@pytest.mark.parametrize("charset", ["nonsense", "rot13", "base64_codec", "unknown-8bit", '"utf8"', ""])
def test_bad_charsets_fall_back_to_utf8(charset):
    data = mail(f"Subject: s\nContent-Type: text/plain; charset={charset}", "Köln")
    parsed = parse_mail(data)
    assert parsed.body == "Köln"


def test_a_wrong_charset_label_falls_back():
    data = mail("Content-Type: text/plain; charset=utf-8", "Köln".encode("cp1252"))
    parsed = parse_mail(data)
    assert parsed.body == "Köln" and any("Windows-1252" in note for note in parsed.notes)


def test_an_empty_mail_is_refused():
    with pytest.raises(UnreadableMail, match="empty"):
        parse_mail(b"")
    with pytest.raises(UnreadableMail, match="no text"):
        message_text(parse_mail(b"From: a@b.c\r\n\r\n"), "subject+body", 6)


def test_a_body_that_is_only_a_signature_is_refused():
    data = mail("From: a@b.c", "-- \r\nJane Doe\r\nACME Inc.\r\n")
    with pytest.raises(UnreadableMail, match="signature"):
        message_text(parse_mail(data), "subject+body", 6)


def test_a_body_that_is_only_a_signature_sends_the_subject():
    data = mail("Subject: Disk full", "-- \r\nJane Doe\r\n")
    assert message_text(parse_mail(data), "subject+body", 6) == "Disk full"


def test_broken_base64_and_quoted_printable_are_read_as_far_as_possible():
    data = mail("Content-Type: text/plain\nContent-Transfer-Encoding: base64", "SGVsbG8gV29y!!bGQ=\r\n")
    assert parse_mail(data).body  # something readable, no exception
    data = mail("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable", "a=ZZb=\r\nc=C3")
    assert parse_mail(data).body.startswith("a=ZZb")


# --- the text helpers ------------------------------------------------------------------------------

def test_clean_body_folds_blank_space_and_drops_quotes_and_signature():
    text = "Hello   there\t!\n\n\n\nSecond  line  \nOn Mon, Jane\nwrote:\n> quoted\n>> more\n-- \nsig"
    assert clean_body(text) == "Hello there !\nSecond line"


def test_no_break_spaces_do_not_make_a_text_ucs2():
    assert clean_body("a\u00a0b\u200bc") == "a bc"
    assert count_parts(clean_body("a\u00a0b")).alphabet == "gsm7"


def test_html_to_text_ignores_tag_soup():
    assert html_to_text("<p>a<b>b</i></p><div>c</span>") == "\nab\n\nc"
    assert html_to_text("<![if !supportLists]>x<![endif]> <!DOCTYPE x><p>y") .split() == ["x", "y"]


def test_unflow():
    assert unflow("a \r\nb\r\n-- \r\nsig", delsp=False) == "a b\n-- \nsig"
    assert unflow("a \r\nb", delsp=True) == "ab"


@pytest.mark.parametrize("mode, expected", [
    ("subject", "S"), ("body", "B"), ("subject+body", "S: B")])
def test_sms_text_modes(mode, expected):
    assert sms_text("S", "B", mode) == expected
    assert sms_text("", "B", mode) == "B" and sms_text("S", "", mode) == "S"


def test_fit_parts_cuts_after_a_word_and_ends_in_an_ellipsis():
    text = "word " * 500
    cut = fit_parts(text, 3)
    assert cut.endswith("word" + ELLIPSIS) and count_parts(cut).parts == 3
    assert fit_parts("short", 1) == "short"
    one_long_word = "x" * 400
    assert count_parts(fit_parts(one_long_word, 1)).parts == 1


def test_rfc2047_subjects():
    assert decode_header_text("=?utf-8?q?a?= =?utf-8?q?b?= c") == "ab c"
    assert decode_header_text("=?utf-8?b?8J+YgA==?=") == "😀"
    assert decode_header_text("=?koi8-r?B?8NLJ18XU?=") == "Привет"
    assert decode_header_text("=?nonsense?q?K=C3=B6ln?=") == "Köln"


# --- fuzzing ----------------------------------------------------------------------------------------

CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "koi8-r", "utf-16", "utf-7", "nonsense",
            "rot13", "", "unknown-8bit", "gb2312", "iso-2022-jp", "x\x00y"]
ENCODINGS = ["7bit", "8bit", "quoted-printable", "base64", "binary", "x-uuencode", "garbage"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


def _encode_body(text: str, charset: str, encoding: str, broken: bool) -> bytes:
    try:
        raw = text.encode(charset or "utf-8")
    except (LookupError, UnicodeEncodeError, ValueError):  # our bad charset names: send UTF-8 under them
        raw = text.encode("utf-8")
    if encoding == "base64":
        raw = base64.encodebytes(raw)
    elif encoding == "quoted-printable":
        import quopri

        raw = quopri.encodestring(raw)
    if broken and raw:
        raw = raw[: len(raw) // 2] + b"=\xff!" + raw[len(raw) // 2:]
    return raw


@st.composite
def leaves(draw):
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png", "text/calendar",
                                  "message/rfc822", "text/plain; format=flowed; delsp=yes", "", "garbage"]))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    disposition = draw(st.sampled_from(["", "inline", "attachment; filename=a.txt", "attach"]))
    text = draw(TEXT)
    body = _encode_body(text, charset, encoding, draw(st.booleans()))
    headers = []
    if ctype:
        headers.append(f"Content-Type: {ctype}; charset={charset}")
    headers.append(f"Content-Transfer-Encoding: {encoding}")
    if disposition:
        headers.append(f"Content-Disposition: {disposition}")
    return "\r\n".join(headers).encode("latin-1", "replace") + b"\r\n\r\n" + body


def multiparts(children):
    @st.composite
    def build(draw):
        parts = draw(st.lists(children, min_size=0, max_size=4))
        boundary = draw(st.sampled_from(["b1", "b2", "=_x", "same", ""]))
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "signed", "report"]))
        closed = draw(st.booleans())
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
        if closed:
            body += b"--" + boundary.encode() + b"--\r\n"
        return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode() + body
    return build()


MIME_TREES = st.recursive(leaves(), multiparts, max_leaves=8)
HEADER_BYTES = st.binary(max_size=80).filter(lambda raw: b"\n" not in raw and b"\r" not in raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=MIME_TREES, subject=st.one_of(TEXT, HEADER_BYTES), sender=HEADER_BYTES,
       mode=st.sampled_from(["subject", "body", "subject+body"]), max_parts=st.integers(1, 10))
def test_fuzz_mime_trees(tree, subject, sender, mode, max_parts):
    if isinstance(subject, str):
        subject = subject.replace("\r", " ").replace("\n", " ").encode("utf-8")
    data = b"Subject: " + subject + b"\r\nFrom: " + sender + b"\r\n" + tree
    check_outcome(data, mode, max_parts)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), mode=st.sampled_from(["subject", "body", "subject+body"]))
def test_fuzz_raw_bytes(data, mode):
    check_outcome(data, mode, 3)


def check_outcome(data: bytes, mode: str, max_parts: int) -> None:
    try:
        parsed = parse_mail(data)
        text = message_text(parsed, mode, max_parts)
    except UnreadableMail as refusal:
        assert "; " in str(refusal) or "send" in str(refusal)  # says what to do
        return
    assert text and text == text.strip()
    text.encode("utf-8")  # no lone surrogates: it can be written into a spool file
    assert count_parts(text).parts <= max_parts
    assert parsed.message_id is None or (parsed.message_id.isascii() and " " not in parsed.message_id)


def test_the_cut_counts_with_the_configured_national_tables():
    turkish = "Sunucu çöktü, lütfen kontrol edin şimdi " * 20  # 800 characters
    assert fit_parts(turkish, 6, ("tr",)) == turkish  # GSM-7 with the Turkish locking shift: 6 parts
    assert fit_parts(turkish, 6).endswith(ELLIPSIS)  # UCS-2 without it: 12 parts, so it is cut
    assert message_text(parse_mail(mail("Subject: x", turkish)), "body", 6, ("tr",)) == turkish.strip()
