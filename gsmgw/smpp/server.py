"""The SMPP 3.4 server: gsmgw plays the SMSC for ESMEs (docs/api.md "SMPP server").

I/O only; the protocol is in `gsmgw.smpp.session` (sans-IO) and `gsmgw.smpp.pdu`.

Reads: TCP connections (optionally TLS) on `smpp.listen`; the daemon's event bus
(`MessageReceived`, `ReportReceived`, `MessageFailed`); sent/ files for a receipt's text.
Writes: one file in outgoing/ per complete message, durable before its submit_sm_resp goes out,
through the spool's group committer (`spool.committer`, `gsmgw.spool.commit`), which every door
shares: the submissions of all sessions, windows and doors that arrive while one commit runs are
made durable together by the next (one directory fsync for all of them).

Trust: clients are untrusted. A bad PDU costs only its own session (generic_nack, or a close
when the framing is lost); an exception inside one session's handling closes that session and
is logged, and the server and every other session go on.

Deliveries to clients (inbound SMS and receipts) wait in a queue per client while no receiver
or transceiver session of that client is bound, up to `QUEUE_LIMIT` each (the oldest is dropped
with a warning beyond it). The queue is kept in the state directory (`gsmgw.smpp.outbox`), so
it survives a restart; a delivery leaves it when the client answers with ESME_ROK. One that no
deliver_sm can carry (an alphanumeric sender with no ASCII spelling), or that the client refuses
MAX_DELIVERY_ATTEMPTS times or leaves unanswered MAX_UNANSWERED times, is parked in the outbox
with a log line, and the deliveries behind it go on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from gsmgw.events import Event, MessageFailed, MessageReceived, ReportReceived
from gsmgw.listen import ConnectionGuard, ConnectionLimits, peer_address
from gsmgw.spool.format import Headers, SpoolFormatError, make_outgoing, outgoing_name, parse_outgoing, read_spool_file
from gsmgw.spool.message_status import MessageStatus, lookup

from . import message as M
from . import pdu as P
from .outbox import Outbox
from .pdu import MessageState, Status, Tag
from .session import (
    Bound, Close, Delivered, Delivery, Park, Query, Queue, Send, Session, Submission, Submit, Timers,
)

if TYPE_CHECKING:  # the daemon hands it over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext

log = logging.getLogger("gsmgw.smpp")

QUEUE_LIMIT = 10_000
MAX_DELIVERY_ATTEMPTS = 5  # refusals (an error status) before a delivery is parked
MAX_UNANSWERED = 10  # deliver_sm sent without an answer (the session ended) before it is parked
RETRY_DELAY = 10.0  # seconds, times the attempts so far
TICK_SECONDS = 1.0
OUTBOX_FILE = "smpp-outbox.sqlite"

# Headers gsmgw adds to an outgoing file that came in over SMPP (documented in the README).
H_CLIENT = "Client"
H_RECEIPT = "Smpp_receipt"  # registered_delivery bits 0-1: 1 always, 2 on failure only
H_SOURCE = "Smpp_source"  # the ESME's source_addr, where the receipt is addressed
H_SUBMITTED = "Submitted"  # ISO-8601 time of acceptance, the receipt's "submit date"
H_DATA_CODING = "Smpp_data_coding"  # the alphabet the ESME wrote in (message.text_coding): its receipt's

# docs/api.md message status -> SMPP 3.4 §5.2.28 message_state, for query_sm.
_STATUS_STATES = {
    "queued": MessageState.ENROUTE,
    "sending": MessageState.ENROUTE,
    "sent": MessageState.ENROUTE,
    "delivered": MessageState.DELIVERED,
    "failed": MessageState.UNDELIVERABLE,
    "expired": MessageState.EXPIRED,
}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        # Receipts and query_sm give it in UTC; a time that has none (year 9999 at -14:00, in
        # an edited spool file) is as unreadable as a malformed one.
        moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    return moment


class _CurrentRegistry:
    """What a session holds as its policy: always the server's current client registry."""

    def __init__(self, server: "SmppServer"):
        self._server = server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server.current_registry(), name)


