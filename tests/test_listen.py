"""Connection caps and slow peers, with real sockets on loopback: neither listener may be made
to hold descriptors without end (a flood of connections, slowloris), or spool writes fail with
EMFILE. The accounting itself (gsmgw.listen.ConnectionGuard) is checked without sockets."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gsmgw.listen import ConnectionGuard, ConnectionLimits, serve_json_lines
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu
from gsmgw.smpp.session import Timers
from test_http_api import TOKEN, Context, write_config
from smppharness import ServerThread, raw_read, raw_send

WAIT = 10.0  # generous: only a bound, never a measure of speed


def test_the_guard_counts_per_address_and_in_all(caplog):
    now = [0.0]
    guard = ConnectionGuard("test", ConnectionLimits(max_connections=3, max_per_address=2), clock=lambda: now[0])
    assert guard.admit("10.0.0.1") and guard.admit("10.0.0.1")
    assert not guard.admit("10.0.0.1")  # per address
    assert guard.admit("10.0.0.2")
    assert not guard.admit("10.0.0.3")  # in all
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.3") and guard.open == 3
    assert not guard.admit("10.0.0.4") and not guard.admit("10.0.0.4")
    # A flood is one log line a minute, with the count.
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    now[0] = 61.0
    assert not guard.admit("10.0.0.4")
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and "refused 4 connection(s)" in refusals[1]


# ---- HTTP -------------------------------------------------------------------------------------


def http_config(tmp_path, caps: str):
    path = write_config(tmp_path)
    text = path.read_text().replace("  metrics: true\n", "  metrics: true\n" + caps, 1)
    path.write_text(text)
    return path


async def start_http(tmp_path, caps: str):
    from gsmgw.http.server import start

    ctx = Context(http_config(tmp_path, caps))
    server = await start(ctx)
    host, port = server.addresses[0][:2]
    return server, host, port


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded by WAIT)."""
    return await asyncio.wait_for(reader.read(), WAIT)


def healthz_request() -> bytes:
    return f"GET /api/v1/modems HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()


def test_http_refuses_connections_over_the_caps_with_503(tmp_path):
    async def main():
        server, host, port = await start_http(tmp_path, "  max_connections: 4\n  max_connections_per_address: 2\n")
        try:
            held = [await asyncio.open_connection(host, port) for _ in range(2)]
            reader, writer = await asyncio.open_connection(host, port)
            answer = await closed_by_server(reader)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
            writer.close()
            # One of the two goes: the next connection from this address is served.
            held[0][1].close()
            await held[0][1].wait_closed()
            await wait_until(lambda: server.guard.connections_from("127.0.0.1") < 2)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(healthz_request())
            status_line = await asyncio.wait_for(reader.readline(), WAIT)
            assert status_line.startswith(b"HTTP/1.1 200")
            writer.close()
            held[1][1].close()
        finally:
            await server.close()

    asyncio.run(main())


def test_http_closes_a_connection_whose_request_head_is_too_slow(tmp_path):
    # A slowloris client: connects, starts a request, never ends its head. Without a timeout the
    # connection (and its descriptor) was held for aiohttp's keep-alive time, an hour.
    async def main():
        server, host, port = await start_http(tmp_path, "  header_timeout: 1 s\n")
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /api/v1/modems HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert await closed_by_server(reader) == b""
            # Also the next request on a kept-alive connection.
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(healthz_request())
            status_line = await asyncio.wait_for(reader.readline(), WAIT)
            assert status_line.startswith(b"HTTP/1.1 200")
            writer.write(b"GET /api/v1/modems HTTP/1.1\r\nHost: x\r\n")
            rest = await closed_by_server(reader)
            assert b"HTTP/1.1" not in rest.split(b"\r\n\r\n", 1)[-1]  # no second answer
            await wait_until(lambda: server.guard.open == 0)
        finally:
            await server.close()

    asyncio.run(main())


async def wait_until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ---- SMPP -------------------------------------------------------------------------------------


def connect(gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT)


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("caps", [ConnectionLimits(max_connections=2), ConnectionLimits(max_per_address=2)])
def test_smpp_refuses_connections_over_the_caps(tmp_path, caps):
    with ServerThread(tmp_path, connections=caps) as gateway:
        first, second = connect(gateway), connect(gateway)
        third = connect(gateway)
        assert closed(third)  # closed at once, nothing read
        first.close()
        deadline = time.monotonic() + WAIT
        while gateway.server.guard.open > 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        fourth = connect(gateway)
        raw_send(fourth, Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {"system_id": "zabbix", "password": "s3cret"}))
        assert raw_read(fourth).status == 0
        for sock in (second, third, fourth):
            sock.close()


def test_smpp_closes_a_connection_that_does_not_bind_in_time(tmp_path):
    with ServerThread(tmp_path, timers=Timers(bind=1.0)) as gateway:
        sock = connect(gateway)
        sock.sendall(P.encode(Pdu(CommandId.ENQUIRE_LINK, 1))[:7])  # half a PDU, then nothing
        assert closed(sock)
        sock.close()


def test_a_json_lines_session_answers_in_order_and_ends_at_an_over_long_line(tmp_path):
    async def main():
        async def answer(line: bytes) -> bytes:
            return b"answer " + line

        async def session(reader, writer):
            await serve_json_lines(reader, writer, answer, b"too long\n")

        path = str(tmp_path / "control.sock")
        server = await asyncio.start_unix_server(session, path=path, limit=64)
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"one\ntwo\n" + b"x" * 200 + b"\nthree\n")
            await writer.drain()
            received = await asyncio.wait_for(reader.read(), 5)  # until the server closes
            writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return received

    assert asyncio.run(main()) == b"answer one\nanswer two\ntoo long\n"
