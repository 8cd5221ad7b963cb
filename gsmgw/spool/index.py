"""The journal's index of messages, and the records the console keeps beside it.

What it holds (SQLite, `index.sqlite` in the state directory, next to the send journal):
- one row per message, outbound (a spool name in checked/, sent/, failed/) and inbound (a name
  in incoming/): the peer's number, the state, the client, the campaign, the modem, the text and
  the times. It is filled as messages move (`gsmgw.daemon.indexer` writes what the daemon's
  events say) and rebuilt from the spool by `gsmgw journal reindex`. The console, `gsmgw thread`
  and their searches read it, never a directory listing per request;
- per (number, owner) the newest message, so the list of conversations costs the same with
  100,000 messages as with 100; an owner is the submitting client (outbound) or the modem that
  received it (inbound), which is what the visibility rule (gsmgw.clients) asks about;
- per hour, modem and kind (sent, delivered, failed, received) a count, for the charts;
- the console's own records: contacts, console groups, campaigns and their recipients, the
  opt-out list, the audit log, signal samples and state changes of the modems, read marks.

Why a file of its own: the send journal is on the daemon's hot path (one fsync per commit, on
the loop's thread). The index is written in batches from another thread; in its own file its
commits never wait for the journal's lock or hold it. It can be rebuilt from the spool, so it
runs with `synchronous=NORMAL` (WAL): a kill -9 loses no commit, a power cut may lose the last
ones, which the next start catches up from the spool (the indexer's cursor).

Every SQL statement of the index stays in this class; rows are read by column name. Connections
are per thread (SQLite's rule); writes are meant for one writer thread, reads may come from any.
Times are float Unix seconds.

In a cluster (`journal:` is PostgreSQL) the index lives in the shared database instead:
`PostgresIndex` runs this same class's SQL there (a thin adapter rewrites SQLite's dialect), in a
schema of the member's own, so each member's console indexes its own spool as on one host.
`open_index(config)` opens the one the config asks for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from gsmgw.spool.journal import DELIVERED, EXPIRED, FAILED, QUEUED, SENDING, SENT
from gsmgw.spool.journal.sqlite import _Transaction  # the same BEGIN IMMEDIATE ... COMMIT/ROLLBACK

log = logging.getLogger("gsmgw.index")

SCHEMA_VERSION = 1
INDEX_FILE = "index.sqlite"

OUT = "out"
IN = "in"
RECEIVED = "received"  # the state of every inbound message
OUT_STATES = (QUEUED, SENDING, SENT, DELIVERED, FAILED, EXPIRED)
FINISHED_STATES = (FAILED, EXPIRED)
OPTED_OUT_PREFIX = "opted out"  # the Fail_reason of a campaign message to an opted-out number

# Tally kinds: what happened in an hour.
KIND_SENT, KIND_DELIVERED, KIND_FAILED, KIND_RECEIVED = "sent", "delivered", "failed", "received"
KINDS = (KIND_SENT, KIND_DELIVERED, KIND_FAILED, KIND_RECEIVED)

# Owners of a conversation row (see the module docstring).
OWNER_CLIENT, OWNER_MODEM = "client", "modem"

# Campaign states.
CAMPAIGN_PREPARING = "preparing"  # its recipients are being written; a crash here queued none
CAMPAIGN_QUEUED = "queued"
CAMPAIGN_ABANDONED = "not queued"  # the process died while preparing: nothing of it is queued

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS message (
    direction   TEXT NOT NULL,
    id          TEXT NOT NULL,
    number      TEXT NOT NULL,
    state       TEXT NOT NULL,
    client      TEXT,
    campaign    TEXT,
    modem       TEXT,
    text        TEXT NOT NULL DEFAULT '',
    parts       INTEGER,
    at          REAL NOT NULL,
    sent        REAL,
    delivered   REAL,
    finished    REAL,
    fail_reason TEXT,
    PRIMARY KEY (direction, id)
);
CREATE INDEX IF NOT EXISTS message_number ON message (number, at);
CREATE INDEX IF NOT EXISTS message_state ON message (state, at);
CREATE INDEX IF NOT EXISTS message_client ON message (client, at);
CREATE INDEX IF NOT EXISTS message_campaign ON message (campaign, state) WHERE campaign IS NOT NULL;
CREATE INDEX IF NOT EXISTS message_at ON message (at);
CREATE TABLE IF NOT EXISTS conversation (
    number      TEXT NOT NULL,
    owner_kind  TEXT NOT NULL,
    owner       TEXT NOT NULL,
    last_at     REAL NOT NULL,
    last_id     TEXT NOT NULL,
    last_direction TEXT NOT NULL,
    last_text   TEXT NOT NULL,
    PRIMARY KEY (number, owner_kind, owner)
);
CREATE INDEX IF NOT EXISTS conversation_owner ON conversation (owner_kind, owner, last_at);
CREATE INDEX IF NOT EXISTS conversation_last ON conversation (last_at);
CREATE TABLE IF NOT EXISTS tally (
    hour INTEGER NOT NULL, modem TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (hour, modem, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_mark (
    user TEXT NOT NULL, number TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (user, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contact (
    number TEXT PRIMARY KEY, name TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_name ON contact (name COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS console_group (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS group_member (
    grp TEXT NOT NULL, number TEXT NOT NULL, PRIMARY KEY (grp, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaign (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    client      TEXT NOT NULL,
    text        TEXT NOT NULL,
    created     REAL NOT NULL,
    send_after  REAL,
    state       TEXT NOT NULL,
    recipients  INTEGER NOT NULL,
    skipped     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS campaign_created ON campaign (created);
CREATE TABLE IF NOT EXISTS campaign_recipient (
    campaign TEXT NOT NULL, position INTEGER NOT NULL, number TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
    message_id TEXT, PRIMARY KEY (campaign, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS optout (number TEXT PRIMARY KEY, at REAL NOT NULL, keyword TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS signal_sample (
    modem TEXT NOT NULL, at REAL NOT NULL, dbm INTEGER, PRIMARY KEY (modem, at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS modem_event (
    modem TEXT NOT NULL, at REAL NOT NULL, state TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS modem_event_modem ON modem_event (modem, at);
"""