class _Connection:
    """One TCP connection: its session, its writer, and the task reading it."""

    def __init__(self, server: "SmppServer", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.session = server._new_session(self.peer)
        self.closed = asyncio.Event()

    async def run(self) -> None:
        try:
            while not self.closed.is_set():
                data = await self.reader.read(65536)
                if not data:
                    break
                self.server.follow_reload()  # a submit after SIGHUP meets the new clients
                self.perform(self.session.data_received(data, time.monotonic()))
                await self._drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("smpp %s: connection lost: %s", self.peer, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug while handling one client's PDU must not take the server down.
            log.exception("smpp %s: closing the session after an internal error", self.peer)
        finally:
            self.close("connection ended")

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.writer.drain(), timeout=self.server.timers.response)
        except asyncio.TimeoutError:
            self.close("the client does not read what we send")

    def perform(self, actions: list) -> None:
        for action in actions:
            if self.closed.is_set() and not isinstance(action, (Delivered, Queue)):
                continue
            if isinstance(action, Send):
                log.debug("smpp %s: -> %s", self.peer, action.what)
                self.writer.write(action.data)
            elif isinstance(action, Close):
                log.info("smpp %s: closing: %s", self.peer, action.reason)
                self.close(action.reason)
            elif isinstance(action, Bound):
                self.server._bound(self)
            elif isinstance(action, Submit):
                self.server._enqueue_submission(self, action.submission)
            elif isinstance(action, Query):
                self.perform(self.server._answer_query(self, action))
            elif isinstance(action, Queue):
                self.server.queue_delivery(action.delivery)
            elif isinstance(action, Delivered):
                self.server._delivered(action)
            elif isinstance(action, Park):
                self.server._park(action.delivery, action.reason)
        if not self.closed.is_set():
            self.server._pump()

    def close(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.perform(self.session.connection_lost())
        self.server._forget(self)
        try:
            self.writer.close()
        except (ConnectionError, RuntimeError):
            pass  # the transport is already gone; nothing left to close
        log.info("smpp %s: closed (%s)", self.peer, reason)


class SmppServer:
    """Listens, runs sessions, commits submissions in groups, routes deliveries."""

    def __init__(
        self,
        *,
        spool: Any,
        registry: Any,
        bus: Any = None,
        message_status: Callable[[str], MessageStatus | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 2775,
        ssl_context: ssl.SSLContext | None = None,
        window: int = 10,
        default_country: str | None = None,
        defaults: Any = None,
        groups: Any = None,
        timers: Timers | None = None,
        reassembly_timeout: float = 120.0,
        outbox: Outbox | None = None,
        metrics: Any = None,
        connections: ConnectionLimits | None = None,
    ):
        self.spool = spool
        self.registry = registry
        self.bus = bus
        # Without a daemon behind it (tests), the spool's files alone answer query_sm.
        self.message_status = message_status or (lambda name: lookup(name, journal=None, spool=spool))
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.window = window
        self.default_country = default_country
        self.defaults = defaults
        self.groups = groups
        self.timers = timers or Timers()
        # Connections in all and per address; a connection must bind within timers.bind.
        self.guard = ConnectionGuard("smpp", connections or ConnectionLimits(), clock=time.monotonic)
        self.reassembly_timeout = reassembly_timeout
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_Connection] = set()
        self._receivers: dict[str, list[_Connection]] = {}
        self._queues: dict[str, deque[Delivery]] = {}
        self._commits: set[asyncio.Future[list[str]]] = set()  # submissions being made durable
        self._tasks: list[asyncio.Task] = []
        self._unsubscribe = None
        self._mo_reference = secrets.randbelow(256)
        self.outbox = outbox or Outbox(None)
        self.metrics = metrics  # gsmgw.daemon.metrics.Metrics, when the daemon runs the server
        # Messages whose final receipt is queued already: a multipart message with several failed
        # parts gets one UNDELIV receipt, not one per part.
        self._final_receipts: dict[str, None] = {}
        # Octets of unfinished long messages per client, over all of its sessions.
        self._pending_octets = M.PendingOctets()
        self._ctx: Any = None
        self._config_seen: Any = None
        self._registry_seen: Any = registry  # the registry bound sessions' clients come from

    # ---- life cycle -----------------------------------------------------------------------

    async def start(self) -> "SmppServer":
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=self.ssl_context, limit=P.MAX_COMMAND_LENGTH
        )
        self._count_parked()
        for delivery in self.outbox.load():
            self.queue_delivery(delivery)
        sockname = self._server.sockets[0].getsockname()
        self.port = sockname[1]
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="smpp-tick"),
        ]
        if self.bus is not None:
            self._unsubscribe = self.bus.subscribe(self.on_event)
        log.info("SMPP server listening on %s:%d%s", self.host, self.port, " (TLS)" if self.ssl_context else "")
        return self

    async def close(self, timeout: float = 3.0) -> None:
        """Stop listening, ask bound clients to unbind, wait (bounded) for them, close."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.perform(conn.session.start_unbind())
        waiters = [asyncio.create_task(conn.closed.wait()) for conn in list(self._connections)]
        if waiters:
            await asyncio.wait(waiters, timeout=timeout)
            for waiter in waiters:
                waiter.cancel()
        if self._commits:
            # Messages already being written get their submit_sm_resp if the client is still
            # there, so it does not send them again.
            await asyncio.wait(set(self._commits), timeout=timeout)
        for conn in list(self._connections):
            conn.close("server stopped")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self.outbox.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = peer_address(writer)
        if not self.guard.admit(address):
            writer.close()  # over a cap: closed before it is read (the guard logs it)
            return
        try:
            conn = _Connection(self, reader, writer)
            self._connections.add(conn)
            log.info("smpp %s: connected", conn.peer)
            await conn.run()
        finally:
            self.guard.release(address)

    def current_registry(self) -> Any:
        """The client registry of the config now in force. The daemon replaces `ctx.clients` on
        SIGHUP (limit counts carry over); new binds then see new passwords and rules, and
        `follow_reload` moves bound sessions to them."""
        if self._ctx is None:
            return self.registry
        shared = getattr(self._ctx, "clients", None)
        if shared is not None:
            return shared
        config = self._ctx.config
        if config is not self._config_seen:
            from gsmgw.clients import ClientConfigError, ClientRegistry

            try:
                self.registry = ClientRegistry.from_config(config)
            except ClientConfigError as exc:
                log.error("smpp: keeping the previous clients: the new config's clients cannot be used: %s", exc)
            self._config_seen = config
        return self.registry

    def _new_session(self, peer: str) -> Session:
        return Session(
            _CurrentRegistry(self),
            now=time.monotonic(),
            wall_clock=lambda: datetime.now(timezone.utc),
            new_id=lambda: outgoing_name(datetime.now(timezone.utc), secrets.token_hex(4)),
            window=self.window,
            default_country=self.default_country,
            national_languages=tuple(getattr(self.defaults, "national_languages", ()) or ()),
            reassembly_timeout=self.reassembly_timeout,
            timers=self.timers,
            peer=peer,
            pending_octets=self._pending_octets,
        )

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        for conns in self._receivers.values():
            if conn in conns:
                conns.remove(conn)

    def follow_reload(self) -> None:
        """When the client registry was replaced (SIGHUP), every bound session takes its
        client's new entry; one whose client is gone, or whose system_id or password changed,
        is unbound. Costs one comparison when nothing changed."""
        registry = self.current_registry()
        if registry is self._registry_seen:
            return
        self._registry_seen = registry
        for conn in list(self._connections):
            bound = conn.session.client
            if bound is None or conn.closed.is_set():
                continue
            client = registry.by_name(bound.name)
            still_valid = client is not None and registry.same_smpp_login(bound, client)
            conn.perform(conn.session.client_changed(client, still_valid))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.follow_reload()
            now = time.monotonic()
            for conn in list(self._connections):
                try:
                    conn.perform(conn.session.tick(now))
                except Exception:
                    log.exception("smpp %s: closing the session after an internal error", conn.peer)
                    conn.close("internal error")

    # ---- submissions ----------------------------------------------------------------------

    def _enqueue_submission(self, conn: _Connection, submission: Submission) -> None:
        now = datetime.now(timezone.utc)
        headers = {
            H_CLIENT: submission.client.name,
            H_RECEIPT: str(submission.registered_delivery),
            H_SUBMITTED: now.isoformat(timespec="seconds"),
        }
        if submission.source_addr:
            headers[H_SOURCE] = submission.source_addr
        if submission.text_coding is not None:
            headers[H_DATA_CODING] = str(submission.text_coding)
        validity = None
        if submission.validity_until is not None:
            minutes = max(5, int((submission.validity_until - now).total_seconds() + 59) // 60)
            validity = f"{minutes} min"
        try:
            data = make_outgoing(
                to=submission.to,
                text=submission.text if submission.data is None else None,
                data=submission.data,
                udh=submission.udh or None,
                # Class 0 is written `Flash: yes`, as a dropped file says it.
                message_class=submission.message_class if submission.message_class else None,
                # Ask the network for a status report when the client wants a receipt; else the
                # config's default decides (docs/spool.md `Report:`).
                report=True if submission.registered_delivery else None,
                flash=submission.flash or submission.message_class == 0,
                validity=validity,
                priority=submission.priority,
                send_after=submission.send_after,
                expires=submission.validity_until,
                max_parts=submission.max_parts,  # the client's, which the session checked
                extra=headers,
            )
            # The same checks a dropped file gets (Max_parts, times); refuse now rather than
            # accept something the daemon will fail.
            parse_outgoing(
                data, now=now, default_country=self.default_country, defaults=self.defaults, groups=self.groups
            )
        except ValueError as exc:  # SpoolFormatError and the codec's errors are ValueErrors
            self._release(submission)
            conn.perform(conn.session.submit_failed(submission, Status.ESME_RSUBMITFAIL, str(exc)))
            return
        self._commit(conn, submission, data)

    def _release(self, submission: Submission) -> None:
        # The limits counted this message when the session accepted it, but it was not queued.
        if submission.acquired_at is not None:
            self.current_registry().release(submission.client, submission.parts, submission.acquired_at)

    def _commit(self, conn: _Connection, submission: Submission, data: bytes) -> None:
        """Hand the file to the spool's group committer; its submit_sm_resp goes out once it is
        durable. A long message whose first segments were answered already is written under the
        id they were promised."""
        committed = asyncio.wrap_future(self.spool.committer.submit([data], name=submission.message_id))
        self._commits.add(committed)
        committed.add_done_callback(lambda done: self._committed(conn, submission, done))

    def _committed(self, conn: _Connection, submission: Submission, done: asyncio.Future[list[str]]) -> None:
        self._commits.discard(done)
        if done.cancelled():  # the loop is going away; the session and its client are gone with it
            self._release(submission)
            return
        error = done.exception()
        if error is not None:  # CommitError: the committer logged it; nothing was queued
            self._release(submission)
            conn.perform(conn.session.submit_failed(submission, Status.ESME_RSYSERR, str(error)))
            return
        name = done.result()[0]
        log.debug("smpp %s: %s queued as %s", conn.peer, submission.to, name)
        conn.perform(conn.session.submit_done(submission, name))

    # ---- query_sm -------------------------------------------------------------------------

    def _answer_query(self, conn: _Connection, query: Query) -> list:
        status = None
        try:
            status = self.message_status(query.message_id)
        except (OSError, ValueError) as exc:
            log.info("smpp %s: query_sm %s: %s", conn.peer, query.message_id, exc)
        if status is None or not self._owned_by(query.message_id, query.client):
            return conn.session.query_done(query.sequence, query.message_id, None, None)
        state = _STATUS_STATES.get(status.status, MessageState.UNKNOWN)
        final_date = None
        if status.final:
            final_date = _parse_iso(status.delivered or status.sent) or datetime.now(timezone.utc)
        return conn.session.query_done(query.sequence, query.message_id, int(state), final_date)

    def _owned_by(self, message_id: str, client: Any) -> bool:
        """A client may query its own messages only; to anyone else a message it did not
        submit does not exist. A file without a sealed `Client:` (dropped into the spool) is nobody's."""
        for dirname in ("outgoing", "checked", "sent", "failed"):
            try:
                data = self.spool.read(dirname, message_id)
            except (OSError, ValueError):
                continue
            try:
                owner = self.spool.verified(data).headers.get(H_CLIENT)
            except (SpoolFormatError, ValueError):
                return False
            return owner is not None and owner == getattr(client, "name", None)
        return False

    # ---- deliveries -----------------------------------------------------------------------

    def _bound(self, conn: _Connection) -> None:
        if conn.session.mode is not None and conn.session.mode.receives:
            self._receivers.setdefault(conn.session.client.name, []).append(conn)

    def queue_delivery(self, delivery: Delivery, *, front: bool = False) -> None:
        queue = self._queues.setdefault(delivery.client_name, deque())
        if len(queue) >= QUEUE_LIMIT:
            dropped = queue.popleft()
            self.outbox.remove(dropped)
            log.warning("smpp: queue of client %s is full; dropped %s", delivery.client_name, dropped.what)
        self.outbox.add(delivery)
        if front:
            queue.appendleft(delivery)
        else:
            queue.append(delivery)

    def _delivered(self, action: Delivered) -> None:
        delivery = action.delivery
        if action.status == 0:
            log.info("smpp: delivered %s to client %s", delivery.what, delivery.client_name)
            self.outbox.remove(delivery)
            return
        if action.status is None:
            if delivery.attempts >= MAX_UNANSWERED:
                self._park(delivery, f"sent {delivery.attempts} times, never answered (the session ended each time)")
                return
            # The session ended or the client never answered: try again on the next session.
            self.queue_delivery(delivery, front=True)
            return
        if delivery.attempts >= MAX_DELIVERY_ATTEMPTS:
            self._park(delivery, f"refused {delivery.attempts} times (last command_status 0x{action.status:x})")
            return
        # Refused for now (e.g. ESME_RX_T_APPN, ESME_RMSGQFUL): try again later, not at once,
        # so a busy client is not hammered; the record stays in the outbox meanwhile.
        asyncio.get_running_loop().call_later(RETRY_DELAY * delivery.attempts, self._retry, delivery)

    def _park(self, delivery: Delivery, reason: str) -> None:
        """Set a delivery aside for good: kept in the outbox with its reason (visible there and
        in gsmgw_smpp_parked_deliveries), never sent again, and the next one goes."""
        log.warning("smpp: %s for client %s parked: %s", delivery.what, delivery.client_name, reason)
        self.outbox.park(delivery, reason, time.time())
        self._count_parked()

    def _count_parked(self) -> None:
        gauge = getattr(self.metrics, "smpp_parked", None)
        if gauge is not None:
            gauge.set(self.outbox.count_parked())

    def _retry(self, delivery: Delivery) -> None:
        self.queue_delivery(delivery)
        self._pump()

    def _pump(self) -> None:
        """Send queued deliveries to each client's receiver, within its window.

        Only the client's longest-bound receiver or transceiver session gets deliveries; the
        others stand by until it goes. Spreading them would split the segments of one long
        inbound SMS (and the order of receipts) across connections that the client may not join.
        """
        for client_name, queue in self._queues.items():
            conns = [c for c in self._receivers.get(client_name, ()) if not c.closed.is_set()]
            if not queue or not conns:
                continue
            conn = conns[0]
            while queue and conn.session.can_deliver:
                delivery = queue.popleft()
                for action in conn.session.deliver(delivery, time.monotonic()):
                    if isinstance(action, Send):
                        conn.writer.write(action.data)
                    elif isinstance(action, Park):
                        self._park(action.delivery, action.reason)

    def _clients_for_smpp(self):
        return [c for c in getattr(self.current_registry(), "clients", ()) if getattr(c, "smpp_system_id", None)]

    # ---- events from the daemon -----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self._inbound(event)
        elif isinstance(event, ReportReceived):
            self._report(event)
        elif isinstance(event, MessageFailed):
            self._failed(event)
        self._pump()

    def _inbound(self, event: MessageReceived) -> None:
        registry = self.current_registry()
        targets = [c for c in self._clients_for_smpp() if registry.receives_from_modem(c, event.modem)]
        if not targets:
            return
        self._mo_reference = (self._mo_reference + 1) % 256
        segments = M.encode_for_delivery(
            event.text or "", self._mo_reference, data=getattr(event, "data", None), udh=getattr(event, "udh", b"")
        )
        for client in targets:
            for data_coding, esm_class, short_message in segments:
                self.queue_delivery(
                    Delivery(
                        client_name=client.name,
                        source_addr=event.sender,
                        destination_addr=event.modem,
                        data_coding=data_coding,
                        esm_class=esm_class,
                        short_message=short_message,
                        what=f"inbound {event.id}",
                    )
                )

    def _report(self, event: ReportReceived) -> None:
        if event.status == "delivered":
            if not event.delivered:
                return  # some parts are still on their way; the receipt is for the whole message
            self._receipt(event.id, event.to, event.headers, "DELIVRD", _parse_iso(event.discharge), 0)
        elif event.status == "failed":
            self._receipt(event.id, event.to, event.headers, "UNDELIV", _parse_iso(event.discharge), event.tp_status)

    def _failed(self, event: MessageFailed) -> None:
        stat = "EXPIRED" if event.expired else "UNDELIV"
        self._receipt(event.id, event.to or "", event.headers, stat, datetime.now(timezone.utc), 0)

    def _receipt(self, message_id: str, to: str, headers: Headers, stat: str, done: datetime | None, err: int) -> None:
        client_name = headers.get(H_CLIENT)
        wanted = headers.get(H_RECEIPT)
        if not client_name or wanted not in ("1", "2"):
            return
        if wanted == "2" and stat == "DELIVRD":
            return
        if not any(c.name == client_name for c in self._clients_for_smpp()):
            return
        if message_id in self._final_receipts:
            return
        self._final_receipts[message_id] = None
        while len(self._final_receipts) > QUEUE_LIMIT:
            del self._final_receipts[next(iter(self._final_receipts))]
        text = self._original_text(message_id)
        body = M.receipt_text(
            message_id=message_id, stat=stat, submitted=_parse_iso(headers.get(H_SUBMITTED)),
            done=done or datetime.now(timezone.utc), err=err, text=text,
        )
        coding = (headers.get(H_DATA_CODING) or "").strip()
        data_coding, short_message = M.receipt_short_message(body, int(coding) if coding.isdigit() else None)
        self.queue_delivery(
            Delivery(
                client_name=client_name,
                source_addr=to,
                destination_addr=headers.get(H_SOURCE) or "",
                data_coding=data_coding,
                esm_class=P.ESM_DELIVERY_RECEIPT,
                short_message=short_message,
                tlvs={
                    Tag.RECEIPTED_MESSAGE_ID: P.tlv_cstring(message_id),
                    Tag.MESSAGE_STATE: P.tlv_u8(M.RECEIPT_STATES[stat]),
                },
                what=f"receipt {stat} {message_id}",
            )
        )

    def _original_text(self, message_id: str) -> str:
        for dirname in ("sent", "failed", "checked", "outgoing"):
            try:
                data = self.spool.read(dirname, message_id)
            except (OSError, ValueError, AttributeError):
                continue
            try:
                return read_spool_file(data).body.decode("utf-8", "replace").rstrip("\r\n")
            except (SpoolFormatError, ValueError):
                return ""
        return ""


