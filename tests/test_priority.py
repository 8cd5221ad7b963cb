"""A `Priority: high` message never waits behind a backlog (gsmgw.daemon.claimer).

Against simulated modems on ptys. The assertions are about order, never time: the alert is sent
while the backlog's files still wait in outgoing/ to be claimed, and before the backlog drains.
How fast that is lives in bench/bench_priority.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from pathlib import Path

import aiohttp

from gsmgw.config import ClientConfig, HttpConfig
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageSent
from gsmgw.spool.format import declared_priority, make_outgoing
from gsmgw.spool.store import Spool
from helpers import free_port
from test_e2e_gateway import run_scenario

BACKLOG = 1000
NUMBER = "+4915190000{:03d}"
TOKEN = "priority-test-token"


def fill(outgoing: Path, count: int) -> None:
    """A backlog that has waited a while: named (and timed) as the doors would have, a year ago."""
    outgoing.mkdir(parents=True, exist_ok=True)
    past = time.time() - 365 * 86400
    for index in range(count):
        path = outgoing / f"20251201-000000-{index:06d}"
        path.write_text(f"To: {NUMBER.format(index % 1000)}\n\nbacklog {index}\n")
        os.utime(path, (past, past))


def drop(outgoing: Path, name: str, content: str) -> None:
    temporary = outgoing / f".{name}.tmp"
    temporary.write_text(content)
    os.rename(temporary, outgoing / name)


class SendLog:
    """Every MessageSent in order, with how many files still waited in outgoing/ when it came."""

    def __init__(self, gateway: Gateway, outgoing: Path) -> None:
        self.outgoing = outgoing
        self.sent: list[tuple[str, int]] = []
        self.changed = asyncio.Event()
        gateway.bus.subscribe(self._record)

    def _record(self, event) -> None:
        if isinstance(event, MessageSent):
            waiting = sum(1 for name in os.listdir(self.outgoing) if not name.startswith("."))
            self.sent.append((event.id, waiting))
            self.changed.set()

    async def until(self, predicate, timeout: float = 30.0) -> None:
        async def wait():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)

    def position(self, name: str) -> tuple[int, int]:
        """(messages sent before `name`, backlog files in outgoing/ when it was sent)."""
        for index, (sent, waiting) in enumerate(self.sent):
            if sent == name:
                return index, waiting
        raise AssertionError(f"{name} was not sent; sent: {self.sent[-5:]}")


def run_gateway(tmp_path, scenario, *, configure=None, leftovers=None) -> None:
    """test_e2e_gateway's run, with `leftovers` put into the spool before the start and a
    SendLog for the scenario: scenario(gateway, log)."""
    if leftovers is not None:
        leftovers(tmp_path / "spool")

    async def with_log(run):
        await scenario(run.gateway, SendLog(run.gateway, run.spool / "outgoing"))

    run_scenario(tmp_path, with_log, configure=configure)


def test_declared_priority_reads_the_headers_only():
    assert declared_priority(b"To: +4915112345678\nPriority: HIGH \n\ntext\n") == "high"
    assert declared_priority(b"To: +4915112345678\r\npriority:low\r\n\r\ntext\r\n") == "low"
    assert declared_priority(b"To: +4915112345678\n\ntext\n") == "normal"
    assert declared_priority(b"To: +4915112345678\n\nPriority: high\n") == "normal"  # the text
    assert declared_priority(b"To: +4915112345678\nPriority: urgent\n\ntext\n") == "normal"  # the claim fails it
    assert declared_priority(b"To: +4915112345678\nPriority: high") == "normal"  # no blank line: not whole


def test_the_doors_writes_announce_their_high_priority_files(tmp_path):
    """Every way a door writes into outgoing/ tells `on_high_priority` the names of the high
    files, once they are durable, and only those."""
    spool = Spool(tmp_path)
    spool.ensure_dirs()
    announced: list[str] = []
    spool.on_high_priority = announced.extend
    high = make_outgoing(to="+4915112345678", text="alert", priority="high")
    normal = make_outgoing(to="+4915112345678", text="chat")
    expected = [spool.submit(high)]
    spool.submit(normal)
    expected += [name for name in spool.submit_each([normal, high]) if name][1:]
    expected += spool.submit_many([normal, high])[1:]
    expected.append(spool.write_new("outgoing", high, name="by-name"))
    spool.write_new("outgoing", normal, name="by-name-normal")
    assert announced == expected
    assert all((tmp_path / "outgoing" / name).exists() for name in announced)
    assert spool.declared_priority(expected[0]) == "high"
    assert spool.declared_priority("by-name-normal") == "normal"


def test_an_alert_dropped_behind_1000_files_is_sent_before_them(tmp_path):
    async def scenario(gateway, log):
        outgoing = Path(gateway.config.spool) / "outgoing"
        await log.until(lambda: log.sent)  # the backlog is being sent
        drop(outgoing, "urgent-alert", f"To: {NUMBER.format(999)}\nPriority: high\n\ndisk full\n")
        await log.until(lambda: any(name == "urgent-alert" for name, _ in log.sent))
        before, waiting = log.position("urgent-alert")
        assert waiting > 0, "the alert waited until the whole backlog was claimed"
        assert before < BACKLOG

    run_gateway(tmp_path, scenario, leftovers=lambda spool: fill(spool / "outgoing", BACKLOG))


def test_an_alert_over_http_during_a_campaign_is_sent_before_it(tmp_path):
    """The console writes a campaign (one file per recipient, `submit_many`); an alert posted
    over HTTP right after it takes the next free modem."""
    port = free_port()

    def configure(config):
        return dataclasses.replace(
            config,
            http=HttpConfig(listen_host="127.0.0.1", listen_port=port),
            clients=(ClientConfig(name="app", token=TOKEN, allow=("+49*",)),),
        )

    async def scenario(gateway, log):
        campaign = [
            make_outgoing(to=NUMBER.format(index % 1000), text=f"campaign {index}", extra={"Campaign": "c1"})
            for index in range(BACKLOG)
        ]
        await asyncio.to_thread(Spool(gateway.config.spool).submit_many, campaign)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            async with http.post(f"http://127.0.0.1:{port}/api/v1/messages",
                                 json={"to": NUMBER.format(998), "text": "db down", "priority": "high"}) as answer:
                assert answer.status == 202, await answer.text()
                (accepted,) = (await answer.json())["messages"]
        await log.until(lambda: any(name == accepted["id"] for name, _ in log.sent))
        before, waiting = log.position(accepted["id"])
        assert waiting > 0, "the alert waited until the whole campaign was claimed"
        assert before < BACKLOG

    run_gateway(tmp_path, scenario, configure=configure)


def test_a_high_file_written_from_a_doors_thread_is_claimed_first(tmp_path):
    """The in-process lane: a door's writer thread announces the file (no watcher needed)."""
    async def scenario(gateway, log):
        await log.until(lambda: log.sent)
        data = make_outgoing(to=NUMBER.format(997), text="from a door", priority="high")
        written: list[str] = []
        thread = threading.Thread(target=lambda: written.append(gateway.spool.submit(data)))
        thread.start()
        await asyncio.to_thread(thread.join)
        await log.until(lambda: any(name == written[0] for name, _ in log.sent))
        before, waiting = log.position(written[0])
        assert waiting > 0 and before < BACKLOG

    run_gateway(tmp_path, scenario, leftovers=lambda spool: fill(spool / "outgoing", BACKLOG))


def test_a_restart_sends_the_high_file_of_a_backlog_first(tmp_path):
    """What a stop left in outgoing/: 1,000 files and one alert, whose name sorts last. It is
    the first message sent after the start."""
    def leftovers(spool: Path) -> None:
        fill(spool / "outgoing", BACKLOG)
        drop(spool / "outgoing", "zz-alert", f"To: {NUMBER.format(999)}\nPriority: high\n\nstill down\n")
        past = time.time() - 60  # written before the stop, not just now
        os.utime(spool / "outgoing" / "zz-alert", (past, past))

    async def scenario(gateway, log):
        await log.until(lambda: len(log.sent) >= 3)
        assert log.sent[0][0] == "zz-alert", log.sent[:3]

    run_gateway(tmp_path, scenario, leftovers=leftovers)
