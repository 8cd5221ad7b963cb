"""SMPP 3.4 PDUs, sans-IO: bytes in, PDUs out; PDUs in, bytes out.

Reads: bytes from whoever owns the socket (`PduReader.feed`). Writes: nothing; `encode` returns
bytes. No sockets, no clocks, no asyncio, so every rule here is tested on byte vectors.

Trust: the peer is untrusted. Every read is bounds-checked and an error names the field and the
SMPP command_status that answers it (`PduError.status`). Two kinds of failure:
- `MalformedPdu` (an event): the frame was sane (command_length within bounds) but its body was
  not. The caller answers with generic_nack and the stream stays in step, because the length told
  us where the next PDU starts.
- `FramingError` (an exception): the command_length itself is impossible. There is no way to find
  the next PDU, so the caller must close the connection.

References are to the SMPP v3.4 specification (Issue 1.2, 1999), "SMPP 3.4 §x".
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Union

HEADER = struct.Struct(">IIII")
HEADER_LENGTH = HEADER.size  # 16 octets: command_length, command_id, command_status, sequence_number

# SMPP 3.4 §2.2.1 sets no upper bound on command_length. The largest legal PDU we accept is a
# submit_sm with every C-string at its maximum and a 64 KiB message_payload TLV (§5.3.2.32, the
# TLV length field is 16 bits). Anything beyond that cannot be a PDU we could use, and reading it
# would let one client make us buffer without limit.
MAX_COMMAND_LENGTH = 70_000


class CommandId(enum.IntEnum):
    """SMPP 3.4 §5.1.2.1 command_id values."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & 0x80000000)


RESPONSE_BIT = 0x80000000


class Status(enum.IntEnum):
    """SMPP 3.4 §5.1.3 command_status values (the ones gsmgw sends or must name)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVESMCLASS = 0x00000043
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVDSTTON = 0x00000050
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RUNKNOWNERR = 0x000000FF
    # SMPP 3.4 has no code for an unsupported data_coding. SMPP 5.0 §4.7.6 added this one, and
    # clients and SMSCs of the 3.4 era use it too; it tells the client exactly what to change.
    ESME_RINVDCS = 0x00000104


class Tag(enum.IntEnum):
    """SMPP 3.4 §5.3.2 optional parameter (TLV) tags that gsmgw reads or writes."""

    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class MessageState(enum.IntEnum):
    """SMPP 3.4 §5.2.28 message_state."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


# SMPP 3.4 §5.2.12 esm_class bits that gsmgw looks at.
ESM_UDHI = 0x40
ESM_DELIVERY_RECEIPT = 0x04
ESM_MESSAGE_TYPE_MASK = 0x3C

# The value lengths a TLV must have (SMPP 3.4 §5.3.2.x); tags not listed here are taken as they
# come, because §3.2.3 says an unknown or unused optional parameter is to be ignored, not refused.
_TLV_FIXED_LENGTH = {
    Tag.USER_MESSAGE_REFERENCE: 2,
    Tag.SOURCE_PORT: 2,
    Tag.DESTINATION_PORT: 2,
    Tag.SAR_MSG_REF_NUM: 2,
    Tag.SAR_TOTAL_SEGMENTS: 1,
    Tag.SAR_SEGMENT_SEQNUM: 1,
    Tag.SC_INTERFACE_VERSION: 1,
    Tag.NETWORK_ERROR_CODE: 3,
    Tag.MESSAGE_STATE: 1,
}


