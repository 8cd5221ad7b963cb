"""sd_notify messages seen on a real AF_UNIX datagram socket, as systemd would see them."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from gsmgw.daemon.sdnotify import SystemdNotifier, status_line, watchdog_interval_from_env


@pytest.fixture
def notify_socket(tmp_path):
    """A datagram socket bound to a path, like systemd's /run/systemd/notify."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_watchdog_stopping_reach_the_socket(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier.from_environment(env)
    assert notifier.enabled
    assert notifier.watchdog_interval == 15.0

    assert notifier.ready(status=status_line(0, 2, 3))
    assert receive(sock) == ["READY=1", "STATUS=0/2 modems up, 3 queued"]
    assert notifier.status(status_line(2, 2, 0, retrying=1))
    assert receive(sock) == ["STATUS=2/2 modems up, 0 queued, 1 retrying"]
    assert notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    assert notifier.stopping()
    assert receive(sock) == ["STOPPING=1"]


def test_abstract_socket_name_with_at_sign():
    name = f"gsmgw-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert receive(sock) == ["READY=1"]


def test_newline_in_status_cannot_inject_an_assignment(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path})
    notifier.status("modem gsm1 says\nREADY=1")
    assert receive(sock) == ["STATUS=modem gsm1 says READY=1"]


def test_without_systemd_every_call_is_a_harmless_no_op():
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False


def test_a_vanished_socket_does_not_raise(tmp_path):
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.ready() is False


def test_no_watchdog_without_watchdog_usec(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.watchdog_interval is None
    assert notifier.watchdog() is False


@pytest.mark.parametrize(
    "env, pid, expected",
    [
        ({"WATCHDOG_USEC": "2000000"}, 10, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "10"}, 10, 1.0),
        # The watchdog belongs to another process (we are a child of the service).
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "11"}, 10, None),
        ({"WATCHDOG_USEC": "0"}, 10, None),
        ({"WATCHDOG_USEC": "soon"}, 10, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "x"}, 10, None),
        ({}, 10, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_our_pid(env, pid, expected):
    assert watchdog_interval_from_env(env, pid) == expected


def test_the_daemon_reports_ready_status_watchdog_and_stopping(tmp_path, notify_socket):
    """`gsmgw run` on simulated modems, under a pretend systemd: our socket is its NOTIFY_SOCKET."""
    import signal
    import subprocess
    import sys

    path, sock = notify_socket
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "run", "--simulate", "2", "--spool", str(tmp_path / "spool")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    seen: list[str] = []

    def wait_for(predicate, what):
        while True:
            try:
                lines = receive(sock)
            except socket.timeout:
                raise AssertionError(f"no {what} from the daemon; it sent {seen}") from None
            seen.extend(lines)
            if predicate(lines):
                return

    try:
        wait_for(lambda lines: "READY=1" in lines, "READY=1")
        assert seen.index("READY=1") == 0, "READY=1 must come first"
        wait_for(lambda lines: "STATUS=2/2 modems up, 0 queued" in lines, "STATUS with both modems up")
        watchdogs_before = seen.count("WATCHDOG=1")
        wait_for(lambda lines: seen.count("WATCHDOG=1") >= watchdogs_before + 2, "two more WATCHDOG=1")
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda lines: "STOPPING=1" in lines, "STOPPING=1 after SIGTERM")
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        daemon.stderr.close()


def test_the_watchdog_is_fed_while_a_modem_hangs(tmp_path, notify_socket):
    """A hung modem is not a hung daemon: WATCHDOG=1 keeps coming while modem 0 does not answer."""
    import signal
    import subprocess
    import sys
    import time

    from gsmgw.sim.network import SimNetwork

    path, sock = notify_socket
    with SimNetwork(tmp_path / "sim", modems=2) as net:
        config = tmp_path / "gsmgw.yaml"
        config.write_text(
            f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\nmodems:\n"
            f"  - name: gsm1\n    port: {net.modems[0].path}\n  - name: gsm2\n    port: {net.modems[1].path}\n"
        )
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="2000000")
        daemon = subprocess.Popen([sys.executable, "-m", "gsmgw", "run", "-c", str(config)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen: list[str] = []
            while "STATUS=2/2 modems up, 0 queued" not in seen:
                seen += receive(sock)
            net.set_fault(0, "hang", seconds=8)
            # A message pinned to the hung modem: its worker is now stuck in AT+CMGS.
            (tmp_path / "spool" / "outgoing" / "pinned").write_text("To: +4915112345678\nModem: gsm1\n\nhi\n")
            # WATCHDOG_USEC=2 s: systemd would kill a daemon silent for 2 s. Watch 4 s of the hang.
            deadline = time.monotonic() + 4.0
            last_watchdog = time.monotonic()
            longest_gap = 0.0
            while time.monotonic() < deadline:
                if "WATCHDOG=1" in receive(sock):
                    now = time.monotonic()
                    longest_gap = max(longest_gap, now - last_watchdog)
                    last_watchdog = now
            longest_gap = max(longest_gap, time.monotonic() - last_watchdog)
            assert longest_gap < 2.0, f"no WATCHDOG=1 for {longest_gap:.1f} s while a modem hung"
            assert net.submissions == [], "the modem was meant to hang, but it sent"
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)
