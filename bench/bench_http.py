#!/usr/bin/env python3
"""HTTP acceptance speed: POST /api/v1/messages per second with 32 clients, and latency.

    .venv/bin/python bench/bench_http.py [--count 5000] [--clients 32] [--dir DIR] [--timeout 120]

What it does (loopback only, bounded by --count and --timeout):
1. measures the fsync ceiling of the spool's file system in this run: the time of one durable
   spool write (`Spool.submit`: tmp + fsync + rename + fsync of the directory) and how many of
   them one writer does per second;
2. starts the gsmgw HTTP server in a child process (so the load generator and the server do not
   share one interpreter lock) on a real Spool in DIR/spool;
3. --clients concurrent clients POST one message each, back to back, until --count are
   accepted: throughput (each 202 comes after the file is durable in outgoing/; the server
   writes concurrent requests with one group commit);
4. sends at half that rate, paced, and measures each request's time to its 202: p50/p99.

Not a test: it prints figures. The spool directory is removed at the end unless --dir is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "bench-token-0123456789abcdef"


def fsync_ceiling(directory: Path, seconds: float = 1.0) -> tuple[float, float, float]:
    """(mean ms of one durable Spool.submit, such writes per second, CPU ms of one) in `directory`."""
    from gsmgw.spool.store import Spool

    spool = Spool(directory)
    spool.ensure_dirs()
    payload = b"To: +4915112345678\n\nbenchmark\n"
    names, times = [], []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        names.append(spool.submit(payload))
        times.append(time.perf_counter() - started)
    cpu_ms = (time.process_time() - cpu_started) / len(times) * 1000
    for name in names:
        spool.remove("outgoing", name)
    return statistics.mean(times) * 1000, len(times) / sum(times), cpu_ms


def config_head(directory: Path) -> str:
    """The config lines every door's benchmark starts with: spool, state and one (absent) modem."""
    return textwrap.dedent(f"""\
        spool: {directory}/spool
        state: {directory}/state
        modems:
          - name: gsm1
            port: {directory}/modem0
        """)


def write_config(directory: Path, port: int) -> Path:
    token_file = directory / "bench.token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    config = directory / "gsmgw.yaml"
    config.write_text(config_head(directory) + textwrap.dedent(f"""\
        http:
          listen: 127.0.0.1:{port}
        clients:
          - name: bench
            token_file: {token_file}
            allow: ["+49*"]
        """))
    return config


def bench_context(config_path: str):
    """The parts of the daemon's context a door's server uses, built from real pieces: the config,
    a sealed spool (as in the daemon, every accepted file carries its HMAC seal), a bus, metrics
    and one client registry that every door shares. For the server's child process."""
    from gsmgw.clients import ClientRegistry
    from gsmgw.config import load_config
    from gsmgw.daemon.events import EventBus
    from gsmgw.daemon.metrics import Metrics
    from gsmgw.spool.store import Spool, load_seal_key

    class Context:
        def __init__(self) -> None:
            self.config = load_config(config_path)
            self.config.state.mkdir(parents=True, exist_ok=True)
            self.spool = Spool(self.config.spool, seal_key=load_seal_key(self.config.state))
            self.spool.ensure_dirs()
            self.bus = EventBus()
            self.metrics = Metrics()
            self.clients = ClientRegistry.from_config(self.config)  # limits count every door together

        def status_snapshot(self) -> dict:
            return {"updated": None, "modems": [], "queue": {}}

        def message_status(self, message_id: str) -> None:
            return None

    return Context()


def run_server(config_path: str, ready, profile: bool = False, door: str = "http") -> None:
    """Child process: the door's server (`http`: gsmgw.http.server, `smtp`: gsmgw.email.listener)
    on a real spool until the parent says stop. It sends its address, then (batches, files, CPU s)."""
    import importlib

    start = importlib.import_module({"http": "gsmgw.http.server", "smtp": "gsmgw.email.listener"}[door]).start

    async def main() -> None:
        server = await start(bench_context(config_path))
        ready.send(server.url if door == "http" else server.port)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(ready.fileno(), stop.set)  # the parent closing the pipe ends the server
        await stop.wait()
        committer = server.ctx.spool.committer
        ready.send((committer.batches, committer.files, time.process_time()))
        await server.close()

    if not profile:
        asyncio.run(main())
        return
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(asyncio.run, main())
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)


