"""The relative validity period TP-VP (TS 23.040 §9.2.3.12.1).

Pure code: no I/O.

    TP-VP     validity
    0..143    (VP + 1) x 5 minutes            5 min .. 12 hours
    144..167  12 hours + (VP - 143) x 30 min  12 h 30 .. 24 hours
    168..196  (VP - 166) days                 2 .. 30 days
    197..255  (VP - 192) weeks                5 .. 63 weeks
"""

from __future__ import annotations

import re

from gsmgw.durations import parse_duration

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

_BARE_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")

MAX_SECONDS = (255 - 192) * WEEK


def validity_seconds(vp: int) -> int:
    """The duration a relative TP-VP stands for, in seconds (TS 23.040 §9.2.3.12.1)."""
    if not 0 <= vp <= 255:
        raise ValueError(f"TP-VP {vp} is outside 0..255")
    if vp <= 143:
        return (vp + 1) * 5 * MINUTE
    if vp <= 167:
        return 12 * HOUR + (vp - 143) * 30 * MINUTE
    if vp <= 196:
        return (vp - 166) * DAY
    return (vp - 192) * WEEK


def seconds_to_vp(seconds: float) -> int:
    """The smallest TP-VP that keeps a message at least `seconds` (rounds up to the next step of
    TS 23.040 §9.2.3.12.1).

    The steps grow with the period, so "1 week" becomes VP 173 (7 days) and
    "40 days" becomes VP 198 (6 weeks).
    """
    if seconds < 0:
        raise ValueError("a validity period cannot be negative")
    if seconds > MAX_SECONDS:
        raise ValueError(
            f"a validity period of {seconds / WEEK:.0f} weeks is longer than the 63 weeks TP-VP can express"
        )
    for vp in range(256):
        if validity_seconds(vp) >= seconds:
            return vp
    raise AssertionError("unreachable: MAX_SECONDS is validity_seconds(255)")


def parse_validity(text: str | int) -> int:
    """A `Validity:` value -> relative TP-VP: "2 days" -> 168, "30 min" -> 5, "0".."255" as is.

    A plain number is the raw TP-VP, as smstools3 reads it.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = str(text)
    elif isinstance(text, str):
        value = text.strip()
    else:
        raise ValueError(f"validity {text!r} must be a duration like \"2 days\" or a TP-VP 0..255")
    if value.isdigit():
        vp = int(value)
        if vp > 255:
            raise ValueError(
                f"validity {value} is not a TP-VP (0..255); write a duration like \"2 days\" instead"
            )
        return vp
    if _BARE_NUMBER.match(value):
        # Only whole numbers are raw TP-VPs; "1.5" is neither a TP-VP nor a duration with a unit.
        raise ValueError(f"validity {value!r} is not a TP-VP (0..255); write a duration like \"2 days\" instead")
    try:
        return seconds_to_vp(parse_duration(value))
    except ValueError as error:
        raise ValueError(f"validity {value!r}: {error}") from None
