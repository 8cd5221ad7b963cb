"""The SMTP listener (EMAIL.md "Mail in"): mail to `+4915112345678@sms.example.org` becomes SMS.

I/O only: the decisions are in the pure modules (`parse`: the text of a mail; `addresses`:
recipients and which client a transaction belongs to) and in `gsmgw.clients` (AUTH,
allow/deny, limits), the same rules as HTTP and SMPP.

Reads: SMTP connections on `smtp.listen` (aiosmtpd >= 1.4.6 on the daemon's loop; STARTTLS with
`smtp.tls`); `ctx.config` (smtp, groups, defaults, default_country; re-read per transaction, so a
SIGHUP applies to the next mail) and `ctx.clients`.
Writes: one outgoing/ file per recipient number, with `Client:`, `Email_from:` (the envelope
sender), `Email_message_id:` and `Queued:`, through what every door that writes for a client
uses (`gsmgw.http.submit.queue_for_client`: the client's limits count the SMS parts, then the
spool's group commit that every door shares, `spool.committer`: all files of a mail or none).
`250` is answered only when every file is durable in outgoing/. A text is cut to the client's
`max_parts` (`ClientRegistry.max_parts_for`, as in every door).

Answers, each with a text that says what to change: `250` queued; `550 5.1.1`/`5.1.2` a recipient
that is no number or group, or not in `smtp.domains`; `550 5.7.1` a recipient the client's
allow/deny excludes, or an unknown sender; `550 5.6.0` a mail with no readable text; `552` over
`smtp.max_size`; `451` when the spool cannot be written or the client is over its limits; `421`
while the daemon stops. A mail with several recipients is queued for all or for none: when one
recipient was refused, DATA is refused too.

Trust: everything from the peer is data. AUTH is offered only under TLS or to a peer on
loopback. Bare LF (or CR) in the data is refused, so `\\n.\\r\\n` cannot smuggle a second mail
past another server (aiosmtpd >= 1.4.5 ends DATA only at CRLF.CRLF). A session is closed after
`max_errors` refused commands (a pipelined RCPT flood), `max_auth_failures` wrong passwords,
`smtp.timeout` seconds without a complete command (one byte a second), or `lifetime` seconds in all;
at most `smtp.max_connections` sessions are served at once, `smtp.max_connections_per_address`
from one address (gsmgw.listen's ConnectionGuard, as HTTP and SMPP). An exception in one session answers
`451` to that session alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import math
import ssl
import time
from collections import ChainMap, Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword
from prometheus_client.core import CounterMetricFamily

from gsmgw.clients import Client, ClientConfigError, ClientRegistry, peer_address
from gsmgw.email import H_EMAIL_FROM, H_EMAIL_MESSAGE_ID
from gsmgw.email.addresses import Refusal, resolve_recipient, sender_client
from gsmgw.email.parse import UnreadableMail, message_text, parse_mail
from gsmgw.http.submit import OverLimit, queue_for_client
from gsmgw.listen import ConnectionGuard, ConnectionLimits, cannot_listen, server_tls
from gsmgw.listen import peer_address as transport_peer
from gsmgw.http.validation import ApiError, SendPolicy, SendRequest, check_text, prepare_messages, retry_after_seconds
from gsmgw.spool.commit import CommitError

if TYPE_CHECKING:  # the daemon hands it over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext

log = logging.getLogger("gsmgw.email")
# aiosmtpd logs every command at INFO; at hundreds of mails a second that is noise (and time).
logging.getLogger("mail.log").setLevel(logging.WARNING)


# A mail this large is parsed in a worker thread, so other sessions are not held up meanwhile.
PARSE_INLINE_BYTES = 64 * 1024
# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF.
MAX_REPLY = 510


class ListenerStartError(OSError):
    """The listener cannot start (port taken, TLS files unreadable); the message says what to fix."""


@dataclass(frozen=True)
class SessionLimits:
    """How much one SMTP session may take (see the module docstring); `timeout` None: smtp.timeout."""

    timeout: float | None = None
    lifetime: float = 600.0
    max_recipients: int = 100
    max_errors: int = 20
    max_auth_failures: int = 3


@dataclass
class _Transaction:
    client: Client
    mail_from: str
    numbers: dict[str, str] = field(default_factory=dict)  # E.164 -> the address that named it
    refused: tuple[str, Refusal] | None = None  # the first refused recipient


@dataclass
class _Connection:
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    opened: float
    admitted: bool = True  # within the ConnectionGuard's caps
    errors: int = 0
    auth_failures: int = 0
    greeted: bool = False
    hang_up: bool = False
    transaction: _Transaction | None = None


def _stock_replies(max_size: int) -> dict[str, str]:
    """aiosmtpd's own answers, said so that a user knows what to change."""
    too_big = (f"552 5.3.4 the mail is over {max_size} bytes (smtp.max_size); send a shorter mail, "
               "without attachments")
    return {
        "552 Error: Too much mail data": too_big,
        "552 Error: message size exceeds fixed maximum message size": too_big,
        "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 a line of the mail is over 1000 characters "
        "(RFC 5321 4.5.3.1.6); send long lines quoted-printable",
        "503 Error: need MAIL command": "503 5.5.1 send MAIL FROM:<your address> first",
        "503 Error: need RCPT command": "503 5.5.1 no recipient was accepted; send RCPT TO:<+4915112345678@domain> first",
        "503 Error: send HELO first": "503 5.5.1 send EHLO first",
        "503 Error: send EHLO first": "503 5.5.1 send EHLO first",
        "503 Error: nested MAIL command": "503 5.5.1 a mail is already begun; finish it or send RSET",
        "500 Error: strict ASCII mode": "500 5.6.7 this server takes ASCII commands only; write the address in ASCII",
        "535 5.7.8 Authentication credentials invalid": "535 5.7.8 wrong user or password; use the user and the "
        "password of clients[].smtp",
    }


