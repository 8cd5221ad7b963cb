"""What SMPP messages mean: text from data_coding, concatenation, receipts. Pure code.

No I/O and no clock: time comes in as a parameter. Used by `gsmgw.smpp.session`.

References: SMPP 3.4 §5.2.19 (data_coding), §5.2.12 (esm_class), §5.3.2.22-24 (sar_*),
§5.3.2.32 (message_payload), Appendix B (delivery receipt text); 3GPP TS 23.040 §9.2.3.24.1
(concatenation information elements) and TS 23.038 §6.2.1 (GSM 7-bit default alphabet).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from gsmgw.durations import DurationTooLong, bounded_time
from gsmgw.sms import udh as udh_rules
from gsmgw.sms.address import normalize_number
from gsmgw.sms.errors import AddressError, UserDataError
from gsmgw.sms.gsm7 import BASIC_TABLE, decode_septets, encode_septets, is_gsm7

from .pdu import ESM_UDHI, Status

# SMPP 3.4 §5.2.19 data_coding values gsmgw reads.
DC_DEFAULT = 0x00  # "SMSC default alphabet": for gsmgw the GSM 7-bit default alphabet, one septet per octet
DC_IA5 = 0x01  # IA5 (CCITT T.50) / ASCII
DC_OCTET = 0x02  # "Octet unspecified (8-bit binary)"
DC_LATIN1 = 0x03
DC_BINARY = 0x04  # "Octet unspecified (8-bit binary)": what clients send WAP push and OTA with
DC_UCS2 = 0x08
# 0xF0..0xFF are GSM 03.38 "message class control" values (TS 23.038 §4, group 1111): bit 2 says
# 8-bit data (0xF4..0xF7) or the default alphabet (0xF0..0xF3), bits 1..0 the message class.
# 0xF0 is class 0, the flash message alerting systems like to send.
DC_GSM7_CLASS_0 = 0xF0
DC_GSM7_CLASS_3 = 0xF3
DC_BINARY_CLASS_0 = 0xF4
DC_BINARY_CLASS_3 = 0xF7
BINARY_CODINGS = frozenset({DC_OCTET, DC_BINARY, *range(DC_BINARY_CLASS_0, DC_BINARY_CLASS_3 + 1)})

# TS 23.040 §9.2.3.24.1, §9.2.3.24.8: concatenated short messages, 8-bit and 16-bit reference.
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08

# SMPP 3.4 §5.2.17: registered_delivery bits 0-1, "SMSC delivery receipt".
RECEIPT_NONE = 0
RECEIPT_ALWAYS = 1  # on success and on failure
RECEIPT_ON_FAILURE = 2


class MessageError(ValueError):
    """A submit_sm that is well-formed as a PDU but cannot be accepted; `status` answers it."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.status = status


# GSM-7 codes below 0x20 that are characters, not the LF/CR both alphabets share: "@" is 0x00,
# "$" 0x02, "_" 0x11, ESC 0x1B starts "{}[]~^\\|€" (TS 23.038 §6.2.1). A GSM-7 encoder uses them;
# ASCII text never does.
_GSM_ONLY_CODES = frozenset(range(0x20)) - {0x0A, 0x0D}
# ASCII "$@_`" are GSM-7 "¤¡§¿": common in ASCII text, rare as GSM-7 characters.
_ASCII_MARKS = frozenset(b"$@_`")


def _looks_like_ascii(raw: bytes) -> bool:
    """Many ESMEs (scripts, smpplib given bytes) send ASCII or Latin-1 under data_coding 0.
    Read the octets as Latin-1 when they cannot be unpacked GSM-7 (an octet above 0x7F), or when
    nothing in them is GSM-7-only and they carry ASCII's "$@_`" or a bracket pair "[…]"/"{…}"
    (as GSM-7 those would be "Ä…Ñ"/"ä…ñ"). Real GSM-7 text with "@", "$" or brackets has the
    GSM-only codes, so it is never misread."""
    if any(octet > 0x7F for octet in raw):
        return True
    octets = set(raw)
    if octets & _GSM_ONLY_CODES:
        return False
    return bool(octets & _ASCII_MARKS) or {0x5B, 0x5D} <= octets or {0x7B, 0x7D} <= octets


