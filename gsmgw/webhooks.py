"""Webhooks out: POST JSON for received messages and delivery reports, at least once (API.md).

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

Signature: `X-Gsmgw-Signature` is the lowercase hex HMAC-SHA256 of the exact body bytes, keyed
with the client's token (reports of messages a client submitted) or with `webhooks.secret`.

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
import time
import urllib.parse
import uuid
from datetime import datetime
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from gsmgw.clients import ClientRegistry
from gsmgw.spool.format import read_spool_file
from gsmgw.durable_queue import Cursor, DurableQueue, write_private

log = logging.getLogger("gsmgw.webhooks")

SIGNATURE_HEADER = "X-Gsmgw-Signature"
EVENT_HEADER = "X-Gsmgw-Event"
DELIVERY_HEADER = "X-Gsmgw-Delivery"


def sign(body: bytes, key: str) -> str:
    """Lowercase hex HMAC-SHA256 of `body` with `key` (UTF-8), as sent in X-Gsmgw-Signature."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass
class Delivery:
    """One webhook POST waiting to succeed; this is what its file holds."""

    id: str
    url: str
    event: str
    body: str  # the exact JSON text that is signed and sent
    signature: str | None
    created: float
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None
    method: str = "POST"  # "GET" for Kannel dlr-urls: no body, everything is in the URL

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
    request with a timeout; any 2xx answer delivers it, anything else is retried."""

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
    ):
        super().__init__(directory, load=Delivery.from_bytes, name="webhooks", max_age=max_age,
                         first_delay=first_delay, max_delay=max_delay, concurrency=concurrency, clock=clock)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "gsmgw-webhooks"},
        )
        await super().start()

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            await self._session.close()

    async def enqueue(
        self,
        url: str,
        event: str,
        payload: Mapping[str, Any] | None,
        key: str | None,
        *,
        method: str = "POST",
        delivery_id: str | None = None,
    ) -> str:
        """Store a delivery durably and schedule it; returns its id (X-Gsmgw-Delivery).

        `method` "GET" sends no body (payload None): the URL says everything (Kannel dlr-urls).
        A `delivery_id` derived from what is announced makes a repeated enqueue the same delivery.
        """
        body = encode_body(payload) if payload is not None else b""
        now = self.clock()
        delivery = Delivery(
            id=delivery_id or uuid.uuid4().hex,
            url=url,
            event=event,
            body=body.decode("utf-8"),
            signature=sign(body, key) if key and payload is not None else None,
            created=now,
            next_at=now,
            method=method,
        )
        if delivery.id in self._deliveries:
            # The same id again (a report announced twice): the newer content replaces the older.
            await self.in_thread(write_private, self.path(delivery.id), delivery.to_bytes())
            self._schedule(delivery)
        else:
            await self.add(delivery)
        return delivery.id

    async def deliver(self, delivery: Delivery) -> str | None:
        """One request; None on 2xx, else words for the log saying what went wrong."""
        assert self._session is not None
        headers = {EVENT_HEADER: delivery.event, DELIVERY_HEADER: delivery.id}
        if delivery.method == "POST":
            headers["Content-Type"] = "application/json; charset=utf-8"
        if delivery.signature:
            headers[SIGNATURE_HEADER] = delivery.signature
        try:
            url = URL(delivery.url, encoded=True)  # sent as written: escapes were filled in, quoted
            data = delivery.body.encode("utf-8") if delivery.method == "POST" else None
            async with self._session.request(delivery.method, url, data=data, headers=headers) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status} {response.reason or ''}".strip()
        except asyncio.TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"


def delivery_id_for(kind: str, file_name: str) -> str:
    """The delivery id of the webhook announcing a spool file: stable across restarts."""
    return f"{kind}-{file_name}"


def report_event_from_files(report_name: str, report: bytes, sent: bytes | None, report_path: str) -> Any:
    """The ReportReceived event a report/ file stands for (to announce it after a restart)."""
    from gsmgw.daemon.events import ReportReceived

    report_headers = read_spool_file(report).headers
    sent_headers = read_spool_file(sent).headers if sent is not None else None
    whole = ((sent_headers.get("Status") if sent_headers else None) or report_headers.get("Status") or "").split()
    own = (report_headers.get("Status") or "").split()
    ids_text = (sent_headers.get("Message_id") if sent_headers else None) or report_headers.get("Message_id") or ""
    status = whole[0].lower() if whole else "pending"
    return ReportReceived(
        id=report_headers.get("Sent_file") or report_name,
        to=report_headers.get("From") or "",
        status=status,
        delivered=status == "delivered",
        message_ids=tuple(int(item) for item in ids_text.split(",") if item.strip().isdigit()),
        report_path=report_path,
        modem=report_headers.get("Modem") or "",
        discharge=report_headers.get("Discharge"),
        tp_status=int(own[1]) if len(own) > 1 and own[1].isdigit() else -1,
        headers=sent_headers.as_dict() if sent_headers else {},
    )


def received_payload(event: Any) -> dict[str, Any]:
    """The `received` webhook body (API.md) from a `MessageReceived` event."""
    return {
        "id": event.id,
        "from": event.sender,
        "text": event.text,
        "modem": event.modem,
        "sent": event.sent,
        "received": event.received,
        "parts": event.parts,
        "incomplete": bool(event.incomplete),
    }


def report_payload(event: Any) -> dict[str, Any]:
    """The `report` webhook body (API.md) from a `ReportReceived` event.

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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


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
                await self.queue.enqueue(self.received_url, "received", payload, self.default_key(),
                                         delivery_id=delivery_id_for("received", name))
                await self.queue.in_thread(self.cursors["received"].advance, mtime_ns)
                queued += 1
        for mtime_ns, name, data in await self.queue.in_thread(self.cursors["report"].files_after, spool.path("report")):
            try:
                event = await self.queue.in_thread(self._report_event, spool, name, data)
            except ValueError as exc:
                log.warning("webhooks: cannot announce report/%s: %s", name, exc)
                continue
            queued += await self._report(event, delivery_id=delivery_id_for("report", name))
            await self.queue.in_thread(self.cursors["report"].advance, mtime_ns)
        if queued:
            log.info("webhooks: queued %d webhook(s) for messages not announced before the restart", queued)
        return queued

    @staticmethod
    def _report_event(spool: Any, name: str, data: bytes) -> Any:
        sent_name = read_spool_file(data).headers.get("Sent_file")
        sent = None
        if sent_name:
            try:
                sent = spool.read("sent", sent_name)
            except (OSError, ValueError):
                sent = None
        return report_event_from_files(name, data, sent, str(spool.path("report", name)))

    def _apply(self, webhooks_config: Any, registry: ClientRegistry) -> None:
        self.received_url = getattr(webhooks_config, "received", None) if webhooks_config else None
        self.report_url = getattr(webhooks_config, "report", None) if webhooks_config else None
        self.secret = getattr(webhooks_config, "secret", None) if webhooks_config else None
        self.registry = registry

    def default_key(self) -> str | None:
        """`webhooks.secret`, else the token of the first client that has one."""
        if self.secret:
            return self.secret
        for client in self.registry.clients:
            if client.token:
                return client.token
        return None

    def key_for_client(self, client_name: str | None) -> str | None:
        client = self.registry.by_name(client_name) if client_name else None
        if client is not None and client.token:
            return client.token
        return self.default_key()

    async def __call__(self, event: Any) -> None:
        if self.settings is not None:
            self._apply(*self.settings())
        kind = type(event).__name__
        headers = getattr(event, "headers", None) or {}
        if kind == "MessageReceived":
            if self.received_url:
                await self.queue.enqueue(
                    self.received_url, "received", received_payload(event), self.default_key(),
                    delivery_id=delivery_id_for("received", event.id),
                )
                if "received" in self.cursors:
                    await self.queue.in_thread(self.cursors["received"].advance_to_file, event.path)
        elif kind == "ReportReceived":
            report_name = os.path.basename(event.report_path) if event.report_path else None
            await self._report(event, delivery_id=delivery_id_for("report", report_name) if report_name else None)
            if "report" in self.cursors and event.report_path:
                await self.queue.in_thread(self.cursors["report"].advance_to_file, event.report_path)
        elif kind == "MessageSent" and _header(headers, "Dlr_mask") is not None:
            await self._kannel(headers, KANNEL_SENT, event, text="sent")
        elif kind == "MessageFailed" and _header(headers, "Dlr_mask") is not None:
            await self._kannel(headers, KANNEL_REJECTED, event, text=event.reason)

    async def _report(self, event: Any, *, delivery_id: str | None = None) -> int:
        """Queue what a delivery report announces: the Kannel dlr-url, the message's callback or
        the `report` webhook. Returns 1 if something was queued."""
        headers = getattr(event, "headers", None) or {}
        if _header(headers, "Dlr_mask") is not None:
            value = _KANNEL_REPORT_EVENTS.get(event.status, KANNEL_BUFFERED)
            return await self._kannel(headers, value, event, text=f"{event.status} {event.tp_status}", delivery_id=delivery_id)
        url = _header(headers, "Callback") or self.report_url
        if not url:
            return 0
        key = self.key_for_client(_header(headers, "Client"))
        await self.queue.enqueue(url, "report", report_payload(event), key, delivery_id=delivery_id)
        return 1

    async def _kannel(
        self, headers: Mapping[str, str], value: int, event: Any, *, text: str, delivery_id: str | None = None
    ) -> int:
        """A Kannel dlr-url call, if the message's dlr-mask asks for this kind of event."""
        template = _header(headers, "Callback")
        try:
            mask = int(_header(headers, "Dlr_mask") or "0")
        except ValueError:
            return 0
        if not template or not mask & value:
            return 0
        values = kannel_values(
            value, to=getattr(event, "to", None), modem=getattr(event, "modem", None) or _header(headers, "Modem"),
            message_id=event.id, text=text, moment=datetime.now().astimezone(),
        )
        await self.queue.enqueue(kannel_dlr_url(template, values), "report", None, None, method="GET", delivery_id=delivery_id)
        return 1


class WebhookService:
    """The webhooks of a running daemon: the durable queue in `<state>/webhooks/`, subscribed to
    the event bus, announcing what a crash left unannounced, following config reloads.

    The HTTP server starts one (gsmgw.http.server). A daemon that wants webhooks without an HTTP
    listener can start it itself (`await gsmgw.webhooks.start(ctx)`) and put it on `ctx.webhooks`;
    the HTTP server then uses that one instead of starting a second.
    """

    def __init__(self, ctx: Any, *, registry: Callable[[], ClientRegistry] | None = None):
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

        await self.queue.start()
        dispatcher = WebhookDispatcher(self.queue, *self.settings(), settings=self.settings)
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


async def start(ctx: Any, *, registry: Callable[[], ClientRegistry] | None = None) -> WebhookService:
    """Start the daemon's webhooks (see WebhookService); `await service.close()` stops them."""
    service = WebhookService(ctx, registry=registry)
    await service.start()
    return service
