"""SMS TPDUs: encode SMS-SUBMIT (and SMS-DELIVER / SMS-STATUS-REPORT for the
simulator); decode SMS-DELIVER, SMS-SUBMIT and SMS-STATUS-REPORT.

Pure code: no I/O, no clock, no randomness (time and references come in as
parameters).

Spec: 3GPP TS 23.040 §9.2.2 (TPDU layouts), §9.2.3 (fields), TS 23.038 §4
(data coding scheme), TS 27.005 §3.3.1 (the SMSC field and the length that
AT+CMGS wants).

Hex in PDU mode is what modems print for +CMGR/+CMGL/+CMT/+CDS: the SMSC
field, then the TPDU. Every read is bounds-checked; a bad or short PDU raises
`DecodeError` naming the field and its octet offset in the PDU as given.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Sequence

from gsmgw.sms import address as addr
from gsmgw.sms import gsm7
from gsmgw.sms import national as national_tables
from gsmgw.sms import udh as udh_rules
from gsmgw.sms.errors import AddressError, DecodeError
from gsmgw.sms.timestamp import SmsTime, read_time
from gsmgw.sms.udh import (
    IEI_CONCAT_8,
    IEI_CONCAT_16,
    IEI_NATIONAL_LOCKING_SHIFT,
    IEI_NATIONAL_SINGLE_SHIFT,
    IEI_PORTS_8,
    IEI_PORTS_16,
    IEI_SPECIAL_SMS,
)
from gsmgw.sms.validity import parse_validity
from gsmgw.sms.split import (
    EIGHT_BIT,
    GSM7,
    UCS2,
    USER_DATA_OCTETS,
    Encoding,
    check_part_limit,
    choose_encoding,
    clean_text,
    split_data,
    split_text,
)

# TP-MTI, bits 1..0 of the first octet (TS 23.040 §9.2.3.1), as a mobile sees them.
MTI_DELIVER = 0b00
MTI_SUBMIT = 0b01
MTI_STATUS_REPORT = 0b10

TYPE_DELIVER = "deliver"
TYPE_SUBMIT = "submit"
TYPE_STATUS_REPORT = "status-report"

# First-octet flags (TS 23.040 §9.2.3.1 ff.)
FO_MMS_OR_RD = 0x04  # DELIVER/REPORT: TP-MMS "no more messages"; SUBMIT: TP-RD
FO_LP = 0x08  # DELIVER/REPORT: TP-LP loop prevention
FO_SRR = 0x20  # SUBMIT: TP-SRR; DELIVER: TP-SRI; REPORT: TP-SRQ
FO_UDHI = 0x40  # TP-UDHI: user data starts with a header
FO_RP = 0x80  # TP-RP reply path

# TP-VPF, bits 4..3 of an SMS-SUBMIT first octet (TS 23.040 §9.2.3.3).
VPF_NONE = 0b00
VPF_ENHANCED = 0b01
VPF_RELATIVE = 0b10
VPF_ABSOLUTE = 0b11

# Information element identifiers (TS 23.040 §9.2.3.24) live in gsmgw.sms.udh.

# TP-PI bits of a status report (TS 23.040 §9.2.3.27).
PI_PID = 0x01
PI_DCS = 0x02
PI_UDL = 0x04
PI_EXTENSION = 0x80

MAX_SMSC_OCTETS = 12  # TS 24.011 §8.2.5.2: RP address value of at most 12 octets with its TOA
MAX_ADDRESS_SEMI_OCTETS = 20  # TS 23.040 §9.1.2.5: at most 10 octets of value


@dataclass(frozen=True)
class Concat:
    """Concatenation IE (TS 23.040 §9.2.3.24.1/.8): reference, parts in all, this part's number (1-based)."""

    ref: int
    total: int
    seq: int
    bits: int  # 8 or 16: width of the reference


@dataclass(frozen=True)
class Ports:
    """Application port addressing IE (TS 23.040 §9.2.3.24.3/.4)."""

    destination: int
    origin: int
    bits: int


@dataclass(frozen=True)
class DataCoding:
    """TP-DCS read per TS 23.038 §4."""

    alphabet: str
    msg_class: int | None
    compressed: bool = False
    auto_delete: bool = False
    # Message waiting indication groups 1100..1110: (store, active, kind 0..3 =
    # voicemail/fax/e-mail/other); None otherwise.
    waiting: tuple[bool, bool, int] | None = None


