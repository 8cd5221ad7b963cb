"""Durations as people write them in config and spool files: "30 s", "2 min", "12 hours".

One parser for every duration in gsmgw (config intervals, `Expires:`, `Send_after:`, the
`Validity:` of gsmgw.sms), so the same words work everywhere. Pure: no I/O.
"""

from __future__ import annotations

import re

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


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number (seconds) or terms like "1 h 30 min".

    Raises ValueError whose message says what was wrong and what to write.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write for example {EXAMPLES}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value} is negative; a duration must be 0 or more")
        return float(value)
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
            return float(number)
        if unit not in _UNITS:
            raise ValueError(f"{text!r}: unknown unit {unit!r}; use s, min, hours, days or weeks")
        total += float(number) * _UNITS[unit]
        position = match.end()
    return total
