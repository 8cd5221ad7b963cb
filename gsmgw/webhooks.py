"""Webhooks out: POST JSON for received messages and delivery reports, at least once (docs/api.md).

Reads/writes: one JSON file per pending delivery in `<state>/webhooks/`; deliveries given up
after `max_age` (24 h) are moved to `<state>/webhooks/dead/` for a human to look at. The queue is
`gsmgw.durable_queue.DurableQueue`, which mail out shares: each file is written atomically
(temporary name, fsync, rename, fsync of the directory) before `enqueue` returns, so a delivery
survives a crash or `kill -9` and is tried again after the restart.

At least once: a delivery is removed only after the receiver answered 2xx. A crash between the
answer and the removal sends it again, so every POST carries `X-Gsmgw-Delivery` (stable across
retries) for the receiver to drop duplicates.

Never blocks: `enqueue` writes its file in a worker thread and returns; the deliveries run in
their own tasks with a timeout each and a bounded number in flight, and a receiver that is down
is retried with exponential backoff (1 s, 2 s, 4 s, ... at most `max_delay`), so a dead webhook
costs a few idle timers, not send or receive time.

Signature: every POST carries `X-Gsmgw-Timestamp` (Unix seconds when it was sent) and
`X-Gsmgw-Signature`, the lowercase hex HMAC-SHA256 of `timestamp + "." + body` (the exact body
bytes), so a receiver can reject a replayed old request as well as a forged one. The key is a
webhook secret, never an API token: `webhooks.secret` for received SMS, and for reports the
submitting client's `webhook_secret` (its callbacks need one), else `webhooks.secret`. Both are
taken from the current config at each attempt, so a retry after a reload uses the new secret.

Where a delivery may go (gsmgw.callbacks): the URLs of `webhooks:` are the administrator's and
may go anywhere. A callback (a client's `Callback:`) is checked at each attempt against that
client's `callback_hosts`, and connects only to the public addresses its name resolves to (the
resolver refuses the others, so the checked address is the one connected to), unless the client
allows private addresses. A refused callback is given up at once. No delivery follows a redirect:
a 3xx answer is a failure like any other non-2xx answer.

Kannel's dlr-url: a message submitted through /cgi-bin/sendsms with a `dlr-url` has `Callback:`
and `Dlr_mask:` in its spool file. Its callback is called as Kannel's smsbox calls a dlr-url: a
GET of the URL with its %-escapes filled in (`%d` event: 1 delivered, 2 failed, 4 buffered,
8 sent, 16 rejected; `%p` recipient; `%i` modem; `%I` message id; `%A` report text; `%t`/`%T`
time; `%%`), for the events the mask selects.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import time
import urllib.parse
import uuid
from datetime import datetime
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from gsmgw.callbacks import address_refusal, host_refusal
from gsmgw.clients import ClientRegistry
from gsmgw.events import CallReceived, Event, MessageFailed, MessageReceived, MessageSent, ReportReceived
from gsmgw.spool.format import Headers, read_spool_file
from gsmgw.durable_queue import Cursor, DurableQueue, GiveUp
from gsmgw.spool.message_status import REPORT_DELIVERED, REPORT_PENDING, report_word

if TYPE_CHECKING:  # types only: the daemon hands them over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext
    from gsmgw.spool.store import Spool

log = logging.getLogger("gsmgw.webhooks")

SIGNATURE_HEADER = "X-Gsmgw-Signature"
TIMESTAMP_HEADER = "X-Gsmgw-Timestamp"
EVENT_HEADER = "X-Gsmgw-Event"
DELIVERY_HEADER = "X-Gsmgw-Delivery"


def sign(timestamp: str, body: bytes, key: str) -> str:
    """Lowercase hex HMAC-SHA256 of `timestamp + "." + body` with `key` (UTF-8), as sent in
    X-Gsmgw-Signature next to X-Gsmgw-Timestamp."""
    return hmac.new(key.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Route:
    """How one delivery may go out, decided at each attempt from the current config."""

    key: str | None = None  # signs the POST; None: sent unsigned
    trusted: bool = False  # a URL of the config itself: any host, any address
    hosts: tuple[str, ...] = ()  # the callback hosts of the client, when not trusted
    private_addresses: bool = False  # the client's callbacks may reach non-public addresses
    client: str | None = None  # for the log and the error that says what to change


class AddressRefused(OSError):
    """A callback's host resolves only to addresses it may not reach; the message says which."""


