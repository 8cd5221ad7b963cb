"""Outgoing messages from file to result: claim, queue, dispatch, finish, recover.

What it reads: files in outgoing/ (untrusted; `Spool.claim` never follows a symlink) and the
journal. What it writes: checked/ (one file per recipient), sent/ and failed/ (through
`Spool.finish`: temporary name, fsync, rename, fsync of the directory), and the journal.

The durable steps of a message, each one committed before the next starts:
  1. outgoing/X -> checked/X by one rename (`Spool.claim`);
  2. for several recipients, checked/X.1, X.2 ... are written, then journal rows are added,
     then checked/X is removed (a crash in between repeats the expansion: same names, same
     content, and `add_messages` keeps rows that exist);
  3. journal rows for the message and its PDUs (queued);
  4. per part: `submitting` committed, then `AT+CMGS`, then the MR committed (worker.py);
  5. checked/X -> sent/X with the MRs, then the journal says `sent`.
A file that cannot be sent goes to failed/ with a reason that says what to fix; nothing here
stops the daemon.

At start (`recover`), postfix-style: our stale temporary files are removed; a file in both
checked/ and sent|failed/ keeps the target; parts that were `submitting` are logged as possible
duplicates and sent again; files in checked/ that the journal does not know are queued; journal
rows without a file are settled from sent/ or failed/, or dropped with a log line; messages with
every part submitted are finished.

The dispatcher is the loop that asks the pool (pool.py) which idle modem takes which message. A
wake-up (a new file, a modem becoming free) is a hint; each round scans the journal, which is the
truth, so hints may be lost or repeated.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from gsmgw.config import SendingConfig
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.daemon.optout import OptOutList, opted_out_reason
from gsmgw.daemon.pool import DAY, MINUTE, ModemView, Usage, plan
from gsmgw.events import MessageFailed, MessageQueued, MessageSent
from gsmgw.sms import encode_submit
from gsmgw.spool import journal as J
from gsmgw.spool.format import (
    TRUSTED_HEADERS,
    Headers,
    SpoolFormatError,
    build_failed,
    build_sent,
    parse_outgoing,
    read_spool_file,
    recipient_name,
    single_recipient,
    update_headers,
)
from gsmgw.spool.journal import Fenced, Journal, JournalUnavailable, MessageRow, NewMessage, NewPart, QueuedMessage, key_name
from gsmgw.spool.message_status import EXPIRED_REASON, delivery
from gsmgw.spool.store import Rejected, Spool

log = logging.getLogger("gsmgw.outbound")

# Each candidate costs a count of its pending parts, and a round usually needs about as many as
# there are idle modems (it runs between two submits of a modem): the first page is small, later
# ones double, up to CANDIDATE_ROWS queued rows looked at per round.
CANDIDATE_FIRST_PAGE = 16
CANDIDATE_PAGE = 1000
CANDIDATE_ROWS = 10_000
ACCEPT_BATCH = 200


def _aware(now: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(now).astimezone()


def _ts(moment: _dt.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


@dataclass(frozen=True)
class SendSettings:
    """What outbound needs from the config (kept small so tests can build it)."""

    default_country: str | None
    defaults: object | None
    groups: Mapping[str, tuple[str, ...]]
    modem_names: tuple[str, ...]
    # Cluster: asks the journal whether another member has a modem of this name (one that
    # joined after the last look); None on a single host.
    other_modem: Callable[[str], bool] | None = None
    sending: SendingConfig = field(default_factory=SendingConfig)  # retries and rests (workers read it)


class Outbound:
    def __init__(
        self,
        spool: Spool,
        journal: Journal,
        bus: EventBus | None,
        settings: SendSettings,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.time,
        on_queued: Callable[[], None] | None = None,
    ):
        self.spool = spool
        self.journal = journal
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.on_queued = on_queued or (lambda: None)
        self.optouts: OptOutList | None = None  # set by the daemon; campaign messages to them fail

    def _publish(self, event) -> None:
        if self.bus is not None:
            try:
                self.bus.publish(event)
            except RuntimeError:
                pass  # no running loop (recovery in a test without one): nobody listens yet

    # -- claiming -----------------------------------------------------------------------------

    def accept(self, names: Iterable[str]) -> int:
        """Claim and queue files from outgoing/; returns how many messages were queued."""
        return self.accept_until(names, deadline=None)[1]

    def accept_until(self, names: Iterable[str], *, deadline: float | None) -> tuple[int, int]:
        """Claim and queue files from outgoing/ until `deadline` (time.monotonic()) has passed;
        returns (names taken from `names`, messages queued). The caller gives the rest again.

        Claims are committed to the journal in batches of ACCEPT_BATCH: one transaction (one
        fsync) for many files, and a flood of 100,000 files never sits in memory at once. A
        crash between a claim and its commit leaves the file in checked/, which `recover`
        queues."""
        queued: list[tuple[NewMessage, Headers]] = []
        originals: list[str] = []
        count = 0
        consumed = 0
        for name in names:
            if deadline is not None and consumed and time.monotonic() >= deadline:
                break
            consumed += 1
            try:
                claimed = self.spool.claim(name)
            except OSError as error:
                log.error("%s: cannot claim from outgoing/: %s; check the file's permissions", name, error)
                continue
            if claimed is None:
                continue
            if isinstance(claimed, Rejected):
                self._rejected(claimed)
                continue
            messages, original = self._prepare_one(claimed.name, claimed.data, claimed.mtime)
            queued.extend(messages)
            if original:
                originals.append(original)
            if len(queued) >= ACCEPT_BATCH:
                count += self._commit(queued, originals)
                queued, originals = [], []
        return consumed, count + self._commit(queued, originals)

    def _commit(self, queued, originals) -> int:
        if not queued and not originals:
            return 0
        now = self.clock()
        added = set(self.journal.add_messages([m for m, _ in queued], now))
        for original in originals:
            self.spool.remove("checked", original)
        for message, headers in queued:
            if message.id in added:
                log.info(
                    "%s: queued for %s, %d part%s%s",
                    message.id, message.recipient, len(message.parts), "" if len(message.parts) == 1 else "s",
                    f", pinned to {message.pinned}" if message.pinned else "",
                )
                self._publish(MessageQueued(key_name(message.id), message.recipient, len(message.parts), headers))
        if added:
            self.on_queued()
        return len(added)

    def _rejected(self, rejected: Rejected) -> None:
        now = self.clock()
        self.journal.record_invalid(now)
        if self.metrics:
            self.metrics.failed.inc()
        log.warning("%s: moved to failed/ unread: %s", rejected.name, rejected.reason)
        self._publish(
            MessageFailed(rejected.name, None, rejected.reason, str(self.spool.path("failed", rejected.name)))
        )

    def _prepare_one(
        self, name: str, data: bytes, mtime: _dt.datetime | None, *, recovering: bool = False
    ) -> tuple[list[tuple[NewMessage, Headers]], str | None]:
        """`_prepare`, where an error of this one file stops nothing but this file: it goes to
        failed/ with the error as its reason, and the claim or the recovery goes on with the
        next file. OSError is not the file's fault (a full disk): the caller deals with it."""
        try:
            return self._prepare(name, data, mtime, recovering=recovering)
        except OSError:
            raise
        except Exception as error:  # noqa: BLE001 - the per-file boundary: any bug, logged, file kept
            log.exception("%s: reading this file failed; moving it to failed/", name)
            self._set_aside(
                "checked", name, data,
                f"gsmgw could not read this file ({type(error).__name__}: {error}); this is a bug in gsmgw: "
                "please report it with this file",
            )
            return [], None

    def _set_aside(self, dirname: str, name: str, data: bytes | None, reason: str) -> None:
        """Move a file that cannot be queued to failed/: with Failed:/Fail_reason: headers when
        that can be done, else exactly as it is (the reason is then only in the log)."""
        if data is not None:
            try:
                self._fail_unqueued(name, data, reason, src=dirname)
                return
            except OSError:
                raise
            except Exception:  # noqa: BLE001 - the failed/ file itself cannot be built: keep the original
                log.exception("%s: cannot add Fail_reason: to it; moving it to failed/ as it is", name)
        rejected = self.spool.set_aside(dirname, name, reason)
        if rejected is not None:
            self._rejected(rejected)

    def _prepare(
        self, name: str, data: bytes, mtime: _dt.datetime | None, *, recovering: bool = False
    ) -> tuple[list[tuple[NewMessage, Headers]], str | None]:
        """Parse a file now in checked/; fail it, or return its messages (and the original's name
        when it was expanded into one file per recipient).

        `recovering`: the original is still in checked/ after a stop, so its expansion may have
        been done already: a recipient's file the journal knows, or that reached sent/ or
        failed/, is left alone."""
        now = self.clock()
        settings = self.settings
        try:
            parsed = _parse(data, settings, now, mtime, self.spool.seal_key)
        except SpoolFormatError as error:
            self._fail_unqueued(name, data, error.reason)
            return [], None
        if parsed.ignored:
            log.warning(
                "%s: ignored %s: only files that gsmgw's own doors (HTTP, SMPP...) wrote may carry them, "
                "and this one has no valid seal; it is sent as a plain file",
                name, ", ".join(f"{header}:" for header in parsed.ignored),
            )
        if parsed.modem is not None and parsed.modem not in settings.modem_names and not (
            settings.other_modem is not None and settings.other_modem(parsed.modem)
        ):
            configured = ", ".join(settings.modem_names) or "none"
            self._fail_unqueued(
                name, data,
                f"Modem: {parsed.modem} is not a configured modem (configured: {configured}); "
                f"correct the name or remove the Modem:/Queue: line",
            )
            return [], None
        recipients = parsed.recipients
        if len(recipients) == 1:
            files = [(name, data, recipients[0])]
            original = None
        else:
            files = []
            trusted = any(parsed.headers.get(name) is not None for name in TRUSTED_HEADERS)
            for n, number in enumerate(recipients, 1):
                child = recipient_name(name, n)
                if recovering and (
                    self.journal.message(self.journal.key(child)) is not None
                    or self.spool.exists("sent", child)
                    or self.spool.exists("failed", child)
                ):
                    continue
                child_data = single_recipient(data, number)
                if trusted:
                    child_data = self.spool.seal(child_data)  # its To: changed; what it may do did not
                self.spool.write_atomic("checked", child, child_data)
                files.append((child, child_data, number))
            original = name
            log.info("%s: %d recipients, one message each: %s.1 .. .%d", name, len(recipients), name, len(recipients))
        headers = parsed.headers
        campaign = headers.get("Campaign")
        messages: list[tuple[NewMessage, Headers]] = []
        for file_name, _file_data, number in files:
            opted_out = self.optouts.get(number) if campaign and self.optouts is not None else None
            if opted_out is not None:
                self._fail_unqueued(file_name, _file_data, opted_out_reason(opted_out[0]))
                continue
            try:
                parts = encode_submit(
                    number,
                    None if parsed.binary else parsed.text,
                    data=parsed.data,
                    udh=parsed.udh,
                    message_class=parsed.message_class,
                    report=parsed.report,
                    flash=parsed.flash,
                    validity=parsed.validity,
                    ref=secrets.randbelow(256),
                    smsc=parsed.smsc,
                    max_parts=parsed.max_parts,
                    national_languages=getattr(settings.defaults, "national_languages", ()),
                )
            except ValueError as error:
                self._fail_unqueued(file_name, _file_data, f"cannot encode the message: {error}")
                continue
            message = NewMessage(
                id=self.journal.key(file_name),
                recipient=number,
                parts=[NewPart(p.seq, p.pdu, p.length) for p in parts],
                priority=J.PRIORITY[parsed.priority],
                send_after=_ts(parsed.send_after),
                expires=_ts(parsed.expires),
                pinned=parsed.modem,
                report=parsed.report,
                client=headers.get("Client"),
                callback=headers.get("Callback"),
            )
            messages.append((message, headers.updated({"To": number})))
        return messages, original

    def _fail_unqueued(self, name: str, data: bytes, reason: str, *, src: str = "checked") -> None:
        now = self.clock()
        content = build_failed(data, failed=_aware(now), reason=reason, attempts=0)
        self.spool.finish(name, "failed", content, src=src)
        self.journal.record_invalid(now)
        if self.metrics:
            self.metrics.failed.inc()
        log.warning("%s: failed: %s", name, reason)
        to = None
        try:
            to = read_spool_file(data).headers.get("To")
        except (SpoolFormatError, ValueError):
            pass  # an unreadable file is failed for that reason already; its event has to=None
        self._publish(MessageFailed(name, to, reason, str(self.spool.path("failed", name))))

    # -- results ------------------------------------------------------------------------------

    def finish_sent(self, message_id: str, modem: str, imsi: str | None, row: MessageRow | None = None) -> str | None:
        """All parts have an MR. On the message's origin: checked/ -> sent/ with the docs/spool.md
        headers, then the journal. Sent for another member's spool: the journal only; that
        member writes its sent/ file (`file_results`). Returns the sent/ path written, if any.
        `row`: the message's row as the caller read it (its origin and name do not change)."""
        now = self.clock()
        if row is None:
            row = self.journal.message(message_id)
        if row is None:
            log.error("%s: sent via %s, but the journal no longer knows it", message_id, modem)
            return None
        if row.origin != self.journal.member:
            self.journal.mark_sent(message_id, modem, imsi, now, filed=False)
            if self.metrics:
                self.metrics.sent.labels(modem).inc()
            log.info("%s: sent via %s to %s; its origin %s writes the sent/ file", message_id, modem,
                     row.recipient, row.origin)
            return None
        path = self._write_sent(row, modem, imsi, now)
        self.journal.mark_sent(message_id, modem, imsi, now)
        if self.metrics:
            self.metrics.sent.labels(modem).inc()
        return path

    def _write_sent(self, row: MessageRow, modem: str, imsi: str | None, now: float) -> str | None:
        """Write sent/<name> of this host's message from its journal rows, and announce it."""
        name = row.name
        parts = self.journal.parts(row.id)
        try:
            original = self.spool.read("checked", name)
        except FileNotFoundError:
            if self.spool.exists("sent", name):
                return str(self.spool.path("sent", name))
            log.error("%s: sent, but its file vanished from checked/; the journal keeps the record", name)
            return None
        # Every part of a sent message has its TP-MR (recorded with +CMGS: <mr>).
        message_ids = tuple(p.mr for p in parts if p.mr is not None)
        content = build_sent(
            original,
            modem=modem,
            imsi=imsi,
            sent=_aware(max((p.submitted or now) for p in parts) if parts else now),
            parts=len(parts),
            message_ids=message_ids,
        )
        early = delivery(parts)  # reports that beat the last part
        if early is not None:
            content = update_headers(content, early.sent_file_headers())
        self.spool.finish(name, "sent", content)
        mrs = ",".join(str(mr) for mr in message_ids)
        log.info("%s: sent via %s to %s, %d part(s), MR %s", name, modem, row.recipient, len(parts), mrs)
        path = str(self.spool.path("sent", name))
        self._publish(
            MessageSent(
                id=name,
                to=row.recipient,
                modem=modem,
                imsi=imsi,
                message_ids=message_ids,
                path=path,
                headers=self.spool.verified(content).headers,
            )
        )
        return path

    def finish_failed(
        self, message_id: str, reason: str, *, modem: str | None = None, expired: bool = False
    ) -> None:
        """To failed/ on the message's origin; for another member's spool the journal only."""
        now = self.clock()
        row = self.journal.message(message_id)
        state = J.EXPIRED if expired else J.FAILED
        if row is not None and row.origin != self.journal.member:
            self.journal.mark_failed(message_id, reason, now, state=state, modem=modem, filed=False)
            if self.metrics:
                self.metrics.failed.inc()
            log.warning("%s: failed after %d attempt(s): %s; its origin %s writes the failed/ file",
                        message_id, row.attempts, reason, row.origin)
            return
        self._write_failed(key_name(message_id), row, reason, expired, now)
        self.journal.mark_failed(message_id, reason, now, state=state, modem=modem)
        if self.metrics:
            self.metrics.failed.inc()

    def _write_failed(self, name: str, row: MessageRow | None, reason: str, expired: bool, now: float) -> None:
        attempts = row.attempts if row else 0
        try:
            original = self.spool.read("checked", name)
        except FileNotFoundError:
            original = None
        headers = Headers()
        if original is not None:
            content = build_failed(original, failed=_aware(now), reason=reason, attempts=attempts)
            self.spool.finish(name, "failed", content)
            headers = self.spool.verified(content).headers
        elif not self.spool.exists("failed", name):
            log.error("%s: failed, but its file vanished from checked/", name)
        log.warning("%s: failed after %d attempt(s): %s", name, attempts, reason)
        self._publish(
            MessageFailed(
                name, row.recipient if row else None, reason,
                str(self.spool.path("failed", name)), headers, expired=expired,
            )
        )

    def cancel(self, message_id: str, reason: str) -> str | None:
        """Move a queued message that no modem has started on to failed/ with `reason`; returns
        None, or why it cannot be cancelled. Runs on the loop's thread, like the dispatcher, so no
        modem can take the message between the check and the move."""
        key = self.journal.key(message_id)
        row = self.journal.message(key)
        if row is None:
            if self.spool.exists("outgoing", message_id):
                return "the gateway has not taken it from outgoing/ yet; try again in a moment"
            return "it is not waiting to be sent (it was sent, failed, or does not exist)"
        if row.state != J.QUEUED:
            return f"it is {row.state if row.state != J.SENDING else 'being sent right now'}"
        if any(part.state != J.PART_PENDING for part in self.journal.parts(key)):
            return "some of its parts have already been sent"
        self.finish_failed(key, reason)
        return None

    def file_result(self, row: MessageRow) -> None:
        """Cluster: write the sent/ or failed/ file of this host's message that another member
        finished (or ours whose filing a stop interrupted). The caller marks it filed after; a
        crash before that finds the file written (sent/ or failed/ has it, checked/ not) and
        only marks it."""
        now = self.clock()
        if row.state in (J.SENT, J.DELIVERED):
            self._write_sent(row, row.modem or "", row.imsi, row.sent or now)
        else:
            self._write_failed(row.name, row, row.fail_reason or "failed", row.state == J.EXPIRED, row.finished or now)

    def expire(self) -> int:
        """Queued messages past their `Expires:` go to failed/ with reason `expired`."""
        now = self.clock()
        count = 0
        while True:
            ids = self.journal.expired(now)
            if not ids:
                return count
            for message_id in ids:
                self.finish_failed(message_id, EXPIRED_REASON, expired=True)
                count += 1

    # -- restart ------------------------------------------------------------------------------

    def recover(self) -> None:
        left = set(self.spool.recover(now=self.clock()))
        found = self.journal.recover()
        for message_id, seq in found.possible_duplicates:
            log.warning(
                "possible duplicate: %s part %d was being submitted when gsmgw stopped; it is sent again",
                message_id, seq,
            )
        for message_id in found.requeued:
            log.info("%s: was being sent when gsmgw stopped; queued again", message_id)
        # Journal rows whose file is no longer in checked/.
        for message_id in list(self.journal.messages_in_state(J.QUEUED)):
            name = key_name(message_id)
            if name in left:
                continue
            row = self.journal.message(message_id)
            if row is None:
                continue  # messages_in_state listed it: only a prune between the two removes it
            if self.spool.exists("sent", name):
                parts = self.journal.parts(message_id)
                modem = next((p.modem for p in parts if p.modem), row.bound_modem or "")
                self.journal.mark_sent(message_id, modem, row.bound_imsi, self.clock())
                log.info("%s: found in sent/; journal updated", message_id)
            elif self.spool.exists("failed", name):
                self.journal.mark_failed(message_id, row.last_error or "failed", self.clock())
                log.info("%s: found in failed/; journal updated", message_id)
            else:
                log.warning("%s: in the journal but its file is gone from checked/ (removed by hand?); dropped", message_id)
                self.journal.forget(message_id)
        self.adopt(left)
        self.finish_fully_submitted()

    def adopt(self, names: Iterable[str]) -> None:
        """Files in checked/ the journal does not know: claimed, then a crash (or, in a cluster,
        the database's going away) before the journal had them. They are queued now."""
        queued, originals = [], []
        for name in sorted(names):
            known = self.journal.message(self.journal.key(name))
            if known is not None and (known.state not in J.FINAL_STATES or not known.filed):
                # Queued or being sent: the journal has it. Or finished by another member, and
                # its result file not written yet (file_results writes it).
                continue
            # Unknown, or a finished message's name reused by a new file (spool.recover already
            # removed checked/ copies of files that reached sent/ or failed/).
            try:
                data = self.spool.read("checked", name)
            except FileNotFoundError:
                continue
            except OSError as error:
                # Not a regular file, or too large: nothing the daemon wrote. Left here, it would
                # be met again at every start; failed/ is where a person looks.
                log.error("%s: cannot read it in checked/: %s; moving it to failed/ as it is", name, error)
                self._set_aside("checked", name, None, f"cannot be read in checked/: {error.strerror or error}")
                continue
            log.info("%s: in checked/ but not in the journal (claimed just before a stop or an outage); queued now",
                     name)
            messages, original = self._prepare_one(name, data, None, recovering=True)
            queued.extend(messages)
            if original:
                originals.append(original)
        self._commit(queued, originals)

    def finish_fully_submitted(self) -> None:
        """Messages whose every part has an MR but that were not finished (a stop, or a member
        whose lease ran out between its last submit and the journal's `sent`)."""
        for message_id in self.journal.fully_submitted():
            parts = self.journal.parts(message_id)
            log.info("%s: every part was submitted before the stop; moving to sent/", message_id)
            self.finish_sent(message_id, parts[-1].modem or "", parts[-1].imsi)


