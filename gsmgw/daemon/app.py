"""The gateway daemon: wiring, signals, status, sd_notify.

What it starts, in this order:
  1. the spool directories (created if missing; a clear error and exit if not writable), the
     locks that keep a second daemon off this state directory and spool (lock.py), and the
     journal in the state directory;
  2. recovery (outbound.py): leftovers of a crash are settled before anything new is taken;
  3. one worker per configured modem (worker.py), the dispatcher (outbound.py), the watcher on
     outgoing/ (inotify, polling as fallback), the status writer, housekeeping (multipart
     timeouts, journal pruning);
  4. the HTTP, SMPP and SMTP listeners when configured (`gsmgw.http.server.start(ctx)`,
     `gsmgw.smpp.server.start(ctx)`, `gsmgw.email.listener.start(ctx)`; each returns an object
     with `async close()`), and mail out (`gsmgw.email.mailout.start(ctx)`) when `email_out:` is;
  5. `READY=1` to systemd (when run by it), then `STATUS=` on changes and `WATCHDOG=1` from the
     status loop, which runs on the main loop: a hung modem is not a hung daemon.

Signals: SIGTERM/SIGINT stop taking new work, let each worker finish the message in flight
(`STOPPING=1` first), then exit. SIGHUP reloads the config: defaults, groups, hooks, limits,
prefixes and PINs take effect at once; modems added or removed are started or stopped; a change
of `spool`, `state`, `http`, `smpp`, `smtp.listen` or `smtp.tls` is logged as needing a
restart.

Logs go to stdout, one line per event, naming the message file (journald adds the time). The
PIN never appears: the config is never logged and the AT layer masks AT+CPIN.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, cast

from gsmgw.daemon import pool
from gsmgw.daemon.calls import CallLog
from gsmgw.daemon.context import GatewayContext
from gsmgw.daemon.control import ControlServer
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.hooks import Hooks
from gsmgw.daemon.inbound import Inbound
from gsmgw.daemon.lock import AlreadyRunning, DaemonLock
from gsmgw.daemon.indexer import Indexer
from gsmgw.daemon.optout import OptOutHandler, OptOutList
from gsmgw.groups import GroupBook
from gsmgw.daemon.metrics import Metrics
from gsmgw.daemon.claimer import Claimer
from gsmgw.daemon.outbound import Dispatcher, Outbound, SendSettings
from gsmgw.ussd import Ussd
from gsmgw.daemon.status import WRITE_INTERVAL, snapshot, write_status
from gsmgw.daemon.worker import Worker
from gsmgw.spool import message_status
from gsmgw.spool.index import IndexError_, MessageIndex, open_index
from gsmgw.spool.journal import JOURNAL_FILE, ClusterJournal, Journal, JournalError, JournalUnavailable, SqliteJournal
from gsmgw.spool.store import Spool, SpoolError, load_seal_key
from gsmgw.spool.watch import OutgoingWatcher

if TYPE_CHECKING:  # imported at run time only when the config asks for them
    from gsmgw.config import ModemConfig
    from gsmgw.daemon.cluster import Membership
    from gsmgw.daemon.twoway import TwoWay

log = logging.getLogger("gsmgw.daemon")

PRUNE_EVERY = 3600.0
STOP_GRACE = 90.0
# Status file writes triggered by changes are at least this far apart: each one lists outgoing/
# and checked/, which is not free when they hold 100,000 files.
STATUS_MIN_GAP = 1.0
# Results filed for other members per journal round trip (and per commit that marks them).
FILING_BATCH = 50


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


def _settings(config, groups: GroupBook, membership=None) -> SendSettings:
    """In a cluster a `Modem:` pin may name another member's modem too."""
    groups.config = config.groups
    local = tuple(m.name for m in config.modems)
    others = membership.modem_names() if membership is not None else ()
    return SendSettings(
        default_country=config.default_country,
        defaults=config.defaults,
        groups=groups,
        modem_names=local + tuple(name for name in others if name not in local),
        other_modem=membership.knows_modem if membership is not None else None,
        sending=config.sending,
    )