class PublicResolver(AbstractResolver):
    """Resolves as the system does and keeps only public addresses (gsmgw.callbacks), so the
    connection is made to an address that was checked, whatever the name resolves to later."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        results = await self._inner.resolve(host, port, family)
        public = [result for result in results if address_refusal(result["host"]) is None]
        if not public:
            reasons = "; ".join(sorted({address_refusal(result["host"]) or "" for result in results}))
            raise AddressRefused(f"{host} resolves only to addresses callbacks may not reach ({reasons})")
        return public

    async def close(self) -> None:
        await self._inner.close()


def _refused_by(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused behind an aiohttp connection error, if that is what it was."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, AddressRefused):
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, AddressRefused):
            return os_error
        current = current.__cause__
        seen += 1
    return None


def _private_fix(route: Route) -> str:
    if route.client is None:
        return ""
    return (f"; if that address is meant, set callback_private_addresses: true for client {route.client!r} "
            "(it then also reaches private and loopback addresses)")


def encode_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass
class Delivery:
    """One webhook POST waiting to succeed; this is what its file holds."""

    id: str
    url: str
    event: str
    body: str  # the exact JSON text that is signed and sent
    created: float
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    method: str = "POST"  # "GET" for Kannel dlr-urls: no body, everything is in the URL
    client: str | None = None  # the client whose message it is about: its callback rules and webhook secret

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> "Delivery":
        fields = json.loads(data)
        return cls(**{key: fields[key] for key in cls.__dataclass_fields__ if key in fields})

    def describe(self) -> str:
        return f"{self.event} {self.id} to {self.url}"


class WebhookQueue(DurableQueue[Delivery]):
    """The durable queue of webhook calls (gsmgw.durable_queue) and how one is made: an HTTP
    request with a timeout, signed and checked as `route(delivery)` says; any 2xx answer delivers
    it, a refused callback is given up, anything else is retried."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_age: float = 24 * 3600.0,
        first_delay: float = 1.0,
        max_delay: float = 3600.0,
        timeout: float = 10.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
        route: Callable[[Delivery], Route] | None = None,
    ):
        super().__init__(directory, load=Delivery.from_bytes, name="webhooks", max_age=max_age,
                         first_delay=first_delay, max_delay=max_delay, concurrency=concurrency, clock=clock)
        self.timeout = timeout
        # Without a route provider (tests of the queue alone) every URL is trusted and unsigned.
        self.route: Callable[[Delivery], Route] = route or (lambda delivery: Route(trusted=True))
        self._session: aiohttp.ClientSession | None = None  # any address
        self._public_session: aiohttp.ClientSession | None = None  # public addresses only

    async def start(self) -> None:
        # Two sessions, so that neither a cached DNS answer nor a kept-alive connection made for a
        # URL that may reach private addresses is ever used for one that may not.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "gsmgw-webhooks"},
        )
        self._public_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=PublicResolver()),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "gsmgw-webhooks"},
        )
        await super().start()

    async def close(self) -> None:
        await super().close()
        for session in (self._session, self._public_session):
            if session is not None:
                await session.close()

    async def enqueue(
        self,
        url: str,
        event: str,
        payload: Mapping[str, Any] | None,
        *,
        client: str | None = None,
        method: str = "POST",
        delivery_id: str | None = None,
    ) -> str:
        """Store a delivery durably and schedule it; returns its id (X-Gsmgw-Delivery).

        `client`: whose message it is about (its callback rules and webhook secret apply, see
        `route`). `method` "GET" sends no body (payload None): the URL says everything (Kannel
        dlr-urls). A `delivery_id` derived from what is announced makes a repeated enqueue the
        same delivery. The signature is made when it is sent, with the time of that attempt.
        """
        body = encode_body(payload) if payload is not None else b""
        now = self.clock()
        delivery = Delivery(
            id=delivery_id or uuid.uuid4().hex,
            url=url,
            event=event,
            body=body.decode("utf-8"),
            created=now,
            next_at=now,
            method=method,
            client=client,
        )
        # The same id again (a report announced twice): the newer content replaces the older.
        await self.replace(delivery)
        return delivery.id

    async def deliver(self, delivery: Delivery) -> str | GiveUp | None:
        """One request; None on 2xx, else words for the log saying what went wrong (GiveUp: the
        delivery may not go there at all, so it is not tried again)."""
        route = self.route(delivery)
        try:
            url = URL(delivery.url, encoded=True)  # sent as written: escapes were filled in, quoted
        except (ValueError, TypeError) as exc:
            return GiveUp(f"the URL cannot be read: {exc}")
        if not route.trusted:
            refusal = self._refusal(url, route)
            if refusal is not None:
                return refusal
        session = self._session if route.trusted or route.private_addresses else self._public_session
        assert session is not None
        headers = {EVENT_HEADER: delivery.event, DELIVERY_HEADER: delivery.id}
        data = delivery.body.encode("utf-8") if delivery.method == "POST" else None
        if delivery.method == "POST":
            headers["Content-Type"] = "application/json; charset=utf-8"
            if route.key:
                timestamp = str(int(self.clock()))
                headers[TIMESTAMP_HEADER] = timestamp
                headers[SIGNATURE_HEADER] = sign(timestamp, data or b"", route.key)
        try:
            async with session.request(delivery.method, url, data=data, headers=headers,
                                       allow_redirects=False) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                if 300 <= response.status < 400:
                    where = response.headers.get("Location", "nowhere")
                    return (f"HTTP {response.status}: a redirect to {where[:200]}; gsmgw follows no redirects, "
                            "so the URL must be the final one")
                return f"HTTP {response.status} {response.reason or ''}".strip()
        except asyncio.TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = _refused_by(exc)
            if refused is not None:
                return GiveUp(f"{refused}{_private_fix(route)}")
            return f"{type(exc).__name__}: {exc}"

    @staticmethod
    def _refusal(url: URL, route: Route) -> GiveUp | None:
        """Why a callback may not go to `url` under its client's rules, before any connection."""
        refusal = host_refusal(url.raw_host, route.hosts, route.private_addresses)
        if refusal == "host":
            owner = f"client {route.client!r}" if route.client else "no client (the message did not come from one)"
            return GiveUp(f"the host {url.raw_host!r} is not among the callback_hosts of {owner}; add it there "
                          "if callbacks to it are wanted")
        if refusal:
            return GiveUp(f"{refusal}{_private_fix(route)}")
        return None


