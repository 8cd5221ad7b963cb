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
numbers the client may reach 403. A client over its `limits` and a spool that
cannot be written get 503 with Retry-After: Alertmanager retries 5xx answers
(and only those), so the notification comes again. Everything else gets 200 at
once. Nothing is dropped silently: every alert is logged, and `recent` keeps
the last notifications.

Limits: the posting client's `limits` count SMS parts, as for every other door.
A notification that will cause an SMS is charged when it arrives: the parts of
its own SMS times the recipients the client may reach (one merged into a later
SMS is charged as if sent alone). Duplicates and acknowledged repeats are free;
so are the summaries and [ACK] notices the gateway itself adds (at most one per
recipient and window, and one per ack).

Memory: whatever the payloads, a receiver's state has fixed caps (MAX_* below):
a notification keeps at most MAX_ALERTS_KEPT alerts with texts cut to
MAX_TEXT, and the remembered duplicates, groups, acknowledgements, pending
groups of a window and held-back groups are bounded; when one is full, its
oldest entry is dropped, and the log says so and what it means.

Rules (docs/api.md "Alertmanager receiver"):
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
import hashlib
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Mapping, Sequence

from gsmgw.sms.split import count_parts
from gsmgw.spool.format import DEFAULT_MAX_PARTS

if TYPE_CHECKING:  # the daemon hands it over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext

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
# How often SMS of a window end are offered to the spool again after a write error.
SPOOL_RETRY_S = 30.0
# An "ack" SMS acknowledges what was last sent to that number within this time.
ACK_LOOKBACK_S = 24 * 3600

# Caps on what a receiver keeps, independent of the config and of what clients send.
MAX_ALERTS_KEPT = 20  # alerts of one notification kept for its SMS and `recent` (all are counted and logged)
MAX_TEXT = 300  # characters kept of a label value, summary, name or time
MAX_GROUP_LABELS = 16  # group labels kept (they name the group in the SMS)
MAX_GROUP_KEY = 256  # a longer groupKey is kept as its start and a digest
MAX_SEEN = 10_000  # remembered notifications (duplicates inside a window, resolved for 24 h)
MAX_GROUPS = 10_000  # firing groups whose recipients are remembered (for "ack"); also acknowledged groups
MAX_PENDING = 200  # groups waiting for the end of one window
MAX_HELD_GROUPS = 50  # group names kept per recipient for one window's summary (the count stays exact)
PURGE_INTERVAL_S = 60.0  # how often expired duplicates are dropped from memory


class PayloadError(ValueError):
    """The request body is not an Alertmanager webhook payload; the message says what is wrong."""


class OverLimit(Exception):
    """The posting client is over its `limits`; nothing was queued or remembered.

    `retry_after` is the wait in seconds, math.inf when this notification alone is more than
    a limit allows (waiting cannot help)."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Alert:
    """What one alert contributes: its state, name, summary; texts cut to MAX_TEXT."""

    status: str
    name: str
    summary: str
    starts_at: str | None
    fingerprint: str


@dataclass(frozen=True)
class Notification:
    """One webhook call, reduced to what the SMS, deduplication and `recent` need.

    `alerts` keeps at most MAX_ALERTS_KEPT of them; `matching` counts every alert in the
    notification's state and `fingerprints` is a digest of all their fingerprints, so nothing
    that decides what is sent depends on the alerts that were not kept.
    """

    status: str  # "firing" | "resolved"
    alerts: tuple[Alert, ...]
    group_key: str
    group_labels: Mapping[str, str]
    common_alertname: str
    truncated_alerts: int
    matching: int = 0  # alerts in this state (all of them when none is)
    total: int = 0  # alerts in the payload
    fingerprints: str = ""

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        return (self.group_key, self.status, self.fingerprints)

    @property
    def alert_count(self) -> int:
        """Alerts in this notification's state, with those Alertmanager truncated."""
        return self.matching + self.truncated_alerts

    @property
    def group(self) -> str:
        """`HighLatency job=api`: the alert name, then the other grouping labels."""
        labels = dict(self.group_labels) or {"alertname": self.common_alertname or self.alerts[0].name}
        name = labels.pop("alertname", "") or self.common_alertname
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


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _summary_of(annotations: Mapping[str, str]) -> str:
    for key in ("summary", "description", "message"):
        if annotations.get(key):
            return " ".join(annotations[key][: MAX_TEXT * 4].split())
    return ""


