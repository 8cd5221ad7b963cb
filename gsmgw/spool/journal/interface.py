"""The journal's interface: what the daemon may ask of it, whichever backend holds the rows.

The journal is the durable state that is not a user's file: one row per queued message (the spool
file's name is its id) with its scheduling facts, one row per part with its PDU and send state
(`pending` -> `submitting` -> `submitted`), the sliding-window limits per SIM, report matching,
the inbound parts store, and daily counters. `Journal` below is the contract; every backend
(`gsmgw.spool.journal.sqlite`, the embedded default) implements it, and one shared test suite
(tests/test_journal.py) runs against each.

The rules every backend keeps:
- every method that writes is one transaction, and it has returned only once it is durable;
- `mark_submitting` is committed before `AT+CMGS`, `mark_submitted` after `+CMGS: <mr>`, so a
  part with an MR is never sent again and a part left `submitting` is the only possible duplicate;
- state names are the constants below, in Python and in SQL alike; rows are read by column name;
- times are float seconds since the epoch and come in as parameters (`now`), so tests control
  them; ids are spool file names, never paths.

This module is pure: records, constants and the Protocol, no I/O.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Protocol, Sequence

# Message states. `queued` waits for a modem (also between retries), `sending` is on a modem now.
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
EXPIRED = "expired"
MESSAGE_STATES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, EXPIRED)
FINAL_STATES = (SENT, DELIVERED, FAILED, EXPIRED)

# Part states.
PART_PENDING = "pending"
PART_SUBMITTING = "submitting"
PART_SUBMITTED = "submitted"
PART_STATES = (PART_PENDING, PART_SUBMITTING, PART_SUBMITTED)

# What a part's delivery report says (TS 23.040 §9.2.3.15, as gsmgw.spool.format.report_status words).
REPORT_PENDING = "pending"
REPORT_DELIVERED = "delivered"
REPORT_FAILED = "failed"
FINAL_REPORTS = (REPORT_DELIVERED, REPORT_FAILED)

# Counter kinds (`gsmgw status`: sent_today, failed_today, received_today).
COUNT_SENT = "sent"
COUNT_FAILED = "failed"
COUNT_RECEIVED = "received"

# Priorities, smaller first (SPOOL.md `Priority:`).
PRIORITY = {"high": 0, "normal": 1, "low": 2}

# How long the parts of a joined multipart message are remembered; a repeated part comes within
# minutes (the next sweep), an identical new one would need the same time stamp and reference.
DONE_KEEP = 2 * 86400


def sql_literal(value: str) -> str:
    """A constant above as an SQL string literal. Partial indexes (`WHERE state = 'queued'`) are
    used only when the query names the same literal, so states go into SQL text, not parameters."""
    return "'" + value.replace("'", "''") + "'"


class JournalError(Exception):
    """The journal cannot be opened or is not a gsmgw journal; the message says what to do."""


@dataclass(frozen=True)
class NewPart:
    seq: int
    pdu: str  # hex with the SMSC field, as AT+CMGS takes it
    length: int  # TPDU octets for AT+CMGS


@dataclass(frozen=True)
class NewMessage:
    id: str
    recipient: str
    parts: Sequence[NewPart]
    priority: int = PRIORITY["normal"]
    send_after: float | None = None
    expires: float | None = None
    pinned: str | None = None
    report: bool = False
    client: str | None = None
    callback: str | None = None


@dataclass(frozen=True)
class QueuedMessage:
    """What the scheduler needs to know about a waiting message (no PDUs)."""

    id: str
    recipient: str
    priority: int
    queued: float
    not_before: float
    expires: float | None
    pinned: str | None
    bound_modem: str | None
    bound_imsi: str | None
    parts: int
    pending_parts: int
    attempts: int
    avoid: frozenset[str]  # modems that had a temporary error with it: another is preferred
    refused: frozenset[str]  # modems that gave a permanent error: never again


@dataclass(frozen=True)
class PartRow:
    message: str
    seq: int
    pdu: str
    length: int
    state: str
    modem: str | None
    imsi: str | None
    mr: int | None
    submitted: float | None
    report: str | None
    tp_status: int | None
    discharge: str | None


@dataclass(frozen=True)
class MessageRow:
    id: str
    recipient: str
    state: str
    priority: int
    queued: float
    expires: float | None
    pinned: str | None
    bound_modem: str | None
    bound_imsi: str | None
    parts: int
    attempts: int
    last_error: str | None
    modem: str | None
    imsi: str | None
    sent: float | None
    delivered: float | None
    finished: float | None
    fail_reason: str | None
    report: bool
    client: str | None
    callback: str | None


@dataclass(frozen=True)
class ReportMatch:
    message: MessageRow
    seq: int
    parts: tuple[PartRow, ...]  # every part of the message, after this report was recorded
    all_final: bool  # every part has a final report (delivered or failed)
    delivered: bool  # every part is delivered


@dataclass(frozen=True)
class Recovery:
    """What `recover()` found after a restart."""

    possible_duplicates: tuple[tuple[str, int], ...]  # (message id, part seq) in flight at the crash
    requeued: tuple[str, ...]  # messages that were `sending` and are queued again


@dataclass(frozen=True)
class InboundGroup:
    key: str
    total: int
    pdus: dict[int, str]  # seq -> hex
    modem: str
    imsi: str | None
    first_received: float


# -- rows by column name ----------------------------------------------------------------------
# Each backend selects these columns under these names (sqlite3.Row, psycopg's dict_row) and
# builds its records here, so a column added or reordered cannot shift a value into another field.

MESSAGE_FIELDS = tuple(MessageRow.__dataclass_fields__)
PART_FIELDS = tuple(PartRow.__dataclass_fields__)
QUEUED_FIELDS = (
    "id", "recipient", "priority", "queued", "not_before", "expires", "pinned", "bound_modem",
    "bound_imsi", "parts", "attempts", "avoid", "refused",
)  # and `pending_parts`, computed by the query


def message_row(row: Mapping) -> MessageRow:
    values = {name: row[name] for name in MESSAGE_FIELDS}
    values["report"] = bool(values["report"])
    return MessageRow(**values)


def part_row(row: Mapping) -> PartRow:
    return PartRow(**{name: row[name] for name in PART_FIELDS})


def modem_set(text: str | None) -> frozenset[str]:
    """The avoid/refused columns: modem names joined by commas."""
    return frozenset(filter(None, (text or "").split(",")))


def modem_list(names: Iterable[str]) -> str:
    return ",".join(sorted(names))


def queued_message(row: Mapping) -> QueuedMessage:
    values = {name: row[name] for name in QUEUED_FIELDS}
    values["avoid"] = modem_set(values["avoid"])
    values["refused"] = modem_set(values["refused"])
    return QueuedMessage(pending_parts=row["pending_parts"], **values)


def inbound_group(key: str, rows: Sequence[Mapping]) -> InboundGroup:
    """A group from its stored parts (columns seq, total, pdu, modem, imsi, received)."""
    return InboundGroup(
        key=key,
        total=max(row["total"] for row in rows),
        pdus={row["seq"]: row["pdu"] for row in rows},
        modem=rows[0]["modem"],
        imsi=rows[0]["imsi"],
        first_received=min(row["received"] for row in rows),
    )


def same_number(reported: str, sent: str) -> bool:
    """Is the recipient in a status report the number a part was sent to? Networks give it
    back in their own format (national `0151…` for an international `+49151…`), so beyond
    an exact match the last 9 digits decide (a subscriber number within a country)."""
    if reported == sent:
        return True
    a = "".join(ch for ch in reported if ch.isdigit())
    b = "".join(ch for ch in sent if ch.isdigit())
    if len(a) < 6 or len(b) < 6:
        return False
    tail = min(len(a), len(b), 9)
    return a[-tail:] == b[-tail:]


def day_of(now: float) -> str:
    """The local calendar day that `sent_today` and friends count in."""
    return _dt.datetime.fromtimestamp(now).strftime("%Y-%m-%d")


def report_summary(parts: Sequence[PartRow]) -> tuple[bool, bool]:
    """(all_final, delivered) of a message from its parts' reports."""
    all_final = all(p.report in FINAL_REPORTS for p in parts)
    delivered = all(p.report == REPORT_DELIVERED for p in parts)
    return all_final, delivered


