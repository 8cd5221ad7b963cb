"""One daemon per state directory and per spool (gsmgw.daemon.lock).

A second `gsmgw run` on the same spool used to start silently: both claimed files, each one's
recovery took the other's parts in flight for a crash, and when the second (simulated) one
stopped it removed the first one's simulated ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from gsmgw.config import Config
from gsmgw.daemon.app import Gateway, StartupError
from gsmgw.daemon.lock import SPOOL_LOCK, STATE_LOCK, AlreadyRunning, DaemonLock, holder
from helpers import async_test, stop_process, wait_for_text

GSMGW = [sys.executable, "-m", "gsmgw"]


def _dirs(tmp_path, state="state", spool="spool"):
    (tmp_path / state).mkdir(exist_ok=True)
    (tmp_path / spool).mkdir(exist_ok=True)
    return tmp_path / state, tmp_path / spool


def test_the_lock_files_name_their_holder_and_a_second_daemon_is_refused_with_its_pid(tmp_path):
    state, spool = _dirs(tmp_path)
    lock = DaemonLock.acquire(state, spool)
    try:
        assert (state / STATE_LOCK).read_text() == f"{os.getpid()}\n"
        assert (spool / SPOOL_LOCK).read_text() == f"{os.getpid()}\n"
        assert holder(state) == os.getpid()
        assert holder(spool, SPOOL_LOCK) == os.getpid()
        # flock locks belong to an open file, so a second acquire in this process conflicts too.
        with pytest.raises(AlreadyRunning) as refused:
            DaemonLock.acquire(state, spool)
        assert refused.value.pid == os.getpid()
        assert f"PID {os.getpid()}" in str(refused.value) and str(state / STATE_LOCK) in str(refused.value)
        assert f"kill {os.getpid()}" in str(refused.value)
    finally:
        lock.release()
    assert holder(state) is None and holder(spool, SPOOL_LOCK) is None
    assert not list(state.glob(".*.tmp")) and not list(spool.glob(".*.tmp"))
    DaemonLock.acquire(state, spool).release()


def test_a_second_state_directory_on_the_same_spool_is_refused(tmp_path):
    state, spool = _dirs(tmp_path)
    other_state, _ = _dirs(tmp_path, state="other-state")
    lock = DaemonLock.acquire(state, spool)
    try:
        with pytest.raises(AlreadyRunning) as refused:
            DaemonLock.acquire(other_state, spool)
        assert f"PID {os.getpid()}" in str(refused.value) and f"spool {spool}" in str(refused.value)
        assert holder(other_state) is None  # the state lock it had taken is given back
    finally:
        lock.release()


def test_a_file_left_by_a_dead_daemon_is_taken_over(tmp_path):
    state, spool = _dirs(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (state / STATE_LOCK).write_text(dead.stdout)
    (spool / SPOOL_LOCK).write_text("")
    assert holder(state) is None
    lock = DaemonLock.acquire(state, spool)
    try:
        assert (state / STATE_LOCK).read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def _config(tmp_path, state, spool) -> Config:
    return Config(spool=tmp_path / spool, state=tmp_path / state, modems=())


@async_test
async def test_a_gateway_on_a_locked_spool_refuses_to_start_and_touches_nothing(tmp_path):
    first = Gateway(_config(tmp_path, "state-a", "spool"), start_servers=False)
    await first.start()
    try:
        (tmp_path / "spool" / "checked" / "in-flight").write_text("To: +4915112345678\n\nmine\n")
        second = Gateway(_config(tmp_path, "state-b", "spool"), start_servers=False)
        with pytest.raises(StartupError) as refused:
            await second.start()
        assert f"PID {os.getpid()}" in str(refused.value)
        assert "own spool: and state:" in str(refused.value)
        assert second.journal is None  # refused before its recovery could requeue the first one's files
        assert not (tmp_path / "state-b" / "journal.sqlite").exists()
        await second.close()
    finally:
        await first.close()
    assert holder(tmp_path / "state-a") is None


@pytest.mark.slow
def test_a_second_run_simulate_on_the_same_spool_is_refused_and_leaves_the_first_alone(tmp_path):
    spool = tmp_path / "demo-spool"
    out = tmp_path / "first.log"
    with out.open("wb") as stream:
        first = subprocess.Popen(
            GSMGW + ["run", "--simulate", "1", "--spool", str(spool), "--latency", "0"],
            stdout=stream, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        wait_for_text(out, r"Stop with Ctrl-C", 30)
        port = spool / ".sim" / "modem0"
        target = os.readlink(port)
        second = subprocess.run(
            GSMGW + ["run", "--simulate", "1", "--spool", str(spool), "--latency", "0"],
            capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"another gsmgw daemon (PID {first.pid}) is already running" in second.stderr
        assert "another --spool DIR" in second.stderr
        assert "is running on" not in second.stdout  # no banner: it never started
        assert os.readlink(port) == target and os.path.exists(target)  # the first one's port is intact
        assert holder(spool / ".state") == first.pid
        # kill -9: the kernel drops the lock with the process; the next daemon starts.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert holder(spool / ".state") is None
        DaemonLock.acquire(spool / ".state", spool).release()
    finally:
        if first.poll() is None:
            stop_process(first, 30)