@dataclass(frozen=True)
class Sms:
    """A decoded SMS TPDU. Fields that a TPDU type does not have are None.

    `number` is the sender (deliver), recipient (submit, status report).
    `text` is the message text; for 8-bit data (and compressed text, which
    gsmgw does not decompress) it is the uppercase hex of `data`.
    `data` is the user data after the header: septet values one per byte for
    GSM-7 (so parts can be joined before decoding), raw octets otherwise.
    """

    type: str
    smsc: str | None = None
    number: str | None = None
    number_toa: int | None = None
    text: str | None = None
    alphabet: str | None = None
    msg_class: int | None = None
    timestamp: datetime | None = None  # TP-SCTS; naive when its zone was unreadable, None when its date was
    concat: Concat | None = None
    mr: int | None = None
    status: int | None = None
    discharge: datetime | None = None  # TP-DT, read as leniently
    report_requested: bool | None = None
    data: bytes | None = None
    ports: Ports | None = None
    pid: int | None = None
    dcs: int | None = None
    # Less common fields.
    validity: int | datetime | bytes | None = None  # SUBMIT TP-VP: relative int, absolute, or enhanced raw
    compressed: bool = False
    waiting: tuple[bool, bool, int] | None = None
    udh: tuple[tuple[int, bytes], ...] = field(default=())  # every IE as (IEI, data)
    national: tuple[int, int] = (0, 0)  # GSM-7 (locking, single) shift language ids from the UDH
    reply_path: bool = False
    more_messages: bool | None = None  # DELIVER/REPORT: TP-MMS inverted (True = more are waiting)
    report_qualifier: bool | None = None  # REPORT: TP-SRQ (True = report of an SMS-COMMAND)
    scts: SmsTime | None = None  # TP-SCTS field by field (gsmgw.sms.timestamp), None where absent
    dt: SmsTime | None = None  # TP-DT field by field
    tpdu_length: int = 0  # octets of the TPDU (what AT+CMGR/+CMT report as <length>)
    trailing: int = 0  # octets after the last field (padding some modems add); not part of the message

    @property
    def number_type(self) -> str | None:
        """The type of number in words ("international", "alphanumeric", ...)."""
        return None if self.number_toa is None else addr.ton_name(self.number_toa)

    @property
    def user_udh(self) -> bytes:
        """The sender's own header, UDHL first, without concatenation (what smstools3 writes as
        `UDH-DATA:`; the same for every part of a message); b"" when nothing else was there."""
        return udh_rules.without_concatenation(self.udh)

    @property
    def is_binary(self) -> bool:
        """8-bit data, or a header with more than concatenation and national shifts (ports, WAP push,
        OTA, special indications): such a message is kept as data and header, not read as text."""
        return self.alphabet == EIGHT_BIT or any(
            iei not in udh_rules.CONCAT_IEIS + udh_rules.NATIONAL_IEIS for iei, _ in self.udh
        )

    def to_json(self) -> dict:
        """The keys of `gsmgw pdu decode` (README), null where they do not apply; and, only
        when a time stamp was not whole, `timestamp_fields`/`discharge_fields`: what its digits
        said, null where they were not decimal (a PDU is never refused for its time stamp)."""
        fields = {
            key: time.to_json()
            for key, time in (("timestamp_fields", self.scts), ("discharge_fields", self.dt))
            if time is not None and not time.complete
        }
        return {
            "type": self.type,
            "smsc": self.smsc,
            "number": self.number,
            "text": self.text,
            "alphabet": self.alphabet,
            "class": self.msg_class,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "concat": (
                {"ref": self.concat.ref, "total": self.concat.total, "seq": self.concat.seq}
                if self.concat
                else None
            ),
            "mr": self.mr,
            "status": self.status,
            "discharge": self.discharge.isoformat() if self.discharge else None,
            "report_requested": self.report_requested,
            "udh": self.user_udh.hex().upper() or None,
            "port": self.ports.destination if self.ports else None,
            "from_port": self.ports.origin if self.ports else None,
            "national": self._national_codes(),
            **fields,
        }

    def _national_codes(self) -> dict[str, str | None] | None:
        """{"locking": "hi", "single": "hi"} as `gsmgw pdu encode` writes it; None for the default
        tables. An identifier TS 23.038 does not define reads with the default table: None there."""
        if self.alphabet != GSM7 or self.national == (0, 0):
            return None
        locking, single = self.national
        return {
            "locking": national_tables.BY_ID[locking].code if locking in national_tables.LOCKING else None,
            "single": national_tables.BY_ID[single].code if single in national_tables.SINGLE else None,
        }

    @property
    def times_complete(self) -> bool:
        """Every time stamp of the TPDU read whole (zone included)."""
        return all(time.complete for time in (self.scts, self.dt) if time is not None)


@dataclass(frozen=True)
class SubmitPart:
    """One SMS-SUBMIT ready for AT+CMGS=<length> and the hex after the prompt."""

    seq: int
    total: int
    length: int  # TPDU octets, i.e. without the SMSC field (TS 27.005 §3.5.1)
    pdu: str  # uppercase hex, starting with the SMSC field ("00": the SIM's SMSC)
    tpdu: bytes
    alphabet: str = GSM7
    text: str = ""  # this part's text; for 8-bit data its hex
    ref: int | None = None
    national: tuple[int, int] = (0, 0)  # (locking, single) shift language ids of GSM-7 text
    udh: bytes = b""  # this part's whole user data header, UDHL first (b"" for none)


# ---------------------------------------------------------------------------
# Reading


class _Reader:
    """Bounds-checked reads over the PDU; every error names the field and octet offset."""

    def __init__(self, data: bytes, start: int = 0):
        self.data = data
        self.pos = start

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def octet(self, name: str) -> int:
        if self.pos >= len(self.data):
            raise DecodeError(f"the PDU ends before {name}", field=name, offset=self.pos)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int, name: str) -> bytes:
        if self.pos + count > len(self.data):
            raise DecodeError(
                f"{name} needs {count} octets but only {self.remaining()} are left",
                field=name,
                offset=self.pos,
            )
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value


