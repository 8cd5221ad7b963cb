"""One worker per modem: an explicit state machine around the AT driver's supervisor.

States (docs/spool.md `status.json` `state`) and what moves between them:

    starting --supervisor ready--------------------> ready
    ready    --dispatcher gives a message----------> busy --message done---------> ready
    busy     --sending.rest_after failures in a row-> resting --sending.rest_for---> ready
    any      --port gone / SIM not found on probe--> absent --port back----------> starting
    any      --SIM wants a PIN/PUK we may not send-> locked --SIM ready later----> starting
    any      --no recovery step worked-------------> failed --supervisor retries--> starting

The supervisor (gsmgw.at.supervisor) opens the port, enters the PIN (at most once per start and
SIM, never with fewer than 2 attempts left: the driver enforces it), checks health and climbs the
recovery ladder. The worker turns its events into the states above, sends the messages the
dispatcher gives it, and reads inbound SMS and reports: on each `+CMTI`/`+CDSI`/`+CMT`/`+CDS`
and by a sweep of SM and ME storage every `sweep_interval`, so a lost URC loses nothing. A SIM
copy is deleted only after `Inbound.accept_pdu` said its file (or part) is on disk.

Sending one message (the journal makes it crash-safe):
  for each part without an MR: journal `submitting` (fsynced) -> AT+CMGS -> journal MR (fsynced).
A `+CMS ERROR` leaves nothing on the network: the part is pending again and pool.py decides:
retry (backoff, another modem) or fail. A timeout or a vanished port leaves the outcome unknown:
the part is sent again later and the log names it as a possible duplicate; if the modem's late
`+CMGS: <mr>` arrives first, the MR is recorded and the part is not sent again.

The worker only ever touches its own modem. It never decides where a message goes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import logging
import os
import time
from typing import Callable, Iterable, Mapping, assert_never

from gsmgw.at import events as at_events
from gsmgw.at.errors import AtCommandError, ModemError, ModemTimeout, PortGone
from gsmgw.at.supervisor import EventKind, ModemSupervisor, SupervisorEvent
from gsmgw.daemon import pool
from gsmgw.daemon.calls import CallLog, CallTracker
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.inbound import Inbound
from gsmgw.daemon.metrics import Metrics
from gsmgw.daemon.outbound import Outbound
from gsmgw.daemon.status import ModemStatus
from gsmgw.events import ModemStateChanged
from gsmgw.spool import journal as J
from gsmgw.spool.journal import Fenced, Journal, JournalUnavailable, QueuedMessage
from gsmgw.states import check_move
from gsmgw.ussd import UssdError

log = logging.getLogger("gsmgw.worker")

PROBE_RETRY = 30.0  # how often an imsi:/iccid:/imei: modem that was not found is looked for again
DISK_RETRY = 30.0  # a result that could not be written (disk full) is tried again after this
UNCERTAIN_GRACE = 20.0  # after a submit timed out, how long a late +CMGS answer is waited for
SWEEP_STORAGES = ("SM", "ME", "SR")  # SR: status reports, on modems that keep them apart
RECEIVED_STATS = (0, 1)  # TS 27.005 §3.1 <stat>: received unread / read (2, 3 are outgoing copies)


class Worker:
    def __init__(
        self,
        modem_config,
        *,
        journal: Journal,
        inbound: Inbound,
        outbound: Outbound,
        bus: EventBus | None,
        metrics: Metrics | None,
        fleet: Callable[[], Mapping[str, pool.ModemView]],
        on_change: Callable[[], None],
        on_free: Callable[[], None] | None = None,
        probe_ports: Iterable[str] = (),
        ports_in_use: Callable[[], set[str]] = lambda: set(),
        probe_lock: asyncio.Lock | None = None,
        status_interval: float = 30.0,
        sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        supervisor_options: Mapping | None = None,
        calls: CallLog | None = None,
    ):
        self.config = modem_config
        self.calls = calls
        self.call_tracker = CallTracker()
        self.name = modem_config.name
        self.journal = journal
        self.inbound = inbound
        self.outbound = outbound
        self.bus = bus
        self.metrics = metrics
        self.fleet = fleet
        self.on_change = on_change
        self.on_free = on_free or on_change  # free again for a message (the dispatcher listens)
        self.probe_ports = tuple(probe_ports)
        self.ports_in_use = ports_in_use
        self.probe_lock = probe_lock or asyncio.Lock()
        self.status_interval = status_interval
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.supervisor_options = dict(supervisor_options or {})
        self.status = ModemStatus(name=self.name)
        binding, value = modem_config.binding
        if binding == "port":
            self.status.port = value
        self.supervisor: ModemSupervisor | None = None
        self.job: QueuedMessage | None = None
        self.consecutive_failures = 0
        self.rest_until = 0.0
        self.stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._urcs: list[at_events.Urc] = []
        self._uncertain: tuple[str, int] | None = None  # a part whose +CMGS never came
        self._saved_not_deleted: dict[tuple[str, int], str] = {}  # (storage, index) -> PDU
        self._ussd_requests: list[tuple[str, float, asyncio.Future]] = []  # run between messages
        self._occupied = False  # reading inbound SMS or polling: not free for a message
        self._next_radio = 0.0
        self._next_sweep = 0.0
        if metrics:
            metrics.add_modem(self.name)

    def __repr__(self) -> str:
        return f"<Worker {self.name} {self.status.state} job={self.job and self.job.id}>"

    # -- the dispatcher's view ------------------------------------------------------------------

    @property
    def state(self) -> pool.WorkerState:
        return pool.WorkerState(self.status.state)

    def view(self) -> pool.ModemView:
        limits = self.config.limits
        return pool.ModemView(
            name=self.name,
            sim=self.status.imsi or self.name,
            imsi=self.status.imsi,
            state=self.status.state,
            per_minute=limits.per_minute,
            per_day=limits.per_day,
            prefixes=tuple(self.config.prefixes),
        )

    @property
    def idle(self) -> bool:
        """Ready for a message now: not sending, and not in the middle of reading inbound SMS
        or polling the radio (on a modem that hangs, those take until their timeout, and a
        message given meanwhile would wait for it instead of going to another modem)."""
        return (
            self.status.state == pool.READY
            and self.job is None
            and not self._occupied
            and not self.stopping.is_set()
        )

    def give(self, message: QueuedMessage) -> None:
        """The dispatcher claimed `message` for this modem in the journal; send it."""
        self.job = message
        self._set_state(pool.BUSY)
        self._wake.set()

    async def ussd(self, code: str, timeout: float):
        """Run the USSD `code` on this modem between two messages (TS 27.007 §7.15) and return
        the network's answer (gsmgw.at.modem.UssdReply). UssdError (gsmgw.ussd) when the
        modem cannot run it now, the network does not answer, or the modem refuses."""
        if self.status.state not in (pool.READY, pool.BUSY, pool.RESTING) or self.supervisor is None:
            why = f" ({self.status.last_error})" if self.status.last_error else ""
            raise UssdError("not_ready", f"{self.name} is {self.status.state}{why}: it cannot run USSD now; "
                                         f"try again when `gsmgw status` shows it ready")
        future = asyncio.get_running_loop().create_future()
        self._ussd_requests.append((code, timeout, future))
        self._wake.set()
        # The message in flight is finished first: up to a part's send timeout.
        wait = timeout + float(self.supervisor_options.get("modem_options", {}).get("send_timeout", 60.0))
        try:
            return await asyncio.wait_for(future, wait)
        except asyncio.TimeoutError:
            raise UssdError("timeout", f"{self.name} did not get to {code} within {wait:.0f} s; try again") from None

    async def _run_ussd(self, modem) -> None:
        """USSD requests that came since the last message (Worker.ussd); the dispatcher gives
        this modem no message meanwhile (the worker is occupied)."""
        while self._ussd_requests:
            code, timeout, future = self._ussd_requests.pop(0)
            if future.done():
                continue  # the asker gave up waiting
            try:
                reply = await modem.ussd(code, timeout)
            except ModemTimeout:
                future.set_exception(UssdError("timeout", f"the network did not answer {code} on {self.name} within "
                                                          f"{timeout:.0f} s; try again later"))
            except AtCommandError as error:
                future.set_exception(UssdError("modem", f"{self.name} refused the USSD request {code}: {error}"))
            except ModemError as error:
                future.set_exception(UssdError("not_ready", f"{self.name} went away during {code}: {error}"))
                raise
            else:
                log.info("%s: USSD %s answered (status %s)", self.name, code, reply.status)
                future.set_result(reply)

    def _fail_ussd_requests(self, why: str) -> None:
        requests, self._ussd_requests = self._ussd_requests, []
        for _code, _timeout, future in requests:
            if not future.done():
                future.set_exception(UssdError("not_ready", f"{self.name} {why}; try again when it is ready"))

    # -- state ----------------------------------------------------------------------------------

    def _set_state(self, state: pool.WorkerState, reason: str | None = None) -> None:
        """Move to `state` (pool.WORKER_MOVES lists the moves; any other is refused)."""
        previous = self.state
        check_move(pool.WORKER_MOVES, previous, state, f"worker {self.name}")
        if reason:
            self.status.last_error = reason
        if state == previous:
            return
        self.status.state = state
        log.info("%s: %s -> %s%s", self.name, previous, state, f" ({reason})" if reason else "")
        if self.metrics:
            self.metrics.set_state(self.name, state)
        if self.bus is not None:
            self.bus.publish(ModemStateChanged(self.name, state, previous, reason))
        self.on_change()

    def _usable_state(self) -> pool.WorkerState:
        """ready, or what keeps the modem from being ready (resting)."""
        if self.rest_until > self.clock():
            return pool.RESTING
        return pool.BUSY if self.job is not None else pool.READY

    def _on_supervisor(self, event: SupervisorEvent) -> None:
        """Every EventKind has its case (mypy's assert_never fails the check for a new one)."""
        kind = EventKind(event.kind)
        if event.info is not None:
            self._take_identity(event.info, another=kind in (EventKind.SIM_CHANGED, EventKind.MODEM_CHANGED))
        match kind:
            case EventKind.OPENING:
                self._set_state(pool.STARTING)
            case EventKind.READY | EventKind.RECOVERED:
                self._next_radio = 0.0
                self._next_sweep = 0.0
                self._set_state(self._usable_state())
            case EventKind.ABSENT:
                self._set_state(pool.ABSENT, event.detail or "port gone")
            case EventKind.LOCKED:
                self._set_state(pool.LOCKED, event.detail)
            case EventKind.BUSY:
                self._set_state(pool.FAILED, event.detail)
            case EventKind.UNRESPONSIVE | EventKind.RECOVERY | EventKind.RESTARTED:
                if self.state is not pool.STARTING:
                    self._set_state(pool.STARTING, event.detail or "not answering; recovering")
            case EventKind.FAILED:
                self._set_state(pool.FAILED, event.detail)
            case EventKind.SIM_CHANGED | EventKind.MODEM_CHANGED:
                # The new identity is taken above; limits and report matching follow the SIM's
                # IMSI, so nothing else changes here. Worth a warning: someone swapped hardware.
                log.warning("%s: %s", self.name, event.detail)
            case EventKind.STOPPED:
                self._set_state(pool.ABSENT, "stopped")
            case _:
                assert_never(kind)
        self._wake.set()

    def _take_identity(self, info, *, another: bool = False) -> None:
        """`another`: a different SIM or modem, so an identity it could not read is unknown, not
        the old one's."""
        self.status.imsi = info.imsi if another else info.imsi or self.status.imsi
        self.status.iccid = info.iccid if another else info.iccid or self.status.iccid
        self.status.imei = info.imei if another else info.imei or self.status.imei
        self.status.port = info.port or self.status.port

    def _on_urc(self, event: at_events.Urc) -> None:
        # Called in the loop by the driver's reader: must not block. A PDU that came with its URC
        # (+CMT, +CDS) is written at once (a few ms of disk), so its +CNMA can follow quickly;
        # anything that needs an AT command waits for the worker's loop.
        if isinstance(event, at_events.SignalReport):
            self.status.signal_dbm = event.dbm
            return
        if isinstance(event, at_events.RegistrationChanged):
            self.status.registered = event.registered
            return
        if isinstance(event, (at_events.Noise, at_events.StrayResponse, at_events.StrayFinal)):
            log.debug("%s: %s", self.name, event.raw)
            return
        if isinstance(event, (at_events.Ring, at_events.CallerId)):
            self.call_tracker.seen(event, self.clock())
            self._wake.set()
            return
        if isinstance(event, (at_events.ModemReady, at_events.SimStatus, at_events.PowerDown)):
            # A restart, or a SIM coming or going: the supervisor sets the modem up again and
            # reports it (restarted, recovered, sim_changed); nothing to do here.
            log.info("%s: the modem says %r", self.name, event.raw)
            return
        if isinstance(event, (at_events.IncomingDirect, at_events.ReportDirect)):
            try:
                self.inbound.accept_pdu(event.pdu, modem=self.name, imsi=self.status.imsi)
            except JournalUnavailable as error:
                # Not acknowledged: the network delivers it again later. The membership loop has
                # said once that the journal is away; one line per SMS would only repeat it.
                log.info("%s: an incoming PDU is not acknowledged until the journal is back (%s)", self.name, error)
                return
            except OSError as error:
                # Not acknowledged: the network delivers it again later.
                log.error("%s: cannot save an incoming PDU: %s; it is not acknowledged", self.name, error)
                return
            if not event.needs_ack:
                return
        self._urcs.append(event)
        self._wake.set()

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until `stop()`: find the port, supervise it, send and receive."""
        try:
            while not self.stopping.is_set():
                port = await self._resolve_port()
                if port is None:
                    return
                self.status.port = port
                await self._supervise(port)
        finally:
            if self.job is not None:
                self._hand_back(self.job, "gsmgw is stopping")
            self._fail_ussd_requests("is stopping")
            self._set_state(pool.ABSENT, None)

    async def stop(self) -> None:
        """SIGTERM: finish the message in flight (the loop checks between messages), then exit."""
        self.stopping.set()
        self._wake.set()

    async def _resolve_port(self) -> str | None:
        binding, value = self.config.binding
        if binding == "port":
            return value
        from gsmgw.at.probe import probe_ports  # imported only for modems bound by identity

        while not self.stopping.is_set():
            async with self.probe_lock:
                busy = self.ports_in_use()
                paths: list[str] = []
                for pattern in self.probe_ports:
                    for path in sorted(glob.glob(pattern)):
                        real = os.path.realpath(path)
                        if real not in busy and all(os.path.realpath(p) != real for p in paths):
                            paths.append(path)
                results = await probe_ports(paths) if paths else []
            for result in results:
                if getattr(result, binding, None) == value:
                    log.info("%s: %s %s found on %s", self.name, binding, value, result.port)
                    return result.port
            self._set_state(
                pool.ABSENT,
                f"no port among {', '.join(self.probe_ports) or 'probe_ports'} has {binding} {value}; "
                f"plug the modem in, or check probe_ports and the {binding} in the config",
            )
            await self._pause(PROBE_RETRY)
        return None

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass  # the pause ran its full time without a stop

    async def _supervise(self, port: str) -> None:
        options = {"baudrate": self.config.baudrate, "profile": self.config.profile}
        supervisor_options = dict(self.supervisor_options)
        options.update(supervisor_options.pop("modem_options", {}))
        supervisor = ModemSupervisor(
            port,
            on_event=self._on_supervisor,
            on_urc=self._on_urc,
            pin=self.config.pin,
            modem_options=options,
            health_interval=self.status_interval,
            **supervisor_options,
        )
        self.supervisor = supervisor
        task = asyncio.ensure_future(supervisor.run())
        rebind = self.config.binding[0] != "port"
        try:
            while not self.stopping.is_set() and not task.done():
                timeout = self._next_due()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass  # nobody woke us: the next due check has come
                self._wake.clear()
                if rebind and self.status.state == pool.ABSENT:
                    break  # a SIM bound by identity may come back on another port: probe again
                await self._step(supervisor)
            # Stopping: the message in flight was finished by _step; a given one not yet begun
            # goes back to the queue.
        finally:
            await supervisor.stop()
            try:
                await asyncio.wait_for(task, 15)
            except (asyncio.TimeoutError, Exception) as error:  # noqa: BLE001 - logged, shutting down
                log.warning("%s: supervisor did not stop cleanly: %r", self.name, error)
            self.supervisor = None

    def _next_due(self) -> float:
        now = self.clock()
        due = [self._next_radio - now, self._next_sweep - now, 5.0]
        call_due = self.call_tracker.due(now)
        if call_due is not None:
            due.append(call_due)
        if self.status.state == pool.RESTING:
            due.append(self.rest_until - now)
        return max(min(due), 0.05)

    async def _step(self, supervisor: ModemSupervisor) -> None:
        modem = supervisor.modem
        now = self.clock()
        if self.status.state == pool.RESTING and now >= self.rest_until:
            log.info("%s: rested; back in rotation", self.name)
            self._set_state(pool.READY)
        if modem is None:
            if self.job is not None and self.status.state not in (pool.BUSY, pool.READY):
                self._hand_back(self.job, f"{self.name} is {self.status.state}")
            if self._ussd_requests and self.status.state not in (pool.BUSY, pool.READY, pool.RESTING, pool.STARTING):
                self._fail_ussd_requests(f"is {self.status.state}")
            return
        try:
            if self.job is not None:
                if self.stopping.is_set():
                    self._hand_back(self.job, "gsmgw is stopping")
                else:
                    await self._send(modem, self.job)
            if self.stopping.is_set():
                return
            self._occupied = True
            try:
                await self._run_ussd(modem)
                await self._handle_urcs(modem)
                if now >= self._next_sweep:
                    self._next_sweep = now + self.sweep_interval
                    await self._sweep(modem)
                if now >= self._next_radio:
                    self._next_radio = now + self.status_interval
                    await self._poll_radio(modem)
            finally:
                self._occupied = False
                if self.idle:
                    self.on_free()
        except PortGone as error:
            log.warning("%s: port gone: %s", self.name, error)
        except ModemTimeout as error:
            log.warning("%s: %s", self.name, error)
            supervisor.poke()
        except ModemError as error:
            log.warning("%s: %s", self.name, error)
        except (JournalUnavailable, Fenced) as error:
            # A cluster's journal is away, or this member's lease is: nothing more is sent until
            # the membership loop has it back; reading inbound SMS goes on (they stay on the SIM).
            log.warning("%s: %s", self.name, error)
        if modem.settings_lost:
            supervisor.poke()  # our commands came back echoed: it restarted silently; set it up now

    def _hand_back(self, message: QueuedMessage, why: str) -> None:
        """A message given to this modem but not started goes back to the queue, untouched."""
        self.job = None
        try:
            row = self.journal.message(message.id)
            if row is not None and row.state == J.SENDING:
                self.journal.requeue(message.id, not_before=0.0, error=None, count_attempt=False)
                log.info("%s: handed back to the queue (%s)", message.id, why)
        except JournalUnavailable as error:
            # It stays claimed by this member; the membership loop releases it when the journal
            # is back (or another member does, once this member's lease has run out).
            log.warning("%s: not handed back (%s): %s", message.id, why, error)
        self.on_change()

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, modem, message: QueuedMessage) -> None:
        name = self.name
        imsi = self.status.imsi
        sim = imsi or name
        try:
            row = self.journal.message(message.id)
            if row is None or row.state != J.SENDING:
                return  # expired or finished meanwhile
            for index, part in enumerate(self.journal.pending_parts(message.id)):
                if index:
                    # Between parts: acknowledge and read what arrived, so a long message does
                    # not hold up an acknowledgement the network is waiting for.
                    try:
                        await self._handle_urcs(modem)
                    except AtCommandError as error:
                        log.warning("%s: reading an inbound message failed: %s; the sweep retries", name, error)
                self.journal.mark_submitting(message.id, part.seq, name, imsi)
                self._uncertain = (message.id, part.seq)
                try:
                    mr = await modem.send_pdu(part.pdu, part.length)
                except AtCommandError:
                    # The modem refused it: nothing went out.
                    self._uncertain = None
                    self.journal.unmark_submitting(message.id, part.seq)
                    raise
                except ModemError:
                    self.journal.unmark_submitting(message.id, part.seq)
                    log.warning(
                        "possible duplicate: %s part %d: %s did not confirm the submit; it will be "
                        "sent again unless the modem's late answer arrives first",
                        message.id, part.seq, name,
                    )
                    raise
                self._uncertain = None
                try:
                    self.journal.mark_submitted(message.id, part.seq, mr, self.clock(), sim=sim, report=row.report)
                except Fenced as error:
                    log.warning(
                        "possible duplicate: %s part %d went out via %s (MR %d), but %s; it is sent again",
                        message.id, part.seq, name, mr, error,
                    )
                    return
                if self.metrics:
                    self.metrics.parts_sent.labels(name).inc()
                log.info("%s: part %d/%d submitted via %s, MR %d", message.id, part.seq, row.parts, name, mr)
            self.outbound.finish_sent(message.id, name, imsi, row)
            self.consecutive_failures = 0
        except Fenced as error:
            # Nothing went out for this part (the fence stands before AT+CMGS): the message goes
            # back to the queue if it is still this member's.
            log.warning("%s: not sent via %s: %s", message.id, name, error)
            try:
                self.journal.requeue(message.id, not_before=0.0, error=None, count_attempt=False)
            except JournalUnavailable:
                pass  # it is released with this member's other claims when the journal is back
        except JournalUnavailable as error:
            # Checked before OSError (it is a ConnectionError): the disk is fine, the cluster's
            # database is not. An MR the journal could not take is kept and written first when
            # it is back; the message stays claimed by this member until then.
            log.warning("%s: %s; it waits until the journal is back", message.id, error)
        except OSError as error:
            # The spool or the journal could not be written (disk full?): nothing is lost, the
            # parts with an MR are recorded; try again later, also to finish the file.
            log.error("%s: cannot write its result: %s; trying again in %.0f s", message.id, error, DISK_RETRY)
            self._requeue_quietly(message.id, DISK_RETRY, f"disk: {error}")
        except AtCommandError as error:
            try:
                self._after_error(message, error, temporary=error.temporary and not error.sim_specific,
                                  sim_fault=error.sim_specific)
            except JournalUnavailable as journal_error:
                log.warning("%s: %s (after: %s); it waits until the journal is back", message.id, journal_error, error)
            except OSError as disk_error:
                log.error("%s: cannot write its result: %s; trying again in %.0f s", message.id, disk_error, DISK_RETRY)
                self._requeue_quietly(message.id, DISK_RETRY, f"disk: {disk_error}")
        except ModemTimeout as error:
            self._after_error(message, error, temporary=True, sim_fault=True,
                              uncertain=self._uncertain is not None)
            raise
        except ModemError as error:
            # The port went away, or the modem restarted, mid-message: hand it back at once;
            # the state change follows.
            self.journal.requeue(message.id, not_before=0.0, error=str(error), count_attempt=False)
            log.warning("%s: %s while sending (%s); back in the queue", message.id, name, error)
            raise
        finally:
            self.job = None
            if self.status.state == pool.BUSY:
                self._set_state(self._usable_state())
            self.on_change()

    def _requeue_quietly(self, message_id: str, delay: float, error: str) -> None:
        try:
            row = self.journal.message(message_id)
            if row is not None and row.state == J.SENDING:
                self.journal.requeue(message_id, not_before=self.clock() + delay, error=error, count_attempt=False)
        except Exception:  # noqa: BLE001 - recovery at the next start puts it back
            log.exception("%s: cannot requeue; it is queued again at the next start", message_id)

    def _after_error(
        self, message: QueuedMessage, error: ModemError, *, temporary: bool, sim_fault: bool, uncertain: bool = False
    ) -> None:
        row = self.journal.message(message.id)
        if row is None:
            return
        current = dataclasses.replace(
            message, bound_modem=row.bound_modem, bound_imsi=row.bound_imsi, attempts=row.attempts
        )
        reason = str(error)
        if self.metrics:
            self.metrics.send_errors.labels(self.name, "temporary" if temporary else "permanent").inc()
        fleet = self.fleet()
        sending = self.outbound.settings.sending  # the running config's (a reload changes it)
        if temporary:
            decision = pool.after_temporary_error(current, self.name, row.attempts, reason, fleet, sending)
        else:
            decision = pool.after_permanent_error(current, self.name, reason, fleet)
        if isinstance(decision, pool.GiveUp):
            self.outbound.finish_failed(message.id, f"{decision.reason} (via {self.name})", modem=self.name)
        else:
            delay = decision.delay
            if uncertain:
                # The submit may have gone out: give the modem's late +CMGS answer time to arrive
                # (then the part has its MR and is not sent again) before anyone resends it.
                delay = max(delay, UNCERTAIN_GRACE)
            self.journal.requeue(
                message.id,
                not_before=self.clock() + delay,
                error=reason,
                avoid_modem=decision.avoid,
                refused_by=decision.refuse,
            )
            log.warning(
                "%s: %s on %s; %s", message.id, reason, self.name,
                "another modem will try" if delay == 0 else f"retry in {delay:.0f} s",
            )
        if temporary or sim_fault:
            self.consecutive_failures += 1
            if self.consecutive_failures >= sending.rest_after:
                self.consecutive_failures = 0
                self.rest_until = self.clock() + sending.rest_for
                why = f"{sending.rest_after} failed sends in a row (last: {reason}); resting {sending.rest_for:.0f} s"
                if self.state in pool.UP_STATES:
                    self._set_state(pool.RESTING, why)
                else:
                    # The send ended after the supervisor took the modem away (port gone, being
                    # recovered): resting now would end in "ready" with no modem. The rest begins
                    # if the modem is up again before rest_until (_usable_state).
                    log.warning("%s: %s, once it is back (it is %s)", self.name, why, self.state)

    # -- receiving ------------------------------------------------------------------------------

    async def _handle_urcs(self, modem) -> None:
        """Work that URCs asked for: a ringing call first (hang up, record), then acknowledge
        direct PDUs (already saved), read stored ones."""
        await self._answer_call(modem)
        while self._urcs:
            event = self._urcs.pop(0)
            if isinstance(event, (at_events.IncomingDirect, at_events.ReportDirect)):
                await modem.ack_new_message()  # TS 27.005 §3.4.4: within the network's timer
            elif isinstance(event, (at_events.IncomingStored, at_events.ReportStored)):
                await self._take_stored(modem, event.storage, event.index)
            elif isinstance(event, at_events.LateSubmitResult):
                self._late_submit(event.mr)
            elif isinstance(event, at_events.StorageFull):
                log.warning("%s: SMS storage %s is full; reading it now", self.name, event.storage)
                self._next_sweep = 0.0

    async def _answer_call(self, modem) -> None:
        """A call that is ready (gsmgw.daemon.calls): hang up (calls.hangup), then record it."""
        call = self.call_tracker.take(self.clock())
        if call is None:
            return
        hung_up = None
        if self.calls is None or self.calls.hangup:
            try:
                command = await modem.hang_up()
            except AtCommandError as error:
                log.warning("%s: could not hang up the call from %s: %s", self.name, call.caller or "a hidden number", error)
            else:
                hung_up = self.clock()
                self.call_tracker.hung_up()
                log.debug("%s: hung up with %s", self.name, command)
        if self.calls is None:
            return
        try:
            self.calls.record(call, modem=self.name, imsi=self.status.imsi, hung_up=hung_up)
        except OSError as error:
            log.error("%s: cannot record the call from %s in calls/: %s", self.name, call.caller, error)

    def _late_submit(self, mr: int) -> None:
        if self._uncertain is None:
            log.warning("%s: a late +CMGS: %d arrived for no part in doubt", self.name, mr)
            return
        message_id, seq = self._uncertain
        self._uncertain = None
        part = next((p for p in self.journal.parts(message_id) if p.seq == seq), None)
        if part is None or part.state == J.PART_SUBMITTED:
            return
        row = self.journal.message(message_id)
        try:
            self.journal.mark_submitting(message_id, seq, self.name, self.status.imsi)
        except Fenced:
            pass  # requeued after the timeout: mark_submitted decides whether the MR still counts
        try:
            self.journal.mark_submitted(
                message_id, seq, mr, self.clock(), sim=self.status.imsi or self.name, report=bool(row and row.report)
            )
        except Fenced as error:
            log.warning("possible duplicate: %s part %d: the late answer gave MR %d, but %s", message_id, seq, mr, error)
            return
        log.info("%s: part %d: the late answer gave MR %d; it will not be sent again", message_id, seq, mr)
        row = self.journal.message(message_id)
        if row is not None and row.state == J.QUEUED and not self.journal.pending_parts(message_id):
            self.outbound.finish_sent(message_id, self.name, self.status.imsi)
        self.on_change()

    async def _take_stored(self, modem, storage: str, index: int) -> None:
        stored = await modem.read_message(storage, index)
        if stored is None:
            return  # already taken by a sweep
        if stored.stat not in RECEIVED_STATS:
            return  # a stored outgoing copy (stat 2/3) that some firmware announced
        await self._save_then_delete(modem, stored)

    async def _sweep(self, modem) -> None:
        """Read whatever is stored (a `+CMTI` may have been lost) and remove it once saved."""
        for storage in SWEEP_STORAGES:
            try:
                stored = await modem.list_messages(storage, stat=4)
            except AtCommandError as error:
                log.debug("%s: no %s storage to sweep: %s", self.name, storage, error)
                continue
            for message in stored:
                if message.stat not in RECEIVED_STATS:
                    continue  # stored outgoing copies (stat 2/3) belong to whoever wrote them
                await self._save_then_delete(modem, message)

    async def _save_then_delete(self, modem, stored) -> None:
        """Save a stored SMS, then delete its SIM copy. A copy whose deletion failed is
        remembered (slot and PDU), so reading it again deletes it without saving it twice;
        the same text arriving again later in the same slot is a new message and is saved."""
        slot = (stored.storage, stored.index)
        pdu = "".join(stored.pdu.split()).upper()
        if self._saved_not_deleted.get(slot) != pdu:
            try:
                durable = self.inbound.accept_pdu(pdu, modem=self.name, imsi=self.status.imsi).durable
            except JournalUnavailable:
                # It stays on the SIM until the journal is back (the membership loop said so once;
                # each sweep meets it again until then).
                log.debug("%s: an SMS in %s %d stays on the SIM until the journal is back", self.name, *slot)
                return
            except OSError as error:
                log.error("%s: cannot save an incoming message: %s; it stays on the SIM", self.name, error)
                return
            if not durable:
                return
            self._saved_not_deleted[slot] = pdu
        await modem.delete_message(*slot)
        self._saved_not_deleted.pop(slot, None)

    async def _poll_radio(self, modem) -> None:
        self.status.signal_dbm = await modem.signal_dbm()
        registration = await modem.registration()
        self.status.registered = registration.registered
        self.status.operator = registration.operator or self.status.operator
        if self.metrics:
            self.metrics.set_radio(self.name, self.status.signal_dbm, self.status.registered)
        self.on_change()
