#!/usr/bin/env python3
"""Web console benchmark: page times with a long history, live latency, and the SIM pool's
utilisation with 50 open console pages, measured in the same run.

1. history: the message index of a `gsmgw run --simulate` gateway holds 100,000 sent and 100,000
   received messages (5,000 numbers over 30 days; one number has 600 of them), written through
   the index's own `record` as the daemon writes it; a contact per number, and a campaign of
   5,000 recipients among the sent messages;
2. pages: p50/p95/max over N requests each of the dashboard (`/`), `/conversations` and a
   500-message thread, signed in, over HTTP on loopback; and of the long lists a person pages
   through: `/messages` (its first page, filtered by state and by number, and the next N pages
   by its Older link), `/conversations` deep in (offset) and searched, `/contacts`, `/campaigns`,
   the campaign's page and its CSV export;
3. live: a page follows a thread over server-sent events while messages to that number go out;
   the time from the daemon announcing a state change to the page's notice, and to the page
   holding the new state (notice + fetch of the live part);
4. pool: bench_pool.py's gsmgw run (burst utilisation, drop->submit latency) three times: the
   plain daemon, the daemon with the console but no page open, and with 50 pages open that
   follow the dashboard or a conversation list and fetch their live part on every notice.

    .venv/bin/python bench/bench_web.py                  # all of it (about 4 minutes)
    .venv/bin/python bench/bench_web.py --skip-pool      # 1-3 only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_pool  # noqa: E402
from gsmgw.passwords import hash_password  # noqa: E402
from gsmgw.spool.index import IN, OUT, RECEIVED, Campaign, Contact, IndexedMessage, MessageIndex  # noqa: E402

PYTHON = sys.executable
PASSWORD = "bench-password"
TOKEN = "bench-token-0123456789"
HOT = "+4915100000000"  # the number with the long thread
CAMPAIGN = "bench-campaign"
CAMPAIGN_SIZE = 5_000


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(work: Path, port: int) -> Path:
    (work / "admin.pw").write_text(hash_password(PASSWORD, ln=10) + "\n")
    (work / "admin.pw").chmod(0o600)
    config = {
        "http": {"listen": f"127.0.0.1:{port}"},
        "web": {"enabled": True},
        "defaults": {"report": True},
        "clients": [
            {"name": "admin", "role": "admin", "web": {"password_file": str(work / "admin.pw")}, "allow": ["*", "modem:*"]},
            {"name": "app", "token": TOKEN, "allow": ["+49*"]},
        ],
    }
    path = work / "gsmgw.yaml"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


# -- 1. the history ----------------------------------------------------------------------------

def fill_history(state: Path, sent: int, received: int, numbers: int, hot: int) -> float:
    index = MessageIndex(state / "index.sqlite")
    rng = random.Random(1)
    now = time.time()
    pool = [f"+4915{n:09d}" for n in range(1, numbers)]
    started = time.monotonic()
    batch: list[IndexedMessage] = []

    def flush():
        index.record(batch)
        batch.clear()

    campaign: list[tuple[str, str]] = []  # (message id, number) of the campaign's recipients

    for n in range(sent + received):
        outbound = n < sent
        number = HOT if n % ((sent + received) // hot) == 0 else rng.choice(pool)
        at = now - rng.uniform(60, 30 * 86400)
        if outbound:
            state = rng.choices(["delivered", "sent", "failed"], [90, 8, 2])[0]
            in_campaign = n < CAMPAIGN_SIZE
            if in_campaign:
                campaign.append((f"hist-out-{n:07d}", number))
            batch.append(IndexedMessage(OUT, f"hist-out-{n:07d}", number, state, at, client="app",
                                        campaign=CAMPAIGN if in_campaign else None,
                                        modem=f"modem{n % 2}", text=f"Your appointment #{n} is confirmed for tomorrow.",
                                        parts=1, sent=at + 2, delivered=at + 5 if state == "delivered" else None,
                                        finished=at + 5 if state == "failed" else None,
                                        fail_reason="failed 65 (no route)" if state == "failed" else None))
        else:
            batch.append(IndexedMessage(IN, f"modem{n % 2}-hist-{n:07d}", number, RECEIVED, at, modem=f"modem{n % 2}",
                                        text=f"Thanks, see you then ({n})", parts=1))
        if len(batch) >= 5000:
            flush()
    flush()
    index.save_contacts([Contact(number, f"Contact {position}", "") for position, number in enumerate(pool)], now)
    index.create_campaign(Campaign(CAMPAIGN, "Bench campaign", "app", "Your appointment is confirmed.", now - 86400,
                                   None, "preparing", len(campaign)), [(number, "") for _, number in campaign])
    index.campaign_queued(CAMPAIGN, [message_id for message_id, _ in campaign])
    index.set_meta("built", str(now))
    index.set_meta("cursor", str(now))
    index.close()
    return time.monotonic() - started


class Daemon:
    def __init__(self, work: Path, config: Path, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(work / "daemon.log", "wb")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gsmgw", "run", "--simulate", "2", "--spool", str(work / "spool"), "-c", str(config),
             "--latency", "0.01"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and "modem1: starting -> ready" not in text:
            time.sleep(0.2)
            text = (work / "daemon.log").read_text(errors="replace")
        if "modem1: starting -> ready" not in text:
            raise RuntimeError(f"the gateway did not start:\n{text[-2000:]}")

    def stop(self) -> None:
        bench_pool.stop_process(self.process, 60)
        self.log.close()


async def sign_in(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(base + "/login") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
    async with session.post(base + "/login", data={"user": "admin", "password": PASSWORD, "csrf": token}) as response:
        if "Sign out" not in await response.text():
            raise RuntimeError("cannot sign in to the console")


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  max {ordered[-1] * 1000:6.1f} ms"


# -- 2. page times -----------------------------------------------------------------------------

async def page_times(base: str, requests: int) -> dict[str, list[float]]:
    pages = {
        "dashboard /": "/",
        "/conversations": "/conversations",
        f"thread {HOT} (500 messages)": f"/conversations/{HOT}",
        "/messages (newest 100)": "/messages",
        "/messages?state=failed": "/messages?state=failed",
        f"/messages?number={HOT}": f"/messages?number=%2B{HOT[1:]}",
        "/conversations?offset=2500 (page 51)": "/conversations?offset=2500",
        "/conversations?q=appointment #4 (text)": "/conversations?q=appointment+%234",
        "/contacts (5,000 contacts)": "/contacts",
        "/campaigns": "/campaigns",
        f"/campaigns/{{id}} ({CAMPAIGN_SIZE:,} recipients)": f"/campaigns/{CAMPAIGN}",
        f"/campaigns/{{id}}/export.csv ({CAMPAIGN_SIZE:,} rows)": f"/campaigns/{CAMPAIGN}/export.csv",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    older = "/messages: next page by Older (keyset)"
    times[older] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, base)
        async with session.get(base + f"/conversations/{HOT}") as response:
            shown = (await response.text()).count('class="bubble ')
        print(f"  the thread shows {shown} messages")
        for _ in range(requests):
            for name, path in pages.items():
                started = time.perf_counter()
                async with session.get(base + path) as response:
                    await response.read()
                    assert response.status == 200, (path, response.status)
                times[name].append(time.perf_counter() - started)
        # Paging back through the history: each Older link from the newest page on.
        path = "/messages"
        for _ in range(requests):
            async with session.get(base + path) as response:
                html = await response.text()
            link = re.search(r'<a href="(/messages\?[^"]+)">Older</a>', html)
            if link is None:
                break
            path = link.group(1).replace("&amp;", "&")
            started = time.perf_counter()
            async with session.get(base + path) as response:
                await response.read()
                assert response.status == 200, (path, response.status)
            times[older].append(time.perf_counter() - started)
    return times


# -- 3. live latency ---------------------------------------------------------------------------

async def live_latency(base: str, messages: int) -> tuple[list[float], list[float]]:
    number = "+4915199990001"
    notice_delays, shown_delays = [], []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, base)
        async with session.get(base + "/events", params={"topic": f"thread:{number}"}) as stream:
            pending: dict[str, str] = {}

            async def reader():
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if not line.startswith("data: "):
                        continue
                    notice = json.loads(line[6:])
                    received = time.time()
                    async with session.get(base + f"/conversations/{number}?fragment=1") as response:
                        html = await response.text()
                    shown = time.time()
                    if notice.get("announced"):
                        notice_delays.append(received - notice["announced"])
                        states = re.findall(r'data-id="([^"]+)".*?data-state="(\w+)"', html, re.S)
                        if any(pending.get(mid) != state for mid, state in states if mid in pending):
                            shown_delays.append(shown - notice["announced"])
                        pending.update({mid: state for mid, state in states if mid in pending})

            task = asyncio.ensure_future(reader())
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for n in range(messages):
                async with session.post(base + "/api/v1/messages", json={"to": number, "text": f"live {n}"},
                                        headers=headers) as response:
                    answer = await response.json()
                pending[answer["messages"][0]["id"]] = "none"
                await asyncio.sleep(0.4)
            await asyncio.sleep(2)
            task.cancel()
    return notice_delays, shown_delays


# -- 4. the pool with open pages ---------------------------------------------------------------

class ConsolePages:
    """`count` open console pages in a thread of their own: half follow the dashboard, half the
    conversation list, and each fetches its live part on every notice, as the browser does."""

    def __init__(self, base: str, count: int):
        self.base = base
        self.count = count
        self.fetches = 0
        self.notices = 0
        self._loop = asyncio.new_event_loop()
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            for _ in range(120):
                try:
                    await sign_in(session, self.base)
                    break
                except (aiohttp.ClientError, AttributeError):
                    await asyncio.sleep(0.5)
            tasks = [asyncio.ensure_future(self._page(session, n)) for n in range(self.count)]
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _page(self, session: aiohttp.ClientSession, n: int) -> None:
        topic, part = ("dashboard", "/?fragment=1") if n % 2 == 0 else ("conversations", "/conversations?fragment=1")
        async with session.get(self.base + f"/events?topic={topic}", timeout=aiohttp.ClientTimeout(total=None)) as stream:
            async for raw in stream.content:
                if raw.startswith(b"data: "):
                    self.notices += 1
                    async with session.get(self.base + part) as response:
                        await response.read()
                    self.fetches += 1

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def console_gateway(pages: int):
    class GsmgwConsole(bench_pool.Gsmgw):
        name = f"gsmgw+{pages} pages" if pages else "gsmgw+console"

        def __init__(self, work: Path, ports: list[str], log) -> None:
            self.spool = work / "spool"
            self.outgoing = self.spool / "outgoing"
            self.outgoing.mkdir(parents=True, exist_ok=True)
            port = free_port()
            (work / "admin.pw").write_text(hash_password(PASSWORD, ln=10) + "\n")
            (work / "admin.pw").chmod(0o600)
            config = {
                "spool": str(self.spool), "state": str(work / "state"), "defaults": {"report": False},
                "modems": [{"name": f"gsm{i}", "port": port_} for i, port_ in enumerate(ports)],
                "http": {"listen": f"127.0.0.1:{port}"}, "web": {"enabled": True},
                "clients": [{"name": "admin", "role": "admin", "web": {"password_file": str(work / "admin.pw")},
                             "allow": ["*", "modem:*"]}],
            }
            config_path = work / "gsmgw.yaml"
            config_path.write_text(json.dumps(config))
            config_path.chmod(0o600)
            self.process = subprocess.Popen([PYTHON, "-m", "gsmgw", "run", "-c", str(config_path)],
                                            stdout=log, stderr=subprocess.STDOUT)
            self.pages = ConsolePages(f"http://127.0.0.1:{port}", pages) if pages else None

        def stop(self) -> None:
            if self.pages is not None:
                self.pages.stop()
                print(f"  {self.name}: {self.pages.notices} notices, {self.pages.fetches} live parts fetched")
            super().stop()

    return GsmgwConsole


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sent", type=int, default=100_000)
    parser.add_argument("--received", type=int, default=100_000)
    parser.add_argument("--numbers", type=int, default=5_000)
    parser.add_argument("--hot", type=int, default=600, help="messages of the long thread")
    parser.add_argument("--requests", type=int, default=50, help="requests per page")
    parser.add_argument("--live", type=int, default=20, help="messages for the live latency")
    parser.add_argument("--pages", type=int, default=50, help="open pages during the pool burst")
    parser.add_argument("--skip-pool", action="store_true")
    parser.add_argument("--modems", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gsmgw-bench-web-"))
    try:
        work = root / "history"
        (work / "spool" / ".state").mkdir(parents=True)
        port = free_port()
        config = write_config(work, port)
        print(f"filling the index: {args.sent} sent + {args.received} received, {args.numbers} numbers ...", flush=True)
        seconds = fill_history(work / "spool" / ".state", args.sent, args.received, args.numbers, args.hot)
        print(f"  {args.sent + args.received} rows in {seconds:.1f} s")
        daemon = Daemon(work, config, port)
        try:
            times = asyncio.run(page_times(daemon.base, args.requests))
            notices, shown = asyncio.run(live_latency(daemon.base, args.live))
        finally:
            daemon.stop()

        results = []
        if not args.skip_pool:
            pool_args = argparse.Namespace(modems=args.modems, latency=args.latency, messages=args.messages,
                                           probes=args.probes, idle=5.0, timeout=300.0)
            for pages in (None, 0, args.pages):
                kind = "gsmgw" if pages is None else f"console-{pages}"
                if pages is not None:
                    bench_pool.GATEWAYS[kind] = console_gateway(pages)
                print(f"pool run: {kind} ...", flush=True)
                results.append(bench_pool.run_gateway(kind, pool_args, root))

        print()
        print(f"history: {args.sent} sent + {args.received} received messages, {args.numbers} numbers; "
              f"{args.requests} requests per page")
        for name, values in times.items():
            print(f"  {name:<50} {percentiles(values)}")
        if notices:
            print(f"live: announced -> notice on the page       {percentiles(notices)}")
        if shown:
            print(f"live: announced -> new state on the page    {percentiles(shown)}")
        if results:
            print(f"pool: {args.modems} modems, {args.latency} s submit latency, burst of {args.messages}")
            for r in results:
                print(f"  {r.gateway:<18} utilisation {bench_pool.fmt(r.utilisation, '{:.1%}'):>7}  "
                      f"burst {bench_pool.fmt(r.burst_seconds, '{:.1f} s'):>8}  "
                      f"median drop->submit {bench_pool.fmt(r.median_latency, '{:.3f} s')}"
                      + (f"  ({r.note})" if r.note else ""))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
