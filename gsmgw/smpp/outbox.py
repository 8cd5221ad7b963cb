"""Deliveries waiting for a client's receiver session, kept across restarts (SQLite).

Reads and writes: `smpp-outbox.sqlite` in the state directory (docs/config.md `state`), nothing else.

A delivery (an inbound SMS segment or a delivery receipt for one SMPP client) is written here
when it is queued and deleted when the client has answered its deliver_sm with ESME_ROK. So a
receipt that arrives while the client is not bound still reaches it after a restart of the
daemon: at least once, in the order queued.

A delivery gsmgw cannot hand over (an address no deliver_sm can carry, a client that refuses it
again and again or never answers it) is parked: its row stays, with `parked` (the reason) and
`parked_at` set, it is not loaded again, and it never holds up the deliveries behind it. List
them with `sqlite3 STATE/smpp-outbox.sqlite "SELECT * FROM delivery WHERE parked IS NOT NULL"`.

WAL with synchronous=NORMAL: a commit survives the daemon being killed (kill -9), not a power
cut. These are notifications whose source of truth stays in the spool (report/, incoming/), so
an fsync per receipt would only slow down the event loop it runs on.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from pathlib import Path

from .session import Delivery

log = logging.getLogger("gsmgw.smpp")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client TEXT NOT NULL,
    source_addr TEXT NOT NULL,
    destination_addr TEXT NOT NULL,
    data_coding INTEGER NOT NULL,
    esm_class INTEGER NOT NULL,
    short_message BLOB NOT NULL,
    tlvs BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    what TEXT NOT NULL,
    parked TEXT,
    parked_at REAL
)
"""
# Outboxes written before parking existed lack the two columns.
_MIGRATIONS = ("ALTER TABLE delivery ADD COLUMN parked TEXT", "ALTER TABLE delivery ADD COLUMN parked_at REAL")


def _pack_tlvs(tlvs: dict[int, bytes]) -> bytes:
    return b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in tlvs.items())


def _unpack_tlvs(raw: bytes) -> dict[int, bytes]:
    tlvs, pos = {}, 0
    while pos + 4 <= len(raw):
        tag, length = struct.unpack_from(">HH", raw, pos)
        tlvs[tag] = raw[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return tlvs


# The columns `_delivery` reads, in its order.
_COLUMNS = "id, client, source_addr, destination_addr, data_coding, esm_class, short_message, tlvs, attempts, what"


def _delivery(row) -> Delivery:
    row_id, client, source, destination, data_coding, esm_class, short_message, tlvs, attempts, what = row
    delivery = Delivery(
        client_name=client, source_addr=source, destination_addr=destination, data_coding=data_coding,
        esm_class=esm_class, short_message=bytes(short_message), tlvs=_unpack_tlvs(bytes(tlvs)),
        attempts=attempts, what=what,
    )
    delivery.row_id = row_id
    return delivery


class Outbox:
    """The persistent side of the server's per-client delivery queues. `path` None keeps
    nothing on disk (tests, or a daemon without a state directory)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            try:
                self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(delivery)")}
                if "parked" not in columns:
                    for statement in _MIGRATIONS:
                        self._db.execute(statement)
            except sqlite3.Error as exc:
                raise RuntimeError(
                    f"cannot open the SMPP delivery queue {self.path}: {exc}; check that the state "
                    "directory is writable by the gsmgw user, or move the damaged file aside"
                ) from exc

    def load(self) -> list[Delivery]:
        """Everything still waiting, oldest first (at start)."""
        if self._db is None:
            return []
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM delivery WHERE parked IS NULL ORDER BY id").fetchall()
        return [_delivery(row) for row in rows]

    def add(self, delivery: Delivery) -> None:
        if self._db is None or delivery.row_id is not None:
            return
        try:
            cursor = self._db.execute(
                "INSERT INTO delivery (client, source_addr, destination_addr, data_coding, esm_class, short_message, "
                "tlvs, attempts, what) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (delivery.client_name, delivery.source_addr, delivery.destination_addr, delivery.data_coding,
                 delivery.esm_class, delivery.short_message, _pack_tlvs(delivery.tlvs), delivery.attempts,
                 delivery.what),
            )
        except sqlite3.Error as exc:
            # The delivery still waits in memory; it is only the restart case that is lost.
            log.error("smpp: cannot record %s in %s: %s; it is kept in memory only", delivery.what, self.path, exc)
            return
        delivery.row_id = cursor.lastrowid

    def remove(self, delivery: Delivery) -> None:
        if self._db is None or delivery.row_id is None:
            return
        try:
            self._db.execute("DELETE FROM delivery WHERE id = ?", (delivery.row_id,))
        except sqlite3.Error as exc:
            log.error("smpp: cannot remove %s from %s: %s; it may be delivered again after a restart",
                      delivery.what, self.path, exc)
        delivery.row_id = None

    def park(self, delivery: Delivery, reason: str, now: float) -> None:
        """Keep `delivery` aside for good (see the module's docstring)."""
        if self._db is None:
            return
        try:
            if delivery.row_id is None:
                self.add(delivery)
            self._db.execute(
                "UPDATE delivery SET parked = ?, parked_at = ?, attempts = ? WHERE id = ?",
                (reason, now, delivery.attempts, delivery.row_id),
            )
        except sqlite3.Error as exc:
            log.error("smpp: cannot park %s in %s: %s; it is dropped", delivery.what, self.path, exc)

    def parked(self) -> list[tuple[Delivery, str, float]]:
        """The parked deliveries with their reasons and times, oldest first."""
        if self._db is None:
            return []
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, parked, parked_at FROM delivery WHERE parked IS NOT NULL ORDER BY id"
        ).fetchall()
        return [(_delivery(row[:-2]), row[-2], row[-1]) for row in rows]

    def count_parked(self) -> int:
        if self._db is None:
            return 0
        return self._db.execute("SELECT count(*) FROM delivery WHERE parked IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