def parse_notification(payload: Any) -> Notification:
    """Validate a decoded JSON body as an Alertmanager v4 notification (every alert is checked)."""
    if not isinstance(payload, dict):
        raise PayloadError("expected a JSON object as Alertmanager's webhook sends it")
    version = payload.get("version")
    if version is not None and str(version) != "4":
        raise PayloadError(f"webhook payload version {_cut(str(version), 20)!r} is not supported; Alertmanager sends \"4\"")
    status = payload.get("status")
    if status not in ("firing", "resolved"):
        raise PayloadError('"status" must be "firing" or "resolved"')
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise PayloadError('"alerts" must be a non-empty list')
    group_key = payload.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise PayloadError('"groupKey" is missing; is this really Alertmanager\'s webhook?')
    if len(group_key) > MAX_GROUP_KEY:
        group_key = group_key[: MAX_GROUP_KEY - 65] + "#" + _digest(group_key)
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or not 0 <= truncated < 2**31:
        raise PayloadError('"truncatedAlerts" must be a non-negative integer')
    alerts: list[Alert] = []
    fingerprints = set()
    states = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, dict):
            raise PayloadError(f"{where} must be an object")
        labels = _string_map(raw.get("labels"), f"{where}.labels")
        if not labels:
            raise PayloadError(f"{where}.labels is missing or empty")
        annotations = _string_map(raw.get("annotations"), f"{where}.annotations")
        alert_status = raw.get("status", status)
        if alert_status not in ("firing", "resolved"):
            raise PayloadError(f'{where}.status must be "firing" or "resolved"')
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Payloads from Alertmanager < 0.19 have none; the label set is what it hashes.
            fingerprint = _digest(json.dumps(labels, sort_keys=True))[:16]
        fingerprints.add(fingerprint)
        states.append(alert_status)
        if len(alerts) < MAX_ALERTS_KEPT:
            starts_at = raw.get("startsAt")
            alerts.append(Alert(
                status=alert_status,
                name=_cut(labels.get("alertname", "")),
                summary=_cut(_summary_of(annotations)),
                starts_at=_cut(starts_at, 64) if isinstance(starts_at, str) else None,
                fingerprint=_cut(fingerprint, 64),
            ))
    group_labels = _string_map(payload.get("groupLabels"), "groupLabels")
    common_labels = _string_map(payload.get("commonLabels"), "commonLabels")
    return Notification(
        status=status,
        alerts=tuple(alerts),
        group_key=group_key,
        group_labels={_cut(key, 64): _cut(value) for key, value in sorted(group_labels.items())[:MAX_GROUP_LABELS]},
        common_alertname=_cut(common_labels.get("alertname", "")),
        truncated_alerts=truncated,
        matching=sum(1 for state in states if state == status) or len(states),
        total=len(states),
        fingerprints=_digest("\n".join(sorted(fingerprints))),
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


def format_summary(receiver: str, held: "Held", max_per_hour: int, max_parts: int) -> str:
    """The one SMS that says what was held back in a window, and for which groups."""
    groups = list(held.groups)
    count = held.count
    reason = f"max {max_per_hour}/hour, receiver {receiver}" if not held.crowded else (
        f"max {max_per_hour}/hour or too many groups at once, receiver {receiver}")
    head = f"[gsmgw] {count} alert notification{'s' if count != 1 else ''} held back ({reason}): "

    def more(rest: int) -> str:
        plus = "+" if held.overflow else ""
        return f" (+{rest}{plus} more)" if rest or held.overflow else ""

    for keep in range(len(groups), 0, -1):
        text = head + ", ".join(groups[:keep]) + more(len(groups) - keep)
        if _fits(text, max_parts):
            return text
    return _shorten(head, groups[0], more(len(groups) - 1), max_parts)


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


@dataclass
class Held:
    """What one recipient was not sent in a window: an exact count, the first group names."""

    count: int = 0
    groups: dict[str, None] = field(default_factory=dict)  # ordered set, at most MAX_HELD_GROUPS
    overflow: bool = False  # more groups than MAX_HELD_GROUPS were held
    crowded: bool = False  # some were held because the window had MAX_PENDING groups

    def add(self, groups: Iterable[str]) -> None:
        for group in groups:
            self.count += 1
            if group in self.groups:
                continue
            if len(self.groups) < MAX_HELD_GROUPS:
                self.groups[group] = None
            else:
                self.overflow = True

    def copy(self) -> "Held":
        return Held(self.count, dict(self.groups), self.overflow, self.crowded)


def _remember(mapping: dict, key: Any, value: Any, cap: int, what: str, notes: list[str]) -> None:
    """mapping[key] = value, dropping the oldest entry (insertion order) when `cap` is reached."""
    mapping.pop(key, None)
    if len(mapping) >= cap:
        oldest = next(iter(mapping))
        del mapping[oldest]
        notes.append(f"{what} (at most {cap}); forgot the oldest, {oldest!r}")
    mapping[key] = value


@dataclass
class _RelayState:
    """Everything AlertRelay changes, copied one level deep: the values it mutates in place
    (deques, sets, Held) are copied, notifications are immutable and shared."""

    window_end: float | None
    pending: dict
    seen: dict
    sent_at: dict
    held: dict
    last_sent: dict
    group_recipients: dict
    acked: dict


class AlertRelay:
    """Windows, deduplication and per-recipient limits of one receiver. Pure: `now` comes in.

    Its memory has fixed caps (MAX_SEEN, MAX_GROUPS, MAX_PENDING, MAX_HELD_GROUPS). What a cap
    made it forget is in `take_notes()`, for the caller to log.
    """

    def __init__(self, name: str, *, window: float, max_per_hour: int | None, max_parts: int):
        self.name = name
        self.window = window
        self.max_per_hour = max_per_hour
        self.max_parts = max_parts
        self.window_end: float | None = None
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._seen: dict[tuple[str, str, str], float] = {}  # dedup key -> forget after
        self._sent_at: dict[str, deque[float]] = {}  # recipient -> SMS times of the last hour
        self._held: dict[str, Held] = {}  # recipient -> what was held back in this window
        # For "ack" replies: what each recipient got last, and who got each group.
        self._last_sent: dict[str, tuple[float, tuple[Notification, ...]]] = {}
        self._group_recipients: dict[str, set[str]] = {}
        self._acked: dict[str, str] = {}  # groupKey -> who acknowledged it (until it resolves)
        self._notes: list[str] = []
        self._next_purge = -math.inf

    def __repr__(self) -> str:
        return (
            f"<AlertRelay {self.name} window_end={self.window_end} pending={len(self._pending)} "
            f"held={sum(h.count for h in self._held.values())}>"
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take_notes(self) -> list[str]:
        """What the caps made the relay forget since the last call (for the log)."""
        notes, self._notes = self._notes, []
        return notes

    def snapshot(self) -> _RelayState:
        """The state, to `restore` when what `receive` decided could not be queued. Its cost
        grows with the number of entries (bounded by the caps), not with the payloads."""
        return _RelayState(
            self.window_end, dict(self._pending), dict(self._seen),
            {recipient: deque(times) for recipient, times in self._sent_at.items()},
            {recipient: held.copy() for recipient, held in self._held.items()},
            dict(self._last_sent),
            {group: set(recipients) for group, recipients in self._group_recipients.items()},
            dict(self._acked),
        )

    def restore(self, state: _RelayState) -> None:
        self.window_end = state.window_end
        self._pending, self._seen, self._sent_at = state.pending, state.seen, state.sent_at
        self._held, self._last_sent = state.held, state.last_sent
        self._group_recipients, self._acked = state.group_recipients, state.acked

    def will_send(self, notification: Notification, now: float) -> bool:
        """Would `receive` turn this notification into an SMS (now or at the window's end)?
        False for a duplicate and for a repeat of an acknowledged group."""
        until = self._seen.get(notification.dedup_key)
        if until is not None and until > now:
            return False
        return notification.status == "resolved" or notification.group_key not in self._acked

    def receive(self, notification: Notification, recipients: Sequence[str], now: float) -> Outcome:
        """Decide what a notification causes now; the caller queues `outgoing`."""
        outgoing: list[Outgoing] = []
        if self.window_end is not None and now >= self.window_end:
            outgoing += self.flush(now)
        if now >= self._next_purge:
            # Expired entries only cost memory (lookups check the time), so they go once a minute.
            self._seen = {key: until for key, until in self._seen.items() if until > now}
            self._next_purge = now + PURGE_INTERVAL_S
        key = notification.dedup_key
        until = self._seen.get(key)
        if until is not None and until > now:
            return Outcome("duplicate", outgoing, [], self.window_end)
        memory = RESOLVED_MEMORY_S if notification.status == "resolved" else self.window
        _remember(self._seen, key, now + max(memory, self.window), MAX_SEEN,
                  f"receiver {self.name}: too many notifications to remember as duplicates; a repeat "
                  "of a forgotten one may be sent again", self._notes)
        if notification.status == "resolved":
            self._acked.pop(notification.group_key, None)
        elif notification.group_key in self._acked:
            # Somebody answered "ack": repeats stay quiet until the group resolves.
            return Outcome("acknowledged", outgoing, [], self.window_end)

        if self.window_end is not None:
            # Inside the window: the newest state of a group replaces an older pending one.
            pending_key = (notification.group_key, notification.status)
            self._pending.pop(pending_key, None)
            if len(self._pending) >= MAX_PENDING:
                oldest_key = next(iter(self._pending))
                oldest = self._pending.pop(oldest_key)
                for recipient in oldest.recipients:
                    held = self._held.setdefault(recipient, Held())
                    held.add([oldest.notification.group])
                    held.crowded = True
                self._notes.append(
                    f"receiver {self.name}: more than {MAX_PENDING} groups in one window; "
                    f"{oldest.notification.group!r} is held back and counted in the summary"
                )
            self._pending[pending_key] = _Pending(notification, tuple(recipients))
            return Outcome("merged", outgoing, [], self.window_end)

        self.window_end = now + self.window
        text = format_notification(notification, self.max_parts)
        sms, held_back = self._deliver(text, recipients, [notification], "notification", now)
        outgoing += sms
        if self.window <= 0:
            outgoing += self.flush(now)
        return Outcome("sent", outgoing, held_back, self.window_end)

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
        for recipient, held in self._held.items():
            text = format_summary(self.name, held, self.max_per_hour or 0, self.max_parts)
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
            _remember(self._acked, notification.group_key, recipient, MAX_GROUPS,
                      f"receiver {self.name}: too many acknowledged groups; the oldest acknowledgement "
                      "ends, so its repeats are sent again", self._notes)
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
                self._held.setdefault(recipient, Held()).add(n.group for n in notifications)
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
                known = self._group_recipients.get(notification.group_key, set())
                _remember(self._group_recipients, notification.group_key, known | set(allowed), MAX_GROUPS,
                          f"receiver {self.name}: too many firing groups to remember who got them; an "
                          "ack of the oldest tells its other recipients nothing", self._notes)
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
    # recent entries of merged notifications, to mark when their SMS goes out
    waiting: deque = field(default_factory=lambda: deque(maxlen=RECENT_LIMIT))
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

    @staticmethod
    def setups(config: Any) -> list[ReceiverSetup]:
        """The receivers `config` names (its `alertmanager.receivers`)."""
        section = getattr(config, "alertmanager", None)
        receivers = getattr(section, "receivers", None) or {}
        default_parts = getattr(getattr(config, "defaults", None), "max_parts", None) or DEFAULT_MAX_PARTS
        return [
            ReceiverSetup(
                name=name,
                to=tuple(receiver.to),
                window=float(receiver.window),
                max_per_hour=receiver.max_per_hour,
                max_parts=getattr(receiver, "max_parts", None) or default_parts,
            )
            for name, receiver in receivers.items()
        ]

    @classmethod
    def from_config(cls, config: Any, *, spool: Any, registry: Any, **kwargs: Any) -> "AlertmanagerService":
        return cls(cls.setups(config), spool=spool, registry=registry, **kwargs)

    def reload(self, config: Any) -> None:
        """SIGHUP: the receivers of `config`, at once. A changed receiver keeps what its window
        holds, its deduplication and its hourly counts, under its new numbers and settings; a new
        one starts empty; a removed one queues what its window holds now and is gone."""
        wanted = {setup.name: setup for setup in self.setups(config)}
        for name in [name for name in self.receivers if name not in wanted]:
            self._close(name, self.receivers.pop(name), when="removed by a reload")
            log.info("alertmanager: receiver %s removed", name)
        for name, setup in wanted.items():
            runtime = self.receivers.get(name)
            if runtime is None:
                self.receivers[name] = _ReceiverRuntime(setup, AlertRelay(
                    name, window=setup.window, max_per_hour=setup.max_per_hour, max_parts=setup.max_parts))
                log.info("alertmanager: receiver %s added", name)
            elif runtime.setup != setup:
                runtime.setup = setup
                relay = runtime.relay
                relay.window, relay.max_per_hour, relay.max_parts = setup.window, setup.max_per_hour, setup.max_parts
                log.info("alertmanager: receiver %s changed", name)

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
        allowed: list[str] = []
        refused: list[str] = []
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
        if notification.total > len(notification.alerts):
            log.info("alertmanager %s: group %s has %d more alerts than the %d listed; all count in its SMS",
                     name, notification.group_key, notification.total - len(notification.alerts),
                     len(notification.alerts))
        if runtime.relay.window_end is not None and self.clock() >= runtime.relay.window_end:
            self.flush(name)  # a late timer: the old window's SMS go first, with their own retry
        now = self.clock()
        charge = self._charge(name, client, notification, allowed, now)
        before = runtime.relay.snapshot()
        outcome = runtime.relay.receive(notification, allowed, now)
        self._log_notes(runtime)
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
            "alerts_total": notification.total,
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
            # (and the client's limits) as they were, not a duplicate of an SMS that never
            # reached the spool.
            runtime.relay.restore(before)
            if charge:
                self.registry.release(client, charge, now)
            entry["action"] = "spool error, Alertmanager retries"
            raise
        if outcome.action == "sent":
            entry["sms"] = names
        elif outcome.action == "merged":
            runtime.waiting.append(entry)
        if outcome.flush_at is not None and (runtime.timer is None or runtime.timer.done()):
            runtime.timer = asyncio.get_running_loop().create_task(self._flush_later(name, outcome.flush_at))
        return 200, {"status": outcome.action, "queued": names, "refused": refused}

    def _charge(self, name: str, client: Any, notification: Notification, allowed: Sequence[str], now: float) -> int:
        """Take the parts this notification will cost from the client's limits; OverLimit if they
        do not fit. Returns what was taken (0 for a duplicate or an acknowledged repeat)."""
        runtime = self.receivers[name]
        if not runtime.relay.will_send(notification, now):
            return 0
        parts = count_parts(format_notification(notification, runtime.setup.max_parts)).parts * len(allowed)
        wait = self.registry.acquire(client, parts, now)
        if wait <= 0:
            return parts
        from gsmgw.http.validation import retry_after_seconds

        limits = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in (client.limits or {}).items())
        if math.isinf(wait):
            message = (f"this notification needs {parts} SMS parts ({len(allowed)} recipients), more than client "
                       f"{client.name!r} may send at all ({limits}); raise its limits or lower the receiver's "
                       "max_parts")
        else:
            message = (f"client {client.name!r} is over its limits ({limits}); nothing was queued, Alertmanager "
                       f"retries (in {retry_after_seconds(wait)} s or later)")
        log.warning("alertmanager %s: group %s not sent now: %s", name, notification.group_key, message)
        runtime.recent.append({
            "received": self.wall().isoformat(timespec="seconds"), "client": client.name,
            "group_key": notification.group_key, "group": notification.group, "status": notification.status,
            "action": "over the client's limits, Alertmanager retries" if not math.isinf(wait)
            else "more than the client's limits allow", "sms": [],
        })
        raise OverLimit(message, wait)

    def _log_notes(self, runtime: _ReceiverRuntime) -> None:
        for note in runtime.relay.take_notes():
            log.warning("alertmanager %s", note)

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
        self._log_notes(runtime)
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
            self._log_notes(runtime)
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
            self._close(name, runtime, when="at shutdown")

    def _close(self, name: str, runtime: _ReceiverRuntime, *, when: str) -> None:
        """The receiver's last act: its timers end, what its window holds is queued now."""
        for task in (runtime.timer, runtime.retry):
            if task is not None and not task.done():
                task.cancel()
        if runtime.relay.window_end is not None or runtime.unsent:
            outgoing = runtime.unsent + runtime.relay.flush(self.clock())
            runtime.unsent = []
            try:
                self._queue(name, outgoing, max_parts=runtime.setup.max_parts)
            except OSError as error:
                log.error("alertmanager %s: %s, %d SMS could not be queued (%s): %s",
                          name, when, len(outgoing), error, " | ".join(o.text for o in outgoing))

    def _queue(self, receiver: str, outgoing: Sequence[Outgoing], *, max_parts: int | None = None) -> list[str]:
        if not outgoing:
            return []
        from gsmgw.spool.format import make_outgoing

        files = [
            make_outgoing(
                to=list(sms.to),
                text=sms.text,
                max_parts=max_parts if max_parts is not None else self.receivers[receiver].setup.max_parts,
                expires=ALERT_EXPIRES,
                priority="high",  # an alert never waits behind a campaign (docs/api.md)
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


def add_routes(app: Any, ctx: GatewayContext) -> AlertmanagerService | None:
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
        except OverLimit as error:
            # Alertmanager retries 5xx answers only: 503 brings the notification back once the
            # limits allow it. A notification that no wait can fit gets 429, which it gives up on.
            from gsmgw.http.validation import retry_after_seconds

            return web.json_response({"error": error.message}, status=429 if math.isinf(error.retry_after) else 503,
                                     headers={"Retry-After": str(retry_after_seconds(error.retry_after))})
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
