"""The bytes of a mail (RFC 5322, MIME) to what an SMS needs from it. Pure: no I/O.

`parse_mail(data)` returns a `ParsedMail`: the decoded subject (RFC 2047), the body text of the
readable part, the sender's address, the Message-ID, and whether the mail answers a mail gsmgw
sent. A mail with nothing readable raises `UnreadableMail`, whose message says what to send
instead; nothing else is raised for any input (tests/test_email_parse.py fuzzes it).

Which part is read (EMAIL.md "The text"):
- the first `text/plain` part that is not an attachment, in document order; inside
  `multipart/alternative` the plain alternative wins over HTML;
- when there is none, the first `text/html` part, turned into text;
- attachments, attached mails (`message/rfc822`) and other types are never read;
- parts nested deeper than MAX_DEPTH and parts after the first MAX_PARTS are not looked at.

Decoding is lenient, as real senders are: quoted-printable and base64 are decoded even when
broken; an unknown or missing charset is read as UTF-8, and as Windows-1252 when that fails
(the usual mislabelling); 8-bit bytes in headers are read the same way. What was guessed is in
`ParsedMail.notes`, for the log.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.policy
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message

from gsmgw.email.text import clean_body, clean_subject, fit_parts, html_to_text, sms_text, unflow

MAX_DEPTH = 64
MAX_PARTS = 200

# The Message-ID gsmgw gives the mails it sends ends in this, so a reply can be recognised by its
# In-Reply-To/References (`gsmgw.email.compose`).
GATEWAY_ID_MARK = ".gsmgw@"
# Every mail gsmgw sends carries this header; a mail that still has it was forwarded unchanged.
GATEWAY_HEADER = "X-Gsmgw-Id"
# Without In-Reply-To (some clients drop it), a reply is recognised by the subject gsmgw wrote.
_REPLY_SUBJECT = re.compile(r"\A\s*((re|aw|sv|vs|antw|r|rif|odp|ynt)\s*(\[\d+\])?\s*:\s*)+SMS from\b", re.IGNORECASE)
# RFC 2047 §2: =?charset?encoding?encoded-text?= (charset may carry an RFC 2231 *language).
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t\r\n]+(?==\?)")
_UNKNOWN_CHARSETS = frozenset(("unknown-8bit", "x-unknown", "unknown", "default", "8bit", "x-user-defined"))


class UnreadableMail(ValueError):
    """The mail has nothing that can be sent as an SMS; the message says what to change."""


@dataclass(frozen=True)
class ParsedMail:
    subject: str  # decoded, on one line
    body: str  # the readable part, cleaned (gsmgw.email.text.clean_body)
    sender: str | None  # the addr-spec of From:, lower-case domain; None when there is none
    message_id: str | None  # as written, with its angle brackets
    reply_to_gateway: bool  # answers a mail gsmgw sent (In-Reply-To/References, or its subject)
    body_kind: str  # "plain", "html" or "none"
    from_gateway: bool = False  # carries gsmgw's own X-Gsmgw-Id: a mail gsmgw sent, come back (a loop)
    priority: str | None = None  # "high" when the sender marked the mail urgent (`_priority`), else None
    notes: tuple[str, ...] = field(default_factory=tuple)


def _repair(text: str) -> str:
    """A header or body str that may carry undecodable bytes as surrogate escapes: read those
    bytes as UTF-8, else as Windows-1252; other lone surrogates become U+FFFD."""
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


class _RawHeaders(email.policy.Compat32):
    """compat32 (the email package's fast, lenient parser) handing out header values as written;
    `_header` decodes them. The modern policy models every header and costs ten times as much."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaders()


def _decode_word(charset: str, encoding: str, encoded: str) -> str | None:
    """One RFC 2047 encoded word, or None when it cannot be decoded (it is then kept as written)."""
    try:
        if encoding in "bB":
            raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        else:
            raw = binascii.a2b_qp(encoded.encode("ascii"), header=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    return decode_payload(raw, charset.split("*", 1)[0], [])


def decode_header_text(value: str) -> str:
    """A raw header value as text: unfolded, 8-bit bytes read as UTF-8 (else Windows-1252),
    RFC 2047 encoded words decoded, the white space between two encoded words dropped (§6.2)."""
    text = _repair(value)
    text = re.sub(r"\r?\n[ \t]", " ", text).replace("\r", "").replace("\n", "")
    text = _BETWEEN_WORDS.sub("", text)

    def word(match: re.Match[str]) -> str:
        decoded = _decode_word(match.group(1), match.group(2), match.group(3))
        return match.group(0) if decoded is None else decoded

    return _ENCODED_WORD.sub(word, text)


def _header(message: Message, name: str, notes: list[str]) -> str:
    """A header's decoded text ("" when absent)."""
    value = message.get(name)
    if value is None:
        return ""
    return decode_header_text(str(value))


def _priority(message: Message, notes: list[str]) -> str | None:
    """"high" for a mail its sender marked urgent, which mail clients write in three ways:
    `X-Priority: 1` or `2` (Outlook's "High importance", Thunderbird's "Highest" and "High"),
    `Importance: high` and `Priority: urgent` (RFC 2156). None (the default) otherwise: a mail
    marked low is sent as normal, since a lower priority is not what mail clients mean by it."""
    x_priority = _header(message, "X-Priority", notes).strip()
    if x_priority[:1] in ("1", "2"):
        return "high"
    if _header(message, "Importance", notes).strip().lower() == "high":
        return "high"
    if _header(message, "Priority", notes).strip().lower() == "urgent":
        return "high"
    return None


def _address(message: Message, notes: list[str]) -> str | None:
    text = _header(message, "From", notes)
    if not text:
        return None
    try:
        _, address = email.utils.parseaddr(text)
    except Exception:  # noqa: BLE001 - parseaddr has raised on pathological input
        return None
    if "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def _message_id(message: Message, notes: list[str]) -> str | None:
    text = _header(message, "Message-ID", notes).strip()
    if not text:
        return None
    # One token, printable ASCII: it is written into a spool header.
    token = text.split()[0]
    if not token.isascii() or not token.isprintable() or len(token) > 250:
        notes.append("the Message-ID is not printable ASCII; it was left out")
        return None
    return token


def _text_codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset name, if it is a text encoding we know."""
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    if not name or name in _UNKNOWN_CHARSETS:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # bytes-to-bytes and str-to-str codecs (base64_codec, rot13) are not text encodings.
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_payload(payload: bytes, charset: str | None, notes: list[str]) -> str:
    """The text of a decoded part body: declared charset, else UTF-8, else Windows-1252."""
    codec = _text_codec(charset)
    if charset and codec is None:
        notes.append(f"unknown charset {charset.strip()[:40]!r}; read as UTF-8")
    if codec in (None, "ascii"):
        # "us-ascii" (the MIME default) is often a label on 8-bit text.
        codec = "utf-8"
    try:
        return payload.decode(codec)
    except (UnicodeDecodeError, LookupError):
        pass  # the label is wrong; try the usual suspects below
    except Exception:  # noqa: BLE001 - a codec that fails in its own way (utf-7 on odd input)
        pass  # the same: fall back to what senders usually mean
    if codec != "utf-8":
        try:
            text = payload.decode("utf-8")
            notes.append(f"the text is not {charset}; read as UTF-8")
            return text
        except UnicodeDecodeError:
            pass  # not UTF-8 either: Windows-1252 reads any byte
    notes.append("the text is not valid in its charset; read as Windows-1252")
    return payload.decode("cp1252", "replace")


def _is_attachment(part: Message) -> bool:
    return str(part.get("Content-Disposition") or "").strip().lower().startswith("attachment")


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return str(value) if value is not None else None


class _Walk:
    """Finds the readable part; counts parts so a mail of thousands of parts costs little."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.seen = 0
        self.too_deep = False

    def best(self, part: Message, depth: int) -> tuple[str, str] | None:
        """("plain"|"html", text) of the best part at or under `part`, or None."""
        self.seen += 1
        if self.seen > MAX_PARTS:
            return None
        if depth > MAX_DEPTH:
            self.too_deep = True
            return None
        ctype = _content_type(part)
        if _is_attachment(part):
            return None
        if ctype.startswith("multipart/"):
            children = part.get_payload() if part.is_multipart() else None
            if not isinstance(children, list):
                self.notes.append(f"a {ctype} part has no parts (no boundary?); it was skipped")
                return None
            found = []
            for child in children:
                if not isinstance(child, Message):
                    continue
                result = self.best(child, depth + 1)
                if result is None:
                    continue
                if ctype != "multipart/alternative" or result[0] == "plain":
                    return result
                found.append(result)
            return found[0] if found else None
        if ctype == "text/plain":
            return "plain", self.text(part)
        if ctype == "text/html":
            return "html", html_to_text(self.text(part))
        return None

    def text(self, part: Message) -> str:
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:  # noqa: BLE001 - a transfer encoding the email package rejects
            self.notes.append(f"a text part could not be decoded ({type(exc).__name__})")
            return ""
        if payload is None:
            return ""
        if isinstance(payload, str):  # only for odd structures; keep whatever bytes it stands for
            payload = payload.encode("utf-8", "surrogateescape")
        text = decode_payload(bytes(payload), _param(part, "charset"), self.notes)
        if (_param(part, "format") or "").lower() == "flowed":
            text = unflow(text, delsp=(_param(part, "delsp") or "").lower() == "yes")
        return text


def _mentions_gateway(message: Message, notes: list[str]) -> bool:
    references = _header(message, "In-Reply-To", notes) + " " + _header(message, "References", notes)
    return GATEWAY_ID_MARK in references


def parse_mail(data: bytes) -> ParsedMail:
    """What an SMS needs from the mail `data` (the DATA of an SMTP transaction)."""
    notes: list[str] = []
    if not data.strip():
        raise UnreadableMail("the mail is empty; send a mail with a subject or a text body")
    try:
        message = email.message_from_bytes(data, policy=_POLICY)
    except Exception as exc:  # noqa: BLE001 - the feed parser is lenient; this is for the unforeseen
        raise UnreadableMail(f"the mail cannot be read as RFC 5322/MIME ({type(exc).__name__}); "
                             "send it as a plain text mail") from None
    subject = clean_subject(_header(message, "Subject", notes))
    walk = _Walk(notes)
    try:
        found = walk.best(message, 0)
    except RecursionError:
        found = None
        walk.too_deep = True
    if walk.too_deep:
        notes.append(f"parts nested deeper than {MAX_DEPTH} levels were not read")
    if walk.seen > MAX_PARTS:
        notes.append(f"only the first {MAX_PARTS} MIME parts were looked at")
    kind, body = found if found is not None else ("none", "")
    reply = _mentions_gateway(message, notes) or bool(_REPLY_SUBJECT.match(subject))
    return ParsedMail(
        subject=subject,
        body=clean_body(body),
        sender=_address(message, notes),
        message_id=_message_id(message, notes),
        reply_to_gateway=reply,
        body_kind=kind,
        from_gateway=message.get(GATEWAY_HEADER) is not None,
        priority=_priority(message, notes),
        notes=tuple(notes),
    )


def message_text(mail: ParsedMail, mode: str, max_parts: int, national_languages: Sequence[str] = ()) -> str:
    """The SMS text of `mail` for `smtp.text` = `mode`, cut to `max_parts` parts (counted with
    `national_languages`, as the encoder will send it); UnreadableMail
    when there is nothing to send. A reply to a gsmgw mail sends its body only: its subject is
    "Re: SMS from …", which the person on the phone does not need."""
    if mail.reply_to_gateway:
        if not mail.body:
            raise UnreadableMail("the reply has no text of its own (only quoted lines or a signature); "
                                 "write the answer above the quoted message")
        return fit_parts(mail.body, max_parts, national_languages)
    text = sms_text(mail.subject, mail.body, mode)
    if not text:
        if mail.body_kind == "none":
            raise UnreadableMail("the mail has no text: the subject is empty and there is no text/plain or "
                                 "text/html part that is not an attachment; write the message in the subject "
                                 "or in the body")
        raise UnreadableMail("the mail has no text besides a signature or quoted lines, and the subject is "
                             "empty; write the message in the body above the signature, or in the subject")
    return fit_parts(text, max_parts, national_languages)
