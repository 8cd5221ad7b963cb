#!/usr/bin/env python3
"""SMPP acceptance speed: submit_sm per second over one transceiver session, and latency.

    .venv/bin/python bench/bench_smpp.py [--count 5000] [--window 10] [--dir DIR] [--limit N]

What it does (loopback only, bounded by --count and --timeout):
1. measures the fsync ceiling of DIR: how many "tmp + fsync + rename + fsync dir" writes, and
   how many fsyncs of a file alone, the disk does per second;
2. starts the gsmgw SMPP server in a child process (so client and server do not share one
   interpreter lock), on a real Spool in DIR/spool;
3. binds one transceiver and keeps --window submit_sm outstanding until --count are
   accepted: throughput;
4. sends at half that rate, paced, and measures each submit_sm → submit_sm_resp time: p50/p99.

With --limit N the bench client has `limits: {per_day: N}` (N large enough never to refuse):
every submit_sm then goes through the limit check, with a window that grows to all the parts
accepted so far, so the figure shows what a limit check costs.

Every accepted message is a durable file in outgoing/ before its response; the spool's committer groups
the writes of a window (one directory fsync per batch). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gsmgw.smpp import pdu as P  # noqa: E402
from gsmgw.smpp.pdu import CommandId, Pdu  # noqa: E402


def fsync_ceiling(directory: Path, seconds: float = 1.0) -> tuple[float, float]:
    """(atomic writes per second, bare file fsyncs per second) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = b"To: +4915112345678\n\nbenchmark\n"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            tmp = directory / f".bench-{count}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, directory / f"bench-{count}")
            os.fsync(dir_fd)
            count += 1
        atomic = count / (time.perf_counter() - start)
        for n in range(count):
            os.unlink(directory / f"bench-{n}")
        fd = os.open(directory / ".bench-fsync", os.O_WRONLY | os.O_CREAT, 0o600)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            count += 1
        bare = count / (time.perf_counter() - start)
        os.close(fd)
        os.unlink(directory / ".bench-fsync")
    finally:
        os.close(dir_fd)
    return atomic, bare


def run_server(spool_dir: str, window: int, port_pipe, limit: int | None = None) -> None:
    """Child process: the SMPP server on a real spool until the parent closes the pipe."""
    from gsmgw.clients import ClientRegistry
    from gsmgw.smpp.server import SmppServer
    from gsmgw.spool.store import Spool, load_seal_key

    async def main() -> None:
        # Sealed as in the daemon: every accepted file carries its HMAC seal.
        spool = Spool(spool_dir, seal_key=load_seal_key(Path(spool_dir).parent))
        spool.ensure_dirs()
        client = {"name": "bench", "smpp": {"system_id": "bench", "password": "bench"}, "allow": ["*"]}
        if limit:
            client["limits"] = {"per_day": limit}
        registry = ClientRegistry.from_config({"clients": [client]})
        server = await SmppServer(spool=spool, registry=registry, port=0, window=window).start()
        port_pipe.send((server.port, os.getpid()))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(port_pipe.fileno(), stop.set)
        await stop.wait()
        port_pipe.send(list(spool.committer.recent))
        await server.close(timeout=2)

    asyncio.run(main())


class BenchClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.sequence = 1

    async def read_pdu(self) -> Pdu:
        header = await self.reader.readexactly(4)
        (length,) = struct.unpack(">I", header)
        return P.decode(header + await self.reader.readexactly(length - 4))

    def send(self, pdu: Pdu) -> None:
        self.writer.write(P.encode(pdu))

    def submit(self) -> int:
        self.sequence += 1
        self.send(Pdu(CommandId.SUBMIT_SM, self.sequence, 0, {
            "dest_addr_ton": 1, "destination_addr": "4915112345678",
            "short_message": b"benchmark message %d" % self.sequence,
        }))
        return self.sequence


