"""A pseudo-terminal that plays a modem's serial port (I/O only, no AT logic).

`os.openpty()` gives a master (the modem's side, read by the simulator) and a
slave (/dev/pts/N, what clients open).  The slave is put in raw mode so the
tty itself neither echoes nor translates line ends; the modem echoes.

We keep our own slave fd open for the port's lifetime.  Without it, Linux
makes reads on the master fail with EIO whenever no client has the slave open
(between a client's close and its reopen), and the master would be readable
forever.  With it the master simply has nothing to read, and a client can
close and reopen the port as often as it likes.

The stable path is a symlink (DIR/modem0 -> /dev/pts/N), replaced atomically
(a temporary symlink renamed over it), so a client never sees it half-made.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from typing import Callable

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class PtyPort:
    """One pty pair on the simulator's loop; `on_data` gets what the client writes."""

    def __init__(self, link: str, loop: asyncio.AbstractEventLoop, on_data: Callable[[bytes], None]) -> None:
        self.link = link
        self.loop = loop
        self.on_data = on_data
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self.slave)
        self.dropped = 0  # bytes lost because nobody read the port and its buffer was full
        _replace_symlink(self.device, link)
        loop.add_reader(self.master, self._readable)
        self.closed = False

    def __repr__(self) -> str:
        return f"<PtyPort {self.link} -> {self.device}{' closed' if self.closed else ''}>"

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as error:
            # EIO cannot happen while we hold the slave; if the kernel says so anyway,
            # stop listening rather than spin on a master that is readable forever.
            log.error("%s: reading the pty failed (%s); the port stops answering", self.link, error)
            self.loop.remove_reader(self.master)
            return
        if data:
            self.on_data(data)

    def write(self, data: bytes) -> None:
        """Write without blocking the simulator.

        A real modem's UART does not wait for a reader either: when the pty's
        buffer is full (nobody has read the port for a while) the rest is lost.
        """
        if self.closed:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                self.dropped += len(view)
                log.debug("%s: output buffer full, %d bytes dropped", self.link, len(view))
                return
            view = view[written:]

    def close(self) -> None:
        """Unplug: the fds close (clients read EOF/EIO), the symlink goes away."""
        if self.closed:
            return
        self.closed = True
        self.loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)
        try:
            if os.readlink(self.link) == self.device:
                os.unlink(self.link)
        except FileNotFoundError:
            pass


def _replace_symlink(target: str, link: str) -> None:
    temporary = f"{link}.{os.getpid()}.tmp"
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    os.symlink(target, temporary)
    os.replace(temporary, link)