def delivery_id_for(kind: str, file_name: str) -> str:
    """The delivery id of the webhook announcing a spool file: stable across restarts."""
    return f"{kind}-{file_name}"


def report_event_from_files(
    report_name: str, report: bytes, sent: bytes | None, report_path: str, *, seal_key: bytes | None = None
) -> ReportReceived:
    """The ReportReceived event a report/ file stands for (to announce it after a restart).
    The sent file's trusted headers (Client:, Callback:) count only if `seal_key` verifies them."""
    report_headers = read_spool_file(report).headers
    sent_headers = read_spool_file(sent, seal_key=seal_key).headers if sent is not None else None
    # The sent file's Status: is the whole message's (gsmgw.spool.message_status); the report
    # file's is its own part's, a stand-in when the sent file is gone.
    status = (
        report_word(sent_headers.get("Status") if sent_headers else None)
        or report_word(report_headers.get("Status"))
        or REPORT_PENDING
    )
    own = (report_headers.get("Status") or "").split()
    ids_text = (sent_headers.get("Message_id") if sent_headers else None) or report_headers.get("Message_id") or ""
    return ReportReceived(
        id=report_headers.get("Sent_file") or report_name,
        to=report_headers.get("From") or "",
        status=status,
        delivered=status == REPORT_DELIVERED,
        message_ids=tuple(int(item) for item in ids_text.split(",") if item.strip().isdigit()),
        report_path=report_path,
        modem=report_headers.get("Modem") or "",
        discharge=report_headers.get("Discharge"),
        tp_status=int(own[1]) if len(own) > 1 and own[1].isdigit() else -1,
        headers=sent_headers if sent_headers is not None else Headers(),
    )


