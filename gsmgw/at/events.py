"""Events of the AT layer: what the parser yields and what reaches a modem's ``on_urc``.

Response events (:class:`Line`, :class:`Final`, :class:`Prompt`) belong to the command in flight
and are consumed by the session. Everything else is unsolicited: it reaches the subscriber as one
of the dataclasses below, never mixed into a response. All are frozen and carry ``raw``, the
modem's line(s) as received (latin-1), for logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.at.registration import is_registered


# ------------------------------------------------------------------ responses to a command


@dataclass(frozen=True)
class Line:
    """An information line of the response to the command in flight."""

    text: str


@dataclass(frozen=True)
class Final:
    """A final result code (TS 27.007 §5.7 / V.250 §5.7.1, TS 27.005 §3.2.5).

    ``kind`` is ``OK``, ``ERROR``, ``CMS``, ``CME``, ``NO CARRIER``, ``BUSY``, ``NO ANSWER``,
    ``NO DIALTONE``, ``CONNECT`` or ``COMMAND NOT SUPPORT`` (ZTE). ``code`` is the numeric
    error for CMS/CME (looked up from the text under CMEE=2), or None.
    """

    kind: str
    raw: str
    code: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.kind in ("OK", "CONNECT")


@dataclass(frozen=True)
class Prompt:
    """The ``> `` prompt after AT+CMGS/AT+CMGW: the modem waits for the PDU (TS 27.005 §3.5.1)."""


# ------------------------------------------------------------------ unsolicited results


@dataclass(frozen=True)
class Urc:
    raw: str


@dataclass(frozen=True)
class IncomingStored(Urc):
    """``+CMTI: <mem>,<index>``: an SMS-DELIVER was stored (TS 27.005 §3.4.1)."""

    storage: str
    index: int


@dataclass(frozen=True)
class IncomingDirect(Urc):
    """``+CMT: [<alpha>],<length>`` + PDU line: an SMS-DELIVER routed to us (TS 27.005 §3.4.1).

    ``pdu`` is hex and starts with the SMSC field. ``length`` is the TPDU length in octets. If
    ``needs_ack`` the modem expects ``AT+CNMA`` (Modem.ack_new_message) once the SMS is safe.
    """

    pdu: str
    length: int
    needs_ack: bool = False


@dataclass(frozen=True)
class ReportStored(Urc):
    """``+CDSI: <mem>,<index>``: an SMS-STATUS-REPORT was stored (TS 27.005 §3.4.1)."""

    storage: str
    index: int


@dataclass(frozen=True)
class ReportDirect(Urc):
    """``+CDS: <length>`` + PDU line: an SMS-STATUS-REPORT routed to us (TS 27.005 §3.4.1)."""

    pdu: str
    length: int
    needs_ack: bool = False


@dataclass(frozen=True)
class CellBroadcast(Urc):
    """``+CBM: <length>`` + PDU line (TS 27.005 §3.4.1); the PDU has no SMSC field."""

    pdu: str
    length: int


@dataclass(frozen=True)
class Ring(Urc):
    """``RING`` / ``+CRING: <type>``: an incoming call (V.250 §6.3, TS 27.007 §6.11)."""

    call_type: str = ""


@dataclass(frozen=True)
class CallerId(Urc):
    """``+CLIP: <number>,<type>[,<subaddr>,<satype>[,<alpha>[,<CLI validity>]]]``: the caller of the
    ringing call (TS 27.007 §7.6). ``toa`` is <type> (TS 24.008 §10.5.4.7, e.g. 145 international),
    ``validity`` the CLI validity: 0 valid, 1 withheld by the caller, 2 not available."""

    number: str
    toa: int | None = None
    validity: int | None = None


@dataclass(frozen=True)
class UssdResult(Urc):
    """``+CUSD: <m>[,<str>,<dcs>]`` (TS 27.007 §7.15). ``status`` 0 done, 1 more, 2 ended, 4 not
    supported, 5 timed out. ``text`` is as the modem printed it; Modem.ussd decodes it."""

    status: int
    text: str | None
    dcs: int | None


@dataclass(frozen=True)
class RegistrationChanged(Urc):
    """``+CREG``/``+CGREG``/``+CEREG: <stat>[,...]`` (TS 27.007 §7.2, §10.1.20, §10.1.22)."""

    kind: str
    status: int

    @property
    def registered(self) -> bool:
        return is_registered(self.status)


@dataclass(frozen=True)
class SimStatus(Urc):
    """The SIM changed state: ``+CPIN: <code>`` unsolicited, Huawei ``^SIMST``, Quectel
    ``+QUSIM``. ``state`` is the CPIN code (``READY``, ``SIM PIN``, ...) or a vendor value."""

    state: str


@dataclass(frozen=True)
class SignalReport(Urc):
    """A vendor signal report (Huawei ``^RSSI``/``^HCSQ``, Quectel ``+QIND: "csq"``, SIMCom
    ``+CSQ`` with AT+AUTOCSQ), converted to dBm; None when the modem says it does not know."""

    dbm: int | None


@dataclass(frozen=True)
class StorageFull(Urc):
    """The modem says its SMS storage is full: Huawei ``^SMMEMFULL``, ``+CIEV: "SMSFULL",1``."""

    storage: str


@dataclass(frozen=True)
class ModemReady(Urc):
    """Start-up banners: ``RDY``, ``SMS Ready``, ``Call Ready``, ``+QIND: SMS DONE``,
    ``^SYSSTART``, ``+CFUN: 1``. Seen after power-up or AT+CFUN=1,1."""


@dataclass(frozen=True)
class ModemBooted(ModemReady):
    """The first line of a modem's firmware after it started: ``RDY`` (SIMCom, Quectel),
    ``^SYSSTART`` (Huawei modules), ``START``. A command sent before it is never answered."""


def announces_restart(event: Urc) -> bool:
    """Does `event` say the modem has (re)started, so its settings are back at their power-up
    defaults (echo on, no +CMEE, the factory +CNMI, +CSMS 0, the SIM asking for its PIN again)?

    The start-up banners (`ModemReady`) do, and an unsolicited ``+CPIN:``: SIMCom and Quectel
    modules print ``+CPIN: READY`` (or ``SIM PIN``) after power-up, and ``+CPIN: NOT READY``/
    ``READY`` when a SIM is pulled or inserted, which also means "identify the SIM again".
    Huawei's ``^BOOT:`` is not one: E173/E1550 sticks print it every few seconds while
    AT^CURC=1 (the Huawei profile's quirk), so it says nothing about a restart; Huawei modules
    announce one with ``^SYSSTART`` (ME909u Application Guide §2.1: "presented again: the module
    has been reset").
    """
    if isinstance(event, ModemReady):
        return True
    return isinstance(event, SimStatus) and event.raw.lstrip().upper().startswith("+CPIN:")


@dataclass(frozen=True)
class PowerDown(Urc):
    """``POWERED DOWN`` (Quectel) / ``NORMAL POWER DOWN`` (SIMCom): the modem is switching off."""


@dataclass(frozen=True)
class Noise(Urc):
    """An unsolicited line nobody needs (``^BOOT``, ``^MODE``, ``^DSFLOWRPT``, ``*PSUTTZ``, line
    noise bytes, unknown vendor URCs). Reported so that nothing vanishes silently."""


@dataclass(frozen=True)
class StrayResponse(Urc):
    """A response line that arrived when its command was no longer waiting (it timed out)."""

    command: str | None


@dataclass(frozen=True)
class LateSubmitResult(Urc):
    """``+CMGS: <mr>`` that arrived after AT+CMGS had timed out: the SMS did go out with this
    TP-MR. The daemon must not send it again; it can record the MR (TS 27.005 §3.5.1)."""

    mr: int


@dataclass(frozen=True)
class LatePrompt(Urc):
    """The ``> `` prompt came after AT+CMGS/AT+CMGW had given up on it. The session answers it
    with ESC at once, so the modem does not take the next command as message text."""


@dataclass(frozen=True)
class StrayFinal(Urc):
    """A final result code with no command waiting for it (the end of a late answer)."""

    final: Final


@dataclass(frozen=True)
class PortClosed(Urc):
    """The port ended: unplugged, or the other end of the pty went away. Always the last event."""

    reason: str
