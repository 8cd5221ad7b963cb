"""One AT port on asyncio: exactly one command in flight, URCs delivered while commands run.

The serial fd is non-blocking and watched with ``loop.add_reader`` (no thread per port). All
protocol decisions are the parser's (:mod:`gsmgw.at.parser`); this file only moves bytes,
keeps time and maps failures into :mod:`gsmgw.at.errors` exceptions.

How a port ends: when a USB modem is unplugged, the tty reports readable and then ``read()``
returns no data or fails with EIO (pyserial's ``serialposix.read`` says the same). A pty whose
other side (the simulator) closed fails with EIO. Either way the session closes, fails the
command in flight with :class:`PortGone`, and hands ``PortClosed`` to the URC subscriber as its
last event.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import serial

from gsmgw.at.errors import (
    AtCommandError,
    CmeError,
    CmsError,
    ModemRestarted,
    ModemTimeout,
    PortBusy,
    PortGone,
)
from gsmgw.at.events import Final, LatePrompt, Line, ModemBooted, PortClosed, Prompt, Urc
from gsmgw.at.parser import AtParser, mask_secrets

log = logging.getLogger("gsmgw.at")

CTRL_Z = b"\x1a"  # ends the PDU after the prompt (TS 27.005 §3.5.1)
ESC = b"\x1b"  # cancels the prompt without sending (TS 27.005 §3.5.1)

@dataclass
class Response:
    command: str
    lines: list[str] = field(default_factory=list)
    final: Final | None = None

    def lines_with(self, prefix: str) -> list[str]:
        """The lines starting ``prefix`` (e.g. ``"+CPMS:"``), with the prefix removed."""
        p = prefix.upper()
        return [ln[len(prefix):].strip() for ln in self.lines if ln.upper().startswith(p)]


def error_for(command: str, final: Final) -> AtCommandError:
    """The exception for an error final result."""
    shown = mask_secrets(command)
    error: AtCommandError
    if final.kind == "CMS":
        error = CmsError(final.code, command=shown, text=final.text)
    elif final.kind == "CME":
        error = CmeError(final.code, command=shown, text=final.text)
    else:
        error = AtCommandError(shown, final.raw)
    error.final = final.raw  # as the modem printed it (text under CMEE=2)
    return error


class AtSession:
    """One serial port. Create, ``await open()``, run commands, ``await close()``."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        on_urc: Callable[[Urc], None] | None = None,
        default_timeout: float = 10.0,
        exclusive: bool = True,
    ):
        self.port = port
        self.baudrate = baudrate
        self.on_urc = on_urc
        self.default_timeout = default_timeout
        self.exclusive = exclusive
        self.parser = AtParser()  # it knows every vendor's URCs (gsmgw.at.profiles) from the start
        self.consecutive_timeouts = 0
        self.closed_reason: str | None = None
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._response: Response | None = None
        self._final: asyncio.Future[Final] | None = None
        self._prompt: asyncio.Future[None] | None = None
        self._closed_event = asyncio.Event()

    def __repr__(self) -> str:
        state = "open" if self.is_open else f"closed ({self.closed_reason})"
        return f"<AtSession {self.port} {state} {self.parser!r}>"

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def wait_closed(self) -> str:
        """Wait until the port ends; returns why."""
        await self._closed_event.wait()
        return self.closed_reason or "closed"

    # ------------------------------------------------------------------ open / close

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            # exclusive=True takes a flock on the tty, which other pyserial users honour.
            ser = serial.Serial(
                self.port, self.baudrate, timeout=0, write_timeout=0,
                exclusive=self.exclusive, rtscts=False, dsrdtr=False,
            )
        except serial.SerialException as exc:
            cause = exc.__cause__ or exc.__context__
            err = getattr(exc, "errno", None) or getattr(cause, "errno", None)
            text = str(exc)
            if err == errno.EBUSY or "exclusively lock" in text or "busy" in text.lower():
                raise PortBusy(
                    f"{self.port} is in use by another program; stop it (ModemManager: "
                    "`systemctl stop ModemManager` or udev ENV{ID_MM_DEVICE_IGNORE}=\"1\") "
                    "or use another port"
                ) from exc
            if err in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
                raise PortGone(f"{self.port} does not exist; is the modem plugged in?") from exc
            if err == errno.EACCES or "Permission denied" in text:
                raise PortGone(
                    f"no permission to open {self.port}; add the gsmgw user to the group "
                    "owning it (usually `dialout`)"
                ) from exc
            raise PortGone(f"cannot open {self.port}: {text}") from exc
        if self.exclusive:
            try:
                # TIOCEXCL: further open()s of this tty fail with EBUSY (except for root), so
                # ModemManager or a second gsmgw cannot write into our commands.
                fcntl.ioctl(ser.fileno(), termios.TIOCEXCL)
            except OSError:
                log.debug("%s: TIOCEXCL not supported", self.port)
        ser.reset_input_buffer()
        self._serial = ser
        self._fd = ser.fileno()
        self.closed_reason = None
        self._closed_event = asyncio.Event()
        self.consecutive_timeouts = 0
        self.parser = AtParser(vendor_urcs=self.parser.vendor_urcs)
        self._loop.add_reader(self._fd, self._on_readable)
        log.debug("%s: opened", self.port)

    async def close(self) -> None:
        self._shutdown("closed by gsmgw", notify=False)

    def _shutdown(self, reason: str, *, notify: bool) -> None:
        if self._serial is None:
            return
        ser, self._serial = self._serial, None
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._fd)
            except (ValueError, OSError):
                pass  # the fd is already invalid: nothing left to unregister
        if self.exclusive:
            try:
                # A pty whose other side stays open (the simulator) keeps its tty, and with it
                # the exclusive flag, after we close: clear it so the next open works.
                fcntl.ioctl(self._fd, termios.TIOCNXCL)
            except OSError:
                pass  # the device is gone; its exclusive flag went with it
        try:
            ser.close()
        except (OSError, serial.SerialException) as exc:
            log.debug("%s: error while closing: %s", self.port, exc)
        self._fd = -1
        self.closed_reason = reason
        self._fail_in_flight(PortGone(f"{self.port}: {reason}"))
        self._closed_event.set()
        log.info("%s: port closed: %s", self.port, reason)
        if notify:
            self._deliver(PortClosed(reason, reason))

    # ------------------------------------------------------------------ reading

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._shutdown(f"port gone ({os.strerror(exc.errno or 0) or exc})", notify=True)
            return
        if not data:
            # Readable but empty: the device went away (USB unplug) or the pty closed.
            self._shutdown("port gone (device disconnected)", notify=True)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s <- %r", self.port, mask_secrets(data.decode("latin-1")))
        for event in self.parser.feed(data):
            if isinstance(event, Line):
                if self._response is not None:
                    self._response.lines.append(event.text)
            elif isinstance(event, Final):
                if self._final is not None and not self._final.done():
                    self._final.set_result(event)
            elif isinstance(event, Prompt):
                if self._prompt is not None and not self._prompt.done():
                    self._prompt.set_result(None)
            else:
                if isinstance(event, LatePrompt):
                    self._escape_late_prompt()
                if isinstance(event, ModemBooted) and self.parser.command_in_flight is not None:
                    # The firmware just started: what we sent before it is lost, and waiting
                    # for its answer until the timeout (60 s for AT+CMGS) would gain nothing.
                    self._fail_in_flight(ModemRestarted(
                        f"{self.port}: the modem restarted (it printed {event.raw!r}) before answering "
                        f"{mask_secrets(self.parser.command_in_flight)}"
                    ))
                self._deliver(event)

    def _fail_in_flight(self, error: Exception) -> None:
        for fut in (self._final, self._prompt):
            if fut is not None and not fut.done():
                fut.set_exception(error)
                # send_with_prompt awaits only one of the two; the other's error must not be
                # logged as "Future exception was never retrieved" when it is collected.
                fut.add_done_callback(lambda done: done.exception())

    def _escape_late_prompt(self) -> None:
        # A prompt for a command we gave up on: the ESC we sent then came too early and was
        # dropped (modems discard input before showing "> "). One byte to a tty does not block.
        log.warning("%s: late '> ' prompt; cancelling it with ESC", self.port)
        try:
            os.write(self._fd, ESC)
        except OSError as exc:
            log.debug("%s: could not write ESC: %s", self.port, exc)

    def _deliver(self, event: Urc) -> None:
        if self.on_urc is None:
            log.debug("%s: unsolicited %r (no subscriber)", self.port, event)
            return
        try:
            self.on_urc(event)
        except Exception:  # a subscriber's bug must not stop the port's reader
            log.exception("%s: URC subscriber failed on %r", self.port, event)

    # ------------------------------------------------------------------ writing

    async def _write(self, data: bytes) -> None:
        assert self._loop is not None
        view = memoryview(data)
        while view:
            if self._serial is None:
                raise PortGone(f"{self.port}: {self.closed_reason or 'not open'}")
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await self._wait_writable()
                continue
            except OSError as exc:
                self._shutdown(f"port gone ({os.strerror(exc.errno or 0)})", notify=True)
                raise PortGone(f"{self.port}: {self.closed_reason}") from exc
            view = view[written:]

    async def _wait_writable(self) -> None:
        assert self._loop is not None
        ready: asyncio.Future[None] = self._loop.create_future()
        def mark_ready() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self._fd, mark_ready)
        try:
            await asyncio.wait_for(ready, self.default_timeout)
        except TimeoutError:
            raise ModemTimeout("(write)", self.default_timeout) from None
        finally:
            if self._fd >= 0:
                self._loop.remove_writer(self._fd)

    async def send_raw(self, data: bytes) -> None:
        """Write bytes outside any command (ESC to leave a stale prompt)."""
        async with self._lock:
            self._require_open()
            await self._write(data)

    # ------------------------------------------------------------------ commands

    def _require_open(self) -> None:
        if self._serial is None:
            raise PortGone(f"{self.port} is not open ({self.closed_reason or 'never opened'})")

    async def command(
        self, line: str, *, timeout: float | None = None, check: bool = True
    ) -> Response:
        """Send one command line and wait for its final result.

        Raises :class:`CmsError`/:class:`CmeError`/:class:`AtCommandError` on an error final
        (unless ``check`` is false), :class:`ModemTimeout`, :class:`PortGone`.
        """
        timeout = self.default_timeout if timeout is None else timeout
        async with self._lock:
            response = self._begin(line)
            log.debug("%s -> %s", self.port, mask_secrets(line))
            try:
                await self._write(line.encode("latin-1") + b"\r")
                final = await self._await_final(line, timeout)
            finally:
                self._finish()
            response.final = final
        if check and not final.ok:
            raise error_for(line, final)
        return response

    async def send_with_prompt(
        self,
        line: str,
        payload: str,
        *,
        prompt_timeout: float = 10.0,
        timeout: float = 60.0,
    ) -> Response:
        """AT+CMGS/AT+CMGW: command, ``> `` prompt, payload + Ctrl-Z, result (TS 27.005 §3.5.1).

        The port is held for the whole exchange. If the prompt does not come, ESC cancels the
        command so the modem does not take our next command as message text. If the result
        does not come within ``timeout`` the message may still have gone out: the modem's late
        ``+CMGS`` reaches the URC subscriber as ``LateSubmitResult``.
        """
        async with self._lock:
            response = self._begin(line, payload=payload)
            final_future, prompt_future = self._final, self._prompt
            assert final_future is not None and prompt_future is not None  # _begin made both
            log.debug("%s -> %s", self.port, line)
            payload_sent = False
            try:
                await self._write(line.encode("latin-1") + b"\r")
                either: set[asyncio.Future[Any]] = {prompt_future, final_future}
                done, _ = await asyncio.wait(
                    either, timeout=prompt_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if final_future in done:
                    final = final_future.result()
                elif prompt_future in done:
                    prompt_future.result()  # raises PortGone if the port ended
                    log.debug("%s -> %s<Ctrl-Z>", self.port, payload)
                    await self._write(payload.encode("latin-1") + CTRL_Z)
                    payload_sent = True
                    final = await self._await_final(line, timeout)
                else:
                    raise ModemTimeout(f"{line} (waiting for the > prompt)", prompt_timeout)
            except BaseException:
                if not payload_sent and self._serial is not None and self.parser.command_in_flight:
                    # Leave the prompt (or a prompt about to come) without sending anything.
                    try:
                        await self._write(ESC)
                    except (PortGone, ModemTimeout):
                        pass  # the port is gone or stuck; the caller gets the original error
                self._abandon()
                raise
            finally:
                self._finish()
            response.final = final
        if not final.ok:
            raise error_for(line, final)
        return response

    async def _await_final(self, line: str, timeout: float) -> Final:
        assert self._final is not None
        try:
            final = await asyncio.wait_for(self._final, timeout)
        except TimeoutError:
            self._abandon()
            self.consecutive_timeouts += 1
            log.warning("%s: no answer to %s within %g s", self.port, mask_secrets(line), timeout)
            raise ModemTimeout(mask_secrets(line), timeout) from None
        self.consecutive_timeouts = 0
        return final

    def _abandon(self) -> None:
        if self.parser.command_in_flight is not None:
            self.parser.abandon_command()

    def _begin(self, line: str, *, payload: str | None = None) -> Response:
        """Set up the state of one command in flight (the twin of `_finish`); with `payload`, the
        command waits for a `> ` prompt before the payload is sent."""
        self._require_open()
        assert self._loop is not None
        response = Response(line)
        self._response = response
        self._final = self._loop.create_future()
        if payload is None:
            self.parser.start_command(line)
        else:
            self._prompt = self._loop.create_future()
            self.parser.start_command(line, expects_prompt=True, payload=payload)
        return response

    def _finish(self) -> None:
        # A cancelled or failed command must not leave the parser waiting for its final.
        self._abandon()
        self._response = None
        self._final = None
        self._prompt = None
