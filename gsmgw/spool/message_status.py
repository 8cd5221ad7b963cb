"""The message status view: the one answer to "what became of message X?".

Every reader takes its answer from here: `sent/`'s `Status:`/`Delivered:` headers, `GET
/api/v1/messages/{id}`, the report webhooks (`ReportReceived.status`), SMPP receipts and
`query_sm`, and the web console. So they can never disagree.

What it reads: the journal's rows for a message it knows (`MessageRow` and its `PartRow`s), else
the message's spool file (its directory is its state, its headers the details). The deciding is
pure (`delivery`, `from_journal`, `from_file`); only `lookup` reads, and it never writes.

The rules:
- A message's status (docs/api.md) is one of `queued`, `sending`, `sent`, `delivered`, `failed`,
  `expired`. A queued message of which some parts went out already counts as `sending`.
- Status reports (TS 23.040 §9.2.3.15) decide a sent message: `delivered` once every part is
  delivered; `failed` as soon as any part failed for good (the recipient can never read the whole
  text, whatever the other parts do later); otherwise it stays `sent` (reports `pending`).
- `expired` is a message that reached its `Expires:` unsent (journal state `expired`, or a
  `failed/` file whose `Fail_reason:` says `expired`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from gsmgw.sms import status as sms_status
from gsmgw.spool.format import Headers, SpoolFormatError, parse_outgoing, read_spool_file, report_status

# docs/api.md's `status` words are the journal's state names: one vocabulary. What differs is which
# word a message gets: the journal records what the sending did, this view adds the reports.
from gsmgw.spool.journal import (
    DELIVERED,
    EXPIRED,
    FAILED,
    MESSAGE_STATES as STATUSES,
    PART_PENDING,
    QUEUED,
    SENDING,
    SENT,
    JournalUnavailable,
    MessageRow,
)

FINAL_STATUSES = frozenset({DELIVERED, FAILED, EXPIRED})
# The `Fail_reason:` of a message that reached its `Expires:` unsent (docs/spool.md: "reason expired").
EXPIRED_REASON = "expired"

# What the reports say about a whole message (the first word of `Status:`): the words of one
# part's TP-ST (gsmgw.sms.status), said of the whole.
REPORT_DELIVERED = sms_status.DELIVERED
REPORT_PENDING = sms_status.PENDING
REPORT_FAILED = sms_status.FAILED

# The keys of docs/api.md's message status object, in its order.
API_KEYS = ("id", "to", "status", "modem", "parts", "message_ids", "queued", "sent", "delivered", "fail_reason")

# Where a file of each state lies, most advanced first (a file briefly in two places during a
# move is taken in its later state).
SPOOL_DIRECTORIES = ("sent", "failed", "checked", "outgoing")


class PartReport(Protocol):
    """One part's report facts, read-only; `gsmgw.spool.journal.PartRow` is one."""

    @property
    def seq(self) -> int: ...
    @property
    def mr(self) -> int | None: ...
    @property
    def report(self) -> str | None:
        """None: no report asked; "pending" until one says otherwise; "delivered"/"failed"."""
    @property
    def tp_status(self) -> int | None:
        """TP-ST of the latest report for this part; None: no report yet."""
    @property
    def discharge(self) -> str | None:
        """ISO-8601 discharge time of that report."""


