"""Prometheus Alertmanager webhook receiver: alert notifications become a few SMS.

What it reads: Alertmanager's webhook payload, version 4
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config):
`status`, `alerts[]` (`status`, `labels`, `annotations`, `startsAt`, `endsAt`,
`fingerprint`), `groupLabels`, `commonLabels`, `commonAnnotations`, `groupKey`,
`truncatedAlerts`, posted to `POST /api/v1/alertmanager/<receiver>` with a
client's bearer token (Alertmanager's `http_config.authorization`).
What it writes: outgoing spool files through `Spool.submit_many`, so an SMS
is on disk before anything is acknowledged and crash safety is the daemon's.
How it fails: a payload that is not Alertmanager JSON gets 400 with the reason,
an unknown receiver 404, a missing or wrong token 401, a receiver none of whose
numbers the client may reach 403. Everything else gets 200 at once, because
Alertmanager retries anything else and a retry storm is worse than a late SMS.
Nothing is dropped silently: every alert is logged and kept in `recent`.

Rules (API.md "Alertmanager receiver"):
- one SMS per notification, never one per alert, within the receiver's max_parts;
- the first notification of a window goes out at once; later ones inside the
  window are merged into one SMS sent when the window ends;
- the same groupKey + status + alert fingerprints inside the window sends
  nothing new; a `resolved` notification is sent once;
- `max_per_hour` SMS per recipient and receiver (summaries not counted);
  what is held back is summed up in one SMS when its window ends;
- an "ack" SMS from a recipient (gsmgw.daemon.twoway) quiets the firing groups
  it got last until they resolve, and tells the other recipients who took it.

`AlertRelay` is the pure, clock-injected state of one receiver (no I/O, no
clock reads). `AlertmanagerService` joins it to the spool and to timers.
`add_routes(app, ctx)` is what the HTTP server calls.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from gsmgw.sms.split import count_parts

log = logging.getLogger("gsmgw.alertmanager")

__all__ = [
    "Alert",
    "AlertRelay",
    "AlertmanagerService",
    "Notification",
    "Outgoing",
    "PayloadError",
    "add_routes",
    "format_notification",
    "parse_notification",
]

# A resolved notification is remembered this long, so that a second
# Alertmanager of an HA pair (or a resend after our restart of the window)
# does not send "[RESOLVED]" twice.
RESOLVED_MEMORY_S = 24 * 3600
HOUR_S = 3600.0
# How many notifications GET .../recent keeps per receiver.
RECENT_LIMIT = 500
# Alert SMS that could not be sent within this time are stale: Alertmanager
# re-notifies what is still firing, so an outage does not end in a flood.
ALERT_EXPIRES = "1 hour"
DEFAULT_MAX_PARTS = 6
# How often SMS of a window end are offered to the spool again after a write error.
SPOOL_RETRY_S = 30.0
# An "ack" SMS acknowledges what was last sent to that number within this time.
ACK_LOOKBACK_S = 24 * 3600


class PayloadError(ValueError):
    """The request body is not an Alertmanager webhook payload; the message says what is wrong."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str | None
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def summary(self) -> str:
        for key in ("summary", "description", "message"):
            if self.annotations.get(key):
                return " ".join(self.annotations[key].split())
        return ""


@dataclass(frozen=True)
class Notification:
    status: str  # "firing" | "resolved"
    alerts: tuple[Alert, ...]
    group_key: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    truncated_alerts: int

    @property
    def dedup_key(self) -> tuple[str, str, frozenset[str]]:
        return (self.group_key, self.status, frozenset(a.fingerprint for a in self.alerts))

    @property
    def alert_count(self) -> int:
        """Alerts in this notification's state, with those Alertmanager truncated."""
        matching = sum(1 for a in self.alerts if a.status == self.status) or len(self.alerts)
        return matching + self.truncated_alerts

    @property
    def group(self) -> str:
        """`HighLatency job=api`: the alert name, then the other grouping labels."""
        labels = dict(self.group_labels) or {
            "alertname": self.common_labels.get("alertname") or self.alerts[0].name
        }
        name = labels.pop("alertname", "") or self.common_labels.get("alertname", "")
        pairs = [f"{key}={labels[key]}" for key in sorted(labels)]
        return " ".join(part for part in [name, *pairs] if part) or self.group_key

    @property
    def summary(self) -> str:
        for alert in self.alerts:
            if alert.status == self.status and alert.summary:
                return alert.summary
        return next((a.summary for a in self.alerts if a.summary), "")


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise PayloadError(f"{where} must be an object of strings")
    return dict(value)