def call_payload(event: CallReceived) -> dict[str, Any]:
    """The `call` webhook body (README "Incoming calls") from a `CallReceived` event."""
    return {
        "id": event.id,
        "from": event.caller,
        "withheld": bool(event.withheld),
        "modem": event.modem,
        "received": event.received,
        "rings": event.rings,
        "hung_up": bool(event.hung_up),
    }


def call_event_from_file(name: str, data: bytes, path: str) -> CallReceived:
    """The CallReceived event a calls/ file stands for (to announce it after a restart)."""
    headers = read_spool_file(data).headers
    toa = (headers.get("From_TOA") or "").split(" ", 1)[0]
    rings = (headers.get("Rings") or "").strip()
    return CallReceived(
        id=name, path=path, caller=headers.get("From"),
        caller_toa=int(toa, 16) if len(toa) == 2 and all(c in "0123456789ABCDEFabcdef" for c in toa) else None,
        withheld=(headers.get("Withheld") or "").lower() == "yes", modem=headers.get("Modem") or "",
        received=headers.get("Received") or "", rings=int(rings) if rings.isdigit() else 0,
        hung_up=headers.get("Hung_up") is not None,
    )


def binary_fields(data: bytes | None, udh: bytes, ports: tuple[int, int] | None) -> dict[str, Any]:
    """The keys a received message has beside its text, for binary messages and user data headers
    (README "Webhooks"): `binary`, `data` (hex of the octets), `udh` (hex, UDHL first, without
    concatenation), `port`/`from_port` (application port addressing). The webhook and the inbox
    API (`gsmgw.http.spoolview.inbox_entry`) both take them from here."""
    return {
        "binary": data is not None,
        "data": data.hex().upper() if data is not None else None,
        "udh": udh.hex().upper() if udh else None,
        "port": ports[0] if ports else None,
        "from_port": ports[1] if ports else None,
    }


def report_event_from_spool(spool: Spool, name: str, data: bytes) -> ReportReceived | None:
    """The ReportReceived event of the report/ file `name` (content `data`), with its sent/ file;
    None for a report that matched no message."""
    sent_name = read_spool_file(data).headers.get("Sent_file")
    if not sent_name:
        # It matched no message of ours, so the daemon announced nothing for it; after a restart
        # neither (a report webhook's id is a message's id).
        return None
    sent = None
    if sent_name:
        try:
            sent = spool.read("sent", sent_name)
        except (OSError, ValueError):
            sent = None
    return report_event_from_files(name, data, sent, str(spool.path("report", name)), seal_key=spool.seal_key)


def received_payload(event: MessageReceived) -> dict[str, Any]:
    """The `received` webhook body (docs/api.md) from a `MessageReceived` event; for a PDU that
    could not be decoded `from` is null, `text` its hex and `decode_error` says why."""
    return {
        "id": event.id,
        "from": event.sender or None,
        "text": event.text,
        "modem": event.modem,
        "sent": event.sent,
        "received": event.received,
        "parts": event.parts,
        "incomplete": bool(event.incomplete),
        "decode_error": getattr(event, "decode_error", None),
        **binary_fields(getattr(event, "data", None), getattr(event, "udh", b""), getattr(event, "ports", None)),
    }