@dataclass(frozen=True)
class Delivery:
    """What the status reports of a message's parts say about the whole message."""

    word: str  # REPORT_DELIVERED, REPORT_PENDING or REPORT_FAILED
    parts: int
    delivered: int  # parts whose report says delivered
    failed: int  # parts whose report says failed for good
    tp_status: int | None  # the deciding part's TP-ST (the failed one; the last delivered; the latest)
    discharge: str | None  # the deciding part's discharge time (for delivered: the last one)

    @property
    def pending(self) -> int:
        """Parts without a final report (none yet, or the service centre still trying)."""
        return self.parts - self.delivered - self.failed

    @property
    def final(self) -> bool:
        return self.word != REPORT_PENDING

    def status_header(self) -> str:
        """The `Status:` value of the sent/ file: the word, the deciding TP-ST and its meaning
        (docs/spool.md), and for a multipart message the counts of its parts."""
        if self.parts > 1 and self.word == REPORT_PENDING:
            return f"pending ({self.delivered} of {self.parts} parts delivered)"
        tp = self.tp_status if self.tp_status is not None else 0
        text = report_status(tp).text(tp)
        if self.parts > 1 and self.word == REPORT_FAILED:
            return f"{text}; {self.failed} of {self.parts} parts failed, {self.delivered} delivered"
        if self.parts > 1:
            return f"{text}; {self.delivered} of {self.parts} parts delivered"
        return text

    def sent_file_headers(self) -> dict[str, str | None]:
        """`Status:` always, `Delivered:` (the last discharge time) once every part is delivered."""
        headers: dict[str, str | None] = {"Status": self.status_header()}
        if self.word == REPORT_DELIVERED:
            headers["Delivered"] = self.discharge or "yes"
        return headers


def delivery(parts: Sequence[PartReport]) -> Delivery | None:
    """The whole message's delivery from its parts' reports (pure); None before any report."""
    if not any(p.tp_status is not None for p in parts):
        return None
    delivered = [p for p in parts if p.report == REPORT_DELIVERED]
    failed = [p for p in parts if p.report == REPORT_FAILED]
    if failed:
        word, decider = REPORT_FAILED, min(failed, key=lambda p: p.seq)
    elif len(delivered) == len(parts):
        word, decider = REPORT_DELIVERED, max(delivered, key=lambda p: p.discharge or "")
    else:
        word = REPORT_PENDING
        decider = max((p for p in parts if p.tp_status is not None), key=lambda p: p.seq)
    return Delivery(
        word=word,
        parts=len(parts),
        delivered=len(delivered),
        failed=len(failed),
        tp_status=decider.tp_status,
        discharge=decider.discharge,
    )


def report_word(status_header: str | None) -> str | None:
    """`delivered`/`pending`/`failed` from a `Status:` value written by `status_header` (or a
    report/ file's), None when there is none."""
    word = (status_header or "").strip().split(" ", 1)[0].lower()
    return word if word in (REPORT_DELIVERED, REPORT_PENDING, REPORT_FAILED) else None


def _expired_reason(reason: str | None) -> bool:
    return bool(re.match(rf"{EXPIRED_REASON}\b", (reason or "").strip(), re.IGNORECASE))


@dataclass(frozen=True)
class MessageStatus:
    """docs/api.md's message status, typed. `to_api()` gives the JSON object of `GET
    /api/v1/messages/{id}`; `report` adds the part counts for readers that show them."""

    id: str
    to: str | None
    status: str  # one of STATUSES
    modem: str | None
    parts: int | None
    message_ids: tuple[int, ...]
    queued: str | None  # ISO-8601
    sent: str | None
    delivered: str | None
    fail_reason: str | None
    report: Delivery | None = None  # None: no status report has come (or none was asked for)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "status": self.status,
            "modem": self.modem,
            "parts": self.parts,
            "message_ids": list(self.message_ids),
            "queued": self.queued,
            "sent": self.sent,
            "delivered": self.delivered,
            "fail_reason": self.fail_reason,
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return _dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def _after_sending(report: Delivery | None) -> tuple[str, str | None]:
    """(status, fail_reason) of a message that left the modem, from its reports."""
    if report is None or report.word == REPORT_PENDING:
        return SENT, None
    if report.word == REPORT_DELIVERED:
        return DELIVERED, None
    return FAILED, f"delivery report: {report.status_header()}"


