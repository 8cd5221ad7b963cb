#!/usr/bin/env python3
"""The doors at disk speed: HTTP and SMPP acceptance against the fsync ceiling, and a kill -9.

    .venv/bin/python bench/bench_doors.py [--seconds 4] [--paced-seconds 3] [--dir DIR]

What it does, in one run (loopback only; about a minute):
1. the fsync ceiling of the spool's disk, measured now: how many "write a file, fsync it, rename
   it into the directory, fsync the directory" one writer does per second;
2. starts the HTTP API and the SMPP server of gsmgw in one child process, as the daemon runs
   them (one spool, sealed files, one client registry for both doors), with two clients: `free`
   without limits and `limited` with limits generous enough never to refuse (per_minute and
   per_day), so every request of `limited` goes through a full limit check;
3. for each door and client: throughput for --seconds (HTTP: 32 clients POSTing back to back;
   SMPP: 4 transceiver binds, each keeping a window of 10 submit_sm outstanding) and then the
   latency of each acknowledgement at half that rate (p50/p99);
4. floods both doors at once, kills the server with SIGKILL in the middle of it, and checks
   that every message that was acknowledged (a 202's id, a submit_sm_resp's message_id) is a
   file in outgoing/ after `Spool.recover()`. Exits 1 when one is missing.

Targets (issue 12): each door accepts at least 3 times the ceiling; p99 under 50 ms at half
rate; the limit costs nothing visible; no acknowledged message lost. Not a test: it prints
figures, side by side, and the ratios to the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_http import bench_context, config_head  # noqa: E402
from bench_smpp import fsync_ceiling  # noqa: E402
from gsmgw.smpp import pdu as P  # noqa: E402
from gsmgw.smpp.pdu import CommandId, Pdu  # noqa: E402

HTTP_CLIENTS = 32
SMPP_BINDS = 4
SMPP_WINDOW = 10
CLIENTS = ("free", "limited")
GENEROUS = {"per_minute": 10_000_000, "per_day": 1_000_000_000}


def write_config(directory: Path, http_port: int, smpp_port: int) -> Path:
    clients = []
    for name in CLIENTS:
        (directory / f"{name}.token").write_text(f"{name}-token-0123456789abcdef\n")
        (directory / f"{name}.smpp").write_text(f"{name[:8]}\n")
        for secret in (f"{name}.token", f"{name}.smpp"):
            os.chmod(directory / secret, 0o600)
        clients += [
            f"  - name: {name}",
            f"    token_file: {directory}/{name}.token",
            f"    smpp: {{system_id: {name}, password_file: {directory}/{name}.smpp}}",
            '    allow: ["+49*"]',
        ]
        if name == "limited":
            clients.append(f"    limits: {json.dumps(GENEROUS)}")
    config = directory / "gsmgw.yaml"
    config.write_text(config_head(directory) + textwrap.dedent(f"""\
        http:
          listen: 127.0.0.1:{http_port}
        smpp:
          listen: 127.0.0.1:{smpp_port}
          window: {SMPP_WINDOW}
        clients:
        """) + "\n".join(clients) + "\n")
    return config


def serve(config_path: str, ready) -> None:
    """Child process: HTTP API and SMPP server on one real, sealed spool, until killed or told to stop."""
    from gsmgw.http import server as http_server
    from gsmgw.smpp import server as smpp_server

    async def main() -> None:
        ctx = bench_context(config_path)
        http = await http_server.start(ctx)
        smpp = await smpp_server.start(ctx)
        ready.send(os.getpid())
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(ready.fileno(), stop.set)
        await stop.wait()
        ready.recv()
        committer = getattr(ctx.spool, "committer", None)  # main before issue 12 had none
        ready.send((committer.batches if committer else None, committer.files if committer else None,
                    time.process_time()))
        await smpp.close(timeout=2)
        await http.close()

    asyncio.run(main())


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client: cheaper than a client library, so the load
    generator costs less CPU than the server it measures."""

    def __init__(self, port: int, client: str):
        self.port = port
        self.token = f"{client}-token-0123456789abcdef"

    async def open(self) -> "HttpConnection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def send(self, number: str) -> str | None:
        """POST one message; its id when accepted (202), else None."""
        body = json.dumps({"to": number, "text": "benchmark"}).encode()
        self.writer.write(
            f"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode("ascii") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        answer = await self.reader.readexactly(length)
        if head[9:12] != b"202":
            return None
        return json.loads(answer)["messages"][0]["id"]

    def close(self) -> None:
        self.writer.close()


class SmppBind:
    """One transceiver bind that keeps up to `window` submit_sm outstanding."""

    def __init__(self, port: int, client: str, window: int):
        self.port, self.client, self.window = port, client, window
        self.sequence = 1
        self.outstanding: dict[int, tuple[float, asyncio.Future]] = {}
        self.free = asyncio.Semaphore(window)
        self.closed = False

    async def open(self) -> "SmppBind":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(P.encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {
            "system_id": self.client, "password": self.client[:8], "interface_version": 0x34})))
        answer = await self._read()
        if answer.status != 0:
            raise RuntimeError(f"bind of {self.client} refused: status {answer.status:#x}")
        self.reading = asyncio.create_task(self._read_loop())
        return self

    async def _read(self) -> Pdu:
        header = await self.reader.readexactly(4)
        (length,) = struct.unpack(">I", header)
        return P.decode(header + await self.reader.readexactly(length - 4))

    async def _read_loop(self) -> None:
        while True:
            try:
                answer = await self._read()
            except (asyncio.IncompleteReadError, ConnectionError):
                self.closed = True
                for _, future in self.outstanding.values():
                    if not future.done():
                        future.set_result(None)
                for _ in range(self.window):
                    self.free.release()  # senders waiting for room learn that the bind is gone
                return
            if answer.command_id == CommandId.SUBMIT_SM_RESP and answer.sequence in self.outstanding:
                _, future = self.outstanding.pop(answer.sequence)
                self.free.release()
                future.set_result(answer.params.get("message_id") if answer.status == 0 else None)

    async def send(self, number: str) -> str | None:
        """One submit_sm within the window; its message_id when accepted, else None."""
        await self.free.acquire()
        if self.closed:
            return None
        self.sequence += 1
        future = asyncio.get_running_loop().create_future()
        self.outstanding[self.sequence] = (time.perf_counter(), future)
        self.writer.write(P.encode(Pdu(CommandId.SUBMIT_SM, self.sequence, 0, {
            "dest_addr_ton": 1, "destination_addr": number.lstrip("+"), "short_message": b"benchmark"})))
        return await future

    def close(self) -> None:
        self.reading.cancel()
        self.writer.close()