def report_payload(event: ReportReceived) -> dict[str, Any]:
    """The `report` webhook body (docs/api.md) from a `ReportReceived` event.

    `delivered` is the discharge time once the whole message is delivered, else null; `status`
    is `delivered`, `pending` or `failed` for the whole message.
    """
    return {
        "id": event.id,
        "to": event.to,
        "status": event.status,
        "delivered": event.discharge if event.delivered else None,
        "message_ids": list(event.message_ids),
    }


# Kannel's DLR event values (Kannel user guide, "dlr-mask").
KANNEL_DELIVERED, KANNEL_FAILED, KANNEL_BUFFERED, KANNEL_SENT, KANNEL_REJECTED = 1, 2, 4, 8, 16
_KANNEL_REPORT_EVENTS = {"delivered": KANNEL_DELIVERED, "failed": KANNEL_FAILED, "pending": KANNEL_BUFFERED}


def kannel_dlr_url(template: str, values: Mapping[str, str]) -> str:
    """Fill Kannel's %-escapes of a dlr-url; each value URL-quoted, unknown escapes kept as written."""

    def replace(match: "re.Match[str]") -> str:
        letter = match.group(1)
        if letter == "%":
            return "%"
        if letter in values:
            return urllib.parse.quote(values[letter], safe="")
        return match.group(0)

    return re.sub(r"%(.)", replace, template)


def kannel_values(event_value: int, *, to: str | None, modem: str | None, message_id: str, text: str,
                  moment: datetime) -> dict[str, str]:
    return {
        "d": str(event_value),
        "p": to or "",
        "P": "",  # the SIM's own number; a modem does not always know it
        "i": modem or "",
        "I": message_id,
        "A": text,
        "t": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "T": str(int(moment.timestamp())),
    }