def from_journal(row: MessageRow, parts: Sequence[Any]) -> MessageStatus:
    """The status of a message the journal knows (pure). `parts` are its `PartRow`s."""
    report = None
    fail_reason = row.fail_reason
    if row.state == QUEUED:
        status = SENDING if any(p.state != PART_PENDING for p in parts) else QUEUED
    elif row.state in (SENDING, FAILED, EXPIRED):
        status = row.state
    else:  # sent; delivered (the journal's own note that every part was)
        report = delivery(parts)
        status, fail_reason = _after_sending(report)
    delivered = None
    if status == DELIVERED:
        delivered = (report.discharge if report else None) or _iso(row.delivered)
    return MessageStatus(
        id=row.name,
        to=row.recipient,
        status=status,
        modem=row.modem or row.bound_modem,
        parts=row.parts,
        message_ids=tuple(p.mr for p in parts if p.mr is not None),
        queued=_iso(row.queued),
        sent=_iso(row.sent),
        delivered=delivered,
        fail_reason=fail_reason,
        report=report,
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _message_ids(value: str | None) -> tuple[int, ...]:
    return tuple(n for n in (_int_or_none(item.strip()) for item in (value or "").split(",")) if n is not None)


def from_file(name: str, dirname: str, data: bytes, mtime_iso: str | None = None) -> MessageStatus:
    """The status of a message from its spool file in `dirname` (pure): for messages the journal
    never knew (refused files) or has pruned. A damaged file still has the state of its directory."""
    try:
        headers = read_spool_file(data).headers
    except SpoolFormatError:
        headers = Headers([])
    get = headers.get
    fail_reason = None
    delivered = None
    if dirname in ("outgoing", "checked"):
        status = QUEUED
    elif dirname == "sent":
        word = report_word(get("Status"))
        status = {REPORT_DELIVERED: DELIVERED, REPORT_FAILED: FAILED}.get(word or "", SENT)
        if status == FAILED:
            fail_reason = f"delivery report: {(get('Status') or '').strip()}"
        if status == DELIVERED:
            delivered = get("Delivered") or get("Discharge")
    else:
        fail_reason = get("Fail_reason")
        status = EXPIRED if _expired_reason(fail_reason) else FAILED
    parts = _int_or_none(get("Parts"))
    if parts is None and status == QUEUED:
        try:
            parts = parse_outgoing(data, now=_dt.datetime.now().astimezone()).parts
        except (SpoolFormatError, ValueError):
            parts = None
    return MessageStatus(
        id=name,
        to=get("To"),
        status=status,
        modem=get("Modem"),
        parts=parts,
        message_ids=_message_ids(get("Message_id")),
        queued=get("Queued") or (mtime_iso if dirname in ("outgoing", "checked") else None),
        sent=get("Sent") if dirname == "sent" else None,
        delivered=delivered,
        fail_reason=fail_reason,
    )


def _mtime_iso(path: str) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(os.stat(path).st_mtime).astimezone().isoformat(timespec="seconds")
    except OSError:
        return None


def lookup(message_id: str, *, journal: Any | None, spool: Any) -> MessageStatus | None:
    """The status of `message_id` (a spool file name): from the journal when it knows it, else
    from the spool's directories; None when neither does. Reads only.

    `journal`: a `gsmgw.spool.journal.Journal` (or None: spool only); `spool`: a
    `gsmgw.spool.store.Spool`. Names that are not plain file names are unknown."""
    if not valid_name(message_id):
        return None
    if journal is not None:
        try:
            row = journal.message(journal.key(message_id))
            if row is not None:
                return from_journal(row, journal.parts(row.id))
        except JournalUnavailable:
            pass  # a cluster's database is away: the spool's files still say where the message is
    for dirname in SPOOL_DIRECTORIES:
        try:
            data = spool.read(dirname, message_id)
        except (OSError, ValueError):
            continue
        return from_file(message_id, dirname, data, _mtime_iso(str(spool.path(dirname, message_id))))
    return None


def valid_name(name: str) -> bool:
    """A spool file name a reader may look up (no paths, no hidden or temporary files)."""
    return (
        bool(name)
        and len(name) <= 255
        and "/" not in name
        and "\x00" not in name
        and not name.startswith(".")
        and not name.lower().endswith((".tmp", ".lock"))
    )