def _parse(data: bytes, settings: SendSettings, now: float, mtime: _dt.datetime | None, seal_key: bytes | None):
    return parse_outgoing(
        data,
        now=_aware(now),
        default_country=settings.default_country,
        defaults=settings.defaults,
        groups=settings.groups,
        created=mtime,
        seal_key=seal_key,
    )


class Dispatcher:
    """Hands queued messages to idle modems, one round per wake-up or timer."""

    IDLE_ROUND = 5.0  # a round at least this often: the scan is the truth
    EXPIRE_EVERY = 0.25  # Expires: is checked at most this often (each round frees a modem)

    def __init__(
        self,
        outbound: Outbound,
        fleet: Callable[[], Mapping[str, ModemView]],
        idle: Callable[[], list[str]],
        give: Callable[[str, QueuedMessage], None],
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.outbound = outbound
        self.journal = outbound.journal
        self.fleet = fleet
        self.idle = idle
        self.give = give
        self.clock = clock
        self._wake = asyncio.Event()
        self._expired_at = float("-inf")

    def wake(self) -> None:
        """A hint that something changed; many hints before the next round collapse into one."""
        self._wake.set()

    def round(self) -> float:
        """Expire, then assign; returns the seconds until the next round is due."""
        if time.monotonic() - self._expired_at >= self.EXPIRE_EVERY:
            self.outbound.expire()
            self._expired_at = time.monotonic()
        now = self.clock()
        delay = self.IDLE_ROUND
        wakeup = self.journal.next_wakeup(now)
        if wakeup is not None:
            delay = min(delay, max(wakeup - now, 0.05))
        idle = self.idle()
        if not idle:
            return delay
        fleet = self.fleet()
        usage = {}
        for name, view in fleet.items():
            if view.per_minute is None and view.per_day is None:
                continue
            usage[name] = Usage(
                minute=self.journal.submissions_since(view.sim, now - MINUTE),
                day=self.journal.submissions_since(view.sim, now - DAY) if view.per_day is not None else 0,
            )
        # Page through the queue until every idle modem has work: messages at the head that
        # no idle modem may take (pinned to a modem that is down, over a limit) must not starve
        # the ones behind them. Bounded, so one round stays short.
        waiting = False
        free = list(idle)
        offset, limit = 0, max(CANDIDATE_FIRST_PAGE, 4 * len(free))
        while offset < CANDIDATE_ROWS:
            seen, chosen = self.journal.claim_candidates(
                now, limit, offset, lambda candidates: plan(free, candidates, fleet, usage)
            )
            offset += limit
            waiting = waiting or bool(seen)
            for modem, message in chosen:
                self.give(modem, message)
                free.remove(modem)
                usage[modem] = usage.get(modem, Usage()).plus(message.pending_parts)
            if not free or seen < limit:
                break
            limit = min(limit * 2, CANDIDATE_PAGE)
        if waiting and free:
            # Something waits for a limit window or a busy preferred modem: look again soon.
            delay = min(delay, self._limit_wakeup(fleet, now))
        return delay

    def _limit_wakeup(self, fleet: Mapping[str, ModemView], now: float) -> float:
        soonest = 1.0
        for view in fleet.values():
            if view.per_minute is not None:
                oldest = self.journal.oldest_submission_since(view.sim, now - MINUTE)
                if oldest is not None:
                    soonest = min(soonest, max(oldest + MINUTE - now, 0.05))
        return soonest

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()
            try:
                delay = self.round()
            except (JournalUnavailable, Fenced):
                # The membership loop says so in the log and the status; nothing is given out
                # until the journal answers and this member holds a lease again.
                delay = 1.0
            except Exception:
                log.exception("dispatcher round failed; trying again in 5 s")
                delay = 5.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass  # no wake(): the next round is due anyway