class WebhookDispatcher:
    """Turns bus events into queued deliveries: which URL, which key.

    `settings`, when given, returns the current (webhooks config, client registry) before each
    event, so a config reload applies to the next event.
    """

    def __init__(
        self,
        queue: WebhookQueue,
        webhooks_config: Any,
        registry: ClientRegistry,
        *,
        settings: Callable[[], tuple[Any, ClientRegistry]] | None = None,
    ):
        self.queue = queue
        self.settings = settings
        self.cursors: dict[str, Cursor] = {}
        self._apply(webhooks_config, registry)

    async def catch_up(self, spool: Any, read_incoming: Callable[[str, bytes], dict[str, Any]]) -> int:
        """Announce incoming/ and report/ files written after the cursors (see Cursor).

        `read_incoming(name, data)` gives the `received` body of an incoming/ file. Returns how
        many deliveries were queued.
        """
        queued = 0
        self.cursors = {
            "received": Cursor(self.queue.directory / "received.cursor", log),
            "report": Cursor(self.queue.directory / "report.cursor", log),
            "call": Cursor(self.queue.directory / "call.cursor", log),
        }
        for kind, cursor in self.cursors.items():
            await self.queue.in_thread(cursor.load, time.time_ns())
        if self.received_url:
            for mtime_ns, name, data in await self.queue.in_thread(self.cursors["received"].files_after, spool.path("incoming")):
                try:
                    payload = read_incoming(name, data)
                except ValueError as exc:
                    log.warning("webhooks: cannot announce incoming/%s: %s", name, exc)
                    continue
                await self.queue.enqueue(self.received_url, "received", payload,
                                         delivery_id=delivery_id_for("received", name))
                await self.queue.in_thread(self.cursors["received"].advance, mtime_ns)
                queued += 1
        for mtime_ns, name, data in await self.queue.in_thread(self.cursors["report"].files_after, spool.path("report")):
            try:
                event = await self.queue.in_thread(report_event_from_spool, spool, name, data)
            except ValueError as exc:
                log.warning("webhooks: cannot announce report/%s: %s", name, exc)
                continue
            if event is not None:
                queued += await self._report(event, delivery_id=delivery_id_for("report", name))
            await self.queue.in_thread(self.cursors["report"].advance, mtime_ns)
        if self.call_url:
            for mtime_ns, name, data in await self.queue.in_thread(self.cursors["call"].files_after, spool.path("calls")):
                try:
                    call = call_event_from_file(name, data, str(spool.path("calls", name)))
                except ValueError as exc:
                    log.warning("webhooks: cannot announce calls/%s: %s", name, exc)
                    continue
                await self.queue.enqueue(self.call_url, "call", call_payload(call), delivery_id=delivery_id_for("call", name))
                await self.queue.in_thread(self.cursors["call"].advance, mtime_ns)
                queued += 1
        if queued:
            log.info("webhooks: queued %d webhook(s) for messages not announced before the restart", queued)
        return queued


    def _apply(self, webhooks_config: Any, registry: ClientRegistry) -> None:
        self.received_url = getattr(webhooks_config, "received", None) if webhooks_config else None
        self.report_url = getattr(webhooks_config, "report", None) if webhooks_config else None
        self.call_url = getattr(webhooks_config, "call", None) if webhooks_config else None
        self.secret = getattr(webhooks_config, "secret", None) if webhooks_config else None
        self.registry = registry

    def route(self, delivery: Delivery) -> Route:
        """Signing key and callback rules of a delivery, from the current config (WebhookQueue
        asks at each attempt). A URL of `webhooks:` is trusted; any other is a callback of
        `delivery.client`, under that client's rules (none when the client is gone)."""
        if self.settings is not None:
            self._apply(*self.settings())
        client = self.registry.by_name(delivery.client) if delivery.client else None
        trusted = delivery.method == "POST" and delivery.url in (self.received_url, self.report_url, self.call_url)
        if delivery.event in ("received", "call"):
            key = self.secret
        elif client is not None and client.webhook_secret:
            key = client.webhook_secret
        else:
            key = self.secret if trusted else None
        if trusted:
            return Route(key=key, trusted=True, client=delivery.client)
        if client is None:
            return Route(key=key, client=delivery.client)
        return Route(key=key, hosts=client.callback_hosts, private_addresses=client.callback_private_addresses,
                     client=client.name)

    async def __call__(self, event: Event) -> None:
        if self.settings is not None:
            self._apply(*self.settings())
        if isinstance(event, MessageReceived):
            if self.received_url:
                await self.queue.enqueue(
                    self.received_url, "received", received_payload(event),
                    delivery_id=delivery_id_for("received", event.id),
                )
                if "received" in self.cursors:
                    await self.queue.in_thread(self.cursors["received"].advance_to_file, event.path)
        elif isinstance(event, CallReceived):
            if self.call_url:
                await self.queue.enqueue(self.call_url, "call", call_payload(event),
                                         delivery_id=delivery_id_for("call", event.id))
                if "call" in self.cursors:
                    await self.queue.in_thread(self.cursors["call"].advance_to_file, event.path)
        elif isinstance(event, ReportReceived):
            report_name = os.path.basename(event.report_path) if event.report_path else None
            await self._report(event, delivery_id=delivery_id_for("report", report_name) if report_name else None)
            if "report" in self.cursors and event.report_path:
                await self.queue.in_thread(self.cursors["report"].advance_to_file, event.report_path)
        elif isinstance(event, MessageSent) and event.headers.get("Dlr_mask") is not None:
            await self._kannel(event.headers, KANNEL_SENT, event, text="sent")
        elif isinstance(event, MessageFailed) and event.headers.get("Dlr_mask") is not None:
            await self._kannel(event.headers, KANNEL_REJECTED, event, text=event.reason)

    async def _report(self, event: ReportReceived, *, delivery_id: str | None = None) -> int:
        """Queue what a delivery report announces: the Kannel dlr-url, the message's callback or
        the `report` webhook. Returns 1 if something was queued."""
        headers = event.headers
        if headers.get("Dlr_mask") is not None:
            value = _KANNEL_REPORT_EVENTS.get(event.status, KANNEL_BUFFERED)
            return await self._kannel(headers, value, event, text=f"{event.status} {event.tp_status}", delivery_id=delivery_id)
        url = headers.get("Callback") or self.report_url
        if not url:
            return 0
        await self.queue.enqueue(url, "report", report_payload(event), client=headers.get("Client"),
                                 delivery_id=delivery_id)
        return 1

    async def _kannel(
        self, headers: Headers, value: int, event: MessageSent | MessageFailed | ReportReceived, *, text: str,
        delivery_id: str | None = None
    ) -> int:
        """A Kannel dlr-url call, if the message's dlr-mask asks for this kind of event."""
        template = headers.get("Callback")
        try:
            mask = int(headers.get("Dlr_mask") or "0")
        except ValueError:
            return 0
        if not template or not mask & value:
            return 0
        values = kannel_values(
            value, to=getattr(event, "to", None), modem=getattr(event, "modem", None) or headers.get("Modem"),
            message_id=event.id, text=text, moment=datetime.now().astimezone(),
        )
        await self.queue.enqueue(kannel_dlr_url(template, values), "report", None, client=headers.get("Client"),
                                 method="GET", delivery_id=delivery_id)
        return 1


