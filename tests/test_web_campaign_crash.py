"""A 5,000-recipient campaign is queued all or none, also when the daemon is killed (SIGKILL)
while it writes the campaign's files: after the restart the spool holds every message of the
campaign or none, and the console says which."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import aiohttp
import pytest

from gsmgw.passwords import hash_password
from gsmgw.spool.store import Spool
from helpers import free_port, stop_process, wait_for_text

pytestmark = pytest.mark.slow

RECIPIENTS = 5000
PASSWORD = "anna-password"


def start(root: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gsmgw", "run", "--simulate", "2", "--spool", str(root / "spool"),
             "-c", str(root / "gsmgw.yaml"), "--latency", "0.005"], stdout=out, stderr=subprocess.STDOUT)


def campaign_files(spool: Path) -> int:
    """Messages of the campaign anywhere in the spool (each recipient's file counted once)."""
    names = set()
    for directory in ("outgoing", "checked", "sent", "failed"):
        for entry in os.scandir(spool / directory):
            if entry.name.startswith(".") or entry.name.endswith((".LOCK", ".tmp")):
                continue
            with open(entry.path, "rb") as handle:
                if b"\nCampaign: " in handle.read(4096):
                    names.add(entry.name)
    return len(names)


async def signed_in(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(base + "/login") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
    async with session.post(base + "/login", data={"user": "anna", "password": PASSWORD, "csrf": token,
                                                   "next": "/campaigns"}) as response:
        page = await response.text()
        assert response.status == 200, page
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def start_campaign(base: str, csv: bytes) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        csrf = await signed_in(session, base)
        form = aiohttp.FormData()
        for key, value in (("csrf", csrf), ("name", "Big one"), ("message", "Hello {name}"), ("recipients", "")):
            form.add_field(key, value)
        form.add_field("file", csv, filename="big.csv", content_type="text/csv")
        try:
            async with session.post(base + "/campaigns", data=form) as response:
                await response.read()
        except aiohttp.ClientError:
            pass  # the daemon was killed while answering: what matters is the spool


def watch_and_kill(process: subprocess.Popen, spool: Path, moment: str, timeout: float) -> bool:
    """SIGKILL the daemon `during` the campaign's all-or-nothing write (its names are reserved by
    .LOCK files in outgoing/), or just `after` it (the locks are gone: the batch is committed, the
    console may not have recorded it yet). True when it was killed at that moment."""
    deadline = time.monotonic() + timeout
    outgoing = spool / "outgoing"
    seen = False
    while time.monotonic() < deadline:
        locked = any(name.endswith(".LOCK") for name in os.listdir(outgoing))
        seen = seen or locked
        if (moment == "during" and locked) or (moment == "after" and seen and not locked):
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            return True
        time.sleep(0.005)
    return False


@pytest.mark.timeout(400)
@pytest.mark.parametrize("moment", ["during", "after"])
def test_a_kill_while_a_5000_recipient_campaign_is_queued_leaves_all_or_none(tmp_path, moment):
    password = tmp_path / "anna.pw"
    password.write_text(hash_password(PASSWORD, ln=8) + "\n")
    os.chmod(password, 0o600)
    port = free_port()
    (tmp_path / "gsmgw.yaml").write_text(textwrap.dedent(f"""\
        http: {{listen: "127.0.0.1:{port}"}}
        clients:
          - name: anna
            web: {{password_file: {password}}}
            allow: ["+49*"]
        """))
    base = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    log = tmp_path / "daemon.log"
    csv = ("number,name\n" + "".join(f"+4915{n:09d},P{n}\n" for n in range(RECIPIENTS))).encode()

    process = start(tmp_path, port, log)
    try:
        # Both: a simulated modem may be ready before the HTTP listener is (the daemon starts the
        # listeners after the workers), and "gsmgw started" comes after the listeners.
        wait_for_text(log, r"modem1: starting -> ready", 30)
        wait_for_text(log, r"gsmgw started", 60)
        sender = asyncio.new_event_loop()
        task = sender.run_in_executor(None, lambda: asyncio.run(start_campaign(base, csv)))
        killed = watch_and_kill(process, spool, moment, 180)
        sender.run_until_complete(asyncio.wait_for(task, 180))
        sender.close()
        assert killed, "the campaign's batch was never seen in outgoing/"
    finally:
        if process.poll() is None:
            stop_process(process, 30)

    Spool(spool).recover()  # what the next start does first, before it takes any file
    found = campaign_files(spool)
    assert found in (0, RECIPIENTS), f"{found} of {RECIPIENTS} campaign messages after the kill"
    if moment == "after":
        assert found == RECIPIENTS  # the batch was committed before the kill: all of it is there

    process = start(tmp_path, port, log)
    try:
        wait_for_text(log, r"(?s)gsmgw started.*gsmgw started", 30)

        async def campaign_state() -> str:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                await signed_in(session, base)
                async with session.get(base + "/campaigns") as response:
                    page = await response.text()
            return re.search(r"Big one</a></td>.*?<td>(\d+)</td><td>\d+</td><td>\d+</td><td>\d+</td><td>([^<]+)</td>",
                             page, re.S).groups()

        recipients, state = asyncio.run(campaign_state())
        assert int(recipients) == RECIPIENTS
        assert state in ("sending", "waiting for reports", "finished") if found else state == "not queued"
    finally:
        stop_process(process, 60)
