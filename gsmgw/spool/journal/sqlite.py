"""The SQLite journal: the embedded default, one file in the state directory.

What it holds (`journal.sqlite` in the state directory): the rows of `interface.Journal` (messages,
parts, limit windows, inbound parts store, counters). Only the daemon on this host uses it.

How it fails: every write is one transaction (`BEGIN IMMEDIATE`). The database runs in WAL mode
with `synchronous=FULL`, so a commit that returned is on disk; a `kill -9` or power loss loses at
most a transaction that had not returned. A database that cannot be opened raises `JournalError`
with the path and what to do.

What it trusts: only itself. Ids are spool file names, never paths.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from types import TracebackType
from typing import Iterable, Iterator, Sequence

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
    InboundGroup,
    MessageRow,
    NewMessage,
    PartRow,
    Assign,
    QueuedMessage,
    Recovery,
    ReportMatch,
    JournalError,
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

SCHEMA_VERSION = 1
JOURNAL_FILE = "journal.sqlite"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS message (
    id          TEXT PRIMARY KEY,
    recipient   TEXT NOT NULL,
    state       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    queued      REAL NOT NULL,
    not_before  REAL NOT NULL,
    expires     REAL,
    pinned      TEXT,
    bound_modem TEXT,
    bound_imsi  TEXT,
    parts       INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    avoid       TEXT NOT NULL DEFAULT '',
    refused     TEXT NOT NULL DEFAULT '',
    last_error  TEXT,
    modem       TEXT,
    imsi        TEXT,
    sent        REAL,
    delivered   REAL,
    finished    REAL,
    fail_reason TEXT,
    report      INTEGER NOT NULL DEFAULT 0,
    client      TEXT,
    callback    TEXT
);
-- The scheduler's scan: only queued rows, in priority then age order.
CREATE INDEX IF NOT EXISTS message_queue ON message (priority, queued) WHERE state = {q(QUEUED)};
CREATE INDEX IF NOT EXISTS message_state ON message (state);
-- Expiry and the next timer: MIN()/range over queued rows only.
CREATE INDEX IF NOT EXISTS message_expires ON message (expires) WHERE state = {q(QUEUED)} AND expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS message_not_before ON message (not_before) WHERE state = {q(QUEUED)};
CREATE TABLE IF NOT EXISTS part (
    message   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    pdu       TEXT NOT NULL,
    length    INTEGER NOT NULL,
    state     TEXT NOT NULL,
    modem     TEXT,
    imsi      TEXT,
    mr        INTEGER,
    submitted REAL,
    report    TEXT,
    tp_status INTEGER,
    discharge TEXT,
    PRIMARY KEY (message, seq)
) WITHOUT ROWID;
-- Report matching: the most recent part with this MR on this SIM.
CREATE INDEX IF NOT EXISTS part_mr ON part (imsi, mr, submitted) WHERE mr IS NOT NULL;
CREATE INDEX IF NOT EXISTS part_state ON part (state) WHERE state = {q(PART_SUBMITTING)};
CREATE TABLE IF NOT EXISTS submission (sim TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS submission_sim ON submission (sim, at);
CREATE TABLE IF NOT EXISTS counter (
    day TEXT NOT NULL, modem TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (day, modem, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbound_part (
    grp      TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    total    INTEGER NOT NULL,
    pdu      TEXT NOT NULL,
    modem    TEXT NOT NULL,
    imsi     TEXT,
    received REAL NOT NULL,
    PRIMARY KEY (grp, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbound_part_received ON inbound_part (received);
-- Parts of multipart messages already written out, by (SIM, PDU): a part read again (its SIM
-- copy's deletion did not happen, or the network repeated it) must not start a new message.
CREATE TABLE IF NOT EXISTS inbound_done (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
-- Single SMS by (SIM, PDU) and the incoming/ file they became, recorded before the file is
-- written (written = 0) and marked once it is (1): a SIM copy found again after a crash that
-- fell before its deletion is only deleted, even if a consumer has moved the file away.
CREATE TABLE IF NOT EXISTS inbound_written (
    key TEXT PRIMARY KEY, name TEXT NOT NULL, at REAL NOT NULL, written INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""

_MESSAGE_COLUMNS = (
    "id, recipient, state, priority, queued, expires, pinned, bound_modem, bound_imsi, parts, "
    "attempts, last_error, modem, imsi, sent, delivered, finished, fail_reason, report, client, "
    "callback, id AS name"
)
_PART_COLUMNS = "message, seq, pdu, length, state, modem, imsi, mr, submitted, report, tp_status, discharge"

# The scheduler's scan. INDEXED BY: without ANALYZE statistics SQLite would pick the state index
# and sort all queued rows; the partial index yields them already in order.
CANDIDATES_SQL = (
    "SELECT m.id AS id, m.recipient AS recipient, m.priority AS priority, m.queued AS queued, "
    "m.not_before AS not_before, m.expires AS expires, m.pinned AS pinned, m.bound_modem AS bound_modem, "
    "m.bound_imsi AS bound_imsi, m.parts AS parts, m.attempts AS attempts, m.avoid AS avoid, "
    "m.refused AS refused, "
    f"(SELECT COUNT(*) FROM part p WHERE p.message = m.id AND p.state != {q(PART_SUBMITTED)}) AS pending_parts "
    f"FROM message m INDEXED BY message_queue WHERE m.state = {q(QUEUED)} AND m.not_before <= ? "
    "ORDER BY m.priority, m.queued, m.rowid LIMIT ? OFFSET ?"
)


class SqliteJournal:
    """The SQLite journal (`interface.Journal`). One instance per process; not shared between threads."""

    shared = False

    def __init__(self, path: str | os.PathLike[str], *, member: str | None = None):
        self.path = os.fspath(path)
        self.member = member or socket.gethostname()
        # One host, one origin: every message is this host's, and its results are written at once.
        self._row_defaults = {"origin": self.member, "member": None, "filed": True}
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as error:
            raise JournalError(
                f"cannot open the journal {self.path}: {error}; check that the state directory "
                f"exists and is writable by the user running gsmgw"
            ) from error
        self._db.row_factory = sqlite3.Row
        try:
            # WAL + FULL: a commit that returned survives kill -9 and power loss.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.executescript(_SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(found["value"]) > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} was written by a newer gsmgw (schema {found['value']}); "
                    f"run that version, or move the file away to start with an empty journal"
                )
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise JournalError(
                f"the journal {self.path} is damaged or not a gsmgw journal ({error}); move it "
                f"away (gsmgw rebuilds the queue from checked/ at start) and start again"
            ) from error

    def close(self) -> None:
        self._db.close()

    def key(self, name: str) -> str:
        return name

    def schema_version(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return int(row["value"])

    # -- transactions -----------------------------------------------------------------------

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db)

    # -- outgoing: queue ----------------------------------------------------------------------

    def add_messages(self, messages: Iterable[NewMessage], now: float) -> list[str]:
        """Queue messages with their parts in one transaction; returns the ids newly added.

        An id that is queued or sending is left as it is: claiming the same file twice (recovery
        after a crash between claim and journal) must not reset its progress. An id whose
        message is finished is a new message under a reused file name: it replaces the old row.
        """
        added = []
        with self._tx() as db:
            for message in messages:
                found = db.execute("SELECT state FROM message WHERE id = ?", (message.id,)).fetchone()
                if found is not None and found["state"] in FINAL_STATES:
                    # The name was used before and that message is finished (its file left
                    # sent/ or failed/): this is a new message under an old name.
                    db.execute("DELETE FROM part WHERE message = ?", (message.id,))
                    db.execute("DELETE FROM message WHERE id = ?", (message.id,))
                cursor = db.execute(
                    "INSERT OR IGNORE INTO message (id, recipient, state, priority, queued, "
                    "not_before, expires, pinned, parts, report, client, callback) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.id,
                        message.recipient,
                        QUEUED,
                        message.priority,
                        now,
                        message.send_after if message.send_after is not None else 0.0,
                        message.expires,
                        message.pinned,
                        len(message.parts),
                        int(message.report),
                        message.client,
                        message.callback,
                    ),
                )
                if cursor.rowcount != 1:
                    continue
                db.executemany(
                    "INSERT INTO part (message, seq, pdu, length, state) VALUES (?, ?, ?, ?, ?)",
                    [(message.id, part.seq, part.pdu, part.length, PART_PENDING) for part in message.parts],
                )
                added.append(message.id)
        return added

    def queued_candidates(self, now: float, limit: int = 200, offset: int = 0) -> list[QueuedMessage]:
        """`limit` queued messages that may be sent now (from `offset`), by priority then age.

        Uses the partial index, so the cost does not grow with sent history; rows waiting for
        `Send_after` or a retry are skipped in SQL.
        """
        rows = self._db.execute(CANDIDATES_SQL, (now, limit, offset)).fetchall()
        return [queued_message(row) for row in rows]

    def claim_candidates(
        self, now: float, limit: int, offset: int, assign: Assign
    ) -> tuple[int, list[tuple[str, QueuedMessage]]]:
        """Read, choose and claim in one transaction (one fsync for every modem that gets work)."""
        with self._tx() as db:
            candidates = [queued_message(row) for row in db.execute(CANDIDATES_SQL, (now, limit, offset))]
            chosen = list(assign(candidates)) if candidates else []
            db.executemany(
                "UPDATE message SET state = ?, modem = ?, attempts = attempts + 1 WHERE id = ? AND state = ?",
                [(SENDING, modem, message.id, QUEUED) for modem, message in chosen],
            )
        return len(candidates), chosen

    def expired(self, now: float, limit: int = 500) -> list[str]:
        """Queued messages whose `Expires:` has passed (they are failed with reason `expired`)."""
        rows = self._db.execute(
            f"SELECT id FROM message INDEXED BY message_expires WHERE state = {q(QUEUED)} "
            "AND expires IS NOT NULL AND expires <= ? LIMIT ?",
            (now, limit),
        ).fetchall()
        return [row["id"] for row in rows]

    def next_wakeup(self, now: float) -> float | None:
        """The earliest future time at which a queued message becomes sendable or expires."""
        row = self._db.execute(
            "SELECT MIN(t) AS t FROM (SELECT MIN(not_before) AS t FROM message INDEXED BY message_not_before "
            f"WHERE state = {q(QUEUED)} AND not_before > ? UNION ALL SELECT MIN(expires) FROM message "
            f"INDEXED BY message_expires WHERE state = {q(QUEUED)} AND expires IS NOT NULL AND expires > ?)",
            (now, now),
        ).fetchone()
        return row["t"]

    def claim(self, message_id: str, modem: str) -> bool:
        """Mark a queued message as `sending` on `modem`; False if someone else took it."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE message SET state = ?, modem = ?, attempts = attempts + 1 WHERE id = ? AND state = ?",
                (SENDING, modem, message_id, QUEUED),
            )
            return cursor.rowcount == 1

    def pending_parts(self, message_id: str) -> list[PartRow]:
        """Parts that have no MR yet, in order (the only PDUs ever loaded: one message's)."""
        rows = self._db.execute(
            f"SELECT {_PART_COLUMNS} FROM part WHERE message = ? AND state != ? ORDER BY seq",
            (message_id, PART_SUBMITTED),
        ).fetchall()
        return [part_row(row) for row in rows]

    def parts(self, message_id: str) -> list[PartRow]:
        rows = self._db.execute(
            f"SELECT {_PART_COLUMNS} FROM part WHERE message = ? ORDER BY seq", (message_id,)
        ).fetchall()
        return [part_row(row) for row in rows]

    def mark_submitting(self, message_id: str, seq: int, modem: str, imsi: str | None) -> None:
        """Committed before `AT+CMGS`: from here until `mark_submitted` a crash may duplicate."""
        with self._tx() as db:
            db.execute(
                "UPDATE part SET state = ?, modem = ?, imsi = ? WHERE message = ? AND seq = ?",
                (PART_SUBMITTING, modem, imsi, message_id, seq),
            )

    def mark_submitted(
        self, message_id: str, seq: int, mr: int, now: float, *, sim: str, report: bool
    ) -> None:
        """Committed after `+CMGS: <mr>`: this part is never sent again.

        The message is bound to this SIM from its first accepted part on, because the recipient
        joins the parts by sender (ARCHITECTURE.md: all parts through one SIM). A submit that
        failed or whose outcome is unknown does not bind: the whole message may go elsewhere.
        """
        with self._tx() as db:
            db.execute(
                "UPDATE part SET state = ?, mr = ?, submitted = ?, report = ? WHERE message = ? AND seq = ?",
                (PART_SUBMITTED, mr, now, REPORT_PENDING if report else None, message_id, seq),
            )
            db.execute(
                "UPDATE message SET bound_modem = COALESCE(bound_modem, "
                "(SELECT modem FROM part WHERE message = ? AND seq = ?)), "
                "bound_imsi = COALESCE(bound_imsi, (SELECT imsi FROM part WHERE message = ? AND seq = ?)) "
                "WHERE id = ?",
                (message_id, seq, message_id, seq, message_id),
            )
            db.execute("INSERT INTO submission (sim, at) VALUES (?, ?)", (sim, now))

    def unmark_submitting(self, message_id: str, seq: int) -> None:
        """The modem answered with an error (nothing went out): the part is pending again."""
        with self._tx() as db:
            db.execute(
                "UPDATE part SET state = ? WHERE message = ? AND seq = ? AND state = ?",
                (PART_PENDING, message_id, seq, PART_SUBMITTING),
            )

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
        """Put a `sending` message back in the queue (retry later, maybe on another modem).

        `avoid_modem` had a temporary error: another modem is preferred, this one may retry.
        `refused_by` gave a permanent error: it never gets this message again.
        """
        with self._tx() as db:
            row = db.execute("SELECT avoid, refused FROM message WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            avoid = set(modem_set(row["avoid"]))
            refused = set(modem_set(row["refused"]))
            if avoid_modem:
                avoid.add(avoid_modem)
            if refused_by:
                refused.add(refused_by)
            db.execute(
                "UPDATE message SET state = ?, not_before = ?, last_error = COALESCE(?, last_error), "
                "avoid = ?, refused = ?, modem = NULL, attempts = attempts - ? WHERE id = ?",
                (
                    QUEUED,
                    not_before,
                    error,
                    modem_list(avoid),
                    modem_list(refused),
                    0 if count_attempt else 1,
                    message_id,
                ),
            )

    def mark_sent(self, message_id: str, modem: str, imsi: str | None, now: float, *, filed: bool = True) -> None:
        """Every part has an MR and the file is in sent/. Reports may have come first (a fast
        network answers before the last part is recorded): then it is delivered already."""
        with self._tx() as db:
            undelivered = (
                "EXISTS (SELECT 1 FROM part WHERE message = :id "
                f"AND (report IS NULL OR report != {q(REPORT_DELIVERED)}))"
            )
            db.execute(
                f"UPDATE message SET state = CASE WHEN NOT {undelivered} THEN {q(DELIVERED)} ELSE {q(SENT)} END, "
                f"delivered = CASE WHEN NOT {undelivered} THEN :now ELSE delivered END, "
                "modem = :modem, imsi = :imsi, sent = :now, finished = :now WHERE id = :id",
                {"id": message_id, "now": now, "modem": modem, "imsi": imsi},
            )
            self._count(db, now, modem, COUNT_SENT)

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
        with self._tx() as db:
            db.execute(
                "UPDATE message SET state = ?, fail_reason = ?, finished = ?, modem = COALESCE(?, modem) "
                "WHERE id = ?",
                (state, reason, now, modem, message_id),
            )
            self._count(db, now, modem or "", COUNT_FAILED)

    def record_invalid(self, now: float) -> None:
        """An invalid spool file went to failed/ without ever being queued."""
        with self._tx() as db:
            self._count(db, now, "", COUNT_FAILED)

    def forget(self, message_id: str) -> None:
        """Drop a message whose file is gone from checked/ (recovery found nothing to do)."""
        with self._tx() as db:
            db.execute("DELETE FROM part WHERE message = ?", (message_id,))
            db.execute("DELETE FROM message WHERE id = ?", (message_id,))

    def message(self, message_id: str) -> MessageRow | None:
        row = self._db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id = ?", (message_id,)
        ).fetchone()
        return message_row(row, self._row_defaults) if row else None

    def messages_in_state(self, *states: str) -> Iterator[str]:
        """Ids in these states, streamed (recovery walks them without loading all at once)."""
        marks = ",".join("?" * len(states))
        cursor = self._db.execute(f"SELECT id FROM message WHERE state IN ({marks})", states)
        while True:
            rows = cursor.fetchmany(500)
            if not rows:
                return
            for row in rows:
                yield row["id"]

    def fully_submitted(self) -> list[str]:
        """Queued messages whose every part has an MR (a stop fell before their move to sent/)."""
        rows = self._db.execute(
            f"SELECT m.id AS id FROM message m INDEXED BY message_queue WHERE m.state = {q(QUEUED)} AND NOT EXISTS "
            f"(SELECT 1 FROM part p WHERE p.message = m.id AND p.state != {q(PART_SUBMITTED)})"
        ).fetchall()
        return [row["id"] for row in rows]

    def count_retrying(self, now: float) -> int:
        """Queued messages that have been tried before and wait for their next attempt."""
        row = self._db.execute(
            f"SELECT COUNT(*) AS n FROM message INDEXED BY message_queue WHERE state = {q(QUEUED)} AND attempts > 0"
        ).fetchone()
        return row["n"]

    def retrying(self, limit: int = 1000) -> list[tuple[str, int, str | None]]:
        """Queued messages that have been tried before: (spool name, attempts, last error), most
        tried first."""
        rows = self._db.execute(
            f"SELECT id, attempts, last_error FROM message INDEXED BY message_queue WHERE state = {q(QUEUED)} "
            "AND attempts > 0 ORDER BY attempts DESC, queued LIMIT ?", (limit,)
        ).fetchall()
        return [(row["id"], row["attempts"], row["last_error"]) for row in rows]

    # -- restart ----------------------------------------------------------------------------

    def recover(self) -> Recovery:
        """After a restart: parts in flight are pending again, `sending` messages queued again.

        A part found `submitting` may or may not have reached the network (the crash fell between
        `AT+CMGS` and `+CMGS: <mr>`). It is sent again, because a lost SMS is worse than a
        duplicate; the caller logs each one as a possible duplicate.
        """
        with self._tx() as db:
            duplicates = tuple(
                (row["message"], row["seq"])
                for row in db.execute(
                    "SELECT message, seq FROM part WHERE state = ? ORDER BY message, seq", (PART_SUBMITTING,)
                )
            )
            db.execute("UPDATE part SET state = ? WHERE state = ?", (PART_PENDING, PART_SUBMITTING))
            requeued = tuple(
                row["id"] for row in db.execute("SELECT id FROM message WHERE state = ?", (SENDING,))
            )
            db.execute("UPDATE message SET state = ?, modem = NULL WHERE state = ?", (QUEUED, SENDING))
        return Recovery(possible_duplicates=duplicates, requeued=requeued)

    # -- limits -----------------------------------------------------------------------------

    def submissions_since(self, sim: str, since: float) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) AS n FROM submission WHERE sim = ? AND at > ?", (sim, since)
        ).fetchone()
        return row["n"]

    def oldest_submission_since(self, sim: str, since: float) -> float | None:
        row = self._db.execute(
            "SELECT MIN(at) AS oldest FROM submission WHERE sim = ? AND at > ?", (sim, since)
        ).fetchone()
        return row["oldest"]

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
        """Record a status report on the part it belongs to, or return None.

        The MR is one octet and wraps after 256 parts, so it is not unique: the match is the most
        recent part submitted on this SIM with this MR and recipient within `window` seconds
        (3GPP TS 23.040 §9.2.3.6: the TP-MR identifies a submit only among recent ones).
        When the modem has no IMSI (it could not read one), the modem name stands in for it.
        """
        sim_column, sim_value = ("p.imsi", imsi) if imsi else ("p.modem", modem)
        query = (
            "SELECT p.message AS message, p.seq AS seq, m.recipient AS recipient FROM part p "
            f"JOIN message m ON m.id = p.message WHERE {sim_column} = ? AND p.mr = ? AND p.submitted >= ? "
            "ORDER BY p.submitted DESC LIMIT 50"
        )
        with self._tx() as db:
            rows = db.execute(query, (sim_value, mr, now - window)).fetchall()
            row = next((r for r in rows if not recipient or same_number(recipient, r["recipient"])), None)
            if row is None:
                return None
            message_id, seq = row["message"], row["seq"]
            db.execute(
                "UPDATE part SET report = ?, tp_status = ?, discharge = ? WHERE message = ? AND seq = ?",
                (report_state, tp_status, discharge, message_id, seq),
            )
            parts = tuple(
                part_row(r)
                for r in db.execute(
                    f"SELECT {_PART_COLUMNS} FROM part WHERE message = ? ORDER BY seq", (message_id,)
                )
            )
            all_final, delivered = report_summary(parts)
            if delivered:
                db.execute(
                    "UPDATE message SET state = ?, delivered = ? WHERE id = ? AND state = ?",
                    (DELIVERED, now, message_id, SENT),
                )
            message = message_row(
                db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id = ?", (message_id,)).fetchone(),
                self._row_defaults,
            )
        return ReportMatch(message=message, seq=seq, parts=parts, all_final=all_final, delivered=delivered)

    # -- counters ---------------------------------------------------------------------------

    @staticmethod
    def _count(db: sqlite3.Connection, now: float, modem: str, kind: str, n: int = 1) -> None:
        db.execute(
            "INSERT INTO counter (day, modem, kind, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (day, modem, kind) DO UPDATE SET n = n + excluded.n",
            (day_of(now), modem, kind, n),
        )

    def count(self, now: float, modem: str, kind: str, n: int = 1) -> None:
        with self._tx() as db:
            self._count(db, now, modem, kind, n)

    def counters_today(self, now: float) -> dict[tuple[str, str], int]:
        """{(modem, kind): n} for today; modem '' holds failures that had no modem."""
        rows = self._db.execute(
            "SELECT modem, kind, n FROM counter WHERE day = ?", (day_of(now),)
        ).fetchall()
        return {(row["modem"], row["kind"]): row["n"] for row in rows}

    # -- inbound parts store ----------------------------------------------------------------

    def store_inbound_part(
        self, key: str, seq: int, total: int, pdu: str, modem: str, imsi: str | None, now: float
    ) -> InboundGroup:
        """Keep one part of a multipart SMS (committed before the SIM copy is deleted).

        A part seen twice (the sweep found it again before its deletion) keeps the first copy.
        Returns the group as it stands now.
        """
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO inbound_part (grp, seq, total, pdu, modem, imsi, received) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, seq, total, pdu, modem, imsi, now),
            )
            return self._inbound_group(db, key)

    @staticmethod
    def _inbound_group(db: sqlite3.Connection, key: str) -> InboundGroup:
        rows = db.execute(
            "SELECT seq, total, pdu, modem, imsi, received FROM inbound_part WHERE grp = ? ORDER BY seq",
            (key,),
        ).fetchall()
        return inbound_group(key, rows)

    def inbound_groups_older_than(self, before: float) -> list[InboundGroup]:
        with self._tx() as db:
            keys = [
                row["grp"]
                for row in db.execute(
                    "SELECT grp FROM inbound_part GROUP BY grp HAVING MIN(received) <= ?", (before,)
                )
            ]
            return [self._inbound_group(db, key) for key in keys]

    def complete_inbound_groups(self) -> list[InboundGroup]:
        """Groups with every part stored (a crash fell between the last part and its file)."""
        with self._tx() as db:
            keys = [
                row["grp"]
                for row in db.execute(
                    "SELECT grp FROM inbound_part GROUP BY grp HAVING COUNT(*) >= MAX(total)"
                )
            ]
            return [self._inbound_group(db, key) for key in keys]

    def drop_inbound_group(self, key: str, *, done: Sequence[str] = (), now: float = 0.0) -> None:
        """Called after the joined message's file is on disk; `done` are keys of its parts
        (see `inbound_part_done`), remembered for DONE_KEEP seconds."""
        with self._tx() as db:
            db.execute("DELETE FROM inbound_part WHERE grp = ?", (key,))
            db.executemany(
                "INSERT OR IGNORE INTO inbound_done (key, at) VALUES (?, ?)", [(k, now) for k in done]
            )

    def inbound_part_done(self, key: str) -> bool:
        """Was this part (key: SIM and PDU) already part of a message written out?"""
        return self._db.execute("SELECT 1 FROM inbound_done WHERE key = ?", (key,)).fetchone() is not None

    def inbound_file_for(self, key: str) -> tuple[str, bool] | None:
        """(incoming/ name, written) recorded for this single SMS (key: SIM and PDU), or None."""
        row = self._db.execute("SELECT name, written FROM inbound_written WHERE key = ?", (key,)).fetchone()
        return (row["name"], bool(row["written"])) if row else None

    def record_inbound_file(self, key: str, name: str, now: float) -> None:
        """Committed before the file is written: after a crash the SIM copy is recognised
        (its file is there: delete the copy; not there yet: write it under this name)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO inbound_written (key, name, at, written) VALUES (?, ?, ?, 0)",
                (key, name, now),
            )

    def inbound_file_written(self, key: str) -> None:
        """The file recorded by `record_inbound_file` is on disk."""
        with self._tx() as db:
            db.execute("UPDATE inbound_written SET written = 1 WHERE key = ?", (key,))

    # -- moving to PostgreSQL ---------------------------------------------------------------

    def export_rows(self) -> Iterator[tuple[str, dict]]:
        """Every row as (table, columns), messages with their `part_rows`, from one snapshot: what
        `gsmgw journal export` writes and `PostgresJournal.import_rows` reads."""
        return _export_rows(self)

    # -- housekeeping -----------------------------------------------------------------------

    def prune(self, now: float, *, keep_finished: float = 30 * 86400) -> int:
        """Drop history that no longer matters: limit windows over a day old, finished messages
        older than `keep_finished` (their files are in sent/ or failed/). Returns rows removed."""
        finished = ",".join(q(state) for state in FINAL_STATES)
        with self._tx() as db:
            removed = db.execute("DELETE FROM submission WHERE at < ?", (now - 86400,)).rowcount
            removed += db.execute("DELETE FROM inbound_done WHERE at < ?", (now - DONE_KEEP,)).rowcount
            removed += db.execute("DELETE FROM inbound_written WHERE at < ?", (now - DONE_KEEP,)).rowcount
            old = [
                row["id"]
                for row in db.execute(
                    f"SELECT id FROM message WHERE state IN ({finished}) AND finished IS NOT NULL AND finished < ?",
                    (now - keep_finished,),
                )
            ]
            for message_id in old:
                db.execute("DELETE FROM part WHERE message = ?", (message_id,))
                db.execute("DELETE FROM message WHERE id = ?", (message_id,))
            db.execute("DELETE FROM counter WHERE day < ?", (day_of(now - 7 * 86400),))
        return removed + len(old)


# What `export_rows` writes, table by table; parts go with their message.
EXPORT_TABLES = ("message", "submission", "counter", "inbound_part", "inbound_done", "inbound_written")


def _export_rows(journal: "SqliteJournal") -> Iterator[tuple[str, dict]]:
    db = journal._db
    db.execute("BEGIN")  # one snapshot for the whole export
    try:
        for table in EXPORT_TABLES:
            cursor = db.execute(f"SELECT * FROM {table}")
            while True:
                rows = cursor.fetchmany(500)
                if not rows:
                    break
                for row in rows:
                    record = {key: row[key] for key in row.keys()}
                    if table == "message":  # its part rows beside its `parts` count
                        record["part_rows"] = [
                            {key: part[key] for key in part.keys()}
                            for part in db.execute("SELECT * FROM part WHERE message = ? ORDER BY seq", (row["id"],))
                        ]
                    yield table, record
    finally:
        db.execute("COMMIT")


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`; rolls back on an exception."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