def pdu_bytes(pdu: str | bytes | bytearray) -> bytes:
    """Hex as modems print it (any case, with whitespace) -> bytes; DecodeError says which character is bad."""
    if isinstance(pdu, (bytes, bytearray, memoryview)):
        data = bytes(pdu)
    elif isinstance(pdu, str):
        compact = "".join(pdu.split())
        for position, char in enumerate(compact):
            if char not in "0123456789abcdefABCDEF":
                raise DecodeError(f"{char!r} at hex position {position} is not a hex digit", field="hex")
        if len(compact) % 2:
            raise DecodeError(
                f"the hex has an odd number of digits ({len(compact)}); a PDU is whole octets", field="hex"
            )
        data = bytes.fromhex(compact)
    else:
        raise DecodeError(f"a PDU must be hex text or bytes, not {type(pdu).__name__}", field="hex")
    if not data:
        raise DecodeError("the PDU is empty", field="hex")
    return data


def decode_dcs(dcs: int) -> DataCoding:
    """TP-DCS -> alphabet, class, flags (TS 23.038 §4).

    00xx xxxx general data coding, 01xx xxxx the same marked for automatic
    deletion: bit 5 compressed, bit 4 "bits 1..0 are a class", bits 3..2
    alphabet (00 GSM-7, 01 8-bit, 10 UCS-2, 11 reserved).
    1000..1011 reserved groups. 1100/1101/1110 message waiting indication
    (discard / store with GSM-7, store with UCS-2). 1111: bit 2 alphabet
    (GSM-7 or 8-bit), bits 1..0 class.
    §4: "Any reserved codings shall be assumed to be the GSM 7 bit default alphabet."
    """
    group = dcs >> 4
    if group <= 0b0111:
        alphabet = (GSM7, EIGHT_BIT, UCS2, GSM7)[(dcs >> 2) & 0x03]
        return DataCoding(
            alphabet=alphabet,
            msg_class=dcs & 0x03 if dcs & 0x10 else None,
            compressed=bool(dcs & 0x20),
            auto_delete=bool(dcs & 0x40),
        )
    if group <= 0b1011:
        return DataCoding(alphabet=GSM7, msg_class=None)
    if group <= 0b1110:
        return DataCoding(
            alphabet=UCS2 if group == 0b1110 else GSM7,
            msg_class=None,
            waiting=(group != 0b1100, bool(dcs & 0x08), dcs & 0x03),
        )
    return DataCoding(alphabet=EIGHT_BIT if dcs & 0x04 else GSM7, msg_class=dcs & 0x03)


def decode_timestamp(raw: bytes) -> SmsTime:
    """TP-SCTS / TP-DT / absolute TP-VP (TS 23.040 §9.2.3.11), read leniently: a time stamp
    never makes a PDU unreadable (gsmgw.sms.timestamp says why and what is kept)."""
    return read_time(raw)