def _connection(server: GatewaySMTP) -> _Connection:
    """A connection's state; connection_made sets it before any command is read."""
    if server.state is None:
        raise RuntimeError("an SMTP command arrived before its connection was made")
    return server.state


class GatewaySMTP(SMTP):
    """aiosmtpd's protocol with gsmgw's session limits: the greeting and every answer pass here."""

    def __init__(self, door: "SmtpDoor", **options: Any) -> None:
        super().__init__(door, **options)
        self.door = door
        self.address = "unknown"
        self.state: _Connection | None = None
        self._lifetime: asyncio.TimerHandle | None = None
        self._replies = _stock_replies(options.get("data_size_limit") or 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # connection_made runs again after STARTTLS
        super().connection_made(transport)
        if first:
            self.address = transport_peer(transport)
            self.state = _Connection(peer_address(self.address), time.monotonic(),
                                     admitted=self.door.guard.admit(self.address))
            self.door.opened(self)
            self._lifetime = self.loop.call_later(self.door.limits.lifetime, self._too_long)

    def connection_lost(self, error: Exception | None) -> None:
        if self._lifetime is not None:
            self._lifetime.cancel()
        if self.state is not None and self.state.admitted:
            self.state.admitted = False
            self.door.guard.release(self.address)
        self.door.closed(self)
        super().connection_lost(error)

    def _too_long(self) -> None:
        log.info("smtp %s: closing a session older than %.0f s", self.state.peer if self.state else "?",
                 self.door.limits.lifetime)
        if self.transport is not None:
            self.transport.close()

    async def push(self, status: Any) -> None:
        state = self.state
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
        if state is not None and not state.greeted:
            state.greeted = True
            refusal = self.door.refuse_session(self)
            if refusal is not None:
                text, state.hang_up = refusal, True
        text = self._replies.get(text, text)
        if len(text) > MAX_REPLY:
            text = text[: MAX_REPLY - 3] + "..."
        await super().push(text.encode("ascii", "replace").decode("ascii"))
        if state is None:
            return
        code = text[:3]
        if code[:1] in ("4", "5") and code != "421":
            state.errors += 1
            self.door.count_refusal(code)
            if state.errors >= self.door.limits.max_errors and not state.hang_up:
                state.hang_up = True
                await super().push(f"421 4.7.0 {state.errors} commands refused in this session; closing it. "
                                   "Fix what the answers said and connect again")
        if state.hang_up and self.transport is not None:
            self.transport.close()


class SmtpDoor:
    """aiosmtpd's handler: one method per SMTP command (`handle_*`) and the AUTH check."""

    def __init__(self, ctx: GatewayContext, limits: SessionLimits):
        smtp = ctx.config.smtp
        if smtp is None:
            raise ListenerStartError("smtp: is not in the config; add it (docs/config.md) to start the mail door")
        self.ctx = ctx
        self.started_with = smtp
        self.limits = limits
        self.guard = ConnectionGuard("smtp", ConnectionLimits(smtp.max_connections, smtp.max_connections_per_address,
                                                              smtp.timeout), clock=time.monotonic)
        self.sessions: set[GatewaySMTP] = set()
        self.accepted_mails = 0
        self.queued_sms = 0
        self.refusals: Counter[str] = Counter()
        self._registry: ClientRegistry | None = None
        self._registry_config: Any = None

    # --- the current rules --------------------------------------------------------------------

    @property
    def config(self) -> Any:
        return self.ctx.config

    @property
    def smtp(self) -> Any:
        # A reload that removed smtp: stops nothing until the restart; the started settings go on.
        return self.ctx.config.smtp or self.started_with

    def registry(self) -> ClientRegistry:
        shared = getattr(self.ctx, "clients", None)
        if shared is not None:
            return shared
        if self._registry is None or self._registry_config is not self.ctx.config:
            try:
                registry = ClientRegistry.from_config(self.ctx.config)
            except ClientConfigError as exc:
                if self._registry is None:
                    raise
                log.error("smtp: keeping the previous clients: the new config's clients cannot be used: %s", exc)
                self._registry_config = self.ctx.config
                return self._registry
            if self._registry is not None:
                registry.limiter = self._registry.limiter  # a reload does not reset anybody's limits
            self._registry, self._registry_config = registry, self.ctx.config
        return self._registry

    def stopping(self) -> bool:
        event = getattr(self.ctx, "stopping", None)
        return bool(event is not None and event.is_set())

    # --- sessions -----------------------------------------------------------------------------

    def opened(self, session: GatewaySMTP) -> None:
        self.sessions.add(session)

    def closed(self, session: GatewaySMTP) -> None:
        self.sessions.discard(session)

    def refuse_session(self, session: GatewaySMTP) -> str | None:
        """The answer instead of the greeting, when this session is not served."""
        if self.stopping():
            return "421 4.3.2 gsmgw is stopping; send the mail again in a minute"
        if session.state is not None and not session.state.admitted:
            return ("421 4.7.0 too many sessions are open (from your address, or in all: smtp.max_connections); "
                    "try again in a minute")
        return None

    def count_refusal(self, code: str) -> None:
        self.refusals[code] += 1

    @staticmethod
    def _loopback(server: GatewaySMTP) -> bool:
        return bool(server.state and server.state.peer and server.state.peer.is_loopback)

    def _may_auth(self, server: GatewaySMTP, session: Any) -> bool:
        return session.ssl is not None or self._loopback(server)

    def _stop_answer(self, server: GatewaySMTP) -> str | None:
        if not self.stopping():
            return None
        if server.state is not None:
            server.state.hang_up = True
        return "421 4.3.2 gsmgw is stopping; send the mail again in a minute"

    # --- commands -----------------------------------------------------------------------------

    async def handle_EHLO(self, server: GatewaySMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        stop = self._stop_answer(server)
        if stop:
            return [stop]
        session.host_name = hostname
        _connection(server).transaction = None
        if not self._may_auth(server, session):
            responses = [line for line in responses if not line[4:].startswith("AUTH")]
        return responses

    async def handle_HELO(self, server: GatewaySMTP, session: Any, envelope: Any, hostname: str) -> str:
        stop = self._stop_answer(server)
        if stop:
            return stop
        session.host_name = hostname
        _connection(server).transaction = None
        return f"250 {server.hostname}"

    async def handle_NOOP(self, server: GatewaySMTP, session: Any, envelope: Any, arg: str) -> str:
        return self._stop_answer(server) or "250 2.0.0 OK"

    async def handle_AUTH(self, server: GatewaySMTP, session: Any, envelope: Any, args: list[str]) -> Any:
        if not self._may_auth(server, session):
            return ("538 5.7.11 AUTH needs an encrypted connection from another machine; send STARTTLS first "
                    "(smtp.tls must be configured)")
        return MISSING

    def authenticate(self, server: GatewaySMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        """aiosmtpd's authenticator: PLAIN and LOGIN give a user and a password."""
        client = None
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            client = self.registry().authenticate_smtp(user, password)
        if client is not None:
            return AuthResult(success=True, auth_data=client)
        state = server.state
        if state is not None:
            state.auth_failures += 1
            if state.auth_failures >= self.limits.max_auth_failures:
                state.hang_up = True
        log.warning("smtp %s: AUTH %s failed", state.peer if state else "?", mechanism)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 wrong user or password; use the user and the password of clients[].smtp")

    async def handle_MAIL(self, server: GatewaySMTP, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        stop = self._stop_answer(server)
        if stop:
            return stop
        state = _connection(server)
        authenticated = session.auth_data if session.authenticated else None
        try:
            client = sender_client(
                self.registry(), authenticated=authenticated, peer=state.peer,
                trusted_networks=_networks(self.smtp.trusted_networks), mail_from=address,
            )
        except Refusal as refusal:
            log.info("smtp %s: MAIL FROM:<%s> refused: %s", state.peer, address, refusal.text)
            return refusal.reply
        state.transaction = _Transaction(client, address)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 sender ok"

    async def handle_RCPT(self, server: GatewaySMTP, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        stop = self._stop_answer(server)
        if stop:
            return stop
        transaction = _connection(server).transaction
        if transaction is None:
            return "503 5.5.1 send MAIL FROM:<your address> first"
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return (f"452 4.5.3 at most {self.limits.max_recipients} recipients per mail; send the others in "
                    "another mail")
        registry = self.registry()
        try:
            # `oncall@…` names a group of the config or of the console, as group:NAME does in every door.
            groups = ChainMap(registry.groups, getattr(registry, "console_groups", {}))
            recipient = resolve_recipient(address, domains=self.smtp.domains, groups=groups,
                                          default_country=self.config.default_country)
            for number in recipient.numbers:
                verdict = registry.check_destination(transaction.client, number)
                if not verdict.allowed:
                    raise Refusal(550, "5.7.1", f"{verdict.reason}; remove <{address}> or ask the gateway's admin "
                                                "to change the client's rules")
        except Refusal as refusal:
            if transaction.refused is None:
                transaction.refused = (address, refusal)
            return refusal.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        for number in recipient.numbers:
            transaction.numbers.setdefault(number, address)
        what = f"group {recipient.group}: {len(recipient.numbers)} SMS" if recipient.group else recipient.numbers[0]
        return f"250 2.1.5 {what}"

    async def handle_RSET(self, server: GatewaySMTP, session: Any, envelope: Any) -> str:
        _connection(server).transaction = None
        return "250 2.0.0 OK"

    async def handle_DATA(self, server: GatewaySMTP, session: Any, envelope: Any) -> str:
        transaction, _connection(server).transaction = _connection(server).transaction, None
        stop = self._stop_answer(server)
        if stop:
            return stop
        if transaction is None or not transaction.numbers:
            return "503 5.5.1 no recipient was accepted; send RCPT TO:<+4915112345678@domain> first"
        if transaction.refused is not None:
            address, refusal = transaction.refused
            return (f"{refusal.code} {refusal.status} nothing was queued, because <{address}> was refused: "
                    f"{refusal.text}")
        content: bytes = envelope.original_content or b""
        if content.count(b"\n") != content.count(b"\r\n") or content.count(b"\r") != content.count(b"\r\n"):
            return ("550 5.6.2 the mail has a line ending in a bare LF or CR, nothing was queued; SMTP needs CRLF "
                    "line ends (RFC 5321 2.3.8); from Python's smtplib use send_message(), or sendmail() with a str")
        try:
            if len(content) > PARSE_INLINE_BYTES:
                parsed = await asyncio.to_thread(parse_mail, content)
            else:
                parsed = parse_mail(content)
            if parsed.from_gateway:
                return ("554 5.4.6 this is a mail gsmgw sent (it has X-Gsmgw-Id): a loop; do not forward "
                        "gsmgw's mails to SMS addresses, reply to them instead")
            text = message_text(parsed, self.smtp.text, self._max_parts(transaction.client),
                                 getattr(self.config.defaults, "national_languages", ()))
        except UnreadableMail as refusal:
            return f"550 5.6.0 {refusal}; nothing was queued"
        for note in parsed.notes:
            log.info("smtp %s: mail from <%s>: %s", _connection(server).peer, transaction.mail_from, note)
        return await self._queue(transaction, parsed.message_id, text, parsed.priority)

    def _max_parts(self, client: Client) -> int:
        return self.registry().max_parts_for(client)

    async def _queue(self, transaction: _Transaction, message_id: str | None, text: str,
                     priority: str | None = None) -> str:
        """Write one file per number, all or none; the answer to DATA."""
        client = transaction.client
        registry = self.registry()
        now = datetime.now().astimezone()
        max_parts = self._max_parts(client)
        policy = SendPolicy(default_country=self.config.default_country, default_max_parts=max_parts,
                            defaults=self.config.defaults)
        mail_headers = {H_EMAIL_FROM: transaction.mail_from}
        if message_id:
            mail_headers[H_EMAIL_MESSAGE_ID] = message_id
        try:
            parts, alphabet = check_text(text, max_parts,
                                         national_languages=getattr(self.config.defaults, "national_languages", ()))
            request = SendRequest(recipients=tuple(transaction.numbers), text=text, parts=parts, alphabet=alphabet,
                                  max_parts=max_parts if max_parts != self.config.defaults.max_parts else None,
                                  priority=priority)
            prepared = prepare_messages(request, client_name=client.name, policy=policy, now=now, headers=mail_headers)
        except ApiError as exc:
            return f"554 5.6.0 {exc.message}; nothing was queued"
        try:
            names = await queue_for_client(registry, self.ctx.spool.committer, client, prepared)
        except OverLimit as over:
            if math.isinf(over.wait):
                return (f"552 5.5.3 this mail makes {over.parts} SMS parts for {over.recipients} recipient(s), more "
                        f"than client {client.name!r} may send at all ({over.describe_limits()} parts); send it to "
                        "fewer recipients, or shorter")
            return (f"451 4.7.1 client {client.name!r} is over its limits ({over.describe_limits()} parts); nothing "
                    f"was queued, send the mail again in {retry_after_seconds(over.wait)} s")
        except CommitError as exc:
            return f"451 4.3.0 {exc}"
        self.accepted_mails += 1
        self.queued_sms += len(names)
        wake = getattr(self.ctx, "wake", None)
        if wake is not None:
            wake()
        log.info("smtp: mail from <%s> (client %s) queued as %s", transaction.mail_from, client.name, ", ".join(names))
        first = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
        return f"250 2.0.0 queued {len(names)} SMS as {first}"

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp: a session failed: %r", error, exc_info=error)
        return "451 4.3.0 internal error in gsmgw; send the mail again later (the log has the details)"


def _networks(values: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(str(value), strict=False) for value in values or ())


class SmtpCollector:
    """Prometheus series of the listener: mails accepted and refused (by reply code), SMS queued."""

    def __init__(self, door: SmtpDoor):
        self.door = door

    def describe(self) -> list:
        return []

    def collect(self):
        accepted = CounterMetricFamily("gsmgw_mail_accepted", "Mails accepted by the SMTP listener", labels=[])
        accepted.add_metric([], self.door.accepted_mails)
        yield accepted
        queued = CounterMetricFamily("gsmgw_mail_sms_queued", "SMS queued from mails (one per recipient number)", labels=[])
        queued.add_metric([], self.door.queued_sms)
        yield queued
        refused = CounterMetricFamily("gsmgw_mail_refused", "SMTP commands refused, by reply code", labels=["code"])
        for code, count in sorted(self.door.refusals.items()):
            refused.add_metric([code], count)
        yield refused


class SmtpListener:
    def __init__(self, ctx: GatewayContext, limits: SessionLimits | None = None):
        smtp = ctx.config.smtp
        if smtp is None:
            raise ListenerStartError("smtp: is not in the config; add it (docs/config.md) to start the mail door")
        self.ctx = ctx
        self.smtp_config = smtp  # listen and tls are read once; a change needs a restart
        limits = limits or SessionLimits()
        if limits.timeout is None:
            limits = dataclasses.replace(limits, timeout=smtp.timeout)
        self.limits = limits
        self.door = SmtpDoor(ctx, self.limits)
        self.door.registry()  # a config whose clients cannot be used stops the start, with the reason
        self._server: asyncio.base_events.Server | None = None
        self._tls: ssl.SSLContext | None = None
        self._collector: SmtpCollector | None = None

    def _protocol(self) -> GatewaySMTP:
        smtp = self.ctx.config.smtp or self.smtp_config
        return GatewaySMTP(
            self.door,
            data_size_limit=smtp.max_size,
            hostname=(self.smtp_config.domains or ("gsmgw",))[0],
            ident="ESMTP gsmgw",
            tls_context=self._tls,
            timeout=self.limits.timeout,
            auth_require_tls=False,  # SmtpDoor decides: under TLS, or from loopback
            authenticator=self.door.authenticate,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        self._tls = server_tls(self.smtp_config.tls, "smtp.tls", ListenerStartError)
        host, port = self.smtp_config.listen_host, self.smtp_config.listen_port
        try:
            self._server = await asyncio.get_running_loop().create_server(self._protocol, host, port, reuse_address=True)
        except OSError as exc:
            raise ListenerStartError(cannot_listen(
                "smtp.listen", host, port, exc, low_port_fix="use 2525 and point the devices there")) from None
        registry = self._metrics_registry()
        if registry is not None:
            self._collector = SmtpCollector(self.door)
            registry.register(self._collector)
        log.info("SMTP listening on %s for %s", self.address_text, ", ".join(self.smtp_config.domains))

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def address_text(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _metrics_registry(self) -> Any:
        metrics = getattr(self.ctx, "metrics", None)
        return getattr(metrics, "registry", None) if metrics is not None else None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in list(self.door.sessions):
                if session.transport is not None:
                    session.transport.close()
            await self._server.wait_closed()
            self._server = None
        registry = self._metrics_registry()
        if registry is not None and self._collector is not None:
            registry.unregister(self._collector)
            self._collector = None


async def start(ctx: GatewayContext, *, limits: SessionLimits | None = None) -> SmtpListener:
    """Start the SMTP listener of `ctx.config.smtp`; `await listener.close()` stops it."""
    listener = SmtpListener(ctx, limits)
    await listener.start()
    return listener
