"""sd_notify(3) over $NOTIFY_SOCKET, without libsystemd or a new dependency.

What it reads: the environment systemd gives a `Type=notify` service:
NOTIFY_SOCKET (a filesystem path, or an abstract socket name written with a
leading "@"), WATCHDOG_USEC and WATCHDOG_PID.
What it writes: one AF_UNIX datagram per call, "KEY=value" lines.
How it fails: when not run under systemd every call is a no-op that returns
False. A send that fails (systemd restarting, socket gone) is logged once at
debug level and returns False: losing a status line must never stop the
gateway. Only a watchdog that stops being fed restarts the service, and that
is decided by the caller's main loop, not here.

The daemon calls, from its main loop (see docs/DEVELOPING.md):

    notifier = SystemdNotifier.from_environment()
    notifier.ready(status="2/2 modems up, 0 queued")
    notifier.status("1/2 modems up, 5 queued")
    if notifier.watchdog_interval: ...  # feed every interval seconds
    notifier.watchdog()
    notifier.stopping()
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["SystemdNotifier", "status_line", "watchdog_interval_from_env"]


def _socket_address(notify_socket: str) -> str | bytes:
    """The address to sendto(): abstract names ("@name") start with a NUL byte.

    sd_notify(3): "If the first character of $NOTIFY_SOCKET is "@", the string
    is understood as Linux abstract namespace socket."
    """
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode()
    return notify_socket


def watchdog_interval_from_env(env: Mapping[str, str], pid: int) -> float | None:
    """How often to send WATCHDOG=1, in seconds, or None when no watchdog is set.

    sd_watchdog_enabled(3): WATCHDOG_USEC is the timeout in microseconds; when
    WATCHDOG_PID is set it names the process the watchdog is meant for (a child
    started by us must not feed it). Half the timeout is the interval that
    sd_watchdog_enabled(3) recommends, so one late tick does not kill us.
    """
    usec_text = env.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    watchdog_pid = env.get("WATCHDOG_PID")
    if watchdog_pid:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            log.warning("ignoring WATCHDOG_PID=%r: not a number", watchdog_pid)
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec_text)
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2


def status_line(modems_up: int, modems_total: int, queued: int, retrying: int = 0) -> str:
    """The STATUS= text: what an operator needs from `systemctl status` at a glance."""
    text = f"{modems_up}/{modems_total} modems up, {queued} queued"
    if retrying:
        text += f", {retrying} retrying"
    return text


@dataclass
class SystemdNotifier:
    """Sends state changes to systemd. A no-op when `notify_socket` is None."""

    notify_socket: str | None
    watchdog_interval: float | None = None

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> "SystemdNotifier":
        """Read NOTIFY_SOCKET and the watchdog settings from the environment.

        The variables are left in place (unlike sd_notify's unset_environment)
        so that `gsmgw run` started by hand from a unit's shell still works.
        Hooks are started with a cleaned environment by the daemon.
        """
        env = os.environ if env is None else env
        pid = os.getpid() if pid is None else pid
        notify_socket = env.get("NOTIFY_SOCKET") or None
        interval = watchdog_interval_from_env(env, pid) if notify_socket else None
        return cls(notify_socket=notify_socket, watchdog_interval=interval)

    @property
    def enabled(self) -> bool:
        return self.notify_socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send "KEY=value" assignments in one datagram. True if it was sent."""
        if self.notify_socket is None:
            return False
        # A newline inside a value would start a new, unintended assignment.
        message = "\n".join(a.replace("\n", " ") for a in assignments)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8", "replace"), _socket_address(self.notify_socket))
        except OSError as error:
            log.debug("sd_notify to %s failed: %s", self.notify_socket, error)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """READY=1: the spool is checked and the modems are being brought up."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        """STATUS=: the one line `systemctl status gsmgw` shows."""
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: call only from a main loop that is known to be healthy."""
        if self.watchdog_interval is None:
            return False
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1: sent on SIGTERM, before the workers finish their messages."""
        if status is None:
            return self.notify("STOPPING=1")
        return self.notify("STOPPING=1", f"STATUS={status}")