def encode_timestamp(moment: datetime) -> bytes:
    """An aware datetime -> TP-SCTS (TS 23.040 §9.2.3.11); the offset is rounded to quarter hours."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("a TP-SCTS needs a time with a UTC offset (an aware datetime)")
    quarters = round(offset.total_seconds() / 900)
    if not -79 <= quarters <= 79:
        raise ValueError(f"UTC offset {offset} cannot be written as a TP-SCTS time zone")
    if not 1990 <= moment.year <= 2089:
        raise ValueError(f"year {moment.year} cannot be written as a TP-SCTS (1990..2089)")

    def swapped(value: int) -> int:
        return (value // 10) | ((value % 10) << 4)

    fields = (moment.year % 100, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    tz = swapped(abs(quarters)) | (0x08 if quarters < 0 else 0)
    return bytes(swapped(value) for value in fields) + bytes((tz,))


def _read_address(reader: _Reader, name: str) -> tuple[str, int]:
    start = reader.pos
    semi_octets = reader.octet(f"{name} length")
    toa = reader.octet(f"{name} type")
    if semi_octets > MAX_ADDRESS_SEMI_OCTETS:
        raise DecodeError(
            f"{name} claims {semi_octets} digits; an address holds at most {MAX_ADDRESS_SEMI_OCTETS}",
            field=name,
            offset=start,
        )
    value = reader.take((semi_octets + 1) // 2, name)
    return addr.decode_address_value(semi_octets, toa, value), toa


def _read_smsc(reader: _Reader) -> str | None:
    start = reader.pos
    length = reader.octet("SMSC length")
    if length == 0:
        return None
    if length > MAX_SMSC_OCTETS:
        raise DecodeError(
            f"the SMSC field claims {length} octets, more than {MAX_SMSC_OCTETS}; if this PDU has no "
            f"SMSC field, decode it without one",
            field="SMSC length",
            offset=start,
        )
    toa = reader.octet("SMSC type")
    value = reader.take(length - 1, "SMSC address")
    digits = addr.decode_semi_octets(value)
    if (toa >> 4) & 0x07 == addr.TON_INTERNATIONAL and digits:
        return "+" + digits
    return digits or None


@dataclass(frozen=True)
class _Header:
    elements: tuple[tuple[int, bytes], ...] = ()
    concat: Concat | None = None
    ports: Ports | None = None
    national: tuple[int, int] = (0, 0)


def _parse_udh(header: bytes, offset: int) -> _Header:
    """Information elements of a user data header (TS 23.040 §9.2.3.24). `header` excludes UDHL."""
    elements = []
    concat = ports = None
    locking = single = 0
    index = 0
    while index < len(header):
        if index + 2 > len(header):
            raise DecodeError(
                "the user data header ends inside an information element", field="UDH", offset=offset + index
            )
        iei, length = header[index], header[index + 1]
        if index + 2 + length > len(header):
            raise DecodeError(
                f"information element {iei:02X} claims {length} octets, more than the header holds",
                field="UDH",
                offset=offset + index,
            )
        value = bytes(header[index + 2 : index + 2 + length])
        elements.append((iei, value))
        index += 2 + length
        # §9.2.3.24.1: a zero total or a sequence number of 0 or above the
        # total makes the receiver ignore the element; a repeated element
        # counts in its last occurrence (§9.2.3.24).
        if iei == IEI_CONCAT_8 and length == 3:
            ref, total, seq = value
            if total and 1 <= seq <= total:
                concat = Concat(ref=ref, total=total, seq=seq, bits=8)
        elif iei == IEI_CONCAT_16 and length == 4:
            ref, total, seq = (value[0] << 8) | value[1], value[2], value[3]
            if total and 1 <= seq <= total:
                concat = Concat(ref=ref, total=total, seq=seq, bits=16)
        elif iei == IEI_PORTS_8 and length == 2:
            ports = Ports(destination=value[0], origin=value[1], bits=8)
        elif iei == IEI_PORTS_16 and length == 4:
            ports = Ports(destination=(value[0] << 8) | value[1], origin=(value[2] << 8) | value[3], bits=16)
        elif iei == IEI_NATIONAL_SINGLE_SHIFT and length == 1:  # §9.2.3.24.15
            single = value[0]
        elif iei == IEI_NATIONAL_LOCKING_SHIFT and length == 1:  # §9.2.3.24.16
            locking = value[0]
    return _Header(tuple(elements), concat, ports, (locking, single))


@dataclass(frozen=True)
class _UserData:
    text: str
    data: bytes
    header: _Header


def _read_user_data(reader: _Reader, coding: DataCoding, udhi: bool) -> _UserData:
    """TP-UDL and TP-UD (TS 23.040 §9.2.3.16, §9.2.3.24). UDL counts septets for GSM-7, else octets."""
    udl_offset = reader.pos
    udl = reader.octet("TP-UDL")
    ud_offset = reader.pos
    septets = coding.alphabet == GSM7 and not coding.compressed
    if septets:
        if udl > 160:
            raise DecodeError(f"TP-UDL {udl} is more than 160 septets", field="TP-UDL", offset=udl_offset)
        needed = gsm7.packed_length(udl)
        unit = f"{udl} septets ({needed} octets)"
    else:
        if udl > USER_DATA_OCTETS:
            raise DecodeError(f"TP-UDL {udl} is more than 140 octets", field="TP-UDL", offset=udl_offset)
        needed = udl
        unit = f"{udl} octets"
    if reader.remaining() < needed:
        raise DecodeError(
            f"TP-UDL says {unit} of user data but only {reader.remaining()} octets follow",
            field="TP-UD",
            offset=ud_offset,
        )
    # Octets after the user data (some modems pad) are not part of the message.
    user_data = reader.take(needed, "TP-UD")

    header = _Header()
    header_octets = 0
    if udhi and needed > 0:
        udhl = user_data[0]
        header_octets = udhl + 1
        if header_octets > needed:
            raise DecodeError(
                f"the user data header length {udhl} is more than the {needed} octets of user data",
                field="TP-UDHL",
                offset=ud_offset,
            )
        header = _parse_udh(user_data[1:header_octets], ud_offset + 1)

    if septets:
        # After the header, fill bits pad to the next septet boundary (§9.2.3.24):
        # a 6-octet header is 48 bits, 7 septets are 49, so 1 fill bit.
        header_septets = (header_octets * 8 + 6) // 7
        if udl < header_septets:
            raise DecodeError(
                f"TP-UDL {udl} septets is shorter than the {header_octets}-octet user data header",
                field="TP-UDL",
                offset=udl_offset,
            )
        fill_bits = header_septets * 7 - header_octets * 8
        body = gsm7.unpack_septets(user_data[header_octets:], udl - header_septets, fill_bits)
        text = gsm7.decode_septets(body, *header.national)
    else:
        body = bytes(user_data[header_octets:])
        if coding.alphabet == UCS2 and not coding.compressed:
            # A lone surrogate half or an odd octet from a broken sender becomes U+FFFD.
            text = body.decode("utf-16-be", "replace")
        else:
            text = body.hex().upper()
    return _UserData(text=text, data=body, header=header)


def _decode_tpdu(data: bytes, start: int, smsc: str | None) -> Sms:
    reader = _Reader(data, start)
    sms = _read_tpdu(reader, start, smsc)
    return replace(sms, trailing=reader.remaining()) if reader.remaining() else sms


def _read_tpdu(reader: _Reader, start: int, smsc: str | None) -> Sms:
    data = reader.data
    first = reader.octet("TP-MTI")
    mti = first & 0x03
    udhi = bool(first & FO_UDHI)
    # Keyword arguments of Sms that every TPDU type shares (Sms checks them by name).
    common: dict[str, Any] = {"smsc": smsc, "reply_path": bool(first & FO_RP), "tpdu_length": len(data) - start}

    if mti == MTI_DELIVER:
        number, toa = _read_address(reader, "TP-OA")
        pid = reader.octet("TP-PID")
        dcs = reader.octet("TP-DCS")
        scts = decode_timestamp(reader.take(7, "TP-SCTS"))
        coding = decode_dcs(dcs)
        user = _read_user_data(reader, coding, udhi)
        return Sms(
            type=TYPE_DELIVER, number=number, number_toa=toa, timestamp=scts.moment, scts=scts,
            report_requested=bool(first & FO_SRR), more_messages=not first & FO_MMS_OR_RD,
            **_user_fields(user, coding, pid, dcs), **common,
        )  # fmt: skip

    if mti == MTI_SUBMIT:
        mr = reader.octet("TP-MR")
        number, toa = _read_address(reader, "TP-DA")
        pid = reader.octet("TP-PID")
        dcs = reader.octet("TP-DCS")
        vpf = (first >> 3) & 0x03
        validity: int | datetime | bytes | None = None
        if vpf == VPF_RELATIVE:
            validity = reader.octet("TP-VP")
        elif vpf == VPF_ABSOLUTE:
            absolute = decode_timestamp(reader.take(7, "TP-VP"))
            validity = absolute.moment or absolute.raw
        elif vpf == VPF_ENHANCED:
            validity = reader.take(7, "TP-VP")
        coding = decode_dcs(dcs)
        user = _read_user_data(reader, coding, udhi)
        return Sms(
            type=TYPE_SUBMIT, number=number, number_toa=toa, mr=mr, validity=validity,
            report_requested=bool(first & FO_SRR), **_user_fields(user, coding, pid, dcs), **common,
        )  # fmt: skip

    if mti == MTI_STATUS_REPORT:
        mr = reader.octet("TP-MR")
        number, toa = _read_address(reader, "TP-RA")
        scts = decode_timestamp(reader.take(7, "TP-SCTS"))
        dt = decode_timestamp(reader.take(7, "TP-DT"))
        status = reader.octet("TP-ST")
        report: dict[str, Any] = {
            "type": TYPE_STATUS_REPORT, "number": number, "number_toa": toa, "mr": mr,
            "timestamp": scts.moment, "discharge": dt.moment, "scts": scts, "dt": dt, "status": status,
            "more_messages": not first & FO_MMS_OR_RD, "report_qualifier": bool(first & FO_SRR),
        }  # fmt: skip
        # TS 23.040 §9.2.2.3: TP-PI and what it announces are optional.
        if reader.remaining() == 0:
            return Sms(**report, **common)
        optional_start = reader.pos
        try:
            return _read_report_optional(reader, report, common, udhi)
        except DecodeError:
            # The mandatory fields are whole and they are what a report is for. What follows
            # TP-ST does not read as TP-PI and its parameters: SIM records padded with FF, or
            # an SMSC that sets TP-PI bits without the parameters. Keep them as trailing octets.
            reader.pos = optional_start
            return Sms(**report, **common)

    raise DecodeError("TP-MTI 3 is reserved; this is not an SMS TPDU", field="TP-MTI", offset=start)


def _read_report_optional(
    reader: _Reader, report: dict[str, Any], common: dict[str, Any], udhi: bool
) -> Sms:
    """TS 23.040 §9.2.2.3 / §9.2.3.27: TP-PI, then the TP-PID, TP-DCS, TP-UDL (and TP-UD) it
    announces, in that order."""
    indicator = reader.octet("TP-PI")
    extension = indicator
    while extension & PI_EXTENSION and reader.remaining():
        extension = reader.octet("TP-PI extension")  # no extension bits are defined yet
    pid = reader.octet("TP-PID") if indicator & PI_PID else None
    dcs = reader.octet("TP-DCS") if indicator & PI_DCS else None
    if not indicator & PI_UDL:
        return Sms(**report, pid=pid, dcs=dcs, **common)
    # §9.2.3.27: without TP-DCS the user data is in the default alphabet.
    coding = decode_dcs(dcs if dcs is not None else 0)
    user = _read_user_data(reader, coding, udhi)
    return Sms(**report, **_user_fields(user, coding, pid, dcs), **common)


def _special_indication(elements: tuple[tuple[int, bytes], ...]) -> tuple[bool, bool, int] | None:
    """TS 23.040 §9.2.3.24.2 Special SMS Message Indication (IE 01) as (store, active, kind):
    octet 1 bit 7 is "store", bits 1-0 the basic kind (0 voice, 1 fax, 2 e-mail, 3 other);
    octet 2 is the number of messages waiting (0 = none, so the indication is cleared).
    Networks send voicemail notices this way as well as with the DCS groups 1100-1110."""
    for tag, value in elements:
        if tag == IEI_SPECIAL_SMS and len(value) == 2:
            return bool(value[0] & 0x80), value[1] > 0, value[0] & 0x03
    return None


def _user_fields(user: _UserData, coding: DataCoding, pid: int | None, dcs: int | None) -> dict[str, Any]:
    return {
        "text": user.text,
        "alphabet": EIGHT_BIT if coding.compressed else coding.alphabet,
        "msg_class": coding.msg_class,
        "concat": user.header.concat,
        "data": user.data,
        "ports": user.header.ports,
        "pid": pid,
        "dcs": dcs,
        "compressed": coding.compressed,
        "waiting": coding.waiting or _special_indication(user.header.elements),
        "udh": user.header.elements,
        "national": user.header.national,
    }


def decode_pdu(
    pdu: str | bytes,
    *,
    smsc_included: bool | None | Literal["first"] = "first",
    tpdu_length: int | None = None,
) -> Sms:
    """Decode an SMS-DELIVER, SMS-SUBMIT or SMS-STATUS-REPORT (TS 23.040 §9.2.2.1, §9.2.2.2, §9.2.2.3).

    `smsc_included`: True (what +CMGR/+CMGL/+CMT/+CDS print in PDU mode),
    False (a bare TPDU), None to try with the SMSC field first and then
    without, or "first" (the default): with the SMSC field, and only when
    that does not decode, bare if that reading uses every octet exactly
    (modems that print +CDS/+CMT without the SMSC field). `tpdu_length` (the <length> a modem reports) settles it instead:
    the octets before the last `tpdu_length` are the SMSC field.
    """
    data = pdu_bytes(pdu)
    if tpdu_length is not None:
        smsc_octets = len(data) - tpdu_length
        if tpdu_length < 1:
            raise DecodeError(f"a TPDU length of {tpdu_length} octets is impossible", field="length")
        if smsc_octets < 0:
            raise DecodeError(
                f"the modem announced {tpdu_length} TPDU octets but the PDU has only {len(data)}",
                field="length",
                offset=0,
            )
        if smsc_octets == 0:
            return _decode_tpdu(data, 0, None)
        if data[0] + 1 != smsc_octets:
            raise DecodeError(
                f"the SMSC field says {data[0]} octets but the length {tpdu_length} leaves "
                f"{smsc_octets - 1}",
                field="SMSC length",
                offset=0,
            )
        return _decode_with_smsc(data)
    if smsc_included is None:
        return _decode_either(data)
    if smsc_included == "first":
        try:
            with_smsc = _decode_with_smsc(data)
        except DecodeError as error:
            # Some modems print +CDS/+CMT without the SMSC field TS 27.005 §3.4.1 puts
            # first. Such a PDU read with one fails; read bare, it uses every octet exactly.
            try:
                bare = _decode_tpdu(data, 0, None)
            except DecodeError:
                raise error from None
            if bare.trailing:
                raise error from None
            return bare
        if with_smsc.times_complete:
            return with_smsc
        # Time stamps are read leniently, so a wrong reading can get through them: prefer the
        # bare reading when it uses every octet with whole time stamps.
        try:
            bare = _decode_tpdu(data, 0, None)
        except DecodeError:
            return with_smsc
        return bare if not bare.trailing and bare.times_complete else with_smsc
    if smsc_included:
        return _decode_with_smsc(data)
    return _decode_tpdu(data, 0, None)


def _decode_either(data: bytes) -> Sms:
    """With the SMSC field if that reads, else as a bare TPDU.

    Both readings can succeed (a bare DELIVER whose first octet is 00 looks
    like an empty SMSC field); then the one with whole time stamps wins, then
    the one that uses every octet, and with the SMSC field on a tie, because
    modems print it.
    """
    try:
        with_smsc: Sms | None = _decode_with_smsc(data)
        first_error: DecodeError | None = None
    except DecodeError as error:
        with_smsc, first_error = None, error
    if with_smsc is not None and with_smsc.trailing == 0 and with_smsc.times_complete:
        return with_smsc
    try:
        bare = _decode_tpdu(data, 0, None)
    except DecodeError:
        if with_smsc is not None:
            return with_smsc
        assert first_error is not None
        raise first_error from None
    if with_smsc is None:
        return bare
    return min((with_smsc, bare), key=lambda sms: (not sms.times_complete, sms.trailing))


def _decode_with_smsc(data: bytes) -> Sms:
    reader = _Reader(data)
    smsc = _read_smsc(reader)
    return _decode_tpdu(data, reader.pos, smsc)


# ---------------------------------------------------------------------------
# Writing


def _dcs_for(alphabet: str, flash: bool, message_class: int | None = None) -> int:
    """TP-DCS for the general data coding group (TS 23.038 §4): 00, 04, 08 for GSM-7, 8-bit, UCS-2;
    bit 4 says bits 1..0 are the class: flash is class 0 (0x10), class 1 (ME) 8-bit is 0x15."""
    base = {GSM7: 0x00, EIGHT_BIT: 0x04, UCS2: 0x08}[alphabet]
    if flash:
        message_class = 0
    return base if message_class is None else base | 0x10 | message_class


def _concat_ie(ref: int, total: int, seq: int, ref16: bool) -> bytes:
    """TS 23.040 §9.2.3.24.1 (IEI 00) or §9.2.3.24.8 (IEI 08)."""
    if ref16:
        return bytes((IEI_CONCAT_16, 4, ref >> 8, ref & 0xFF, total, seq))
    return bytes((IEI_CONCAT_8, 3, ref, total, seq))


def _ports_ie(ports: tuple[int, int]) -> bytes:
    destination, origin = ports
    for port in ports:
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} is outside 0..65535")
    return bytes((IEI_PORTS_16, 4, destination >> 8, destination & 0xFF, origin >> 8, origin & 0xFF))


def _user_data(payload: str | bytes, encoding: Encoding, elements: bytes) -> tuple[int, bytes]:
    """TP-UDL and TP-UD for one part (TS 23.040 §9.2.3.16, §9.2.3.24)."""
    header = bytes((len(elements),)) + elements if elements else b""
    alphabet = encoding.alphabet
    if alphabet == GSM7:
        assert isinstance(payload, str)
        septets = gsm7.encode_septets(payload, encoding.locking, encoding.single)
        header_septets = (len(header) * 8 + 6) // 7
        fill_bits = header_septets * 7 - len(header) * 8
        return header_septets + len(septets), header + gsm7.pack_septets(septets, fill_bits)
    if alphabet == UCS2:
        assert isinstance(payload, str)
        body = payload.encode("utf-16-be")
    else:
        assert isinstance(payload, bytes)
        body = payload
    return len(header) + len(body), header + body


def default_reference(*values: str, ref16: bool = False) -> int:
    """A concatenation reference derived from the message when the caller gives none.

    Deterministic, because the codec has no randomness; a sender should pass
    its own counter so that two equal texts to one recipient get different
    references.
    """
    digest = zlib.crc32("\x00".join(values).encode("utf-8", "surrogatepass"))
    return digest & (0xFFFF if ref16 else 0xFF)


def _check_byte(name: str, value: int, high: int = 255) -> None:
    if not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be an integer 0..{high}, not {value!r}")


def _pieces(
    text: str | None,
    data: bytes | None,
    alphabet: str | None,
    ref16: bool,
    other_ie_octets: int,
    national_languages: Sequence[str] = (),
) -> tuple[Encoding, list]:
    if data is not None:
        return Encoding(EIGHT_BIT), split_data(bytes(data), ref16=ref16, other_ie_octets=other_ie_octets)
    text = clean_text(text or "")
    encoding = choose_encoding(
        text, national_languages, ref16=ref16, alphabet=alphabet, other_ie_octets=other_ie_octets
    ).encoding
    return encoding, split_text(text, encoding, ref16=ref16, other_ie_octets=other_ie_octets)


def _check_part_size(seq: int, user_data: bytes) -> None:
    """Every part's TP-UD fits the 140 octets of TS 23.040 §9.2.3.16, whatever the split promised."""
    if len(user_data) > USER_DATA_OCTETS:
        raise ValueError(
            f"part {seq} would carry {len(user_data)} octets of user data, more than the 140 an SMS holds; "
            f"shorten the UDH or the message"
        )