_GSM7_CODINGS = (DC_DEFAULT, DC_GSM7_CLASS_0, DC_GSM7_CLASS_0 + 1, DC_GSM7_CLASS_0 + 2, DC_GSM7_CLASS_3)


def is_binary_coding(data_coding: int) -> bool:
    """8-bit data, not text: data_coding 2, 4 (SMPP 3.4 §5.2.19) or 0xF4..0xF7 (TS 23.038 §4)."""
    return data_coding in BINARY_CODINGS


def coding_class(data_coding: int) -> int | None:
    """The message class a data_coding of group 1111 carries (bits 1..0), else None."""
    return data_coding & 0x03 if data_coding >= DC_GSM7_CLASS_0 else None


def text_coding(data_coding: int, raw: bytes) -> int:
    """The alphabet the octets of a message in `data_coding` are read in, as a data_coding:
    DC_DEFAULT (GSM-7), DC_IA5, DC_LATIN1 or DC_UCS2. data_coding 0 whose octets cannot be GSM-7
    as the client meant them (see `_looks_like_ascii`) is DC_LATIN1: the client writes, and so
    reads, ASCII/Latin-1. MessageError (ESME_RINVDCS) for a data_coding gsmgw does not read as
    text (8-bit data is not text: see is_binary_coding)."""
    if data_coding in _GSM7_CODINGS:
        return DC_LATIN1 if _looks_like_ascii(raw) else DC_DEFAULT
    if data_coding in (DC_IA5, DC_LATIN1, DC_UCS2):
        return data_coding
    raise MessageError(
        f"data_coding 0x{data_coding:02x} is not supported; use 0 (GSM-7), 3 (Latin-1) or 8 (UCS-2) for "
        "text, 4 for 8-bit data",
        Status.ESME_RINVDCS,
    )


def decode_text(data_coding: int, raw: bytes, national: tuple[int, int] = (0, 0)) -> tuple[str, bool]:
    """(text, flash) from the octets of a message in `data_coding` (SMPP 3.4 §5.2.19).

    data_coding 0 is GSM-7 with one septet per octet (SMPP carries it unpacked), except where
    the octets cannot be GSM-7 as a client meant them (see `text_coding`). `national` (locking,
    single) are the shift tables a header named (TS 23.038 §6.2.1.2.4): such septets are GSM-7
    for sure. 8-bit data (is_binary_coding) has no text: ("", False), the caller keeps the octets.
    """
    if is_binary_coding(data_coding):
        return "", False
    flash = data_coding == DC_GSM7_CLASS_0
    if national != (0, 0) and data_coding in _GSM7_CODINGS:
        return decode_septets(raw, *national), flash
    coding = text_coding(data_coding, raw)
    if coding == DC_DEFAULT:
        return decode_septets(raw), flash
    if coding == DC_LATIN1:
        return raw.decode("latin-1"), flash
    if coding == DC_IA5:
        if any(octet > 0x7F for octet in raw):
            raise MessageError("data_coding 1 (IA5/ASCII) with octets above 0x7F", Status.ESME_RINVDCS)
        return raw.decode("ascii"), False
    if len(raw) % 2:
        raise MessageError(f"UCS-2 text has an odd number of octets ({len(raw)})", Status.ESME_RINVMSGLEN)
    try:
        return raw.decode("utf-16-be"), False
    except UnicodeDecodeError as exc:
        # A lone surrogate cannot be stored as UTF-8 in the spool file, nor sent sensibly.
        raise MessageError(f"UCS-2 text is not valid UTF-16: {exc.reason}", Status.ESME_RSUBMITFAIL) from None


