"""Fills the journal's message index (gsmgw.spool.index) as messages move, and rebuilds it.

What it reads: the daemon's events (bus subscriber) and the spool files they name; at start and
for `gsmgw journal reindex`, the spool's directories. What it writes: the index, from one thread
of its own, in batches: the daemon's loop only appends an event to a list, so sending never waits
for the index.

A message's row is always made from its spool file, wherever the file is now (sent/, failed/,
checked/, outgoing/; incoming/ for inbound), with the one status rule for files
(`gsmgw.spool.message_status.from_file`): an event says *which* message changed, the file says
how it stands. So a repeated, late or lost event cannot leave a wrong state, and a rebuild from
the spool gives the rows the events gave.

Catch-up: each batch records the time it started in the index (`cursor`). At start, files
modified since the cursor (less a margin) are indexed again, so events lost to a crash or a power
cut are made good; an index that was never built (a spool an earlier gsmgw wrote) is built from
the whole spool, in the background.

Listeners (the console's live updates) get the rows as stored, after each batch is committed,
so a page that reloads on a notice sees the new state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import overload

from gsmgw.events import MessageFailed, MessageQueued, MessageReceived, MessageSent, ModemStateChanged, ReportReceived
from gsmgw.http.spoolview import find_outgoing, inbox_entry, parse_time
from gsmgw.spool.message_status import DELIVERED, SPOOL_DIRECTORIES, from_file, valid_name
from gsmgw.spool.format import SpoolFormatError, message_text, read_spool_file
from gsmgw.spool.index import IN, OUT, RECEIVED, IndexedMessage, MessageIndex, ModemEvent

log = logging.getLogger("gsmgw.indexer")

CATCH_UP_MARGIN = 5.0  # seconds before the cursor that are indexed again at start
BATCH_DELAY = 0.02  # events arriving within this time are written together
BUILT = "built"
CURSOR = "cursor"


def _timestamp(value: str | None) -> float | None:
    moment = parse_time(value)
    return moment.timestamp() if moment is not None else None


@overload
def _refine(stamp: float, mtime: float) -> float: ...
@overload
def _refine(stamp: float | None, mtime: float) -> float | None: ...
def _refine(stamp: float | None, mtime: float) -> float | None:
    """A header's time has whole seconds; when the file was written within that second, its
    mtime gives the fraction, so two messages of the same second keep their order in a thread."""
    if stamp is not None and 0 <= mtime - stamp < 1:
        return mtime
    return stamp


def outbound_row(
    name: str, dirname: str, data: bytes, mtime: float, *, seal_key: bytes | None = None
) -> IndexedMessage | None:
    """The index row of an outgoing message from its file in `dirname` (pure). None for a file
    without a recipient (nothing to show in a conversation). Its client is the file's `Client:`
    only when the file's seal verifies with `seal_key` (a trusted header, gsmgw.spool.format)."""
    status = from_file(name, dirname, data)
    try:
        headers = read_spool_file(data, seal_key=seal_key).headers
    except SpoolFormatError:
        return None
    number = (headers.get("To") or "").strip()
    if not number:
        return None
    sent = _timestamp(headers.get("Sent")) if dirname == "sent" else None
    finished = _timestamp(headers.get("Failed")) if dirname == "failed" else None
    queued = _refine(_timestamp(headers.get("Queued")) or _timestamp(headers.get("Submitted")), mtime)
    return IndexedMessage(
        direction=OUT,
        id=name,
        number=number,
        state=status.status,
        at=queued or sent or finished or mtime,
        client=headers.get("Client"),
        campaign=headers.get("Campaign"),
        modem=headers.get("Modem"),
        text=message_text(data),
        parts=status.parts,
        sent=sent,
        delivered=_timestamp(status.delivered) if status.status == DELIVERED else None,
        finished=finished if finished is not None else (mtime if dirname == "failed" else None),
        fail_reason=status.fail_reason,
    )