_MESSAGE_FIELDS = (
    "direction", "id", "number", "state", "client", "campaign", "modem", "text", "parts", "at", "sent",
    "delivered", "finished", "fail_reason",
)
_MESSAGE_COLUMNS = ", ".join(_MESSAGE_FIELDS)


class IndexError_(Exception):
    """The index cannot be opened; the message says what to do (it can always be rebuilt)."""


@dataclass(frozen=True)
class IndexedMessage:
    """One message as the index knows it; also what the indexer hands to `record`.

    `None` in an update means "unknown here, keep what the index has" for client, campaign,
    modem, text, parts, sent, delivered, finished and fail_reason."""

    direction: str
    id: str
    number: str
    state: str
    at: float
    client: str | None = None
    campaign: str | None = None
    modem: str | None = None
    text: str | None = None
    parts: int | None = None
    sent: float | None = None
    delivered: float | None = None
    finished: float | None = None
    fail_reason: str | None = None

    @property
    def opted_out(self) -> bool:
        return (self.fail_reason or "").startswith(OPTED_OUT_PREFIX)


def _message(row: sqlite3.Row) -> IndexedMessage:
    return IndexedMessage(**{name: row[name] for name in _MESSAGE_FIELDS})


@dataclass(frozen=True)
class Scope:
    """Which messages a query may return (built from gsmgw.clients.Visibility by the caller):
    everything, or the outbound of `client` plus the inbound of `modems` (None: every modem)."""

    everything: bool = False
    client: str | None = None
    modems: tuple[str, ...] | None = ()

    @classmethod
    def all(cls) -> "Scope":
        return cls(everything=True)

    def sql(self, alias: str = "") -> tuple[str, list]:
        """A WHERE condition on a message table for this scope, and its parameters."""
        if self.everything:
            return "1 = 1", []
        a = f"{alias}." if alias else ""
        terms, params = [], []
        if self.client is not None:
            terms.append(f"({a}direction = 'out' AND {a}client = ?)")
            params.append(self.client)
        if self.modems is None:
            terms.append(f"{a}direction = 'in'")
        elif self.modems:
            terms.append(f"({a}direction = 'in' AND {a}modem IN ({','.join('?' * len(self.modems))}))")
            params.extend(self.modems)
        return ("(" + " OR ".join(terms) + ")") if terms else "1 = 0", params

    def owner_sql(self) -> tuple[str, list]:
        """The same scope as a condition on conversation owners."""
        if self.everything:
            return "1 = 1", []
        terms, params = [], []
        if self.client is not None:
            terms.append("(owner_kind = 'client' AND owner = ?)")
            params.append(self.client)
        if self.modems is None:
            terms.append("owner_kind = 'modem'")
        elif self.modems:
            terms.append(f"(owner_kind = 'modem' AND owner IN ({','.join('?' * len(self.modems))}))")
            params.extend(self.modems)
        return ("(" + " OR ".join(terms) + ")") if terms else "1 = 0", params


@dataclass(frozen=True)
class Conversation:
    number: str
    name: str | None
    last_at: float
    last_direction: str
    last_text: str
    unread: int


@dataclass(frozen=True)
class Contact:
    number: str
    name: str
    note: str


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    client: str
    text: str
    created: float
    send_after: float | None
    state: str
    recipients: int
    skipped: int = 0


@dataclass(frozen=True)
class CampaignRecipient:
    number: str
    name: str
    message_id: str | None
    state: str | None  # the message's state once the daemon has taken it, else None (waiting in outgoing/)
    fail_reason: str | None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    user: str
    action: str
    detail: str


@dataclass(frozen=True)
class ModemEvent:
    modem: str
    at: float
    state: str
    reason: str | None


