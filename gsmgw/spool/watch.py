"""Notice new message files in outgoing/ at once, without reading a half-written one.

Reads: directory entries and their lstat (never file contents). Writes nothing.

How a file becomes "ready" (docs/spool.md):
  - inotify (Linux): when it is closed after writing (IN_CLOSE_WRITE) or renamed in
    (IN_MOVED_TO). A naive `echo text > file` is therefore reported after the close, not at the
    create. An entry that is not a regular file (symlink, directory, FIFO) is reported when it
    appears (IN_CREATE), so the store can move it to failed/ without opening it. The removal of
    `X.LOCK` (smstools3's lock convention) reports `X` again.
  - polling (no inotify, or its watch is gone): a regular file is ready when its size, mtime
    and inode are the same in two scans `poll_interval` apart, or when it was last modified
    more than `settle` seconds ago.
  - At start and after an inotify queue overflow (IN_Q_OVERFLOW) the whole directory is
    scanned; files modified within `settle` seconds wait for their close or for `settle`.

Wake-ups are hints and the scan is the truth: a reported name may be gone by the time the
caller claims it (that is normal), and repeated hints for one name collapse into one report.
Idle cost is nothing with inotify (the loop sleeps on the fd) and one directory listing per
`poll_interval` when polling.

A scan never holds the loop for long: it gives the loop back every SCAN_SLICE entries (100,000
files take about a second of lstat), so the daemon's claimer and dispatcher go on meanwhile, and
a file reported by inotify during the scan is reported at once. What a scan finds is reported
when it is done, as one batch in name order.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import stat
import struct
import time
from pathlib import Path
from typing import Callable

from gsmgw.spool.store import is_ignored

log = logging.getLogger("gsmgw.spool.watch")

# <sys/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name
WATCH_MASK = (
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
    | IN_ONLYDIR
)

# A watcher that lost events for some unforeseen reason still finds files, at this slow pace.
SAFETY_SCAN_SECONDS = 300.0
# Entries a scan looks at between two turns of the loop (about 5 ms of lstat).
SCAN_SLICE = 1000

Signature = tuple[int, int, int]  # size, mtime_ns, inode


def _load_inotify():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    init1.argtypes = [ctypes.c_int]
    init1.restype = ctypes.c_int
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    add_watch.restype = ctypes.c_int
    return init1, add_watch


_INOTIFY = _load_inotify()


class OutgoingWatcher:
    """Async iterator of batches of names in `directory` that are ready to claim.

    `async with OutgoingWatcher(path) as watcher: async for names in watcher: ...`
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        poll_interval: float = 2.0,
        settle: float | None = None,
        use_inotify: bool = True,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """`on_ready` is called whenever a name becomes ready, for a caller that waits on more
        than this watcher and collects the names with `take`."""
        self.directory = Path(directory)
        self._on_ready = on_ready
        self.poll_interval = poll_interval
        self.settle = poll_interval if settle is None else settle
        self.mode = "stopped"
        self._use_inotify = use_inotify
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ready: set[str] = set()
        self._has_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._force_scan = True
        self._closed = False
        self._retry_inotify = False  # the directory went away; watch it again once it is back
        self._missing_logged = False
        self._reported: dict[str, Signature] = {}  # what we last reported, to collapse repeats
        self._seen: dict[str, Signature] = {}  # unsettled files and their signature at the last scan

    def __repr__(self) -> str:
        return f"<OutgoingWatcher {str(self.directory)!r} mode={self.mode} ready={len(self._ready)}>"

    async def __aenter__(self) -> "OutgoingWatcher":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._use_inotify:
            self._start_inotify()
        if self._fd < 0:
            self.mode = "polling"
        self._task = asyncio.create_task(self._run(), name=f"watch {self.directory}")

    def _start_inotify(self) -> None:
        if _INOTIFY is None:
            log.warning("inotify is not available here; polling %s every %.1f s", self.directory, self.poll_interval)
            return
        init1, add_watch = _INOTIFY
        fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            log.warning(
                "inotify_init1 failed (%s); polling %s every %.1f s. Raise fs.inotify.max_user_instances "
                "to use inotify", os.strerror(code), self.directory, self.poll_interval,
            )
            return
        if add_watch(fd, os.fsencode(self.directory), WATCH_MASK) < 0:
            code = ctypes.get_errno()
            os.close(fd)
            log.warning(
                "cannot watch %s with inotify (%s); polling every %.1f s%s", self.directory, os.strerror(code),
                self.poll_interval, ". Raise fs.inotify.max_user_watches" if code == errno.ENOSPC else "",
            )
            return
        self._fd = fd
        self.mode = "inotify"
        assert self._loop is not None
        self._loop.add_reader(fd, self._on_inotify_readable)

    def _stop_inotify(self) -> None:
        if self._fd >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    async def close(self) -> None:
        self._closed = True
        self._stop_inotify()
        self.mode = "stopped"
        self._has_ready.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass  # the cancel we just asked for
            self._task = None

    def rescan(self) -> None:
        """Report every ready name again after a full scan (e.g. the daemon lost track)."""
        self._force_scan = True
        self._wake.set()

    # --- the iterator ---------------------------------------------------------------------

    def __aiter__(self) -> "OutgoingWatcher":
        return self

    async def __anext__(self) -> list[str]:
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            self._has_ready.clear()
            await self._has_ready.wait()
        return self.take()

    def take(self) -> list[str]:
        """The names ready now, in name order, without waiting ([] when none)."""
        batch = sorted(self._ready)
        self._ready.clear()
        return batch

    # --- events and scans -----------------------------------------------------------------

    def _report(self, name: str, signature: Signature | None) -> None:
        if signature is not None:
            self._reported[name] = signature
        self._seen.pop(name, None)
        self._ready.add(name)
        self._has_ready.set()
        if self._on_ready is not None:
            self._on_ready()

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.lstat(os.path.join(self.directory, name))  # not pathlib: 100,000 at start
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _on_inotify_readable(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("reading inotify events failed (%s); falling back to polling", exc.strerror)
                self._fall_back_to_polling()
                return
            if not data:
                return
            self._handle_events(data)

    def _handle_events(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            _, mask, _, length = _EVENT_HEADER.unpack_from(data, offset)
            offset += _EVENT_HEADER.size
            name = data[offset:offset + length].rstrip(b"\0").decode("utf-8", "surrogateescape")
            offset += length
            if mask & IN_Q_OVERFLOW:
                log.info("inotify queue overflowed on %s; scanning the whole directory", self.directory)
                self.rescan()
            elif mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                log.warning("%s was removed or moved; polling for it to come back", self.directory)
                self._fall_back_to_polling()
                return
            elif mask & (IN_DELETE | IN_MOVED_FROM):
                # Gone (claimed, or removed): forget it, so memory stays bounded by what is there.
                if mask & IN_DELETE and name.upper().endswith(".LOCK") and not is_ignored(name[:-5]):
                    self._hint_locked_file(name[:-5])
                self._reported.pop(name, None)
                self._seen.pop(name, None)
            elif mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
                self._hint(name)
            elif mask & IN_CREATE:
                # A regular file is reported at its close. Two kinds of entries never close after
                # a write: a hard link (link(2) into outgoing/, complete at once) and anything that
                # is not a regular file (reported now for the store to set aside).
                info = self._lstat(name)
                if info is not None and not is_ignored(name) and (
                    not stat.S_ISREG(info.st_mode) or info.st_nlink > 1
                ):
                    self._report(name, _signature(info))

    def _hint(self, name: str) -> None:
        if is_ignored(name):
            return
        info = self._lstat(name)
        if info is None:
            return
        if _young_and_empty(info, self.settle, time.time()):
            # Closed while still empty: `touch f` before `cat >> f`, or vim's "4913" probe that
            # it deletes again at once. Wait `settle` for content before calling it empty.
            self._seen[name] = _signature(info)
            self._wake.set()
            return
        self._report(name, _signature(info))

    def _hint_locked_file(self, name: str) -> None:
        info = self._lstat(name)
        if info is not None:
            self._report(name, _signature(info))

    def _fall_back_to_polling(self) -> None:
        self._stop_inotify()
        self.mode = "polling"
        self._retry_inotify = self._use_inotify
        self.rescan()

    async def _list(self) -> list[str]:
        """The directory's entries, read a slice at a time (the kernel hands them out in pages)."""
        names: list[str] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) % SCAN_SLICE == 0:
                    await asyncio.sleep(0)
        return names

    async def _scan(self, force: bool) -> None:
        """List the directory; report entries that are ready and not reported as they are."""
        try:
            entries = await self._list()
        except FileNotFoundError:
            if not self._missing_logged:
                log.warning("%s does not exist; waiting for it to be created", self.directory)
                self._missing_logged = True
            return
        self._missing_logged = False
        # Lock files from the same listing: one stat per file fewer (a scan of 100,000 files at
        # start holds up the daemon's loop).
        locked = {name[:-5] for name in entries if name.endswith(".LOCK")}
        names = [name for name in entries if not is_ignored(name)]
        present = set(names)
        for stale in set(self._reported) - present:
            del self._reported[stale]
        for stale in set(self._seen) - present:
            del self._seen[stale]
        now = time.time()
        found: list[tuple[str, Signature]] = []
        for position, name in enumerate(names):
            if position % SCAN_SLICE == SCAN_SLICE - 1:
                await asyncio.sleep(0)
                if self._closed:
                    return
            info = self._lstat(name)
            if info is None:
                continue
            signature = _signature(info)
            if not force and self._reported.get(name) == signature:
                continue
            if not stat.S_ISREG(info.st_mode):
                found.append((name, signature))
                continue
            if name in locked:
                self._seen.pop(name, None)
                self._reported.pop(name, None)
                continue
            if _young_and_empty(info, self.settle, now):
                self._seen[name] = signature
            elif now - info.st_mtime >= self.settle or self._seen.get(name) == signature:
                found.append((name, signature))
            else:
                self._seen[name] = signature
        for name, signature in found:
            self._report(name, signature)

    async def _run(self) -> None:
        last_scan = 0.0
        while not self._closed:
            if self._retry_inotify and self.directory.is_dir():
                self._retry_inotify = False
                self._start_inotify()
                if self._fd >= 0:
                    log.info("%s is back; watching it with inotify again", self.directory)
                    self._force_scan = True
            if self._force_scan or self.mode == "polling" or self._seen or \
                    time.monotonic() - last_scan >= SAFETY_SCAN_SECONDS:
                force, self._force_scan = self._force_scan, False
                await self._scan(force)
                last_scan = time.monotonic()
            if self.mode == "polling" or self._seen:
                timeout = self.poll_interval if self.mode == "polling" else self.settle
            else:
                timeout = SAFETY_SCAN_SECONDS
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass  # no hint came: time for the safety scan


def _young_and_empty(info: os.stat_result, settle: float, now: float) -> bool:
    """An empty regular file changed less than `settle` seconds ago: its writer may not be done."""
    return stat.S_ISREG(info.st_mode) and info.st_size == 0 and now - info.st_mtime < settle


def _signature(info: os.stat_result) -> Signature:
    return (info.st_size, info.st_mtime_ns, info.st_ino)
