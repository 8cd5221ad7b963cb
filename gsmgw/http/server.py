"""The daemon's one HTTP server (aiohttp): REST API, Kannel URL, webhooks, /metrics, /healthz.

Entry point: `await start(ctx)` from the daemon's app.py; it returns the running `HttpServer`,
whose `close()` stops it. `ctx` is the daemon's GatewayContext; this module uses `config`,
`spool`, `bus`, `metrics` (gsmgw.daemon.metrics.Metrics), `status_snapshot()`,
`message_status(id)`, `wake()`, and, when present, `clients` (a shared
gsmgw.clients.ClientRegistry) and `webhooks` (a running gsmgw.webhooks service; otherwise the
server starts its own).

Routes (docs/api.md): POST /api/v1/messages, GET /api/v1/messages/{id}, GET /api/v1/inbox,
GET /api/v1/modems, GET|POST /cgi-bin/sendsms (Kannel), GET /healthz, GET /metrics, and
Alertmanager's routes from gsmgw.http.alertmanager when `alertmanager:` is configured, and the
web console's pages (gsmgw.web, WEB.md) at `/` when `web: {enabled: true}` is.

Acceptance is durable: a message's file is in outgoing/ (fsynced, renamed, directory fsynced)
before its 202. Requests of every door share the spool's one group commit (gsmgw.spool.commit).

Errors are JSON `{"error": "..."}` with docs/api.md's codes; Kannel's URL answers in Kannel's plain
lines. The access log never shows query strings, because Kannel clients put passwords there.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import math
import os
import re
import ssl
import time
from collections import Counter as Tally
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gsmgw import webhooks as webhook_service
from gsmgw.clients import Client, ClientConfigError, ClientRegistry, visibility
from gsmgw.http import kannel
from gsmgw.http.spoolview import Inbox, client_from_spool, parse_since, recipient_ids
from gsmgw.spool import message_status
from gsmgw.spool.commit import CommitError
from gsmgw.spool.format import DEFAULT_MAX_PARTS
from gsmgw.spool.journal import JournalUnavailable
from gsmgw.spool.message_status import valid_name
from gsmgw.http.submit import OverLimit, queue_for_client
from gsmgw.http.validation import (
    MAX_BODY_BYTES,
    ApiError,
    PreparedMessage,
    SendPolicy,
    SendRequest,
    check_callback,
    check_destinations,
    parse_json_body,
    parse_send_request,
    prepare_messages,
    retry_after_seconds,
)
from gsmgw.listen import ConnectionGuard, ConnectionLimits, cannot_listen, guarded_factory, server_tls
from gsmgw.webhooks import WebhookService
from gsmgw.ussd import USSD_TIMEOUT, UssdError

# UssdError kinds (gsmgw.ussd) -> HTTP status.
USSD_STATUSES = {"bad_code": 400, "unknown_modem": 404, "no_code": 409, "not_ready": 409, "timeout": 504, "modem": 502}

if TYPE_CHECKING:  # types only: the daemon hands the context over; the others load when configured (make_app)
    from gsmgw.daemon.context import GatewayContext
    from gsmgw.http.alertmanager import AlertmanagerService
    from gsmgw.web.app import Console

log = logging.getLogger("gsmgw.http")

DEFAULT_INBOX_LIMIT = 100
MAX_INBOX_LIMIT = 1000
READY_STATES = ("ready", "busy")
# Alertmanager payloads may be larger than a send request; our own handlers enforce 64 KiB.
APP_MAX_BODY = 1024 * 1024


# What a connection over the caps hears before it is closed (gsmgw.listen).
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: 62\r\n\r\n"
    b'{"error": "too many connections; try again in a few seconds"}\n'
)


class _GuardedRunner(web.AppRunner):
    """aiohttp's runner whose sites accept connections through a `gsmgw.listen` guard."""

    def __init__(self, app: web.Application, *, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._guard = guard

    @property
    def server(self) -> Any:
        inner = super().server
        return None if inner is None else guarded_factory(inner, self._guard, REFUSAL)


class HttpStartError(OSError):
    """The server cannot start (port taken, TLS files unreadable); the message says what to fix.

    An OSError, so the daemon's start-up reports it like other listener errors.
    """


class RedactingAccessLogger(AbstractAccessLogger):
    """Method, path without query string, status, time: Kannel passwords stay out of logs."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, duration: float) -> None:
        self.logger.debug(
            "%s %s %s %d %.1f ms", request.remote, request.method, request.path, response.status, duration * 1000
        )


class RedactSecrets(logging.Filter):
    """Blank Kannel passwords in aiohttp's own log records.

    aiohttp logs a request line it cannot parse (e.g. raw UTF-8 in a query string) with the
    whole line, and Kannel scripts put `password=` in it.
    """

    PATTERN = re.compile(r"((?:password|pass)=)[^&\s'\"]*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.PATTERN.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.PATTERN.sub(r"\1***", logging.Formatter().formatException(record.exc_info))
        return True


REDACT_SECRETS = RedactSecrets()
for _name in ("aiohttp.server", "aiohttp.access", "aiohttp.web"):
    if REDACT_SECRETS not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(REDACT_SECRETS)


class HttpCollector:
    """Prometheus series of the HTTP part: requests by route and code, webhooks waiting."""

    def __init__(self, server: "HttpServer"):
        self.server = server

    def describe(self) -> list:
        return []

    def collect(self):
        requests = CounterMetricFamily("gsmgw_http_requests", "HTTP requests answered", labels=["route", "code"])
        for (route, code), count in sorted(self.server.request_counts.items()):
            requests.add_metric([route, str(code)], count)
        yield requests
        accepted = CounterMetricFamily("gsmgw_http_messages_accepted", "Messages queued through HTTP", labels=[])
        accepted.add_metric([], self.server.accepted_total)
        yield accepted
        pending = GaugeMetricFamily("gsmgw_webhooks_pending", "Webhook deliveries waiting to succeed")
        pending.add_metric([], self.server.webhooks.pending() if self.server.webhooks else 0)
        yield pending


def _config_value(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default) if obj is not None else default


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def error_response(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gsmgw"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after_seconds(retry_after))
    return web.json_response({"error": message}, status=status, headers=headers)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the body is over {limit // 1024} KiB; send a shorter text or fewer recipients per request")


def check_declared_size(request: web.Request, limit: int = MAX_BODY_BYTES) -> None:
    """ApiError 413 when Content-Length already says the body is over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, or ApiError 413 as soon as it is known to be over `limit` bytes (also chunked)."""
    check_declared_size(request, limit)
    too_large = _too_large(limit)
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class HttpServer:
    def __init__(self, ctx: GatewayContext):
        self.ctx = ctx
        # Listener settings (listen, tls, metrics) are read once; a change needs a restart.
        self.config = ctx.config
        self.http_config = _config_value(self.config, "http")
        self.spool = ctx.spool
        self._config_seen: Any = None
        self._registry: ClientRegistry | None = None
        self._policy: SendPolicy | None = None
        try:
            self._refresh()
        except ClientConfigError as exc:
            raise HttpStartError(f"clients: {exc}") from None
        self.metrics_enabled = bool(_config_value(self.http_config, "metrics", True))
        self.inbox = Inbox(self.spool)
        self.webhooks: WebhookService | None = None
        self._own_webhooks = False
        self.request_counts: Tally[tuple[str, int]] = Tally()
        self.accepted_total = 0
        self._collector: HttpCollector | None = None
        self._runner: web.AppRunner | None = None
        self.sites: list[web.TCPSite] = []
        self.guard: ConnectionGuard | None = None  # set at start: the connection caps (gsmgw.listen)
        self.alertmanager: AlertmanagerService | None = None
        self.console: Console | None = None  # when web: {enabled: true}

    # --- configuration ----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Follow the daemon's config reloads (SIGHUP replaces ctx.config): clients, groups,
        modems and defaults of the new config apply to the next request."""
        config = self.ctx.config
        if config is self._config_seen:
            return
        registry = getattr(self.ctx, "clients", None)
        if registry is None:
            try:
                registry = ClientRegistry.from_config(config)
            except ClientConfigError as exc:
                if self._registry is None:
                    raise
                log.error("http: keeping the previous clients: the new config's clients cannot be used: %s", exc)
                self._config_seen = config
                return
            if self._registry is not None:
                registry.limiter = self._registry.limiter  # a reload does not reset anybody's limits
        defaults = _config_value(config, "defaults")
        self._policy = SendPolicy(
            default_country=_config_value(config, "default_country"),
            default_max_parts=int(_config_value(defaults, "max_parts", DEFAULT_MAX_PARTS) or DEFAULT_MAX_PARTS),
            modem_names=tuple(modem.name for modem in (_config_value(config, "modems", ()) or ())),
            defaults=defaults,
        )
        self._registry = registry
        self._config_seen = config

    @property
    def registry(self) -> ClientRegistry:
        self._refresh()
        assert self._registry is not None
        return self._registry

    @property
    def policy(self) -> SendPolicy:
        self._refresh()
        assert self._policy is not None
        return self._policy

    # --- life cycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=APP_MAX_BODY, middlewares=[self._errors])
        app.router.add_post("/api/v1/messages", self.post_messages)
        app.router.add_get("/api/v1/messages/{id}", self.get_message)
        app.router.add_get("/api/v1/inbox", self.get_inbox)
        app.router.add_get("/api/v1/modems", self.get_modems)
        app.router.add_post("/api/v1/modems/{name}/ussd", self.post_ussd)
        app.router.add_post("/api/v1/modems/{name}/balance", self.post_balance)
        app.router.add_route("GET", "/cgi-bin/sendsms", self.kannel_sendsms)
        app.router.add_route("POST", "/cgi-bin/sendsms", self.kannel_sendsms)
        if self.metrics_enabled:
            app.router.add_get("/healthz", self.get_healthz)
            app.router.add_get("/metrics", self.get_metrics)
        if _config_value(self.config, "alertmanager") is not None:
            from gsmgw.http.alertmanager import add_routes

            self.alertmanager = add_routes(app, self._alertmanager_context())
        web_config = _config_value(self.config, "web")
        if web_config is not None and web_config.enabled:
            if getattr(self.ctx, "index", None) is None:
                raise HttpStartError("the web console needs the daemon's message index; run it with `gsmgw run`")
            from gsmgw.web.app import Console

            self.console = Console(self, self.ctx)
            self.console.install(app)
        return app

    def _alertmanager_context(self) -> Any:
        ctx = self.ctx
        if getattr(ctx, "clients", None) is self.registry:
            return ctx

        class SharedRegistry:
            """The daemon's context, with this server's client registry (one set of limits)."""

            def __getattr__(self, name: str) -> Any:
                return getattr(ctx, name)

            clients = self.registry

        return SharedRegistry()

    def ssl_context(self) -> ssl.SSLContext | None:
        return server_tls(_config_value(self.http_config, "tls"), "http.tls", HttpStartError)

    async def start(self) -> None:
        host = _config_value(self.http_config, "listen_host", "127.0.0.1")
        port = int(_config_value(self.http_config, "listen_port", 8025))
        ssl_context = self.ssl_context()
        self.webhooks = getattr(self.ctx, "webhooks", None)
        if self.webhooks is None:
            self.webhooks = await webhook_service.start(self.ctx, registry=lambda: self.registry)
            self._own_webhooks = True
        registry = self._metrics_registry()
        if registry is not None:
            self._collector = HttpCollector(self)
            registry.register(self._collector)
        limits = ConnectionLimits(
            max_connections=int(_config_value(self.http_config, "max_connections", 1024)),
            max_per_address=int(_config_value(self.http_config, "max_connections_per_address", 128)),
            first_request_timeout=float(_config_value(self.http_config, "header_timeout", 10.0)),
        )
        self.guard = ConnectionGuard("http", limits, clock=time.monotonic)
        self._runner = _GuardedRunner(
            self.make_app(), guard=self.guard, access_log_class=RedactingAccessLogger, handle_signals=False,
            # A request's head must come within header_timeout of the previous answer too: an idle
            # or dribbling kept-alive connection does not hold a descriptor for long.
            keepalive_timeout=limits.first_request_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_address=True)
        try:
            try:
                await site.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not _config_value(self.http_config, "any_port_if_taken", False):
                    raise
                log.warning("http: %s:%d is taken; listening on another port", host, port)
                site = web.TCPSite(self._runner, host, 0, ssl_context=ssl_context, reuse_address=True)
                await site.start()
        except OSError as exc:
            await self.close()
            raise HttpStartError(cannot_listen("http.listen", host, port, exc,
                                               low_port_fix="use a port above 1024 or a reverse proxy")) from None
        self.sites.append(site)
        log.info("HTTP API listening on %s", self.url)

    @property
    def addresses(self) -> list[Any]:
        return list(self._runner.addresses) if self._runner else []

    @property
    def url(self) -> str:
        host, port = self.addresses[0][:2]
        scheme = "https" if _config_value(self.http_config, "tls") else "http"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.webhooks is not None and self._own_webhooks:
            await self.webhooks.close()
        registry = self._metrics_registry()
        if registry is not None and self._collector is not None:
            registry.unregister(self._collector)
            self._collector = None

    def _metrics_registry(self) -> CollectorRegistry | None:
        metrics = getattr(self.ctx, "metrics", None)
        return getattr(metrics, "registry", None) if metrics is not None else None

    # --- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.message, retry_after=exc.retry_after)
        except web.HTTPRequestEntityTooLarge:
            response = error_response(413, f"the body is over {MAX_BODY_BYTES // 1024} KiB; send less per request")
        except web.HTTPNotFound:
            response = error_response(404, f"no such resource {request.path!r}; the API is under /api/v1/ (messages, inbox, modems)")
        except web.HTTPMethodNotAllowed as exc:
            response = error_response(405, f"{request.method} is not allowed here; use {', '.join(sorted(exc.allowed_methods))}")
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason or "error")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            response = error_response(500, "internal error in gsmgw; the log has the details, please report it")
        self.request_counts[(route, response.status)] += 1
        return response

    def authenticate(self, request: web.Request) -> Client:
        header = request.headers.get("Authorization")
        if not header:
            raise ApiError(401, "no token: send the header 'Authorization: Bearer <token>' with your client's token")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer <token>'")
        client = self.registry.authenticate_token(token.strip())
        if client is None:
            raise ApiError(401, "the token is not valid; send the token from your client's token_file")
        return client

    async def queue(self, client: Client, request: SendRequest, now: datetime) -> list[dict[str, Any]]:
        """Check the callback, destinations and limits, write the files, and describe what was queued."""
        check_callback(client, request.callback)
        check_destinations(self.registry, client, request.recipients)
        prepared = prepare_messages(request, client_name=client.name, policy=self.policy, now=now)
        return await self.queue_prepared(client, prepared)

    async def queue_prepared(self, client: Client, prepared: list[PreparedMessage]) -> list[dict[str, Any]]:
        """Take room in the client's limits and write the checked files, all or none (every door
        that writes for a client ends here: the API, Kannel's URL, the console)."""
        try:
            names = await queue_for_client(self.registry, self.spool.committer, client, prepared)
        except OverLimit as over:
            limits = over.describe_limits()
            if math.isinf(over.wait):
                message = (f"this request needs {over.parts} SMS parts ({over.recipients} recipient(s)), more than "
                           f"client {client.name!r} may send at all ({limits} parts); split it into smaller requests")
            else:
                message = (f"client {client.name!r} is over its limit ({limits} parts); nothing was queued, "
                           f"try again in {retry_after_seconds(over.wait)} s")
            raise ApiError(429, message, retry_after=over.wait) from None
        except CommitError as exc:
            raise ApiError(503, str(exc)) from None
        self.accepted_total += len(names)
        wake = getattr(self.ctx, "wake", None)
        if wake is not None:
            wake()  # a hint only: the daemon's watcher notices the files anyway
        answers = []
        for name, queued in zip(names, prepared):
            answer = {"id": name, "to": queued.to, "parts": queued.parts, "alphabet": queued.alphabet}
            if queued.national is not None:
                answer["national"] = queued.national  # only where national tables carry the text
            answers.append({**answer, "status": "queued"})
        return answers

    # --- REST API ---------------------------------------------------------------------------

    async def post_messages(self, request: web.Request) -> web.Response:
        check_declared_size(request)  # 413 before anything else, whoever sends it
        client = self.authenticate(request)
        body = await read_body(request)
        now = datetime.now().astimezone()
        send = parse_send_request(parse_json_body(body), registry=self.registry, policy=self.policy, now=now,
                                  max_parts_cap=self.registry.max_parts_for(client))
        messages = await self.queue(client, send, now)
        return web.json_response({"messages": messages}, status=202)

    async def get_message(self, request: web.Request) -> web.Response:
        client = self.authenticate(request)
        name = request.match_info["id"]
        if not valid_name(name):
            raise ApiError(404, f"no message {name!r}; use an id from the answer to POST /api/v1/messages")
        unknown = ApiError(404, f"no message {name!r} in the spool; use an id from the answer to POST /api/v1/messages")
        scope = visibility(client)

        async def visible(message_id: str) -> bool:  # another client's message is answered as unknown
            return scope.everything or scope.sees_outbound(await self.message_client(message_id))

        status = None
        lookup = getattr(self.ctx, "message_status", None)
        if lookup is not None:
            status = await _resolve(lookup(name))
        if status is None:
            # A server without a daemon behind it (tests, or a daemon that does not know the
            # name): the spool's files alone.
            status = await asyncio.to_thread(message_status.lookup, name, journal=None, spool=self.spool)
        if status is None:
            split = [split_id for split_id in await asyncio.to_thread(recipient_ids, self.spool, name)
                     if await visible(split_id)]
            if split:
                raise ApiError(404, f"{name!r} had several recipients, so each has its own id: ask for "
                                    f"{', '.join(split)}")
            raise unknown
        if not (scope.everything or scope.sees_outbound(await self.message_client(name))):
            raise unknown
        return web.json_response(status.to_api())

    async def message_client(self, name: str) -> str | None:
        """The `Client:` of an outgoing message (the journal, which lives on the loop's thread,
        then its spool file)."""
        journal = getattr(self.ctx, "journal", None)
        try:
            row = journal.message(journal.key(name)) if journal is not None else None
        except JournalUnavailable:
            row = None  # a cluster's database is away: the spool file says it too
        if row is not None:
            return row.client
        return await asyncio.to_thread(client_from_spool, self.spool, name)

    async def get_inbox(self, request: web.Request) -> web.Response:
        client = self.authenticate(request)
        since_text = request.query.get("since")
        since = None
        if since_text:
            since = parse_since(since_text)
            if since is None:
                raise ApiError(400, f"since={since_text!r} is not an ISO-8601 time; send e.g. since=2026-11-24T10:15:00%2B01:00 (URL-encode the +) or Unix seconds")
        limit_text = request.query.get("limit")
        limit = DEFAULT_INBOX_LIMIT
        if limit_text:
            try:
                limit = int(limit_text)
            except ValueError:
                limit = 0
            if not 1 <= limit <= MAX_INBOX_LIMIT:
                raise ApiError(400, f"limit={limit_text!r} must be a whole number from 1 to {MAX_INBOX_LIMIT}")
        messages = await asyncio.to_thread(self.inbox.query, since, limit, visibility(client).sees_inbound)
        return web.json_response({"messages": messages})

    async def get_modems(self, request: web.Request) -> web.Response:
        self.authenticate(request)
        return web.json_response(await self.snapshot())

    async def post_ussd(self, request: web.Request) -> web.Response:
        """Run a USSD code on a modem (admin clients only: a code can change the SIM's services)."""
        client = self.authenticate(request)
        if not client.is_admin:
            raise ApiError(403, f"USSD is an admin action and client {client.name!r} has the role {client.role}; "
                                "give the client role: admin in the config, or use an admin client's token")
        fields = parse_json_body(await read_body(request))
        unknown = sorted(str(key) for key in fields if key not in ("code", "timeout"))
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}; send {{\"code\": \"*100#\"}}")
        timeout = fields.get("timeout", USSD_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 1 <= timeout <= 180:
            raise ApiError(400, '"timeout" must be a number of seconds from 1 to 180')
        answer = await self._ussd_call("ussd", request.match_info["name"], fields.get("code"), float(timeout))
        return web.json_response(answer.to_json())

    async def post_balance(self, request: web.Request) -> web.Response:
        """The modem's balance by its balance: code (admin and operator clients)."""
        client = self.authenticate(request)
        if not client.may_send:
            raise ApiError(403, f"client {client.name!r} has the role viewer; a balance check costs a USSD request of "
                                "the SIM: give the client role: operator or admin")
        balance = await self._ussd_call("balance", request.match_info["name"])
        return web.json_response(balance.to_json())

    async def _ussd_call(self, what: str, *args: Any) -> Any:
        function = getattr(self.ctx, what, None)
        if function is None:
            raise ApiError(503, "this process runs no modems; USSD works on the gateway daemon (gsmgw run)")
        try:
            return await function(*args)
        except UssdError as error:
            raise ApiError(USSD_STATUSES.get(error.kind, 502), str(error)) from None

    async def snapshot(self) -> dict[str, Any]:
        provider = getattr(self.ctx, "status_snapshot", None)
        if provider is None:
            return {"updated": None, "modems": [], "queue": {}}
        return await _resolve(provider())

    # --- Kannel -----------------------------------------------------------------------------

    async def kannel_sendsms(self, request: web.Request) -> web.Response:
        def answer(status: int, text: str, retry_after: float | None = None) -> web.Response:
            headers = {"Retry-After": str(retry_after_seconds(retry_after))} if retry_after is not None else None
            return web.Response(status=status, text=text, content_type="text/html", headers=headers)

        try:
            body = await read_body(request) if request.method == "POST" else b""
            query = request.rel_url.raw_query_string.encode("latin-1", "replace")
            params = kannel.collect_parameters(query, body, request.headers.get("Content-Type", ""), request.headers)
            username, password = kannel.credentials(params)
            client = self.registry.authenticate_password(username, password)
            if client is None:
                return answer(403, kannel.AUTH_FAILED)
            now = datetime.now().astimezone()
            send = kannel.parse_sendsms(params, registry=self.registry, policy=self.policy, now=now,
                                        max_parts_cap=self.registry.max_parts_for(client))
            try:
                await self.queue(client, send, now)
            except ApiError as exc:
                if exc.status == 403:
                    return answer(403, kannel.DENIED)
                if exc.status == 503:
                    return answer(503, f"Sending failed: {exc.message}")
                return answer(exc.status, exc.message, exc.retry_after)
        except ApiError as exc:
            return answer(exc.status, exc.message, exc.retry_after)
        except ValueError as exc:  # a query string that is not even form-encoded
            return answer(400, f"Malformed request ({exc}), rejected")
        return answer(202, kannel.ACCEPTED)

    # --- monitoring -------------------------------------------------------------------------

    async def get_healthz(self, request: web.Request) -> web.Response:
        reasons = await asyncio.to_thread(self._spool_problems)
        try:
            snapshot = await self.snapshot()
        except Exception as exc:  # a broken snapshot is a health problem, not a crash
            snapshot = {"modems": []}
            reasons.append(f"the modem status is unavailable: {exc}")
        journal = snapshot.get("journal")
        if journal and journal.get("state") != "ok":
            # A cluster's database is away: the doors still accept, nothing is sent (CLUSTER.md).
            reasons.append(f"{journal.get('state')}: {journal.get('reason')}")
        modems = snapshot.get("modems") or []
        ready = [modem.get("name") for modem in modems if modem.get("state") in READY_STATES]
        if not ready:
            states = ", ".join(f"{modem.get('name')}: {modem.get('state')}" for modem in modems) or "no modems configured"
            reasons.append(f"no modem is ready ({states})")
        if reasons:
            return web.json_response({"status": "unhealthy", "reason": "; ".join(reasons)}, status=503)
        return web.json_response({"status": "ok", "modems_ready": ready})

    def _spool_problems(self) -> list[str]:
        outgoing = self.spool.path("outgoing")
        if not os.access(outgoing, os.W_OK | os.X_OK):
            return [f"the spool directory {outgoing} is not writable"]
        try:
            stats = os.statvfs(outgoing)
        except OSError as exc:
            return [f"the spool directory {outgoing} cannot be checked: {exc.strerror}"]
        if stats.f_bavail * stats.f_frsize < 1024 * 1024 or (stats.f_files and stats.f_favail == 0):
            return [f"the file system of {outgoing} is full"]
        return []

    async def get_metrics(self, request: web.Request) -> web.Response:
        registry = self._metrics_registry()
        if registry is None:
            raise ApiError(503, "the daemon's metrics are not available in this process")
        if request.query.get("balance", "").lower() in ("1", "yes", "true"):
            # Asked for: each modem's balance (remembered for BALANCE_MAX_AGE, so a scrape every
            # 15 s costs one USSD request per modem and 5 minutes).
            balances = getattr(self.ctx, "balances", None)
            if balances is not None:
                await balances()
        metrics = getattr(self.ctx, "metrics", None)
        gauge = getattr(metrics, "queue_depth", None)
        if gauge is not None:
            # Fresh depths at scrape time; the daemon's periodic update may be seconds old.
            depths = await asyncio.to_thread(self.spool.depths)
            for directory, depth in depths.items():
                gauge.labels(directory).set(depth)
        output = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=output, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start(ctx: GatewayContext) -> HttpServer:
    """Start the HTTP server for the daemon; `await server.close()` stops it."""
    server = HttpServer(ctx)
    await server.start()
    return server