class PduError(ValueError):
    """A PDU body that cannot be read; `status` is the command_status that answers it."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class FramingError(ValueError):
    """The command_length cannot be right, so the stream cannot be resynchronised: close it."""


# ---- body layouts -------------------------------------------------------------------------
# Each field is (name, kind, limit):
#   "c"  C-Octet String, NUL-terminated; limit = maximum size including the NUL (SMPP 3.4 §3.1)
#   "u8" / "u32"  integers, big-endian
#   "sm" short_message, preceded by its 1-octet sm_length (SMPP 3.4 §5.2.21, §5.2.22)
Field = tuple[str, str, int]

_BIND: list[Field] = [  # SMPP 3.4 §4.1.1, §4.1.3, §4.1.5
    ("system_id", "c", 16),
    ("password", "c", 9),
    ("system_type", "c", 13),
    ("interface_version", "u8", 0),
    ("addr_ton", "u8", 0),
    ("addr_npi", "u8", 0),
    ("address_range", "c", 41),
]
_BIND_RESP: list[Field] = [("system_id", "c", 16)]  # SMPP 3.4 §4.1.2
_SM: list[Field] = [  # submit_sm SMPP 3.4 §4.4.1; deliver_sm §4.6.1 has the same layout
    ("service_type", "c", 6),
    ("source_addr_ton", "u8", 0),
    ("source_addr_npi", "u8", 0),
    ("source_addr", "c", 21),
    ("dest_addr_ton", "u8", 0),
    ("dest_addr_npi", "u8", 0),
    ("destination_addr", "c", 21),
    ("esm_class", "u8", 0),
    ("protocol_id", "u8", 0),
    ("priority_flag", "u8", 0),
    ("schedule_delivery_time", "c", 17),
    ("validity_period", "c", 17),
    ("registered_delivery", "u8", 0),
    ("replace_if_present_flag", "u8", 0),
    ("data_coding", "u8", 0),
    ("sm_default_msg_id", "u8", 0),
    ("short_message", "sm", 254),
]
_MESSAGE_ID: list[Field] = [("message_id", "c", 65)]  # submit_sm_resp §4.4.2, deliver_sm_resp §4.6.2
_QUERY_SM: list[Field] = [  # SMPP 3.4 §4.8.1
    ("message_id", "c", 65),
    ("source_addr_ton", "u8", 0),
    ("source_addr_npi", "u8", 0),
    ("source_addr", "c", 21),
]
_QUERY_SM_RESP: list[Field] = [  # SMPP 3.4 §4.8.2
    ("message_id", "c", 65),
    ("final_date", "c", 17),
    ("message_state", "u8", 0),
    ("error_code", "u8", 0),
]
_OUTBIND: list[Field] = [("system_id", "c", 16), ("password", "c", 9)]  # SMPP 3.4 §4.1.7

LAYOUTS: dict[CommandId, list[Field]] = {
    CommandId.GENERIC_NACK: [],
    CommandId.BIND_RECEIVER: _BIND,
    CommandId.BIND_TRANSMITTER: _BIND,
    CommandId.BIND_TRANSCEIVER: _BIND,
    CommandId.BIND_RECEIVER_RESP: _BIND_RESP,
    CommandId.BIND_TRANSMITTER_RESP: _BIND_RESP,
    CommandId.BIND_TRANSCEIVER_RESP: _BIND_RESP,
    CommandId.OUTBIND: _OUTBIND,
    CommandId.UNBIND: [],
    CommandId.UNBIND_RESP: [],
    CommandId.ENQUIRE_LINK: [],
    CommandId.ENQUIRE_LINK_RESP: [],
    CommandId.SUBMIT_SM: _SM,
    CommandId.SUBMIT_SM_RESP: _MESSAGE_ID,
    CommandId.DELIVER_SM: _SM,
    CommandId.DELIVER_SM_RESP: _MESSAGE_ID,
    CommandId.QUERY_SM: _QUERY_SM,
    CommandId.QUERY_SM_RESP: _QUERY_SM_RESP,
}

# Commands whose body may carry TLVs after the mandatory fields.
_TAKES_TLVS = {
    CommandId.SUBMIT_SM,
    CommandId.DELIVER_SM,
    CommandId.BIND_RECEIVER_RESP,
    CommandId.BIND_TRANSMITTER_RESP,
    CommandId.BIND_TRANSCEIVER_RESP,
}

# SMPP 3.4 §4.1.2, §4.4.2, §4.6.2: the body of these responses is left out when command_status
# is not zero. When reading we accept an empty body whatever the status: many ESMEs answer
# deliver_sm with a bare 16-octet deliver_sm_resp, without the NULL message_id.
_BODY_OMITTED_ON_ERROR = {
    CommandId.BIND_RECEIVER_RESP,
    CommandId.BIND_TRANSMITTER_RESP,
    CommandId.BIND_TRANSCEIVER_RESP,
    CommandId.SUBMIT_SM_RESP,
    CommandId.DELIVER_SM_RESP,
    CommandId.QUERY_SM_RESP,
}

Value = Union[int, str, bytes]


@dataclass
class Pdu:
    """One SMPP PDU. `params` holds the mandatory fields by their spec names (C-strings as
    `str`, decoded as Latin-1 so every byte survives; short_message as `bytes`); `tlvs` holds the
    optional parameters by tag, values as raw bytes, in the order they came."""

    command_id: CommandId
    sequence: int
    status: int = 0
    params: dict[str, Value] = field(default_factory=dict)
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def octets(self, name: str) -> bytes:
        """A mandatory octet-string field (short_message) as the bytes it was read as."""
        value = self.params[name]
        if not isinstance(value, bytes):
            raise TypeError(f"{name} holds {type(value).__name__}, not octets")
        return value

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlvs.get(tag)
        return None if value is None else int.from_bytes(value, "big")

    def tlv_cstring(self, tag: int) -> str | None:
        value = self.tlvs.get(tag)
        return None if value is None else value.split(b"\0", 1)[0].decode("latin-1")

    @property
    def name(self) -> str:
        return self.command_id.name.lower()


@dataclass(frozen=True)
class MalformedPdu:
    """A frame with a sane length whose body could not be read. Answer with generic_nack
    (`status`, `sequence`) and go on reading: the stream is still in step."""

    command_id: int
    sequence: int
    status: int
    reason: str
    header_status: int = 0  # the command_status the peer put in the header


@dataclass(frozen=True)
class NeedData:
    """Not a whole PDU buffered yet."""


NEED_DATA = NeedData()


# Bind fields read with more room than SMPP 3.4 §4.1.1 gives them. Clients exist that send a
# longer password or system_id than 8/15 octets, and gsmgw's config does not limit them, so
# refusing such a bind would lock out a correctly configured client for no gain.
_LENIENT_READ = {"system_id": 65, "password": 65, "system_type": 65, "address_range": 65}


def _read_cstring(body: bytes, pos: int, name: str, limit: int) -> tuple[str, int]:
    """SMPP 3.4 §3.1: a C-Octet String ends with NUL, and `limit` counts that NUL."""
    limit = max(limit, _LENIENT_READ.get(name, 0))
    end = body.find(b"\0", pos, pos + limit)
    if end < 0:
        if body.find(b"\0", pos) < 0:
            raise PduError(f"{name}: no NUL terminator before the end of the PDU", Status.ESME_RINVCMDLEN)
        raise PduError(f"{name}: longer than {limit - 1} octets", _status_for_long_field(name))
    return body[pos:end].decode("latin-1"), end + 1


def _status_for_long_field(name: str) -> int:
    # The statuses SMPP 3.4 §5.1.3 has for a field that is too long; the rest is a bad length.
    return {
        "source_addr": Status.ESME_RINVSRCADR,
        "destination_addr": Status.ESME_RINVDSTADR,
        "system_id": Status.ESME_RINVSYSID,
        "password": Status.ESME_RINVPASWD,
        "message_id": Status.ESME_RINVMSGID,
        "schedule_delivery_time": Status.ESME_RINVSCHED,
        "validity_period": Status.ESME_RINVEXPIRY,
    }.get(name, Status.ESME_RINVCMDLEN)


def _decode_body(command_id: CommandId, status: int, body: bytes) -> tuple[dict[str, Value], dict[int, bytes]]:
    params: dict[str, Value] = {}
    pos = 0
    layout = LAYOUTS[command_id]
    if command_id in _BODY_OMITTED_ON_ERROR and not body:
        return params, {}
    for name, kind, limit in layout:
        if kind == "c":
            params[name], pos = _read_cstring(body, pos, name, limit)
        elif kind == "u8":
            if pos + 1 > len(body):
                raise PduError(f"{name}: PDU ends before this field", Status.ESME_RINVCMDLEN)
            params[name] = body[pos]
            pos += 1
        elif kind == "sm":
            if pos + 1 > len(body):
                raise PduError("sm_length: PDU ends before this field", Status.ESME_RINVCMDLEN)
            sm_length = body[pos]
            pos += 1
            if sm_length > limit:  # SMPP 3.4 §5.2.21: 0..254
                raise PduError(f"sm_length {sm_length} is over {limit}", Status.ESME_RINVMSGLEN)
            if pos + sm_length > len(body):
                raise PduError(
                    f"sm_length {sm_length} runs past the end of the PDU ({len(body) - pos} octets left)",
                    Status.ESME_RINVMSGLEN,
                )
            params[name] = bytes(body[pos : pos + sm_length])
            pos += sm_length
        else:  # pragma: no cover - the layout tables above only use the kinds handled here
            raise AssertionError(kind)
    tlvs: dict[int, bytes] = {}
    if pos < len(body):
        if command_id not in _TAKES_TLVS:
            raise PduError(
                f"{len(body) - pos} octets after the last field of {command_id.name.lower()}",
                Status.ESME_RINVCMDLEN,
            )
        tlvs = _decode_tlvs(body, pos)
    return params, tlvs


def _decode_tlvs(body: bytes, pos: int) -> dict[int, bytes]:
    """SMPP 3.4 §3.2.3: tag (2), length (2), value (length octets), repeated to the end."""
    tlvs: dict[int, bytes] = {}
    while pos < len(body):
        if pos + 4 > len(body):
            raise PduError("optional parameter: fewer than 4 octets left for tag and length", Status.ESME_RINVOPTPARSTREAM)
        tag, length = struct.unpack_from(">HH", body, pos)
        pos += 4
        if pos + length > len(body):
            raise PduError(
                f"optional parameter 0x{tag:04x}: length {length} runs past the end of the PDU",
                Status.ESME_RINVOPTPARSTREAM,
            )
        expected = _TLV_FIXED_LENGTH.get(tag)
        if expected is not None and length != expected:
            raise PduError(
                f"optional parameter {Tag(tag).name.lower()}: length {length}, must be {expected}",
                Status.ESME_RINVPARLEN,
            )
        tlvs[tag] = bytes(body[pos : pos + length])
        pos += length
    return tlvs


def decode(frame: bytes) -> Pdu:
    """Decode one whole PDU (header included). Raises FramingError when command_length does not
    match the frame, PduError (with `.status`) for an unknown command or a bad body."""
    if len(frame) < HEADER_LENGTH:
        raise FramingError(f"a PDU needs at least {HEADER_LENGTH} octets, got {len(frame)}")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != len(frame):
        raise FramingError(f"command_length {length} but the frame has {len(frame)} octets")
    try:
        cid = CommandId(command_id)
    except ValueError:
        raise PduError(f"unknown command_id 0x{command_id:08x}", Status.ESME_RINVCMDID) from None
    if cid not in LAYOUTS:
        raise PduError(f"{cid.name.lower()} is not supported", Status.ESME_RINVCMDID)
    params, tlvs = _decode_body(cid, status, frame[HEADER_LENGTH:])
    return Pdu(cid, sequence, status, params, tlvs)


class PduReader:
    """Splits a byte stream into PDUs (SMPP 3.4 §2.2.1, §3.2).

    `feed(data)` then call `next_event()` until it returns NEED_DATA. Events are `Pdu` or
    `MalformedPdu`. A hopeless command_length raises FramingError, and after that the reader is
    dead: the caller closes the connection."""

    def __init__(self, max_length: int = MAX_COMMAND_LENGTH):
        self._buffer = bytearray()
        self._max_length = max_length
        self._dead: str | None = None

    def feed(self, data: bytes) -> None:
        if self._dead is None:
            self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def next_event(self) -> Pdu | MalformedPdu | NeedData:
        if self._dead is not None:
            raise FramingError(self._dead)
        if len(self._buffer) < 4:
            return NEED_DATA
        length = int.from_bytes(self._buffer[:4], "big")
        if length < HEADER_LENGTH or length > self._max_length:
            self._dead = (
                f"command_length {length} is outside {HEADER_LENGTH}..{self._max_length}; "
                "the stream cannot be resynchronised"
            )
            raise FramingError(self._dead)
        if len(self._buffer) < length:
            return NEED_DATA
        frame = bytes(self._buffer[:length])
        del self._buffer[:length]
        _, command_id, header_status, sequence = HEADER.unpack_from(frame)
        try:
            return decode(frame)
        except PduError as exc:
            return MalformedPdu(command_id, sequence, exc.status, str(exc), header_status)


# ---- building -----------------------------------------------------------------------------


def _encode_cstring(name: str, value: Value, limit: int) -> bytes:
    raw = value.encode("latin-1") if isinstance(value, str) else bytes(value)
    if b"\0" in raw:
        raise ValueError(f"{name} must not contain NUL")
    if len(raw) + 1 > limit:
        raise ValueError(f"{name} is {len(raw)} octets; SMPP 3.4 allows {limit - 1}")
    return raw + b"\0"


def encode(pdu: Pdu) -> bytes:
    """Build the wire form of `pdu`. Missing mandatory fields default to 0 / empty, as SMPP 3.4
    §3.1 calls NULL. Raises ValueError for a value that does not fit its field."""
    body = bytearray()
    omit_body = pdu.status != 0 and pdu.command_id in _BODY_OMITTED_ON_ERROR
    if not omit_body:
        for name, kind, limit in LAYOUTS[pdu.command_id]:
            value = pdu.params.get(name, b"" if kind in ("c", "sm") else 0)
            if kind == "c":
                body += _encode_cstring(name, value, limit)
            elif kind == "u8":
                body.append(int(value))
            elif kind == "sm":
                raw = bytes(value)  # type: ignore[arg-type]
                if len(raw) > limit:
                    raise ValueError(f"short_message is {len(raw)} octets; use message_payload above {limit}")
                body.append(len(raw))
                body += raw
        for tag, value in pdu.tlvs.items():
            body += struct.pack(">HH", tag, len(value)) + value
    return HEADER.pack(HEADER_LENGTH + len(body), int(pdu.command_id), pdu.status, pdu.sequence) + body


def response_to(request: Pdu, status: int = 0, **params: Value) -> Pdu:
    """The response PDU for `request`: same sequence number, command_id with the response bit."""
    return Pdu(CommandId(int(request.command_id) | RESPONSE_BIT), request.sequence, status, dict(params))


def generic_nack(sequence: int, status: int) -> Pdu:
    """SMPP 3.4 §4.3: answers a PDU that could not be read or is not supported."""
    return Pdu(CommandId.GENERIC_NACK, sequence, status)


def tlv_u8(value: int) -> bytes:
    return bytes([value])


def tlv_cstring(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"
