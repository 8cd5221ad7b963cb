"""Errors a modem can report, and the exceptions of the AT layer.

The tables below hold every `+CMS ERROR` code of 3GPP TS 27.005 §3.2.5 (which includes the
RP-cause values 1-127 of TS 24.011 §8.2.5.4 Table 8.4 and the TP-FCS values of TS 23.040
§9.2.3.22) and every `+CME ERROR` code of TS 27.007 §9.2, each in the spec's words and
classed for the daemon:

- ``temporary``: the same message may succeed later, or through another SIM. Retry it.
- permanent (``temporary`` false): the message itself is at fault (bad number, barred
  destination, bad PDU). Retrying it cannot help.
- ``sim_specific``: the fault lies with this SIM's subscription or state, not the message, so
  another SIM is the right place to retry even though this one will keep failing.

TS 24.011 Table 8.4 says that any RP-cause it does not list is treated as 41 "Temporary
failure"; :func:`cms_info` follows it. Under `AT+CMEE=2` modems print the meaning as text instead
of the number; :func:`cms_code_from_text` and :func:`cme_code_from_text` map it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorInfo:
    code: int | None
    meaning: str
    temporary: bool
    sim_specific: bool = False


T, P = True, False  # readability of the tables: temporary / permanent

# (code, meaning, temporary, sim_specific)
_CMS_TABLE: tuple[tuple[int, str, bool, bool], ...] = (
    # TS 24.011 §8.2.5.4 Table 8.4: RP-cause values, reported as +CMS ERROR 0..127
    (1, "unassigned (unallocated) number", P, False),
    (8, "operator determined barring", P, True),
    (10, "call barred", P, True),
    (17, "network failure", T, False),
    (21, "short message transfer rejected", P, False),
    (22, "memory capacity exceeded", T, False),
    (27, "destination out of order", T, False),
    (28, "unidentified subscriber", P, False),
    (29, "facility rejected", P, False),
    (30, "unknown subscriber", P, False),
    (38, "network out of order", T, False),
    (41, "temporary failure", T, False),
    (42, "congestion", T, False),
    (47, "resources unavailable, unspecified", T, False),
    (50, "requested facility not subscribed", P, True),
    (69, "requested facility not implemented", P, False),
    (81, "invalid short message transfer reference value", T, False),
    (95, "invalid message, unspecified", P, False),
    (96, "invalid mandatory information", P, False),
    (97, "message type non-existent or not implemented", P, False),
    (98, "message not compatible with short message protocol state", P, False),
    (99, "information element non-existent or not implemented", P, False),
    (111, "protocol error, unspecified", P, False),
    (127, "interworking, unspecified", T, False),
    # TS 23.040 §9.2.3.22 TP-Failure-Cause values, reported as +CMS ERROR 128..255
    (128, "telematic interworking not supported", P, False),
    (129, "short message type 0 not supported", P, False),
    (130, "cannot replace short message", P, False),
    (143, "unspecified TP-PID error", P, False),
    (144, "data coding scheme (alphabet) not supported", P, False),
    (145, "message class not supported", P, False),
    (159, "unspecified TP-DCS error", P, False),
    (160, "command cannot be actioned", P, False),
    (161, "command unsupported", P, False),
    (175, "unspecified TP-Command error", P, False),
    (176, "TPDU not supported", P, False),
    (192, "SC busy", T, False),
    (193, "no SC subscription", P, True),
    (194, "SC system failure", T, False),
    (195, "invalid SME address", P, False),
    (196, "destination SME barred", P, False),
    (197, "SM rejected-duplicate SM", P, False),
    (198, "TP-VPF not supported", P, False),
    (199, "TP-VP not supported", P, False),
    (208, "(U)SIM SMS storage full", T, True),
    (209, "no SMS storage capability in (U)SIM", P, True),
    (210, "error in MS", T, False),
    (211, "memory capacity exceeded", T, False),
    (212, "(U)SIM Application Toolkit busy", T, True),
    (213, "(U)SIM data download error", T, True),
    (255, "unspecified error cause", T, False),
    # TS 27.005 §3.2.5: errors of the ME/TA itself
    (300, "ME failure", T, False),
    (301, "SMS service of ME reserved", T, False),
    (302, "operation not allowed", T, False),
    (303, "operation not supported", T, False),
    (304, "invalid PDU mode parameter", P, False),
    (305, "invalid text mode parameter", P, False),
    (310, "(U)SIM not inserted", T, True),
    (311, "(U)SIM PIN required", T, True),
    (312, "PH-(U)SIM PIN required", T, True),
    (313, "(U)SIM failure", T, True),
    (314, "(U)SIM busy", T, True),
    (315, "(U)SIM wrong", T, True),
    (316, "(U)SIM PUK required", T, True),
    (317, "(U)SIM PIN2 required", T, True),
    (318, "(U)SIM PUK2 required", T, True),
    (320, "memory failure", T, False),
    (321, "invalid memory index", P, False),
    (322, "memory full", T, False),
    (330, "SMSC address unknown", T, True),
    (331, "no network service", T, True),
    (332, "network timeout", T, False),
    (340, "no +CNMA acknowledgement expected", P, False),
    (500, "unknown error", T, False),
)

# (code, meaning, temporary, sim_specific): TS 27.007 §9.2.1 (general) and §9.2.2 (GPRS/EPS)
_CME_TABLE: tuple[tuple[int, str, bool, bool], ...] = (
    (0, "phone failure", T, False),
    (1, "no connection to phone", T, False),
    (2, "phone-adaptor link reserved", T, False),
    (3, "operation not allowed", T, False),
    (4, "operation not supported", P, False),
    (5, "PH-SIM PIN required", T, True),
    (6, "PH-FSIM PIN required", T, True),
    (7, "PH-FSIM PUK required", T, True),
    (10, "SIM not inserted", T, True),
    (11, "SIM PIN required", T, True),
    (12, "SIM PUK required", T, True),
    (13, "SIM failure", T, True),
    (14, "SIM busy", T, True),
    (15, "SIM wrong", T, True),
    (16, "incorrect password", P, True),
    (17, "SIM PIN2 required", T, True),
    (18, "SIM PUK2 required", T, True),
    (20, "memory full", T, False),
    (21, "invalid index", P, False),
    (22, "not found", P, False),
    (23, "memory failure", T, False),
    (24, "text string too long", P, False),
    (25, "invalid characters in text string", P, False),
    (26, "dial string too long", P, False),
    (27, "invalid characters in dial string", P, False),
    (30, "no network service", T, True),
    (31, "network timeout", T, False),
    (32, "network not allowed - emergency calls only", T, True),
    (40, "network personalization PIN required", T, True),
    (41, "network personalization PUK required", T, True),
    (42, "network subset personalization PIN required", T, True),
    (43, "network subset personalization PUK required", T, True),
    (44, "service provider personalization PIN required", T, True),
    (45, "service provider personalization PUK required", T, True),
    (46, "corporate personalization PIN required", T, True),
    (47, "corporate personalization PUK required", T, True),
    (48, "hidden key required", T, True),
    (49, "EAP method not supported", P, False),
    (50, "incorrect parameters", P, False),
    (51, "command implemented but currently disabled", T, False),
    (52, "command aborted by user", T, False),
    (53, "not attached to network due to MT functionality restrictions", T, True),
    (54, "modem not allowed - MT restricted to emergency calls only", T, True),
    (55, "operation not allowed because of MT functionality restrictions", T, True),
    (56, "fixed dial number only allowed - called number is not a fixed dial number", P, True),
    (57, "temporarily out of service due to other MT usage", T, False),
    (58, "language/alphabet not supported", P, False),
    (59, "unexpected data value", P, False),
    (60, "system failure", T, False),
    (61, "data missing", P, False),
    (62, "call barred", P, True),
    (63, "message waiting indication subscription failure", T, False),
    (100, "unknown", T, False),
    (103, "illegal MS", T, True),
    (106, "illegal ME", T, True),
    (107, "GPRS services not allowed", T, True),
    (111, "PLMN not allowed", T, True),
    (112, "location area not allowed", T, True),
    (113, "roaming not allowed in this location area", T, True),
    (132, "service option not supported", P, False),
    (133, "requested service option not subscribed", P, True),
    (134, "service option temporarily out of order", T, False),
    (148, "unspecified GPRS error", T, False),
    (149, "PDP authentication failure", T, True),
    (150, "invalid mobile class", T, False),
)

CMS_ERRORS: dict[int, ErrorInfo] = {c: ErrorInfo(c, m, t, s) for c, m, t, s in _CMS_TABLE}
CME_ERRORS: dict[int, ErrorInfo] = {c: ErrorInfo(c, m, t, s) for c, m, t, s in _CME_TABLE}


def _normalise_text(text: str) -> str:
    """Lower-case words only, with "(U)SIM"/"USIM" read as "SIM", for text-to-code lookup."""
    text = text.lower().replace("(u)sim", "sim").replace("usim", "sim")
    return " ".join(re.findall(r"[a-z0-9+]+", text))


# Spellings real modems print under CMEE=2 that differ from the spec's words.
# Huawei E3372 and SIMCom SIM800 say "SIM not inserted" for CMS 310 too; Quectel EC25 prints
# "invalid index" and SIMCom "Invalid memory index" for 321.
_CMS_TEXT_ALIASES = {
    "sim busy": 314,
    "invalid index": 321,
    "sim full": 322,
    "memory full": 322,
    "unknown error": 500,
    "sms service of me reserved": 301,
    "no network": 331,
    "network time out": 332,
    "invalid pdu mode": 304,
    "invalid pdu mode parameter": 304,
    "destination out of service": 27,
}
_CME_TEXT_ALIASES = {
    "sim not present": 10,
    "no sim": 10,
    "sim pin": 11,
    "sim puk": 12,
    "wrong password": 16,
    "incorrect pin": 16,
    "invalid input value": 50,
    "not allowed": 3,
    "operation not permitted": 3,
    "phone busy": 57,
}

_CMS_BY_TEXT = {_normalise_text(i.meaning): c for c, i in CMS_ERRORS.items()}
_CMS_BY_TEXT.update({_normalise_text(t): c for t, c in _CMS_TEXT_ALIASES.items()})
_CME_BY_TEXT = {_normalise_text(i.meaning): c for c, i in CME_ERRORS.items()}
_CME_BY_TEXT.update({_normalise_text(t): c for t, c in _CME_TEXT_ALIASES.items()})


def cms_code_from_text(text: str) -> int | None:
    """The CMS code for the text form a modem prints under AT+CMEE=2, or None if unknown."""
    return _CMS_BY_TEXT.get(_normalise_text(text))


def cme_code_from_text(text: str) -> int | None:
    """The CME code for the text form a modem prints under AT+CMEE=2, or None if unknown."""
    return _CME_BY_TEXT.get(_normalise_text(text))


def cms_info(code: int | None, text: str = "") -> ErrorInfo:
    """Meaning and class of a +CMS ERROR (TS 27.005 §3.2.5)."""
    if code is None:
        # An unmapped text (CMEE=2) or a garbled code: nothing says the message is bad.
        return ErrorInfo(None, text or "unrecognised +CMS ERROR", True)
    if code in CMS_ERRORS:
        return CMS_ERRORS[code]
    if 96 <= code <= 111:
        # The protocol-error class of TS 24.011 Table 8.4 (96-111): the message as built is
        # wrong, so a retry would fail the same way (the README counts the whole range permanent).
        return ErrorInfo(code, f"protocol error (RP-cause {code})", False)
    if 0 <= code <= 127:
        # TS 24.011 Table 8.4: "all other cause values shall be treated as cause number 41".
        return ErrorInfo(code, f"temporary failure (unlisted RP-cause {code})", True)
    if 128 <= code <= 255:
        return ErrorInfo(code, f"unlisted TP-Failure-Cause {code}", True)
    if code >= 512:
        return ErrorInfo(code, text or f"manufacturer specific error {code}", True)
    return ErrorInfo(code, text or f"reserved error code {code}", True)


def cme_info(code: int | None, text: str = "") -> ErrorInfo:
    """Meaning and class of a +CME ERROR (TS 27.007 §9.2)."""
    if code is None:
        return ErrorInfo(None, text or "unrecognised +CME ERROR", True)
    if code in CME_ERRORS:
        return CME_ERRORS[code]
    return ErrorInfo(code, text or f"manufacturer specific error {code}", True)


# ---------------------------------------------------------------------------- exceptions


class ModemError(Exception):
    """Base of every error the AT layer raises. ``str()`` says what happened and what to do."""


class PortGone(ModemError):
    """The serial device vanished (unplugged, or the simulator stopped)."""


class ModemRestarted(ModemError):
    """The modem restarted (it printed RDY or the like) while a command waited for its answer,
    which will never come. Like a vanished port, the outcome of that command is unknown."""


class PortBusy(ModemError):
    """Another process holds the port; the message names it when known."""


class ModemTimeout(ModemError):
    """The modem did not finish a command in time."""

    def __init__(self, command: str, timeout: float):
        self.command = command
        self.timeout = timeout
        super().__init__(
            f"the modem did not answer {command!r} within {timeout:g} s; "
            "check that the port is the modem's AT port and that no other program uses it"
        )


class ResponseError(ModemError):
    """The modem answered, but not in a form this driver understands."""


class AtCommandError(ModemError):
    """A command ended in an error final result (`ERROR`, `+CMS ERROR`, `+CME ERROR`, ...)."""

    def __init__(self, command: str, final: str, message: str | None = None):
        self.command = command
        self.final = final
        super().__init__(message or f"{command!r} failed: {final}")

    temporary = True
    sim_specific = False
    code: int | None = None
    meaning = ""


class _CodedError(AtCommandError):
    kind = ""

    def __init__(self, code: int | None, *, command: str = "", text: str = ""):
        info = cms_info(code, text) if self.kind == "CMS" else cme_info(code, text)
        self.code = code
        self.meaning = info.meaning
        self.temporary = info.temporary
        self.sim_specific = info.sim_specific
        shown = code if code is not None else text
        super().__init__(
            command,
            f"+{self.kind} ERROR: {shown}",
            f"+{self.kind} ERROR {shown}: {info.meaning}"
            + (f" (after {command!r})" if command else ""),
        )


class CmsError(_CodedError):
    """`+CMS ERROR: <code>`: an SMS-related failure (TS 27.005 §3.2.5)."""

    kind = "CMS"


class CmeError(_CodedError):
    """`+CME ERROR: <code>`: an equipment failure (TS 27.007 §9.2)."""

    kind = "CME"


class SimLocked(ModemError):
    """The SIM needs a PIN or PUK this driver will not (or cannot) enter."""

    # ``reason``: no_sim, needs_puk (or another code than the SIM PIN), no_pin (none configured),
    # unknown_attempts, few_attempts (fewer than 2 left), pin_rejected, not_ready.
    def __init__(self, message: str, *, state: str, reason: str, attempts_left: int | None = None):
        self.state = state
        self.reason = reason
        self.attempts_left = attempts_left
        super().__init__(message)
