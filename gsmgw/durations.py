"""Durations as people write them in config and spool files: "30 s", "2 min", "12 hours".

One parser for every duration in gsmgw (config intervals, `Expires:`, `Send_after:`, the
`Validity:` of gsmgw.sms), so the same words work everywhere. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

# unit word -> seconds. Both the short forms of smstools3/systemd ("s", "min", "h", "d", "w")
# and the words people type ("minutes", "hours") are accepted.
_UNITS: dict[str, int] = {}
for _seconds, _words in (
    (1, ("s", "sec", "secs", "second", "seconds")),
    (60, ("m", "min", "mins", "minute", "minutes")),
    (3600, ("h", "hr", "hrs", "hour", "hours")),
    (86400, ("d", "day", "days")),
    (604800, ("w", "week", "weeks")),
):
    for _word in _words:
        _UNITS[_word] = _seconds

_TERM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)

EXAMPLES = '"30 s", "2 min", "12 hours", "2 days" or "1 week"'

# The longest duration gsmgw accepts anywhere (config, spool headers, HTTP, Kannel, SMPP): ten
# years. Nothing an SMS gateway waits for is longer (a TP-VP ends after 63 weeks), and a bound
# keeps `now + duration` inside what a datetime and a timestamp can hold: "1000000 weeks" is
# past the year 9999 and used to crash the daemon.
MAX_DAYS = 3650
MAX_SECONDS = MAX_DAYS * 86400


class DurationTooLong(ValueError):
    """A well-formed duration over MAX_SECONDS; callers that also accept other forms (a time)
    pass its message on, since it says what to write."""


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number (seconds) or terms like "1 h 30 min", at most MAX_SECONDS.

    Raises ValueError whose message says what was wrong and what to write.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write for example {EXAMPLES}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{value} is not a number; write for example {EXAMPLES}")
        if value < 0:
            raise ValueError(f"{value} is negative; a duration must be 0 or more")
        return _bounded(value, f"{value} s")
    text = str(value).strip()
    if not text:
        raise ValueError(f"a duration is empty; write for example {EXAMPLES}")
    total = 0.0
    position = 0
    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read {text!r} as a duration; write for example {EXAMPLES}")
        number, unit = match.group(1), match.group(2).lower()
        if unit == "":
            # A bare number is seconds, but only on its own: "1 30 min" is a typo, not 1 s + 30 min.
            if position != 0 or match.end() != len(text):
                raise ValueError(f"{text!r}: the number {number} has no unit; write for example {EXAMPLES}")
            return _bounded(float(number), text)
        if unit not in _UNITS:
            raise ValueError(f"{text!r}: unknown unit {unit!r}; use s, min, hours, days or weeks")
        total += float(number) * _UNITS[unit]
        position = match.end()
    return _bounded(total, text)


def _bounded(seconds: int | float, text: str) -> float:
    # A number too large for a float ("9" * 400, 10**400) is too long as well.
    if seconds > MAX_SECONDS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise DurationTooLong(
            f"{shown!r} is longer than {MAX_DAYS} days (10 years), the longest duration gsmgw accepts; "
            "write a shorter one"
        )
    return float(seconds)


def bounded_time(moment: datetime, now: datetime, what: str) -> datetime:
    """`moment` (aware), if it is at most MAX_SECONDS away from `now`: a time is a duration
    counted from now, with the same bound. Beyond it, converting the time to UTC or adding to
    it may leave the years a datetime can hold (year 9999 with a -14:00 offset)."""
    if abs(moment - now) > timedelta(seconds=MAX_SECONDS):
        raise DurationTooLong(
            f"{what} {moment.isoformat()} is more than {MAX_DAYS} days (10 years) from now, further than "
            "gsmgw accepts; write a time within ten years of now"
        )
    return moment
