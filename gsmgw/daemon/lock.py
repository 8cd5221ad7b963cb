"""One daemon per state directory and per spool: exclusive flock(2) locks with the holder's PID.

Two daemons on one spool both claim files, and each one's start-up recovery takes the other's
messages in flight for a crash. So `gsmgw run` takes, before it touches either directory:

- `STATE/gsmgw.lock`  (`STATE_LOCK`)
- `SPOOL/.gsmgw.lock` (`SPOOL_LOCK`; two configs with different state directories but one spool)

Each file holds one line: the PID of the daemon holding it, in decimal. The lock is flock(2) on
the open file, so the kernel releases it when the daemon exits in any way, `kill -9` included;
a file left behind by a dead daemon is taken over at the next start. A file's content is always
whole: the PID is written into a new file, which is locked before it is renamed over the old one.
Readers (`holder`) therefore trust only the lock, and read the PID only from a locked file.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

STATE_LOCK = "gsmgw.lock"
SPOOL_LOCK = ".gsmgw.lock"

# How long a second daemon waits for the holder's PID when it meets the file in the instant
# between the holder's flock and its rename (the old file may still name a dead daemon).
PID_WAIT = 1.0


class AlreadyRunning(Exception):
    """Another daemon holds the lock; the message names its PID and what to do."""

    def __init__(self, message: str, pid: int | None, path: Path):
        super().__init__(message)
        self.pid = pid
        self.path = path


class DaemonLock:
    """The locks of one running daemon. `release()` (or the process's end) frees them."""

    def __init__(self, held: list[tuple[Path, int]]):
        self._held = held

    @classmethod
    def acquire(cls, state: str | os.PathLike, spool: str | os.PathLike) -> "DaemonLock":
        """Lock the state directory, then the spool (both must exist). AlreadyRunning, or
        OSError when a directory cannot be written."""
        state, spool = Path(state), Path(spool)
        held = [(state / STATE_LOCK, _lock(state / STATE_LOCK))]
        try:
            held.append((spool / SPOOL_LOCK, _lock(spool / SPOOL_LOCK)))
        except AlreadyRunning as error:
            DaemonLock(held).release()
            raise AlreadyRunning(
                f"another gsmgw daemon (PID {_pid_words(error.pid)}) is already running on the spool "
                f"{spool} (lock file {error.path}), with another state directory; two daemons on one "
                f"spool take each other's messages. Stop it first ({_how_to_stop(error.pid)}).",
                error.pid, error.path,
            ) from None
        except BaseException:
            DaemonLock(held).release()
            raise
        return cls(held)

    def release(self) -> None:
        while self._held:
            _, fd = self._held.pop()
            os.close(fd)  # closing the last descriptor drops the flock

    @property
    def paths(self) -> list[Path]:
        return [path for path, _ in self._held]


def holder(directory: str | os.PathLike, name: str = STATE_LOCK) -> int | None:
    """The PID of the daemon that holds `directory/name` (default: a state directory's lock),
    or None when no daemon holds it. 0 when it is held but names no PID (a file not ours).
    Takes no lock that outlives the call, so `gsmgw doctor` may ask while the daemon runs.
    OSError (e.g. PermissionError) when the file cannot be opened for reading."""
    path = Path(directory) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_pid(path, fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock(path: Path) -> int:
    """An open descriptor of `path`, exclusively locked, whose file holds our PID."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(path, fd)
            os.close(fd)
            raise AlreadyRunning(
                f"another gsmgw daemon (PID {_pid_words(pid)}) is already running on {path.parent} "
                f"(lock file {path}). Stop it first ({_how_to_stop(pid)}).",
                pid, path,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if not _is_current(fd, path):
            os.close(fd)  # the daemon before us replaced the file after we opened it: go again
            continue
        try:
            return _replace_with_own_pid(path, fd)
        finally:
            os.close(fd)


def _replace_with_own_pid(path: Path, old_fd: int) -> int:
    """While `old_fd` holds the lock: a new file with our PID, locked, renamed over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file yet
        os.replace(temporary, path)
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # of a daemon killed right here
            leftover.unlink(missing_ok=True)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return fd


def _is_current(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _holder_pid(path: Path, fd: int) -> int | None:
    """The PID in a file that someone else holds locked. In the instant between a daemon's flock
    and its rename the file still names the previous (dead) holder: then read the new file."""
    deadline = time.monotonic() + PID_WAIT
    pid = _read_pid(fd)
    while not _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            with open(path, "rb") as current:
                pid = _read_pid(current.fileno())
        except FileNotFoundError:
            pass
    return pid


def _read_pid(fd: int) -> int | None:
    first_line = os.pread(fd, 32, 0).split(b"\n", 1)[0].strip()
    return int(first_line) if first_line.isdigit() else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, as another user
    return True


def _pid_words(pid: int | None) -> str:
    return str(pid) if pid else "unknown"


def _how_to_stop(pid: int | None) -> str:
    target = f"kill {pid}" if pid else "kill it"
    return f"Ctrl-C in its terminal, `systemctl stop gsmgw`, or `{target}`"
