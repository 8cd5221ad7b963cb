"""Modem operations over one AT session: init, identity, PIN, registration, signal, send,
stored messages, USSD, reset.

Every method is a coroutine and raises :mod:`gsmgw.at.errors` exceptions whose text says what
to do. The PIN never appears in logs or exceptions. Response parsing lives in the small pure
functions at the top of this file so they can be tested without a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from gsmgw.at.errors import (
    AtCommandError,
    CmeError,
    CmsError,
    ModemError,
    ModemRestarted,
    ModemTimeout,
    PortGone,
    ResponseError,
    SimLocked,
)
from gsmgw.at.events import PortClosed, SimStatus, Urc, UssdResult
from gsmgw.at.parser import csq_to_dbm, split_fields
from gsmgw.at.profiles import (
    GENERIC,
    PROFILES,
    ModemProfile,
    detect_profile,
    get_profile,
    normalise_iccid,
)
from gsmgw.at.registration import is_registered, status_text
from gsmgw.at.session import AtSession, Response

log = logging.getLogger("gsmgw.at")

# ------------------------------------------------------------------------ data


@dataclass(frozen=True)
class ModemInfo:
    port: str
    profile: str
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    own_number: str | None = None
    smsc: str | None = None
    pin_state: str | None = None  # READY, SIM PIN, SIM PUK, ... (AT+CPIN?)
    pin_entered: bool = False  # initialize() sent the PIN
    storage: tuple[str, str, str] | None = None  # AT+CPMS mem1, mem2, mem3
    cnmi: str | None = None
    needs_ack: bool = False  # +CMT/+CDS must be acknowledged with AT+CNMA
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registration:
    """TS 27.007 §7.2 +CREG <stat> (or +CEREG/+CGREG when CREG says not registered)."""

    registered: bool
    status: int | None
    status_text: str
    operator: str | None = None
    technology: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    storage: str
    index: int
    stat: int  # TS 27.005 §3.1: 0 received unread, 1 received read, 2 stored unsent, 3 stored sent
    pdu: str  # hex, starts with the SMSC field
    length: int  # TPDU octets


@dataclass(frozen=True)
class StorageUse:
    name: str
    used: int
    total: int

    @property
    def full(self) -> bool:
        return self.total > 0 and self.used >= self.total


@dataclass(frozen=True)
class StorageStatus:
    """TS 27.005 §3.2.2 +CPMS?: read/delete (mem1), write/send (mem2), receive (mem3)."""

    read: StorageUse
    write: StorageUse | None
    receive: StorageUse | None


@dataclass(frozen=True)
class UssdReply:
    status: int  # TS 27.007 §7.15 <m>: 0 done, 1 more input expected, 2 ended by network, ...
    text: str | None


# TS 27.007 §7.3 +COPS <AcT>
ACCESS_TECHNOLOGY = {
    0: "GSM", 1: "GSM compact", 2: "UTRAN", 3: "GSM/EGPRS", 4: "UTRAN/HSDPA", 5: "UTRAN/HSUPA",
    6: "UTRAN/HSPA", 7: "E-UTRAN", 8: "EC-GSM-IoT", 9: "E-UTRAN NB-S1", 10: "E-UTRA/5GCN",
    11: "NR/5GCN", 12: "NG-RAN", 13: "E-UTRA-NR dual",
}

# ------------------------------------------------------------------------ pure response parsers

_PREFIXED = re.compile(r"^[+^][A-Z]+:\s*", re.IGNORECASE)


def parse_text_value(lines: list[str], *labels: str) -> str | None:
    """The value of a one-line answer (AT+CGMI, AT+CGMM, AT+CGMR): ``huawei``, ``+CGMI: huawei``
    and ``Manufacturer: huawei`` all give ``huawei``."""
    for line in lines:
        value = _PREFIXED.sub("", line)
        for label in labels:
            if value.lower().startswith(label.lower() + ":"):
                value = value[len(label) + 1:]
        value = value.strip().strip('"').strip()
        if value:
            return value
    return None


def parse_digits(lines: list[str], low: int, high: int) -> str | None:
    """The first run of ``low``..``high`` digits (IMEI: 15, IMSI: up to 15, TS 23.003 §2.2/§6.2)."""
    for line in lines:
        m = re.search(r"(?<!\d)(\d{%d,%d})(?!\d)" % (low, high), line)
        if m:
            return m.group(1)
    return None


def parse_cpin(lines: list[str]) -> str | None:
    """TS 27.007 §8.3 ``+CPIN: <code>`` -> ``READY``, ``SIM PIN``, ``SIM PUK``, ..."""
    for line in lines:
        if line.upper().startswith("+CPIN:"):
            return line.split(":", 1)[1].strip().strip('"').upper()
    return None


def parse_cpms(lines: list[str], names: tuple[str, ...] | None = None) -> StorageStatus:
    """TS 27.005 §3.2.2 ``+CPMS: <mem1>,<used1>,<total1>,<mem2>,...`` (the read form).

    Some firmwares answer the query in the set command's form, numbers only
    (``+CPMS: <used1>,<total1>,<used2>,<total2>,...``); then ``names`` (the storages selected
    at init) name them.
    """
    for line in lines:
        if line.upper().startswith("+CPMS:"):
            f = split_fields(line.split(":", 1)[1])
            uses = []
            if f and f[0].isdigit():
                # Without names known, the storages stay unnamed ("") rather than misread.
                for i, name in zip(range(0, len(f) - 1, 2), names or ("", "", ""), strict=False):
                    if not (f[i].isdigit() and f[i + 1].isdigit()):
                        break
                    uses.append(StorageUse(name.upper(), int(f[i]), int(f[i + 1])))
            else:
                for i in range(0, len(f) - 2, 3):
                    try:
                        uses.append(StorageUse(f[i].upper(), int(f[i + 1]), int(f[i + 2])))
                    except ValueError:
                        break
            if uses:
                return StorageStatus(uses[0], uses[1] if len(uses) > 1 else None,
                                     uses[2] if len(uses) > 2 else None)
    raise ResponseError(f"cannot read the storage use from {lines!r}")


_CREG_READ_FORM = re.compile(r"^\s*\d+\s*,\s*(\d+)\s*(?:,|$)")
_CREG_URC_FORM = re.compile(r"^\s*(\d+)\s*(?:,\s*\"|$)")


def parse_creg(lines: list[str], prefix: str) -> int | None:
    """``+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>]]`` (TS 27.007 §7.2; also +CGREG §10.1.20,
    +CEREG §10.1.22).

    The unsolicited form has no <n> (``+CREG: <stat>[,"<lac>","<ci>"...]``). It can come while
    the query runs, and some firmwares answer the query with it, so a line is read by its
    shape: an unquoted second number is <stat> after <n>; else the first number is <stat>.
    """
    urc_form = None
    for line in lines:
        if line.upper().startswith(prefix + ":"):
            rest = line.split(":", 1)[1]
            m = _CREG_READ_FORM.match(rest)
            if m:
                return int(m.group(1))
            m = _CREG_URC_FORM.match(rest)
            if m and urc_form is None:
                urc_form = int(m.group(1))
    return urc_form


def parse_cops(lines: list[str]) -> tuple[str | None, str | None]:
    """TS 27.007 §7.3 ``+COPS: <mode>[,<format>,<oper>[,<AcT>]]`` -> (operator, technology)."""
    for line in lines:
        if line.upper().startswith("+COPS:"):
            f = split_fields(line.split(":", 1)[1])
            operator = f[2] if len(f) >= 3 and f[2] else None
            tech = None
            if len(f) >= 4 and f[3].isdigit():
                tech = ACCESS_TECHNOLOGY.get(int(f[3]), f[3])
            return operator, tech
    return None, None


def _ucs2_number(text: str) -> str:
    """Numbers print as UCS2 hex when AT+CSCS="UCS2" is in force (TS 27.007 §5.5):
    ``002B0034003900310037`` is ``+4917``."""
    if len(text) >= 8 and len(text) % 4 == 0 and re.fullmatch(r"(?:00[0-9A-Fa-f]{2})+", text):
        decoded = bytes.fromhex(text).decode("utf-16-be")
        if re.fullmatch(r"\+?[0-9]+", decoded):
            return decoded
    return text


def parse_csca(lines: list[str]) -> str | None:
    """TS 27.005 §3.3.1 ``+CSCA: <sca>,<tosca>``; None if no SMSC is set."""
    for line in lines:
        if line.upper().startswith("+CSCA:"):
            f = split_fields(line.split(":", 1)[1])
            number = _ucs2_number(f[0].strip())
            if not number or not re.search(r"\d", number):
                return None
            if len(f) > 1 and f[1] == "145" and not number.startswith("+"):
                number = "+" + number
            return number
    return None


def parse_cnum(lines: list[str]) -> str | None:
    """TS 27.007 §7.1 ``+CNUM: [<alpha>],<number>,<type>``."""
    for line in lines:
        if line.upper().startswith("+CNUM:"):
            f = split_fields(line.split(":", 1)[1])
            if len(f) >= 2 and re.search(r"\d", f[1]):
                number = _ucs2_number(f[1])
                if len(f) > 2 and f[2] == "145" and not number.startswith("+"):
                    number = "+" + number
                return number
    return None


def parse_cmgs(lines: list[str]) -> int:
    """TS 27.005 §3.5.1 ``+CMGS: <mr>[,<scts>]`` -> TP-MR."""
    for line in lines:
        if line.upper().startswith("+CMGS:"):
            f = split_fields(line.split(":", 1)[1])
            if f[0].isdigit():
                return int(f[0])
    raise ResponseError(
        f"the modem accepted the message but gave no message reference (+CMGS) in {lines!r}"
    )


# TS 27.005 §3.1 <stat> in text mode. Broken firmwares (ZTE MF-series sticks, as smstools3's
# and Gammu's workarounds for them note) print these words in PDU mode too.
_STAT_WORDS = {"REC UNREAD": 0, "REC READ": 1, "STO UNSENT": 2, "STO SENT": 3, "ALL": 4}


def _stat(field: str) -> int:
    word = field.strip().upper()
    return _STAT_WORDS[word] if word in _STAT_WORDS else int(word)


def parse_stored(lines: list[str], storage: str, prefix: str, index: int | None = None) -> list[StoredMessage]:
    """Pairs of ``+CMGL: <index>,<stat>,[<alpha>],<length>`` + PDU line (TS 27.005 §3.4.2), or
    ``+CMGR: <stat>,[<alpha>],<length>`` + PDU line (§3.4.3)."""
    messages = []
    header: list[str] | None = None
    for line in lines:
        if line.upper().startswith(prefix + ":"):
            header = split_fields(line.split(":", 1)[1])
            continue
        if header is not None and re.fullmatch(r"[0-9A-Fa-f]+", line):
            try:
                if prefix == "+CMGL":
                    idx, stat = int(header[0]), _stat(header[1])
                else:
                    idx, stat = index if index is not None else -1, _stat(header[0])
                length = int(header[-1])
            except (ValueError, IndexError):
                raise ResponseError(f"cannot read the message header {prefix}: {header!r}") from None
            messages.append(StoredMessage(storage, idx, stat, line.upper(), length))
            header = None
    return messages


def check_pdu_length(pdu_hex: str, length: int) -> None:
    """TS 27.005 §3.5.1: <length> counts the TPDU octets, without the SMSC field that leads
    the PDU. A wrong length makes modems wait for more octets or answer +CMS ERROR 304."""
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", pdu_hex or ""):
        raise ValueError("the PDU must be an even number of hex digits")
    smsc_octets = int(pdu_hex[:2], 16)
    tpdu = len(pdu_hex) // 2 - 1 - smsc_octets
    if tpdu != length:
        raise ValueError(f"AT+CMGS length {length} does not match the PDU's {tpdu} TPDU octets")


# ------------------------------------------------------------------------ the driver

StateCallback = Callable[[str, str], None]


class Modem:
    """One modem on one port. See docs/DEVELOPING.md for the contract the daemon relies on."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        profile: str | None = None,
        on_urc: Callable[[Urc], None] | None = None,
        on_state: StateCallback | None = None,
        command_timeout: float = 10.0,
        send_timeout: float = 60.0,
        prompt_timeout: float = 10.0,
        list_timeout: float = 30.0,
        ready_timeout: float = 30.0,
        reset_timeout: float = 15.0,
        allow_unknown_pin_attempts: bool = False,
        smsc: str | None = None,
    ):
        self.port = port
        self.forced_profile = get_profile(profile) if profile else None
        self.profile: ModemProfile = self.forced_profile or GENERIC
        self.on_urc = on_urc
        self.on_state = on_state
        self.command_timeout = command_timeout
        self.send_timeout = send_timeout
        self.prompt_timeout = prompt_timeout
        self.list_timeout = list_timeout
        self.ready_timeout = ready_timeout
        self.reset_timeout = reset_timeout
        self.allow_unknown_pin_attempts = allow_unknown_pin_attempts
        self.smsc = smsc
        self.info = ModemInfo(port=port, profile=self.profile.name)
        self.session = AtSession(
            port, baudrate=baudrate, on_urc=self._on_urc, default_timeout=command_timeout,
        )
        self._urc_waiters: list[tuple[Callable[[Urc], bool], asyncio.Future[Urc]]] = []
        self._mem1: str | None = None
        # Whether commands still come back echoed after initialize's ATE0 (firmwares that
        # ignore ATE0 do); None until initialize has run.
        self._echo_after_init: bool | None = None

    def __repr__(self) -> str:
        return f"<Modem {self.port} profile={self.profile.name} imsi={self.info.imsi} {self.session!r}>"

    # ------------------------------------------------------------------ plumbing

    def _state(self, state: str, detail: str = "") -> None:
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:  # a subscriber's bug must not break the driver
                log.exception("%s: state subscriber failed", self.port)

    def _on_urc(self, event: Urc) -> None:
        for predicate, fut in list(self._urc_waiters):
            if not fut.done() and (predicate(event) or isinstance(event, PortClosed)):
                fut.set_result(event)
        if isinstance(event, PortClosed):
            self._state("gone", event.reason)
        if self.on_urc is not None:
            self.on_urc(event)

    async def wait_for_urc(self, predicate: Callable[[Urc], bool], timeout: float) -> Urc:
        """The next URC for which ``predicate`` is true; :class:`ModemTimeout` after ``timeout``."""
        fut: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._urc_waiters.append(entry)
        try:
            event = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise ModemTimeout("(waiting for an unsolicited result)", timeout) from None
        finally:
            self._urc_waiters.remove(entry)
        if isinstance(event, PortClosed) and not predicate(event):
            raise PortGone(f"{self.port}: {event.reason}")
        return event

    async def command(self, line: str, *, timeout: float | None = None, check: bool = True) -> Response:
        return await self.session.command(line, timeout=timeout, check=check)

    async def _optional(self, line: str, *, timeout: float | None = None) -> Response | None:
        """A query some firmwares lack: an error answer gives None (timeouts still raise)."""
        try:
            return await self.session.command(line, timeout=timeout)
        except AtCommandError as exc:
            log.debug("%s: %s not supported: %s", self.port, line, exc)
            return None

    # ------------------------------------------------------------------ open / close

    async def open(self) -> None:
        await self.session.open()
        self._mem1 = None
        self._echo_after_init = None
        self._state("open")

    async def close(self) -> None:
        await self.session.close()
        self._state("closed")

    @property
    def is_open(self) -> bool:
        return self.session.is_open

    @property
    def settings_lost(self) -> bool:
        """The last command came back echoed although initialize had switched echo off for
        good: the modem restarted without announcing it (no RDY, no +CPIN), so every other
        setting of initialize (+CMEE, +CNMI, +CSMS, the PIN) is gone as well (V.250 §6.2.4:
        echo is on after power-up)."""
        return self._echo_after_init is False and self.session.parser.echoed

    # ------------------------------------------------------------------ initialisation

    async def identify(self) -> ModemInfo:
        """Who is on this port, changing as little as possible: no PIN, no storage or routing
        changes (echo off and numeric errors only). For `gsmgw probe` and `doctor`."""
        await self.sync()
        await self.command("ATE0")
        await self._optional("AT+CMEE=1")
        manufacturer = await self._manufacturer()
        if self.forced_profile is None:
            self.profile = detect_profile(manufacturer or "")
        info = await self.identity()
        self.info = replace(info, manufacturer=manufacturer or info.manufacturer,
                            pin_state=await self.pin_state())
        return self.info

    async def sync(self) -> None:
        """Get a clean command line: leave a prompt left over from a crash, eat stale output."""
        await self.session.send_raw(b"\x1b")
        last: ModemError | None = None
        for _ in range(3):
            try:
                # V1: verbose result codes, in case the modem was left in ATV0 (digits only).
                await self.session.command("ATV1", timeout=min(self.command_timeout, 3.0))
                return
            except (AtCommandError, ModemTimeout) as exc:
                last = exc
        raise ModemTimeout("ATV1", min(self.command_timeout, 3.0)) from last

    async def initialize(self, pin: str | None = None) -> ModemInfo:
        """Bring the modem into the state the daemon needs and return who it is.

        Echo off, numeric errors (CMEE=1), PDU mode (CMGF=0), the vendor's init strings, the
        PIN (PUK-safe), storage (CPMS) and routing (CNMI) per profile, the SMSC check, identity.
        Raises :class:`SimLocked` when the SIM needs a PIN/PUK that will not be entered.
        """
        self._state("initializing")
        warnings: list[str] = []
        await self.sync()
        await self.command("ATE0")
        if await self._optional("AT+CMEE=1") is None:
            warnings.append("the modem does not support AT+CMEE=1; errors are less specific")
        try:
            await self.command("AT+CMGF=0")
        except AtCommandError as exc:
            raise ModemError(
                f"{self.port}: the modem refuses PDU mode (AT+CMGF=0: {exc}); is this the "
                "modem's AT port? Some sticks have several serial ports, try the others"
            ) from exc
        # TS 27.007 §5.5: the PIN, storage names and numbers are strings in the +CSCS
        # character set. A modem left in (or starting in) "UCS2" would read AT+CPIN="1234" as a
        # wrong PIN and burn an attempt, so a plain set is chosen before anything else: "IRA"
        # (ASCII), else "GSM" for firmwares that know only GSM and UCS2. IRA first, because in
        # "GSM" an operator name's "ó" or a USSD "@" arrives as a control byte.
        if await self._optional('AT+CSCS="IRA"') is None and await self._optional('AT+CSCS="GSM"') is None:
            warnings.append('the modem accepts neither AT+CSCS="IRA" nor "GSM"; numbers may read oddly')
        manufacturer = await self._manufacturer()
        if self.forced_profile is None:
            self.profile = detect_profile(manufacturer or "")
        for line in self.profile.init_commands:
            await self._optional(line)

        pin_state, pin_entered = await self._unlock(pin)
        storage = await self._choose_storage()
        cnmi = await self._choose_routing(warnings)
        needs_ack = await self._needs_ack(cnmi)
        await self._announce_calls(warnings)
        smsc = await self._check_smsc(warnings)
        info = await self.identity()
        self.info = replace(
            info, manufacturer=manufacturer or info.manufacturer, pin_state=pin_state,
            pin_entered=pin_entered, storage=storage, cnmi=cnmi, needs_ack=needs_ack, smsc=smsc,
            warnings=tuple(warnings),
        )
        for warning in warnings:
            log.warning("%s: %s", self.port, warning)
        self._echo_after_init = self.session.parser.echoed
        self._state("ready", f"{self.info.manufacturer} {self.info.model} profile {self.profile.name}")
        return self.info

    async def _manufacturer(self) -> str | None:
        response = await self._optional("AT+CGMI")
        value = parse_text_value(response.lines, "Manufacturer") if response else None
        if value is None:
            response = await self._optional("ATI")
            value = " ".join(response.lines) if response and response.lines else None
        return value

    async def pin_state(self) -> str | None:
        """TS 27.007 §8.3 AT+CPIN?: READY, SIM PIN, SIM PUK, ... (None if the modem will not say)."""
        try:
            response = await self.command("AT+CPIN?")
        except CmeError as exc:
            if exc.code == 10:
                return "NO SIM"
            if exc.code in (13, 14, 15):
                return "SIM FAILURE" if exc.code != 14 else "SIM BUSY"
            raise
        except AtCommandError:
            return None
        return parse_cpin(response.lines)

    async def pin_attempts_left(self) -> int | None:
        """PIN attempts left: AT+CPINR (TS 27.007 §8.65) or the vendor's query; None if unknown."""
        queries = list(self.profile.pin_attempt_queries)
        # Then every other vendor's query: a modem the profile does not know may still
        # answer one of them (rebadged SIMCom and Quectel modules are common).
        for profile in PROFILES.values():
            queries += [q for q in profile.pin_attempt_queries if q not in queries]
        for line, parse in queries:
            response = await self._optional(line)
            if response is not None:
                attempts = parse(response.lines)
                if attempts is not None:
                    return attempts
        return None

    async def _wait_sim_ready(self, *, pin_accepted: bool = False) -> str | None:
        """AT+CPIN? until the SIM is no longer busy. ``pin_accepted``: the modem answered OK to
        the PIN, so SIM PIN is a state that has not caught up yet (ZTE MF-series say SIM PIN
        until their +CPIN: READY URC), not a refusal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        # NOT READY: SIMCom and Quectel modules while the SIM starts up (not a 27.007 code).
        waiting = ("SIM BUSY", None, "NOT READY") + (("SIM PIN",) if pin_accepted else ())
        state = await self.pin_state()
        while state in waiting and loop.time() < deadline:
            # The SIM is still being read after power-up or PIN entry (CME 14): ask again when
            # it says it is ready, or after half a second for modems that never say so.
            with contextlib.suppress(ModemTimeout):  # no URC: the half second is up, ask
                await self.wait_for_urc(
                    lambda e: isinstance(e, SimStatus) and e.state == "READY", 0.5
                )
            state = await self.pin_state()
        return state

    async def _unlock(self, pin: str | None) -> tuple[str | None, bool]:
        state = await self._wait_sim_ready()
        if state in ("READY", None):
            return state, False
        if state in ("NO SIM", "NOT INSERTED", "SIM NOT INSERTED"):
            raise SimLocked(f"{self.port}: no SIM card in the modem; insert one", state=state,
                            reason="no_sim")
        if state in ("SIM BUSY", "NOT READY"):
            raise SimLocked(
                f"{self.port}: the SIM is still starting up ({state}) after {self.ready_timeout:g} s; "
                "check that it sits well in its slot, or power-cycle the modem",
                state=state, reason="not_ready",
            )
        if state != "SIM PIN":
            raise SimLocked(
                f"{self.port}: the SIM asks for {state}; gsmgw enters only the SIM PIN. "
                "Unlock it in a phone or with `AT+CPIN` by hand",
                state=state, reason="needs_puk",
            )
        if not pin:
            raise SimLocked(
                f"{self.port}: the SIM asks for its PIN; set `pin:` for this modem in the config",
                state=state, reason="no_pin",
            )
        attempts = await self.pin_attempts_left()
        if attempts is None and not self.allow_unknown_pin_attempts:
            raise SimLocked(
                f"{self.port}: the SIM asks for its PIN but the modem does not say how many "
                "attempts are left, so gsmgw does not risk one (a wrong PIN could lock the SIM "
                "with its PUK). Enter the PIN once by hand, or remove the PIN from the SIM",
                state=state, reason="unknown_attempts",
            )
        if attempts is not None and attempts < 2:
            raise SimLocked(
                f"{self.port}: the SIM has only {attempts} PIN attempt(s) left; gsmgw will not "
                "use it, because one wrong PIN would block the SIM (PUK). Check the PIN in the "
                "config and enter it by hand (AT+CPIN) or in a phone",
                state=state, reason="few_attempts", attempts_left=attempts,
            )
        try:
            await self.session.command(f'AT+CPIN="{pin}"', timeout=max(self.command_timeout, 20.0))
        except CmeError as exc:
            left = max(0, attempts - 1) if attempts is not None else None
            raise SimLocked(
                f"{self.port}: the SIM refused the PIN from the config ({exc.meaning}); "
                f"{left if left is not None else 'an unknown number of'} attempt(s) left. "
                "Fix `pin:` in the config; gsmgw will not try it again",
                state=state, reason="pin_rejected", attempts_left=left,
            ) from exc
        state = await self._wait_sim_ready(pin_accepted=True)
        if state != "READY":
            raise SimLocked(f"{self.port}: the SIM is still not ready after the PIN ({state})",
                            state=state or "unknown", reason="not_ready")
        return state, True

    async def _retry_while_sim_busy(self, line: str) -> Response:
        """Run ``line``, retrying while the SIM is still starting up (CMS 314/CME 14, 302)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while True:
            try:
                return await self.command(line)
            except (CmsError, CmeError) as exc:
                busy = exc.code in ((314, 302, 500) if isinstance(exc, CmsError) else (14, 3))
                if not busy or loop.time() >= deadline:
                    raise
            await asyncio.sleep(0.5)

    async def _choose_storage(self) -> tuple[str, str, str] | None:
        errors = []
        for choice in self.profile.cpms_choices:
            line = "AT+CPMS=" + ",".join(f'"{m}"' for m in choice)
            try:
                await self._retry_while_sim_busy(line)
            except AtCommandError as exc:
                errors.append(f"{line}: {exc}")
                continue
            self._mem1 = choice[0]
            return choice
        raise ModemError(
            f"{self.port}: the modem accepts no SMS storage ({'; '.join(errors)}); "
            "is the SIM inserted and ready?"
        )

    async def _choose_routing(self, warnings: list[str]) -> str | None:
        for choice in self.profile.cnmi_choices:
            if await self._optional(f"AT+CNMI={choice}") is not None:
                if choice.split(",")[1] != "1":
                    warnings.append(f"new SMS are routed directly (AT+CNMI={choice})")
                return choice
        warnings.append(
            "the modem accepts no AT+CNMI setting: new SMS are not announced; the daemon must "
            "poll the storage (list_messages)"
        )
        return None

    async def _announce_calls(self, warnings: list[str]) -> None:
        """Have incoming calls announced with their caller (profile.call_commands)."""
        refused = [line for line in self.profile.call_commands if await self._optional(line) is None]
        if refused and len(refused) == len(self.profile.call_commands):
            warnings.append(f"the modem refuses {' and '.join(refused)}: an incoming call may show no caller")

    async def hang_up(self) -> str:
        """Hang up a ringing (or any) call: the profile's hangup_commands in order; returns the one
        that worked. AtCommandError (the last refusal) when none did."""
        error: AtCommandError | None = None
        for line in self.profile.hangup_commands:
            try:
                await self.command(line)
            except AtCommandError as exc:
                error = exc
                continue
            return line
        assert error is not None
        raise error

    async def _needs_ack(self, cnmi: str | None) -> bool:
        """TS 27.005 §3.2.1/§3.4.4: with AT+CSMS service 1, SMS and reports routed directly
        (+CMT, +CDS) must be acknowledged with AT+CNMA."""
        response = await self._optional("AT+CSMS?")
        service = None
        if response is not None:
            for line in response.lines_with("+CSMS:"):
                f = split_fields(line)
                service = f[0] if f else None
        fields = (cnmi or "").split(",") + ["", "", "", ""]
        # <mt> 2/3 routes SMS-DELIVERs, <ds> 1 routes status reports (TS 27.005 §3.4.1).
        direct = fields[1] in ("2", "3") or fields[3] == "1"
        needs = service == "1" and direct
        self.session.parser.needs_ack = needs
        return needs

    async def _check_smsc(self, warnings: list[str]) -> str | None:
        response = await self._optional("AT+CSCA?")
        smsc = parse_csca(response.lines) if response else None
        if smsc is None and self.smsc:
            toa = 145 if self.smsc.startswith("+") else 129
            await self.command(f'AT+CSCA="{self.smsc}",{toa}')
            smsc = self.smsc
        if smsc is None:
            warnings.append(
                "no SMS service centre (SMSC) is set on the SIM; sending will fail with "
                "+CMS ERROR 330. Set it with AT+CSCA=\"+<number>\",145 or ask the operator"
            )
        return smsc

    # ------------------------------------------------------------------ identity

    async def identity(self) -> ModemInfo:
        """Manufacturer, model, revision, IMEI, IMSI, ICCID and (if the SIM knows it) the own
        number (TS 27.007 §5.1-§5.4, §5.6, §7.1)."""

        async def value(line: str, *labels: str) -> str | None:
            response = await self._optional(line)
            return parse_text_value(response.lines, *labels) if response else None

        async def digits(line: str, low: int, high: int) -> str | None:
            response = await self._optional(line)
            return parse_digits(response.lines, low, high) if response else None

        manufacturer = await value("AT+CGMI", "Manufacturer")
        model = await value("AT+CGMM", "Model")
        revision = await value("AT+CGMR", "Revision")
        imei = await digits("AT+CGSN", 14, 17)
        imsi = await digits("AT+CIMI", 6, 15)
        iccid = None
        for line in self.profile.iccid_commands:
            response = await self._optional(line)
            if response is not None:
                iccid = normalise_iccid(" ".join(response.lines))
                if iccid:
                    break
        response = await self._optional("AT+CNUM")
        own = parse_cnum(response.lines) if response else None
        self.info = replace(
            self.info, profile=self.profile.name, manufacturer=manufacturer, model=model,
            revision=revision, imei=imei, imsi=imsi, iccid=iccid, own_number=own,
        )
        return self.info

    # ------------------------------------------------------------------ network

    async def signal_dbm(self) -> int | None:
        """TS 27.007 §8.5 AT+CSQ in dBm (-113..-51), None when the modem does not know (99)."""
        response = await self.command("AT+CSQ")
        for line in response.lines_with("+CSQ:"):
            f = split_fields(line)
            return csq_to_dbm(int(f[0])) if f and f[0].isdigit() else None
        raise ResponseError(f"{self.port}: no +CSQ line in the answer to AT+CSQ: {response.lines!r}")

    async def registration(self) -> Registration:
        """Network registration (TS 27.007 §7.2) and operator (§7.3)."""
        response = await self.command("AT+CREG?")
        status = parse_creg(response.lines, "+CREG")
        if not is_registered(status):
            # LTE-only modems register in EPS only (+CEREG); data-only ones in GPRS (+CGREG).
            for line, prefix in (("AT+CEREG?", "+CEREG"), ("AT+CGREG?", "+CGREG")):
                other = await self._optional(line)
                value = parse_creg(other.lines, prefix) if other else None
                if is_registered(value):
                    status = value
                    break
        operator = technology = None
        if is_registered(status):
            await self._optional("AT+COPS=3,0")  # long alphanumeric operator names
            cops = await self._optional("AT+COPS?")
            if cops is not None:
                operator, technology = parse_cops(cops.lines)
        return Registration(is_registered(status), status, status_text(status), operator, technology)

    # ------------------------------------------------------------------ SMS

    async def send_pdu(self, pdu_hex: str, length: int) -> int:
        """Submit one SMS-SUBMIT (TS 27.005 §3.5.1 AT+CMGS, PDU mode); returns its TP-MR.

        ``pdu_hex`` starts with the SMSC field (``00`` = the SIM's SMSC); ``length`` counts the
        TPDU octets after it. Raises :class:`CmsError` (``.temporary`` tells retry from fail),
        :class:`ModemTimeout` (the outcome is unknown: a late ``+CMGS`` arrives as
        ``LateSubmitResult``), :class:`PortGone`.
        """
        check_pdu_length(pdu_hex, length)
        response = await self.session.send_with_prompt(
            f"AT+CMGS={length}", pdu_hex.upper(),
            prompt_timeout=self.prompt_timeout, timeout=self.send_timeout,
        )
        return parse_cmgs(response.lines)

    async def _select_read_storage(self, storage: str) -> None:
        storage = storage.upper()
        if self._mem1 != storage:
            # Only mem1 changes: where new SMS arrive (mem3) stays as initialize() set it.
            await self.command(f'AT+CPMS="{storage}"')
            self._mem1 = storage

    async def list_messages(self, storage: str = "SM", stat: int = 4) -> list[StoredMessage]:
        """TS 27.005 §3.4.2 AT+CMGL=<stat> (4: all) in ``storage``."""
        await self._select_read_storage(storage)
        response = await self.command(f"AT+CMGL={stat}", timeout=self.list_timeout)
        return parse_stored(response.lines, storage.upper(), "+CMGL")

    async def read_message(self, storage: str, index: int) -> StoredMessage | None:
        """TS 27.005 §3.4.3 AT+CMGR=<index>; None when the slot is empty."""
        await self._select_read_storage(storage)
        try:
            response = await self.command(f"AT+CMGR={index}")
        except CmsError as exc:
            if exc.code == 321:  # invalid memory index: empty slot on most firmwares
                return None
            raise
        messages = parse_stored(response.lines, storage.upper(), "+CMGR", index)
        return messages[0] if messages else None

    async def delete_message(self, storage: str, index: int) -> None:
        """TS 27.005 §3.5.4 AT+CMGD=<index>."""
        await self._select_read_storage(storage)
        await self.command(f"AT+CMGD={index}")

    async def storage_status(self) -> StorageStatus:
        """TS 27.005 §3.2.2 AT+CPMS?: use of the read, write and receive storages."""
        response = await self.command("AT+CPMS?")
        status = parse_cpms(response.lines, self.info.storage)
        self._mem1 = status.read.name
        return status

    async def ack_new_message(self) -> None:
        """TS 27.005 §3.4.4 AT+CNMA: acknowledge a +CMT/+CDS (only when ``info.needs_ack``)."""
        await self.command("AT+CNMA")

    # ------------------------------------------------------------------ health and reset

    async def health_check(self, timeout: float = 5.0) -> None:
        """A cheap ``AT``. Raises :class:`ModemTimeout` or :class:`PortGone` when unhealthy."""
        await self.command("AT", timeout=timeout)

    async def soft_reset(self) -> None:
        """TS 27.007 §8.2 AT+CFUN=1,1: restart the modem. Returns when it answers again (or its
        port went away, as USB modems re-enumerate). Call ``initialize`` afterwards."""
        self._state("resetting")
        try:
            await self.command("AT+CFUN=1,1", timeout=self.reset_timeout)
        except PortGone:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        while loop.time() < deadline and self.session.is_open:
            try:
                await self.command("AT", timeout=2.0)
                return
            except (ModemTimeout, ModemRestarted, AtCommandError):
                continue  # still starting up (its RDY may cut our AT short)
            except PortGone:
                return
        if self.session.is_open:
            raise ModemTimeout("AT after AT+CFUN=1,1", self.ready_timeout)

    # ------------------------------------------------------------------ USSD

    async def ussd(self, code: str, timeout: float = 30.0) -> UssdReply:
        """TS 27.007 §7.15 AT+CUSD=1,<str>,15; the network's answer comes as a +CUSD URC."""
        if not re.fullmatch(r"[0-9*#+]{1,160}", code):
            raise ValueError(f"{code!r} is not a USSD code; use digits, * and #, e.g. *100#")
        text = _pack_ussd(code) if self.profile.ussd_packed else code
        waiter = asyncio.ensure_future(
            self.wait_for_urc(lambda e: isinstance(e, UssdResult), timeout)
        )
        try:
            response = await self.command(f'AT+CUSD=1,"{text}",15')
            # Some firmwares print +CUSD before OK, inside the response.
            for line in response.lines_with("+CUSD:"):
                f = split_fields(line)
                if f and f[0].isdigit():
                    return UssdReply(int(f[0]), _decode_ussd(f[1] if len(f) > 1 else None,
                                                             f[2] if len(f) > 2 else None,
                                                             self.profile.ussd_packed))
            event = await waiter
        finally:
            waiter.cancel()
        assert isinstance(event, UssdResult)
        return UssdReply(event.status, _decode_ussd(event.text, event.dcs, self.profile.ussd_packed))


def _pack_ussd(code: str) -> str:
    """TS 23.038 §6.1.2.3.1: USSD in GSM 7-bit, packed; a lone 7 spare bits get CR."""
    from gsmgw.sms.gsm7 import encode_septets, pack_septets

    septets = encode_septets(code)
    if len(septets) % 8 == 7:
        septets.append(0x0D)
    return pack_septets(septets).hex().upper()


def _decode_ussd(text: str | int | None, dcs: str | int | None, packed: bool) -> str | None:
    """The text of a +CUSD reply, decoded by its <dcs> (gsmgw.sms.cbs, TS 23.038 §5)."""
    from gsmgw.sms.cbs import decode_ussd

    try:
        dcs_value = int(dcs) if dcs is not None and str(dcs).strip() != "" else None
    except ValueError:
        dcs_value = None
    return decode_ussd(None if text is None else str(text), dcs_value, packed=packed)


__all__ = [
    "Modem", "ModemInfo", "Registration", "StoredMessage", "StorageStatus", "StorageUse",
    "UssdReply",
]
