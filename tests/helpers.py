"""Small helpers the test files share (the simulator's fixtures are in simfixtures.py)."""

from __future__ import annotations

import asyncio
import functools
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest


# The seal key of the test spools whose doors write trusted headers (the daemon's is STATE/seal.key).
SEAL_KEY = bytes(range(32))


def free_port() -> int:
    """A TCP port on loopback that nothing listens on at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def debian_tool(name: str) -> str:
    """The path of a program from Debian that a test needs (.ci/run installs it). Without it the
    test fails, never skips: a skipped test proves nothing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install the Debian package {name} (.ci/run does)", pytrace=False)
    return path


def self_signed_certificate(directory: Path, name: str = "tls", *, days: int = 1,
                            common_name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate and key from openssl, also valid for IP 127.0.0.1."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run([debian_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
                    "-subj", f"/CN={common_name}", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


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
