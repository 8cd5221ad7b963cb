"""Small helpers the test files share (the simulator's fixtures are in simfixtures.py)."""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import socket
import subprocess
import time
from pathlib import Path


# The seal key of the test spools whose doors write trusted headers (the daemon's is STATE/seal.key).
SEAL_KEY = bytes(range(32))


def free_port() -> int:
    """A TCP port on loopback that nothing listens on at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def async_test(function):
    """Run an async test in its own loop, with a timeout (no pytest-asyncio here)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(function(*args, **kwargs), timeout=30))

    return wrapper


def wait_for_text(path: Path, pattern: str, timeout: float) -> str:
    """Another process writes `path` (a daemon's log, a command's output): read it until `pattern`
    appears, bounded by `timeout`; returns the whole text."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} in {path} within {timeout} s:\n{text[-3000:]}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen, timeout: float) -> bool:
    """SIGTERM a process we started and wait for it; kill it if it does not exit within `timeout`.
    True when it exited on SIGTERM."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return False
