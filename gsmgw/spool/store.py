"""The spool directories (docs/spool.md) as a state machine on one file system.

A message's state is the directory its file is in, and a change of state is one rename:
outgoing/ -> checked/ (claim) -> sent/ or failed/ (finish). Incoming SMS and delivery reports
are new files in incoming/ and report/.

Writes: every file this module writes appears whole. It is written under a temporary name that
starts with "." and ends in ".tmp" in the same directory (so watchers and users ignore it),
fsynced, renamed into place, and the directory is fsynced. Only then does a call return, so a
message a caller acknowledged survives a crash or a power cut.

Trust: files in outgoing/ come from users. An entry there that is not a regular file (symlink,
directory, FIFO, device) is never opened or followed: it is moved to failed/ as it is. Files are
opened with O_NOFOLLOW and checked with fstat after the claim, so a file swapped for a symlink
between the check and the open is caught. A file over MAX_FILE_SIZE is not read.

Names: a rename never replaces another message. When a name is taken, the new file gets
"-2", "-3", ... (renameat2 RENAME_NOREPLACE; link + unlink where the file system lacks it).

Seal: a `Spool` made with the install's `seal_key` (`load_seal_key`, only the daemon has it)
seals every file it writes into outgoing/ (`commit`, `submit`, `submit_many`, `submit_each`,
`write_new("outgoing", ...)`: the doors' writes), so that the trusted headers in them count
(`gsmgw.spool.format`, "Trusted headers"); `verified(data)` is the view every reader of those
headers uses. The seal is part of the file's bytes, so it is as durable as the file.

Priority: the same writes tell `on_high_priority` (the daemon's claimer) the names of the
`Priority: high` files they made durable, so an alert from a door is claimed before any backlog
without waiting for the watcher. It is a hint: the file in outgoing/ is the truth.

Crash recovery (`recover`): a crash in `finish` between writing the target and unlinking the
source leaves the file in both places; the target wins and the source is removed. A crash during
a claim leaves the file in outgoing/ or checked/, never lost. Our own stale temporary files are
removed. The daemon's journal decides what to do with what is left in checked/.
"""

from __future__ import annotations

import builtins  # Spool.list shadows list in the class body
import ctypes
import errno
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from concurrent.futures import Executor
from typing import Any, Callable, Sequence

from gsmgw.spool.commit import FileGroup, GroupCommitter
from gsmgw.spool.format import HEAD_BYTES, SpoolFile, declared_priority, outgoing_name, read_spool_file, seal

log = logging.getLogger("gsmgw.spool")

SEAL_KEY_FILE = "seal.key"  # in the state directory
SEAL_KEY_BYTES = 32

DIRECTORIES = ("outgoing", "checked", "sent", "failed", "incoming", "report", "calls")
MAX_FILE_SIZE = 1024 * 1024  # 255 UCS-2 parts are 35 KB; anything near 1 MiB is not a message
TMP_PREFIX = ".gsmgw-"
TMP_SUFFIX = ".tmp"
STALE_TMP_SECONDS = 600  # a temporary file older than this belongs to a writer that died

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


class NotDurable(OSError):
    """An fsync failed: the disk did not confirm what was written, so nothing written since can
    be trusted to be on it either."""


class SpoolError(Exception):
    """The spool cannot be used; the message says which path and what to do."""


def is_ignored(name: str) -> bool:
    """Names in outgoing/ that are not (yet) messages: hidden, temporary or lock files."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(".tmp") or lower.endswith(".lock")


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _load_renameat2() -> Any:  # the C function (ctypes), or None where libc has none
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def rename_noreplace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename that fails with FileExistsError instead of replacing `target`.

    renameat2(RENAME_NOREPLACE) is atomic (Linux 3.15, glibc 2.28). Where the file system does
    not support it (EINVAL), a hard link + unlink does the same for regular files; a crash
    between the two leaves two names for one inode, which `Spool.recover` handles like any
    file found in two directories.
    """
    source_b, target_b = os.fsencode(source), os.fsencode(target)
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, source_b, _AT_FDCWD, target_b, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), os.fsdecode(source), None, os.fsdecode(target))
    try:
        os.link(source_b, target_b, follow_symlinks=False)
    except PermissionError:
        # Directories cannot be hard-linked; for them a checked rename is the best there is.
        if os.path.lexists(target_b):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(target)) from None
        os.rename(source_b, target_b)
        return
    os.unlink(source_b)