def inbound_row(name: str, data: bytes, mtime: float) -> IndexedMessage:
    """The index row of an incoming/ file (pure)."""
    entry = inbox_entry(name, data)
    message = entry.message
    return IndexedMessage(
        direction=IN,
        id=name,
        number=message["from"] or "",
        state=RECEIVED,
        at=_refine(entry.received.timestamp(), mtime) if entry.received is not None else mtime,
        modem=message["modem"],
        text=message["text"],
        parts=message["parts"],
    )


def read_outbound(spool, name: str) -> IndexedMessage | None:
    """The row of outgoing message `name` from wherever its file is now; None if it is nowhere."""
    found = find_outgoing(spool, name)
    if found is None:
        return None
    dirname, data = found
    try:
        mtime = os.stat(spool.path(dirname, name)).st_mtime
    except OSError:
        return None  # moved on between the read and the stat: its next event reads it again
    return outbound_row(name, dirname, data, mtime, seal_key=spool.seal_key)


def read_inbound(spool, name: str) -> IndexedMessage | None:
    try:
        data = spool.read("incoming", name)
        return inbound_row(name, data, os.stat(spool.path("incoming", name)).st_mtime)
    except (OSError, ValueError) as error:
        log.debug("index: incoming/%s unreadable: %s", name, error)
        return None


def scan_spool(spool, since: float | None = None) -> Iterator[IndexedMessage]:
    """Rows of every message file (modified at or after `since`), outbound then inbound. A name in
    several directories (a crash between write and unlink) is read from the most advanced one."""
    seen: set[str] = set()
    for dirname in SPOOL_DIRECTORIES + ("incoming",):
        try:
            entries = list(os.scandir(spool.path(dirname)))
        except FileNotFoundError:
            continue
        for entry in entries:
            name = entry.name
            if not valid_name(name) or (dirname != "incoming" and name in seen):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if dirname != "incoming":
                seen.add(name)
            if since is not None and info.st_mtime < since:
                continue
            try:
                data = spool.read(dirname, name)
            except (OSError, ValueError):
                continue
            try:
                row = inbound_row(name, data, info.st_mtime) if dirname == "incoming" else outbound_row(
                    name, dirname, data, info.st_mtime, seal_key=spool.seal_key)
            except (SpoolFormatError, ValueError) as error:
                log.warning("index: %s/%s cannot be read (%s); not indexed", dirname, name, error)
                continue
            if row is not None:
                yield row


def rebuild(index: MessageIndex, spool, *, clock: Callable[[], float] = time.time, batch: int = 2000) -> int:
    """Forget the index's messages and read them all from the spool; returns how many."""
    started = clock()
    index.clear_messages()
    count = _write_all(index, scan_spool(spool), batch)
    index.set_meta(BUILT, str(started))
    index.set_meta(CURSOR, str(started))
    return count


def catch_up(index: MessageIndex, spool, *, clock: Callable[[], float] = time.time) -> int:
    """At start: build the index if it never was, else index the files changed since the cursor."""
    if index.get_meta(BUILT) is None:
        count = rebuild(index, spool, clock=clock)
        log.info("index: built from the spool: %d messages", count)
        return count
    started = clock()
    cursor = float(index.get_meta(CURSOR) or 0.0)
    count = _write_all(index, scan_spool(spool, since=cursor - CATCH_UP_MARGIN), 2000)
    index.set_meta(CURSOR, str(started))
    if count:
        log.info("index: %d messages changed while gsmgw was not running; indexed", count)
    return count


def _write_all(index: MessageIndex, rows: Iterator[IndexedMessage], batch: int) -> int:
    count = 0
    chunk: list[IndexedMessage] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            count += len(index.record(chunk))
            chunk = []
    if chunk:
        count += len(index.record(chunk))
    return count


@dataclass(frozen=True)
class MessageChange:
    """A message's row as committed, and when the daemon announced the change (time.time())."""

    message: IndexedMessage
    announced: float