@dataclass(frozen=True)
class Concat:
    """Which part of which long message a segment is (TS 23.040 §9.2.3.24.1 / SMPP sar_*)."""

    ref: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[Concat | None, bytes, bytes]:
    """Read the user data header at the start of `short_message` (esm_class UDHI set).

    Returns the concatenation element, if any; the header's other information elements as a
    header of their own (UDHL first, b"" when there are none: ports, national shifts, special
    indications, which go on with the message); and the octets after the header.
    TS 23.040 §9.2.3.24: UDHL (1 octet) then IEI, IEDL, data, repeated.
    """
    if not short_message:
        raise MessageError("esm_class says there is a user data header, but short_message is empty", Status.ESME_RINVESMCLASS)
    udhl = short_message[0]
    if 1 + udhl > len(short_message):
        raise MessageError(f"UDHL {udhl} runs past the end of short_message", Status.ESME_RINVESMCLASS)
    header = short_message[1 : 1 + udhl]
    concat = None
    others = []
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise MessageError("user data header: an information element is cut short", Status.ESME_RINVESMCLASS)
        iei, iedl = header[pos], header[pos + 1]
        data = header[pos + 2 : pos + 2 + iedl]
        if len(data) != iedl:
            raise MessageError(f"user data header: element 0x{iei:02x} runs past the header", Status.ESME_RINVESMCLASS)
        if iei == IEI_CONCAT_8 and iedl == 3:
            concat = Concat(data[0], data[1], data[2])
        elif iei == IEI_CONCAT_16 and iedl == 4:
            concat = Concat(int.from_bytes(data[:2], "big"), data[2], data[3])
        elif iei not in udh_rules.CONCAT_IEIS:
            others.append(header[pos : pos + 2 + iedl])
        pos += 2 + iedl
    if concat is not None and (concat.total == 0 or concat.seq == 0 or concat.seq > concat.total):
        # TS 23.040 §9.2.3.24.1: a receiver ignores an element with seq 0 or seq > total.
        concat = None
    rest = b"".join(others)
    return concat, (bytes((len(rest),)) + rest if rest else b""), short_message[1 + udhl :]


def take_national_shifts(header: bytes) -> tuple[tuple[int, int], bytes]:
    """The (locking, single) national shift tables a header names (TS 23.040 §9.2.3.24.15/16), and
    the header without them: they say how septets are read, and gsmgw chooses its own tables
    (national_languages) when it encodes the text again."""
    if not header:
        return (0, 0), b""
    locking = single = 0
    kept = []
    for iei, value in udh_rules.parse_elements(header[1:]):
        if iei == udh_rules.IEI_NATIONAL_LOCKING_SHIFT and len(value) == 1:
            locking = value[0]
        elif iei == udh_rules.IEI_NATIONAL_SINGLE_SHIFT and len(value) == 1:
            single = value[0]
        else:
            kept.append(bytes((iei, len(value))) + value)
    rest = b"".join(kept)
    return (locking, single), (bytes((len(rest),)) + rest if rest else b"")


def ports_header(destination: int, source: int | None) -> bytes:
    """A header with the 16-bit application port IE (TS 23.040 §9.2.3.24.4) for the
    destination_port/source_port TLVs (SMPP 3.4 §5.3.2.20/.21); source 0 when not given."""
    return bytes((6, udh_rules.IEI_PORTS_16, 4)) + destination.to_bytes(2, "big") + (source or 0).to_bytes(2, "big")


# command_status for a header the codec refuses (SMPP 3.4 §5.1.3): a header that is not one is
# "Invalid esm_class field data" (the UDHI flag promised one); one that leaves no room for the
# message makes its "Message Length" invalid.
USER_DATA_STATUS = {
    "udh_length": Status.ESME_RINVESMCLASS,
    "udh_concat": Status.ESME_RINVESMCLASS,
    "udh_national": Status.ESME_RINVESMCLASS,
    "no_room": Status.ESME_RINVMSGLEN,
}


def user_data_status(error: UserDataError) -> int:
    return USER_DATA_STATUS.get(error.problem, Status.ESME_RINVMSGLEN)


TON_INTERNATIONAL = 1  # SMPP 3.4 §5.2.5
TON_NATIONAL = 2


