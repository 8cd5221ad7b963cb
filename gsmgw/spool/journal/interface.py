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
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

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

# Priorities, smaller first (docs/spool.md `Priority:`).
PRIORITY = {"high": 0, "normal": 1, "low": 2}

# How long the parts of a joined multipart message are remembered; a repeated part comes within
# minutes (the next sweep), an identical new one would need the same time stamp and reference.
DONE_KEEP = 2 * 86400


KEY_SEPARATOR = "/"  # in a cluster a key is "origin/name"; spool names and member names never hold it


def key_name(key: str) -> str:
    """The spool file name in a message key (a single host's keys are the names themselves)."""
    return key.rpartition(KEY_SEPARATOR)[2]


def sql_literal(value: str) -> str:
    """A constant above as an SQL string literal. Partial indexes (`WHERE state = 'queued'`) are
    used only when the query names the same literal, so states go into SQL text, not parameters."""
    return "'" + value.replace("'", "''") + "'"


class JournalError(Exception):
    """The journal cannot be opened or is not a gsmgw journal; the message says what to do."""


class JournalUnavailable(JournalError, ConnectionError):
    """The journal's database cannot be reached right now (PostgreSQL down, network cut, no
    answer in time). Nothing was changed by the call that raised it, or its outcome is unknown
    and the backend settles it when the connection is back. Callers pause the work that needs
    the journal and go on with the rest: doors accept into the spool, SMS stay on the SIM."""


class JournalBusy(JournalUnavailable):
    """What the call needed is locked by another member's transaction right now (one whose
    network froze holds it until the server ends it). Nothing was changed; try again later.
    The database itself is reachable."""


class Fenced(JournalError):
    """This member may not do what it asked: its lease has less time left than a submit may take,
    or the message is no longer claimed by it (another member released it after its lease ran
    out). Nothing was changed; the message is for whoever holds it now."""


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
    id: str  # the journal's key: the spool name on SQLite, "origin/name" in a cluster (see Journal.key)
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
    origin: str  # the member whose spool holds the file (it writes sent/, failed/, report/)
    name: str  # the file's name in the origin's spool
    member: str | None  # the member whose modem has it while it is `sending`
    filed: bool  # False: finished, and the origin has not written its result file yet


@dataclass(frozen=True)
class ReportMatch:
    message: MessageRow
    seq: int
    parts: tuple[PartRow, ...]  # every part of the message, after this report was recorded
    all_final: bool  # every part has a final report (delivered or failed)
    delivered: bool  # every part is delivered
    forwarded: bool = False  # the message's origin is another member: it writes the report file


@dataclass(frozen=True)
class ForwardedReport:
    """A delivery report another member's modem received for a message of this host's spool."""

    seq: int  # its place in the journal's list (report_filed takes it)
    message: str  # the message's key
    part: int
    recipient: str | None
    modem: str  # the modem that received the report
    mr: int
    tp_status: int
    discharge: str | None  # ISO-8601
    received: float


@dataclass(frozen=True)
class Released:
    """What the journal did with a member's claims when they were released (its lease ran out,
    or it came back after losing it)."""

    member: str
    requeued: tuple[str, ...]  # messages back in the queue
    possible_duplicates: tuple[tuple[str, int], ...]  # (key, seq): parts it may have submitted
    finished: tuple[str, ...] = ()  # every part had an MR: sent now, the origin writes the file


@dataclass(frozen=True)
class Lease:
    left: float  # seconds of this member's lease left (database time)
    lost: bool  # it had run out (or was released by another member) before this renewal


@dataclass(frozen=True)
class MemberRow:
    """A member as the journal knows it; `modems` are the status objects it published last."""

    name: str
    host: str
    pid: int
    version: str
    alive: bool  # its lease has not run out
    lease_left: float  # seconds; negative: ran out that long ago
    renewed: float  # time of its last renewal (database clock)
    clock_offset: float | None  # its clock minus the database's at that renewal, seconds
    modems: tuple[Mapping, ...]


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