def fsync_directory(path: str | os.PathLike) -> None:
    """Make the names in a directory (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temporary(
    directory: Path, data: bytes, *, mode: int = 0o666, sync: bool = True, fsync: Callable[[int], None] = os.fsync
) -> Path:
    """The first half of every complete-or-absent write: `data` in a new temporary file of
    `directory` (a name is_ignored() skips), fsynced unless the caller flushes a whole batch.
    The caller renames it into place and fsyncs the directory; on any error nothing is left.
    A failed fsync raises NotDurable, so that a caller can tell the disk's error from the file's."""
    temporary = directory / f"{TMP_PREFIX}{_new_unique()}{TMP_SUFFIX}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            try:
                fsync(fd)
            except OSError as error:
                raise NotDurable(error.errno, error.strerror, str(temporary)) from error
    except BaseException:
        os.close(fd)
        _unlink_quietly(temporary)
        raise
    os.close(fd)
    return temporary


def write_file_atomic(path: str | os.PathLike, data: bytes, *, mode: int = 0o666) -> None:
    """Write `path` whole, replacing it: temporary name in the same directory, write, fsync,
    rename, fsync of the directory. A reader sees the old file or the new one, never a part.

    For the spool's files (Spool.write_atomic) and the daemon's own outside it (status.json,
    webhook queue).
    """
    target = Path(path)
    temporary = _write_temporary(target.parent, data, mode=mode)
    try:
        os.rename(temporary, target)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    fsync_directory(target.parent)


def _new_unique() -> str:
    return secrets.token_hex(4)


def _new_name(now: datetime, prefix: str = "") -> str:
    """`<prefix><YYYYMMDD-HHMMSS>-<microseconds>-<4 hex>`: `ls` sorts files in the order they
    were written, also many within one second; the random part keeps two writers apart."""
    return prefix + outgoing_name(now, f"{now.microsecond:06d}-{secrets.token_hex(2)}")


@dataclass(frozen=True)
class Claimed:
    """A message file now in checked/ under `name`, with its content."""

    name: str
    original_name: str
    data: bytes
    mtime: datetime


@dataclass(frozen=True)
class Rejected:
    """An entry of outgoing/ moved to failed/ as it was, without being read; `reason` says why."""

    name: str
    original_name: str
    reason: str


def load_seal_key(state: str | os.PathLike) -> bytes:
    """The install's secret for sealing the doors' files: `STATE/seal.key`, created on first use.

    Created whole or not at all (temporary file, mode 0600, fsync, then a rename that never
    replaces), so two daemons starting at once agree on one key. SpoolError, saying what to do,
    when it cannot be read or made.
    """
    path = Path(state) / SEAL_KEY_FILE
    try:
        return _read_seal_key(path)
    except FileNotFoundError:
        pass
    temporary: Path | None = None
    try:
        temporary = _write_temporary(path.parent, (secrets.token_hex(SEAL_KEY_BYTES) + "\n").encode("ascii"), mode=0o600)
        try:
            rename_noreplace(temporary, path)
        except FileExistsError:
            pass  # another daemon made it first: use that one
        fsync_directory(path.parent)
    except OSError as exc:
        raise SpoolError(
            f"cannot create {path}: {exc.strerror}; make the state directory writable by the user gsmgw runs as"
        ) from None
    finally:
        if temporary is not None:
            _unlink_quietly(temporary)
    return _read_seal_key(path)


def _read_seal_key(path: Path) -> bytes:
    damaged = (
        f"{path} is not a gsmgw seal key; remove it and restart gsmgw, which makes a new one (files the "
        "doors queued before then lose their Client:/Callback: headers: their reports are not routed back)"
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc.strerror}; it must be a file readable by the user gsmgw runs as") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpoolError(damaged)
        if info.st_mode & 0o077:
            raise SpoolError(
                f"{path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}), and whoever has it can make "
                f"files in outgoing/ act for a network client; chmod 600 {path}"
            )
        text = os.read(fd, 256)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise SpoolError(damaged) from None
    if len(key) < SEAL_KEY_BYTES // 2:
        raise SpoolError(damaged)
    return key


class Spool:
    """The spool under `root`; see the module docstring for the rules it keeps.

    `seal_key`: the install's secret (`load_seal_key`); only the daemon's Spool has it."""

    def __init__(self, root: str | os.PathLike, *, seal_key: bytes | None = None) -> None:
        self.root = Path(root)
        self.seal_key = seal_key
        # Called, in the writer's thread, with the names of `Priority: high` files just made
        # durable in outgoing/ (see the module docstring); the daemon sets it.
        self.on_high_priority: Callable[[list[str]], None] | None = None
        # The one committer of the doors' submissions (gsmgw.spool.commit); its thread starts on first use.
        self.committer = GroupCommitter(self)

    def verified(self, data: bytes) -> SpoolFile:
        """A spool file as every reader of its trusted headers must see it: those headers only
        if the file was sealed with this install's key (`gsmgw.spool.format.read_spool_file`)."""
        return read_spool_file(data, seal_key=self.seal_key)

    def seal(self, data: bytes) -> bytes:
        """`data` sealed with this install's key; unchanged when this Spool has none."""
        return seal(data, self.seal_key) if self.seal_key is not None else data

    def __repr__(self) -> str:
        return f"Spool({str(self.root)!r})"

    def path(self, dirname: str, name: str | None = None) -> Path:
        if dirname not in DIRECTORIES:
            raise ValueError(f"unknown spool directory {dirname!r}; one of {', '.join(DIRECTORIES)}")
        directory = self.root / dirname
        if name is None:
            return directory
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a file name")
        return directory / name

    # --- start-up ---------------------------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create missing directories and prove each is writable, or raise SpoolError."""
        for dirname in DIRECTORIES:
            directory = self.path(dirname)
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SpoolError(
                    f"cannot create the spool directory {directory}: {exc.strerror}; create it and make it "
                    f"writable by the user gsmgw runs as, or set spool: in the config to another directory"
                ) from None
            if not directory.is_dir():
                raise SpoolError(f"{directory} exists but is not a directory; move it away so gsmgw can create it")
            probe = directory / f"{TMP_PREFIX}probe-{_new_unique()}{TMP_SUFFIX}"
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise SpoolError(
                    f"cannot write to the spool directory {directory}: {exc.strerror}; make it writable by "
                    f"the user gsmgw runs as (e.g. chown -R gsmgw {self.root})"
                ) from None

    def recover(self, *, now: float | None = None) -> list[str]:
        """Clean up after a crash; return the names left in checked/ (sorted) for the daemon.

        A name in checked/ that also exists in sent/ or failed/ was finished: the target wins
        and the checked/ copy is removed. Temporary files of ours older than STALE_TMP_SECONDS
        are removed (younger ones may belong to a `gsmgw send` still running). Files of a
        `submit_many` whose process died before it returned are removed (never acknowledged).
        """
        now = time.time() if now is None else now
        self._roll_back_dead_batches()
        for dirname in DIRECTORIES:
            directory = self.path(dirname)
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX) and entry.name.endswith(TMP_SUFFIX):
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    # Only files: our temporary files are files, and a directory of that name
                    # is somebody else's (an unlink of it would fail and stop the start).
                    if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TMP_SECONDS:
                        _unlink_quietly(Path(entry.path))
        left = []
        for name in self.list("checked"):
            if self.exists("sent", name) or self.exists("failed", name):
                try:
                    os.unlink(self.path("checked", name))
                except FileNotFoundError:
                    pass
            else:
                left.append(name)
        return left

    # --- reading ----------------------------------------------------------------------------

    def exists(self, dirname: str, name: str) -> bool:
        return os.path.lexists(self.path(dirname, name))

    def read(self, dirname: str, name: str, *, limit: int = MAX_FILE_SIZE) -> bytes:
        """Content of a regular file (never through a symlink). OSError if it is not one."""
        return read_regular_file(self.path(dirname, name), limit)

    def list(self, dirname: str, order: str = "name") -> list[str]:
        """Names of the messages in a directory (ignoring .*, *.tmp, *.LOCK), by name or mtime."""
        try:
            entries = [entry for entry in os.scandir(self.path(dirname)) if not is_ignored(entry.name)]
        except FileNotFoundError:
            return []
        if order == "name":
            return sorted(entry.name for entry in entries)
        if order != "mtime":
            raise ValueError(f"order must be 'name' or 'mtime', not {order!r}")
        keyed = []
        for entry in entries:
            try:
                keyed.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
            except FileNotFoundError:
                continue
        return [name for _, name in sorted(keyed)]

    def depth(self, dirname: str) -> int:
        """How many messages `dirname` holds (as `list` counts them, without sorting them)."""
        try:
            with os.scandir(self.path(dirname)) as entries:
                return sum(1 for entry in entries if not is_ignored(entry.name))
        except FileNotFoundError:
            return 0

    def declared_priority(self, name: str) -> str | None:
        """The priority outgoing/`name` declares in its first bytes (`format.declared_priority`),
        read without claiming it. None when it is not a regular file (gone, a symlink, a FIFO...):
        the claim deals with those."""
        path = self.path("outgoing", name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return None
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return declared_priority(os.read(fd, HEAD_BYTES))
        except OSError:
            return None
        finally:
            os.close(fd)

    def _announce(self, written: Sequence[tuple[str | OSError, bytes]]) -> None:
        """Tell `on_high_priority` which of the files just made durable in outgoing/ are high."""
        if self.on_high_priority is None:
            return
        urgent = [name for name, data in written
                  if isinstance(name, str) and declared_priority(data[:HEAD_BYTES]) == "high"]
        if urgent:
            self.on_high_priority(urgent)

    def depths(self) -> dict[str, int]:
        return {dirname: self.depth(dirname) for dirname in DIRECTORIES}

    # --- writing ----------------------------------------------------------------------------

    def write_atomic(self, dirname: str, name: str, data: bytes) -> Path:
        """Write `dirname/name` whole (replacing it if present): tmp, fsync, rename, fsync dir."""
        target = self.path(dirname, name)
        write_file_atomic(target, data)
        return target

    def _place_new(self, temporary: Path, directory: Path, name: str) -> str:
        """Rename `temporary` to `name` in `directory`, or `name-2`, `name-3`... if taken."""
        candidate, n = name, 1
        while True:
            try:
                rename_noreplace(temporary, directory / candidate)
                return candidate
            except FileExistsError:
                n += 1
                candidate = f"{name}-{n}"

    def write_new(
        self, dirname: str, data: bytes, *, name: str | None = None, prefix: str = "", now: datetime | None = None
    ) -> str:
        """Write a new file that never replaces another; return its name.

        Without `name`: `<prefix><YYYYMMDD-HHMMSS>-<microseconds>-<4 hex>` (UTC), e.g. prefix
        "gsm1-" for report/.
        """
        directory = self.path(dirname)
        wanted = name or _new_name(now or datetime.now(timezone.utc), prefix)
        self.path(dirname, wanted)  # validates the name
        if dirname == "outgoing":
            data = self.seal(data)
        temporary = _write_temporary(directory, data)
        try:
            placed = self._place_new(temporary, directory, wanted)
        except BaseException:
            _unlink_quietly(temporary)
            raise
        fsync_directory(directory)
        if dirname == "outgoing":
            self._announce([(placed, data)])
        return placed

    def submit(self, data: bytes, *, now: datetime | None = None) -> str:
        """Queue one message file in outgoing/; it is durable when this returns. Returns its name.

        Like every write into outgoing/ through this Spool, the file is sealed (see the class)."""
        return self.submit_many([data], now=now)[0]

    def submit_each(self, files: Sequence[bytes], *, now: datetime | None = None) -> builtins.list[str | OSError]:
        """Queue independent files with one directory fsync (`commit`); durable on return.

        For files that do not belong together: each is queued whole or not at all by its own
        rename, and the result holds, in order, each file's name or the OSError that kept it out.
        A file that failed is not in outgoing/."""
        results = self.commit([FileGroup((data,)) for data in files], now=now)
        return [result if isinstance(result, OSError) else result[0] for result in results]

    def submit_many(self, files: Sequence[bytes], *, now: datetime | None = None) -> builtins.list[str]:
        """Queue several files all or nothing with one directory fsync (`commit`); durable on
        return. Either every file is queued and its name returned, or the OSError is raised and
        none is left in outgoing/."""
        result = self.commit([FileGroup(tuple(files))], now=now)[0]
        if isinstance(result, OSError):
            raise result
        return result

    def commit(
        self,
        groups: Sequence[FileGroup],
        *,
        now: datetime | None = None,
        fsync: Callable[[int], None] = os.fsync,
        pool: Executor | None = None,
    ) -> builtins.list[builtins.list[str] | OSError]:
        """Queue `groups` in outgoing/ with one directory fsync; durable on return (group commit).

        For each group, in order, the names of its files (they sort in the order given) or the
        OSError that kept it out; a group is queued all or none. Every file is sealed, written
        under a temporary name and fsynced (through `pool`, in parallel, when given: the file
        system's journal joins concurrent fsyncs); then each is renamed to its name, and one
        fsync of outgoing/ makes every name durable. A group whose own file cannot be written
        or renamed fails alone; an fsync error fails every group of the call, and their files
        are removed again (nothing of them was queued).

        A group of several files reserves every final name first with smstools3's `<name>.LOCK`
        (which claims and the watcher honour, and which is fsynced with the files), so that no
        claimer takes one of its files while another rename may still fail. The locks go only
        once every name is durable, and a second directory fsync makes that durable too. A crash
        before that leaves locked files of a dead writer that `recover` removes, because the
        group was never acknowledged.
        """
        directory = self.path("outgoing")
        now = now or datetime.now(timezone.utc)
        results: builtins.list[builtins.list[str] | OSError] = [[] for _ in groups]
        staged: builtins.list[_Staged] = []
        owner: bytes | None = None
        position = 0  # names one microsecond apart sort in the order of the groups and their files
        for index, group in enumerate(groups):
            if not group.files:
                continue
            stage = _Staged(index, group.files)
            try:
                if len(group.files) > 1:
                    owner = owner or _batch_owner()
                    for _ in group.files:
                        wanted = _new_name(now + timedelta(microseconds=position))
                        stage.names.append(self._reserve(directory, wanted, owner, stage.locks, sync=False))
                        position += 1
                else:
                    stage.names.append(group.name or _new_name(now + timedelta(microseconds=position)))
                    self.path("outgoing", stage.names[0])  # validates a given name
                    position += 1
            except OSError as error:
                stage.undo(directory)
                results[index] = error
                continue
            staged.append(stage)
        if not staged:
            return results

        # Every file (and lock) written and fsynced, in parallel through `pool`: creating files
        # and fsyncs wait for the file system's journal, and concurrent ones share its commits.
        def write(data: bytes) -> Path | OSError:
            try:
                return _write_temporary(directory, self.seal(data), fsync=fsync)
            except OSError as error:  # NotDurable among them
                return error

        def sync_lock(lock: Path) -> NotDurable | None:
            try:
                _fsync_path(lock, fsync)
            except OSError as error:
                return NotDurable(error.errno, error.strerror, str(lock))
            return None

        datas = [data for stage in staged for data in stage.files]
        locks = [lock for stage in staged for lock in stage.locks]
        # One file (an idle gateway, a paced client) is written by this thread: handing it to
        # another would only add a thread's wake-up to its latency.
        run = pool.map if pool is not None and len(datas) + len(locks) > 1 else map
        written = iter(list(run(write, datas)))
        lock_errors = [error for error in run(sync_lock, locks) if error]
        not_durable: OSError | None = lock_errors[0] if lock_errors else None
        for stage in staged:
            for _ in stage.files:
                outcome = next(written)
                if isinstance(outcome, NotDurable):
                    not_durable = not_durable or outcome
                elif isinstance(outcome, OSError):
                    stage.failed = stage.failed or outcome
                else:
                    stage.temporaries.append(outcome)
        if not_durable is not None:
            for stage in staged:
                stage.undo(directory)
                results[stage.index] = not_durable
            return results
        for stage in staged:
            if stage.failed is not None:
                stage.undo(directory)
                results[stage.index] = stage.failed
        staged = [stage for stage in staged if stage.failed is None]

        placed: builtins.list[_Staged] = []
        for stage in staged:
            try:
                if stage.locks:
                    for temporary, name in zip(stage.temporaries, stage.names):
                        rename_noreplace(temporary, directory / name)
                        stage.placed.append(name)
                else:
                    stage.placed.append(self._place_new(stage.temporaries[0], directory, stage.names[0]))
            except OSError as error:
                stage.undo(directory)
                results[stage.index] = error
                continue
            placed.append(stage)
        try:
            _fsync_path(directory, fsync)
            locked = [lock for stage in placed for lock in stage.locks]
            if locked:
                for lock in locked:
                    _unlink_quietly(lock)
                _fsync_path(directory, fsync)  # the commit of the locked groups: now recover keeps them
        except OSError as error:
            for stage in placed:
                claimed = stage.undo(directory)
                if claimed:
                    # Renamed, then taken by the daemon before the directory fsync failed: it may
                    # be sent although its door reports the error.
                    log.error("outgoing/%s was claimed before the spool reported %s; its submitter was told it "
                              "was not queued and may send it again", ", ".join(claimed), error)
                results[stage.index] = error
            return results
        for stage in placed:
            results[stage.index] = stage.placed
        self._announce([(name, data) for stage in placed for name, data in zip(stage.placed, stage.files)])
        return results

    def _reserve(self, directory: Path, wanted: str, owner: bytes, locks: builtins.list[Path], *, sync: bool) -> str:
        """Create `<name>.LOCK` for a free `name` (`wanted`, `wanted-2`, ...); return `name`.

        The lock exists before the file does, so a claim can never see the file unlocked."""
        candidate, n = wanted, 1
        while True:
            lock = directory / f"{candidate}.LOCK"
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                fd = -1
            if fd >= 0:
                locks.append(lock)
                try:
                    os.write(fd, owner)
                    if sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if not os.path.lexists(directory / candidate):
                    return candidate
                # A user's file has this name: do not keep it locked.
                locks.pop()
                _unlink_quietly(lock)
            n += 1
            candidate = f"{wanted}-{n}"

    def _roll_back_dead_batches(self) -> None:
        """Remove the files of a `submit_many` whose writer died before its commit (see there).

        Only locks that `submit_many` wrote are touched, and only when the process that wrote
        them is gone; a user's own `X.LOCK` is left alone. A lock counts as ours only if it
        belongs to the user gsmgw runs as: anyone who may drop files could write the marker into
        `victim.LOCK`, and the victim's message would be removed."""
        directory = self.path("outgoing")
        try:
            entries = [entry.name for entry in os.scandir(directory) if entry.name.endswith(".LOCK")]
        except FileNotFoundError:
            return
        removed = False
        for lock_name in entries:
            lock = directory / lock_name
            try:
                fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                    continue
                owner = os.read(fd, 256)
            finally:
                os.close(fd)
            if not owner.startswith(_BATCH_MARKER) or _batch_owner_alive(owner):
                continue
            target = directory / lock_name[: -len(".LOCK")]
            try:
                batch_file = stat.S_ISREG(os.lstat(target).st_mode)
            except FileNotFoundError:
                batch_file = False
            if batch_file:
                _unlink_quietly(target)
            # Anything else under that name (a directory...) is not what submit_many wrote:
            # without the lock, the next claim sets it aside in failed/.
            _unlink_quietly(lock)
            removed = True
        if removed:
            fsync_directory(directory)

    def remove(self, dirname: str, name: str) -> None:
        """Unlink a file; one already gone is fine (a repeated finish after a crash)."""
        _unlink_quietly(self.path(dirname, name))

    def finish(self, name: str, dest: str, data: bytes, *, src: str = "checked", dest_name: str | None = None) -> str:
        """Write the final file into `dest` (sent/ or failed/), then remove `src/name`.

        If a crash comes between the two, both exist; `recover` keeps the target.
        """
        target_name = dest_name or name
        self.write_atomic(dest, target_name, data)
        self.remove(src, name)
        return target_name

    # --- claiming ---------------------------------------------------------------------------

    def _free_name(self, name: str) -> str:
        """`name`, or `name-2`, ... so that no file of another message in checked/, sent/ or
        failed/ (also `<name>.1` of a multi-recipient file) has it."""
        candidate, n = name, 1
        while any(
            self.exists(dirname, candidate) or self.exists(dirname, candidate + ".1")
            for dirname in ("checked", "sent", "failed")
        ):
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def set_aside(self, dirname: str, name: str, reason: str) -> Rejected | None:
        """Move `dirname/name` to failed/ as it is (never opened), e.g. an entry in checked/ that
        is not a regular file; `name-2`... if failed/ has the name. None if it vanished."""
        try:
            placed = self._place_new(self.path(dirname, name), self.path("failed"), name)
        except FileNotFoundError:
            return None
        fsync_directory(self.path("failed"))
        return Rejected(placed, name, reason)

    def _quarantine(self, dirname: str, name: str, original_name: str, reason: str) -> Rejected | None:
        """Move an entry to failed/ as it is (not opened). None if it vanished meanwhile."""
        try:
            placed = self._place_new(self.path(dirname, name), self.path("failed"), self._free_name(original_name))
        except FileNotFoundError:
            return None
        fsync_directory(self.path("failed"))
        return Rejected(placed, original_name, reason)

    def claim(self, name: str) -> Claimed | Rejected | None:
        """Take `outgoing/name` into checked/ by one rename, and read it.

        None: the file is gone (another claimer won; normal) or still locked by `name.LOCK`.
        Rejected: it was not a regular file or too large; it is in failed/ as it was.
        """
        source = self.path("outgoing", name)
        try:
            info = os.lstat(source)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return self._quarantine(
                "outgoing", name, name,
                f"{_kind(info.st_mode)} in outgoing/ is never opened or followed; write a regular file "
                "(write it under a temporary name, then rename it into outgoing/)",
            )
        if info.st_size > MAX_FILE_SIZE:
            return self._quarantine("outgoing", name, name, _too_large(info.st_size))
        if os.path.lexists(str(source) + ".LOCK"):
            return None  # smstools3's convention: the writer still holds it
        checked_name = self._free_name(name)
        while True:
            try:
                rename_noreplace(source, self.path("checked", checked_name))
                break
            except FileNotFoundError:
                return None
            except FileExistsError:
                checked_name = self._free_name(checked_name + "-2")
        fsync_directory(self.path("checked"))

        # Between lstat and rename the entry may have been swapped; check what we now hold.
        try:
            fd = os.open(
                self.path("checked", checked_name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            )
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
                return self._quarantine("checked", checked_name, name, "the entry was replaced by a special file "
                                        "while being claimed; write regular files into outgoing/")
            raise
        try:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode):
                os.close(fd)
                fd = -1
                return self._quarantine("checked", checked_name, name, f"{_kind(held.st_mode)} in outgoing/ is "
                                        "never read; write a regular file")
            try:
                data = _read_limited(fd, MAX_FILE_SIZE, str(source))
            except OSError:
                os.close(fd)
                fd = -1
                return self._quarantine("checked", checked_name, name, _too_large(held.st_size))
            mtime = datetime.fromtimestamp(held.st_mtime, timezone.utc)
        finally:
            if fd >= 0:
                os.close(fd)
        return Claimed(checked_name, name, data, mtime)


class _Staged:
    """One group of `Spool.commit` on its way: its names, temporaries, locks, files in place."""

    __slots__ = ("index", "files", "names", "temporaries", "locks", "placed", "failed")

    def __init__(self, index: int, files: Sequence[bytes]) -> None:
        self.index = index
        self.files = files
        self.failed: OSError | None = None  # a file of the group could not be written
        self.names: list[str] = []
        self.temporaries: list[Path] = []
        self.locks: list[Path] = []
        self.placed: list[str] = []

    def undo(self, directory: Path) -> list[str]:
        """Remove what the group wrote; return the names in place that someone took meanwhile
        (only possible for an unlocked file, after its rename)."""
        gone = []
        for name in self.placed:
            try:
                os.unlink(directory / name)
            except FileNotFoundError:
                gone.append(name)
        for path in self.temporaries + self.locks:
            _unlink_quietly(path)
        return gone if not self.locks else []


def _fsync_path(path: Path, fsync: Callable[[int], None]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def _too_large(size: int) -> str:
    return (
        f"the file has {size} bytes, more than the {MAX_FILE_SIZE} a message file may have; it was not "
        "read. A message is headers, a blank line and a text of at most 255 parts"
    )


def read_regular_file(path: str | os.PathLike, limit: int = MAX_FILE_SIZE) -> bytes:
    """Content of the regular file `path`, at most `limit` bytes: never through a symlink, never
    waiting on a FIFO. OSError if it is something else or larger. Whoever may drop files into
    outgoing/ can drop a FIFO, a symlink or a huge sparse file, and the claim moves such an entry
    to failed/ as it is; every reader of spool directories reads through here."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"{_kind(info.st_mode)}, not a regular file", str(path))
        return _read_limited(fd, limit, str(path))
    finally:
        os.close(fd)


def _read_limited(fd: int, limit: int, path: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise OSError(errno.EFBIG, f"more than {limit} bytes", path)
        chunks.append(chunk)


_BATCH_MARKER = b"gsmgw submit_many"


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (proc(5), field 22), or None
    if it does not exist. With the pid it names a process even after its pid is reused (a
    daemon that is pid 1 in its container is pid 1 again after a restart)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode("ascii") if len(fields) > 19 else None


def _batch_owner() -> bytes:
    pid = os.getpid()
    return _BATCH_MARKER + f" pid={pid} start={_process_start(pid)}\n".encode("ascii")


def _batch_owner_alive(owner: bytes) -> bool:
    fields = dict(field.split(b"=", 1) for field in owner.split() if b"=" in field)
    try:
        pid = int(fields[b"pid"])
    except (KeyError, ValueError):
        return False
    start = _process_start(pid)
    return start is not None and start.encode("ascii") == fields.get(b"start")


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