def _open_journal(config, state: Path) -> Journal:
    """SQLite in the state directory, or the cluster's PostgreSQL (`journal:`). A member starts
    only with the database reachable (its recovery and its console's index need it); under
    systemd it is started again until then (Restart=on-failure). Once running, it rides out an
    outage (gsmgw.daemon.cluster)."""
    if config.journal is None:
        return SqliteJournal(state / JOURNAL_FILE)
    from gsmgw.daemon.cluster import fence
    from gsmgw.spool.journal.postgresql import PostgresJournal, masked_dsn

    lease = config.cluster.lease
    journal = PostgresJournal(config.journal, member=config.cluster.member, lease=lease, fence=fence(lease))
    if not journal.available:
        reason = journal.unavailable_reason
        journal.close()
        raise JournalError(
            f"the journal database {masked_dsn(config.journal)} is unreachable ({reason}); start PostgreSQL or "
            f"correct journal: (gsmgw under systemd is started again every 5 s until it answers)"
        )
    return journal


class Gateway:
    def __init__(
        self,
        config,
        *,
        clock: Callable[[], float] = time.time,
        watch_poll_interval: float = 2.0,
        supervisor_options: Mapping[str, Any] | None = None,
        start_servers: bool = True,
        lock: DaemonLock | None = None,
    ):
        self.config = config
        self.clock = clock
        self.watch_poll_interval = watch_poll_interval
        self.supervisor_options = dict(supervisor_options or {})
        self.start_servers = start_servers
        # A lock the caller took (`run --simulate` locks before it starts the simulated modems)
        # stays the caller's to release; one taken here is released by close().
        self.lock = lock
        self._own_lock = lock is None
        self.spool = Spool(config.spool)
        self.bus = EventBus()
        self.metrics = Metrics(member=config.cluster.member if getattr(config, "cluster", None) else None)
        self.journal: Journal | None = None
        self.index: MessageIndex | None = None
        self.indexer: Indexer | None = None
        self.groups = GroupBook(config.groups)
        self.optouts = OptOutList()
        self.membership: Membership | None = None  # when journal: is PostgreSQL
        self._watcher: OutgoingWatcher | None = None
        self.workers: dict[str, Worker] = {}
        self._worker_tasks: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._servers: list[Any] = []
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._probe_lock = asyncio.Lock()
        self._queue_cache: tuple[float, dict, int] | None = None
        self._counters: dict[tuple[str, str], int] = {}  # today's, as the journal last gave them
        self.notifier = _notifier()
        self.hooks = Hooks.from_config(config)
        self.ctx: GatewayContext | None = None
        self.outbound: Outbound | None = None
        self.inbound: Inbound | None = None
        self.call_log: CallLog | None = None
        self.ussd: Ussd | None = None
        self.control: ControlServer | None = None
        self.dispatcher: Dispatcher | None = None
        self.claimer: Claimer | None = None
        self.twoway: TwoWay | None = None
        self._twoway_unsubscribe: Callable[[], None] = lambda: None
        self._retired_twoways: list[Any] = []

    # -- start --------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        try:
            self.spool.ensure_dirs()
        except SpoolError as error:
            raise StartupError(str(error)) from None
        state = Path(config.state)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StartupError(
                f"cannot create the state directory {state}: {error.strerror}; create it, make it "
                f"writable by the user gsmgw runs as, or set state: in the config"
            ) from None
        if self.lock is None:
            self.lock = lock_directories(state, config.spool)
        try:
            self.journal = _open_journal(config, state)
        except OSError as error:
            raise StartupError(
                f"cannot open the journal in the state directory {state}: {error.strerror}; make it "
                f"writable by the user gsmgw runs as, or set state: in the config"
            ) from None
        except JournalError as error:
            raise StartupError(str(error)) from None
        try:
            self.spool.seal_key = load_seal_key(state)
        except SpoolError as error:
            raise StartupError(str(error)) from None
        try:
            self.index = open_index(config)
        except IndexError_ as error:
            raise StartupError(str(error)) from None
        self.indexer = Indexer(self.index, self.spool, clock=self.clock)
        self.bus.subscribe(self.indexer.handle)
        self.groups = GroupBook(config.groups, self.index.console_groups())
        self.optouts = OptOutList(self.index.optouts())
        self.bus.subscribe(OptOutHandler(lambda: self.config.optout, self.spool, self.index, self.optouts,
                                         clock=self.clock, default_country=lambda: self.config.default_country).handle)
        self.inbound = Inbound(
            self.spool, self.journal, self.bus, self.metrics,
            reassembly_timeout=config.inbound.reassembly_timeout, report_window=config.inbound.report_window,
            clock=self.clock,
        )
        self.call_log = CallLog(self.spool, self.bus, self.metrics, hangup=config.calls.hangup)
        self.outbound = Outbound(
            self.spool, self.journal, self.bus, _settings(config, self.groups), self.metrics,
            clock=self.clock, on_queued=self._wake_dispatcher,
        )
        self.outbound.optouts = self.optouts
        self.claimer = Claimer(self.outbound, journal_usable=self._journal_usable, journal_lost=self._journal_lost)
        self.spool.on_high_priority = self.claimer.urgent_threadsafe
        self.bus.subscribe(self.hooks.on_event)
        if config.journal is not None:
            self._start_membership()
        self.outbound.recover()
        self.inbound.flush()
        self.dispatcher = Dispatcher(
            self.outbound,
            fleet=self._fleet,
            idle=lambda: [name for name, worker in self.workers.items() if worker.idle],
            give=lambda name, message: self.workers[name].give(message),
            clock=self.clock,
        )
        for modem_config in config.modems:
            self._start_worker(modem_config)
        self.ussd = Ussd(self.workers, lambda: self.config, self.metrics, clock=self.clock)
        self.ctx = GatewayContext(
            config=config,
            spool=self.spool,
            journal=self.journal,
            bus=self.bus,
            metrics=self.metrics,
            _snapshot=self.status_snapshot,
            _message_status=lambda message_id: message_status.lookup(
                message_id, journal=self.journal, spool=self.spool
            ),
            _wake=self._wake_dispatcher,
            _cancel=self.outbound.cancel,
            clients=self._clients(config),
            index=self.index,
            indexer=self.indexer,
            groups=self.groups,
            optouts=self.optouts,
            ussd=self.ussd.ask,
            balance=self.ussd.balance,
            balances=self.ussd.balances,
            last_balance=self.ussd.last_balance,
            stopping=self._stopping,
        )
        await self._start_control()
        self.indexer.start()
        self._start_twoway(config)
        self._tasks = [
            asyncio.ensure_future(self.dispatcher.run(self._stopping)),
            asyncio.ensure_future(self._watch_outgoing()),
            asyncio.ensure_future(self._housekeeping()),
        ]
        if self.membership is not None:
            self.membership.start()
            self._tasks.append(asyncio.ensure_future(self.membership.run(self._stopping)))
        if self.start_servers:
            await self._start_servers()
        self.notifier.ready(status=self._status_line())
        # After READY=1: its STATUS= and WATCHDOG= must not reach systemd before it, and starting
        # the listeners above gives the loop to other tasks.
        self._tasks.append(asyncio.ensure_future(self._status_loop()))
        log.info(
            "gsmgw started: spool %s, state %s, %d modem(s): %s",
            config.spool, config.state, len(config.modems), ", ".join(m.name for m in config.modems) or "none",
        )

    def _start_membership(self) -> None:
        """Cluster: join (or, with the database away, start anyway and join on first contact)."""
        from gsmgw import __version__
        from gsmgw.daemon.cluster import Membership, submit_timeout

        config = self.config
        # A submit must end well within the lease (the journal's fence): AT+CMGS times out at
        # half the lease, whatever the modem's own default.
        options = dict(self.supervisor_options.get("modem_options", {}))
        options["send_timeout"] = min(options.get("send_timeout", 60.0), submit_timeout(config.cluster.lease))
        self.supervisor_options["modem_options"] = options
        # journal: in the config opened a PostgreSQL journal (_open_journal), which is one.
        self.membership = membership = Membership(
            cast(ClusterJournal, self.journal),
            lease=config.cluster.lease,
            version=__version__,
            modems=self._modem_records,
            held=lambda: [worker.job.id for worker in self.workers.values() if worker.job is not None],
            on_rejoin=self._rejoined,
            file_results=self._file_results,
            wake=self._wake_dispatcher,
            on_change=self._on_cluster_change,
        )
        try:
            membership.join()
        except JournalError as error:
            raise StartupError(str(error)) from None

    def _modem_records(self) -> list[dict]:
        """What this member publishes about its modems; configured ones without a worker yet
        (at join) as `starting`, so that pins naming them are accepted on other members."""
        from gsmgw.daemon.cluster import modem_record

        records = [modem_record(worker.status, worker.view()) for worker in self.workers.values()]
        started = set(self.workers)
        for modem in self.config.modems:
            if modem.name not in started:
                records.append({"name": modem.name, "state": pool.STARTING, "prefixes": list(modem.prefixes),
                                "per_minute": modem.limits.per_minute, "per_day": modem.limits.per_day})
        return records

    def _rejoined(self) -> None:
        """The journal answers again: files claimed into checked/ while it was away, messages
        finished by their last submit when it could not take it, what waits in outgoing/."""
        assert self.outbound is not None and self.inbound is not None  # made by start()
        self.outbound.adopt(self.spool.list("checked"))
        self.outbound.finish_fully_submitted()
        self.inbound.flush()
        if self._watcher is not None:
            self._watcher.rescan()

    async def _file_results(self) -> int:
        """Cluster: result files of this host's messages that other members finished, and the
        reports they received for them. Each file takes a write and two fsyncs on the loop, so
        the loop is given back between files: this host's own modems never wait for a batch."""
        assert self.membership is not None and self.outbound is not None and self.inbound is not None
        journal = self.membership.journal
        done = 0
        try:
            while True:
                rows = journal.unfiled(FILING_BATCH)
                for row in rows:
                    self.outbound.file_result(row)
                    await asyncio.sleep(0)
                if rows:
                    journal.mark_filed([row.id for row in rows])  # one commit per batch
                reports = journal.forwarded_reports(FILING_BATCH)
                for report in reports:
                    self.inbound.file_forwarded_report(report)
                    journal.report_filed(report.seq)
                    await asyncio.sleep(0)
                done += len(rows) + len(reports)
                if len(rows) < FILING_BATCH and len(reports) < FILING_BATCH:
                    return done
        except JournalUnavailable:
            return done  # the membership loop notices and files the rest when it is back

    def _on_cluster_change(self) -> None:
        assert self.outbound is not None  # made by start(), before the membership
        self.outbound.settings = _settings(self.config, self.groups, self.membership)
        self._status_changed.set()

    def _journal_usable(self) -> bool:
        return self.membership is None or (self.membership.healthy and self.membership.journal.available)

    async def _start_control(self) -> None:
        """STATE/control.sock for `gsmgw ussd` and `gsmgw status --balance`; the gateway runs on
        without it (and says so) when the socket cannot be made."""
        assert self.ussd is not None  # made by start()
        try:
            self.control = await ControlServer(self.config.state, self.ussd).start()
        except OSError as error:
            log.warning("no control socket in %s (%s): `gsmgw ussd` and `status --balance` cannot reach this "
                        "daemon; the HTTP API's /api/v1/modems/NAME/ussd still can", self.config.state, error)

    def _clients(self, config):
        """One client registry for HTTP, SMPP and SMTP (limits count all), when one is on."""
        if self.start_servers and (config.http is not None or config.smpp is not None or config.smtp is not None):
            from gsmgw.clients import ClientConfigError, ClientRegistry

            try:
                registry = ClientRegistry.from_config(config)
            except ClientConfigError as error:
                raise StartupError(f"clients: {error}") from None
            registry.console_groups = self.groups.console
            return registry
        return None

    def _start_twoway(self, config) -> None:
        """The two-way handler of `config` (none when it is off) takes the bus from the previous
        one; commands the previous one started run to their end and are stopped at shutdown."""
        if self.twoway is not None:
            self._twoway_unsubscribe()
            self._retired_twoways.append(self.twoway)
            self.twoway = None
        if config.two_way.enabled:
            from gsmgw.daemon.twoway import TwoWay

            limits = self._retired_twoways[-1].limits if self._retired_twoways else None  # kept across reloads
            self.twoway = twoway = TwoWay(config, self.spool, alerts=self._alertmanager_service, limits=limits)
            self._twoway_unsubscribe = self.bus.subscribe(twoway.handle)

    def _reload_clients(self, new) -> None:
        """SIGHUP: HTTP and SMPP read `ctx.clients` per request, so a new registry gives them the
        new tokens, passwords, rules and groups at once. The limit counts carry over: a reload
        does not give anybody a fresh allowance."""
        if self.ctx is None or self.ctx.clients is None:
            return  # no listener was started with the running config; a new one needs a restart
        from gsmgw.clients import ClientConfigError, ClientRegistry

        try:
            registry = ClientRegistry.from_config(new)
        except ClientConfigError as error:
            log.error("SIGHUP: keeping the previous clients: %s", error)
            return
        registry.limiter = self.ctx.clients.limiter
        registry.console_groups = self.groups.console
        self.ctx.clients = registry
        alertmanager = getattr(self.ctx, "alertmanager", None)
        if alertmanager is not None:
            alertmanager.registry = registry

    def _alertmanager_service(self):
        for server in self._servers:
            service = getattr(server, "alertmanager", None)
            if service is not None:
                return service
        return None

    def _start_worker(self, modem_config: ModemConfig) -> None:
        assert self.journal is not None and self.inbound is not None and self.outbound is not None  # start()
        worker = Worker(
            modem_config,
            journal=self.journal,
            inbound=self.inbound,
            outbound=self.outbound,
            bus=self.bus,
            metrics=self.metrics,
            fleet=self._fleet,
            on_change=self._on_worker_change,
            on_free=lambda: self.dispatcher.wake() if self.dispatcher is not None else None,
            probe_ports=self.config.probe_ports,
            ports_in_use=self._ports_in_use,
            probe_lock=self._probe_lock,
            status_interval=self.config.status_interval,
            sweep_interval=self.config.inbound.sweep_interval,
            clock=self.clock,
            supervisor_options=self.supervisor_options,
            calls=self.call_log,
        )
        self.workers[modem_config.name] = worker
        task = asyncio.ensure_future(worker.run())
        name = modem_config.name
        task.add_done_callback(lambda ended: self._worker_ended(name, ended))
        self._worker_tasks[modem_config.name] = task

    def _worker_ended(self, name: str, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not self._stopping.is_set():
            log.error("%s: worker crashed: %r; restarting it in 5 s", name, error, exc_info=error)
            worker = self.workers.get(name)
            if worker is not None:
                asyncio.get_running_loop().call_later(5.0, self._restart_worker, name, worker.config)

    def _restart_worker(self, name: str, modem_config: ModemConfig) -> None:
        if not self._stopping.is_set() and name in self.workers:
            self._start_worker(modem_config)

    async def _start_servers(self) -> None:
        # Webhooks first: the HTTP server uses ctx.webhooks when it is set, and a daemon without
        # `http:` still posts them. Closed last (servers close in reverse order).
        ctx = self.ctx
        assert ctx is not None  # made by start()
        if getattr(self.config, "webhooks", None) is not None:
            try:
                from gsmgw import webhooks

                ctx.webhooks = service = await webhooks.start(ctx)
            except Exception as error:  # noqa: BLE001 - any failure stops the start, with its reason
                raise StartupError(f"cannot start the webhooks: {error}") from None
            self._servers.append(service)
        if getattr(self.config, "email_out", None) is not None:
            try:
                from gsmgw.email import mailout

                self._servers.append(await mailout.start(ctx))
            except Exception as error:  # noqa: BLE001 - any failure stops the start, with its reason
                raise StartupError(f"cannot start mail out (email_out:): {error}") from None
        for key, module in (("http", "gsmgw.http.server"), ("smpp", "gsmgw.smpp.server"), ("smtp", "gsmgw.email.listener")):
            if getattr(self.config, key, None) is None:
                continue
            try:
                server_module = importlib.import_module(module)
            except ImportError as error:
                log.error("%s is configured but %s cannot be loaded: %s", key, module, error)
                continue
            try:
                server = await server_module.start(ctx)
            except Exception as error:  # noqa: BLE001 - any failure to listen stops the start
                # Their errors already say what to fix (address in use, TLS files, ...).
                raise StartupError(f"cannot start the {key} listener: {error}") from None
            self._servers.append(server)

    # -- the pieces ---------------------------------------------------------------------------

    def _fleet(self) -> dict[str, pool.ModemView]:
        local = {name: worker.view() for name, worker in self.workers.items()}
        if self.membership is None:
            return local
        return {**self.membership.views, **local}

    def _ports_in_use(self) -> set[str]:
        return {
            os.path.realpath(worker.status.port)
            for worker in self.workers.values()
            if worker.status.port and worker.supervisor is not None
        } | {
            os.path.realpath(m.port) for m in self.config.modems if m.port
        }

    def _wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
        self._status_changed.set()

    def _on_worker_change(self) -> None:
        self._wake_dispatcher()
        if self.membership is not None:
            self.membership.modems_changed()  # the other members see a modem come up or go down at once

    async def _watch_outgoing(self) -> None:
        """The watcher reports outgoing/, the claimer takes it, high priority first (claimer.py)."""
        claimer = self.claimer
        assert claimer is not None
        while not self._stopping.is_set():
            try:
                async with OutgoingWatcher(
                    self.spool.path("outgoing"), poll_interval=self.watch_poll_interval, on_ready=claimer.wake
                ) as watcher:
                    log.info("watching %s (%s)", self.spool.path("outgoing"), watcher.mode)
                    self._watcher = watcher
                    await claimer.run(watcher, self._stopping)
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the outgoing/ watcher failed; starting it again in 2 s")
                await asyncio.sleep(2.0)

    def _journal_lost(self) -> None:
        if self.membership is not None:
            self.membership.kick()

    def _queue_depths(self) -> dict[str, int]:
        return {"outgoing": self.spool.depth("outgoing"), "checked": self.spool.depth("checked")}

    def status_snapshot(self, depths: dict[str, int] | None = None) -> dict:
        """docs/spool.md's status object. Modem states are always current; queue depths (a directory
        listing each) are reused for up to a second, so a burst of API calls costs one listing.
        `depths`: just counted (by the status loop, in a thread)."""
        assert self.journal is not None  # opened by start()
        now = self.clock()
        cached = self._queue_cache
        if depths is not None or cached is None or now - cached[0] >= 1.0:
            if depths is None:
                depths = self._queue_depths()
            try:
                retrying = self.journal.count_retrying(now)
            except JournalUnavailable:
                retrying = cached[2] if cached is not None else 0  # the last figure the journal gave
            self.metrics.set_queue(depths, retrying)
            cached = self._queue_cache = (now, depths, retrying)
        _, depths, retrying = cached
        try:
            self._counters = self.journal.counters_today(now)
        except JournalUnavailable:
            pass  # a cluster's database is away: today's counts as it last gave them
        current = snapshot(
            [worker.status for worker in self.workers.values()],
            self._counters,
            depths,
            retrying,
            now,
        )
        if self.membership is not None:
            current.update(self.membership.status())
        return current

    def _status_line(self, snapshot_: dict | None = None) -> str:
        from gsmgw.daemon.sdnotify import status_line

        up = sum(1 for w in self.workers.values() if w.state in pool.UP_STATES)
        if snapshot_ is None:
            snapshot_ = self.status_snapshot()
        queue = snapshot_["queue"]
        line = status_line(up, len(self.workers), queue["checked"], queue["retrying"])
        if self.membership is not None and not self.membership.healthy:
            from gsmgw.daemon.cluster import JOURNAL_UNREACHABLE

            line = f"{JOURNAL_UNREACHABLE}; {line}"
        return line

    async def _status_loop(self) -> None:
        state_dir = Path(self.config.state)
        last_line = None
        # watchdog_interval is already half of WATCHDOG_USEC (sd_watchdog_enabled(3)).
        interval = min(WRITE_INTERVAL, self.notifier.watchdog_interval or WRITE_INTERVAL)
        while True:
            written = time.monotonic()
            try:
                # Counting outgoing/ and checked/ takes a third of a second when they hold 100,000
                # files: in a thread, so the loop (the workers, an alert's claim) never waits for it.
                current = self.status_snapshot(await asyncio.to_thread(self._queue_depths))
                write_status(state_dir, current)
                line = self._status_line(current)
                if line != last_line:
                    self.notifier.status(line)
                    last_line = line
            except OSError as error:
                log.error("cannot write the status file in %s: %s", state_dir, error)
            self.notifier.watchdog()
            if self._stopped.is_set():
                return
            self._status_changed.clear()
            try:
                await asyncio.wait_for(self._status_changed.wait(), interval)
                # Collapse a burst of changes into one write, at most one per STATUS_MIN_GAP.
                await asyncio.sleep(min(interval, max(0.2, STATUS_MIN_GAP - (time.monotonic() - written))))
            except asyncio.TimeoutError:
                pass

    async def _housekeeping(self) -> None:
        assert self.inbound is not None and self.journal is not None  # made by start()
        next_prune = 0.0
        while not self._stopping.is_set():
            try:
                self.inbound.flush()
                now = self.clock()
                if now >= next_prune:
                    removed = self.journal.prune(now)
                    if removed:
                        log.info("journal: pruned %d old rows", removed)
                    next_prune = now + PRUNE_EVERY
            except JournalUnavailable:
                pass  # the membership loop reports it; this runs again after the next sweep interval
            except Exception:
                log.exception("housekeeping failed; trying again later")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.config.inbound.sweep_interval)
            except asyncio.TimeoutError:
                pass

    # -- signals ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            log.info("stopping: finishing the messages in flight")
            self.notifier.stopping()
            self._stopping.set()

    def request_reload(self) -> None:
        asyncio.ensure_future(self.reload())

    async def reload(self) -> None:
        from gsmgw.config import ConfigError, load_config

        source = getattr(self.config, "source", None)
        if source is None:
            log.warning("SIGHUP: this daemon has no config file to reload (simulated run)")
            return
        try:
            new = load_config(source)
        except ConfigError as error:
            log.error(
                "SIGHUP: the config %s has errors; keeping the running one: %s", source,
                "; ".join(line.strip() for line in str(error).splitlines() if line.strip()),
            )
            return
        for key in ("spool", "state", "http", "smpp", "journal", "cluster"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("SIGHUP: a change of %s takes effect only after a restart", key)
        for key in ("listen_host", "listen_port", "tls"):
            if getattr(new.smtp, key, None) != getattr(self.config.smtp, key, None):
                log.warning("SIGHUP: a change of smtp.listen or smtp.tls takes effect only after a restart")
                break
        twoway_changed = (new.two_way, new.defaults, new.default_country, new.calls) != (
            self.config.two_way, self.config.defaults, self.config.default_country, self.config.calls
        )
        old_names = {m.name for m in self.config.modems}
        new_names = {m.name for m in new.modems}
        for modem_config in new.modems:
            worker = self.workers.get(modem_config.name)
            if worker is None:
                continue
            if worker.config.binding != modem_config.binding or worker.config.baudrate != modem_config.baudrate:
                log.warning("SIGHUP: %s: a new port/binding takes effect after a restart", modem_config.name)
                continue
            worker.config = modem_config
        for name in sorted(old_names - new_names):
            log.info("SIGHUP: %s removed from the config; stopping it", name)
            worker = self.workers.pop(name)
            await worker.stop()
        self.config = new
        for modem_config in new.modems:
            if modem_config.name not in old_names:
                log.info("SIGHUP: %s added; starting it", modem_config.name)
                self._start_worker(modem_config)
        assert self.outbound is not None and self.call_log is not None and self.inbound is not None  # start()
        self.outbound.settings = _settings(new, self.groups, self.membership)
        self.inbound.report_window = new.inbound.report_window
        self.hooks.programs = {k: v for k, v in Hooks.from_config(new).programs.items()}
        self.call_log.hangup = new.calls.hangup
        self.hooks.timeout = new.hook_timeout
        if self.ctx is not None:
            self._reload_clients(new)
            self.ctx.config = new
        alertmanager = self._alertmanager_service()
        if alertmanager is not None:
            alertmanager.reload(new)  # its routes exist only when alertmanager: was there at the start
        if twoway_changed:
            self._start_twoway(new)
        log.info("SIGHUP: config %s reloaded", source)
        self._wake_dispatcher()

    # -- run and stop -------------------------------------------------------------------------

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def close(self) -> None:
        """Stop taking work, let workers finish what is in flight, close everything."""
        self.request_stop()
        if self.control is not None:
            await self.control.close()
        for task in self._tasks[:2]:  # dispatcher and watcher: nothing new is given out
            task.cancel()
        await asyncio.gather(*(worker.stop() for worker in self.workers.values()))
        if self._worker_tasks:
            done, pending = await asyncio.wait(set(self._worker_tasks.values()), timeout=STOP_GRACE)
            for task in pending:
                log.warning("a worker did not finish within %.0f s; stopping it", STOP_GRACE)
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for server in reversed(self._servers):
            try:
                await server.close()
            except Exception:
                log.exception("closing %r failed", server)
        for twoway in [*self._retired_twoways, self.twoway]:
            if twoway is not None:
                await twoway.close()
        if self.membership is not None:
            await self.membership.stop()
        await self.hooks.close()
        await self.bus.drain(timeout=2.0)
        if self.indexer is not None:
            await self.indexer.close()
        if self.index is not None:
            self.index.close()
        self._stopped.set()
        self._status_changed.set()
        for task in self._tasks[2:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.journal is not None:
            try:
                self._queue_cache = None
                write_status(Path(self.config.state), self.status_snapshot())
            except OSError as error:
                log.warning("could not write the final status file: %s", error)
            self.journal.close()
        if self.lock is not None and self._own_lock:
            self.lock.release()
        log.info("gsmgw stopped")


def lock_directories(
    state, spool, *, elsewhere: str = "give this daemon its own spool: and state: in its config"
) -> DaemonLock:
    """The daemon's locks on its state directory and spool, or a StartupError that names the
    daemon already holding one (and, `elsewhere`, how to run this one beside it), or the
    directory that cannot be written."""
    try:
        return DaemonLock.acquire(state, spool)
    except AlreadyRunning as error:
        raise StartupError(f"{error} Or {elsewhere}.") from None
    except OSError as error:
        where = Path(error.filename).parent if error.filename else Path(state)
        raise StartupError(
            f"cannot create the lock file in {where}: {error.strerror}; make {where} writable by the "
            f"user gsmgw runs as"
        ) from None


def _notifier():
    try:
        from gsmgw.daemon.sdnotify import SystemdNotifier
    except ImportError:
        return _NoNotifier()
    return SystemdNotifier.from_environment()


class _NoNotifier:
    watchdog_interval = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: False


async def run_gateway(config, *, on_started: Callable[[Gateway], None] | None = None, **options) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit status."""
    gateway = Gateway(config, **options)
    loop = asyncio.get_running_loop()
    try:
        await gateway.start()
    except StartupError as error:
        log.error("%s", error)
        await _close_quietly(gateway)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, gateway.request_stop)
    loop.add_signal_handler(signal.SIGHUP, gateway.request_reload)
    if on_started is not None:
        on_started(gateway)
    try:
        await gateway.wait_stopping()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await gateway.close()
    return 0


async def _close_quietly(gateway: Gateway) -> None:
    try:
        await gateway.close()
    except Exception:
        log.debug("cleanup after a failed start failed", exc_info=True)
