"""Spool message files (docs/spool.md): read outgoing files, write sent/failed/incoming/report files.

Pure: bytes in, bytes or values out. No I/O and no clock: `now` and `created` come in as
arguments, so a test (or a daemon restarted after an outage) decides what time it is.

What it reads. An outgoing file is smstools3's format: header lines `Name: value`, one blank
line, then the body. Header names are case-insensitive; unknown headers are kept and ignored.
One trailing newline (`\\n` or `\\r\\n`) of the body is not part of the text. Anything else that
cannot be sent as the user meant it raises `SpoolFormatError(reason)`, and the reason says what
to change in the file; the daemon moves such a file to `failed/` with that reason.

Choices where smstools3 leaves room (documented in docs/spool.md):
  - A file written with CRLF header lines is a Windows text file: CRLF in its text becomes LF.
  - A body that is not valid UTF-8 in a file without `Alphabet:` is read as ISO-8859-15, the
    default of smstools3, which such a file was written for. With `Alphabet: UTF-8` it fails.
  - `Expires:`/`Send_after:` may be a duration ("30 min"); it counts from `created` (the file's
    modification time, which a claim by rename keeps), so a restart does not extend it.
  - `Text:` gives the text when the body is empty (some scripts write it so).
  - `Autosplit: 0` (smstools3: do not split) means `Max_parts: 1`: a longer text fails instead of
    being cut.
  - Binary messages as smstools3 reads them: `Alphabet: binary` (or `Binary: yes`) makes the body
    8-bit data, taken byte for byte to the end of the file (no final newline is stripped: it is
    data). `Hex: yes` makes the body hex in smstools3's syntax (`read_hex_body`), for binary data
    and for text alike. `UDH: yes` (the default for binary data without `UDH-DATA:`, as in
    smstools3) means the data starts with its user data header, UDHL first; `UDH: no` means it
    does not. `UDH-DATA: 06 05 04 0B 84 23 F0` gives the header as hex, for binary data or a text;
    the body is then data (or text) only. `Class: 0..3` sets the message class. A long binary
    message is split with the concatenation IE merged into the sender's header; a header that
    claims concatenation itself, or whose length octet disagrees with its content, is refused.
  - `Voicecall: yes` fails with a reason: gsmgw sends SMS only.
  - `From:`, `Replace:`, `Include:`, `Macro:`, `System_message:` and any other header are kept and
    ignored (a GSM modem cannot choose its sender).
  - As in smstools3: `To: s12345` is a short code and `To_TOA: Unknown`/`National` sends the numbers
    as written (digits only, TOA "unknown"); `Alphabet:` is recognised by its first three letters
    ("ISO-8859-15", "UCS-2", "Ansi", "Chinese"), except that ISO-8859-1/Latin1 mean Latin-1.

Trusted headers. Some headers say which network client a message belongs to and where its
reports go (`TRUSTED_HEADERS`: `Client:`, `Callback:`...). Anyone who may drop a file into
outgoing/ could write them, so they count only in files the daemon wrote through its doors:
`seal(data, key)` adds a `Seal:` header, an HMAC-SHA256 (with the install's secret key) of the
file's `To:`, its trusted headers and its body. Every reader gets a view (`read_spool_file`,
`parse_outgoing` with `seal_key=`) in which the trusted headers of a file whose seal does not
verify, or of any file when no key is given, are absent; `ignored` names them, for a log line.
The daemon's later changes (`build_sent`, `build_failed`, `Status:`) touch none of what the seal
covers; one that does (`single_recipient`) is sealed again by the daemon.

What it writes. Header names as docs/spool.md spells them. Values never contain a line break. Builders
that change a file keep its bytes and its line ending; a header that already exists is replaced in
place, never duplicated.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence

from gsmgw.durations import EXAMPLES as DURATION_EXAMPLES
from gsmgw.durations import DurationTooLong, bounded_time, parse_duration
from gsmgw.rules import group_reference
from gsmgw.sms import (
    AddressError,
    Encoding,
    UserDataError,
    check_user_header,
    count_data_parts,
    count_parts,
    normalize_number,
    parse_hex,
    parse_validity,
    status_category,
    status_meaning,
)
from gsmgw.sms import gsm7

# How a file should look, in words that fit on one line (a Fail_reason: is one header line).
EXAMPLE_FILE = "a header line such as 'To: +4915112345678', one empty line, then the text"

# Defaults when neither the file nor the config says otherwise (docs/config.md `defaults`).
DEFAULT_REPORT = True
DEFAULT_MAX_PARTS = 6
PRIORITIES = ("high", "normal", "low")

# The headers that act for a network client: who sent the message (Client:), where its reports
# go (Callback:, Dlr_mask:, Smpp_receipt:, Smpp_source:, and Email_from:, the address mail out
# sends its failures and reports to, with Email_message_id:, the mail they answer) and what sent
# it (Alertmanager:). They count only in sealed files (see the module docstring). A door that
# writes a new header of this kind adds its name here; that is all it takes (docs/DEVELOPING.md
# "Trusted headers").
TRUSTED_HEADERS = ("Client", "Callback", "Dlr_mask", "Smpp_receipt", "Smpp_source", "Alertmanager",
                   "Email_from", "Email_message_id")
SEAL_HEADER = "Seal"
_TRUSTED = frozenset(name.lower() for name in TRUSTED_HEADERS)
_SEALED = _TRUSTED | {"to"}  # what the seal covers, besides the body
_SEAL = SEAL_HEADER.lower()
_SEAL_DOMAIN = b"gsmgw spool seal v1\n"

# Blanks before a name are tolerated: hand-written files indent headers by accident.
_HEADER_LINE = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*:[ \t]*(.*)\Z", re.DOTALL)
_UTF8_BOM = b"\xef\xbb\xbf"

# Alphabet: value (lower case) -> the codec that reads the body file. docs/spool.md `Alphabet:`.
_BODY_ALPHABETS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "iso": "iso8859-15",
    "latin": "iso8859-15",
    # Not smstools3 words, but what people write for the older Latin-1 (no €, ¤ at 0xA4).
    "latin1": "iso8859-1",
    "latin-1": "iso8859-1",
    "iso-8859-1": "iso8859-1",
    "iso8859-1": "iso8859-1",
    "iso-8859-15": "iso8859-15",
    "iso8859-15": "iso8859-15",
    "ucs2": "ucs2",
    "ucs-2": "ucs2",
    "unicode": "ucs2",
    "utf-16be": "ucs2",
    "utf-16": "ucs2",  # with a byte order mark, which the UCS2 reader honours
    "utf16": "ucs2",
    "gsm": "gsm",
}
# smstools3 looks only at the first three letters of Alphabet:, so "ISO-8859-15", "UCS-2",
# "Ansi", "Chinese" all work there; they work here too.
_BODY_ALPHABET_PREFIXES = {
    "iso": "iso8859-15",
    "lat": "iso8859-15",
    "ans": "iso8859-15",
    "ucs": "ucs2",
    "uni": "ucs2",
    "chi": "ucs2",
    "gsm": "gsm",
    "utf": "utf-8",
}

_YES = {"yes", "y", "true", "on", "1"}
_NO = {"no", "n", "false", "off", "0"}

# smstools3 headers asking for something gsmgw does not do: header -> reason.
_UNSUPPORTED = {
    "voicecall": "Voicecall: yes is not supported; gsmgw sends SMS only. Remove the Voicecall: line",
}
# One part carries at most this many parts' worth: TS 23.040 §9.2.3.24.1, the count is one octet.
MAX_PARTS_PER_MESSAGE = 255
# smstools3's hex body (fileformat "Hex"): these start a comment, on a line of its own or after the
# octets of a line.
_HEX_COMMENTS = "/'#:"


class SpoolFormatError(ValueError):
    """A spool file that cannot be sent as written. `reason` tells the user what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Headers:
    """Header lines in file order; lookup by name ignores case. The last occurrence wins."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = name.lower()
        found = default
        for key, value in self._items:
            if key.lower() == wanted:
                found = value
        return found

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(key.lower() == name.lower() for key, _ in self._items)

    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def updated(self, values: Mapping[str, str]) -> Headers:
        """These headers with `values` set: each replaces every line of its name (in the place
        of the first), new names come last."""
        wanted = {name.lower(): (name, value) for name, value in values.items()}
        placed: set[str] = set()
        items: list[tuple[str, str]] = []
        for key, value in self._items:
            lowered = key.lower()
            if lowered not in wanted:
                items.append((key, value))
            elif lowered not in placed:
                items.append((key, wanted[lowered][1]))
                placed.add(lowered)
        items.extend(item for lowered, item in wanted.items() if lowered not in placed)
        return Headers(items)

    def as_dict(self) -> dict[str, str]:
        """Name (as first written) -> last value; for JSON and webhooks."""
        result: dict[str, str] = {}
        canonical: dict[str, str] = {}
        for key, value in self._items:
            name = canonical.setdefault(key.lower(), key)
            result[name] = value
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


@dataclass(frozen=True)
class SpoolFile:
    """Any spool file split into its headers and its raw body bytes.

    `headers` is the view every reader uses: trusted headers only if the file's seal verified.
    `ignored` names the trusted headers the file carried that did not count."""

    headers: Headers
    body: bytes
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Block:
    """Where the header block of a file is: lines, the end of the block, the body start."""

    headers: list[tuple[str, str]]
    lines: list[bytes]  # each header line as written, without its line ending
    start: int  # after a UTF-8 byte order mark, if any
    body_start: int
    eol: bytes


@dataclass(frozen=True)
class SendDefaults:
    """What a file gets when it does not say. `gsmgw.config.Defaults` has the same fields."""

    report: bool = DEFAULT_REPORT
    validity: int | None = None
    max_parts: int = DEFAULT_MAX_PARTS


@dataclass(frozen=True)
class OutgoingMessage:
    """An outgoing file, understood and checked. See docs/spool.md "Outgoing file"."""

    recipients: tuple[str, ...]
    text: str
    report: bool
    flash: bool
    validity: int | None
    priority: str
    modem: str | None
    send_after: datetime | None
    expires: datetime | None
    max_parts: int
    parts: int
    alphabet: str
    smsc: str | None
    headers: Headers  # the view: trusted headers only if the seal verified (see SpoolFile)
    body_alphabet: str
    encoding: Encoding | None = None  # how the text goes out: alphabet and national tables (count_parts)
    data: bytes | None = None  # 8-bit data instead of text (`Alphabet: binary`); `text` is then ""
    udh: bytes | None = None  # the sender's user data header, UDHL first (UDH-DATA: or UDH: yes), checked
    message_class: int | None = None  # `Class: 0..3` (TS 23.038 §4); `Flash: yes` is class 0
    ignored: tuple[str, ...] = ()  # trusted headers of the file that did not count

    @property
    def binary(self) -> bool:
        return self.data is not None

    @property
    def national(self) -> dict[str, str | None] | None:
        """The national tables the text will use ({"locking": "hi", "single": "hi"}), None if none."""
        return self.encoding.national if self.encoding is not None else None


def _decode_header_text(raw: bytes) -> str:
    # Headers are ASCII in practice; a latin-1 byte (an old smstools3 From: name) must not
    # make the whole file unreadable.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _excerpt(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _scan_block(data: bytes) -> _Block:
    """Find the header block: header lines up to the first blank line."""
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    if not data[start:].strip():
        raise SpoolFormatError(f"the file is empty; write {EXAMPLE_FILE}")
    headers: list[tuple[str, str]] = []
    lines: list[bytes] = []
    eol = b"\n"
    position = start
    line_number = 0
    while True:
        newline = data.find(b"\n", position)
        last_line = newline < 0
        if last_line:
            newline = len(data)
        line_number += 1
        raw = data[position:newline]
        if line_number == 1 and raw.endswith(b"\r"):
            eol = b"\r\n"
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if last_line and (not raw.strip() or _HEADER_LINE.match(_decode_header_text(raw))):
            raise SpoolFormatError(
                "no blank line after the headers; put one empty line between the headers (e.g. "
                "'To: +4915112345678') and the text"
            )
        if not raw.strip():
            if line_number == 1:
                raise SpoolFormatError(
                    f"the file starts with a blank line, so it has no headers; write {EXAMPLE_FILE}"
                )
            return _Block(headers, lines, start, newline + 1, eol)
        text = _decode_header_text(raw)
        match = _HEADER_LINE.match(text)
        if match is None:
            if line_number == 1:
                raise SpoolFormatError(
                    f"line 1 ({_excerpt(text)!r}) is not a header 'Name: value'; start the file "
                    f"with headers such as 'To: +4915112345678', then a blank line, then the text"
                )
            raise SpoolFormatError(
                f"line {line_number} ({_excerpt(text)!r}) is not a header and no blank line comes "
                "before it; put one empty line between the headers and the text"
            )
        headers.append((match.group(1), match.group(2).strip()))
        lines.append(raw)
        position = newline + 1


def read_spool_file(data: bytes, *, seal_key: bytes | None = None) -> SpoolFile:
    """Headers and raw body of any spool file (outgoing, sent, failed, incoming, report).

    The trusted headers are in `headers` only when `seal_key` is given and the seal verifies."""
    block = _scan_block(data)
    body = data[block.body_start:]
    headers, ignored = _verified(block.headers, body, seal_key)
    return SpoolFile(headers, body, ignored)


# --- the seal on files the daemon's doors write ----------------------------------------------


def _seal_value(headers: Sequence[tuple[str, str]], body: bytes, key: bytes) -> str:
    """HMAC-SHA256 of To:, the trusted headers (in file order, names in lower case) and the body.
    Header values hold no line break, so "name:value\n" lines and then "\n" are unambiguous."""
    covered = "".join(f"{name.lower()}:{value}\n" for name, value in headers if name.lower() in _SEALED)
    message = _SEAL_DOMAIN + covered.encode("utf-8", "surrogatepass") + b"\n" + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _verified(
    headers: list[tuple[str, str]], body: bytes, key: bytes | None
) -> tuple[Headers, tuple[str, ...]]:
    """The view of a file's headers: without `Seal:`, and without the trusted headers unless
    the seal verifies with `key`. Also the names of the trusted headers left out."""
    trusted = [name for name, _ in headers if name.lower() in _TRUSTED]
    seals = [value for name, value in headers if name.lower() == _SEAL]
    if not trusted:
        return (Headers(item for item in headers if item[0].lower() != _SEAL) if seals else Headers(headers)), ()
    if key is not None and seals and hmac.compare_digest(seals[-1].encode("ascii", "replace"),
                                                          _seal_value(headers, body, key).encode("ascii")):
        return Headers(item for item in headers if item[0].lower() != _SEAL), ()
    kept = Headers(item for item in headers if item[0].lower() not in _TRUSTED and item[0].lower() != _SEAL)
    return kept, tuple(dict.fromkeys(trusted))


def seal(data: bytes, key: bytes) -> bytes:
    """`data` with a `Seal:` header that makes its trusted headers count (any old seal replaced).

    Only the daemon calls it, through `Spool.submit*` (its doors) and when it rewrites a sealed
    file's `To:`; the key is the install's secret (`gsmgw.spool.store.load_seal_key`)."""
    block = _scan_block(data)
    value = _seal_value(block.headers, data[block.body_start:], key)
    if any(name.lower() == _SEAL for name, _ in block.headers):
        return update_headers(data, {SEAL_HEADER: value})
    # The usual case, a file just rendered by make_outgoing: one scan, the line goes last.
    end = block.body_start - len(block.eol)
    return data[:end] + f"{SEAL_HEADER}: {value}".encode("ascii") + block.eol + data[end:]


def message_text(data: bytes) -> str:
    """The text of an outgoing, checked, sent or failed file, read as the daemon reads its body
    (Alphabet:, Text:). A body the daemon refused is shown as UTF-8 with replacement characters,
    so a failed file still has a readable text."""
    try:
        block = _scan_block(data)
        headers = Headers(block.headers)
        text, _ = _decode_body(data[block.body_start:], headers.get("Alphabet"), block.eol == b"\r\n")
        return text or headers.get("Text") or ""
    except (SpoolFormatError, ValueError):
        try:
            return _strip_final_newline(read_spool_file(data).body).decode("utf-8", "replace")
        except SpoolFormatError:
            return data.decode("utf-8", "replace")


# --- reading an outgoing file -----------------------------------------------------------------


def _yes_no(headers: Headers, name: str, default: bool) -> bool:
    value = headers.get(name)
    if value is None or value == "":
        return default
    word = value.strip().lower()
    if word in _YES:
        return True
    if word in _NO:
        return False
    raise SpoolFormatError(f"{name}: {value!r} is neither yes nor no; write '{name}: yes' or '{name}: no'")


def _strip_final_newline(body: bytes) -> bytes:
    if body.endswith(b"\r\n"):
        return body[:-2]
    if body.endswith(b"\n"):
        return body[:-1]
    return body


def _decode_body(
    body: bytes, alphabet_header: str | None, crlf_file: bool, *, from_hex: bool = False
) -> tuple[str, str]:
    """The text of the body and the name of the body alphabet used. A body that `Hex: yes` gave
    is exactly its octets: no final newline to strip, no CRLF of a Windows file."""
    name = (alphabet_header or "UTF-8").strip()
    codec = _BODY_ALPHABETS.get(name.lower()) or _BODY_ALPHABET_PREFIXES.get(name[:3].lower())
    if codec is None:
        raise SpoolFormatError(
            f"unknown Alphabet: {name!r}; write UTF-8 (the default), ISO (or Latin: ISO-8859-15), UCS2 "
            "(or Unicode: UTF-16BE), GSM, or binary for 8-bit data"
        )
    if codec == "ucs2":
        return _decode_ucs2(body, from_hex=from_hex), "UCS2"
    if not from_hex:
        body = _strip_final_newline(body)
    if codec == "utf-8" and alphabet_header is None:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            # No Alphabet: line and not UTF-8: a file written for smstools3, whose files default
            # to ISO-8859-15. Reading it so sends what its author meant; UTF-8 stays the default
            # because ISO text with accents is practically never valid UTF-8.
            codec = "iso8859-15"
            text = body.decode(codec)
    elif codec == "utf-8":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpoolFormatError(
                f"the text is not valid UTF-8 (byte 0x{body[exc.start]:02X} at offset {exc.start} of the "
                "body); save the file as UTF-8, or add 'Alphabet: ISO' for an ISO-8859-15 (Latin) file"
            ) from None
    elif codec == "gsm":
        text = _decode_gsm_body(body)
    elif codec != "utf-8":
        text = body.decode(codec)
    if crlf_file and not from_hex:
        text = text.replace("\r\n", "\n")
    return text, {"utf-8": "UTF-8", "iso8859-15": "ISO", "iso8859-1": "ISO-8859-1", "gsm": "GSM"}[codec]


def _decode_ucs2(body: bytes, *, from_hex: bool = False) -> str:
    """A UCS2 (UTF-16BE, as smstools3 writes it) body.

    `echo >>` may leave one newline byte after the last code unit: an odd length that ends in
    0x0A. A newline written as UTF-16 (00 0A) is stripped like any final newline. Octets from
    `Hex: yes` are taken as they are.
    """
    if len(body) % 2 == 1 and body.endswith(b"\n") and not from_hex:
        body = body[:-1]
    if len(body) % 2 == 1:
        raise SpoolFormatError(
            f"the UCS2 text has an odd number of bytes ({len(body)}); UCS2 is two bytes per "
            "character (UTF-16 big-endian). Re-encode it (iconv -t UTF-16BE) or write UTF-8"
        )
    codec = "utf-16-be"
    if body.startswith(b"\xff\xfe"):
        codec, body = "utf-16-le", body[2:]
    elif body.startswith(b"\xfe\xff"):
        body = body[2:]
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise SpoolFormatError(
            f"the UCS2 text is not valid UTF-16 (at byte {exc.start}: a broken surrogate pair); "
            "re-encode it (iconv -t UTF-16BE) or write UTF-8"
        ) from None
    if from_hex:
        return text
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def _decode_gsm_body(body: bytes) -> str:
    """A body in the GSM 03.38 default alphabet, one septet per byte (TS 23.038 §6.2.1)."""
    for offset, byte in enumerate(body):
        if byte > 0x7F:
            raise SpoolFormatError(
                f"Alphabet: GSM, but byte 0x{byte:02X} at offset {offset} of the body is not a GSM "
                "7-bit code (0x00-0x7F); write the text in UTF-8 and remove the Alphabet: line"
            )
    return gsm7.decode_septets(body)


_SEPARATORS = re.compile(r"[\s\-./()]")
_SHORT_CODE = re.compile(r"[sS](\d{1,20})\Z")


def _as_dialled(text: str, why: str) -> str:
    """A number sent exactly as written, with TOA "unknown" (TS 23.040 §9.1.2.5): short codes, and
    numbers smstools3 users mark with `To_TOA: Unknown` or `National`."""
    digits = _SEPARATORS.sub("", text)
    if not (digits.isdigit() and digits.isascii() and len(digits) <= 20):
        raise SpoolFormatError(f"To: {text!r} ({why}) must be 1 to 20 digits")
    return digits


def _recipients(
    values: list[str],
    default_country: str | None,
    groups: Mapping[str, Sequence[str]] | None,
    to_toa: str | None = None,
) -> tuple[str, ...]:
    dialled = None
    if to_toa is not None and to_toa.strip():
        kind = to_toa.strip().lower()
        if kind.startswith(("unk", "nat")):
            dialled = f"To_TOA: {to_toa.strip()}"
        elif not kind.startswith("int"):
            raise SpoolFormatError(f"To_TOA: {to_toa!r} is not Unknown, National or International; write one of these")
    found: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            group = group_reference(item)
            short = _SHORT_CODE.match(_SEPARATORS.sub("", item))
            if short and group is None:
                # smstools3: "s" before a number marks a short code, sent as dialled.
                found.append(short.group(1))
            elif dialled and group is None:
                found.append(_as_dialled(item, dialled))
            elif group is not None:
                members = (groups or {}).get(group)
                if members is None:
                    known = ", ".join(sorted(groups or {})) or "none are configured"
                    raise SpoolFormatError(
                        f"To: group {group!r} is not in the config's groups ({known}); add it under "
                        "groups: or write the numbers"
                    )
                for member in members:
                    found.append(_number(member, default_country, "group " + group))
            else:
                found.append(_number(item, default_country, "To"))
    if not found:
        raise SpoolFormatError(
            f"no recipient: the To: header is empty; write 'To: +4915112345678' (several: separated by commas)"
        )
    return tuple(dict.fromkeys(found))  # one message per recipient, even if listed twice


def _number(text: str, default_country: str | None, where: str) -> str:
    try:
        return normalize_number(text, default_country)
    except AddressError as exc:
        raise SpoolFormatError(f"{where}: {exc}") from None


def _time(
    headers: Headers, name: str, now: datetime, created: datetime | None, *, durations: bool
) -> datetime | None:
    value = headers.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        moment = None
    if moment is not None:
        # A time without an offset is local time, which is the zone `now` was given in.
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)
        try:
            return bounded_time(moment, now, f"{name}:")
        except DurationTooLong as exc:
            raise SpoolFormatError(str(exc)) from None
    if durations:
        try:
            seconds = parse_duration(value)
        except DurationTooLong as exc:
            raise SpoolFormatError(f"{name}: {exc}") from None
        except ValueError:
            pass  # the error below names both accepted forms
        else:
            return _origin(created, now) + timedelta(seconds=seconds)
    raise SpoolFormatError(
        f"{name}: cannot read {value!r}; write an ISO-8601 time like 2026-11-24T10:15:00+01:00"
        + (f" or a duration like {DURATION_EXAMPLES}" if durations else "")
    )


def _origin(created: datetime | None, now: datetime) -> datetime:
    """Where a relative time counts from: the file's mtime, unless a wrong clock or `touch -d`
    put it out of bounds (then now: a message is never stuck on a nonsensical mtime)."""
    if created is None:
        return now
    try:
        return bounded_time(created, now, "the file's time")
    except DurationTooLong:
        return now


def _max_parts(headers: Headers, default: int) -> int:
    value = headers.get("Max_parts")
    autosplit = headers.get("Autosplit")
    if value is None or not value.strip():
        if autosplit is not None and autosplit.strip() == "0":
            return 1  # smstools3's "do not split": fail a long text rather than cut it
        return default
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 255:
        raise SpoolFormatError(f"Max_parts: {value!r} is not a number from 1 to 255")
    return number


def _check_unsupported(headers: Headers) -> None:
    for name, reason in _UNSUPPORTED.items():
        value = headers.get(name)
        if value is not None and value.strip().lower() in _YES:
            raise SpoolFormatError(reason)


def _is_binary_alphabet(value: str | None) -> bool:
    # smstools3 reads only the first three letters ("bin"); "8bit" is what gsmgw's own incoming/
    # files said before they said "binary", so such a file sent on again is understood.
    word = (value or "").strip().lower()
    return word.startswith("bin") or word in ("8bit", "8-bit")


def _binary(headers: Headers) -> bool:
    """`Alphabet: binary` or `Binary: yes` (smstools3: Binary: is a yes/no form of the same)."""
    alphabet = headers.get("Alphabet")
    by_alphabet = _is_binary_alphabet(alphabet)
    by_header = _yes_no(headers, "Binary", by_alphabet)
    if by_alphabet and not by_header:
        raise SpoolFormatError(
            f"Alphabet: {(alphabet or '').strip()} says binary data but Binary: no says text; remove one of the two lines"
        )
    if by_header and not by_alphabet and alphabet is not None and alphabet.strip():
        raise SpoolFormatError(
            f"Binary: yes says 8-bit data but Alphabet: {alphabet.strip()} names a text alphabet; "
            "remove the Alphabet: line (or write Alphabet: binary)"
        )
    return by_header


def read_hex_body(body: bytes) -> bytes:
    """The octets of a `Hex: yes` body, read as smstools3 reads it (fileformat, "Hex").

    Per line: blanks before it are ignored; a line starting with `STRING:` gives the rest of the
    line as it is written, `INLINESTRING:` the same between 0x03 and a final 0x00 (a WBXML inline
    string); `LENGTH` on a line of its own reserves one octet, and the next `LENGTH` fills it with
    the number of octets between the two. Otherwise the line is hex octets ("06 05 04" or
    "060504"), ending at the first `/`, `'`, `#` or `:`, which starts a comment. SpoolFormatError
    names the line and what to write for anything else.
    """
    out = bytearray()
    length_at: int | None = None
    for number, raw in enumerate(body.split(b"\n"), start=1):
        line = raw.rstrip(b"\r").lstrip(b" \t")
        if line.startswith(b"INLINESTRING:"):
            out += b"\x03" + line[len(b"INLINESTRING:"):] + b"\x00"
            continue
        if line.startswith(b"STRING:"):
            out += line[len(b"STRING:"):]
            continue
        if line.startswith(b"LENGTH"):
            if length_at is None:
                length_at = len(out)
                out.append(0)
            else:
                counted = len(out) - length_at - 1
                if counted > 255:
                    raise SpoolFormatError(
                        f"Hex: yes, line {number}: LENGTH counts {counted} octets, more than one octet holds (255); "
                        "put the two LENGTH lines closer together"
                    )
                out[length_at] = counted
                length_at = None
            continue
        text = line.decode("latin-1")
        cut = min((text.index(char) for char in _HEX_COMMENTS if char in text), default=len(text))
        digits = "".join(text[:cut].split())
        if not digits:
            continue
        try:
            out += parse_hex(digits, what=f"line {number} of the hex body")
        except UserDataError as error:
            raise SpoolFormatError(
                f"Hex: yes, but {error}; comments start with /, ', # or :, and text is written as STRING:text"
            ) from None
    if length_at is not None:
        raise SpoolFormatError(
            "Hex: yes, but the body has a LENGTH without the second LENGTH that closes it; add it after "
            "the octets it counts"
        )
    return bytes(out)


def _message_class(headers: Headers, flash: bool) -> int | None:
    value = headers.get("Class")
    if value is None or not value.strip():
        return 0 if flash else None
    text = value.strip()
    if text not in ("0", "1", "2", "3"):
        raise SpoolFormatError(
            f"Class: {text!r} is not a message class; write 0 (flash), 1 (phone), 2 (SIM) or 3 (terminal equipment)"
        )
    if flash and text != "0":
        raise SpoolFormatError(f"Flash: yes is class 0, but Class: {text}; keep one of the two lines")
    return int(text)


def _user_header(headers: Headers, binary: bool, data: bytes | None) -> tuple[bytes | None, bytes | None]:
    """(the sender's UDH or None, the data without it) from `UDH-DATA:` / `UDH:` as smstools3 reads
    them: UDH-DATA gives the header and the body is data only; else binary data starts with its
    header unless `UDH: no`. The header is checked (length octet, no concatenation)."""
    udh_data = headers.get("UDH-DATA")
    if udh_data is not None and udh_data.strip():
        try:
            udh = parse_hex(udh_data, what="UDH-DATA:")
        except UserDataError as error:
            raise SpoolFormatError(f"{error}") from None
        where = "UDH-DATA"
    else:
        starts_with_udh = _yes_no(headers, "UDH", binary)
        if not starts_with_udh:
            return None, data
        if not binary:
            raise SpoolFormatError(
                "UDH: yes says the body starts with a user data header, which only binary data can do; "
                "for a text give the header as hex in UDH-DATA: (e.g. UDH-DATA: 06 05 04 0B 84 23 F0)"
            )
        assert data is not None
        if not data:
            raise SpoolFormatError(
                "the binary message has no data; write the data after the blank line (with Hex: yes as hex)"
            )
        udhl = data[0]
        if 1 + udhl > len(data):
            raise SpoolFormatError(
                f"UDH: yes (the default for binary data, as in smstools3) says the data starts with its user "
                f"data header, but its length octet {udhl:02X} asks for {udhl} octets and only {len(data) - 1} "
                f"follow; write 'UDH: no' if the data has no header, or correct the length octet"
            )
        udh, data = data[: 1 + udhl], data[1 + udhl :]
        where = "the user data header at the start of the data (UDH: yes)"
    try:
        check_user_header(udh)
    except UserDataError as error:
        raise SpoolFormatError(f"{where}: {error}") from None
    return udh, data


def priority_of_level(level: int) -> str | None:
    """The priority of a 0..3 level, as SMPP's `priority_flag` and Kannel's `priority` give it:
    2 and 3 (urgent and emergency in the flag's GSM and ANSI-41 readings) are "high"; 0 and 1
    leave the default (None)."""
    return "high" if level >= 2 else None


def _priority(headers: Headers) -> str:
    """The file's `Priority:` as written, lower case; "normal" when it has none."""
    return (headers.get("Priority") or "normal").strip().lower() or "normal"


# Enough of a file to hold its headers: `declared_priority` reads no further.
HEAD_BYTES = 4096


def declared_priority(head: bytes) -> str:
    """The priority the first bytes of an outgoing file declare ("high", "normal" or "low"),
    without checking the rest: what the daemon needs to claim an urgent file before others.

    A head without a complete header block, or with a value that is not a priority, is "normal"
    here; `parse_outgoing` judges the whole file when it is claimed."""
    if b"priority" not in head.lower():
        return "normal"  # the usual case, without parsing
    try:
        block = _scan_block(head)
    except SpoolFormatError:
        return "normal"
    priority = _priority(Headers(block.headers))
    return priority if priority in PRIORITIES else "normal"


def parse_outgoing(
    data: bytes,
    *,
    now: datetime,
    default_country: str | None = None,
    defaults: object | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    created: datetime | None = None,
    seal_key: bytes | None = None,
) -> OutgoingMessage:
    """Read and check an outgoing file. SpoolFormatError(reason) if it cannot be sent as written.

    `now` must be timezone-aware: times without an offset are read in its zone. `defaults` is
    anything with `report`, `validity` (TP-VP or None), `max_parts` and `national_languages`
    (e.g. config.defaults).
    `groups` maps group names to numbers for `To: group:NAME`. The result's `headers` hold the
    trusted headers only if the file's seal verifies with `seal_key` (see `read_spool_file`).
    """
    block = _scan_block(data)
    headers, ignored = _verified(block.headers, data[block.body_start:], seal_key)
    defaults = defaults if defaults is not None else SendDefaults()
    _check_unsupported(headers)

    to_values = headers.get_all("To")
    if not to_values:
        raise SpoolFormatError("no To: header; add a line 'To: +4915112345678' before the blank line")
    recipients = _recipients(to_values, default_country, groups, headers.get("To_TOA"))

    body = data[block.body_start:]
    binary = _binary(headers)
    from_hex = _yes_no(headers, "Hex", False)
    if from_hex:
        body = read_hex_body(body)
    payload: bytes | None = None
    if binary:
        # smstools3 takes binary data to the end of the file as it is: a final newline is data.
        payload, text, body_alphabet = body, "", "binary"
        if headers.get("Text"):
            raise SpoolFormatError("the file has a Text: header but its body is binary data; remove the Text: line")
    else:
        text, body_alphabet = _decode_body(body, headers.get("Alphabet"), block.eol == b"\r\n", from_hex=from_hex)
        header_text = headers.get("Text")
        if header_text:
            if text:
                raise SpoolFormatError(
                    "the file has both a Text: header and a body; keep one of them (the body is preferred)"
                )
            text = header_text
    udh, payload = _user_header(headers, binary, payload)
    if binary and not payload and not udh:
        raise SpoolFormatError("the binary message has no data; write the data after the blank line (with Hex: yes as hex)")

    validity_value = headers.get("Validity")
    validity: int | None
    if validity_value is not None and validity_value.strip():
        try:
            validity = parse_validity(validity_value.strip())
        except ValueError as exc:
            raise SpoolFormatError(f"Validity: {exc}") from None
    else:
        validity = getattr(defaults, "validity", None)

    priority = _priority(headers)
    if priority not in PRIORITIES:
        raise SpoolFormatError(
            f"Priority: {headers.get('Priority')!r} is not high, normal or low; write one of these"
        )

    modem = (headers.get("Modem") or "").strip() or None
    queue = (headers.get("Queue") or "").strip() or None
    if modem and queue and modem != queue:
        raise SpoolFormatError(
            f"Modem: {modem!r} and Queue: {queue!r} name different modems; keep one of the two lines"
        )
    modem = modem or queue

    smsc_value = headers.get("SMSC")
    smsc = _number(smsc_value, default_country, "SMSC") if smsc_value and smsc_value.strip() else None

    max_parts = _max_parts(headers, int(getattr(defaults, "max_parts", DEFAULT_MAX_PARTS)))
    try:
        if payload is not None:
            count = count_data_parts(payload, udh=udh)
        else:
            count = count_parts(text, national_languages=getattr(defaults, "national_languages", ()), udh=udh)
    except UserDataError as error:  # "no_room": a header that leaves no room for the data
        raise SpoolFormatError(str(error)) from None
    what = "data" if payload is not None else "text"
    if count.parts > MAX_PARTS_PER_MESSAGE:
        raise SpoolFormatError(
            f"the {what} needs {count.parts} SMS parts ({count.units} {_units(count.alphabet)}), but one message "
            f"has at most {MAX_PARTS_PER_MESSAGE} (the part count is one octet); send it as several files"
        )
    if count.parts > max_parts:
        raise SpoolFormatError(
            f"the {what} needs {count.parts} SMS parts ({count.units} {_units(count.alphabet)}) but at most "
            f"{max_parts} are allowed (Max_parts); shorten the {what} or raise Max_parts"
        )
    flash = _yes_no(headers, "Flash", False)
    return OutgoingMessage(
        recipients=recipients,
        text=text,
        report=_yes_no(headers, "Report", bool(getattr(defaults, "report", DEFAULT_REPORT))),
        flash=flash,
        validity=validity,
        priority=priority,
        modem=modem,
        send_after=_time(headers, "Send_after", now, created, durations=True),
        expires=_time(headers, "Expires", now, created, durations=True),
        max_parts=max_parts,
        parts=count.parts,
        alphabet=count.alphabet,
        encoding=count.encoding,
        smsc=smsc,
        headers=headers,
        body_alphabet=body_alphabet,
        data=payload,
        udh=udh,
        message_class=_message_class(headers, flash),
        ignored=ignored,
    )


def _units(alphabet: str) -> str:
    return {"gsm7": "characters in GSM-7", "ucs2": "UCS-2 characters"}.get(alphabet, "octets")


# --- writing files ----------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """ISO-8601 with seconds and the offset, as every time in a spool file is written."""
    return moment.isoformat(timespec="seconds")


def _clean_value(value: object) -> str:
    # A header value is one line; a line break in a value from the network (a sender name, a
    # fail reason with a modem's multi-line reply) would start a forged header.
    return " ".join(str(value).split())


def _render(name: str, value: object, eol: bytes = b"\n") -> bytes:
    return f"{name}: {_clean_value(value)}".encode("utf-8") + eol


def update_headers(data: bytes, updates: Mapping[str, object | None]) -> bytes:
    """`data` with headers set: replaced where they are (every occurrence), else appended to the
    header block in the order given; a value of None removes the header. Body bytes unchanged."""
    block = _scan_block(data)
    wanted = {name.lower(): (name, value) for name, value in updates.items()}
    done: set[str] = set()
    out: list[bytes] = [data[: block.start]]
    for (name, _), raw in zip(block.headers, block.lines):
        key = name.lower()
        if key not in wanted:
            out.append(raw + block.eol)
            continue
        if key in done:
            continue  # a duplicate of a header just set: one line per header
        done.add(key)
        new_name, value = wanted[key]
        if value is not None:
            out.append(_render(new_name, value, block.eol))
    for key, (name, value) in wanted.items():
        if key not in done and value is not None:
            out.append(_render(name, value, block.eol))
    out.append(block.eol)
    out.append(data[block.body_start:])
    return b"".join(out)


def single_recipient(data: bytes, number: str) -> bytes:
    """The file for one recipient of a multi-recipient file: `To:` holds just that number."""
    return update_headers(data, {"To": number})


def recipient_name(name: str, n: int) -> str:
    """Name in sent/ or failed/ of recipient `n` (from 1) of a file with several recipients."""
    return f"{name}.{n}"


def build_sent(
    original: bytes,
    *,
    modem: str,
    imsi: str | None,
    sent: datetime,
    parts: int,
    message_ids: Sequence[int],
) -> bytes:
    """The file for sent/: the original plus Modem, IMSI, Sent, Parts, Message_id (docs/spool.md)."""
    return update_headers(
        original,
        {
            "Modem": modem,
            "IMSI": imsi if imsi else None,
            "Sent": iso(sent),
            "Parts": parts,
            "Message_id": ",".join(str(mr) for mr in message_ids),
        },
    )


def build_failed(original: bytes, *, failed: datetime, reason: str, attempts: int) -> bytes:
    """The file for failed/: the original content kept, plus Failed, Fail_reason, Attempts.

    A file whose headers cannot be read (empty, no blank line) gets our headers and a blank line
    in front, so its whole original content follows untouched as the body.
    """
    updates = {"Failed": iso(failed), "Fail_reason": reason, "Attempts": attempts}
    try:
        return update_headers(original, updates)
    except SpoolFormatError:
        head = b"".join(_render(name, value) for name, value in updates.items())
        return head + b"\n" + original


# TS 23.040 §9.1.2.5: Type-of-Number, bits 6..4 of the Type-of-Address octet.
_TON_WORDS = (
    "unknown",
    "international",
    "national",
    "network-specific",
    "subscriber",
    "alphanumeric",
    "abbreviated",
    "reserved",
)


def toa_text(toa: int) -> str:
    """`From_TOA:` value: the octet in hex and its type of number, e.g. "91 international"."""
    return f"{toa & 0xFF:02X} {_TON_WORDS[(toa >> 4) & 0x07]}"


# smstools3 writes 8-bit data as "Alphabet: binary" (its src/smsd.c); the codec calls it "8bit".
_INCOMING_ALPHABETS = {"gsm7": "GSM", "ucs2": "UCS2", "8bit": "binary"}


def build_incoming(
    *,
    sender: str,
    sender_toa: int,
    smsc: str | None,
    sent: datetime | None,
    received: datetime,
    modem: str,
    imsi: str | None,
    alphabet: str,
    parts: int,
    flash: bool = False,
    incomplete: bool = False,
    text: str | None = None,
    data: bytes | None = None,
    udh: bytes = b"",
    ports: tuple[int, int] | None = None,
) -> bytes:
    """An incoming/ file (docs/spool.md "Incoming file", with smstools3's headers for binary messages).

    8-bit messages give `data`: `Alphabet: binary`, `Hex: yes`, `UDH: true|false` and the data's hex
    as the body, so the file is also an outgoing file that sends the same message. `udh` is the
    sender's header without concatenation, UDHL first (smstools3's `UDH-DATA:`, written with
    `UDH: true`); `ports` (destination, origin) of application port addressing become `Port:` and
    `From_port:`.
    """
    if alphabet not in _INCOMING_ALPHABETS:
        raise ValueError(f"alphabet must be one of {', '.join(_INCOMING_ALPHABETS)}, not {alphabet!r}")
    binary = alphabet == "8bit" and data is not None
    headers: list[tuple[str, object]] = [("From", sender), ("From_TOA", toa_text(sender_toa))]
    if smsc:
        headers.append(("From_SMSC", smsc))
    if sent is not None:
        headers.append(("Sent", iso(sent)))
    headers.append(("Received", iso(received)))
    headers.append(("Modem", modem))
    if imsi:
        headers.append(("IMSI", imsi))
    headers.append(("Alphabet", _INCOMING_ALPHABETS[alphabet]))
    if binary or udh:
        # smstools3's spelling in the files it receives (fileformat.html "Received messages"); its
        # reader, and gsmgw's, take true/false as yes/no, so the file still sends the same message.
        headers.append(("UDH", "true" if udh else "false"))
    if udh:
        headers.append(("UDH-DATA", hex_dump(udh)))
    if ports is not None:
        headers.append(("Port", ports[0]))
        headers.append(("From_port", ports[1]))
    if binary:
        headers.append(("Hex", "yes"))
    headers.append(("Parts", parts))
    if flash:
        headers.append(("Flash", "yes"))
    if incomplete:
        headers.append(("Incomplete", "yes"))
    if binary:
        assert data is not None
        body = data.hex().upper().encode("ascii")
    else:
        # Lone surrogates (a broken UCS-2 part) cannot be UTF-8; they become U+FFFD.
        body = (text or "").encode("utf-8", "replace")
    return b"".join(_render(name, value) for name, value in headers) + b"\n" + body


@dataclass(frozen=True)
class IncomingFile:
    """An incoming/ file read back (`build_incoming`'s mirror): for the inbox API and webhooks."""

    headers: Headers
    text: str  # the text; for binary data the hex of the data (as the body holds it)
    data: bytes | None  # the octets of a binary message, else None
    udh: bytes  # UDH-DATA: (b"" when none)
    ports: tuple[int, int] | None  # (Port:, From_port:)

    @property
    def binary(self) -> bool:
        return self.data is not None


def read_incoming(data: bytes) -> IncomingFile:
    """Read an incoming/ file; values gsmgw did not write (a hand-edited header) are left out
    rather than refused: the file stays readable."""
    spool_file = read_spool_file(data)
    headers = spool_file.headers
    binary = _is_binary_alphabet(headers.get("Alphabet"))
    if binary:
        text = spool_file.body.decode("ascii", "replace").strip()
        try:
            payload: bytes | None = parse_hex(text)
        except UserDataError:
            payload = None
    elif headers.get("Decode_error") is not None:
        text, payload = spool_file.body.decode("ascii", "replace").strip(), None  # the PDU's hex
    else:
        text, payload = spool_file.body.decode("utf-8", "replace"), None
    try:
        udh = parse_hex(headers.get("UDH-DATA") or "")
    except UserDataError:
        udh = b""
    port, origin = headers.get("Port"), headers.get("From_port")
    ports = (int(port), int(origin)) if port and origin and port.isdigit() and origin.isdigit() else None
    return IncomingFile(headers, text, payload, udh, ports)


def build_call(
    *,
    caller: str | None,
    caller_toa: int | None,
    withheld: bool,
    modem: str,
    imsi: str | None,
    received: datetime,
    rings: int,
    call_type: str | None,
    hung_up: datetime | None,
) -> bytes:
    """A calls/ file: one incoming call (README "Incoming calls"); headers only, the body is empty.

    `From:` the caller as the network gave it (absent when the number was withheld or not
    available: `Withheld: yes` / `Caller: unknown`), `From_TOA:`, `Modem:`, `IMSI:`, `Received:`
    (the first ring), `Rings:` (how many the daemon saw before it acted), `Call_type:` (+CRING's
    type, e.g. VOICE), `Hung_up:` (when gsmgw hung up; absent when calls.hangup is off).
    """
    headers: list[tuple[str, object]] = []
    if caller:
        headers.append(("From", caller))
        if caller_toa is not None:
            headers.append(("From_TOA", toa_text(caller_toa)))
    elif withheld:
        headers.append(("Withheld", "yes"))
    else:
        headers.append(("Caller", "unknown"))
    headers.append(("Modem", modem))
    if imsi:
        headers.append(("IMSI", imsi))
    headers.append(("Received", iso(received)))
    headers.append(("Rings", rings))
    if call_type:
        headers.append(("Call_type", call_type))
    if hung_up is not None:
        headers.append(("Hung_up", iso(hung_up)))
    return b"".join(_render(name, value) for name, value in headers) + b"\n"


@dataclass(frozen=True)
class ReportStatus:
    word: str  # "delivered" | "pending" | "failed"
    final: bool
    meaning: str

    def text(self, tp_st: int) -> str:
        """The `Status:` value of report and sent files, e.g. "delivered 0 (received by the recipient)"."""
        return f"{self.word} {tp_st} ({self.meaning})"


def report_status(tp_st: int) -> ReportStatus:
    """Classify TP-ST (TS 23.040 §9.2.3.15) with the codec's table: 0x00-0x1F delivered,
    0x20-0x3F pending (the SC is still trying), everything else failed and final."""
    word = status_category(tp_st)
    return ReportStatus(word, word != "pending", status_meaning(tp_st))


def build_report(
    *,
    recipient: str,
    modem: str,
    message_id: int | Sequence[int],
    sent_file: str | None,
    status: int,
    discharge: datetime | None,
) -> bytes:
    """A report/ file (docs/spool.md "Report file"): headers only, the body is empty."""
    ids = [message_id] if isinstance(message_id, int) else list(message_id)
    headers: list[tuple[str, object]] = [
        ("From", recipient),
        ("Modem", modem),
        ("Message_id", ",".join(str(mr) for mr in ids)),
    ]
    if sent_file:
        headers.append(("Sent_file", sent_file))
    headers.append(("Status", report_status(status).text(status)))
    if discharge is not None:
        headers.append(("Discharge", iso(discharge)))
    return b"".join(_render(name, value) for name, value in headers) + b"\n"


def make_outgoing(
    *,
    to: str | Sequence[str],
    text: str | None = None,
    data: bytes | None = None,
    udh: bytes | None = None,
    message_class: int | None = None,
    report: bool | None = None,
    flash: bool = False,
    validity: str | int | None = None,
    priority: str | None = None,
    modem: str | None = None,
    send_after: datetime | str | None = None,
    expires: datetime | str | None = None,
    max_parts: int | None = None,
    extra: Mapping[str, object] | None = None,
) -> bytes:
    """Render an outgoing file (UTF-8). It is not checked: pass it through parse_outgoing.

    `data` (8-bit) instead of `text` writes `Alphabet: binary`, `Hex: yes`, `UDH: no` and the data
    as hex; `udh` (the sender's header, UDHL first) goes into `UDH-DATA:` for data and text alike;
    `message_class` into `Class:`. `extra` adds headers such as `Client:` and `Callback:` (written
    by the HTTP and SMPP servers). A value with a line break raises SpoolFormatError rather than
    being changed silently.
    """
    if (text is None) == (data is None):
        raise ValueError("make_outgoing needs either text or data")
    recipients = [to] if isinstance(to, str) else list(to)
    headers: list[tuple[str, object]] = [("To", ", ".join(recipients))]
    if data is not None:
        headers += [("Alphabet", "binary"), ("Hex", "yes"), ("UDH", "no")]
    if udh:
        headers.append(("UDH-DATA", hex_dump(udh)))
    if message_class is not None:
        headers.append(("Class", message_class))
    if report is not None:
        headers.append(("Report", "yes" if report else "no"))
    if flash:
        headers.append(("Flash", "yes"))
    if validity is not None:
        headers.append(("Validity", validity))
    if priority is not None:
        headers.append(("Priority", priority))
    if modem is not None:
        headers.append(("Modem", modem))
    if send_after is not None:
        headers.append(("Send_after", iso(send_after) if isinstance(send_after, datetime) else send_after))
    if expires is not None:
        headers.append(("Expires", iso(expires) if isinstance(expires, datetime) else expires))
    if max_parts is not None:
        headers.append(("Max_parts", max_parts))
    headers.extend((extra or {}).items())
    for name, value in headers:
        if not _HEADER_LINE.match(f"{name}: x") or "\n" in str(value) or "\r" in str(value):
            raise SpoolFormatError(f"{name}: {str(value)[:40]!r} cannot be a header (line break or bad name)")
    if data is not None:
        # 64 octets a line: readable, and far below smstools3's line buffer.
        lines = [data[start : start + 64].hex().upper() for start in range(0, len(data), 64)]
        return b"".join(_render(name, value) for name, value in headers) + b"\n" + "\n".join(lines).encode("ascii") + b"\n"
    assert text is not None
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpoolFormatError(
            f"the text has a lone UTF-16 surrogate at character {exc.start} (a broken \\ud8xx escape?); "
            "send the character itself or its surrogate pair"
        ) from None
    # The text gets a final newline because the reader strips exactly one: a text that itself ends
    # in a newline keeps it. After a final CR the newline is CRLF, or the reader would take CR+LF.
    final = b"\r\n" if body.endswith(b"\r") else b"\n"
    return b"".join(_render(name, value) for name, value in headers) + b"\n" + body + final


def hex_dump(octets: bytes) -> str:
    """smstools3's `UDH-DATA:` form: uppercase octets separated by spaces ("06 05 04 0B 84 23 F0")."""
    return " ".join(f"{octet:02X}" for octet in octets)


def outgoing_name(now: datetime, unique: str) -> str:
    """Name of a file `gsmgw send`/HTTP/SMPP write: `YYYYMMDD-HHMMSS-<unique>` sorts by time."""
    return f"{now:%Y%m%d-%H%M%S}-{unique}"


def incoming_name(modem: str, received: datetime, unique: str) -> str:
    """Name of an incoming/ file (docs/spool.md): `<modem>-<YYYYMMDD-HHMMSS>-<unique>`."""
    return f"{modem}-{received:%Y%m%d-%H%M%S}-{unique}"
