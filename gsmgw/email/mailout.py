"""Mail out through a smarthost (EMAIL.md "Mail out"): inbound SMS, failures and reports as mail.

Reads: the daemon's event bus (`MessageReceived`, `MessageFailed`, `ReportReceived`); the spool
files they name (incoming/, failed/, report/, sent/) for what a restart must announce again and
for the text of a failed or reported SMS, through the seal (`ctx.spool.verified`, and the events'
verified `headers`): `Email_from:`, where failures and reports go, counts only in files the mail
door wrote, never in a hand-dropped one; `ctx.config.email_out` (re-read per delivery, so a
SIGHUP applies to the next attempt), `smtp.domains` and `modems[].email_to`.
Writes: the durable queue `<state>/mail-out/` (`gsmgw.durable_queue`, shared with webhooks):
one file per mail until the smarthost took it, `dead/` for mails given up, `done/` marks, and
the cursors `received.cursor`, `failed.cursor`, `report.cursor`.

Each SMS is mailed once: the mail's queue id is derived from the spool file it announces, a
restart announces again only what came after the cursors, and an id delivered in the last
`REMEMBER_DONE` is not queued again. The one window for a duplicate is between the smarthost's
`250` and the removal of the queue file (milliseconds).

Delivery: SMTP to `email_out.smarthost` with STARTTLS when offered (`tls: required`: never
without it), the smarthost's certificate checked against the system's CAs or `ca_file`, AUTH
when `user` is set. A 4xx answer or a connection problem is retried with backoff (1 min, 2, 4,
... at most 1 h) for `MAX_AGE` (2 days); a 5xx refusal of the mail is final (dead/ at once).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gsmgw.durable_queue import ANNOUNCED_FILE_LIMIT, Cursor, DurableQueue, GiveUp
from gsmgw.email.addresses import reply_address
from gsmgw.email.compose import OutgoingMail, domain_of, outcome_mail, received_mail
from gsmgw.email import H_EMAIL_FROM, H_EMAIL_MESSAGE_ID
from gsmgw.events import Event, MessageFailed, MessageReceived, ReportReceived
from gsmgw.spool.format import Headers
from gsmgw.spool.store import read_regular_file

if TYPE_CHECKING:  # the daemon hands it over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext

log = logging.getLogger("gsmgw.email")

QUEUE_DIRECTORY = "mail-out"
MAX_AGE = 2 * 86400.0
REMEMBER_DONE = 3 * 86400.0  # longer than MAX_AGE: a restart cannot bring back what was mailed
FIRST_DELAY = 60.0
MAX_DELAY = 3600.0
TIMEOUT = 30.0
CONCURRENCY = 2


@dataclass
class MailDelivery:
    """One mail waiting for the smarthost; this is what its queue file holds."""

    id: str
    sender: str
    recipients: list[str]
    message: str  # the mail, ASCII with CRLF (compose.py encodes everything else)
    subject: str
    created: float
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> "MailDelivery":
        fields = json.loads(data)
        return cls(**{key: fields[key] for key in cls.__dataclass_fields__ if key in fields})

    def describe(self) -> str:
        return f"mail {self.id} ({self.subject}) to {', '.join(self.recipients)}"


class SmtpFailure(Exception):
    """One attempt failed; `permanent` when the smarthost refused the mail for good (5xx)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def _describe_reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"


def send_mail(settings: Any, delivery: MailDelivery, *, timeout: float = TIMEOUT) -> None:
    """One SMTP session with the smarthost (blocking; runs in a worker thread). SmtpFailure says
    what went wrong and what to change."""
    host, port = settings.smarthost_host, settings.smarthost_port
    where = f"the smarthost {host}:{port}"
    try:
        context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise SmtpFailure(f"cannot read email_out.ca_file {settings.ca_file}: {exc}; give a PEM file of CA certificates")
    try:
        with smtplib.SMTP(host, port, timeout=timeout, local_hostname=socket.getfqdn()) as session:
            session.ehlo()
            if session.has_extn("starttls"):
                session.starttls(context=context)
                session.ehlo()
            elif settings.tls == "required":
                raise SmtpFailure(f"{where} does not offer STARTTLS and email_out.tls is required; enable TLS on "
                                  "the smarthost or set tls: auto")
            if settings.user:
                session.login(settings.user, settings.password or "")
            refused = session.sendmail(delivery.sender, delivery.recipients, delivery.message.encode("ascii"))
    except SmtpFailure:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpFailure(f"{where} refused the login of {settings.user!r} ({_describe_reply(exc.smtp_code, exc.smtp_error)}); "
                          "check email_out.user and password_file") from None
    except smtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{address}: {_describe_reply(code, text)}" for address, (code, text) in exc.recipients.items())
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        raise SmtpFailure(f"{where} refused every recipient ({replies}); check the addresses", permanent) from None
    except smtplib.SMTPSenderRefused as exc:
        raise SmtpFailure(f"{where} refused the sender {exc.sender} ({_describe_reply(exc.smtp_code, exc.smtp_error)}); "
                          "set email_out.from to an address the smarthost lets gsmgw use", exc.smtp_code >= 500) from None
    except smtplib.SMTPDataError as exc:
        raise SmtpFailure(f"{where} refused the mail ({_describe_reply(exc.smtp_code, exc.smtp_error)})",
                          exc.smtp_code >= 500) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SmtpFailure(f"{where}: {exc}; remove email_out.user if the smarthost takes mail without a login") from None
    except ssl.SSLCertVerificationError as exc:
        raise SmtpFailure(f"{where}: its certificate is not trusted ({exc.verify_message}); set email_out.ca_file to "
                          "the CA that signed it") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpFailure(f"{where}: {type(exc).__name__}: {exc}") from None
    for address, (code, text) in (refused or {}).items():
        log.warning("mail out: %s refused %s for %s: %s", where, address, delivery.id, _describe_reply(code, text))