async def open_senders(door: str, ports: dict[str, int], client: str) -> list:
    """The door's senders: HTTP connections, or SMPP binds (whose windows are the concurrency)."""
    if door == "http":
        return [await HttpConnection(ports["http"], client).open() for _ in range(HTTP_CLIENTS)]
    return [await SmppBind(ports["smpp"], client, SMPP_WINDOW).open() for _ in range(SMPP_BINDS)]


def concurrency(door: str) -> list[int]:
    """Which sender each of the concurrent workers uses."""
    if door == "http":
        return list(range(HTTP_CLIENTS))
    return [n for n in range(SMPP_BINDS) for _ in range(SMPP_WINDOW)]


async def flood(door: str, ports: dict[str, int], client: str, seconds: float,
                acked: list[str] | None = None) -> tuple[int, int, float]:
    """Send back to back for `seconds`: (accepted, refused, elapsed). Accepted ids go to `acked`."""
    senders = await open_senders(door, ports, client)
    accepted = refused = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker(sender) -> None:
        nonlocal accepted, refused
        while time.perf_counter() < deadline:
            try:
                answer = await sender.send(f"+4915{next(counter):09d}")
            except (ConnectionError, asyncio.IncompleteReadError):
                return  # the server was killed
            if answer is None:
                refused += 1
                if acked is not None:
                    return
            else:
                accepted += 1
                if acked is not None:
                    acked.append(answer)

    started = time.perf_counter()
    await asyncio.gather(*(worker(senders[n]) for n in concurrency(door)))
    elapsed = time.perf_counter() - started
    for sender in senders:
        sender.close()
    return accepted, refused, elapsed