@dataclass(frozen=True)
class ModemChange:
    modem: str
    state: str
    previous: str
    reason: str | None
    announced: float


Listener = Callable[[list], None]


class Indexer:
    """The bus subscriber that keeps the index current (see the module docstring)."""

    def __init__(self, index: MessageIndex, spool, *, clock: Callable[[], float] = time.time,
                 batch_delay: float = BATCH_DELAY):
        self.index = index
        self.spool = spool
        self.clock = clock
        self.batch_delay = batch_delay
        self._pending: dict[tuple[str, str], float] = {}
        self._modem_changes: list[ModemChange] = []
        self._listeners: list[Listener] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gsmgw-index")
        self._flusher: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._catching_up: asyncio.Future[None] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Catch up with the spool in the background (the daemon does not wait for it)."""
        loop = asyncio.get_running_loop()
        self._catching_up = asyncio.ensure_future(loop.run_in_executor(self._executor, self._catch_up))

    def _catch_up(self) -> None:
        try:
            catch_up(self.index, self.spool, clock=self.clock)
        except Exception:
            log.exception("index: catching up with the spool failed; `gsmgw journal reindex` rebuilds it")

    async def flush(self) -> None:
        """Wait until every event handed in so far is committed (and the start-up catch-up ran)."""
        if self._catching_up is not None:
            await self._catching_up
        while self._pending or self._modem_changes or not self._idle.is_set():
            if self._flusher is None:
                self._schedule(0)
            await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        self._executor.shutdown(wait=True)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """`listener(changes)` on the loop after each committed batch; returns the unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- events -------------------------------------------------------------------------------

    def handle(self, event) -> None:
        """Bus subscriber: cheap on the loop (remember the name, write later from the thread)."""
        now = self.clock()
        if isinstance(event, (MessageQueued, MessageSent, ReportReceived, MessageFailed)):
            if valid_name(event.id):
                self._pending.setdefault((OUT, event.id), now)
        elif isinstance(event, MessageReceived):
            if valid_name(event.id):
                self._pending.setdefault((IN, event.id), now)
        elif isinstance(event, ModemStateChanged):
            self._modem_changes.append(ModemChange(event.modem, event.state, event.previous, event.reason, now))
        else:
            return
        self._schedule(self.batch_delay)

    def _schedule(self, delay: float) -> None:
        if self._flusher is None:
            self._idle.clear()
            self._flusher = asyncio.ensure_future(self._flush_loop(delay))

    async def _flush_loop(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(delay)
            while self._pending or self._modem_changes:
                pending, self._pending = self._pending, {}
                modem_changes, self._modem_changes = self._modem_changes, []
                try:
                    changes = await loop.run_in_executor(self._executor, self._write, pending, modem_changes)
                except Exception:
                    log.exception("index: writing %d change(s) failed; the next start catches up", len(pending))
                    continue
                for listener in list(self._listeners):
                    try:
                        listener(changes)
                    except Exception:
                        log.exception("index: a listener failed")
        finally:
            self._flusher = None
            self._idle.set()

    def _write(self, pending: dict[tuple[str, str], float], modem_changes: list[ModemChange]) -> list:
        started = self.clock()
        rows, announced = [], []
        for (direction, name), moment in pending.items():
            row = read_outbound(self.spool, name) if direction == OUT else read_inbound(self.spool, name)
            if row is not None:
                rows.append(row)
                announced.append(moment)
        stored = self.index.record(rows) if rows else []
        for change in modem_changes:
            self.index.record_modem_event(ModemEvent(change.modem, change.announced, change.state, change.reason))
        self.index.set_meta(CURSOR, str(started))
        return [MessageChange(row, moment) for row, moment in zip(stored, announced)] + list(modem_changes)


def local_time(moment: float) -> datetime:
    return datetime.fromtimestamp(moment).astimezone()
