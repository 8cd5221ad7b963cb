"""gsmgw.at: the AT driver for GSM modems.

Layers, bottom up: ``parser`` (sans-IO, bytes -> events), ``session`` (one port on asyncio),
``modem`` (operations), ``supervisor`` (open, watch, recover, reopen); ``profiles`` holds the
vendor dialects, ``errors`` the +CMS/+CME tables and exceptions, ``events`` the URC dataclasses,
``probe`` the port scanner. The contract for the daemon is in docs/DEVELOPING.md.

This package module imports nothing with I/O, so ``gsmgw.at.parser`` stays cheap to import;
the names below are the pure ones.
"""

from gsmgw.at.errors import (
    AtCommandError,
    CmeError,
    CmsError,
    ModemError,
    ModemTimeout,
    PortBusy,
    PortGone,
    ResponseError,
    SimLocked,
)
from gsmgw.at.events import (
    CallerId,
    CellBroadcast,
    IncomingDirect,
    IncomingStored,
    LatePrompt,
    LateSubmitResult,
    ModemReady,
    Noise,
    PortClosed,
    PowerDown,
    RegistrationChanged,
    ReportDirect,
    ReportStored,
    Ring,
    SignalReport,
    SimStatus,
    StorageFull,
    StrayFinal,
    StrayResponse,
    Urc,
    UssdResult,
)

__all__ = [
    "AtCommandError", "CmeError", "CmsError", "ModemError", "ModemTimeout", "PortBusy", "PortGone",
    "ResponseError", "SimLocked",
    "CallerId", "CellBroadcast", "IncomingDirect", "IncomingStored", "LatePrompt",
    "LateSubmitResult", "ModemReady", "Noise", "PortClosed", "PowerDown", "RegistrationChanged",
    "ReportDirect", "ReportStored", "Ring", "SignalReport", "SimStatus", "StorageFull",
    "StrayFinal", "StrayResponse", "Urc", "UssdResult",
]