def message_row(row: Mapping, defaults: Mapping | None = None) -> MessageRow:
    """`defaults`: values of fields a backend does not store (SQLite has one origin, itself)."""
    keys = row.keys()
    values = {name: row[name] if name in keys else defaults[name] for name in MESSAGE_FIELDS}  # type: ignore[index]
    values["report"] = bool(values["report"])
    values["filed"] = bool(values["filed"])
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


Assign = Callable[[Sequence[QueuedMessage]], Sequence[tuple[str, QueuedMessage]]]


class Journal(Protocol):
    """The journal as the daemon uses it. Only the daemon writes it; every SQL statement stays
    inside a backend, so the daemon never writes SQL.

    Message ids are the journal's keys (`key(name)`): a spool file's name on a single host, the
    origin member and the name in a cluster, where two hosts may hold files of the same name."""

    member: str  # this host's name among the journal's members (cluster.member)
    shared: bool  # several members share it (PostgreSQL): results may belong to another origin

    def close(self) -> None: ...
    def key(self, name: str) -> str:
        """The id of the message this host's spool holds as `name`."""

    # -- outgoing: the queue ----------------------------------------------------------------
    def add_messages(self, messages: Iterable[NewMessage], now: float) -> list[str]:
        """Queue messages (`NewMessage.id` is the key) with their parts in one transaction; returns
        the keys newly added. A key that is queued or sending is left as it is; a finished one is
        replaced (a reused file name)."""
    def queued_candidates(self, now: float, limit: int = 200, offset: int = 0) -> list[QueuedMessage]:
        """`limit` queued messages sendable at `now` (from `offset`), by priority then age; no PDUs."""
    def claim_candidates(self, now: float, limit: int, offset: int, assign: Assign) -> tuple[int, list[tuple[str, QueuedMessage]]]:
        """In one transaction: read up to `limit` sendable messages from `offset` (in a cluster,
        skipping rows another member is claiming at this moment: `FOR UPDATE SKIP LOCKED`), let
        `assign` choose (modem, message) pairs among them, and mark those `sending` on their
        modems. Returns (messages read, pairs claimed). Raises Fenced when this member's lease
        has run out (it claims nothing then)."""
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
        """Committed before `AT+CMGS`: from here until `mark_submitted` a crash may duplicate.
        In a cluster only while the message is this member's and its lease outlasts a submit
        (the fence); Fenced otherwise, and nothing may be sent."""
    def mark_submitted(self, message_id: str, seq: int, mr: int, now: float, *, sim: str, report: bool) -> None:
        """Committed after `+CMGS: <mr>`: never sent again; binds the message to this SIM."""
    def unmark_submitting(self, message_id: str, seq: int) -> None:
        """The modem refused the part (nothing went out): pending again."""
    def requeue(self, message_id: str, *, not_before: float, error: str | None, avoid_modem: str | None = None,
                refused_by: str | None = None, count_attempt: bool = True) -> None:
        """A `sending` message of this member back to the queue (retry later, maybe elsewhere)."""
    def mark_sent(self, message_id: str, modem: str, imsi: str | None, now: float, *, filed: bool = True) -> None:
        """Every part has an MR (delivered if every report came first). `filed`: the caller is the
        message's origin and its file is in sent/; else the origin writes it (`unfiled`)."""
    def mark_failed(self, message_id: str, reason: str, now: float, *, state: str = FAILED,
                    modem: str | None = None, filed: bool = True) -> None: ...
    def record_invalid(self, now: float) -> None:
        """An invalid spool file went to failed/ without being queued (counted as failed)."""
    def forget(self, message_id: str) -> None:
        """Drop a message whose file is gone from checked/."""
    def message(self, message_id: str) -> MessageRow | None: ...
    def messages_in_state(self, *states: str) -> Iterator[str]:
        """Keys of this host's messages (its origin) in these states, streamed."""
    def fully_submitted(self) -> list[str]:
        """Queued messages whose every part has an MR (a stop fell before they were finished)."""
    def count_retrying(self, now: float) -> int:
        """This host's queued messages tried before, waiting for their next attempt."""
    def retrying(self, limit: int = 1000) -> list[tuple[str, int, str | None]]:
        """Those messages: (spool name, attempts, last error), most tried first (the console lists them)."""
    def recover(self) -> Recovery:
        """After a restart: this member's parts `submitting` are pending again (named), its
        `sending` messages queued again."""

    # -- limits -----------------------------------------------------------------------------
    def submissions_since(self, sim: str, since: float) -> int: ...
    def oldest_submission_since(self, sim: str, since: float) -> float | None: ...

    # -- delivery reports -------------------------------------------------------------------
    def match_report(self, *, imsi: str | None, modem: str, mr: int, recipient: str | None, tp_status: int,
                     report_state: str, discharge: str | None, now: float, window: float) -> ReportMatch | None:
        """Record a status report on the most recent part with this MR and recipient on this SIM
        within `window` seconds, or return None. When the message's origin is another member,
        the report is kept for it in the same transaction (`ReportMatch.forwarded`)."""

    # -- counters ---------------------------------------------------------------------------
    def count(self, now: float, modem: str, kind: str, n: int = 1) -> None: ...
    def counters_today(self, now: float) -> dict[tuple[str, str], int]:
        """{(modem, kind): n} for today on this member; modem '' holds failures that had no modem."""

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
    def schema_version(self) -> int:
        """The version of the schema the database holds now."""