@dataclass
class CampaignCounts:
    recipients: int = 0
    queued: int = 0  # not sent yet (waiting, also in outgoing/)
    sent: int = 0  # left the gateway (sent, delivered, or failed by a report)
    delivered: int = 0
    pending: int = 0  # sent, no final report yet
    failed: int = 0  # failed or expired, opted-out not included
    opted_out: int = 0
    states: dict[str, int] = field(default_factory=dict)


def _earliest(known: float, new: float | None) -> float:
    """A message's time as the earliest one known; but a header's whole second (a file read
    again after it moved, its mtime no longer within that second) is the same moment as a time
    already known within that second to the fraction, and must not move it before a message that
    came earlier in that second."""
    if new is None:
        return known
    if new == int(new) and new <= known < new + 1:
        return known
    return min(known, new)


def hour_of(moment: float) -> int:
    return int(moment // 3600)


class MessageIndex:
    """See the module docstring. One instance per process; thread-safe as described there."""

    # The newest conversation row per number (SQLite takes a bare column's value from the row
    # that gave the MAX()); PostgresIndex says the same with DISTINCT ON.
    _LATEST_CONVERSATIONS = (
        "SELECT c.number AS number, MAX(c.last_at) AS last_at, c.last_direction AS last_direction, "
        "c.last_text AS last_text, k.name AS name FROM conversation c LEFT JOIN contact k ON k.number = c.number "
        "WHERE {condition} {filters} GROUP BY c.number ORDER BY last_at DESC LIMIT ? OFFSET ?"
    )

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._create()
        except (OSError, sqlite3.Error) as error:
            self.close()
            raise IndexError_(
                f"cannot open the message index {self.path}: {error}; check that the state directory is "
                f"writable, or remove the file and run `gsmgw journal reindex` to rebuild it from the spool"
            ) from error

    def _create(self) -> None:
        db = self._db()
        db.executescript(_SCHEMA)
        self._check_schema(db)

    def _check_schema(self, db) -> None:
        found = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if found is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(found["value"]) > SCHEMA_VERSION:
            raise IndexError_(
                f"the index {self.path} was written by a newer gsmgw (schema {found['value']}); run that "
                f"version, or remove the file and run `gsmgw journal reindex` to rebuild it from the spool")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            try:
                db.close()
            except Exception:  # noqa: BLE001 - at shutdown a connection another thread still uses is dropped anyway
                log.debug("closing an index connection failed", exc_info=True)
        self._local = threading.local()

    def _tx(self) -> "_Transaction":
        return _Transaction(self._db())

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, value))

    # -- messages: writing ------------------------------------------------------------------

    def record(self, messages: Iterable[IndexedMessage]) -> list[IndexedMessage]:
        """Insert or update messages in one transaction; returns them as the index now has them
        (an update keeps what it did not know). The conversation rows and the tallies follow."""
        stored = []
        with self._tx() as db:
            for message in messages:
                stored.append(self._record(db, message))
        return stored

    def record_new(self, messages: Iterable[IndexedMessage]) -> list[IndexedMessage]:
        """Insert messages the index does not have yet; a row it has is left as it is (a door
        that has just queued a file records it at once, and must never undo a later state the
        indexer has already read from the file). Returns the rows inserted."""
        inserted = []
        with self._tx() as db:
            for message in messages:
                if db.execute("SELECT 1 FROM message WHERE direction = ? AND id = ?",
                              (message.direction, message.id)).fetchone() is None:
                    inserted.append(self._record(db, message))
        return inserted

    def _record(self, db: sqlite3.Connection, new: IndexedMessage) -> IndexedMessage:
        old_row = db.execute(f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE direction = ? AND id = ?",
                             (new.direction, new.id)).fetchone()
        old = _message(old_row) if old_row is not None else None
        merged = new if old is None else IndexedMessage(
            direction=new.direction, id=new.id, number=new.number or old.number, state=new.state,
            at=_earliest(old.at, new.at),
            **{name: (getattr(new, name) if getattr(new, name) is not None else getattr(old, name))
               for name in ("client", "campaign", "modem", "text", "parts", "sent", "delivered", "finished",
                            "fail_reason")},
        )
        values = [getattr(merged, name) for name in _MESSAGE_FIELDS]
        values[_MESSAGE_FIELDS.index("text")] = merged.text or ""
        db.execute(
            f"INSERT INTO message ({_MESSAGE_COLUMNS}) VALUES ({','.join('?' * len(_MESSAGE_FIELDS))}) "
            f"ON CONFLICT (direction, id) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in _MESSAGE_FIELDS[2:]),
            values,
        )
        self._tally(db, old, merged)
        self._conversation(db, merged)
        return merged

    @staticmethod
    def _tally(db: sqlite3.Connection, old: IndexedMessage | None, new: IndexedMessage) -> None:
        """Count each happening once, in the hour it happened, whatever order events come in."""
        modem = new.modem or ""
        counts = []
        if new.direction == IN:
            if old is None:
                counts.append((new.at, KIND_RECEIVED))
        else:
            if new.sent is not None and (old is None or old.sent is None):
                counts.append((new.sent, KIND_SENT))
            if new.state == DELIVERED and (old is None or old.state != DELIVERED):
                counts.append((new.delivered or new.sent or new.at, KIND_DELIVERED))
            if new.state in FINISHED_STATES and (old is None or old.state not in FINISHED_STATES) and not new.opted_out:
                counts.append((new.finished or new.at, KIND_FAILED))
        for moment, kind in counts:
            db.execute(
                "INSERT INTO tally (hour, modem, kind, n) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (hour, modem, kind) DO UPDATE SET n = tally.n + 1",
                (hour_of(moment), modem, kind),
            )

    @staticmethod
    def _conversation(db: sqlite3.Connection, message: IndexedMessage) -> None:
        if message.direction == OUT:
            kind, owner = OWNER_CLIENT, message.client or ""
        else:
            kind, owner = OWNER_MODEM, message.modem or ""
        db.execute(
            "INSERT INTO conversation (number, owner_kind, owner, last_at, last_id, last_direction, last_text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (number, owner_kind, owner) DO UPDATE SET "
            "last_at = excluded.last_at, last_id = excluded.last_id, last_direction = excluded.last_direction, "
            "last_text = excluded.last_text "
            "WHERE excluded.last_at > conversation.last_at OR conversation.last_id = excluded.last_id",
            (message.number, kind, owner, message.at, message.id, message.direction, (message.text or "")[:200]),
        )

    def clear_messages(self) -> None:
        """Forget every message, conversation and tally (before a rebuild from the spool)."""
        with self._tx() as db:
            db.execute("DELETE FROM message")
            db.execute("DELETE FROM conversation")
            db.execute("DELETE FROM tally")

    # -- messages: reading ------------------------------------------------------------------

    def message(self, direction: str, message_id: str) -> IndexedMessage | None:
        row = self._db().execute(f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE direction = ? AND id = ?",
                                 (direction, message_id)).fetchone()
        return _message(row) if row else None

    def count_messages(self) -> int:
        return self._db().execute("SELECT COUNT(*) AS n FROM message").fetchone()["n"]

    def thread(self, scope: Scope, number: str, *, limit: int = 500, before: float | None = None) -> list[IndexedMessage]:
        """The conversation with `number`: its newest `limit` messages (before `before`), oldest first."""
        condition, params = scope.sql()
        bound = "AND at < ?" if before is not None else ""
        rows = self._db().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message INDEXED BY message_number WHERE number = ? {bound} "
            f"AND {condition} ORDER BY at DESC, id DESC LIMIT ?",
            [number] + ([before] if before is not None else []) + params + [limit],
        ).fetchall()
        return [_message(row) for row in reversed(rows)]

    def messages(self, scope: Scope, *, states: Sequence[str] = (), direction: str | None = None,
                 modem: str | None = None, number: str | None = None, campaign: str | None = None,
                 since: float | None = None, until: float | None = None, limit: int = 100,
                 before: tuple[float, str] | None = None) -> list[IndexedMessage]:
        """Newest first, filtered; `before` is the (at, id) of the last row of the previous page."""
        condition, params = scope.sql()
        terms = [condition]
        if states:
            terms.append(f"state IN ({','.join('?' * len(states))})")
            params += list(states)
        for column, value in (("direction", direction), ("modem", modem), ("number", number), ("campaign", campaign)):
            if value is not None:
                terms.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            terms.append("at >= ?")
            params.append(since)
        if until is not None:
            terms.append("at < ?")
            params.append(until)
        if before is not None:
            terms.append("(at < ? OR (at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        rows = self._db().execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE {' AND '.join(terms)} ORDER BY at DESC, id DESC LIMIT ?",
            params + [limit],
        ).fetchall()
        return [_message(row) for row in rows]

    def conversations(self, scope: Scope, *, user: str, search: str | None = None, limit: int = 50,
                      offset: int = 0) -> list[Conversation]:
        """One row per number, newest first: the last visible message and the unread count."""
        condition, params = scope.owner_sql()
        filters = ""
        if search:
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            message_condition, message_params = scope.sql()
            filters = (
                "AND (c.number LIKE ? ESCAPE '\\' OR c.number IN (SELECT number FROM contact WHERE name LIKE ? "
                "ESCAPE '\\') OR c.number IN (SELECT number FROM message WHERE text LIKE ? ESCAPE '\\' AND "
                f"{message_condition}))"
            )
            params = params + [like, like, like] + message_params
        db = self._db()
        rows = db.execute(
            self._LATEST_CONVERSATIONS.format(condition=condition, filters=filters), params + [limit, offset],
        ).fetchall()
        if not rows:
            return []
        marks = {row["number"]: row["at"] for row in db.execute(
            f"SELECT number, at FROM read_mark WHERE user = ? AND number IN ({','.join('?' * len(rows))})",
            [user] + [row["number"] for row in rows])}
        inbound_condition, inbound_params = Scope(
            everything=scope.everything, client=None, modems=scope.modems).sql()
        result = []
        for row in rows:
            unread = db.execute(
                f"SELECT COUNT(*) AS n FROM message INDEXED BY message_number WHERE number = ? AND at > ? "
                f"AND direction = 'in' AND {inbound_condition}",
                [row["number"], marks.get(row["number"], 0.0)] + inbound_params,
            ).fetchone()["n"]
            result.append(Conversation(row["number"], row["name"], row["last_at"], row["last_direction"],
                                       row["last_text"], unread))
        return result

    def mark_read(self, user: str, number: str, at: float) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO read_mark (user, number, at) VALUES (?, ?, ?) ON CONFLICT (user, number) "
                       "DO UPDATE SET at = MAX(at, excluded.at)", (user, number, at))

    def tallies(self, since_hour: int, modem: str | None = None) -> dict[tuple[int, str], int]:
        """{(hour, kind): n} from `since_hour` on, summed over modems (or for one modem)."""
        if modem is None:
            rows = self._db().execute(
                "SELECT hour, kind, SUM(n) AS n FROM tally WHERE hour >= ? GROUP BY hour, kind", (since_hour,))
        else:
            rows = self._db().execute(
                "SELECT hour, kind, n FROM tally WHERE hour >= ? AND modem = ?", (since_hour, modem))
        return {(row["hour"], row["kind"]): row["n"] for row in rows}

    def state_counts(self, scope: Scope) -> dict[str, int]:
        condition, params = scope.sql()
        rows = self._db().execute(
            f"SELECT state, COUNT(*) AS n FROM message WHERE {condition} GROUP BY state", params).fetchall()
        return {row["state"]: row["n"] for row in rows}

    # -- campaigns --------------------------------------------------------------------------

    def create_campaign(self, campaign: Campaign, recipients: Sequence[tuple[str, str]]) -> None:
        """The campaign (state `preparing`) and its recipients (number, name), in one transaction."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO campaign (id, name, client, text, created, send_after, state, recipients, skipped) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (campaign.id, campaign.name, campaign.client, campaign.text, campaign.created, campaign.send_after,
                 campaign.state, campaign.recipients, campaign.skipped),
            )
            db.executemany(
                "INSERT INTO campaign_recipient (campaign, position, number, name) VALUES (?, ?, ?, ?)",
                [(campaign.id, position, number, name) for position, (number, name) in enumerate(recipients)],
            )

    def campaign_queued(self, campaign_id: str, message_ids: Sequence[str]) -> None:
        """The recipients' files are in outgoing/ (in the order the recipients were given)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE campaign_recipient SET message_id = ? WHERE campaign = ? AND position = ?",
                [(message_id, campaign_id, position) for position, message_id in enumerate(message_ids)],
            )
            db.execute("UPDATE campaign SET state = ? WHERE id = ?", (CAMPAIGN_QUEUED, campaign_id))

    def set_campaign_state(self, campaign_id: str, state: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE campaign SET state = ? WHERE id = ?", (state, campaign_id))

    def add_campaign_recipients(self, campaign_id: str, recipients: Sequence[tuple[str, str, str]]) -> None:
        """More recipients (number, name, message id) already queued, e.g. a retry of the failed."""
        with self._tx() as db:
            start = db.execute("SELECT COALESCE(MAX(position) + 1, 0) AS n FROM campaign_recipient WHERE campaign = ?",
                               (campaign_id,)).fetchone()["n"]
            db.executemany(
                "INSERT INTO campaign_recipient (campaign, position, number, name, message_id) VALUES (?, ?, ?, ?, ?)",
                [(campaign_id, start + i, number, name, message_id)
                 for i, (number, name, message_id) in enumerate(recipients)],
            )

    def campaigns(self, client: str | None, *, limit: int = 100, offset: int = 0) -> list[Campaign]:
        """Newest first; every client's when `client` is None."""
        where, params = ("WHERE client = ?", [client]) if client is not None else ("", [])
        rows = self._db().execute(
            f"SELECT * FROM campaign {where} ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
            params + [limit, offset]).fetchall()
        return [Campaign(**{key: row[key] for key in row.keys()}) for row in rows]

    def campaign(self, campaign_id: str) -> Campaign | None:
        row = self._db().execute("SELECT * FROM campaign WHERE id = ?", (campaign_id,)).fetchone()
        return Campaign(**{key: row[key] for key in row.keys()}) if row else None

    def campaigns_in_state(self, state: str) -> list[Campaign]:
        rows = self._db().execute("SELECT * FROM campaign WHERE state = ?", (state,)).fetchall()
        return [Campaign(**{key: row[key] for key in row.keys()}) for row in rows]

    def campaign_message_ids(self, campaign_id: str) -> list[str]:
        rows = self._db().execute(
            "SELECT message_id FROM campaign_recipient WHERE campaign = ? AND message_id IS NOT NULL ORDER BY position",
            (campaign_id,)).fetchall()
        return [row["message_id"] for row in rows]

    def campaign_counts(self, campaign_id: str) -> CampaignCounts:
        """Each recipient counted once, by the state of its current message (a retry replaces
        the failed one); a recipient whose file the daemon has not taken yet is queued."""
        counts = CampaignCounts()
        for row in self._db().execute(
            "SELECT r.message_id IS NOT NULL AS queued, m.state AS state, m.fail_reason LIKE ? AS opted, "
            "COUNT(*) AS n FROM campaign_recipient r LEFT JOIN message m ON m.direction = 'out' AND m.id = r.message_id "
            "WHERE r.campaign = ? GROUP BY queued, state, opted", (OPTED_OUT_PREFIX + "%", campaign_id)
        ):
            state, n = row["state"], row["n"]
            counts.recipients += n
            if not row["queued"]:
                continue  # never queued (the campaign was interrupted before its files were written)
            if row["opted"]:
                counts.opted_out += n
                continue
            state = state or QUEUED
            counts.states[state] = counts.states.get(state, 0) + n
            if state in (QUEUED, SENDING):
                counts.queued += n
            elif state in (SENT, DELIVERED):
                counts.sent += n
                if state == DELIVERED:
                    counts.delivered += n
                else:
                    counts.pending += n
            elif state in FINISHED_STATES:
                counts.failed += n
        return counts

    def campaign_retry(self, campaign_id: str, replaced: Mapping[str, str]) -> None:
        """Recipients whose failed message `old` was sent again as `new` ({old: new})."""
        with self._tx() as db:
            db.executemany("UPDATE campaign_recipient SET message_id = ? WHERE campaign = ? AND message_id = ?",
                           [(new, campaign_id, old) for old, new in replaced.items()])

    def reconcile_campaign(self, campaign_id: str) -> int:
        """After an interruption between queuing a campaign's files and recording their names:
        find each recipient's message by (campaign, number). Returns how many were found."""
        with self._tx() as db:
            db.execute(
                "UPDATE campaign_recipient SET message_id = (SELECT m.id FROM message m INDEXED BY message_campaign "
                "WHERE m.campaign = campaign_recipient.campaign AND m.number = campaign_recipient.number "
                "AND m.direction = 'out' ORDER BY m.at LIMIT 1) WHERE campaign = ? AND message_id IS NULL",
                (campaign_id,))
            return db.execute("SELECT COUNT(*) AS n FROM campaign_recipient WHERE campaign = ? AND message_id IS NOT NULL",
                              (campaign_id,)).fetchone()["n"]

    def campaign_recipients(self, campaign_id: str) -> Iterator[CampaignRecipient]:
        """Every recipient with its message's state, in the order given (streamed, for CSV export)."""
        cursor = self._db().execute(
            "SELECT r.number AS number, r.name AS name, r.message_id AS message_id, m.state AS state, "
            "m.fail_reason AS fail_reason FROM campaign_recipient r LEFT JOIN message m "
            "ON m.direction = 'out' AND m.id = r.message_id WHERE r.campaign = ? ORDER BY r.position",
            (campaign_id,))
        while True:
            rows = cursor.fetchmany(500)
            if not rows:
                return
            for row in rows:
                yield CampaignRecipient(row["number"], row["name"], row["message_id"], row["state"], row["fail_reason"])

    # -- contacts and console groups --------------------------------------------------------

    def contacts(self, *, search: str | None = None, limit: int = 500, offset: int = 0) -> list[Contact]:
        params: list = []
        where = ""
        if search:
            where = "WHERE name LIKE ? ESCAPE '\\' OR number LIKE ? ESCAPE '\\' OR note LIKE ? ESCAPE '\\'"
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params = [like, like, like]
        rows = self._db().execute(
            f"SELECT number, name, note FROM contact {where} ORDER BY name COLLATE NOCASE, number LIMIT ? OFFSET ?",
            params + [limit, offset]).fetchall()
        return [Contact(row["number"], row["name"], row["note"]) for row in rows]

    def contact(self, number: str) -> Contact | None:
        row = self._db().execute("SELECT number, name, note FROM contact WHERE number = ?", (number,)).fetchone()
        return Contact(row["number"], row["name"], row["note"]) if row else None

    def contacts_named(self, name: str) -> list[Contact]:
        rows = self._db().execute("SELECT number, name, note FROM contact WHERE name = ? COLLATE NOCASE",
                                  (name,)).fetchall()
        return [Contact(row["number"], row["name"], row["note"]) for row in rows]

    def contact_names(self, numbers: Iterable[str]) -> dict[str, str]:
        numbers = list(dict.fromkeys(numbers))
        found: dict[str, str] = {}
        db = self._db()
        for start in range(0, len(numbers), 500):
            chunk = numbers[start:start + 500]
            for row in db.execute(f"SELECT number, name FROM contact WHERE number IN ({','.join('?' * len(chunk))})",
                                  chunk):
                found[row["number"]] = row["name"]
        return found

    def save_contacts(self, contacts: Iterable[Contact], now: float, *, replace_number: str | None = None) -> int:
        """Add or update contacts (by number) in one transaction; `replace_number` is the old number
        of a contact being edited. Returns how many were written."""
        count = 0
        with self._tx() as db:
            if replace_number is not None:
                db.execute("DELETE FROM contact WHERE number = ?", (replace_number,))
            for contact in contacts:
                db.execute(
                    "INSERT INTO contact (number, name, note, updated) VALUES (?, ?, ?, ?) ON CONFLICT (number) "
                    "DO UPDATE SET name = excluded.name, note = excluded.note, updated = excluded.updated",
                    (contact.number, contact.name, contact.note, now))
                count += 1
        return count

    def delete_contact(self, number: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM contact WHERE number = ?", (number,)).rowcount == 1

    def console_groups(self) -> dict[str, tuple[str, ...]]:
        groups: dict[str, list[str]] = {row["name"]: [] for row in self._db().execute(
            "SELECT name FROM console_group ORDER BY name")}
        for row in self._db().execute("SELECT grp, number FROM group_member ORDER BY grp, number"):
            groups.setdefault(row["grp"], []).append(row["number"])
        return {name: tuple(members) for name, members in groups.items()}

    def save_group(self, name: str, members: Sequence[str], now: float) -> None:
        """Create or replace a console group with exactly these members."""
        with self._tx() as db:
            db.execute("INSERT INTO console_group (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                       (name, now))
            db.execute("DELETE FROM group_member WHERE grp = ?", (name,))
            db.executemany("INSERT OR IGNORE INTO group_member (grp, number) VALUES (?, ?)",
                           [(name, number) for number in members])

    def delete_group(self, name: str) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM group_member WHERE grp = ?", (name,))
            return db.execute("DELETE FROM console_group WHERE name = ?", (name,)).rowcount == 1

    # -- opt-out ----------------------------------------------------------------------------

    def optouts(self) -> dict[str, tuple[float, str]]:
        """number -> (when, the word they sent)."""
        return {row["number"]: (row["at"], row["keyword"])
                for row in self._db().execute("SELECT number, at, keyword FROM optout")}

    def opt_out(self, number: str, at: float, keyword: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO optout (number, at, keyword) VALUES (?, ?, ?) ON CONFLICT (number) DO NOTHING",
                       (number, at, keyword))

    def opt_in(self, number: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM optout WHERE number = ?", (number,)).rowcount == 1

    # -- audit log --------------------------------------------------------------------------

    def audit(self, at: float, user: str, action: str, detail: str = "") -> None:
        with self._tx() as db:
            db.execute("INSERT INTO audit (at, user, action, detail) VALUES (?, ?, ?, ?)", (at, user, action, detail))

    def audit_log(self, *, limit: int = 200, before: int | None = None) -> list[AuditEntry]:
        where, params = ("WHERE seq < ?", [before]) if before is not None else ("", [])
        rows = self._db().execute(f"SELECT seq, at, user, action, detail FROM audit {where} ORDER BY seq DESC LIMIT ?",
                                  params + [limit]).fetchall()
        return [AuditEntry(row["seq"], row["at"], row["user"], row["action"], row["detail"]) for row in rows]

    # -- modems -----------------------------------------------------------------------------

    def record_signal(self, samples: Iterable[tuple[str, float, int | None]]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO signal_sample (modem, at, dbm) VALUES (?, ?, ?)", list(samples))

    def signal_history(self, modem: str, since: float) -> list[tuple[float, int | None]]:
        rows = self._db().execute("SELECT at, dbm FROM signal_sample WHERE modem = ? AND at >= ? ORDER BY at",
                                  (modem, since)).fetchall()
        return [(row["at"], row["dbm"]) for row in rows]

    def record_modem_event(self, event: ModemEvent) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO modem_event (modem, at, state, reason) VALUES (?, ?, ?, ?)",
                       (event.modem, event.at, event.state, event.reason))

    def modem_events(self, modem: str, *, limit: int = 20) -> list[ModemEvent]:
        rows = self._db().execute("SELECT modem, at, state, reason FROM modem_event WHERE modem = ? "
                                  "ORDER BY at DESC LIMIT ?", (modem, limit)).fetchall()
        return [ModemEvent(row["modem"], row["at"], row["state"], row["reason"]) for row in rows]

    def prune(self, now: float, *, keep_samples: float = 30 * 86400) -> None:
        """Drop signal samples and modem events older than `keep_samples` (messages are history)."""
        with self._tx() as db:
            db.execute("DELETE FROM signal_sample WHERE at < ?", (now - keep_samples,))
            db.execute("DELETE FROM modem_event WHERE at < ?", (now - keep_samples,))


# -- in a cluster: the same index in the shared PostgreSQL database ---------------------------------

def _postgres_dialect(sql: str) -> str:
    """SQLite's SQL of this module as PostgreSQL reads it: placeholders, INSERT OR IGNORE/REPLACE,
    INDEXED BY hints, case-insensitive LIKE and NOCASE, the `user` column, MAX(a, b)."""
    text = sql.replace("?", "%s")
    if text.lstrip().upper().startswith("BEGIN"):
        return "BEGIN"
    text = re.sub(r"\s+INDEXED BY \w+", "", text)
    text = re.sub(r"(\w+) = %s COLLATE NOCASE", r"lower(\1) = lower(%s)", text)
    text = re.sub(r"(\w+) COLLATE NOCASE", r"lower(\1)", text)
    text = re.sub(r"\bLIKE\b", "ILIKE", text)
    text = re.sub(r"\buser\b", '"user"', text)
    text = text.replace("MAX(at, excluded.at)", "GREATEST(read_mark.at, excluded.at)")
    if "INSERT OR IGNORE INTO" in text:
        text = text.replace("INSERT OR IGNORE INTO", "INSERT INTO") + " ON CONFLICT DO NOTHING"
    if "INSERT OR REPLACE INTO signal_sample" in text:
        text = (text.replace("INSERT OR REPLACE INTO", "INSERT INTO")
                + " ON CONFLICT (modem, at) DO UPDATE SET dbm = EXCLUDED.dbm")
    return text


def _postgres_schema() -> list[str]:
    """The tables of `_SCHEMA` in PostgreSQL's words, one statement each."""
    ddl = _SCHEMA.replace(" REAL", " double precision").replace(" WITHOUT ROWID", "")
    ddl = ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "bigserial PRIMARY KEY")
    ddl = ddl.replace("(name COLLATE NOCASE)", "(lower(name))")
    ddl = re.sub(r"\buser\b", '"user"', ddl)
    return [statement.strip() for statement in ddl.split(";") if statement.strip()]


class _PostgresConnection:
    """A psycopg connection with the face of the sqlite3.Connection MessageIndex uses."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql: str, params: Sequence = ()):
        return self.connection.execute(_postgres_dialect(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        # One statement at a time, no pipeline: a connection cut in the middle of one leaves no
        # transaction open that the server cannot end by itself.
        text = _postgres_dialect(sql)
        for row in rows:
            self.connection.execute(text, row)

    def close(self) -> None:
        self.connection.close()


class PostgresIndex(MessageIndex):
    """The index of one member's spool in the cluster's database (CLUSTER.md: its journal), in a
    schema of its own (`<schema of the DSN>_<member>`), so members never mix their messages."""

    _LATEST_CONVERSATIONS = (
        "SELECT * FROM (SELECT DISTINCT ON (c.number) c.number AS number, c.last_at AS last_at, "
        "c.last_direction AS last_direction, c.last_text AS last_text, k.name AS name FROM conversation c "
        "LEFT JOIN contact k ON k.number = c.number WHERE {condition} {filters} "
        "ORDER BY c.number, c.last_at DESC) latest ORDER BY last_at DESC LIMIT ? OFFSET ?"
    )

    def __init__(self, dsn: str, member: str, *, timeout: float = 10.0):
        from gsmgw.spool.journal.postgresql import masked_dsn

        self.dsn = dsn
        self.member = member
        self.timeout = timeout
        self.schema: str | None = None
        self.path = f"{masked_dsn(dsn)} (member {member})"
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()
        psycopg = _psycopg()
        try:
            self._create()
        except psycopg.Error as error:
            self.close()
            raise IndexError_(
                f"cannot open the message index in {self.path}: {error}; check journal: and that PostgreSQL "
                f"runs, then `gsmgw journal reindex` rebuilds it from the spool"
            ) from error

    def _create(self) -> None:
        db = cast(_PostgresConnection, self._db())  # this class's _connect makes them
        for statement in _postgres_schema():
            db.connection.execute(statement)
        self._check_schema(db)

    def _connect(self):
        psycopg = _psycopg()
        from psycopg import sql
        from psycopg.rows import dict_row

        connection = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row,
                                     connect_timeout=max(2, int(self.timeout)),
                                     application_name=f"gsmgw {self.member} index")
        if self.schema is None:
            base = connection.execute("SELECT current_schema() AS name").fetchone()["name"] or "public"
            name = f"{base}_{self.member}"
            self.schema = name if len(name) <= 63 else f"{base[:40]}_{hashlib.sha256(name.encode()).hexdigest()[:16]}"
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        connection.execute("SELECT set_config('search_path', %s, false), "
                           "set_config('idle_in_transaction_session_timeout', %s, false)",
                           (sql.Identifier(self.schema).as_string(connection), str(int(self.timeout * 1000))))
        return _PostgresConnection(connection)


def _psycopg():
    from gsmgw.spool.journal.postgresql import _psycopg as load

    return load()


def open_index(config) -> MessageIndex:
    """The index the config asks for: SQLite in the state directory, or with `journal:` its place
    in the cluster's PostgreSQL. IndexError_ says what to do when it cannot be opened."""
    if getattr(config, "journal", None) is not None:
        return PostgresIndex(config.journal, config.cluster.member)
    return MessageIndex(os.path.join(config.state, INDEX_FILE))