class WebhookService:
    """The webhooks of a running daemon: the durable queue in `<state>/webhooks/`, subscribed to
    the event bus, announcing what a crash left unannounced, following config reloads.

    The HTTP server starts one (gsmgw.http.server). A daemon that wants webhooks without an HTTP
    listener can start it itself (`await gsmgw.webhooks.start(ctx)`) and put it on `ctx.webhooks`;
    the HTTP server then uses that one instead of starting a second.
    """

    def __init__(self, ctx: GatewayContext, *, registry: Callable[[], ClientRegistry] | None = None):
        self.ctx = ctx
        self._registry_provider = registry
        self._registry: ClientRegistry | None = None
        self._config_seen: Any = None
        state = getattr(ctx.config, "state", None) or Path(ctx.spool.root) / ".state"
        self.queue = WebhookQueue(Path(state) / "webhooks")
        self._unsubscribe: Callable[[], None] | None = None

    def registry(self) -> ClientRegistry:
        if self._registry_provider is not None:
            return self._registry_provider()
        if self.ctx.config is not self._config_seen:
            self._registry = ClientRegistry.from_config(self.ctx.config)
            self._config_seen = self.ctx.config
        assert self._registry is not None
        return self._registry

    def settings(self) -> tuple[Any, ClientRegistry]:
        return getattr(self.ctx.config, "webhooks", None), self.registry()

    async def start(self) -> None:
        from gsmgw.http.spoolview import inbox_entry

        dispatcher = WebhookDispatcher(self.queue, *self.settings(), settings=self.settings)
        self.queue.route = dispatcher.route  # before start(): deliveries left from before a restart go at once
        await self.queue.start()
        bus = getattr(self.ctx, "bus", None)
        if bus is not None:
            self._unsubscribe = bus.subscribe(dispatcher)
        await dispatcher.catch_up(self.ctx.spool, lambda name, data: inbox_entry(name, data).message)

    def pending(self) -> int:
        return self.queue.pending()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.queue.close()


async def start(ctx: GatewayContext, *, registry: Callable[[], ClientRegistry] | None = None) -> WebhookService:
    """Start the daemon's webhooks (see WebhookService); `await service.close()` stops them."""
    service = WebhookService(ctx, registry=registry)
    await service.start()
    return service