def parse_notification(payload: Any) -> Notification:
    """Validate a decoded JSON body as an Alertmanager v4 notification."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object as Alertmanager's webhook sends it")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise PayloadError(f"webhook payload version {version!r} is not supported; Alertmanager sends \"4\"")
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError('"status" must be "firing" or "resolved"')
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError('"alerts" must be a non-empty list')
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise PayloadError('"groupKey" is missing; is this really Alertmanager\'s webhook?')
    truncated = payload.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or truncated < 0:
        raise PayloadError('"truncatedAlerts" must be a non-negative integer')
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, dict):
            raise PayloadError(f"{where} must be an object")
        labels = _string_map(raw.get("labels"), f"{where}.labels")
        if not labels:
            raise PayloadError(f"{where}.labels is missing or empty")
        alert_status = raw.get("status", status)
        if alert_status not in ("firing", "resolved"):
            raise PayloadError(f'{where}.status must be "firing" or "resolved"')
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Payloads from Alertmanager < 0.19 have none; the label set is what it hashes.
            fingerprint = json.dumps(labels, sort_keys=True)
        starts_at = raw.get("startsAt")
        alerts.append(
            Alert(
                status=alert_status,
                labels=labels,
                annotations=_string_map(raw.get("annotations"), f"{where}.annotations"),
                starts_at=starts_at if isinstance(starts_at, str) else None,
                fingerprint=fingerprint,
            )
        )
    return Notification(
        status=status,
        alerts=tuple(alerts),
        group_key=group_key,
        group_labels=_string_map(payload.get("groupLabels"), "groupLabels"),
        common_labels=_string_map(payload.get("commonLabels"), "commonLabels"),
        truncated_alerts=truncated,
    )


# --- SMS text --------------------------------------------------------------------------------


def _fits(text: str, max_parts: int) -> bool:
    return count_parts(text).parts <= max_parts


def _shorten(head: str, middle: str, tail: str, max_parts: int) -> str:
    """head + middle + tail, with `middle` cut (and "...") until it fits max_parts.

    Binary search over the kept length of `middle`: count_parts is monotonic in
    the length of a prefix. "..." rather than "…", which is not in the GSM 7-bit
    default alphabet (TS 23.038 §6.2.1) and would turn the SMS into UCS-2.
    """
    if _fits(head + middle + tail, max_parts):
        return head + middle + tail
    low, high = 0, len(middle)
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(head + middle[:mid].rstrip() + "..." + tail, max_parts):
            low = mid
        else:
            high = mid - 1
    if low == 0:
        if _fits(head + tail, max_parts):
            return head + tail
        return _shorten("", head, "", max_parts)
    return head + middle[:low].rstrip() + "..." + tail


def format_notification(notification: Notification, max_parts: int) -> str:
    """`[FIRING:30] HighLatency job=api: p99 over 2s (+29 more)`, fitted into max_parts."""
    count = notification.alert_count
    if notification.status == "firing":
        head = f"[FIRING:{count}] {notification.group}"
    else:
        head = f"[RESOLVED] {notification.group}"
    summary = notification.summary
    tail = f" (+{count - 1} more)" if count > 1 else ""
    if not summary:
        return _shorten("", head, tail, max_parts)
    return _shorten(head + ": ", summary, tail, max_parts)


def format_merged(notifications: Sequence[Notification], max_parts: int) -> str:
    """One line per notification; the lines that do not fit become "(+K more groups)"."""
    if len(notifications) == 1:
        return format_notification(notifications[0], max_parts)
    lines = [format_notification(n, max_parts) for n in notifications]
    for keep in range(len(lines), 0, -1):
        rest = len(lines) - keep
        text = "\n".join(lines[:keep]) + (f"\n(+{rest} more groups)" if rest else "")
        if _fits(text, max_parts):
            return text
    return _shorten("", lines[0], f"\n(+{len(lines) - 1} more groups)", max_parts)


def format_summary(receiver: str, held: Sequence[str], max_per_hour: int, max_parts: int) -> str:
    """The one SMS that says what max_per_hour held back, and for which groups."""
    groups = list(dict.fromkeys(held))
    head = (
        f"[gsmgw] {len(held)} alert notification{'s' if len(held) != 1 else ''} held back "
        f"(max {max_per_hour}/hour, receiver {receiver}): "
    )
    for keep in range(len(groups), 0, -1):
        rest = len(groups) - keep
        text = head + ", ".join(groups[:keep]) + (f" (+{rest} more)" if rest else "")
        if _fits(text, max_parts):
            return text
    return _shorten(head, groups[0], f" (+{len(groups) - 1} more)" if len(groups) > 1 else "", max_parts)


def format_ack(groups: Sequence[str], by: str, max_parts: int) -> str:
    """`[ACK] HighLatency job=api by +4915112345678`: the others know someone is on it."""
    tail = f" by {by}"
    for keep in range(len(groups), 0, -1):
        rest = len(groups) - keep
        text = "[ACK] " + ", ".join(groups[:keep]) + (f" (+{rest} more)" if rest else "") + tail
        if _fits(text, max_parts):
            return text
    return _shorten("[ACK] ", groups[0], tail, max_parts)


# --- the pure state of one receiver ----------------------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    """One SMS to queue: the same text to each of `to`."""

    to: tuple[str, ...]
    text: str
    kind: str  # "notification" | "merged" | "summary" | "ack"
    group_keys: tuple[str, ...] = ()


@dataclass
class Outcome:
    action: str  # "sent" | "merged" | "duplicate" | "acknowledged"
    outgoing: list[Outgoing]
    held_back_for: list[str]
    flush_at: float | None  # when the caller must call flush(); None: nothing to do later


@dataclass
class _Pending:
    notification: Notification
    recipients: tuple[str, ...]


class AlertRelay:
    """Windows, deduplication and per-recipient limits of one receiver. Pure: `now` comes in."""

    def __init__(self, name: str, *, window: float, max_per_hour: int | None, max_parts: int):
        self.name = name
        self.window = window
        self.max_per_hour = max_per_hour
        self.max_parts = max_parts
        self.window_end: float | None = None
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._seen: dict[tuple[str, str, frozenset[str]], float] = {}  # dedup key -> forget after
        self._sent_at: dict[str, deque[float]] = {}  # recipient -> SMS times of the last hour
        self._held: dict[str, list[str]] = {}  # recipient -> groups held back in this window
        # For "ack" replies: what each recipient got last, and who got each group.
        self._last_sent: dict[str, tuple[float, tuple[Notification, ...]]] = {}
        self._group_recipients: dict[str, set[str]] = {}
        self._acked: dict[str, str] = {}  # groupKey -> who acknowledged it (until it resolves)

    def __repr__(self) -> str:
        return (
            f"<AlertRelay {self.name} window_end={self.window_end} pending={len(self._pending)} "
            f"held={sum(map(len, self._held.values()))}>"
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def receive(self, notification: Notification, recipients: Sequence[str], now: float) -> Outcome:
        """Decide what a notification causes now; the caller queues `outgoing`."""
        outgoing: list[Outgoing] = []
        if self.window_end is not None and now >= self.window_end:
            outgoing += self.flush(now)
        self._seen = {key: until for key, until in self._seen.items() if until > now}
        key = notification.dedup_key
        if key in self._seen:
            return Outcome("duplicate", outgoing, [], self.window_end)
        memory = RESOLVED_MEMORY_S if notification.status == "resolved" else self.window
        self._seen[key] = now + max(memory, self.window)
        if notification.status == "resolved":
            self._acked.pop(notification.group_key, None)
        elif notification.group_key in self._acked:
            # Somebody answered "ack": repeats stay quiet until the group resolves.
            return Outcome("acknowledged", outgoing, [], self.window_end)

        if self.window_end is not None:
            # Inside the window: the newest state of a group replaces an older pending one.
            pending_key = (notification.group_key, notification.status)
            self._pending.pop(pending_key, None)
            self._pending[pending_key] = _Pending(notification, tuple(recipients))
            return Outcome("merged", outgoing, [], self.window_end)

        self.window_end = now + self.window
        text = format_notification(notification, self.max_parts)
        sms, held = self._deliver(text, recipients, [notification], "notification", now)
        outgoing += sms
        if self.window <= 0:
            outgoing += self.flush(now)
        return Outcome("sent", outgoing, held, self.window_end)

    def flush(self, now: float) -> list[Outgoing]:
        """The window ends: the merged SMS, then one summary per recipient that was held back."""
        outgoing: list[Outgoing] = []
        pending = list(self._pending.values())
        self._pending.clear()
        by_recipient: dict[str, list[Notification]] = {}
        for entry in pending:
            for recipient in entry.recipients:
                by_recipient.setdefault(recipient, []).append(entry.notification)
        # Recipients share an SMS only when it carries the same groups, not merely the same text:
        # "(+K more groups)" reads alike for different groups, and an "ack" acknowledges exactly
        # the groups its sender was sent.
        shared: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[list[str], list[Notification]]] = {}
        for recipient, notifications in by_recipient.items():
            text = format_merged(notifications, self.max_parts)
            content = tuple((n.group_key, n.status) for n in notifications)
            shared.setdefault((text, content), ([], notifications))[0].append(recipient)
        for (text, _), (recipients, notifications) in shared.items():
            kind = "merged" if len(notifications) > 1 else "notification"
            sms, _ = self._deliver(text, recipients, notifications, kind, now)
            outgoing += sms
        summaries: dict[str, list[str]] = {}
        for recipient, groups in self._held.items():
            limit = self.max_per_hour or 0
            text = format_summary(self.name, groups, limit, self.max_parts)
            summaries.setdefault(text, []).append(recipient)
        for text, recipients in summaries.items():
            outgoing.append(Outgoing(tuple(recipients), text, "summary"))
        self._held.clear()
        self.window_end = None
        return outgoing

    def acknowledge(self, recipient: str, now: float) -> tuple[list[str], list[Outgoing]]:
        """`recipient` answered "ack": quiet the firing groups it got last, tell the others.

        Returns the groups acknowledged (empty when nothing was sent to that number
        in the last day) and one notice per other recipient of those groups.
        """
        last = self._last_sent.get(recipient)
        if last is None or now - last[0] > ACK_LOOKBACK_S:
            return [], []
        firing = [n for n in last[1] if n.status == "firing" and n.group_key not in self._acked]
        if not firing:
            return [], []
        for notification in firing:
            self._acked[notification.group_key] = recipient
            self._pending.pop((notification.group_key, "firing"), None)
        groups = list(dict.fromkeys(n.group for n in firing))
        others = sorted(
            set().union(*(self._group_recipients.get(n.group_key, set()) for n in firing)) - {recipient}
        )
        notices = []
        if others:
            text = format_ack(groups, recipient, self.max_parts)
            notices.append(Outgoing(tuple(others), text, "ack", tuple(n.group_key for n in firing)))
        return groups, notices

    def _deliver(
        self, text: str, recipients: Iterable[str], notifications: Sequence[Notification], kind: str, now: float
    ) -> tuple[list[Outgoing], list[str]]:
        allowed, held = [], []
        for recipient in [r for r, times in self._sent_at.items() if times and times[-1] <= now - HOUR_S]:
            del self._sent_at[recipient]  # nothing in the last hour: forget the number
        for recipient in recipients:
            times = self._sent_at.setdefault(recipient, deque())
            while times and times[0] <= now - HOUR_S:
                times.popleft()
            if self.max_per_hour is not None and len(times) >= self.max_per_hour:
                held.append(recipient)
                self._held.setdefault(recipient, []).extend(n.group for n in notifications)
                continue
            times.append(now)
            allowed.append(recipient)
        if not allowed:
            return [], held
        for recipient in allowed:
            self._last_sent[recipient] = (now, tuple(notifications))
        for notification in notifications:
            if notification.status == "resolved":
                # Nobody can acknowledge a resolved group: forget who had it (bounds the memory).
                self._group_recipients.pop(notification.group_key, None)
            else:
                self._group_recipients.setdefault(notification.group_key, set()).update(allowed)
        keys = tuple(n.group_key for n in notifications)
        return [Outgoing(tuple(allowed), text, kind, keys)], held


# --- I/O: spool, timers, HTTP ----------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ReceiverSetup:
    name: str
    to: tuple[str, ...]  # numbers and group:NAME entries as configured
    window: float
    max_per_hour: int | None
    max_parts: int


@dataclass
class _ReceiverRuntime:
    setup: ReceiverSetup
    relay: AlertRelay
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_LIMIT))
    waiting: list[dict] = field(default_factory=list)  # recent entries of merged notifications
    timer: asyncio.Task | None = None
    unsent: list = field(default_factory=list)  # Outgoing that the spool refused, retried
    retry: asyncio.Task | None = None


class AlertmanagerService:
    """Receivers, their relays and window timers, writing SMS into the spool.

    `clock` (monotonic seconds), `wall` (aware datetime) and `sleep` are
    injectable so tests control time.
    """

    def __init__(
        self,
        receivers: Iterable[ReceiverSetup],
        *,
        spool: Any,
        registry: Any,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.spool = spool
        self.registry = registry
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.receivers: dict[str, _ReceiverRuntime] = {}
        for setup in receivers:
            relay = AlertRelay(
                setup.name, window=setup.window, max_per_hour=setup.max_per_hour, max_parts=setup.max_parts
            )
            self.receivers[setup.name] = _ReceiverRuntime(setup, relay)

    @classmethod
    def from_config(cls, config: Any, *, spool: Any, registry: Any, **kwargs: Any) -> "AlertmanagerService":
        section = getattr(config, "alertmanager", None)
        receivers = getattr(section, "receivers", None) or {}
        default_parts = getattr(getattr(config, "defaults", None), "max_parts", None) or DEFAULT_MAX_PARTS
        setups = [
            ReceiverSetup(
                name=name,
                to=tuple(receiver.to),
                window=float(receiver.window),
                max_per_hour=receiver.max_per_hour,
                max_parts=getattr(receiver, "max_parts", None) or default_parts,
            )
            for name, receiver in receivers.items()
        ]
        return cls(setups, spool=spool, registry=registry, **kwargs)

    def recipients(self, name: str) -> tuple[str, ...]:
        """The receiver's numbers, groups expanded, in order, without duplicates."""
        numbers: list[str] = []
        for entry in self.receivers[name].setup.to:
            if entry.startswith("group:"):
                numbers += self.registry.expand(entry)
            else:
                from gsmgw.sms.address import normalize_number

                numbers.append(normalize_number(entry))
        return tuple(dict.fromkeys(numbers))

    def handle(self, name: str, client: Any, payload: Any) -> tuple[int, dict]:
        """Take one webhook call; returns (HTTP status, JSON body). Queues what goes out now."""
        runtime = self.receivers.get(name)
        if runtime is None:
            known = ", ".join(sorted(self.receivers)) or "none configured"
            return 404, {"error": f"no Alertmanager receiver {name!r}; configured: {known}"}
        notification = parse_notification(payload)
        allowed, refused = [], []
        for number in self.recipients(name):
            verdict = self.registry.check_destination(client, number)
            (allowed if verdict.allowed else refused).append(number)
        for number in refused:
            log.error(
                "alertmanager receiver %s: client %s may not send to %s; fix its allow/deny or the receiver's to:",
                name, client.name, number,
            )
        if not allowed:
            return 403, {
                "error": f"client {client.name!r} may reach none of receiver {name!r}'s numbers; "
                "add them to the client's allow: list"
            }
        for alert in notification.alerts:
            log.info(
                "alertmanager %s: %s %s fingerprint=%s group=%s", name, alert.status, alert.name,
                alert.fingerprint, notification.group_key,
            )
        if runtime.relay.window_end is not None and self.clock() >= runtime.relay.window_end:
            self.flush(name)  # a late timer: the old window's SMS go first, with their own retry
        before = copy.deepcopy(runtime.relay)
        outcome = runtime.relay.receive(notification, allowed, self.clock())
        entry = {
            "received": self.wall().isoformat(timespec="seconds"),
            "client": client.name,
            "group_key": notification.group_key,
            "group": notification.group,
            "status": notification.status,
            "alerts": [
                {"alertname": a.name, "status": a.status, "fingerprint": a.fingerprint, "summary": a.summary,
                 "startsAt": a.starts_at}
                for a in notification.alerts
            ],
            "truncated_alerts": notification.truncated_alerts,
            "action": outcome.action,
            "held_back_for": outcome.held_back_for,
            "refused": refused,
            "sms": [],
        }
        runtime.recent.append(entry)
        try:
            names = self._queue(name, outcome.outgoing)
        except OSError:
            # Alertmanager gets a 503 and sends the notification again; it must find the relay
            # as it was, not a duplicate of an SMS that never reached the spool.
            runtime.relay = before
            entry["action"] = "spool error, Alertmanager retries"
            raise
        if outcome.action == "sent":
            entry["sms"] = names
        elif outcome.action == "merged":
            runtime.waiting.append(entry)
        if outcome.flush_at is not None and (runtime.timer is None or runtime.timer.done()):
            runtime.timer = asyncio.get_running_loop().create_task(self._flush_later(name, outcome.flush_at))
        return 200, {"status": outcome.action, "queued": names, "refused": refused}

    async def _flush_later(self, name: str, at: float) -> None:
        runtime = self.receivers[name]
        # The window may have been flushed and reopened meanwhile (a late timer and a new
        # notification), and the relay replaced after a spool error: follow the current one.
        while runtime.relay.window_end is not None:
            delay = runtime.relay.window_end - self.clock()
            if delay <= 0:
                self.flush(name)
                return
            await self.sleep(delay)

    def flush(self, name: str) -> list[str]:
        """End the receiver's window now: queue the merged SMS and the summaries."""
        runtime = self.receivers[name]
        outgoing = runtime.unsent + runtime.relay.flush(self.clock())
        runtime.unsent = []
        try:
            names = self._queue(name, outgoing)
        except OSError as error:
            # Nobody would send these again: keep them and retry, and say so in the log.
            runtime.unsent = list(outgoing)
            log.error(
                "alertmanager %s: cannot queue %d SMS (%s); retrying every %g s: %s",
                name, len(outgoing), error, SPOOL_RETRY_S, " | ".join(o.text for o in outgoing),
            )
            if runtime.retry is None or runtime.retry.done():
                runtime.retry = asyncio.get_running_loop().create_task(self._retry_unsent(name))
            return []
        for entry in runtime.waiting:
            entry["action"] = "sent merged"
            entry["sms"] = names
        runtime.waiting.clear()
        return names

    async def _retry_unsent(self, name: str) -> None:
        runtime = self.receivers[name]
        while runtime.unsent:
            await self.sleep(SPOOL_RETRY_S)
            outgoing, runtime.unsent = runtime.unsent, []
            try:
                self._queue(name, outgoing)
            except OSError as error:
                runtime.unsent = outgoing + runtime.unsent
                log.error("alertmanager %s: still cannot queue %d SMS: %s", name, len(runtime.unsent), error)

    def acknowledge(self, number: str) -> list[str]:
        """An "ack" SMS from `number` (gsmgw.daemon.twoway): the groups it acknowledged."""
        acknowledged: list[str] = []
        for name, runtime in self.receivers.items():
            groups, notices = runtime.relay.acknowledge(number, self.clock())
            if not groups:
                continue
            acknowledged += groups
            log.info("alertmanager %s: %s acknowledged %s", name, number, "; ".join(groups))
            runtime.recent.append({
                "received": self.wall().isoformat(timespec="seconds"),
                "action": "acknowledged",
                "by": number,
                "groups": groups,
                "sms": self._queue(name, notices),
            })
        return acknowledged

    def flush_all(self) -> None:
        """At shutdown: nothing that waits for its window may be lost."""
        for name, runtime in self.receivers.items():
            for task in (runtime.timer, runtime.retry):
                if task is not None and not task.done():
                    task.cancel()
            if runtime.relay.window_end is not None or runtime.unsent:
                outgoing = runtime.unsent + runtime.relay.flush(self.clock())
                runtime.unsent = []
                try:
                    self._queue(name, outgoing)
                except OSError as error:
                    log.error("alertmanager %s: at shutdown, %d SMS could not be queued (%s): %s",
                              name, len(outgoing), error, " | ".join(o.text for o in outgoing))

    def _queue(self, receiver: str, outgoing: Sequence[Outgoing]) -> list[str]:
        if not outgoing:
            return []
        from gsmgw.spool.format import make_outgoing

        files = [
            make_outgoing(
                to=list(sms.to),
                text=sms.text,
                max_parts=self.receivers[receiver].setup.max_parts,
                expires=ALERT_EXPIRES,
                extra={"Alertmanager": receiver},
            )
            for sms in outgoing
        ]
        names = self.spool.submit_many(files)
        for sms, spool_name in zip(outgoing, names):
            log.info("alertmanager %s: queued %s (%s) for %s", receiver, spool_name, sms.kind, ", ".join(sms.to))
        return names

    def recent(self, name: str) -> dict | None:
        runtime = self.receivers.get(name)
        if runtime is None:
            return None
        return {"receiver": name, "notifications": list(runtime.recent)}


