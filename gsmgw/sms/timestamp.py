"""Service-centre time stamps (TS 23.040 §9.2.3.11), read leniently. Pure code: no I/O, no clock.

TP-SCTS, TP-DT and an absolute TP-VP are 7 octets of swapped semi-octets: YY MM DD hh mm ss TZ.
Networks get them wrong: real status reports carry a time-zone octet whose units nibble is not
a decimal digit (A0 in oFono's unit/test-sms.c `test_sr_assembly`, C2 in python-gsmmodem's
`test_receiveSmsPduMode_zeroLengthSmscAndNonBCDTimeZoneValue`, captured from a live network).
A report refused for that is never matched, and its message stays `pending` for ever; so a time
stamp never makes a PDU unreadable. Each field keeps its digits when both semi-octets are
decimal and is None where they are not; the time as a whole is a datetime only when the fields
that make it are all there:

    all fields valid                  aware datetime           "2016-10-30T04:59:44+08:00"
    only the time-zone octet bad      naive datetime           "2016-10-30T04:59:44" (no offset)
    a date or time field bad          None; the fields say which digits were readable
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

FIELDS = ("year", "month", "day", "hour", "minute", "second")


def _swapped_digits(octet: int) -> int | None:
    """Two semi-octets, low nibble first (the tens): 0x21 -> 12; None if one is not decimal."""
    low, high = octet & 0x0F, octet >> 4
    if low > 9 or high > 9:
        return None
    return low * 10 + high


@dataclass(frozen=True)
class SmsTime:
    """A time stamp as the network sent it; a field is None where its digits are not decimal."""

    raw: bytes
    year: int | None  # four digits: the field has no century (see `read_time`)
    month: int | None
    day: int | None
    hour: int | None
    minute: int | None
    second: int | None
    utc_offset: timedelta | None  # None: the time-zone octet is not BCD

    @property
    def local(self) -> datetime | None:
        """The wall-clock time without its zone, when every date and time field is valid."""
        values = [getattr(self, name) for name in FIELDS]
        if any(value is None for value in values):
            return None
        try:
            return datetime(*values)
        except ValueError:
            return None  # decimal digits that are no date (month 13, 31 April)

    @property
    def moment(self) -> datetime | None:
        """Aware when the zone was readable, naive when only the zone was not, else None."""
        local = self.local
        if local is None or self.utc_offset is None:
            return local
        return local.replace(tzinfo=timezone(self.utc_offset))

    @property
    def complete(self) -> bool:
        return self.local is not None and self.utc_offset is not None

    def to_json(self) -> dict:
        """The fields, null where the network's digits were not readable (`gsmgw pdu decode`)."""
        offset = None
        if self.utc_offset is not None:
            minutes = int(self.utc_offset.total_seconds() // 60)
            sign = "-" if minutes < 0 else "+"
            offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        return {**{name: getattr(self, name) for name in FIELDS}, "utc_offset": offset, "raw": self.raw.hex().upper()}


def read_time(raw: bytes) -> SmsTime:
    """The 7 octets of TP-SCTS / TP-DT / absolute TP-VP, never refused.

    The TZ octet counts quarter hours: its low nibble is the tens digit, whose bit 3 is the
    sign; the high nibble is the units. Octet 8A: tens 2 with the sign, units 8 -> -28
    quarters = -07:00. Only the units nibble can be out of range (the tens have 3 bits).
    """
    if len(raw) != 7:
        raise ValueError(f"a time stamp has 7 octets, not {len(raw)}")
    year, month, day, hour, minute, second = (_swapped_digits(octet) for octet in raw[:6])
    if year is not None:
        # The field has no century. SMS began in 1992, so 90..99 are the 1990s
        # (old vectors such as the dreamfabric tutorial's) and 00..89 are 20xx.
        year += 1900 if year >= 90 else 2000
    tz_octet = raw[6]
    units = tz_octet >> 4
    utc_offset = None
    if units <= 9:
        quarters = (tz_octet & 0x07) * 10 + units
        utc_offset = timedelta(minutes=15 * (-quarters if tz_octet & 0x08 else quarters))
    return SmsTime(bytes(raw), year, month, day, hour, minute, second, utc_offset)
