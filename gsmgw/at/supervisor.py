"""Keeps one modem usable: opens it, watches it, climbs the recovery ladder, reopens it.

States and what moves between them (each move is reported as a :class:`SupervisorEvent`):

    opening --initialize ok--> ready --port closed--> absent --path back--> opening
    ready --health check fails / commands keep timing out--> unresponsive --> recovery steps:
        reinit (initialize again) -> reset (AT+CFUN=1,1, then initialize) -> reopen (close,
        open, initialize); the first that works gives "recovered"; if none does: "failed",
        and after a backoff the cycle starts again from opening.
    opening --SIM needs a PIN/PUK that will not be entered--> locked (retried after backoff_max)
    ready --the modem announces a restart (RDY, SMS Ready, +CFUN: 1, +CPIN: ...)--> restarted
        --> the recovery steps above, whose first (initialize again) normally does it

The same picture is the table MOVES in code (SupervisorState, EventKind): a move it does not
list is refused (gsmgw.states.StateMoveRefused), so a new state cannot slip in undrawn.

A modem that restarts behind its port (a USB power dip, a watchdog) comes back with its
power-up settings: echo on, no +CMEE (firmwares that hide +CMS codes then too answer a
permanent +CMS ERROR 21 with a bare ERROR, which reads as temporary), no +CNMI routing (no SMS
or report announcements), +CSMS 0, and the SIM asking for its PIN. Its announcement
(`gsmgw.at.events.announces_restart`) is treated like a reconnect: initialize again, which also
decides +CNMA (AT+CSMS) anew and identifies the SIM again. A modem that restarts without a word
is noticed by its command echo, which power-up switches on again (`Modem.settings_lost`): at the
next health check, or at once when the worker sees it. Announcements that come while initialize
runs (SIMCom prints "SMS Ready" seconds after "RDY") make it run once more afterwards, because
settings made before them may be gone; a modem that announces a restart during every
initialisation is set up MAX_RESTARTS_DURING_INIT times, then its announcements during
initialisation are ignored (logged).

After each successful initialize the SIM's IMSI/ICCID are compared with the last ones seen on
this port; a different SIM is reported as ``sim_changed`` (with ``previous``).

The PIN is sent only while the SIM has never rejected it: after a rejection (or when fewer than
2 attempts are left) this supervisor never sends it again, so the SIM never reaches its PUK.
After a reset the SIM asks again; the same, accepted PIN is then entered again.
Modeled on ModemManager's timeout counting (mm-port-serial.c) and escalation (mm-base-modem.c).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gsmgw.at.errors import ModemError, ModemTimeout, PortBusy, PortGone, SimLocked
from gsmgw.at.events import ModemReady, Urc, announces_restart
from gsmgw.at.modem import Modem, ModemInfo
from gsmgw.states import check_move

log = logging.getLogger("gsmgw.at")

RECOVERY_STEPS = ("reinit", "reset", "reopen")
MAX_RESTARTS_DURING_INIT = 3


class SupervisorState(StrEnum):
    """Where the supervisor is (the module docstring draws the moves)."""

    STOPPED = "stopped"
    OPENING = "opening"
    READY = "ready"
    ABSENT = "absent"
    BUSY = "busy"  # another process holds the port
    LOCKED = "locked"
    UNRESPONSIVE = "unresponsive"
    RESTARTED = "restarted"
    FAILED = "failed"


class EventKind(StrEnum):
    """What a SupervisorEvent reports. Most are the state it enters; RECOVERY (a step of the
    ladder), RECOVERED (back to ready), SIM_CHANGED and MODEM_CHANGED (same SIM, other IMEI)
    are not states of their own."""

    OPENING = "opening"
    READY = "ready"
    ABSENT = "absent"
    BUSY = "busy"
    LOCKED = "locked"
    UNRESPONSIVE = "unresponsive"
    RECOVERY = "recovery"
    RESTARTED = "restarted"
    RECOVERED = "recovered"
    FAILED = "failed"
    SIM_CHANGED = "sim_changed"
    MODEM_CHANGED = "modem_changed"
    STOPPED = "stopped"


# The state each kind of event enters; None: the state stays.
ENTERS: Mapping[EventKind, SupervisorState | None] = {
    EventKind.OPENING: SupervisorState.OPENING,
    EventKind.READY: SupervisorState.READY,
    EventKind.ABSENT: SupervisorState.ABSENT,
    EventKind.BUSY: SupervisorState.BUSY,
    EventKind.LOCKED: SupervisorState.LOCKED,
    EventKind.UNRESPONSIVE: SupervisorState.UNRESPONSIVE,
    EventKind.RECOVERY: None,
    EventKind.RESTARTED: SupervisorState.RESTARTED,
    EventKind.RECOVERED: SupervisorState.READY,
    EventKind.FAILED: SupervisorState.FAILED,
    EventKind.SIM_CHANGED: None,
    EventKind.MODEM_CHANGED: None,
    EventKind.STOPPED: SupervisorState.STOPPED,
}

_S = SupervisorState
# The moves the loop makes (gsmgw.states.check_move refuses any other: a bug). stop() may end
# every state, so each also moves to stopped.
MOVES: Mapping[SupervisorState, frozenset[SupervisorState]] = {state: moves | {_S.STOPPED} for state, moves in {
    _S.STOPPED: frozenset({_S.OPENING, _S.ABSENT}),
    _S.ABSENT: frozenset({_S.OPENING}),
    _S.OPENING: frozenset({_S.READY, _S.BUSY, _S.LOCKED, _S.ABSENT, _S.UNRESPONSIVE}),
    _S.BUSY: frozenset({_S.OPENING, _S.ABSENT}),
    _S.LOCKED: frozenset({_S.OPENING, _S.ABSENT}),
    _S.READY: frozenset({_S.ABSENT, _S.UNRESPONSIVE, _S.RESTARTED}),
    # the recovery ladder: it recovers (ready), meets a SIM lock, or fails; a ladder cut short
    # by stop() while the port is gone reports it absent
    _S.UNRESPONSIVE: frozenset({_S.READY, _S.LOCKED, _S.FAILED, _S.ABSENT}),
    _S.RESTARTED: frozenset({_S.READY, _S.LOCKED, _S.FAILED, _S.ABSENT}),
    _S.FAILED: frozenset({_S.OPENING, _S.ABSENT}),
}.items()}


@dataclass(frozen=True)
class SupervisorEvent:
    """What happened (`kind`, an EventKind); ``step`` is one of RECOVERY_STEPS for a recovery,
    ``detail`` says why (for restarted: the line the modem printed)."""

    kind: EventKind
    port: str
    detail: str = ""
    step: str | None = None
    info: ModemInfo | None = None
    previous: ModemInfo | None = None


class ModemSupervisor:
    """Run with ``task = asyncio.create_task(sup.run())``; stop with ``await sup.stop()``.

    ``modem`` is the ready :class:`Modem` or None while it is not usable. ``poke()`` asks for
    a health check now (e.g. after a send timed out).
    """

    def __init__(
        self,
        port: str,
        *,
        on_event: Callable[[SupervisorEvent], None],
        on_urc: Callable[[Urc], None] | None = None,
        pin: str | None = None,
        modem_factory: Callable[..., Modem] = Modem,
        modem_options: dict | None = None,
        health_interval: float = 30.0,
        health_timeout: float = 5.0,
        timeouts_before_recovery: int = 2,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ):
        self.port = port
        self.on_event = on_event
        self.on_urc = on_urc
        self._pin = pin
        self._pin_rejected = False
        self.modem_factory = modem_factory
        self.modem_options = dict(modem_options or {})
        self.health_interval = health_interval
        self.health_timeout = health_timeout
        self.timeouts_before_recovery = timeouts_before_recovery
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.modem: Modem | None = None
        self.info: ModemInfo | None = None  # the last identity seen on this port
        self.state = SupervisorState.STOPPED
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._opened: list[Modem] = []
        self._restart_line: str | None = None  # how a restart not yet acted on showed itself
        self._initializing = False
        self._restarts_during_init = 0  # in a row

    def __repr__(self) -> str:
        return f"<ModemSupervisor {self.port} state={self.state} imsi={self.info and self.info.imsi}>"

    # ------------------------------------------------------------------ control

    def poke(self) -> None:
        self._poke.set()

    async def stop(self) -> None:
        """End run(): at once, also in the middle of an initialisation or recovery step."""
        self._stop.set()
        self._poke.set()
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()

    async def wait_ready(self, timeout: float) -> Modem:
        await asyncio.wait_for(self._ready.wait(), timeout)
        assert self.modem is not None
        return self.modem

    def _emit(self, kind: EventKind, detail: str = "", **extra: Any) -> None:
        entered = ENTERS[kind]
        if entered is not None:
            check_move(MOVES, self.state, entered, f"supervisor of {self.port}")
            self.state = entered
        event = SupervisorEvent(kind, self.port, detail, **extra)
        log.info("%s: %s%s%s", self.port, kind, f" ({event.step})" if event.step else "",
                 f": {detail}" if detail else "")
        try:
            self.on_event(event)
        except Exception:  # the subscriber's bug must not stop the supervision
            log.exception("%s: supervisor subscriber failed on %r", self.port, event)

    async def _pause(self, seconds: float) -> None:
        """Sleep that ends early on stop()."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass  # the pause ran its full time without a stop

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            await self._run()
        except asyncio.CancelledError:
            if not self._stop.is_set():
                raise  # cancelled by someone else: let them see it
        finally:
            self._ready.clear()
            self.modem = None
            # Also a modem cut off in the middle of initialize or recovery: no fd may leak.
            for modem in self._opened:
                await modem.close()
            self._opened = []
            self._emit(EventKind.STOPPED)

    def _on_modem_urc(self, event: Urc) -> None:
        # While initialize runs, a +CPIN: line is the SIM that initialize itself is waiting for
        # (after the PIN); a start-up banner then is a restart that may undo what init set.
        if announces_restart(event) and (isinstance(event, ModemReady) or not self._initializing):
            if self._restart_line is None:
                self._restart_line = f"it printed {event.raw!r}"
            self._poke.set()
        if self.on_urc is not None:
            self.on_urc(event)

    def _new_modem(self) -> Modem:
        modem = self.modem_factory(self.port, on_urc=self._on_modem_urc, **self.modem_options)
        self._opened = [m for m in self._opened if m.is_open] + [modem]
        return modem

    async def _run(self) -> None:
        backoff = self.backoff_initial
        absent_reported = False
        while not self._stop.is_set():
            if not os.path.exists(self.port):
                if not absent_reported:
                    self._emit(EventKind.ABSENT, f"{self.port} does not exist; waiting for it")
                    absent_reported = True
                await self._pause(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            absent_reported = False
            self._emit(EventKind.OPENING)
            modem = self._new_modem()
            try:
                await modem.open()
                await self._initialize(modem)
            except PortBusy as exc:
                self._emit(EventKind.BUSY, str(exc))
                await self._pause(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            except SimLocked as exc:
                await modem.close()
                self._emit(EventKind.LOCKED, str(exc))
                await self._pause(self.backoff_max)
                continue
            except PortGone as exc:
                await modem.close()
                self._emit(EventKind.ABSENT, str(exc))
                absent_reported = True
                await self._pause(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            except ModemError as exc:
                self._emit(EventKind.UNRESPONSIVE, str(exc))
                if not await self._recover(modem):
                    await modem.close()
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
            backoff = self.backoff_initial
            if not self._ready.is_set():
                self._emit(EventKind.READY, "", info=self.info)
                self._ready.set()
            if await self._monitor() == "gone":
                absent_reported = True

    async def _initialize(self, modem: Modem) -> None:
        pin = None if self._pin_rejected else self._pin
        self._restart_line = None  # this initialisation sets up whatever a restart undid
        self._initializing = True
        try:
            info = await modem.initialize(pin)
        except SimLocked as exc:
            if exc.reason in ("pin_rejected", "few_attempts"):
                self._pin_rejected = True
            if exc.reason == "no_pin" and self._pin_rejected and self._pin:
                raise SimLocked(
                    f"{self.port}: the SIM asks for its PIN, and gsmgw will not try the "
                    "configured one again because the SIM refused it (or had too few attempts "
                    "left). Fix `pin:` in the config and restart gsmgw",
                    state=exc.state, reason="pin_rejected",
                ) from exc
            raise
        finally:
            self._initializing = False
        if self._restart_line is None:
            self._restarts_during_init = 0
        else:
            self._restarts_during_init += 1
            if self._restarts_during_init > MAX_RESTARTS_DURING_INIT:
                log.warning(
                    "%s: the modem announced a restart (%s) during each of the last %d "
                    "initialisations; taking this one as done", self.port, self._restart_line,
                    MAX_RESTARTS_DURING_INIT,
                )
                self._restart_line = None
                self._restarts_during_init = 0
        previous = self.info
        self.info = info
        self.modem = modem
        if previous is not None and (previous.imsi, previous.iccid) != (info.imsi, info.iccid):
            self._emit(
                EventKind.SIM_CHANGED,
                f"SIM changed on {self.port}: IMSI {previous.imsi} -> {info.imsi}",
                info=info, previous=previous,
            )
        elif previous is not None and previous.imei != info.imei:
            self._emit(
                EventKind.MODEM_CHANGED,
                f"another modem on {self.port} (IMEI {previous.imei} -> {info.imei}), same SIM",
                info=info, previous=previous,
            )

    async def _monitor(self) -> str:
        """Watch the ready modem until its port ends ("gone"), it stops answering and cannot
        recover ("failed"), or stop() ("stopped")."""
        while not self._stop.is_set():
            modem = self.modem
            assert modem is not None
            closed = asyncio.ensure_future(modem.session.wait_closed())
            poke = asyncio.ensure_future(self._poke.wait())
            try:
                await asyncio.wait({closed, poke}, timeout=self.health_interval,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                poke.cancel()
            self._poke.clear()
            if self._stop.is_set():
                return "stopped"
            if not modem.session.is_open:
                self._lost(f"{self.port}: {modem.session.closed_reason}")
                return "gone"
            healthy = True
            if self._restart_line is None:  # an announced restart needs no health check
                healthy = await self._healthy(modem)
                if modem.settings_lost:
                    self._restart_line = "its commands came back echoed, without an announcement"
            if self._restart_line is not None:
                # Like a reconnect: the ladder's first step initializes it again.
                kind, detail = EventKind.RESTARTED, f"{self.port} restarted ({self._restart_line}); setting it up again"
                self._restart_line = None
            elif healthy:
                continue
            else:
                kind, detail = EventKind.UNRESPONSIVE, f"{self.port} does not answer AT"
            self._ready.clear()
            self.modem = None
            self._emit(kind, detail)
            if not await self._recover(modem):
                if not os.path.exists(self.port):
                    self._lost(f"{self.port} went away during recovery")
                    return "gone"
                return "failed"
            self._ready.set()
        return "stopped"

    def _lost(self, detail: str) -> None:
        self._ready.clear()
        self.modem = None
        self._emit(EventKind.ABSENT, detail)

    async def _healthy(self, modem: Modem) -> bool:
        if modem.session.consecutive_timeouts >= self.timeouts_before_recovery:
            return False
        try:
            await modem.health_check(self.health_timeout)
            return True
        except ModemTimeout:
            # One more chance: a single lost "OK" is not a dead modem.
            try:
                await modem.health_check(self.health_timeout)
                return True
            except ModemError:
                return False
        except ModemError:
            return False

    async def _recover(self, modem: Modem) -> bool:
        """Climb the ladder; True with ``self.modem`` ready, False when every step failed."""
        current = modem
        for step in RECOVERY_STEPS:
            if self._stop.is_set():
                return False
            self._emit(EventKind.RECOVERY, f"trying {step}", step=step)
            try:
                if step == "reset":
                    if not current.session.is_open:
                        continue
                    await current.soft_reset()
                    if not current.session.is_open:
                        # USB modems re-enumerate after AT+CFUN=1,1: wait for the path.
                        await self._wait_for_path(self.backoff_max)
                        current = self._new_modem()
                        await current.open()
                elif step == "reopen":
                    await current.close()
                    await self._wait_for_path(self.backoff_max)
                    current = self._new_modem()
                    await current.open()
                elif not current.session.is_open:
                    continue
                await self._initialize(current)
            except SimLocked as exc:
                self._emit(EventKind.LOCKED, str(exc))
                await current.close()
                return False
            except ModemError as exc:
                log.warning("%s: recovery step %s failed: %s", self.port, step, exc)
                continue
            self._emit(EventKind.RECOVERED, f"recovered by {step}", step=step, info=self.info)
            return True
        self._emit(EventKind.FAILED, f"{self.port}: no recovery step worked; retrying from the start")
        await current.close()
        return False

    async def _wait_for_path(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.1
        while not os.path.exists(self.port):
            if loop.time() >= deadline or self._stop.is_set():
                raise PortGone(f"{self.port} did not come back within {timeout:g} s")
            await self._pause(delay)
            delay = min(delay * 2, 2.0)