async def client_main(port: int, count: int, window: int, timeout: float) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = BenchClient(reader, writer)
    client.send(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {"system_id": "bench", "password": "bench", "interface_version": 0x34}))
    assert (await client.read_pdu()).status == 0

    # Phase 1: throughput with `window` outstanding.
    sent_at: dict[int, float] = {}
    accepted = refused = 0
    start = time.perf_counter()
    for _ in range(min(window, count)):
        sent_at[client.submit()] = time.perf_counter()
    async with asyncio.timeout(timeout):
        while accepted + refused < count:
            resp = await client.read_pdu()
            if resp.command_id != CommandId.SUBMIT_SM_RESP:
                continue
            sent_at.pop(resp.sequence, None)
            if resp.status == 0:
                accepted += 1
            else:
                refused += 1
            if accepted + refused + len(sent_at) < count:
                sent_at[client.submit()] = time.perf_counter()
            await writer.drain()
    elapsed = time.perf_counter() - start
    rate = accepted / elapsed

    # Phase 2: latency at half that rate, paced.
    paced_rate = rate / 2
    paced_count = min(count, int(paced_rate * 5) + 1)  # about five seconds
    latencies: list[float] = []
    paced_refused = 0
    pending: dict[int, float] = {}
    slot_free = asyncio.Event()

    async def reader_task() -> None:
        nonlocal paced_refused
        answered = 0
        while answered < paced_count:
            resp = await client.read_pdu()
            if resp.command_id == CommandId.SUBMIT_SM_RESP and resp.sequence in pending:
                answered += 1
                took = time.perf_counter() - pending.pop(resp.sequence)
                if resp.status == 0:
                    latencies.append(took)
                else:
                    paced_refused += 1
                slot_free.set()

    reading = asyncio.create_task(reader_task())
    interval = 1.0 / paced_rate
    t0 = time.perf_counter()
    async with asyncio.timeout(timeout):
        for n in range(paced_count):
            delay = t0 + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while len(pending) >= window:  # a client honours its window, as the server does
                slot_free.clear()
                await slot_free.wait()
            pending[client.submit()] = time.perf_counter()
        await reading
    writer.close()
    latencies.sort()
    return {
        "accepted": accepted, "refused": refused, "elapsed": elapsed, "rate": rate,
        "paced_rate": paced_rate, "paced_count": paced_count, "paced_refused": paced_refused,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="submit_sm in the throughput phase")
    parser.add_argument("--window", type=int, default=10, help="outstanding submit_sm (client and server window)")
    parser.add_argument("--dir", default=None, help="directory for the spool (default: a temporary one in the cwd)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds per phase")
    parser.add_argument("--limit", type=int, default=None,
                        help="give the client limits: {per_day: N} (choose N above what the run sends)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-smpp-", dir=args.dir or os.getcwd()) as base:
        atomic, bare = fsync_ceiling(Path(base) / "fsync")
        print(f"fsync ceiling in {base}: {atomic:.0f} atomic file writes/s (tmp+fsync+rename+dir fsync), "
              f"{bare:.0f} bare fsyncs/s")
        parent_end, child_end = multiprocessing.Pipe()
        child = multiprocessing.get_context("fork").Process(
            target=run_server, args=(str(Path(base) / "spool"), args.window, child_end, args.limit),
            daemon=True,
        )
        child.start()
        try:
            if not parent_end.poll(30):
                print("the server did not start within 30 s", file=sys.stderr)
                return 1
            port, _pid = parent_end.recv()
            result = asyncio.run(client_main(port, args.count, args.window, args.timeout))
            parent_end.send("stop")
            batches = parent_end.recv() if parent_end.poll(10) else []
        finally:
            child.join(15)
            if child.is_alive():
                child.kill()  # our own child, by its handle
        written = len(os.listdir(Path(base) / "spool" / "outgoing"))
    mean_batch = statistics.mean(batches) if batches else 0
    print(f"throughput: {result['accepted']} submit_sm accepted ({result['refused']} refused) in "
          f"{result['elapsed']:.2f} s = {result['rate']:.0f}/s over one transceiver, window {args.window}"
          f"{f', limit {args.limit} per day' if args.limit else ''}; "
          f"{written} files in outgoing/; mean commit batch {mean_batch:.1f} messages")
    print(f"latency at {result['paced_rate']:.0f}/s ({result['paced_count']} submit_sm, "
          f"{result['paced_refused']} refused): "
          f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms")
    ok = result["rate"] >= 1000 and result["p99_ms"] < 50
    print("targets (>= 1000/s, p99 < 50 ms at half rate):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