async def paced(door: str, ports: dict[str, int], client: str, rate: float, seconds: float) -> list[float]:
    """One message every 1/rate s for `seconds`, each on a free sender (waiting for one counts):
    the latency of each acknowledgement."""
    senders = await open_senders(door, ports, client)
    idle: asyncio.Queue = asyncio.Queue()
    for n in concurrency(door):
        idle.put_nowait(senders[n])
    latencies: list[float] = []

    async def one(sequence: int) -> None:
        started = time.perf_counter()
        sender = await idle.get()
        if await sender.send(f"+4917{sequence:09d}") is not None:
            latencies.append(time.perf_counter() - started)
        idle.put_nowait(sender)

    tasks = []
    begin = time.perf_counter()
    for sequence in range(int(rate * seconds)):
        delay = begin + sequence / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sequence)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    for sender in senders:
        sender.close()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def start_server(config: Path) -> tuple[multiprocessing.Process, object, int]:
    parent_end, child_end = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(str(config), child_end), daemon=True)
    server.start()
    deadline = time.monotonic() + 60
    while not parent_end.poll(0.2):
        if not server.is_alive() or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the server did not start (its error is above)")
    return server, parent_end, parent_end.recv()


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each throughput run (default 4)")
    parser.add_argument("--paced-seconds", type=float, default=3.0, help="length of each latency run (default 3)")
    parser.add_argument("--kill-after", type=float, default=1.5, help="seconds of flood before the kill -9 (default 1.5)")
    parser.add_argument("--dir", help="where the spool goes (default: a temporary directory in the cwd, removed after)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="gsmgw-bench-doors-", dir=args.dir or os.getcwd()))
    try:
        return run(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(args: argparse.Namespace, base: Path) -> int:
    ceiling, _bare = fsync_ceiling(base / "ceiling-probe")  # on the spool's file system
    print(f"fsync ceiling of {base}: {ceiling:.0f} durable writes/s for one writer "
          f"(write, fsync, rename, fsync dir); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    http_port, smpp_port = free_ports(2)
    ports = {"http": http_port, "smpp": smpp_port}
    config = write_config(base, http_port, smpp_port)

    server, pipe, _pid = start_server(config)
    rows = []
    try:
        for door in ("http", "smpp"):
            for client in CLIENTS:
                accepted, refused, elapsed = asyncio.run(flood(door, ports, client, args.seconds))
                rate = accepted / elapsed
                latencies = asyncio.run(paced(door, ports, client, rate / 2, args.paced_seconds))
                rows.append((door, client, rate, refused, percentile(latencies, 0.5) * 1000,
                             percentile(latencies, 0.99) * 1000, len(latencies)))
        pipe.send("stop")
        stats = pipe.recv() if pipe.poll(30) else None
    finally:
        server.join(15)
        if server.is_alive():
            server.kill()  # our own child, by its handle
    shape = {"http": f"{HTTP_CLIENTS} clients", "smpp": f"{SMPP_BINDS} binds x window {SMPP_WINDOW}"}
    print(f"{'door':<6}{'client':<9}{'load':<22}{'accepted/s':>11}{'x ceiling':>10}{'p50 ms':>9}{'p99 ms':>9}  at half rate")
    for door, client, rate, refused, p50, p99, paced_count in rows:
        print(f"{door:<6}{client:<9}{shape[door]:<22}{rate:>11.0f}{rate / ceiling:>10.1f}{p50:>9.1f}{p99:>9.1f}"
              f"  ({paced_count} at {rate / 2:.0f}/s{f'; {refused} refused' if refused else ''})")
    for door in ("http", "smpp"):
        free = next(row for row in rows if row[:2] == (door, "free"))
        limited = next(row for row in rows if row[:2] == (door, "limited"))
        print(f"{door}: with a generous limit {limited[2] / free[2]:.2f}x the rate without, p99 {limited[5]:.1f} ms vs "
              f"{free[5]:.1f} ms")
    if stats is not None:
        batches, files, cpu_seconds = stats
        total = sum(row[2] * args.seconds + row[6] for row in rows)  # about what was accepted
        print(f"server CPU: {cpu_seconds:.1f} s = {cpu_seconds / total * 1000:.2f} ms per accepted message"
              + (f"; group commit: {files} files in {batches} batches = {files / max(batches, 1):.1f} files per "
                 "directory fsync" if batches is not None else ""))
    met = all(row[2] >= 3 * ceiling and row[5] < 50 for row in rows)
    print("targets (>= 3x ceiling, p99 < 50 ms at half rate):", "met" if met else "NOT met")

    return kill_run(args, base, config, ports)


def kill_run(args: argparse.Namespace, base: Path, config: Path, ports: dict[str, int]) -> int:
    """Flood both doors, SIGKILL the server mid-flood, and check every acknowledged id is a file."""
    from gsmgw.spool.store import Spool

    spool = Spool(base / "spool")
    before = set(spool.list("outgoing"))
    server, pipe, pid = start_server(config)
    acked: list[str] = []

    async def flood_and_kill() -> None:
        floods = [asyncio.create_task(flood(door, ports, "free", args.kill_after + 30, acked))
                  for door in ("http", "smpp")]
        await asyncio.sleep(args.kill_after)
        os.kill(pid, signal.SIGKILL)  # our own child, by its pid
        await asyncio.wait_for(asyncio.gather(*floods), timeout=30)

    asyncio.run(flood_and_kill())
    server.join(10)
    spool.recover()
    after = set(spool.list("outgoing")) - before
    lost = sorted(set(acked) - after)
    print(f"kill -9 during a flood of both doors after {args.kill_after:g} s: {len(acked)} acknowledged, "
          f"{len(after)} files in outgoing/ after recover, {len(lost)} acknowledged but lost"
          + (f": {', '.join(lost[:5])}" if lost else ""))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
