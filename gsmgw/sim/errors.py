"""Error results of a simulated modem and how +CMEE prints them (pure).

TS 27.007 §9.2 lists +CME ERROR codes, TS 27.005 §3.2.5 the +CMS ERROR codes
(0-127 are TS 24.011 Annex E-2 causes, 128-255 TS 23.040 §9.2.3.22 values,
300-511 the ME/TA's own).  +CMEE (TS 27.007 §9.1): 0 plain ``ERROR`` (for
+CME errors; see error_line for +CMS), 1 numeric, 2 verbose.
"""

from __future__ import annotations

CME_TEXT = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    16: "incorrect password",
    30: "no network service",
    50: "incorrect parameters",
    100: "unknown",
}

CMS_TEXT = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    96: "invalid mandatory information",
    111: "protocol error, unspecified",
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    316: "SIM PUK required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


class AtError(Exception):
    """A command failed; `family` is "cme", "cms" or "plain" (always just ERROR)."""

    def __init__(self, family: str, code: int = 0) -> None:
        super().__init__(f"{family} {code}")
        self.family = family
        self.code = code


def cme(code: int) -> AtError:
    return AtError("cme", code)


def cms(code: int) -> AtError:
    return AtError("cms", code)


def plain() -> AtError:
    return AtError("plain")


def error_line(error: AtError, cmee: int) -> str:
    """The final result for `error` under +CMEE=<cmee>.

    TS 27.007 §9.1: +CMEE=0 replaces +CME ERROR by ERROR.  TS 27.005 §3.2.5:
    +CMS ERROR is returned instead of ERROR for ME and network errors of SMS
    commands, and +CMEE only chooses its numeric or verbose form; so with
    +CMEE=0 it stays numeric, as SIM800 and Huawei E173 print it.
    """
    if error.family == "plain" or (error.family == "cme" and cmee == 0):
        return "ERROR"
    prefix = "+CME ERROR" if error.family == "cme" else "+CMS ERROR"
    if cmee != 2:
        return f"{prefix}: {error.code}"
    table = CME_TEXT if error.family == "cme" else CMS_TEXT
    return f"{prefix}: {table.get(error.code, 'unknown error')}"
