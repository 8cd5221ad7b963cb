"""What every network listener (HTTP, SMPP, SMTP) allows a connection: how many at once, per
remote address and in all, and how long a peer may take before it says who it is (an HTTP request
head, an SMPP bind); and what they share when they start: the TLS context of `*.tls`, and the
words for a port they cannot listen on. Also the session loop of the JSON-lines control sockets
(the daemon's STATE/control.sock and `gsmgw simulate`'s): `serve_json_lines`.

Without caps a flood of connections, or a few peers that open many and send nothing (slowloris),
use up the daemon's file descriptors, and then spool writes fail with EMFILE; with them a
listener refuses what is over its caps at once and keeps the rest of the daemon working.

`ConnectionGuard` is the accounting (pure: no I/O, no clock but the one given). `GuardedProtocol`
puts it and the request-head timeout in front of any asyncio protocol (aiohttp's); the SMPP server
asks the guard itself. Refusals are logged at most once a minute per listener, with their count,
so a flood does not also flood the log.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger("gsmgw.listen")

REFUSAL_LOG_INTERVAL = 60.0
HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class ConnectionLimits:
    """The caps of one listener (config keys `max_connections`, `max_connections_per_address`
    and `header_timeout` (HTTP) / `bind_timeout` (SMPP), seconds)."""

    max_connections: int = 1024
    max_per_address: int = 128
    first_request_timeout: float = 10.0


class ConnectionGuard:
    """Open connections of one listener, in all and per remote address."""

    def __init__(self, name: str, limits: ConnectionLimits, clock: Callable[[], float] = lambda: 0.0):
        self.name = name
        self.limits = limits
        self.clock = clock
        self.open = 0
        self._per_address: dict[str, int] = {}
        self._refused = 0
        self._last_log: float | None = None

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`, or False (counted as refused) when over a cap."""
        if self.open >= self.limits.max_connections:
            self._refuse(address, f"{self.open} connections are open, the most max_connections allows")
            return False
        held = self._per_address.get(address, 0)
        if held >= self.limits.max_per_address:
            self._refuse(address, f"{address} has {held} open, the most max_connections_per_address allows")
            return False
        self.open += 1
        self._per_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._per_address.get(address, 0) - 1
        if held > 0:
            self._per_address[address] = held
        else:
            self._per_address.pop(address, None)
        self.open = max(self.open - 1, 0)

    def connections_from(self, address: str) -> int:
        return self._per_address.get(address, 0)

    def _refuse(self, address: str, why: str) -> None:
        self._refused += 1
        now = self.clock()
        if self._last_log is not None and now - self._last_log < REFUSAL_LOG_INTERVAL:
            return
        log.warning(
            "%s: refused %d connection(s) since the last such line, the latest from %s: %s; raise the cap in "
            "the config if these are real clients", self.name, self._refused, address, why,
        )
        self._refused = 0
        self._last_log = now


def peer_address(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return str(peer or "unknown")


class GuardedProtocol(asyncio.Protocol):
    """An asyncio protocol in front of another (aiohttp's request handler): connections over
    the guard's caps get `refusal` (e.g. an HTTP 503) and are closed before the inner protocol
    sees them; a connection whose first request head (up to its blank line) has not come within
    `first_request_timeout` is closed. Later requests on a kept-alive connection are the inner
    protocol's to time (aiohttp's keepalive_timeout)."""

    def __init__(self, inner: asyncio.BaseProtocol, guard: ConnectionGuard, refusal: bytes = b""):
        self.inner = inner
        self.guard = guard
        self.refusal = refusal
        self.address: str | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._admitted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.address = peer_address(transport)
        if not self.guard.admit(self.address):
            if self.refusal and isinstance(transport, asyncio.WriteTransport):
                transport.write(self.refusal)
            transport.close()
            return
        self._admitted = True
        self._head_timer = asyncio.get_running_loop().call_later(
            self.guard.limits.first_request_timeout, self._head_too_slow
        )
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._head_timer is not None:
            # Only the last 3 octets of what came before can begin the blank line.
            seen = self._tail + data
            if HEAD_END in seen:
                self._head_timer.cancel()
                self._head_timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        self.inner.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return None
        return self.inner.eof_received()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if not self._admitted:
            return
        self._admitted = False
        self.guard.release(self.address or "unknown")
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self.inner.resume_writing()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        log.info(
            "%s: closing the connection from %s: no request within %.0f s (header_timeout)",
            self.guard.name, self.address, self.guard.limits.first_request_timeout,
        )
        if self._transport is not None:
            self._transport.close()


def guarded_factory(
    factory: Callable[[], asyncio.BaseProtocol], guard: ConnectionGuard, refusal: bytes = b""
) -> Callable[[], GuardedProtocol]:
    return lambda: GuardedProtocol(factory(), guard, refusal)


def server_tls(tls: Any, key: str, error: type[Exception]) -> ssl.SSLContext | None:
    """The server-side TLS context of a `tls: {cert, key}` config (None without one); `error`
    (the listener's start error) names `key` and what to check when the files cannot be used."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise error(
            f"{key}: cannot load the certificate {tls.cert} with the key {tls.key}: {exc}; check both "
            "paths, that they are PEM files that belong together, and that gsmgw may read them"
        ) from None
    return context


def cannot_listen(key: str, host: str, port: int, exc: OSError, *, low_port_fix: str) -> str:
    """Why `key` cannot listen on host:port, and what to do about it."""
    hint = f"another program (or another gsmgw) uses it; stop it or set {key} to another port"
    if exc.errno == errno.EACCES:
        hint = f"ports below 1024 need privileges; {low_port_fix}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "this machine has no such address; use 127.0.0.1 or one of its own addresses"
    return f"{key}: cannot listen on {host}:{port}: {exc.strerror}; {hint}"


async def serve_json_lines(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: Callable[[bytes], Awaitable[bytes]],
    too_long: bytes,
) -> None:
    """One control-socket session: each request line gets `await answer(line)`, in order, until
    the asker closes. A line over the reader's limit gets `too_long` and ends the session (the
    rest of that line cannot be told from the next request)."""
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                writer.write(too_long)
                break
            if not line:
                break
            writer.write(await answer(line))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the asker went away; there is nobody to answer
    finally:
        writer.close()
