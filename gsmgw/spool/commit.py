"""Group commit: every door's submissions made durable in outgoing/ together.

The doors (HTTP API, Kannel URL, console, SMPP, SMTP) acknowledge a message only once its file
is durable. One file after another would cap them at the disk's rate of "write, fsync, rename,
fsync the directory" (bench/bench_doors.py prints it). So each `Spool` has one `GroupCommitter`
(`spool.committer`), shared by every door, and one thread that commits: it takes every request
that arrived while the previous commit ran and makes them durable together with
`Spool.commit` (each file written and fsynced, the fsyncs in parallel threads so the file
system's journal joins them; each renamed into outgoing/; one fsync of the directory for the
whole batch). When it is idle a request is committed at once, with no timer; under load the
batches grow, so the directory fsyncs per second stay at what the disk does while the files per
fsync follow the load.

A request is the files of one submission (`FileGroup`), queued all or none. Its future gets
the names only after the directory fsync. A request whose own file cannot be written fails
alone; an fsync error fails every request of that batch (their files are removed again), each
with a `CommitError` that says what happened and that nothing was queued.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from gsmgw.spool.store import Spool

log = logging.getLogger("gsmgw.spool")

FSYNC_THREADS = 8  # fsyncs in flight at once: enough for ext4/xfs to join them into one journal commit
MAX_BATCH_FILES = 1024  # a larger backlog is committed in several batches, so no batch takes long
IDLE_SECONDS = 10.0  # the committing thread ends after this long without work


@dataclass(frozen=True)
class FileGroup:
    """The files of one submission (one HTTP request, one mail, one submit_sm), queued all or
    none. `name`: the name a one-file group must get (an SMPP id promised before its last
    segment came); otherwise the spool names the files."""

    files: Sequence[bytes]
    name: str | None = None


_Request = tuple[FileGroup, "concurrent.futures.Future[list[str]]"]


class CommitError(Exception):
    """The spool could not make a submission durable; nothing of it was queued. The message
    says why and what to do; `error` is the OSError behind it."""

    def __init__(self, message: str, error: OSError | None = None) -> None:
        super().__init__(message)
        self.error = error


def describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class GroupCommitter:
    """One thread that commits the requests of every door in batches (see the module).

    `fsync` is the call that makes a file or the directory durable (os.fsync; tests give one
    that fails, as a failing disk does)."""

    def __init__(self, spool: "Spool", *, fsync: Callable[[int], None] = os.fsync,
                 fsync_threads: int = FSYNC_THREADS, max_files: int = MAX_BATCH_FILES) -> None:
        self.spool = spool
        self.fsync = fsync
        self.fsync_threads = fsync_threads
        self.max_files = max_files
        self._pending: collections.deque[_Request] = collections.deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        self.batches = 0  # batches committed (one directory fsync each)
        self.files = 0  # files made durable
        self.recent: collections.deque[int] = collections.deque(maxlen=1000)  # files per recent batch

    def submit(self, files: Sequence[bytes], *, name: str | None = None) -> concurrent.futures.Future[list[str]]:
        """Queue `files` (all or none); the future gets their names once they are durable, or a
        CommitError. Thread-safe; never blocks on the disk."""
        future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
        with self._condition:
            if self._closed:
                future.set_exception(CommitError("the gateway is shutting down; nothing was queued, send it again"))
                return future
            if self._thread is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(self.fsync_threads, thread_name_prefix="gsmgw-fsync")
                self._thread = threading.Thread(target=self._run, name="gsmgw-spool-commit", daemon=True)
                self._thread.start()
            self._pending.append((FileGroup(tuple(files), name), future))
            self._condition.notify()
        return future

    async def queue(self, files: Sequence[bytes], *, name: str | None = None) -> list[str]:
        """`submit` for a coroutine: the names once durable; raises CommitError."""
        return await asyncio.wrap_future(self.submit(files, name=name))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is pending, then stop the thread; later submissions fail with CommitError."""
        with self._condition:
            self._closed = True
            self._condition.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self) -> list[_Request] | None:
        """Everything that arrived since the last batch (up to max_files); None when the thread
        is to end: closed, or idle for IDLE_SECONDS (the next `submit` starts a new one, so an
        idle process, or a test's many spools, keep no threads)."""
        with self._condition:
            while not self._pending:
                if self._closed or not self._condition.wait(IDLE_SECONDS) and not self._pending:
                    self._thread = None
                    if self._pool is not None:
                        self._pool.shutdown(wait=False)
                        self._pool = None
                    return None
            batch: list[_Request] = []
            count = 0
            while self._pending and (not batch or count + len(self._pending[0][0].files) <= self.max_files):
                group, future = self._pending.popleft()
                # A caller that gave up before its batch began (a cancelled request) is not written.
                if future.set_running_or_notify_cancel():
                    batch.append((group, future))
                    count += len(group.files)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            try:
                results = self.spool.commit([group for group, _ in batch], fsync=self.fsync, pool=self._pool)
            except Exception as error:  # a bug, not the disk: fail this batch, keep the committer
                log.exception("the spool's group commit failed")
                results = [OSError(0, f"internal error: {error}")] * len(batch)
            self.batches += 1
            self.recent.append(sum(len(group.files) for group, _ in batch))
            failed = 0
            for (group, future), result in zip(batch, results):
                if isinstance(result, BaseException):
                    failed += len(group.files)
                    future.set_exception(CommitError(
                        f"the spool cannot be written ({describe(result)}); nothing was queued, try again later",
                        result if isinstance(result, OSError) else None))
                else:
                    self.files += len(result)
                    future.set_result(result)
            if failed:
                log.error("cannot write %d message(s) to the spool's outgoing/: %s", failed,
                          "; ".join(sorted({describe(r) for r in results if isinstance(r, BaseException)})))