def destination_number(ton: int, address: str, default_country: str | None) -> str:
    """The E.164 form of a submit_sm destination (SMPP 3.4 §5.2.5 TON).

    TON 1 (international) means the digits carry the country code, with or without "+". TON 2
    (national) means a national number, with or without its trunk 0 ("015112345678" or
    "15112345678"): it gets `default_country`. Any other TON is read the way a spool file's
    `To:` is read (national with a leading 0 needs `default_country`).
    """
    text = address.strip()
    if not text:
        raise MessageError("destination_addr is empty", Status.ESME_RINVDSTADR)
    if ton == TON_INTERNATIONAL and not text.startswith(("+", "00")):
        text = "+" + text
    elif ton == TON_NATIONAL and not text.startswith(("+", "0")):
        if default_country is None:
            raise MessageError(
                f"destination_addr {text!r} is national (dest_addr_ton 2) and the gateway has no "
                "default_country; send it international (dest_addr_ton 1)", Status.ESME_RINVDSTADR,
            )
        text = "0" + text  # the national significant number, read as its dialled form "0…"
    try:
        return normalize_number(text, default_country)
    except AddressError as exc:
        raise MessageError(str(exc), Status.ESME_RINVDSTADR) from None


# Memory that unfinished long messages may hold. A segment is one SMS part, so no more than
# the 254 octets of a short_message (SMPP 3.4 §5.2.22), also when it came as message_payload;
# a session holds at most SESSION_PENDING_OCTETS of segments, and all sessions of one client
# together CLIENT_PENDING_OCTETS. With max_parts 6 a message is at most 1.5 KB, so a session
# still has room for about 170 interleaved long messages.
SEGMENT_OCTETS = 254
SESSION_PENDING_OCTETS = 256 * 1024
CLIENT_PENDING_OCTETS = 1024 * 1024


class PendingOctets:
    """Octets of unfinished long messages per client, over all of its sessions (pure; the
    server shares one among its sessions)."""

    def __init__(self, limit: int = CLIENT_PENDING_OCTETS):
        self.limit = limit
        self._held: dict[str, int] = {}

    def take(self, client: str, octets: int) -> bool:
        held = self._held.get(client, 0)
        if held + octets > self.limit:
            return False
        self._held[client] = held + octets
        return True

    def give(self, client: str, octets: int) -> None:
        held = self._held.get(client, 0) - octets
        if held > 0:
            self._held[client] = held
        else:
            self._held.pop(client, None)

    def held(self, client: str) -> int:
        return self._held.get(client, 0)


@dataclass
class _Pending:
    first_seen: float
    total: int
    data_coding: int
    parts: dict[int, bytes] = field(default_factory=dict)
    message_id: str = ""
    registered_delivery: int = 0  # clients set it on the first, the last or every segment
    header: bytes = b""  # the sender's own header (without concatenation): the first segment that had one
    acquired_at: float | None = None  # when the client's limits counted it (its first segment)
    complete: bool = False  # every segment came: handed on to be written (or refused)

    @property
    def octets(self) -> int:
        return sum(len(part) for part in self.parts.values())