def encode_submit(
    to: str,
    text: str | None = None,
    *,
    report: bool = False,
    flash: bool = False,
    validity: int | str | None = None,
    mr: int = 0,
    ref: int | None = None,
    ref16: bool = False,
    smsc: str | None = None,
    max_parts: int | None = None,
    alphabet: str | None = None,
    national_languages: Sequence[str] = (),
    data: bytes | None = None,
    udh: bytes | None = None,
    message_class: int | None = None,
) -> list[SubmitPart]:
    """SMS-SUBMIT PDUs for `text` (or 8-bit `data`) to `to` (TS 23.040 §9.2.2.2), one per part.

    The alphabet is GSM-7 when every character fits, else UCS-2 (`alphabet`
    forces one); with `national_languages` (ISO 639-1 codes) the national
    tables may carry the text in GSM-7 where that needs fewer parts
    (split.choose_encoding). `data` sends 8-bit data instead of text. `udh`
    is the sender's own user data header, UDHL first (e.g. 06 05 04 0B 84 23
    F0 for WAP push ports), checked by udh.check_user_header; it goes into
    every part. More than one part adds a concatenation IE with an 8-bit
    (or, with `ref16`, 16-bit) reference, merged into that header.
    `message_class` 0..3 sets the DCS class (`flash` is class 0). `validity` is a raw relative
    TP-VP, or a duration text that parse_validity reads ("2 days"); None
    leaves TP-VP out (the SMSC's default).
    `report` sets TP-SRR; `flash` sends class 0. `mr` is TP-MR of every part
    (modems put their own in AT+CMGS and answer it in +CMGS: <mr>). `to` is "+E.164" (TOA 91), plain
    digits (TOA 81, e.g. short codes) or an alphanumeric address (TOA D0).
    """
    _check_byte("TP-MR", mr)
    if (text is None) == (data is None):
        raise ValueError("give either text or data, not both and not neither")
    if message_class is not None:
        _check_byte("message class", message_class, 3)
    if isinstance(validity, str):
        validity = parse_validity(validity)
    if validity is not None:
        _check_byte("validity (TP-VP)", validity)
    destination = addr.encode_address(to)
    user_ies = udh_rules.check_user_header(bytes(udh)) if udh is not None else b""
    encoding, pieces = _pieces(text, data, alphabet, ref16, len(user_ies), national_languages)
    check_part_limit(len(pieces), max_parts, "data" if data is not None else "text")
    total = len(pieces)
    if total > 1 and ref is None:
        ref = default_reference(to, text if text is not None else bytes(data or b"").hex(), ref16=ref16)
    if ref is not None:
        _check_byte("concatenation reference", ref, 0xFFFF if ref16 else 0xFF)
    smsc_field = addr.encode_smsc(smsc)
    dcs = _dcs_for(encoding.alphabet, flash, message_class)

    parts = []
    for seq, piece in enumerate(pieces, start=1):
        concat = _concat_ie(ref, total, seq, ref16) if ref is not None and total > 1 else b""
        elements = user_ies + concat + encoding.header_elements()
        udl, user_data = _user_data(piece, encoding, elements)
        _check_part_size(seq, user_data)
        first = MTI_SUBMIT
        if validity is not None:
            first |= VPF_RELATIVE << 3
        if report:
            first |= FO_SRR
        if elements:
            first |= FO_UDHI
        tpdu = bytes((first, mr)) + destination + bytes((0x00, dcs))
        if validity is not None:
            tpdu += bytes((validity,))
        tpdu += bytes((udl,)) + user_data
        parts.append(
            SubmitPart(
                seq=seq, total=total, length=len(tpdu), pdu=(smsc_field + tpdu).hex().upper(), tpdu=tpdu,
                alphabet=encoding.alphabet, text=piece if isinstance(piece, str) else piece.hex().upper(),
                ref=ref if total > 1 else None, national=(encoding.locking, encoding.single),
                udh=bytes((len(elements),)) + elements if elements else b"",
            )  # fmt: skip
        )
    return parts