class ClusterJournal(Journal, Protocol):
    """What a journal shared by several members adds (PostgreSQL; CLUSTER.md). The daemon's
    `gsmgw.daemon.cluster.Membership` is its only user."""

    lease: float  # seconds a member stays alive without renewing
    fence: float  # seconds of lease `mark_submitting` demands (a submit's timeout and a margin)
    available: bool  # False while the database cannot be reached (calls raise JournalUnavailable)

    def reconnect(self) -> list[tuple[str, int, str]]:
        """Try to reach the database again (blocking, bounded by the timeout). First writes the
        MRs that `mark_submitted` could not; returns those that came too late: (key, seq, why).
        JournalUnavailable while it is still unreachable."""
    def join(self, *, host: str, pid: int, version: str) -> None:
        """Become a member (JournalError when a live member of the same name is another process)."""
    def renew(self, modems: Sequence[Mapping], clock: float, *, announce: bool = False) -> Lease:
        """Extend this member's lease by `lease` seconds and publish its modems' status;
        `announce`: tell the other members to read it now (a modem came up or went down)."""
    def leave(self) -> None:
        """Shutdown: end this member's lease now and tell the others, so they take over at once."""
    def members(self) -> list[MemberRow]: ...
    def reap(self) -> list[Released]:
        """Release the claims of members whose lease ran out (once each); the others skip a
        member one of them is reaping."""
    def release_mine(self, keep: Iterable[str]) -> Released:
        """Back from an outage: release this member's claims except the messages in `keep`
        (those its modems still hold)."""
    def unfiled(self, limit: int = 100) -> list[MessageRow]:
        """This host's finished messages whose result file is not written yet."""
    def mark_filed(self, message_ids: Iterable[str]) -> None:
        """Their origin has written their result files."""
    def forwarded_reports(self, limit: int = 100) -> list[ForwardedReport]:
        """Reports other members received for this host's messages, oldest first."""
    def report_filed(self, seq: int) -> None: ...
    def database_time(self) -> float:
        """The database's clock (seconds since the epoch)."""
    def listen(self, on_notice: Callable[[str, str], None]) -> Callable[[], None]:
        """Call `on_notice(channel, payload)` from a thread of its own when another member signals
        (queue: work is waiting; filing: results wait for their origin; members: a member left or
        its modems came up or went down); returns the stopper."""