class Reassembly:
    """Segments of long messages of one session, joined when all are there (pure; `now` given).

    The octets are joined before they are decoded, because clients split at octet boundaries:
    a GSM-7 escape or a UTF-16 surrogate pair may straddle two segments.

    Bounded: at most `max_pending` messages and `max_octets` of segments in this session, and
    what `budget` (shared by the client's sessions) allows for `owner`; beyond that a segment
    is refused with ESME_RMSGQFUL, and a segment over SEGMENT_OCTETS with ESME_RINVMSGLEN.
    """

    def __init__(
        self, timeout: float, max_pending: int = 1000, *, max_octets: int = SESSION_PENDING_OCTETS,
        budget: PendingOctets | None = None, owner: str = "",
    ):
        self.timeout = timeout
        self.max_pending = max_pending
        self.max_octets = max_octets
        self.budget = budget if budget is not None else PendingOctets()
        self.owner = owner
        self.octets = 0
        self._pending: dict[tuple, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def is_new(self, key: tuple, concat: Concat) -> bool:
        """Would this segment start a message (no segment of it is held)?"""
        return (*key, concat.ref, concat.total) not in self._pending

    def add(
        self, key: tuple, concat: Concat, data_coding: int, payload: bytes, now: float, new_id: str,
        registered_delivery: int = 0, header: bytes = b"", acquired_at: float | None = None,
    ) -> tuple[str, bytes | None]:
        """Add one segment. Returns (message_id, joined octets or None while parts are missing).

        `new_id` becomes the message's id when this is the first segment seen; every segment of
        the message answers with the same id, which is the spool file's name. `acquired_at`:
        when the client's limits counted the message (at its first segment)."""
        if len(payload) > SEGMENT_OCTETS:
            raise MessageError(
                f"a segment of a long message has {len(payload)} octets; one SMS part has at most {SEGMENT_OCTETS}",
                Status.ESME_RINVMSGLEN,
            )
        full_key = (*key, concat.ref, concat.total)
        pending = self._pending.get(full_key)
        if pending is None:
            if len(self._pending) >= self.max_pending:
                raise MessageError("too many unfinished long messages on this session", Status.ESME_RMSGQFUL)
        elif data_coding != pending.data_coding:
            raise MessageError(
                f"segment {concat.seq} has data_coding {data_coding}, earlier ones {pending.data_coding}",
                Status.ESME_RINVDCS,
            )
        growth = len(payload) - (len(pending.parts.get(concat.seq, b"")) if pending else 0)
        if growth > 0 and self.octets + growth > self.max_octets:
            raise MessageError(
                f"this session holds {self.octets} octets of unfinished long messages; send their missing "
                "segments first", Status.ESME_RMSGQFUL,
            )
        if growth > 0 and not self.budget.take(self.owner, growth):
            raise MessageError(
                f"client {self.owner!r} holds {self.budget.held(self.owner)} octets of unfinished long messages; "
                "send their missing segments first", Status.ESME_RMSGQFUL,
            )
        if pending is None:
            pending = _Pending(now, concat.total, data_coding, message_id=new_id, acquired_at=acquired_at)
            self._pending[full_key] = pending
        self.octets += growth
        if growth < 0:
            self.budget.give(self.owner, -growth)
        pending.parts[concat.seq] = payload
        pending.registered_delivery = max(pending.registered_delivery, registered_delivery)
        pending.header = pending.header or header
        if len(pending.parts) < pending.total:
            return pending.message_id, None
        pending.complete = True
        joined = b"".join(pending.parts[i] for i in range(1, pending.total + 1))
        return pending.message_id, joined

    def registered_delivery(self, key: tuple, concat: Concat) -> int:
        pending = self._pending.get((*key, concat.ref, concat.total))
        return pending.registered_delivery if pending is not None else 0

    def header(self, key: tuple, concat: Concat) -> bytes:
        """The sender's own header of a long message (ports, ...), as its segments carried it."""
        pending = self._pending.get((*key, concat.ref, concat.total))
        return pending.header if pending is not None else b""

    def acquired_at(self, key: tuple, concat: Concat) -> float | None:
        pending = self._pending.get((*key, concat.ref, concat.total))
        return pending.acquired_at if pending is not None else None

    def done(self, key: tuple, concat: Concat) -> None:
        """Forget a message once it is written (or refused for good)."""
        pending = self._pending.pop((*key, concat.ref, concat.total), None)
        if pending is not None:
            self._forget(pending)

    def expire(self, now: float) -> list[tuple[tuple, str, int, int, int, float | None]]:
        """Drop messages whose first segment is older than the timeout. Returns (key,
        message_id, parts received, total, registered_delivery, acquired_at) for each."""
        dropped = []
        for full_key, pending in list(self._pending.items()):
            if now - pending.first_seen >= self.timeout:
                del self._pending[full_key]
                self._forget(pending)
                dropped.append((
                    full_key[:-2], pending.message_id, len(pending.parts), pending.total,
                    pending.registered_delivery, pending.acquired_at,
                ))
        return dropped

    def clear(self) -> list[tuple[float, int]]:
        """Drop everything (the session ended). Returns when the client's limits counted each
        unfinished message and its segments, to give that back (a complete one is being written:
        it counts)."""
        acquired = [(p.acquired_at, p.total) for p in self._pending.values()
                    if p.acquired_at is not None and not p.complete]
        for pending in self._pending.values():
            self._forget(pending)
        self._pending.clear()
        return acquired

    def _forget(self, pending: _Pending) -> None:
        octets = pending.octets
        self.octets -= octets
        self.budget.give(self.owner, octets)


# ---- outbound (deliver_sm) ----------------------------------------------------------------

# Characters whose GSM-7 code is their ASCII code (letters, digits, space, most punctuation):
# text made only of these reads the same to an ESME that decodes data_coding 0 as ASCII and to
# one that decodes it as GSM-7; "@" would be a NUL octet in GSM-7.
_SAME_IN_ASCII_AND_GSM7 = frozenset(ch for code, ch in enumerate(BASIC_TABLE) if ord(ch) == code and code >= 0x20)

# SMPP 3.4 §5.2.8: source_addr and destination_addr are C-octet strings of at most 21 octets,
# the NUL included, and §3.1 makes a C-octet string ASCII.
ADDRESS_OCTETS = 20
TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_E164 = 0, 1


class AddressNotEncodable(ValueError):
    """An address that no deliver_sm can carry; the message says which character or why."""


def _printable_ascii(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def ascii_transliteration(text: str) -> str:
    """`text` in printable ASCII, spelt as `transliterate` spells it (é -> e, Δ -> D, € -> EUR),
    but with nothing left out: AddressNotEncodable names the first character with no spelling."""
    out = []
    for ch in text:
        spelt = spelling(ch, _printable_ascii)
        if spelt is None:
            raise AddressNotEncodable(f"{ch!r} (U+{ord(ch):04X}) has no ASCII spelling")
        out.append(spelt)
    return "".join(out)


def deliver_address(address: str, *, verbatim: bool = False) -> tuple[int, int, str]:
    """(TON, NPI, value) of an address in a deliver_sm (SMPP 3.4 §5.2.5, §5.2.6, §5.2.8).

    "+49…" is international/E.164, other digits unknown/E.164, anything else (an alphanumeric
    sender like "Vodafone", or a modem name) alphanumeric, spelt in ASCII
    (`ascii_transliteration`: "ΔΦ€" -> "DFEUR"). `verbatim`: an ESME's own source_addr given
    back in a receipt, octet for octet as it sent it (read as Latin-1). AddressNotEncodable
    when no C-octet string of 20 octets carries it.
    """
    if address.startswith("+") and address[1:].isdigit():
        ton, npi, value = TON_INTERNATIONAL, NPI_E164, address[1:]
    elif address.isdigit():
        ton, npi, value = TON_UNKNOWN, NPI_E164, address
    elif not address:
        return TON_UNKNOWN, NPI_UNKNOWN, ""
    else:
        ton, npi = TON_ALPHANUMERIC, NPI_UNKNOWN
        if verbatim:
            if "\0" in address or any(ord(char) > 0xFF for char in address):
                raise AddressNotEncodable(f"{address!r} is not a C-octet string")
            value = address
        else:
            value = ascii_transliteration(address)
    if len(value.encode("latin-1")) > ADDRESS_OCTETS:
        raise AddressNotEncodable(f"{address!r} is {value!r} in ASCII, longer than the {ADDRESS_OCTETS} octets of an address")
    return ton, npi, value

def _capacity(data_coding: int, header_octets: int) -> int:
    """What one SMS carries beside a header of `header_octets` (UDHL included; 0 for none):
    160 septets or 140 octets (TS 23.040 §9.2.3.16), less the header, which in septets takes
    ceil(octets * 8 / 7) (§9.2.3.24). With the 6-octet concatenation header: 153 septets or 134
    octets (67 UCS-2 characters)."""
    if data_coding == DC_DEFAULT:
        return 160 - (header_octets * 8 + 6) // 7
    return 140 - header_octets


def _chunks_octets(octets: bytes, size: int) -> list[bytes]:
    # Only characters of one septet each go out as data_coding 0, so any cut is a clean one;
    # 8-bit data has no characters to keep whole.
    return [octets[start : start + size] for start in range(0, len(octets), size)]


def _chunks_ucs2(raw: bytes, size: int) -> list[bytes]:
    chunks, start = [], 0
    while start < len(raw):
        end = min(start + size, len(raw))
        # Never separate the halves of a surrogate pair (a high surrogate is 0xD800..0xDBFF).
        if end < len(raw) and 0xD8 <= raw[end - 2] <= 0xDB:
            end -= 2
        chunks.append(raw[start:end])
        start = end
    return chunks


def encode_for_delivery(
    text: str, ref: int, *, data: bytes | None = None, udh: bytes = b""
) -> list[tuple[int, int, bytes]]:
    """Text (or 8-bit `data`) → deliver_sm segments [(data_coding, esm_class, short_message)].

    data_coding 0 only when every character reads the same in ASCII and in GSM-7 (letters,
    digits, common punctuation), else UCS-2 (8). ESMEs disagree on what data_coding 0 means
    (GSM-7, ASCII, Latin-1), but all of them read UCS-2 the same way, so text with "@", "€",
    umlauts or emoji is never misread. `data` goes as data_coding 4 (8-bit binary). `udh` is the
    sender's own header (UDHL first: ports of a WAP push, ...): it starts short_message, with
    esm_class UDHI. A message longer than one SMS is split the way an SMSC delivers it to a
    handset: UDH concatenation with an 8-bit reference, merged into the sender's header.
    """
    if data is not None:
        data_coding, payload = DC_BINARY, data
    elif all(ch in _SAME_IN_ASCII_AND_GSM7 or ch in "\n\r" for ch in text):
        data_coding, payload = DC_DEFAULT, bytes(encode_septets(text))
    else:
        data_coding, payload = DC_UCS2, text.encode("utf-16-be")
    elements = udh[1:] if udh else b""
    if len(payload) <= _capacity(data_coding, 1 + len(elements) if elements else 0):
        return [(data_coding, ESM_UDHI if elements else 0, (udh if elements else b"") + payload)]
    size = _capacity(data_coding, 1 + len(elements) + 5)
    chunks = _chunks_ucs2(payload, size) if data_coding == DC_UCS2 else _chunks_octets(payload, size)
    total = len(chunks)
    if total > 255:
        raise ValueError(f"the message needs {total} parts; at most 255 can be concatenated")
    return [
        (data_coding, ESM_UDHI, bytes([len(elements) + 5]) + elements + bytes([IEI_CONCAT_8, 3, ref & 0xFF, total, seq]) + chunk)
        for seq, chunk in enumerate(chunks, start=1)
    ]


def receipt_stamp(moment: datetime | None) -> str:
    """SMPP 3.4 Appendix B date in a receipt: YYMMDDhhmm (UTC, as most SMSCs send it)."""
    if moment is None:
        return "0000000000"
    return moment.astimezone(timezone.utc).strftime("%y%m%d%H%M")


def smpp_absolute_time(moment: datetime) -> str:
    """SMPP 3.4 §7.1.1 absolute time "YYMMDDhhmmsstnnp", given in UTC: t tenths, nn quarter
    hours from UTC, p "+"."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%y%m%d%H%M%S") + str(utc.microsecond // 100_000) + "00+"


# Appendix B "stat" words and the message_state (SMPP 3.4 §5.2.28) that goes with each.
RECEIPT_STATES = {
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
    "ENROUTE": 1,
}


def _receipt_snippet(text: str) -> str:
    # Appendix B: the first 20 characters of the message, on the receipt's one line.
    return " ".join(text[:20].splitlines())


def receipt_text(
    *, message_id: str, stat: str, submitted: datetime | None, done: datetime | None, err: int, text: str
) -> str:
    """The text of a delivery receipt (SMPP 3.4 Appendix B):
    "id:… sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:…"."""
    delivered = 1 if stat == "DELIVRD" else 0
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered:03d} submit date:{receipt_stamp(submitted)} "
        f"done date:{receipt_stamp(done)} stat:{stat} err:{err % 1000:03d} text:{_receipt_snippet(text)}"
    )


# Receipts stay in short_message, at most 254 octets: a UCS-2 receipt (two octets a character)
# does not fit, so a client that wrote UCS-2 gets its receipt as data_coding 0 made only of
# characters that read the same in ASCII and GSM-7 (as inbound SMS without others are sent),
# with the rest of the text transliterated.
# Greek by ELOT 743 / ISO 843 (the GSM-7 capitals ΔΦΓΛΩΠΨΣΘΞ among them).
_GREEK = dict(zip("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ", "A V G D E Z I TH I K L M N X O P R S T Y F CH PS O".split()))
_TRANSLITERATIONS = {
    **_GREEK, **{capital.lower(): latin.lower() for capital, latin in _GREEK.items()}, "ς": "s",
    **dict.fromkeys("ßẞ", "ss"), "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE",
    "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i",
    "ŋ": "ng", "Ŋ": "Ng", "€": "EUR", "£": "GBP", "¥": "JPY", "$": "USD", "@": "(at)", "¡": "!", "¿": "?",
    **dict.fromkeys("‘’‚‛′`´", "'"), **dict.fromkeys("“”„‟″«»", '"'), **dict.fromkeys("‹›", "'"),
    **dict.fromkeys("‐‑‒–—―−_~", "-"), "…": "...", **dict.fromkeys("•·", "*"),
    **dict.fromkeys("[{", "("), **dict.fromkeys("]}", ")"), **dict.fromkeys("\\|", "/"),
    **dict.fromkeys("\u00a0\u2007\u2009\u200a\u202f", " "),
}


def _same_in_ascii_and_gsm7(text: str) -> bool:
    return all(ch in _SAME_IN_ASCII_AND_GSM7 for ch in text)


def spelling(ch: str, fits) -> str | None:
    """`ch` itself if it `fits`, else its spelling from the table, else the letter without its
    accents (NFKD), if that fits; None when none of them does."""
    if fits(ch):
        return ch
    for candidate in (_TRANSLITERATIONS.get(ch), _without_accents(ch)):
        if candidate and fits(candidate):
            return candidate
    return None


def transliterate(text: str, fits=_same_in_ascii_and_gsm7) -> str:
    """`text` with each character that does not `fit` written with ones that do (`spelling`).
    A character with no spelling (an emoji, a letter of another script) is left out; none
    becomes "?"."""
    return "".join(spelt for spelt in (spelling(ch, fits) for ch in text) if spelt is not None)


def _without_accents(ch: str) -> str:
    return "".join(part for part in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(part))


def receipt_short_message(text: str, coding: int | None) -> tuple[int, bytes]:
    """(data_coding, short_message) of a receipt, in the alphabet its ESME wrote the message in
    (`coding`, from `text_coding`), so a client that sent "Grüße" reads "Grüße" back, never
    "Gr??e": GSM-7 (0), ASCII (1) or Latin-1 (3). The fields before "text:" are the same in all.
    UCS-2, or no `coding` (a message of an older gsmgw): data_coding 0 with characters that read
    the same in ASCII and GSM-7, the others transliterated (see `_TRANSLITERATIONS`)."""
    if coding == DC_DEFAULT:
        return DC_DEFAULT, bytes(encode_septets(transliterate(text, is_gsm7)))
    if coding == DC_IA5:
        return DC_IA5, transliterate(text, str.isascii).encode("ascii")
    if coding == DC_LATIN1:
        return DC_LATIN1, transliterate(text, lambda part: all(ord(ch) < 0x100 for ch in part)).encode("latin-1")
    return DC_DEFAULT, bytes(encode_septets(transliterate(text)))


def parse_smpp_time(value: str, now: datetime, status: int) -> datetime | None:
    """An SMPP time field (SMPP 3.4 §7.1.1, "YYMMDDhhmmsstnnp") as an aware datetime.

    Empty means "not given" (None). p is "+"/"-" for an absolute local time nn quarter hours
    ahead of / behind UTC, or "R" for a period relative to `now` (years of 365 days, months of
    30 days, as SMSCs count them). MessageError(status) for anything else.
    """
    if not value:
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise MessageError(f"time {value!r} is not in the SMPP form YYMMDDhhmmsstnnp", status)
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(value[12]), int(value[13:15]), value[15]
    if sign == "R":
        moment = now + timedelta(days=yy * 365 + mo * 30 + dd, hours=hh, minutes=mi, seconds=ss)
    else:
        if quarters > 48:
            raise MessageError(f"time {value!r}: UTC offset of {quarters} quarter hours is impossible", status)
        offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
        try:
            moment = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=timezone(offset))
        except ValueError as exc:
            raise MessageError(f"time {value!r}: {exc}", status) from None
    try:
        return bounded_time(moment, now, f"time {value!r}:")
    except DurationTooLong as exc:
        raise MessageError(str(exc), status) from None