def encode_deliver(
    sender: str,
    text: str | None = None,
    *,
    timestamp: datetime,
    smsc: str | None = None,
    ref: int | None = None,
    ref16: bool = False,
    flash: bool = False,
    data: bytes | None = None,
    ports: tuple[int, int] | None = None,
    alphabet: str | None = None,
    report_indication: bool = False,
    national_languages: Sequence[str] = (),
    udh: bytes | None = None,
) -> list[str]:
    """SMS-DELIVER PDUs (TS 23.040 §9.2.2.1) as a network hands them to a modem; hex with SMSC field.

    For the simulator and tests. `data` sends 8-bit data instead of text;
    `ports` = (destination, origin) adds a 16-bit port addressing IE; `udh`
    is a further header of the sender's (UDHL first); `national_languages`
    as for encode_submit.
    `sender` may be "+E.164", digits, or alphanumeric ("Vodafone").
    """
    if data is not None and text is not None:
        raise ValueError("give either text or data, not both")
    origin = addr.encode_address(sender)
    port_ie = _ports_ie(ports) if ports else b""
    port_ie += udh_rules.check_user_header(bytes(udh)) if udh is not None else b""
    encoding, pieces = _pieces(text, data, alphabet, ref16, len(port_ie), national_languages)
    check_part_limit(len(pieces), None)
    total = len(pieces)
    if total > 1 and ref is None:
        ref = default_reference(sender, text if text is not None else bytes(data or b"").hex(), ref16=ref16)
    if ref is not None:
        _check_byte("concatenation reference", ref, 0xFFFF if ref16 else 0xFF)
    smsc_field = addr.encode_smsc(smsc)
    scts = encode_timestamp(timestamp)
    dcs = _dcs_for(encoding.alphabet, flash)

    pdus = []
    for seq, piece in enumerate(pieces, start=1):
        concat = _concat_ie(ref, total, seq, ref16) if ref is not None and total > 1 else b""
        elements = port_ie + concat + encoding.header_elements()
        udl, user_data = _user_data(piece, encoding, elements)
        first = MTI_DELIVER | FO_MMS_OR_RD  # TP-MMS=1: no more messages waiting
        if elements:
            first |= FO_UDHI
        if report_indication:
            first |= FO_SRR
        tpdu = bytes((first,)) + origin + bytes((0x00, dcs)) + scts + bytes((udl,)) + user_data
        pdus.append((smsc_field + tpdu).hex().upper())
    return pdus


def encode_status_report(
    *,
    mr: int,
    recipient: str,
    scts: datetime,
    discharge: datetime,
    status: int,
    smsc: str | None = None,
) -> str:
    """An SMS-STATUS-REPORT (TS 23.040 §9.2.2.3) without optional parameters; hex with SMSC field."""
    _check_byte("TP-MR", mr)
    _check_byte("TP-ST", status)
    first = MTI_STATUS_REPORT | FO_MMS_OR_RD
    tpdu = (
        bytes((first, mr))
        + addr.encode_address(recipient)
        + encode_timestamp(scts)
        + encode_timestamp(discharge)
        + bytes((status,))
    )
    return (addr.encode_smsc(smsc) + tpdu).hex().upper()


__all__ = [
    "AddressError",
    "Concat",
    "DataCoding",
    "DecodeError",
    "Ports",
    "Sms",
    "SubmitPart",
    "decode_dcs",
    "decode_pdu",
    "decode_timestamp",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "encode_timestamp",
    "pdu_bytes",
]