class Journal(Protocol):
    """The journal as the daemon uses it. Only the daemon writes it; every SQL statement stays
    inside a backend, so the daemon never writes SQL."""

    def close(self) -> None: ...

    # -- outgoing: the queue ----------------------------------------------------------------
    def add_messages(self, messages: Iterable[NewMessage], now: float) -> list[str]:
        """Queue messages with their parts in one transaction; returns the ids newly added. An id
        that is queued or sending is left as it is; a finished one is replaced (a reused name)."""
    def queued_candidates(self, now: float, limit: int = 200, offset: int = 0) -> list[QueuedMessage]:
        """`limit` queued messages sendable at `now` (from `offset`), by priority then age; no PDUs."""
    def expired(self, now: float, limit: int = 500) -> list[str]:
        """Queued messages whose `Expires:` has passed."""
    def next_wakeup(self, now: float) -> float | None:
        """The earliest future time at which a queued message becomes sendable or expires."""
    def claim(self, message_id: str, modem: str) -> bool:
        """queued -> sending on `modem` (attempts + 1); False if someone else took it."""
    def pending_parts(self, message_id: str) -> list[PartRow]:
        """Parts without an MR, in order, with their PDUs."""
    def parts(self, message_id: str) -> list[PartRow]: ...
    def mark_submitting(self, message_id: str, seq: int, modem: str, imsi: str | None) -> None:
        """Committed before `AT+CMGS`: from here until `mark_submitted` a crash may duplicate."""
    def mark_submitted(self, message_id: str, seq: int, mr: int, now: float, *, sim: str, report: bool) -> None:
        """Committed after `+CMGS: <mr>`: never sent again; binds the message to this SIM."""
    def unmark_submitting(self, message_id: str, seq: int) -> None:
        """The modem refused the part (nothing went out): pending again."""
    def requeue(self, message_id: str, *, not_before: float, error: str | None, avoid_modem: str | None = None,
                refused_by: str | None = None, count_attempt: bool = True) -> None:
        """A `sending` message back to the queue (retry later, maybe on another modem)."""
    def mark_sent(self, message_id: str, modem: str, imsi: str | None, now: float) -> None:
        """Every part has an MR and the file is in sent/ (delivered if every report came first)."""
    def mark_failed(self, message_id: str, reason: str, now: float, *, state: str = FAILED,
                    modem: str | None = None) -> None: ...
    def record_invalid(self, now: float) -> None:
        """An invalid spool file went to failed/ without being queued (counted as failed)."""
    def forget(self, message_id: str) -> None:
        """Drop a message whose file is gone from checked/."""
    def message(self, message_id: str) -> MessageRow | None: ...
    def messages_in_state(self, *states: str) -> Iterator[str]:
        """Ids in these states, streamed."""
    def fully_submitted(self) -> list[str]:
        """Queued messages whose every part has an MR (a stop fell before their move to sent/)."""
    def count_retrying(self, now: float) -> int:
        """Queued messages tried before, waiting for their next attempt."""
    def retrying(self, limit: int = 1000) -> list[tuple[str, int, str | None]]:
        """Those messages: (id, attempts, last error), most tried first (the console lists them)."""
    def recover(self) -> Recovery:
        """After a restart: parts `submitting` are pending again (named), `sending` messages queued."""

    # -- limits -----------------------------------------------------------------------------
    def submissions_since(self, sim: str, since: float) -> int: ...
    def oldest_submission_since(self, sim: str, since: float) -> float | None: ...

    # -- delivery reports -------------------------------------------------------------------
    def match_report(self, *, imsi: str | None, modem: str, mr: int, recipient: str | None, tp_status: int,
                     report_state: str, discharge: str | None, now: float, window: float) -> ReportMatch | None:
        """Record a status report on the most recent part with this MR and recipient on this SIM
        within `window` seconds, or return None."""

    # -- counters ---------------------------------------------------------------------------
    def count(self, now: float, modem: str, kind: str, n: int = 1) -> None: ...
    def counters_today(self, now: float) -> dict[tuple[str, str], int]:
        """{(modem, kind): n} for today; modem '' holds failures that had no modem."""

    # -- inbound ----------------------------------------------------------------------------
    def store_inbound_part(self, key: str, seq: int, total: int, pdu: str, modem: str, imsi: str | None,
                           now: float) -> InboundGroup:
        """Keep one part of a multipart SMS (before its SIM copy is deleted); the first copy wins."""
    def inbound_groups_older_than(self, before: float) -> list[InboundGroup]: ...
    def complete_inbound_groups(self) -> list[InboundGroup]: ...
    def drop_inbound_group(self, key: str, *, done: Sequence[str] = (), now: float = 0.0) -> None:
        """After the joined message's file is on disk; `done` part keys are remembered DONE_KEEP s."""
    def inbound_part_done(self, key: str) -> bool: ...
    def inbound_file_for(self, key: str) -> tuple[str, bool] | None:
        """(incoming/ name, written) recorded for this single SMS (key: SIM and PDU), or None."""
    def record_inbound_file(self, key: str, name: str, now: float) -> None:
        """Committed before the file is written."""
    def inbound_file_written(self, key: str) -> None: ...

    # -- housekeeping -----------------------------------------------------------------------
    def prune(self, now: float, *, keep_finished: float = 30 * 86400) -> int:
        """Drop limit windows over a day old and finished messages older than `keep_finished`."""