class Connection:
    """A minimal keep-alive HTTP/1.1 client on one socket.

    The load generator must cost less CPU than the server it measures (both share this
    machine's cores), so it writes requests and reads answers by hand instead of through a
    full client library.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode("ascii") + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def split_url(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def flood_with(open_connection, send, count: int, clients: int, timeout: float) -> tuple[float, int, list[float]]:
    """`clients` connections send back to back until `count` are accepted; (seconds, accepted,
    latencies). `send(connection, client_number, sequence)` returns True when accepted, else the
    answer it got (counted and printed)."""
    remaining = count
    accepted = 0
    latencies: list[float] = []
    failures: dict[object, int] = {}
    deadline = time.perf_counter() + timeout
    connections = [await open_connection() for _ in range(clients)]

    async def worker(number: int, connection) -> None:
        nonlocal remaining, accepted
        sequence = 0
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            sequence += 1
            started = time.perf_counter()
            answer = await send(connection, number, sequence)
            if answer is True:
                accepted += 1
                latencies.append(time.perf_counter() - started)
            else:
                failures[answer] = failures.get(answer, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n, connection) for n, connection in enumerate(connections)))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    if failures:
        print(f"  refused: {failures}")
    return elapsed, accepted, latencies


async def paced_with(open_connection, send, rate: float, seconds: float, connections: int) -> list[float]:
    """One request every 1/rate s for `seconds`, each on an idle connection; their latencies."""
    latencies: list[float] = []
    total = int(rate * seconds)
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await open_connection())

    async def one(sequence: int) -> None:
        started = time.perf_counter()
        connection = await idle.get()  # waiting for a connection counts: it is the client's wait
        if await send(connection, None, sequence) is True:
            latencies.append(time.perf_counter() - started)
        idle.put_nowait(connection)

    tasks = []
    begin = time.perf_counter()
    for sequence in range(total):
        delay = begin + sequence / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(sequence)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies


async def post_message(connection: Connection, number: int | None, sequence: int) -> bool | int:
    if number is None:  # the paced run
        body = json.dumps({"to": f"+4917{sequence:09d}", "text": "paced"}).encode()
    else:
        body = json.dumps({"to": f"+4915{number:04d}{sequence:06d}", "text": f"bench {number}/{sequence} ✓"}).encode()
    status, _ = await connection.post("/api/v1/messages", body)
    return True if status == 202 else status


async def flood(url: str, count: int, clients: int, timeout: float) -> tuple[float, int, list[float]]:
    """`clients` connections POST back to back until `count` 202s; (seconds, accepted, latencies)."""
    host, port = split_url(url)
    return await flood_with(lambda: Connection(host, port).open(), post_message, count, clients, timeout)


async def paced(url: str, rate: float, seconds: float) -> list[float]:
    """One request every 1/rate s for `seconds`, each on an idle connection; their latencies."""
    host, port = split_url(url)
    return await paced_with(lambda: Connection(host, port).open(), post_message, rate, seconds, 64)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def arguments(description: str, *, clients: int, unit: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=5000, help=f"{unit} in the throughput run (default 5000)")
    parser.add_argument("--clients", type=int, default=clients, help=f"concurrent clients (default {clients})")
    parser.add_argument("--paced-seconds", type=float, default=5.0, help="length of the latency run (default 5 s)")
    parser.add_argument("--dir", help="where to put the spool (default: a temporary directory, removed after)")
    parser.add_argument("--timeout", type=float, default=120.0, help="upper bound for each phase (default 120 s)")
    parser.add_argument("--profile", action="store_true", help="print the server's cProfile (slows it down)")
    return parser.parse_args()


def run_bench(args: argparse.Namespace, *, prefix: str, write_config, serve, flood, paced, unit: str,
              answer: str, clients_text: str, measured: dict | None = None) -> int:
    """The benchmark of one door: fsync ceiling, the server in a child process (`serve`), the
    throughput run (`flood`), the paced latency run at half that rate (`paced`), the group commit.
    `measured` gets the figures (fsync_writes_per_second, rate, p99_half_rate), for a comparison."""
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix=prefix))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        ms_per_write, writes_per_second, cpu_ms = fsync_ceiling(directory / "fsync-probe")
        print(f"fsync ceiling: one durable spool write takes {ms_per_write:.2f} ms ({cpu_ms:.2f} ms of it CPU) "
              f"= {writes_per_second:.0f} writes/s for one writer without group commit; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = write_config(directory, port)
        parent_end, child_end = multiprocessing.Pipe()
        context = multiprocessing.get_context("spawn")
        server = context.Process(target=serve, args=(str(config), child_end, args.profile), daemon=True)
        server.start()
        if not parent_end.poll(30):
            print("the server did not start within 30 s", file=sys.stderr)
            server.kill()
            return 1
        address = parent_end.recv()

        elapsed, accepted, latencies = asyncio.run(flood(address, args.count, args.clients, args.timeout))
        rate = accepted / elapsed
        print(f"throughput: {accepted} {unit} accepted in {elapsed:.2f} s = {rate:.0f} {unit}/s "
              f"with {args.clients} {clients_text} "
              f"(p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms under full load)")

        half = rate / 2
        paced_latencies = asyncio.run(paced(address, half, args.paced_seconds, args.clients))
        if measured is not None:
            measured.update(fsync_writes_per_second=writes_per_second, rate=rate,
                            p99_half_rate=percentile(paced_latencies, 0.99))
        print(f"latency at half that rate ({half:.0f}/s for {args.paced_seconds:g} s, {len(paced_latencies)} {unit}): "
              f"p50 {percentile(paced_latencies, 0.5) * 1000:.1f} ms, p99 {percentile(paced_latencies, 0.99) * 1000:.1f} ms, "
              f"max {max(paced_latencies) * 1000:.1f} ms")

        parent_end.send("stop")
        if parent_end.poll(30):
            batches, files, cpu_seconds = parent_end.recv()
            print(f"group commit: {files} files in {batches} batches ({files / max(batches, 1):.1f} per directory fsync); "
                  f"server CPU time {cpu_seconds:.1f} s = {cpu_seconds / max(files, 1) * 1000:.2f} ms per file")
        server.join(30)
        if server.is_alive():
            server.kill()
        written = len(os.listdir(directory / "spool" / "outgoing"))
        print(f"files in outgoing/: {written} (every {answer} has its file)")
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def main() -> int:
    args = arguments(__doc__.split("\n\n")[0], clients=32, unit="messages")
    return run_bench(args, prefix="gsmgw-bench-http-", write_config=write_config, serve=run_server,
                     flood=flood, paced=lambda url, rate, seconds, clients: paced(url, rate, seconds),
                     unit="messages", answer="202", clients_text="concurrent clients")


if __name__ == "__main__":
    sys.exit(main())
