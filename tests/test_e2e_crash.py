"""kill -9 in a loop during a batch: the daemon (`python -m gsmgw run -c CONFIG`, a subprocess)
loses nothing, and a part reaches the network twice only if the log named it as a possible
duplicate (its submit was in flight at the kill). The simulator runs in this test's process.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsmgw.sim import SimNetwork
from gsmgw.spool.format import read_spool_file
from helpers import wait_for_text

KILLS = 4
MESSAGES = 24


def write_config(tmp_path: Path, network: SimNetwork) -> Path:
    lines = [
        f"spool: {tmp_path / 'spool'}",
        f"state: {tmp_path / 'state'}",
        "defaults: {report: false}",
        "modems:",
    ]
    for info in network.modems:
        lines += [f"  - name: {info.name}", f"    port: {info.path}"]
    path = tmp_path / "gsmgw.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_daemon(config: Path, log: Path) -> subprocess.Popen:
    with log.open("ab") as stream:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "gsmgw", "run", "-c", str(config)],
            stdout=stream,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


def wait_for_files(directory: Path, count: int, timeout: float) -> None:
    """The daemon is another process: watch its results by polling the directory (bounded)."""
    deadline = time.monotonic() + timeout
    while len([n for n in os.listdir(directory) if not n.startswith(".")]) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(os.listdir(directory))} of {count} files in {directory}")
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_9_in_a_loop_loses_nothing_and_duplicates_only_parts_in_flight(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=2, latency=0.02)
    network.start()
    log = tmp_path / "daemon.log"
    try:
        config = write_config(tmp_path, network)
        outgoing = tmp_path / "spool" / "outgoing"
        outgoing.mkdir(parents=True)
        expected = {}
        for i in range(MESSAGES):
            number = f"+4915100009{i:03d}"
            text = f"message {i} " + ("long " * 60 if i % 3 == 0 else "short")
            expected[number] = text.rstrip()
            (outgoing / f".m{i:02d}").write_text(f"To: {number}\n\n{text}\n")
            os.rename(outgoing / f".m{i:02d}", outgoing / f"m{i:02d}")
        total_parts_min = MESSAGES + (MESSAGES // 3) * 2

        seen = 0
        for kill in range(KILLS):
            daemon = start_daemon(config, log)
            try:
                # Kill at a different point of the batch each time, while parts are in flight.
                seen = len(network.wait_for_submissions(seen + 2 + kill, timeout=30))
                os.kill(daemon.pid, signal.SIGKILL)
            finally:
                daemon.wait(timeout=10)
            assert daemon.returncode == -signal.SIGKILL
        daemon = start_daemon(config, log)
        try:
            wait_for_files(tmp_path / "spool" / "sent", MESSAGES, timeout=60)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0

        spool = tmp_path / "spool"
        assert sorted(os.listdir(spool / "failed")) == []
        assert [n for n in os.listdir(spool / "checked") if not n.startswith(".")] == []
        assert [n for n in os.listdir(spool / "outgoing") if not n.startswith(".")] == []

        # Every message reached the network whole, through one SIM.
        submissions = network.submissions
        assert len(submissions) >= total_parts_min
        parts = collections.defaultdict(list)
        for record in submissions:
            seq = record["concat"]["seq"] if record["concat"] else 1
            parts[(record["to"], seq)].append(record)
        file_of = {}
        for name in os.listdir(spool / "sent"):
            if name.startswith("."):
                continue  # a temporary file of a write that a kill -9 cut short (recover() removes it later)
            sent = read_spool_file((spool / "sent" / name).read_bytes())
            file_of[sent.headers.get("To")] = name
            number = sent.headers.get("To")
            total = int(sent.headers.get("Parts"))
            assert all((number, seq) in parts for seq in range(1, total + 1)), name
        assert set(file_of) == set(expected)

        # Duplicates: only parts the log named.
        text = log.read_text(errors="replace")
        named = set(re.findall(r"possible duplicate: (\S+) part (\d+)", text))
        duplicates = {
            (file_of[number], str(seq)) for (number, seq), records in parts.items() if len(records) > 1
        }
        assert duplicates <= named, f"unannounced duplicates: {duplicates - named}"
        assert len(duplicates) <= KILLS * len(network.modems)  # one part in flight per modem
        assert "Traceback" not in text
    finally:
        network.stop()


@pytest.mark.slow
def test_sigterm_finishes_the_message_in_flight(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=1, latency=0.25)
    network.start()
    log = tmp_path / "daemon.log"
    try:
        config = write_config(tmp_path, network)
        outgoing = tmp_path / "spool" / "outgoing"
        outgoing.mkdir(parents=True)
        (outgoing / ".long").write_text("To: +4915100001000\n\n" + "four parts " * 55 + "\n")
        os.rename(outgoing / ".long", outgoing / "long")
        daemon = start_daemon(config, log)
        try:
            network.wait_for_submissions(1, timeout=30)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
        sent = read_spool_file((tmp_path / "spool" / "sent" / "long").read_bytes())
        assert sent.headers.get("Parts") == "4"
        assert len(sent.headers.get("Message_id").split(",")) == 4
        assert len(network.submissions) == 4
        assert "gsmgw stopped" in log.read_text()
    finally:
        network.stop()


@pytest.mark.slow
def test_sighup_reloads_limits(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    log = tmp_path / "daemon.log"
    try:
        config = write_config(tmp_path, network)
        original = config.read_text()
        config.write_text(original + "    limits: {per_minute: 1}\n")
        outgoing = tmp_path / "spool" / "outgoing"
        outgoing.mkdir(parents=True)
        for name in ("first", "second"):
            (outgoing / f".{name}").write_text(f"To: +4915100002000\n\n{name}\n")
            os.rename(outgoing / f".{name}", outgoing / name)
        daemon = start_daemon(config, log)
        try:
            network.wait_for_submissions(1, timeout=30)
            wait_for_text(log, r"second: queued", 10)
            with pytest.raises(TimeoutError):
                network.wait_for_submissions(2, timeout=1.5)  # over the limit: it waits
            config.write_text(original)  # the limit is gone
            daemon.send_signal(signal.SIGHUP)
            wait_for_text(log, r"SIGHUP: config .* reloaded", 10)
            network.wait_for_submissions(2, timeout=10)
            wait_for_files(tmp_path / "spool" / "sent", 2, timeout=10)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
    finally:
        network.stop()


def test_sms_written_before_a_crash_and_still_on_the_sim_is_not_written_again(tmp_path):
    """The crash window of SPOOL.md's inbound rule: the file is in incoming/, the daemon dies
    before AT+CMGD. At restart the sweep reads the SIM copy again; it is deleted, not saved twice."""
    import asyncio

    from gsmgw.config import simulation_config
    from gsmgw.daemon.app import Gateway
    from gsmgw.daemon.inbound import Inbound
    from gsmgw.spool.journal import SqliteJournal
    from gsmgw.spool.store import Spool

    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    try:
        network.inject_sms(0, "+4915112345678", "saved, then kill -9 before the delete")
        (stored,) = network.stored_messages(0, "SM")
        config = simulation_config(tmp_path / "spool", [m.path for m in network.modems])
        # What the killed daemon had done: the file written and fsynced, the SIM copy not deleted.
        spool = Spool(config.spool)
        spool.ensure_dirs()
        journal = SqliteJournal(Path(config.state) / "journal.sqlite")
        before = Inbound(spool, journal, None).accept_pdu(
            stored["pdu"], modem=config.modems[0].name, imsi=network.modems[0].imsi
        )
        journal.close()
        assert before.kind == "message"

        async def restart():
            gateway = Gateway(config, watch_poll_interval=0.5,
                              supervisor_options={"backoff_initial": 0.1, "health_timeout": 2.0})
            await gateway.start()
            try:
                deadline = time.monotonic() + 20
                while network.stored_messages(0, "SM"):
                    assert time.monotonic() < deadline, "the sweep did not delete the SIM copy in 20 s"
                    await asyncio.sleep(0.1)
            finally:
                await gateway.close()

        asyncio.run(restart())
        names = [n for n in os.listdir(tmp_path / "spool" / "incoming") if not n.startswith(".")]
        assert names == [before.name]
        body = read_spool_file((tmp_path / "spool" / "incoming" / names[0]).read_bytes()).body
        assert body.decode().strip() == "saved, then kill -9 before the delete"
    finally:
        network.stop()


STORM = 2000


@pytest.mark.slow
def test_kill_9_during_the_claim_of_a_backlog_loses_nothing(tmp_path):
    """A backlog in outgoing/ is claimed in slices while the modems send; a kill -9 in the middle
    of the claiming leaves files in outgoing/, checked/ (some not yet in the journal) and sent/.
    After a restart every file is sent, each recipient once unless the log named a duplicate."""
    network = SimNetwork(tmp_path / "sim", modems=3, latency=0.01)
    network.start()
    log = tmp_path / "daemon.log"
    try:
        config = write_config(tmp_path, network)
        spool = tmp_path / "spool"
        outgoing = spool / "outgoing"
        outgoing.mkdir(parents=True)
        for i in range(STORM):
            (outgoing / f"s{i:05d}").write_text(f"To: +491510{i:07d}\n\nbacklog {i}\n")
        daemon = start_daemon(config, log)
        try:
            network.wait_for_submissions(1, timeout=60)
            left = len(os.listdir(outgoing))
            os.kill(daemon.pid, signal.SIGKILL)
        finally:
            daemon.wait(timeout=10)
        assert 0 < left < STORM, "the kill did not fall into the claiming"
        daemon = start_daemon(config, log)
        try:
            wait_for_files(spool / "sent", STORM, timeout=240)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        assert [n for n in os.listdir(spool / "failed")] == []
        assert [n for n in os.listdir(spool / "checked") if not n.startswith(".")] == []
        assert [n for n in os.listdir(outgoing) if not n.startswith(".")] == []
        by_number = collections.Counter(record["to"] for record in network.submissions)
        assert set(by_number) == {f"+491510{i:07d}" for i in range(STORM)}
        named = set(re.findall(r"possible duplicate: (s\d+) part", log.read_text(errors="replace")))
        repeated = {f"s{int(number[-7:]):05d}" for number, n in by_number.items() if n > 1}
        assert repeated <= named, f"unannounced duplicates: {repeated - named}"
    finally:
        network.stop()
