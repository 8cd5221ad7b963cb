"""Group commit for network submissions: many requests, one `Spool.submit_many`.

Every accepted message must be durable in outgoing/ before its `202` (docs/api.md). A file fsync plus
a directory fsync per request would cap the server at the disk's fsync rate, so requests that
arrive while a batch is being written wait for the next batch, and each batch pays one directory
fsync. Up to `parallel` batches are written at once in worker threads, so the file fsyncs of
several batches overlap (the file system's journal commits them together).

All or nothing per request: a request with one recipient is one file, queued by one rename, so
the one-recipient requests of a batch go through `Spool.submit_each` (no `.LOCK` reservation,
each request gets its own name or its own error). Requests with several recipients go through
`submit_many`, which queues all of their files or none; if it fails, those requests all get the
error (the HTTP layer answers 503) and may be retried by their clients.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("gsmgw.http")


class SubmitError(Exception):
    """The spool could not be written; the message names the cause."""


class OverLimit(Exception):
    """The client's `limits` have no room for `parts` SMS parts: for `wait` seconds, or never
    (`wait` is math.inf: the parts are more than a limit itself). Nothing was taken or queued."""

    def __init__(self, client: Any, parts: int, recipients: int, wait: float):
        super().__init__(f"client {client.name!r} is over its limits")
        self.client, self.parts, self.recipients, self.wait = client, parts, recipients, wait

    def describe_limits(self) -> str:
        """"30 per minute, 500 per day" (the client's limits, which count SMS parts)."""
        return ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in self.client.limits.items())


async def queue_for_client(registry: Any, submitter: "BatchSubmitter", client: Any, files: Sequence[Any]) -> list[str]:
    """Take room in `client`'s limits for the SMS parts of `files` (checked messages with `parts`
    and `data`, e.g. `validation.PreparedMessage`) and write them, all or none; their names.

    Every door that writes for a client ends here (HTTP, Kannel, the console, mail): limits count
    what the SIMs send, parts, not requests or recipients. OverLimit when there is no room;
    SubmitError (the room given back) when the spool cannot be written."""
    moment = time.monotonic()
    parts = sum(message.parts for message in files)
    wait = registry.acquire(client, parts, moment)
    if wait > 0:
        raise OverLimit(client, parts, len(files), wait)
    try:
        return await submitter.submit([message.data for message in files])
    except SubmitError:
        registry.release(client, parts, moment)
        raise


class BatchSubmitter:
    def __init__(self, spool: Any, *, max_batch: int = 512, parallel: int = 8):
        self.spool = spool
        self.max_batch = max_batch
        self._pending: list[tuple[Sequence[bytes], asyncio.Future[list[str]]]] = []
        self._slots = asyncio.Semaphore(parallel)
        # Our own threads: the loop's default executor is small (cpu + 4) and shared with the
        # daemon, which must not wait behind a flood of HTTP writes.
        self._executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="gsmgw-http-spool")
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task | None = None
        self._writers: set[asyncio.Task] = set()
        self.batches = 0
        self.files = 0

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="gsmgw-http-submit")

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass  # the cancel we just asked for
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        for _, future in self._pending:
            if not future.done():
                future.set_exception(SubmitError("the server is shutting down; send the request again"))
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, files: Sequence[bytes]) -> list[str]:
        """Queue `files` in outgoing/; returns their names once they are durable."""
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._pending.append((files, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._slots.acquire()
                batch: list[tuple[Sequence[bytes], asyncio.Future[list[str]]]] = []
                count = 0
                while self._pending and (not batch or count + len(self._pending[0][0]) <= self.max_batch):
                    entry = self._pending.pop(0)
                    batch.append(entry)
                    count += len(entry[0])
                task = asyncio.create_task(self._write(batch))
                self._writers.add(task)
                task.add_done_callback(self._writers.discard)

    async def _write(self, batch: list[tuple[Sequence[bytes], asyncio.Future[list[str]]]]) -> None:
        try:
            singles = [(files, future) for files, future in batch if len(files) == 1]
            groups = [(files, future) for files, future in batch if len(files) != 1]
            loop = asyncio.get_running_loop()
            if singles:
                await self._write_singles(loop, singles)
            if groups:
                await self._write_groups(loop, groups)
            self.batches += 1
        finally:
            self._slots.release()

    async def _write_singles(self, loop, batch) -> None:
        files = [request_files[0] for request_files, _ in batch]
        try:
            results = await loop.run_in_executor(self._executor, self.spool.submit_each, files)
        except Exception as exc:
            self._fail(batch, exc)
            return
        for result, (_, future) in zip(results, batch):
            if isinstance(result, OSError):
                log.error("cannot write a message to the spool's outgoing/: %s", result)
                if not future.done():
                    future.set_exception(SubmitError(
                        f"the spool cannot be written ({_describe(result)}); nothing was queued, try again later"))
            else:
                self.files += 1
                if not future.done():
                    future.set_result([result])

    async def _write_groups(self, loop, batch) -> None:
        files = [data for request_files, _ in batch for data in request_files]
        try:
            names = await loop.run_in_executor(self._executor, self.spool.submit_many, files)
        except Exception as exc:
            self._fail(batch, exc)
            return
        self.files += len(names)
        position = 0
        for request_files, future in batch:
            own = names[position:position + len(request_files)]
            position += len(request_files)
            if not future.done():
                future.set_result(own)

    @staticmethod
    def _fail(batch, exc: Exception) -> None:
        count = sum(len(request_files) for request_files, _ in batch)
        log.error("cannot write %d message(s) to the spool's outgoing/: %s", count, exc)
        error = SubmitError(f"the spool cannot be written ({_describe(exc)}); nothing was queued, try again later")
        for _, future in batch:
            if not future.done():
                future.set_exception(error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
