"""The PostgreSQL journal: one queue that several gsmgw hosts share (CLUSTER.md).

What it holds: the rows of `interface.Journal` (messages with their parts and PDUs, limit windows,
report matching, the inbound parts store, counters), and what a cluster adds: the members with
their leases and their modems' status, which member is sending which message, results that wait
for their origin host, and delivery reports another member received for them.

The cluster rules, each kept in one place here:
- A message's key is "origin/name": the member whose spool holds the file, and its name there.
- Members hold leases in database time (`clock_timestamp()`), so their own clocks do not decide
  who is alive. A member whose lease ran out is reaped once by another live member: its claimed,
  unsubmitted messages go back to the queue at once, and parts it was submitting are named as
  possible duplicates (they may have reached the network).
- Claims read the queue with `FOR UPDATE SKIP LOCKED`: members never wait for each other's
  claims and never claim the same row.
- Fencing: a part becomes `submitting` only in a transaction that also checks that the message is
  this member's and that its lease has at least `fence` seconds left (the submit's timeout and a
  margin). So a member that cannot renew sends nothing new, and when another member takes its
  work, the submits it started are over.
- Results: the origin writes sent/, failed/ and report/ files. A message finished by another
  member stays `filed = false` until its origin has written the file; a report received by
  another member is kept in `report_out` until its origin has written it.
- `LISTEN`/`NOTIFY` (channel `gsmgw_queue`: work is waiting; `gsmgw_filing`, payload the origin:
  results wait; `gsmgw_members`, payload the member: it left, or a modem of it came up or went
  down) wakes the members at once; their periodic rounds make a lost notice harmless.

How it fails: every method is one transaction on one connection, run in a thread of its own and
waited for at most `timeout` seconds: a database that is down, or a network that swallows packets,
makes the call raise `JournalUnavailable` instead of hanging the daemon's loop. Until `reconnect()`
succeeds (the daemon's membership loop tries it), every call raises at once. An MR that could not
be recorded is kept in memory and written first when the connection is back (the part went out;
it must not be sent again).

What it trusts: the database's answers, and nothing a member wrote about itself (its clock, its
modems) beyond showing it. The DSN may carry a password; it is never logged (`masked_dsn`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

from gsmgw.spool.journal.interface import (
    COUNT_FAILED,
    COUNT_SENT,
    DELIVERED,
    DONE_KEEP,
    FAILED,
    FINAL_STATES,
    PART_PENDING,
    PART_SUBMITTED,
    PART_SUBMITTING,
    QUEUED,
    REPORT_DELIVERED,
    REPORT_PENDING,
    SENDING,
    SENT,
    Assign,
    KEY_SEPARATOR,
    Fenced,
    ForwardedReport,
    InboundGroup,
    JournalError,
    JournalBusy,
    JournalUnavailable,
    Lease,
    MemberRow,
    MessageRow,
    NewMessage,
    PartRow,
    QueuedMessage,
    Recovery,
    Released,
    ReportMatch,
    day_of,
    inbound_group,
    message_row,
    modem_list,
    modem_set,
    part_row,
    queued_message,
    report_summary,
    same_number,
    sql_literal as q,
)

log = logging.getLogger("gsmgw.journal")

SCHEMA_VERSION = 1
QUEUE_CHANNEL = "gsmgw_queue"
FILING_CHANNEL = "gsmgw_filing"
MEMBERS_CHANNEL = "gsmgw_members"
MIGRATION_LOCK = 7_361_001  # pg_advisory_lock key: one migration at a time

T = TypeVar("T")

# Version 1: the queue, the cluster's members, results and reports waiting for their origin.
_SCHEMA_V1 = f"""
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE member (
    name         text PRIMARY KEY,
    instance     text NOT NULL,             -- the running process (a restart is a new instance)
    host         text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL,
    joined       timestamptz NOT NULL,
    renewed      timestamptz NOT NULL,
    lease_until  timestamptz NOT NULL,
    clock_offset double precision,          -- the member's clock minus the database's, seconds
    reaped       boolean NOT NULL DEFAULT false,
    modems       jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE message (
    seq         bigserial,                  -- tie-break of equal (priority, queued), as rowid in SQLite
    id          text PRIMARY KEY,           -- origin/name
    origin      text NOT NULL,
    name        text NOT NULL,
    recipient   text NOT NULL,
    state       text NOT NULL,
    priority    integer NOT NULL,
    queued      double precision NOT NULL,
    not_before  double precision NOT NULL,
    expires     double precision,
    pinned      text,
    bound_modem text,
    bound_imsi  text,
    parts       integer NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    avoid       text NOT NULL DEFAULT '',
    refused     text NOT NULL DEFAULT '',
    last_error  text,
    member      text,
    modem       text,
    imsi        text,
    sent        double precision,
    delivered   double precision,
    finished    double precision,
    fail_reason text,
    report      boolean NOT NULL DEFAULT false,
    client      text,
    callback    text,
    filed       boolean NOT NULL DEFAULT true
);
CREATE INDEX message_queue ON message (priority, queued, seq) WHERE state = {q(QUEUED)};
CREATE INDEX message_origin_state ON message (origin, state);
CREATE INDEX message_expires ON message (expires) WHERE state = {q(QUEUED)} AND expires IS NOT NULL;
CREATE INDEX message_not_before ON message (not_before) WHERE state = {q(QUEUED)};
CREATE INDEX message_sending ON message (member) WHERE state = {q(SENDING)};
CREATE INDEX message_unfiled ON message (origin) WHERE NOT filed;
CREATE INDEX message_finished ON message (finished) WHERE finished IS NOT NULL;
CREATE TABLE part (
    message   text NOT NULL,
    seq       integer NOT NULL,
    pdu       text NOT NULL,
    length    integer NOT NULL,
    state     text NOT NULL,
    member    text,
    modem     text,
    imsi      text,
    mr        integer,
    submitted double precision,
    report    text,
    tp_status integer,
    discharge text,
    PRIMARY KEY (message, seq)
);
CREATE INDEX part_mr_imsi ON part (imsi, mr, submitted) WHERE mr IS NOT NULL;
CREATE INDEX part_mr_modem ON part (modem, mr, submitted) WHERE mr IS NOT NULL;
CREATE INDEX part_submitting ON part (member) WHERE state = {q(PART_SUBMITTING)};
CREATE TABLE submission (sim text NOT NULL, at double precision NOT NULL);
CREATE INDEX submission_sim ON submission (sim, at);
CREATE TABLE counter (
    day text NOT NULL, member text NOT NULL, modem text NOT NULL, kind text NOT NULL, n bigint NOT NULL,
    PRIMARY KEY (day, member, modem, kind)
);
CREATE TABLE inbound_part (
    grp      text NOT NULL,
    seq      integer NOT NULL,
    total    integer NOT NULL,
    pdu      text NOT NULL,
    member   text NOT NULL,
    modem    text NOT NULL,
    imsi     text,
    received double precision NOT NULL,
    PRIMARY KEY (grp, seq)
);
CREATE INDEX inbound_part_member ON inbound_part (member, received);
CREATE TABLE inbound_done (key text PRIMARY KEY, at double precision NOT NULL);
CREATE TABLE inbound_written (
    key text PRIMARY KEY, name text NOT NULL, at double precision NOT NULL, written boolean NOT NULL DEFAULT false
);
CREATE TABLE report_out (
    seq       bigserial PRIMARY KEY,
    origin    text NOT NULL,
    message   text NOT NULL,
    part      integer NOT NULL,
    recipient text,
    modem     text NOT NULL,
    mr        integer NOT NULL,
    tp_status integer NOT NULL,
    discharge text,
    received  double precision NOT NULL
);
CREATE INDEX report_out_origin ON report_out (origin, seq);
"""

# (version, DDL): applied in order by `migrate`, each in the transaction that records it.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _SCHEMA_V1),)

_MESSAGE_COLUMNS = (
    "id, recipient, state, priority, queued, expires, pinned, bound_modem, bound_imsi, parts, attempts, "
    "last_error, modem, imsi, sent, delivered, finished, fail_reason, report, client, callback, origin, name, "
    "member, filed"
)
_PART_COLUMNS = "message, seq, pdu, length, state, modem, imsi, mr, submitted, report, tp_status, discharge"
_PENDING_PARTS = (
    f"(SELECT COUNT(*) FROM part p WHERE p.message = m.id AND p.state != {q(PART_SUBMITTED)}) AS pending_parts"
)
_CANDIDATE_COLUMNS = (
    "m.id, m.recipient, m.priority, m.queued, m.not_before, m.expires, m.pinned, m.bound_modem, m.bound_imsi, "
    f"m.parts, m.attempts, m.avoid, m.refused, {_PENDING_PARTS}"
)
# A message past its Expires: is never sent; its origin moves it to failed/ (`expired`).
_CANDIDATES_SQL = (
    f"SELECT {_CANDIDATE_COLUMNS} FROM message m WHERE m.state = {q(QUEUED)} AND m.not_before <= %(now)s "
    "AND (m.expires IS NULL OR m.expires > %(now)s) "
    "ORDER BY m.priority, m.queued, m.seq LIMIT %(limit)s OFFSET %(offset)s"
)
_LEASE_LEFT = "EXTRACT(EPOCH FROM (lease_until - clock_timestamp()))::float8"


def masked_dsn(dsn: str) -> str:
    """The DSN with its password replaced, for logs and error messages."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return "(the configured journal DSN)"
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def split_key(key: str) -> tuple[str, str]:
    """(origin, name) of a message key (`PostgresJournal.key`)."""
    origin, separator, name = key.partition(KEY_SEPARATOR)
    if not separator or not origin or not name:
        raise ValueError(f"{key!r} is not a cluster message key (origin/name); make it with journal.key(name)")
    return origin, name


def _psycopg():
    try:
        import psycopg
    except ImportError as error:
        raise JournalError(
            f"the journal is PostgreSQL, but psycopg is not installed ({error}); install gsmgw with "
            f"its PostgreSQL extra: pip install 'gsmgw[postgresql]'"
        ) from None
    return psycopg


class _Link:
    """One connection to the database, used from any thread, one call at a time, by a thread of
    its own. A call not answered within `timeout` seconds marks the link down and tears the
    connection's socket, so that thread is free again; while the link is down every call fails
    at once, until `probe()` reaches the database again."""

    def __init__(self, dsn: str, *, timeout: float, application_name: str):
        self.dsn = dsn
        self.timeout = timeout
        self.application_name = application_name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsmgw-journal")
        self._connection = None  # used only by the executor's thread
        self.down_reason: str | None = None
        self.down_since: float | None = None
        self._closed = False

    def _connect(self):
        psycopg = _psycopg()
        from psycopg.rows import dict_row

        connection = psycopg.connect(
            self.dsn,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(2, int(self.timeout + 0.999)),
            application_name=self.application_name,
            # A dead peer is noticed by the kernel too, not only by our timeout.
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
            tcp_user_timeout=int(self.timeout * 1000) + 1000,
        )
        # The server's side of a cut: a member whose network froze in the middle of a transaction
        # leaves it open, and its row locks would hide those messages from every other member
        # (their claims skip locked rows). Every transaction here is over in milliseconds, so
        # one idle for twice our timeout belongs to a member that is gone: the server ends it.
        # (The server arms that timer only between statements, so each statement goes out in one
        # message sequence: no pipelines, no executemany.) A network that drops packets is also
        # noticed by the server's own TCP timeout and keepalives. A statement waits for another
        # session's row lock at most half our timeout (JournalBusy then).
        gone = str(max(1000, int(self.timeout * 2000)))
        connection.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false), set_config('lock_timeout', %s, "
            "false), set_config('tcp_user_timeout', %s, false), set_config('tcp_keepalives_idle', '5', false), "
            "set_config('tcp_keepalives_interval', '2', false), set_config('tcp_keepalives_count', '3', false)",
            (gone, str(max(100, int(self.timeout * 500))), gone),
        )
        return connection

    def _run(self, work: Callable[[Any], T]) -> T:
        psycopg = _psycopg()
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = self._connect()
        try:
            return work(self._connection)
        except psycopg.errors.LockNotAvailable:
            raise  # another session holds a row: the connection is fine (JournalBusy)
        except psycopg.OperationalError:
            self._drop_connection()
            raise
        except psycopg.InterfaceError:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - it is broken already; only its resources go
                log.debug("closing a broken journal connection failed", exc_info=True)

    def call(self, work: Callable[[Any], T]) -> T:
        if self._closed:
            raise JournalUnavailable("the journal is closed")
        if self.down_reason is not None:
            raise JournalUnavailable(f"the journal database is unreachable: {self.down_reason}")
        return self._submit(work)

    def _submit(self, work: Callable[[Any], T]) -> T:
        psycopg = _psycopg()
        future = self._executor.submit(self._run, work)
        try:
            return future.result(self.timeout)
        except FutureTimeout:
            self._mark_down(f"no answer within {self.timeout:g} s")
            self._tear()
            raise JournalUnavailable(f"the journal database is unreachable: {self.down_reason}") from None
        except psycopg.errors.LockNotAvailable:
            raise JournalBusy("rows this needs are locked by another member's transaction; it is tried again") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as error:
            self._mark_down(_first_line(error))
            raise JournalUnavailable(f"the journal database is unreachable: {self.down_reason}") from None

    def _mark_down(self, reason: str) -> None:
        if self.down_reason is None:
            self.down_since = time.time()
        self.down_reason = reason

    def _tear(self) -> None:
        """Shut the socket of a connection whose call hangs (a network that swallows packets):
        the read it blocks in returns, the executor's thread is free for the next call."""
        connection = self._connection
        if connection is None:
            return
        try:
            fd = connection.pgconn.socket
            duplicate = socket.socket(fileno=os.dup(fd))
        except Exception:  # noqa: BLE001 - not connected yet: its connect_timeout ends the attempt
            return
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already shut: the peer or the kernel ended it first
        finally:
            duplicate.close()

    def probe(self, work: Callable[[Any], T]) -> T:
        """Run `work` even while the link is down; it is up again when that succeeds."""
        if self._closed:
            raise JournalUnavailable("the journal is closed")
        result = self._submit(work)
        self.down_reason = None
        self.down_since = None
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._tear()
        self._executor.submit(self._drop_connection)
        self._executor.shutdown(wait=True, cancel_futures=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


class PostgresJournal:
    """`interface.ClusterJournal` on PostgreSQL. Thread-safe: calls are serialised on one
    connection. `lease` and `fence` in seconds (see the module docstring)."""

    shared = True

    def __init__(
        self,
        dsn: str,
        *,
        member: str,
        lease: float = 30.0,
        fence: float | None = None,
        timeout: float | None = None,
        create: bool = True,
    ):
        if KEY_SEPARATOR in member:
            raise JournalError(f"the member name {member!r} contains {KEY_SEPARATOR!r}; choose another cluster.member")
        self.dsn = dsn
        self.member = member
        self.lease = lease
        self.fence = fence if fence is not None else lease / 2
        self.timeout = timeout if timeout is not None else max(0.5, min(2.0, lease / 4))
        self.instance = uuid.uuid4().hex
        self._link = _Link(dsn, timeout=self.timeout, application_name=f"gsmgw {member}")
        self._unrecorded: list[tuple[str, int, int, float, str, bool]] = []
        self._unrecorded_lock = threading.Lock()
        self._listeners: list[_Listener] = []
        self.schema: int | None = None
        try:
            schema = self._link.probe(lambda c: _schema_version(c))
        except JournalUnavailable:
            return  # the daemon starts anyway; `reconnect` checks the schema on first contact
        self._check_schema(schema, create)

    # -- connection -------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._link.down_reason is None

    @property
    def unavailable_reason(self) -> str | None:
        return self._link.down_reason

    def _check_schema(self, schema: int, create: bool) -> None:
        if schema == 0 and create:
            schema = self._link.call(lambda c: _migrate(c))[1]
        self.schema = schema
        if schema == 0:
            raise JournalError(
                f"the database {masked_dsn(self.dsn)} holds no gsmgw journal yet; run `gsmgw journal migrate`"
            )
        if schema < SCHEMA_VERSION:
            raise JournalError(
                f"the journal in {masked_dsn(self.dsn)} has schema {schema}, this gsmgw needs "
                f"{SCHEMA_VERSION}; run `gsmgw journal migrate` (once, from one host) and start again"
            )
        if schema > SCHEMA_VERSION:
            raise JournalError(
                f"the journal in {masked_dsn(self.dsn)} has schema {schema}, newer than this gsmgw "
                f"knows ({SCHEMA_VERSION}); upgrade gsmgw on this host to the version of the other members"
            )

    def reconnect(self) -> list[tuple[str, int, str]]:
        schema = self._link.probe(lambda c: _schema_version(c))
        if self.schema != schema:
            self._check_schema(schema, create=True)
        return self._record_unrecorded()

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._link.close()

    def schema_version(self) -> int:
        return self._link.call(lambda c: _schema_version(c))

    def key(self, name: str) -> str:
        return f"{self.member}{KEY_SEPARATOR}{name}"

    def _rows(self, sql: str, params: Mapping | Sequence = ()) -> list[dict]:
        return self._link.call(lambda c: c.execute(sql, params).fetchall())

    def _row(self, sql: str, params: Mapping | Sequence = ()) -> dict | None:
        return self._link.call(lambda c: c.execute(sql, params).fetchone())

    def _tx(self, work: Callable[[Any], T]) -> T:
        def run(connection):
            with connection.transaction():
                return work(connection)

        return self._link.call(run)

    # -- outgoing: queue ----------------------------------------------------------------------

    def add_messages(self, messages: Iterable[NewMessage], now: float) -> list[str]:
        batch = list(messages)

        def work(c) -> list[str]:
            added = []
            for message in batch:
                origin, name = split_key(message.id)
                found = c.execute("SELECT state FROM message WHERE id = %s FOR UPDATE", (message.id,)).fetchone()
                if found is not None:
                    if found["state"] not in FINAL_STATES:
                        continue
                    # A finished message's name reused by a new file: the new message replaces it.
                    c.execute("DELETE FROM part WHERE message = %s", (message.id,))
                    c.execute("DELETE FROM message WHERE id = %s", (message.id,))
                c.execute(
                    "INSERT INTO message (id, origin, name, recipient, state, priority, queued, not_before, expires, "
                    "pinned, parts, report, client, callback) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s)",
                    (message.id, origin, name, message.recipient, QUEUED, message.priority, now,
                     message.send_after if message.send_after is not None else 0.0, message.expires,
                     message.pinned, len(message.parts), message.report, message.client, message.callback),
                )
                c.execute(
                    "INSERT INTO part (message, seq, pdu, length, state) SELECT %s, seq, pdu, length, %s "
                    "FROM unnest(%s::integer[], %s::text[], %s::integer[]) AS p (seq, pdu, length)",
                    (message.id, PART_PENDING, [p.seq for p in message.parts], [p.pdu for p in message.parts],
                     [p.length for p in message.parts]),
                )
                added.append(message.id)
            if added:
                _notify(c, QUEUE_CHANNEL)
            return added

        return self._tx(work)

    def queued_candidates(self, now: float, limit: int = 200, offset: int = 0) -> list[QueuedMessage]:
        rows = self._rows(_CANDIDATES_SQL, {"now": now, "limit": limit, "offset": offset})
        return [queued_message(row) for row in rows]

    def claim_candidates(
        self, now: float, limit: int, offset: int, assign: Assign
    ) -> tuple[int, list[tuple[str, QueuedMessage]]]:
        def work(c):
            lease = c.execute(
                f"SELECT {_LEASE_LEFT} AS left FROM member WHERE name = %s AND instance = %s",
                (self.member, self.instance),
            ).fetchone()
            if lease is None or lease["left"] <= 0:
                raise Fenced(f"the lease of member {self.member} has run out; it claims nothing until renewed")
            rows = c.execute(
                _CANDIDATES_SQL + " FOR UPDATE OF m SKIP LOCKED", {"now": now, "limit": limit, "offset": offset}
            ).fetchall()
            candidates = [queued_message(row) for row in rows]
            chosen = list(assign(candidates)) if candidates else []
            if chosen:
                c.execute(
                    "UPDATE message m SET state = %s, member = %s, modem = chosen.modem, attempts = m.attempts + 1 "
                    "FROM unnest(%s::text[], %s::text[]) AS chosen (id, modem) WHERE m.id = chosen.id",
                    (SENDING, self.member, [message.id for _, message in chosen], [modem for modem, _ in chosen]),
                )
            return len(candidates), chosen

        return self._tx(work)

    def expired(self, now: float, limit: int = 500) -> list[str]:
        """This host's messages only: their origin writes their failed/ files."""
        rows = self._rows(
            f"SELECT id FROM message WHERE state = {q(QUEUED)} AND expires IS NOT NULL AND expires <= %s "
            "AND origin = %s LIMIT %s",
            (now, self.member, limit),
        )
        return [row["id"] for row in rows]

    def next_wakeup(self, now: float) -> float | None:
        row = self._row(
            f"SELECT LEAST((SELECT MIN(not_before) FROM message WHERE state = {q(QUEUED)} AND not_before > %(now)s), "
            f"(SELECT MIN(expires) FROM message WHERE state = {q(QUEUED)} AND expires IS NOT NULL "
            "AND expires > %(now)s)) AS t",
            {"now": now},
        )
        return row["t"] if row else None

    def claim(self, message_id: str, modem: str) -> bool:
        def work(c):
            cursor = c.execute(
                "UPDATE message SET state = %s, member = %s, modem = %s, attempts = attempts + 1 "
                f"WHERE id = (SELECT id FROM message WHERE id = %s AND state = {q(QUEUED)} FOR UPDATE SKIP LOCKED) "
                f"AND EXISTS (SELECT 1 FROM member WHERE name = %s AND instance = %s AND lease_until > clock_timestamp())",
                (SENDING, self.member, modem, message_id, self.member, self.instance),
            )
            return cursor.rowcount == 1

        return self._tx(work)

    def pending_parts(self, message_id: str) -> list[PartRow]:
        rows = self._rows(
            f"SELECT {_PART_COLUMNS} FROM part WHERE message = %s AND state != %s ORDER BY seq",
            (message_id, PART_SUBMITTED),
        )
        return [part_row(row) for row in rows]

    def parts(self, message_id: str) -> list[PartRow]:
        rows = self._rows(f"SELECT {_PART_COLUMNS} FROM part WHERE message = %s ORDER BY seq", (message_id,))
        return [part_row(row) for row in rows]

    def mark_submitting(self, message_id: str, seq: int, modem: str, imsi: str | None) -> None:
        """The fence: committed only while the message is this member's and its lease has at
        least `fence` seconds left, measured at this moment on the database's clock."""

        def work(c):
            cursor = c.execute(
                "UPDATE part SET state = %(submitting)s, member = %(me)s, modem = %(modem)s, imsi = %(imsi)s "
                "WHERE message = %(id)s AND seq = %(seq)s AND state = %(pending)s "
                "AND EXISTS (SELECT 1 FROM message WHERE id = %(id)s AND state = %(sending)s AND member = %(me)s) "
                "AND EXISTS (SELECT 1 FROM member WHERE name = %(me)s AND instance = %(instance)s "
                "AND lease_until >= clock_timestamp() + make_interval(secs => %(fence)s))",
                {"submitting": PART_SUBMITTING, "pending": PART_PENDING, "sending": SENDING, "me": self.member,
                 "instance": self.instance, "modem": modem, "imsi": imsi, "id": message_id, "seq": seq,
                 "fence": self.fence},
            )
            if cursor.rowcount == 1:
                return None
            why = c.execute(
                f"SELECT (SELECT {_LEASE_LEFT} FROM member WHERE name = %s AND instance = %s) AS left, "
                "(SELECT state FROM message WHERE id = %s) AS state, (SELECT member FROM message WHERE id = %s) "
                "AS member", (self.member, self.instance, message_id, message_id),
            ).fetchone()
            return why

        why = self._tx(work)
        if why is None:
            return
        if why["state"] != SENDING or why["member"] != self.member:
            raise Fenced(f"{message_id} is no longer claimed by {self.member} (it is {why['state']} "
                         f"on {why['member'] or 'no member'})")
        raise Fenced(f"the lease of {self.member} has {max(why['left'] or 0.0, 0.0):.1f} s left, less than a "
                     f"submit may take ({self.fence:g} s)")

    def mark_submitted(self, message_id: str, seq: int, mr: int, now: float, *, sim: str, report: bool) -> None:
        try:
            late = self._tx(lambda c: _record_mr(c, self.member, message_id, seq, mr, now, sim, report))
        except JournalUnavailable:
            # The part went out: its MR must be recorded before anyone may send it again.
            with self._unrecorded_lock:
                self._unrecorded.append((message_id, seq, mr, now, sim, report))
            raise
        if late is not None:
            raise Fenced(late)

    def _record_unrecorded(self) -> list[tuple[str, int, str]]:
        with self._unrecorded_lock:
            waiting, self._unrecorded = self._unrecorded, []
        late = []
        for index, (message_id, seq, mr, now, sim, report) in enumerate(waiting):
            try:
                why = self._tx(lambda c: _record_mr(c, self.member, message_id, seq, mr, now, sim, report))
            except JournalUnavailable:
                with self._unrecorded_lock:
                    self._unrecorded[:0] = waiting[index:]
                raise
            if why is not None:
                late.append((message_id, seq, why))
        return late

    def unmark_submitting(self, message_id: str, seq: int) -> None:
        self._tx(lambda c: c.execute(
            "UPDATE part SET state = %s WHERE message = %s AND seq = %s AND state = %s AND member = %s",
            (PART_PENDING, message_id, seq, PART_SUBMITTING, self.member),
        ))

    def requeue(
        self,
        message_id: str,
        *,
        not_before: float,
        error: str | None,
        avoid_modem: str | None = None,
        refused_by: str | None = None,
        count_attempt: bool = True,
    ) -> None:
        def work(c):
            row = c.execute(
                "SELECT avoid, refused FROM message WHERE id = %s AND state = %s AND member = %s FOR UPDATE",
                (message_id, SENDING, self.member),
            ).fetchone()
            if row is None:
                return  # not ours any more: released after our lease ran out
            avoid = set(modem_set(row["avoid"])) | ({avoid_modem} if avoid_modem else set())
            refused = set(modem_set(row["refused"])) | ({refused_by} if refused_by else set())
            c.execute(
                "UPDATE message SET state = %s, not_before = %s, last_error = COALESCE(%s, last_error), avoid = %s, "
                "refused = %s, member = NULL, modem = NULL, attempts = attempts - %s WHERE id = %s",
                (QUEUED, not_before, error, modem_list(avoid), modem_list(refused), 0 if count_attempt else 1,
                 message_id),
            )
            _notify(c, QUEUE_CHANNEL)

        self._tx(work)

    def mark_sent(self, message_id: str, modem: str, imsi: str | None, now: float, *, filed: bool = True) -> None:
        def work(c):
            undelivered = (
                "EXISTS (SELECT 1 FROM part WHERE message = %(id)s "
                f"AND (report IS NULL OR report != {q(REPORT_DELIVERED)}))"
            )
            row = c.execute(
                f"UPDATE message SET state = CASE WHEN NOT {undelivered} THEN {q(DELIVERED)} ELSE {q(SENT)} END, "
                f"delivered = CASE WHEN NOT {undelivered} THEN %(now)s ELSE delivered END, member = NULL, "
                "modem = %(modem)s, imsi = %(imsi)s, sent = %(now)s, finished = %(now)s, filed = %(filed)s "
                f"WHERE id = %(id)s AND (state = {q(QUEUED)} OR (state = {q(SENDING)} AND member = %(me)s)) "
                "RETURNING origin",
                {"id": message_id, "now": now, "modem": modem, "imsi": imsi, "filed": filed, "me": self.member},
            ).fetchone()
            if row is None:
                return  # finished already (another member settled it)
            _count(c, self.member, now, modem, COUNT_SENT)
            if not filed:
                _notify(c, FILING_CHANNEL, row["origin"])

        self._tx(work)

    def mark_failed(
        self,
        message_id: str,
        reason: str,
        now: float,
        *,
        state: str = FAILED,
        modem: str | None = None,
        filed: bool = True,
    ) -> None:
        def work(c):
            row = c.execute(
                "UPDATE message SET state = %s, fail_reason = %s, finished = %s, modem = COALESCE(%s, modem), "
                f"member = NULL, filed = %s WHERE id = %s AND state NOT IN ({','.join(q(s) for s in FINAL_STATES)}) "
                "RETURNING origin",
                (state, reason, now, modem, filed, message_id),
            ).fetchone()
            if row is None:
                return  # finished already
            _count(c, self.member, now, modem or "", COUNT_FAILED)
            if not filed:
                _notify(c, FILING_CHANNEL, row["origin"])

        self._tx(work)

    def record_invalid(self, now: float) -> None:
        self._tx(lambda c: _count(c, self.member, now, "", COUNT_FAILED))

    def forget(self, message_id: str) -> None:
        def work(c):
            c.execute("DELETE FROM part WHERE message = %s", (message_id,))
            c.execute("DELETE FROM message WHERE id = %s", (message_id,))

        self._tx(work)

    def message(self, message_id: str) -> MessageRow | None:
        row = self._row(f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id = %s", (message_id,))
        return message_row(row) if row else None

    def messages_in_state(self, *states: str) -> Iterator[str]:
        """This host's messages (its origin) in these states. Read in pages of keys, so a long
        walk holds no cursor open across calls."""
        after = ""
        while True:
            rows = self._rows(
                "SELECT id FROM message WHERE origin = %s AND state = ANY(%s) AND id > %s ORDER BY id LIMIT 500",
                (self.member, list(states), after),
            )
            if not rows:
                return
            for row in rows:
                yield row["id"]
            after = rows[-1]["id"]

    def fully_submitted(self) -> list[str]:
        """This host's messages only: their origin finishes them (and writes their files)."""
        rows = self._rows(
            f"SELECT m.id FROM message m WHERE m.state = {q(QUEUED)} AND m.origin = %s AND NOT EXISTS "
            f"(SELECT 1 FROM part p WHERE p.message = m.id AND p.state != {q(PART_SUBMITTED)})",
            (self.member,),
        )
        return [row["id"] for row in rows]

    def count_retrying(self, now: float) -> int:
        row = self._row(
            f"SELECT COUNT(*) AS n FROM message WHERE state = {q(QUEUED)} AND attempts > 0 AND origin = %s",
            (self.member,),
        )
        return row["n"] if row else 0

    def retrying(self, limit: int = 1000) -> list[tuple[str, int, str | None]]:
        """This host's queued messages tried before: (spool name, attempts, last error)."""
        rows = self._rows(
            f"SELECT name, attempts, last_error FROM message WHERE state = {q(QUEUED)} AND attempts > 0 "
            "AND origin = %s ORDER BY attempts DESC, queued LIMIT %s", (self.member, limit),
        )
        return [(row["name"], row["attempts"], row["last_error"]) for row in rows]

    # -- restart ----------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """This member's claims from before its restart (its previous instance): parts it was
        submitting are pending again and named, its `sending` messages queued again."""
        released = self._tx(lambda c: _release(c, self.member, keep=()))
        return Recovery(possible_duplicates=released.possible_duplicates, requeued=released.requeued)

    # -- limits -----------------------------------------------------------------------------

    def submissions_since(self, sim: str, since: float) -> int:
        row = self._row("SELECT COUNT(*) AS n FROM submission WHERE sim = %s AND at > %s", (sim, since))
        return row["n"] if row else 0

    def oldest_submission_since(self, sim: str, since: float) -> float | None:
        row = self._row("SELECT MIN(at) AS oldest FROM submission WHERE sim = %s AND at > %s", (sim, since))
        return row["oldest"] if row else None

    # -- delivery reports -------------------------------------------------------------------

    def match_report(
        self,
        *,
        imsi: str | None,
        modem: str,
        mr: int,
        recipient: str | None,
        tp_status: int,
        report_state: str,
        discharge: str | None,
        now: float,
        window: float,
    ) -> ReportMatch | None:
        sim_column, sim_value = ("p.imsi", imsi) if imsi else ("p.modem", modem)

        def work(c):
            rows = c.execute(
                "SELECT p.message, p.seq, m.recipient FROM part p JOIN message m ON m.id = p.message "
                f"WHERE {sim_column} = %s AND p.mr = %s AND p.submitted >= %s ORDER BY p.submitted DESC LIMIT 50",
                (sim_value, mr, now - window),
            ).fetchall()
            row = next((r for r in rows if not recipient or same_number(recipient, r["recipient"])), None)
            if row is None:
                return None
            message_id, seq = row["message"], row["seq"]
            c.execute(
                "UPDATE part SET report = %s, tp_status = %s, discharge = %s WHERE message = %s AND seq = %s",
                (report_state, tp_status, discharge, message_id, seq),
            )
            parts = tuple(part_row(r) for r in c.execute(
                f"SELECT {_PART_COLUMNS} FROM part WHERE message = %s ORDER BY seq", (message_id,)))
            all_final, delivered = report_summary(parts)
            if delivered:
                c.execute("UPDATE message SET state = %s, delivered = %s WHERE id = %s AND state = %s",
                          (DELIVERED, now, message_id, SENT))
            message = message_row(c.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id = %s", (message_id,)).fetchone())
            forwarded = message.origin != self.member
            if forwarded:
                c.execute(
                    "INSERT INTO report_out (origin, message, part, recipient, modem, mr, tp_status, discharge, "
                    "received) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (message.origin, message_id, seq, recipient, modem, mr, tp_status, discharge, now),
                )
                _notify(c, FILING_CHANNEL, message.origin)
            return ReportMatch(message=message, seq=seq, parts=parts, all_final=all_final, delivered=delivered,
                               forwarded=forwarded)

        return self._tx(work)

    # -- counters ---------------------------------------------------------------------------

    def count(self, now: float, modem: str, kind: str, n: int = 1) -> None:
        self._tx(lambda c: _count(c, self.member, now, modem, kind, n))

    def counters_today(self, now: float) -> dict[tuple[str, str], int]:
        rows = self._rows("SELECT modem, kind, n FROM counter WHERE day = %s AND member = %s", (day_of(now), self.member))
        return {(row["modem"], row["kind"]): row["n"] for row in rows}

    # -- inbound parts store ----------------------------------------------------------------

    def store_inbound_part(
        self, key: str, seq: int, total: int, pdu: str, modem: str, imsi: str | None, now: float
    ) -> InboundGroup:
        def work(c):
            c.execute(
                "INSERT INTO inbound_part (grp, seq, total, pdu, member, modem, imsi, received) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (grp, seq) DO NOTHING",
                (key, seq, total, pdu, self.member, modem, imsi, now),
            )
            return _inbound_group(c, key)

        return self._tx(work)

    def inbound_groups_older_than(self, before: float) -> list[InboundGroup]:
        def work(c):
            keys = [row["grp"] for row in c.execute(
                "SELECT grp FROM inbound_part WHERE member = %s GROUP BY grp HAVING MIN(received) <= %s",
                (self.member, before))]
            return [_inbound_group(c, key) for key in keys]

        return self._tx(work)

    def complete_inbound_groups(self) -> list[InboundGroup]:
        def work(c):
            keys = [row["grp"] for row in c.execute(
                "SELECT grp FROM inbound_part WHERE member = %s GROUP BY grp HAVING COUNT(*) >= MAX(total)",
                (self.member,))]
            return [_inbound_group(c, key) for key in keys]

        return self._tx(work)

    def drop_inbound_group(self, key: str, *, done: Sequence[str] = (), now: float = 0.0) -> None:
        def work(c):
            c.execute("DELETE FROM inbound_part WHERE grp = %s", (key,))
            c.execute("INSERT INTO inbound_done (key, at) SELECT key, %s FROM unnest(%s::text[]) AS d (key) "
                      "ON CONFLICT DO NOTHING", (now, list(done)))

        self._tx(work)

    def inbound_part_done(self, key: str) -> bool:
        return self._row("SELECT 1 AS found FROM inbound_done WHERE key = %s", (key,)) is not None

    def inbound_file_for(self, key: str) -> tuple[str, bool] | None:
        row = self._row("SELECT name, written FROM inbound_written WHERE key = %s", (key,))
        return (row["name"], bool(row["written"])) if row else None

    def record_inbound_file(self, key: str, name: str, now: float) -> None:
        self._tx(lambda c: c.execute(
            "INSERT INTO inbound_written (key, name, at, written) VALUES (%s, %s, %s, false) ON CONFLICT (key) "
            "DO UPDATE SET name = EXCLUDED.name, at = EXCLUDED.at, written = false",
            (key, name, now),
        ))

    def inbound_file_written(self, key: str) -> None:
        self._tx(lambda c: c.execute("UPDATE inbound_written SET written = true WHERE key = %s", (key,)))

    # -- housekeeping -----------------------------------------------------------------------

    def prune(self, now: float, *, keep_finished: float = 30 * 86400) -> int:
        """As on SQLite; a finished message whose origin has not written its file yet stays."""
        finished = ",".join(q(state) for state in FINAL_STATES)

        def work(c):
            removed = c.execute("DELETE FROM submission WHERE at < %s", (now - 86400,)).rowcount
            removed += c.execute("DELETE FROM inbound_done WHERE at < %s", (now - DONE_KEEP,)).rowcount
            removed += c.execute("DELETE FROM inbound_written WHERE at < %s", (now - DONE_KEEP,)).rowcount
            old = [row["id"] for row in c.execute(
                f"SELECT id FROM message WHERE state IN ({finished}) AND filed AND finished IS NOT NULL "
                "AND finished < %s", (now - keep_finished,))]
            if old:
                c.execute("DELETE FROM part WHERE message = ANY(%s)", (old,))
                c.execute("DELETE FROM message WHERE id = ANY(%s)", (old,))
            c.execute("DELETE FROM counter WHERE day < %s", (day_of(now - 7 * 86400),))
            return removed + len(old)

        return self._tx(work)

    # -- the cluster ------------------------------------------------------------------------

    def join(self, *, host: str, pid: int, version: str) -> None:
        def work(c):
            row = c.execute(
                f"SELECT instance, host, pid, {_LEASE_LEFT} AS left FROM member WHERE name = %s FOR UPDATE",
                (self.member,),
            ).fetchone()
            if row is not None and row["instance"] != self.instance and row["left"] > 0 and (
                row["host"] != host or (row["pid"] != pid and _process_alive(row["pid"]))
            ):
                raise JournalError(
                    f"the member name {self.member} is in use by {row['host']} (pid {row['pid']}), whose lease "
                    f"has {row['left']:.0f} s left; give each host its own cluster.member, or wait for that "
                    f"process to end"
                )
            c.execute(
                "INSERT INTO member (name, instance, host, pid, version, joined, renewed, lease_until, reaped) "
                "VALUES (%(name)s, %(instance)s, %(host)s, %(pid)s, %(version)s, clock_timestamp(), clock_timestamp(), "
                "clock_timestamp() + make_interval(secs => %(lease)s), false) ON CONFLICT (name) DO UPDATE SET "
                "instance = EXCLUDED.instance, host = EXCLUDED.host, pid = EXCLUDED.pid, version = EXCLUDED.version, "
                "joined = EXCLUDED.joined, renewed = EXCLUDED.renewed, lease_until = EXCLUDED.lease_until, "
                "reaped = false",
                {"name": self.member, "instance": self.instance, "host": host, "pid": pid, "version": version,
                 "lease": self.lease},
            )

        self._tx(work)

    def renew(self, modems: Sequence[Mapping], clock: float, *, announce: bool = False) -> Lease:
        payload = json.dumps(list(modems))

        def work(c):
            before = c.execute(
                f"SELECT instance, reaped, {_LEASE_LEFT} AS left FROM member WHERE name = %s FOR UPDATE",
                (self.member,),
            ).fetchone()
            if before is None or before["instance"] != self.instance:
                raise Fenced(f"member {self.member} was taken over by another process; this one has to stop sending")
            row = c.execute(
                "UPDATE member SET renewed = clock_timestamp(), lease_until = clock_timestamp() + "
                "make_interval(secs => %s), reaped = false, modems = %s::jsonb, "
                "clock_offset = %s - EXTRACT(EPOCH FROM clock_timestamp())::float8 "
                f"WHERE name = %s RETURNING {_LEASE_LEFT} AS left",
                (self.lease, payload, clock, self.member),
            ).fetchone()
            if announce:
                _notify(c, MEMBERS_CHANNEL, self.member)
            return Lease(left=row["left"], lost=before["reaped"] or before["left"] <= 0)

        return self._tx(work)

    def leave(self) -> None:
        """The others see it down and reap it at once, instead of a lease later."""

        def work(c):
            c.execute("UPDATE member SET lease_until = clock_timestamp() WHERE name = %s AND instance = %s",
                      (self.member, self.instance))
            _notify(c, MEMBERS_CHANNEL, self.member)

        self._tx(work)

    def members(self) -> list[MemberRow]:
        rows = self._rows(
            f"SELECT name, host, pid, version, {_LEASE_LEFT} AS left, EXTRACT(EPOCH FROM renewed)::float8 AS renewed, "
            "clock_offset, modems FROM member ORDER BY name"
        )
        return [
            MemberRow(name=row["name"], host=row["host"], pid=row["pid"], version=row["version"],
                      alive=row["left"] > 0, lease_left=row["left"], renewed=row["renewed"],
                      clock_offset=row["clock_offset"], modems=tuple(row["modems"] or ()))
            for row in rows
        ]

    def reap(self) -> list[Released]:
        """A dead member's session may still hold locks (a frozen network): then nothing is
        reaped now (JournalBusy), and the next round reaps it once the server has ended that
        session (idle_in_transaction_session_timeout)."""

        def work(c):
            dead = [row["name"] for row in c.execute(
                "SELECT name FROM member WHERE name != %s AND NOT reaped AND lease_until < clock_timestamp() "
                "FOR UPDATE SKIP LOCKED", (self.member,))]
            released = []
            for name in dead:
                released.append(_release(c, name, keep=()))
                c.execute("UPDATE member SET reaped = true WHERE name = %s", (name,))
            return released

        return self._tx(work)

    def release_mine(self, keep: Iterable[str]) -> Released:
        held = list(keep)
        return self._tx(lambda c: _release(c, self.member, keep=held))

    def unfiled(self, limit: int = 100) -> list[MessageRow]:
        rows = self._rows(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE origin = %s AND NOT filed ORDER BY finished LIMIT %s",
            (self.member, limit),
        )
        return [message_row(row) for row in rows]

    def mark_filed(self, message_ids: Iterable[str]) -> None:
        keys = list(message_ids)
        self._tx(lambda c: c.execute("UPDATE message SET filed = true WHERE id = ANY(%s)", (keys,)))

    def forwarded_reports(self, limit: int = 100) -> list[ForwardedReport]:
        rows = self._rows(
            "SELECT seq, message, part, recipient, modem, mr, tp_status, discharge, received FROM report_out "
            "WHERE origin = %s ORDER BY seq LIMIT %s", (self.member, limit),
        )
        return [ForwardedReport(**row) for row in rows]

    def report_filed(self, seq: int) -> None:
        self._tx(lambda c: c.execute("DELETE FROM report_out WHERE seq = %s", (seq,)))

    def import_rows(self, records: Iterable[tuple[str, Mapping]]) -> dict[str, int]:
        """A single host's SQLite journal (`SqliteJournal.export_rows`) as this member's: its
        messages get this member as their origin. All or nothing, in one transaction, and only
        into a journal that holds nothing of this member yet, while no process of it runs.
        Returns how many rows of each table were imported."""

        def work(c):
            live = c.execute(f"SELECT {_LEASE_LEFT} AS left FROM member WHERE name = %s", (self.member,)).fetchone()
            if live is not None and live["left"] > 0:
                raise JournalError(f"member {self.member} is running (its lease has {live['left']:.0f} s left); "
                                   f"stop gsmgw on that host before importing its journal")
            if c.execute("SELECT 1 FROM message WHERE origin = %s LIMIT 1", (self.member,)).fetchone():
                raise JournalError(f"the journal already holds messages of member {self.member}; a journal is "
                                   f"imported once, into a member that has not run on PostgreSQL yet")
            counts: dict[str, int] = {}
            for table, row in records:
                _import_row(c, self.member, self.key, table, row)
                counts[table] = counts.get(table, 0) + 1
            _notify(c, QUEUE_CHANNEL)
            return counts

        return self._tx(work)

    def database_time(self) -> float:
        row = self._row("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now")
        return row["now"] if row else time.time()

    def listen(self, on_notice: Callable[[str, str], None]) -> Callable[[], None]:
        listener = _Listener(self.dsn, self.member, on_notice, timeout=self.timeout)
        listener.start()
        self._listeners.append(listener)
        return listener.stop


def _process_alive(pid: int) -> bool:
    """Is `pid` a running process on this host? (A member restarted on the same host within its
    lease takes its name over from its dead predecessor; a live one keeps it.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- SQL helpers shared by several methods (each runs inside the caller's transaction) ----------

def _notify(c, channel: str, payload: str = "") -> None:
    c.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def _count(c, member: str, now: float, modem: str, kind: str, n: int = 1) -> None:
    c.execute(
        "INSERT INTO counter (day, member, modem, kind, n) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (day, member, modem, kind) DO UPDATE SET n = counter.n + EXCLUDED.n",
        (day_of(now), member, modem, kind, n),
    )


def _inbound_group(c, key: str) -> InboundGroup:
    rows = c.execute(
        "SELECT seq, total, pdu, modem, imsi, received FROM inbound_part WHERE grp = %s ORDER BY seq", (key,)
    ).fetchall()
    return inbound_group(key, rows)


def _record_mr(c, member: str, message_id: str, seq: int, mr: int, now: float, sim: str, report: bool) -> str | None:
    """Record a part's MR; None when recorded, else why it came too late (and was not recorded).

    The part must still be this member's `submitting` part, or pending in a message nobody has
    claimed since (released after this member's lease ran out, not yet taken): then the MR saves
    a duplicate. If another member has it now, that member sends it again: a duplicate, named."""
    row = c.execute(
        "SELECT p.state AS part_state, p.member AS part_member, p.mr, m.state, m.member FROM part p "
        "JOIN message m ON m.id = p.message WHERE p.message = %s AND p.seq = %s FOR UPDATE OF p, m",
        (message_id, seq),
    ).fetchone()
    if row is None:
        return "the message is no longer in the journal"
    if row["part_state"] == PART_SUBMITTED:
        if row["part_member"] == member and row["mr"] == mr:
            return None  # recorded already: the first attempt committed, its answer was lost
        return "the part was submitted again by another member"
    ours = row["part_state"] == PART_SUBMITTING and row["part_member"] == member
    unclaimed = row["part_state"] == PART_PENDING and row["state"] == QUEUED
    if not (ours or unclaimed):
        return f"another member ({row['member'] or 'none'}) holds the message now and sends the part again"
    c.execute(
        "UPDATE part SET state = %s, member = %s, mr = %s, submitted = %s, report = %s WHERE message = %s AND seq = %s",
        (PART_SUBMITTED, member, mr, now, REPORT_PENDING if report else None, message_id, seq),
    )
    c.execute(
        "UPDATE message SET bound_modem = COALESCE(bound_modem, (SELECT modem FROM part WHERE message = %(id)s "
        "AND seq = %(seq)s)), bound_imsi = COALESCE(bound_imsi, (SELECT imsi FROM part WHERE message = %(id)s "
        "AND seq = %(seq)s)) WHERE id = %(id)s",
        {"id": message_id, "seq": seq},
    )
    c.execute("INSERT INTO submission (sim, at) VALUES (%s, %s)", (sim, now))
    return None


def _release(c, member: str, keep: Sequence[str]) -> Released:
    """A member's claims back to the queue, except `keep`: its `submitting` parts pending again
    (named: they may have reached the network), its `sending` messages queued; one whose every
    part has an MR is sent (its last submit came just before the lease ran out), and its origin
    writes the sent/ file."""
    held = list(keep)
    duplicates = tuple(
        (row["message"], row["seq"]) for row in c.execute(
            "UPDATE part SET state = %s WHERE state = %s AND member = %s AND NOT (message = ANY(%s)) "
            "RETURNING message, seq", (PART_PENDING, PART_SUBMITTING, member, held))
    )
    undelivered = f"EXISTS (SELECT 1 FROM part p WHERE p.message = m.id AND (p.report IS NULL OR p.report != {q(REPORT_DELIVERED)}))"
    last_part = "(SELECT {column} FROM part p WHERE p.message = m.id ORDER BY p.submitted DESC NULLS LAST LIMIT 1)"
    finished = c.execute(
        f"UPDATE message m SET state = CASE WHEN {undelivered} THEN {q(SENT)} ELSE {q(DELIVERED)} END, "
        f"modem = {last_part.format(column='modem')}, imsi = {last_part.format(column='imsi')}, "
        "sent = (SELECT MAX(submitted) FROM part p WHERE p.message = m.id), "
        "finished = (SELECT MAX(submitted) FROM part p WHERE p.message = m.id), "
        f"delivered = CASE WHEN {undelivered} THEN delivered ELSE EXTRACT(EPOCH FROM clock_timestamp())::float8 END, "
        f"member = NULL, filed = false WHERE m.state = {q(SENDING)} AND m.member = %s AND NOT (m.id = ANY(%s)) "
        f"AND NOT EXISTS (SELECT 1 FROM part p WHERE p.message = m.id AND p.state != {q(PART_SUBMITTED)}) "
        "RETURNING m.id, m.origin, m.modem", (member, held),
    ).fetchall()
    for row in finished:
        _count(c, member, time.time(), row["modem"] or "", COUNT_SENT)
    for origin in sorted({row["origin"] for row in finished}):
        _notify(c, FILING_CHANNEL, origin)
    requeued = tuple(
        row["id"] for row in c.execute(
            "UPDATE message SET state = %s, member = NULL, modem = NULL WHERE state = %s AND member = %s "
            "AND NOT (id = ANY(%s)) RETURNING id", (QUEUED, SENDING, member, held))
    )
    if requeued or duplicates:
        _notify(c, QUEUE_CHANNEL)
    return Released(member=member, requeued=tuple(sorted(requeued)), possible_duplicates=tuple(sorted(duplicates)),
                    finished=tuple(sorted(row["id"] for row in finished)))


def _import_row(c, member: str, key: Callable[[str], str], table: str, row: Mapping) -> None:
    """One row of `SqliteJournal.export_rows` as member `member`'s."""
    if table == "message":
        columns = ("recipient", "state", "priority", "queued", "not_before", "expires", "pinned", "bound_modem",
                   "bound_imsi", "parts", "attempts", "avoid", "refused", "last_error", "modem", "imsi", "sent",
                   "delivered", "finished", "fail_reason", "client", "callback")
        c.execute(
            f"INSERT INTO message (id, origin, name, member, report, filed, {', '.join(columns)}) "
            f"VALUES (%s, %s, %s, %s, %s, true, {', '.join(['%s'] * len(columns))})",
            [key(row["id"]), member, row["id"], member if row["state"] == SENDING else None, bool(row["report"]),
             *(row[column] for column in columns)],
        )
        for p in row["part_rows"]:
            c.execute(
                "INSERT INTO part (message, seq, pdu, length, state, member, modem, imsi, mr, submitted, report, "
                "tp_status, discharge) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (key(row["id"]), p["seq"], p["pdu"], p["length"], p["state"],
                 member if p["state"] == PART_SUBMITTING else None, p["modem"], p["imsi"], p["mr"], p["submitted"],
                 p["report"], p["tp_status"], p["discharge"]),
            )
    elif table == "submission":
        c.execute("INSERT INTO submission (sim, at) VALUES (%s, %s)", (row["sim"], row["at"]))
    elif table == "counter":
        c.execute(
            "INSERT INTO counter (day, member, modem, kind, n) VALUES (%s, %s, %s, %s, %s) ON CONFLICT "
            "(day, member, modem, kind) DO UPDATE SET n = counter.n + EXCLUDED.n",
            (row["day"], member, row["modem"], row["kind"], row["n"]),
        )
    elif table == "inbound_part":
        c.execute(
            "INSERT INTO inbound_part (grp, seq, total, pdu, member, modem, imsi, received) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (row["grp"], row["seq"], row["total"], row["pdu"], member, row["modem"], row["imsi"], row["received"]),
        )
    elif table == "inbound_done":
        c.execute("INSERT INTO inbound_done (key, at) VALUES (%s, %s) ON CONFLICT DO NOTHING", (row["key"], row["at"]))
    elif table == "inbound_written":
        c.execute("INSERT INTO inbound_written (key, name, at, written) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                  (row["key"], row["name"], row["at"], bool(row["written"])))
    else:
        raise JournalError(f"the export holds a table {table!r} this gsmgw does not know; export it with the same "
                           f"gsmgw version that imports it")


def _schema_version(c) -> int:
    """0 for a database without a gsmgw journal."""
    # A plain query, not to_regclass(): its fresh snapshot sees a table another host has just
    # created (the catalog cache of a waiting transaction may not yet).
    table = c.execute(
        "SELECT 1 AS found FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'meta'"
    ).fetchone()
    if table is None:
        return 0
    row = c.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return int(row["value"]) if row else 0


def _migrate(c) -> tuple[int, int]:
    """Apply the migrations the database lacks, one transaction each, under an advisory lock (two
    hosts starting at once migrate once). Returns (version before, version after)."""
    # The lock is taken before the transaction, so the transaction's first look at the schema
    # comes after the other host's migration has committed.
    c.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with c.transaction():
            before = _schema_version(c)
            if before > SCHEMA_VERSION:
                return before, before
            for version, ddl in MIGRATIONS:
                if version <= before:
                    continue
                c.execute(ddl)
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', %s) ON CONFLICT (key) DO UPDATE SET value = "
                    "EXCLUDED.value", (str(version),),
                )
            return before, _schema_version(c)
    finally:
        c.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def inspect_database(dsn: str, *, timeout: float = 5.0) -> dict:
    """What `gsmgw doctor` checks, read only: {"schema": n (0: no journal), "skew": this host's
    clock minus the database's (s), "members": [{"name", "alive", "clock_offset", "modems"}]}.
    JournalUnavailable when it cannot connect."""
    link = _Link(dsn, timeout=timeout, application_name="gsmgw doctor")

    def work(c):
        before = time.time()
        now = c.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now").fetchone()["now"]
        skew = (before + time.time()) / 2 - now
        schema = _schema_version(c)
        members = []
        if schema >= 1:
            members = [
                {"name": row["name"], "alive": row["left"] > 0, "clock_offset": row["clock_offset"],
                 "modems": [modem.get("name") for modem in row["modems"] or ()]}
                for row in c.execute(f"SELECT name, {_LEASE_LEFT} AS left, clock_offset, modems FROM member "
                                     "ORDER BY name")
            ]
        return {"schema": schema, "skew": skew, "members": members}

    try:
        return link.probe(work)
    finally:
        link.close()


def migrate(dsn: str, *, timeout: float = 30.0) -> tuple[int, int]:
    """`gsmgw journal migrate`: bring the database's schema to this gsmgw's (before, after)."""
    link = _Link(dsn, timeout=timeout, application_name="gsmgw journal migrate")
    try:
        return link.probe(lambda c: _migrate(c))
    finally:
        link.close()


class _Listener:
    """LISTEN on a connection of its own, in a thread of its own; `on_notice(channel, payload)`
    for each notice, and ("reconnected", "") after a reconnection (notices may have been missed)."""

    def __init__(self, dsn: str, member: str, on_notice: Callable[[str, str], None], *, timeout: float):
        self.dsn = dsn
        self.member = member
        self.on_notice = on_notice
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gsmgw-listen-{member}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        psycopg = _psycopg()
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(2, int(self.timeout + 0.999)),
                                     application_name=f"gsmgw {self.member} listen") as connection:
                    connection.execute(f"LISTEN {QUEUE_CHANNEL}")
                    connection.execute(f"LISTEN {FILING_CHANNEL}")
                    connection.execute(f"LISTEN {MEMBERS_CHANNEL}")
                    if not first:
                        self.on_notice("reconnected", "")
                    first = False
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self.on_notice(notice.channel, notice.payload)
            except psycopg.Error as error:
                log.debug("journal listener: %s; connecting again", _first_line(error))
                self._stop.wait(1.0)