class SmarthostQueue(DurableQueue[MailDelivery]):
    """The durable queue of mails, delivered by `send_mail` in threads of its own."""

    def __init__(self, directory: Path, settings: Callable[[], Any], *, clock: Callable[[], float] = time.time,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY, max_age: float = MAX_AGE,
                 timeout: float = TIMEOUT):
        super().__init__(directory, load=MailDelivery.from_bytes, name="mail-out", max_age=max_age,
                         first_delay=first_delay, max_delay=max_delay, concurrency=CONCURRENCY, clock=clock,
                         remember_done=REMEMBER_DONE)
        self.settings = settings
        self.timeout = timeout
        # SMTP sessions may wait `timeout` for a dead smarthost: not in the threads that write files.
        self._senders = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="gsmgw-mail-out")

    async def deliver(self, delivery: MailDelivery) -> str | GiveUp | None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._senders, lambda: send_mail(self.settings(), delivery, timeout=self.timeout))
        except SmtpFailure as failure:
            return GiveUp(str(failure)) if failure.permanent else str(failure)
        log.info("mail out: %s sent", delivery.describe())
        return None

    async def close(self) -> None:
        await super().close()
        self._senders.shutdown(wait=True)


@dataclass
class _Outcome:
    """What a failed/ or sent/ file says about one SMS, for its mail."""

    to: str
    text: str | None
    modem: str | None
    headers: Headers = field(default_factory=Headers)


def _read_outcome(spool: Any, path: str | None) -> _Outcome | None:
    """The outcome in a failed/ or sent/ file, its trusted headers (Email_from:...) only if the
    file was sealed by a door (`spool.verified`): a hand-dropped file names no mail sender."""
    if not path:
        return None
    try:
        spool_file = spool.verified(read_regular_file(path, ANNOUNCED_FILE_LIMIT))
    except (OSError, ValueError):
        return None  # gone, or an entry a claim set aside unread (a FIFO, a symlink, too large)
    headers = spool_file.headers
    text = spool_file.body.decode("utf-8", "replace").rstrip("\n") or None
    return _Outcome(headers.get("To") or "", text, headers.get("Modem"), headers)


def _parse_time(text: str | None) -> datetime:
    try:
        return datetime.fromisoformat(text) if text else datetime.now().astimezone()
    except ValueError:
        return datetime.now().astimezone()