def add_routes(app: Any, ctx: Any) -> AlertmanagerService | None:
    """Register the receiver routes on the aiohttp app (called by gsmgw.http.server).

    `ctx` is the daemon's GatewayContext: `config`, `spool`, and `clients` (a
    gsmgw.clients.ClientRegistry; built from the config when the context has none).
    Returns the service (None when no `alertmanager:` is configured: no routes).
    """
    from aiohttp import web

    from gsmgw.http.validation import JsonBodyError, decode_json

    config = ctx.config
    if getattr(config, "alertmanager", None) is None:
        return None
    registry = getattr(ctx, "clients", None)
    if registry is None:
        from gsmgw.clients import ClientRegistry

        registry = ClientRegistry.from_config(config)
    service = AlertmanagerService.from_config(config, spool=ctx.spool, registry=registry)
    # gsmgw.daemon.twoway finds the service here to turn an "ack" SMS into an acknowledgement.
    try:
        ctx.alertmanager = service
    except AttributeError:
        log.debug("the gateway context takes no attributes; \"ack\" by SMS is not available")

    def bearer_client(request: web.Request) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return service.registry.authenticate_token(token.strip())  # the daemon's SIGHUP replaces it

    def unauthorized() -> web.Response:
        return web.json_response(
            {"error": "no valid bearer token: set http_config.authorization.credentials in "
             "Alertmanager's webhook_config to a client's token"},
            status=401, headers={"WWW-Authenticate": "Bearer"},
        )

    async def receive(request: web.Request) -> web.Response:
        client = bearer_client(request)
        if client is None:
            return unauthorized()
        name = request.match_info["receiver"]
        if name not in service.receivers:
            status, body = service.handle(name, client, None)
            return web.json_response(body, status=status)
        try:
            payload = decode_json(await request.read())
        except JsonBodyError as error:
            return web.json_response({"error": f"{error}; send Alertmanager's webhook payload"}, status=400)
        try:
            status, body = service.handle(name, client, payload)
        except PayloadError as error:
            return web.json_response({"error": f"not an Alertmanager notification: {error}"}, status=400)
        except OSError as error:
            log.error("alertmanager %s: cannot queue SMS: %s", name, error)
            return web.json_response({"error": f"the spool cannot be written: {error}"}, status=503)
        return web.json_response(body, status=status)

    async def recent(request: web.Request) -> web.Response:
        if bearer_client(request) is None:
            return unauthorized()
        name = request.match_info["receiver"]
        body = service.recent(name)
        if body is None:
            return web.json_response({"error": f"no Alertmanager receiver {name!r}"}, status=404)
        return web.json_response(body)

    async def shutdown(_app: Any) -> None:
        service.flush_all()

    app.router.add_post("/api/v1/alertmanager/{receiver}", receive)
    app.router.add_get("/api/v1/alertmanager/{receiver}/recent", recent)
    app.on_shutdown.append(shutdown)
    return service
