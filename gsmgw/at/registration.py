"""Network registration <stat> (TS 27.007 §7.2 +CREG, §10.1.20 +CGREG, §10.1.22 +CEREG): the one
place that says which values mean "registered". Pure: no I/O.

The driver's `Modem.registration()`, the URC event `RegistrationChanged.registered` (which the
daemon's worker reads) and everything above use `is_registered`, so an LTE modem that answers
6, 7, 9 or 10 (registered for SMS only, or with CSFB not preferred) is registered everywhere,
not in the poll and unregistered again at each URC.
"""

from __future__ import annotations

REGISTRATION_STATUS = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown",
    5: "registered, roaming",
    6: "registered for SMS only, home network",
    7: "registered for SMS only, roaming",
    8: "attached for emergency bearer services only",
    9: "registered for CSFB not preferred, home network",
    10: "registered for CSFB not preferred, roaming",
}
# SMS goes through in each of these; 8 (emergency bearer services only) carries no SMS.
REGISTERED = frozenset({1, 5, 6, 7, 9, 10})


def is_registered(status: int | None) -> bool:
    """Does a +CREG/+CGREG/+CEREG <stat> mean the modem is registered (and may send SMS)?"""
    return status in REGISTERED


def status_text(status: int | None) -> str:
    """The spec's words for a <stat>, "unknown" for None or a value it does not define."""
    return REGISTRATION_STATUS.get(status, "unknown") if status is not None else "unknown"
