"""A durable delivery queue in a directory of the state dir: what webhooks and mail out share.

Reads/writes: one JSON file per pending delivery in its directory (`<state>/webhooks/`,
`<state>/mail-out/`); a delivery given up after `max_age` moves to `dead/` there, for a human to
look at; with `remember_done`, an empty file per delivered id in `done/`, kept that long. Every
file is written atomically (temporary name, fsync, rename, fsync of the directory) before the call
that wrote it returns, so a delivery survives a crash or `kill -9` and is tried again after the
restart.

At least once: a delivery leaves the queue only after its receiver took it. A crash between the
receiver's answer and the removal sends it again; that window is the only one for a duplicate.
With `remember_done`, adding an id that was delivered within that time (or is still pending) does
nothing, so an announcement repeated after a restart (see `Cursor`) is not delivered twice.

Never blocks: files are written in our own worker threads; deliveries run in their own tasks, a
bounded number at a time; a receiver that is down is retried with exponential backoff (first_delay,
twice that, ... at most `max_delay`, with up to 10 % jitter), so a dead receiver costs idle
timers, not the daemon's time.

Subclasses say what a delivery is (`load`: bytes -> item; items have `id`, `created`, `attempts`,
`next_at`, `last_error`, `to_bytes()` and `describe()`) and how it is delivered (`deliver`).
Time comes from `clock`, so tests can move it; `wake()` makes the queue look at its schedule now.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, TypeVarTuple, Unpack

from gsmgw.spool.store import MAX_FILE_SIZE, fsync_directory, read_regular_file, write_file_atomic


class QueueItem(Protocol):
    id: str
    created: float
    attempts: int
    next_at: float
    last_error: str | None

    def to_bytes(self) -> bytes: ...

    def describe(self) -> str: ...


Item = TypeVar("Item", bound=QueueItem)
Result = TypeVar("Result")
Arguments = TypeVarTuple("Arguments")


@dataclass(frozen=True)
class GiveUp:
    """What `deliver` returns when trying again cannot help (the receiver refused for good)."""

    reason: str


def write_private(path: Path, data: bytes) -> None:
    # Owner-only: a queued delivery holds what is delivered and where, which may carry a secret.
    write_file_atomic(path, data, mode=0o600)


class DurableQueue(Generic[Item]):
    """The queue and its delivery loop; `start()` it inside the event loop. See the module text."""

    def __init__(
        self,
        directory: Path | str,
        *,
        load: Callable[[bytes], Item],
        name: str,
        max_age: float,
        first_delay: float,
        max_delay: float,
        concurrency: int,
        clock: Callable[[], float] = time.time,
        remember_done: float | None = None,
    ):
        self.directory = Path(directory)
        self.dead_directory = self.directory / "dead"
        self.done_directory = self.directory / "done"
        self.load = load
        self.name = name
        self.max_age = max_age
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        self.remember_done = remember_done
        self.log = logging.getLogger(f"gsmgw.{name}")
        self._limit = asyncio.Semaphore(concurrency)
        self._heap: list[tuple[float, str]] = []
        self._deliveries: dict[str, Item] = {}
        self._in_flight: set[str] = set()
        # Ids that came due (replaced) while their older version was in flight: looked at again after it.
        self._due_again: set[str] = set()
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._next_prune = 0.0
        self.delivered_total = 0
        self.dead_total = 0
        # File writes in a thread of our own, so a burst of events never waits behind (or holds up)
        # the daemon's use of the loop's default executor. One thread: the writes and removals of
        # the files of one id happen in the order they were asked for.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gsmgw-{name}")

    async def in_thread(self, function: Callable[[Unpack[Arguments]], Result], *args: Unpack[Arguments]) -> Result:
        # Typed, so that mypy checks what the callers hand over (a dict where Headers belong once
        # stopped the daemon's start).
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # --- what subclasses provide ------------------------------------------------------------

    async def deliver(self, item: Item) -> str | GiveUp | None:
        """One attempt: None when delivered, else words for the log (GiveUp: do not retry)."""
        raise NotImplementedError

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loaded = await self.in_thread(self._load)
        for item in loaded:
            self._schedule(item)
        if loaded:
            self.log.info("%s: %d deliveries left from before the restart are queued again", self.name, len(loaded))
        self._runner = asyncio.create_task(self._run(), name=f"gsmgw-{self.name}")

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def _load(self) -> list[Item]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.dead_directory.mkdir(exist_ok=True)
        loaded = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                loaded.append(self.load(path.read_bytes()))
            except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
                # Keep it for a human rather than drop it or crash-loop on it.
                try:
                    os.rename(path, self.dead_directory / path.name)
                except OSError as move_error:
                    self.log.error("%s: %s is damaged (%s) and cannot be moved to %s (%s); move or delete it",
                                   self.name, path, exc, self.dead_directory, move_error)
                else:
                    self.log.error("%s: %s is damaged (%s); moved to %s", self.name, path, exc, self.dead_directory)
        # Partial writes of a crash are temporary files; they were never acknowledged.
        for tmp in self.directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):  # a leftover is ignored by every reader; the next start tries again
                tmp.unlink()
        return loaded

    # --- queueing ---------------------------------------------------------------------------

    def pending(self) -> int:
        return len(self._deliveries)

    def retrying(self) -> int:
        """Deliveries that failed at least once and wait for their next attempt."""
        return sum(1 for item in self._deliveries.values() if item.attempts)

    def wake(self) -> None:
        """Look at the schedule now (after the clock was moved, or to retry at once)."""
        self._wakeup.set()

    def path(self, item_id: str) -> Path:
        return self.directory / f"{item_id}.json"

    async def add(self, item: Item) -> bool:
        """Store `item` durably and schedule it. False (nothing stored) when an item with its id is
        pending, or was delivered within `remember_done`."""
        if not item.id or "/" in item.id or item.id.startswith("."):
            raise ValueError(f"{item.id!r} cannot name a queue file")
        if item.id in self._deliveries:
            return False
        if self.remember_done is not None and await self.in_thread(self._was_delivered, item.id):
            return False
        await self.in_thread(write_private, self.path(item.id), item.to_bytes())
        self._schedule(item)
        return True

    async def replace(self, item: Item) -> None:
        """Store `item` durably and schedule it, replacing a pending item with its id (the same
        announcement again, with newer content)."""
        if item.id not in self._deliveries:
            await self.add(item)
            return
        await self.in_thread(write_private, self.path(item.id), item.to_bytes())
        self._schedule(item)

    def _was_delivered(self, item_id: str) -> bool:
        return (self.done_directory / item_id).exists()

    def _schedule(self, item: Item) -> None:
        self._deliveries[item.id] = item
        heapq.heappush(self._heap, (item.next_at, item.id))
        self._wakeup.set()

    # --- delivery ---------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            now = self.clock()
            if self.remember_done is not None and now >= self._next_prune:
                self._next_prune = now + 3600.0
                await self.in_thread(self._prune_done, now)
            while self._heap and self._heap[0][0] <= now:
                _, item_id = heapq.heappop(self._heap)
                item = self._deliveries.get(item_id)
                if item is None:
                    continue
                if item_id in self._in_flight:
                    self._due_again.add(item_id)
                    continue
                self._in_flight.add(item_id)
                task = asyncio.create_task(self._attempt(item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            delay = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)

    def _current(self, item: Item) -> bool:
        """False when `replace` put a newer item with this id in its place (which stays pending)."""
        return self._deliveries.get(item.id) is item

    async def _attempt(self, item: Item) -> None:
        try:
            async with self._limit:
                outcome = await self.deliver(item)
            if outcome is None:
                self.delivered_total += 1
                if self._current(item):
                    await self.in_thread(self._done, item)
                    # A newer item that replaced this one meanwhile stays: its file was written
                    # after this removal (one file thread, in order) and it is due again below.
                    if self._current(item):
                        self._deliveries.pop(item.id, None)
                return
            if not self._current(item):
                return  # the newer version is pending; this one's failure says nothing about it
            if isinstance(outcome, GiveUp):
                item.attempts += 1
                item.last_error = outcome.reason
                self.log.error("%s: giving up on %s: %s; kept in %s", self.name, item.describe(), outcome.reason,
                               self.dead_directory)
                await self._give_up(item)
                return
            await self._retry_later(item, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the queue must outlive any single delivery
            self.log.exception("%s: delivery %s broke", self.name, item.describe())
            if self._current(item):
                await self._retry_later(item, f"internal error: {exc}")
        finally:
            self._in_flight.discard(item.id)
            if item.id in self._due_again:
                self._due_again.discard(item.id)
                newer = self._deliveries.get(item.id)
                if newer is not None:
                    self._schedule(newer)

    def _unlink(self, item: Item) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(item.id))

    def _done(self, item: Item) -> None:
        if self.remember_done is not None:
            # The mark is durable before the delivery's file goes, so no crash forgets both.
            self.done_directory.mkdir(exist_ok=True)
            mark = self.done_directory / item.id
            fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)
            now = self.clock()
            os.utime(mark, (now, now))  # its age is measured on the queue's clock
            fsync_directory(self.done_directory)
        self._unlink(item)

    def _prune_done(self, now: float) -> None:
        if self.remember_done is None or not self.done_directory.is_dir():
            return
        horizon = now - self.remember_done
        for entry in os.scandir(self.done_directory):
            with contextlib.suppress(OSError):  # gone already, or unreadable: the next prune tries again
                if entry.stat().st_mtime < horizon:
                    os.unlink(entry.path)

    async def _retry_later(self, item: Item, error: str) -> None:
        item.attempts += 1
        item.last_error = error
        # Exponential backoff with up to 10 % jitter, so many failed deliveries do not retry in step.
        delay = min(self.first_delay * 2 ** (item.attempts - 1), self.max_delay)
        delay *= 1 + random.random() * 0.1
        now = self.clock()
        if now + delay > item.created + self.max_age:
            self.log.error(
                "%s: giving up on %s after %d attempts over %.0f s (last: %s); kept in %s",
                self.name, item.describe(), item.attempts, now - item.created, error, self.dead_directory,
            )
            await self._give_up(item)
            return
        self.log.warning("%s: %s failed (%s); attempt %d, next in %.0f s",
                         self.name, item.describe(), error, item.attempts, delay)
        item.next_at = now + delay
        await self.in_thread(write_private, self.path(item.id), item.to_bytes())
        if self._current(item):  # not replaced while its file was written (the newer file came after)
            self._schedule(item)

    async def _give_up(self, item: Item) -> None:
        if self._current(item):
            self._deliveries.pop(item.id, None)
        await self.in_thread(self._bury, item)
        self.dead_total += 1

    def _bury(self, item: Item) -> None:
        self.dead_directory.mkdir(parents=True, exist_ok=True)
        write_private(self.dead_directory / f"{item.id}.json", item.to_bytes())
        self._unlink(item)
        fsync_directory(self.directory)


# A file the daemon wrote: a message of at most MAX_FILE_SIZE plus the headers it added.
ANNOUNCED_FILE_LIMIT = 2 * MAX_FILE_SIZE


class Cursor:
    """How far a queue got through a spool directory, so a crash loses no announcement.

    The daemon writes an incoming/ (or report/, failed/) file, then publishes its event; a
    `kill -9` between the two, or before the delivery is queued, would lose it. The cursor holds
    the newest mtime (ns) of a file in that directory whose delivery is queued; at start, every
    file after it is announced again, with a delivery id derived from the file's name, so a file
    announced twice is one delivery. The first start begins at "now", not with the whole history.

    Events are handled in concurrent tasks, so a later file can be queued (and advance the
    cursor) just before an earlier one; the restart therefore also looks `OVERLAP_NS` back.
    """

    OVERLAP_NS = 5_000_000_000

    def __init__(self, path: Path, log: logging.Logger | None = None):
        self.path = path
        self.position: int | None = None
        self.log = log or logging.getLogger("gsmgw")

    def load(self, now_ns: int) -> int:
        try:
            self.position = int(self.path.read_text().strip())
        except (OSError, ValueError):
            self.position = now_ns
            write_private(self.path, str(now_ns).encode())
        return self.position

    def advance(self, mtime_ns: int) -> None:
        if self.position is not None and mtime_ns <= self.position:
            return
        self.position = mtime_ns
        write_private(self.path, str(mtime_ns).encode())

    def advance_to_file(self, path: str) -> None:
        try:
            self.advance(os.stat(path).st_mtime_ns)
        except OSError:
            pass  # the file is gone: the cursor stays behind, so a restart announces again (at least once)

    def files_after(self, directory: Path) -> list[tuple[int, str, bytes]]:
        """(mtime_ns, name, content) of the files in `directory` after the cursor, oldest first."""
        found = []
        position = (self.position or 0) - self.OVERLAP_NS
        for entry in os.scandir(directory):
            if entry.name.startswith(".") or entry.name.endswith(".tmp"):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if info.st_mtime_ns > position:
                    # failed/ also holds what a claim set aside unread (a FIFO would block the start,
                    # a symlink would be followed, a sparse file of gigabytes read whole).
                    found.append((info.st_mtime_ns, entry.name, read_regular_file(entry.path, ANNOUNCED_FILE_LIMIT)))
            except OSError as exc:
                self.log.warning("cannot read %s to announce it: %s", entry.path, exc)
        return sorted(found)