class MailOut:
    """The daemon's mail out: the queue, subscribed to the bus, announcing what a crash left
    unannounced (see the module docstring)."""

    def __init__(self, ctx: GatewayContext, *, clock: Callable[[], float] = time.time, first_delay: float = FIRST_DELAY,
                 max_delay: float = MAX_DELAY, timeout: float = TIMEOUT):
        self.ctx = ctx
        self.started_with = ctx.config.email_out
        state = getattr(ctx.config, "state", None) or Path(ctx.spool.root) / ".state"
        self.queue = SmarthostQueue(Path(state) / QUEUE_DIRECTORY, self.settings, clock=clock,
                                    first_delay=first_delay, max_delay=max_delay, timeout=timeout)
        self.cursors: dict[str, Cursor] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._collector: MailOutCollector | None = None

    def settings(self) -> Any:
        # A reload that removed email_out: keeps mailing what is queued with the started settings.
        return self.ctx.config.email_out or self.started_with

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.queue.start()
        self.cursors = {kind: Cursor(self.queue.directory / f"{kind}.cursor", log) for kind in ("received", "failed", "report")}
        for cursor in self.cursors.values():
            await self.queue.in_thread(cursor.load, time.time_ns())
        bus = getattr(self.ctx, "bus", None)
        if bus is not None:
            self._unsubscribe = bus.subscribe(self.on_event)
        await self.catch_up()
        registry = getattr(getattr(self.ctx, "metrics", None), "registry", None)
        if registry is not None:
            self._collector = MailOutCollector(self.queue)
            registry.register(self._collector)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        registry = getattr(getattr(self.ctx, "metrics", None), "registry", None)
        if registry is not None and self._collector is not None:
            registry.unregister(self._collector)
            self._collector = None
        await self.queue.close()

    # --- what becomes a mail ------------------------------------------------------------------

    def _domain(self) -> str:
        smtp = getattr(self.ctx.config, "smtp", None)
        if smtp is not None and smtp.domains:
            return smtp.domains[0]
        return domain_of(self.settings().sender)

    def _received_recipients(self, modem: str) -> tuple[str, ...]:
        modem_config = self.ctx.config.modem(modem) if hasattr(self.ctx.config, "modem") else None
        email_to = getattr(modem_config, "email_to", None)
        if email_to:
            return tuple(email_to)
        return tuple(self.settings().received)

    def _contact_name(self, number: str) -> str | None:
        """The web console's name for `number` (its contacts, in the message index), if it has one.
        Blocking: called in the queue's thread."""
        index = getattr(self.ctx, "index", None)
        if index is None or not number:
            return None
        try:
            return index.contact_names([number]).get(number)
        except Exception as exc:  # noqa: BLE001 - SQLite or PostgreSQL: the mail names the number instead
            log.warning("mail out: cannot read the contact name of %s (%s); the mail names the number only", number, exc)
            return None

    def received(self, spool_id: str, fields: dict[str, Any]) -> OutgoingMail | None:
        """The mail of an inbound SMS (`fields`: the `received` webhook object), None if nobody gets it.
        Blocking (the contact name): called in the queue's thread."""
        recipients = self._received_recipients(fields.get("modem") or "")
        if not recipients:
            return None
        smtp = getattr(self.ctx.config, "smtp", None)
        sender = fields.get("from") or ""
        text, kind = fields.get("text") or "", None
        if fields.get("decode_error"):
            kind = "undecodable"
            text = f"gsmgw could not decode this SMS ({fields['decode_error']}); its PDU in hex:\n{text}"
        elif fields.get("binary"):
            kind = "binary"
            port = f", to port {fields['port']}" if fields.get("port") is not None else ""
            text = f"A binary SMS (8-bit data{port}); its octets in hex:\n{fields.get('data') or text}"
        return received_mail(
            spool_id=spool_id, sender=sender, sender_name=self._contact_name(sender), text=text,
            modem=fields.get("modem") or "",
            received=_parse_time(fields.get("received")), incomplete=bool(fields.get("incomplete")),
            from_header=self.settings().sender, recipients=recipients,
            reply_to=reply_address(sender, smtp.domains) if smtp is not None else None, domain=self._domain(),
            kind=kind,
        )

    def failed(self, spool_id: str, to: str | None, reason: str, path: str | None, headers: Headers) -> OutgoingMail | None:
        """The mail of a failed SMS: to `email_out.failed`, and with `report`, to the sender of the
        mail it came from."""
        settings = self.settings()
        outcome = _read_outcome(self.ctx.spool, path)
        known = (outcome.headers if outcome else Headers()).updated(headers.as_dict())  # the event's count
        recipients = list(settings.failed)
        mail_sender = known.get(H_EMAIL_FROM)
        if settings.report and mail_sender and mail_sender not in recipients:
            recipients.append(mail_sender)  # the sender of the mail hears of its SMS's end, like a bounce
        if not recipients:
            return None
        return outcome_mail(
            kind="failed", spool_id=spool_id, to=to or (outcome.to if outcome else ""), outcome="failed",
            detail=f"The SMS could not be sent: {reason}", text=outcome.text if outcome else None,
            modem=outcome.modem if outcome else None,
            answers=known.get(H_EMAIL_MESSAGE_ID),
            date=datetime.now().astimezone(), from_header=settings.sender, recipients=tuple(recipients),
            domain=self._domain(),
        )

    def report(self, report_name: str, event: Any) -> OutgoingMail | None:
        """A final delivery report, to the sender of the mail the SMS came from (`email_out.report`)."""
        settings = self.settings()
        mail_sender = event.headers.get(H_EMAIL_FROM)
        if not settings.report or not mail_sender or event.status == "pending":
            return None
        sent = _read_outcome(self.ctx.spool, str(self.ctx.spool.path("sent", event.id)))
        if event.status == "delivered":
            detail = f"The SMS was delivered to {event.to}" + (f" at {event.discharge}." if event.discharge else ".")
        else:
            detail = f"The SMS to {event.to} was not delivered: the network reported status {event.tp_status}."
        return outcome_mail(
            kind="report", spool_id=report_name, to=event.to, outcome=event.status, detail=detail,
            text=sent.text if sent else None, modem=event.modem, answers=event.headers.get(H_EMAIL_MESSAGE_ID),
            date=datetime.now().astimezone(), from_header=settings.sender, recipients=(mail_sender,),
            domain=self._domain(),
        )

    async def _enqueue(self, delivery_id: str, mail: OutgoingMail | None) -> None:
        if mail is None:
            return
        now = self.queue.clock()
        await self.queue.add(MailDelivery(
            id=delivery_id, sender=mail.sender, recipients=list(mail.recipients),
            message=mail.data.decode("ascii"), subject=mail.subject, created=now, next_at=now,
        ))

    async def on_event(self, event: Event) -> None:
        from gsmgw.webhooks import received_payload

        if isinstance(event, MessageReceived):
            mail = await self.queue.in_thread(self.received, event.id, received_payload(event))
            await self._enqueue(f"received-{event.id}", mail)
            await self.queue.in_thread(self.cursors["received"].advance_to_file, event.path)
        elif isinstance(event, MessageFailed):
            mail = await self.queue.in_thread(self.failed, event.id, event.to, event.reason, event.path, event.headers)
            await self._enqueue(f"failed-{event.id}", mail)
            await self.queue.in_thread(self.cursors["failed"].advance_to_file, event.path)
        elif isinstance(event, ReportReceived) and event.report_path:
            report_name = os.path.basename(event.report_path)
            mail = await self.queue.in_thread(self.report, report_name, event)
            await self._enqueue(f"report-{report_name}", mail)
            await self.queue.in_thread(self.cursors["report"].advance_to_file, event.report_path)

    async def catch_up(self) -> int:
        """Mail what incoming/, failed/ and report/ got after the cursors (a crash between the
        file and its event, or between the event and the queue). Returns how many were looked at."""
        from gsmgw.http.spoolview import inbox_entry
        from gsmgw.webhooks import report_event_from_spool

        spool = self.ctx.spool
        seen = 0
        for mtime_ns, name, data in await self.queue.in_thread(self.cursors["received"].files_after, spool.path("incoming")):
            try:
                fields = inbox_entry(name, data).message
            except ValueError as exc:
                log.warning("mail out: cannot announce incoming/%s: %s", name, exc)
                continue
            await self._enqueue(f"received-{name}", await self.queue.in_thread(self.received, name, fields))
            await self.queue.in_thread(self.cursors["received"].advance, mtime_ns)
            seen += 1
        for mtime_ns, name, data in await self.queue.in_thread(self.cursors["failed"].files_after, spool.path("failed")):
            try:
                headers = spool.verified(data).headers
            except ValueError as exc:
                log.warning("mail out: cannot announce failed/%s: %s", name, exc)
                continue
            path = str(spool.path("failed", name))
            mail = await self.queue.in_thread(self.failed, name, headers.get("To"),
                                              headers.get("Fail_reason") or "unknown", path, headers)
            await self._enqueue(f"failed-{name}", mail)
            await self.queue.in_thread(self.cursors["failed"].advance, mtime_ns)
            seen += 1
        for mtime_ns, name, data in await self.queue.in_thread(self.cursors["report"].files_after, spool.path("report")):
            try:
                event = await self.queue.in_thread(report_event_from_spool, spool, name, data)
            except ValueError as exc:
                log.warning("mail out: cannot announce report/%s: %s", name, exc)
                continue
            if event is not None:  # None: the report matched no message, so nobody is told of it
                await self._enqueue(f"report-{name}", await self.queue.in_thread(self.report, name, event))
            await self.queue.in_thread(self.cursors["report"].advance, mtime_ns)
            seen += 1
        return seen


class MailOutCollector:
    """Prometheus series of mail out: sent, waiting, retrying, given up."""

    def __init__(self, queue: SmarthostQueue):
        self.queue = queue

    def describe(self) -> list:
        return []

    def collect(self):
        sent = CounterMetricFamily("gsmgw_mail_sent", "Mails the smarthost took", labels=[])
        sent.add_metric([], self.queue.delivered_total)
        yield sent
        dead = CounterMetricFamily("gsmgw_mail_given_up", "Mails given up (refused, or too old); kept in mail-out/dead/",
                                   labels=[])
        dead.add_metric([], self.queue.dead_total)
        yield dead
        pending = GaugeMetricFamily("gsmgw_mail_queued", "Mails waiting for the smarthost")
        pending.add_metric([], self.queue.pending())
        yield pending
        retrying = GaugeMetricFamily("gsmgw_mail_retrying", "Mails waiting for a retry after a failed attempt")
        retrying.add_metric([], self.queue.retrying())
        yield retrying


async def start(ctx: GatewayContext, **options: Any) -> MailOut:
    """Start mail out for `ctx.config.email_out`; `await service.close()` stops it."""
    service = MailOut(ctx, **options)
    await service.start()
    return service