def _ssl_context(tls: Any) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(_get(tls, "cert")), str(_get(tls, "key")))
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            f"smpp.tls: cannot load the certificate {_get(tls, 'cert')} / key {_get(tls, 'key')}: {exc}; "
            "check the paths and that the key matches the certificate"
        ) from exc
    return context


async def start(ctx: GatewayContext) -> SmppServer:
    """Start the SMPP server for the daemon (`gsmgw.daemon.app`), as `config.smpp` says.

    Uses `ctx.config`, `ctx.spool`, `ctx.bus`, `ctx.message_status` and the shared client
    registry `ctx.clients` (built from the config when the context has none), so that limits
    count HTTP and SMPP submissions together."""
    config = ctx.config
    smpp = config.smpp
    if smpp is None:
        raise ValueError("smpp: is not in the config; add it (docs/config.md) to start the SMPP listener")
    registry = getattr(ctx, "clients", None)
    if registry is None:
        from gsmgw.clients import ClientRegistry

        registry = ClientRegistry.from_config(config)
    server = SmppServer(
        spool=ctx.spool,
        registry=registry,
        bus=getattr(ctx, "bus", None),
        message_status=getattr(ctx, "message_status", None),
        host=smpp.listen_host,
        port=smpp.listen_port,
        ssl_context=_ssl_context(smpp.tls),
        window=getattr(smpp, "window", 10) or 10,
        default_country=getattr(config, "default_country", None),
        defaults=getattr(config, "defaults", None),
        groups=getattr(ctx, "groups", None) or getattr(config, "groups", None),  # with the console's groups
        outbox=Outbox(Path(config.state) / OUTBOX_FILE) if getattr(config, "state", None) else None,
        metrics=getattr(ctx, "metrics", None),
        timers=Timers(bind=float(getattr(smpp, "bind_timeout", 30.0))),
        connections=ConnectionLimits(
            max_connections=int(getattr(smpp, "max_connections", 1024)),
            max_per_address=int(getattr(smpp, "max_connections_per_address", 128)),
            first_request_timeout=float(getattr(smpp, "bind_timeout", 30.0)),
        ),
    )
    server._ctx = ctx
    server._config_seen = config
    return await server.start()
