"""A raw AT terminal on a simulated modem's port; the `sim_network` fixture is in conftest.py.

    from simfixtures import AtTerminal

    def test_x(sim_network):
        net = sim_network(modems=2, latency=0.2)      # started; stopped after the test
        with AtTerminal(net.modems[0].path) as at:
            assert "+CPIN: READY" in at.command("AT+CPIN?")
"""

from __future__ import annotations

import re
import time
import serial

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r\n]*|NO CARRIER)\r\n|\r\n> $")


class AtTerminal:
    """A raw pyserial view of a modem port for tests: send a line, read up to the final result."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.port = serial.Serial(path, 115200, timeout=0.05)
        self.timeout = timeout
        self._buffer = b""

    def __enter__(self) -> "AtTerminal":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.port.close()

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read_until(self, pattern: "re.Pattern[bytes]", timeout: float | None = None) -> bytes:
        """Bytes up to and including the first match of `pattern`; TimeoutError with what came.

        What arrived after the match is kept for the next read.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (match := pattern.search(self._buffer)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern.pattern!r} within the timeout; got {self._buffer!r}")
            # One byte (or the timeout) first, then whatever else is waiting: no idle waits.
            self._buffer += self.port.read(max(1, self.port.in_waiting))
        received, self._buffer = self._buffer[: match.end()], self._buffer[match.end() :]
        return received

    def command(self, line: str, timeout: float | None = None) -> str:
        """Send `line` + CR; the answer up to its final result (or the `> ` prompt), latin-1."""
        self.port.write(line.encode("latin-1") + b"\r")
        return self.read_until(FINAL, timeout).decode("latin-1")

    def silence(self, seconds: float) -> bytes:
        """Whatever arrives within `seconds` (for checking that nothing does)."""
        deadline = time.monotonic() + seconds
        received, self._buffer = self._buffer, b""
        while time.monotonic() < deadline:
            received += self.port.read(4096)
        return received
