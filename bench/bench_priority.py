#!/usr/bin/env python3
"""Priority benchmark: how long a `Priority: high` message waits behind a backlog.

Simulated modems (`gsmgw simulate`, fixed submit latency) and a real `gsmgw run`, in two
scenarios:

1. files: `--files` message files (100,000) are in outgoing/ when gsmgw starts. Once the first
   of them is submitted, an alert is dropped as a file (`Priority: high`, renamed into
   outgoing/), then one is sent over HTTP (`"priority": "high"`);
2. campaign: gsmgw runs idle; a `--campaign`-recipient campaign (5,000 files written at once
   with `Spool.submit_many`, as the web console writes one) is queued, and shortly after an
   alert is dropped as a file, then one is sent over HTTP.

Printed per alert (`--alerts` of each door, alternating, 0.5 s apart): the time from its drop
(the rename, or the start of the POST) to its submit (the simulator's log time minus the submit
latency), which includes the wait for a modem to be free (up to the latency); how many files
still waited in outgoing/ at the drop; how many backlog messages were submitted after the drop
and before it (it takes the next free modem: at most about one per modem); and the backlog's
throughput in submits per second over the `--window` seconds from the first alert's drop (the
modems' ceiling is modems / latency).

`--before REF` runs the same scenarios with the gsmgw package of the git ref REF (e.g. the
commit before a change) next to this checkout's, so both columns come from one run:

    .venv/bin/python bench/bench_priority.py --before main
    .venv/bin/python bench/bench_priority.py --files 20000 --campaign 2000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pool import SINK_PREFIX, Simulator, record_time, stop_process  # noqa: E402

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Alert:
    door: str
    waiting: int  # files in outgoing/ at the drop
    seconds: float | None  # drop -> submit; None: not submitted within the timeout
    accepted: float | None = None  # HTTP: drop -> 202
    overtaken: int | None = None  # backlog messages submitted between the drop and the alert


@dataclass
class Run:
    label: str
    scenario: str
    alerts: list[Alert] = field(default_factory=list)
    throughput: float | None = None
    note: str = ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Daemon:
    """`gsmgw run` from `package_root` (a directory holding the gsmgw package) on `ports`."""

    def __init__(self, work: Path, ports: list[str], package_root: Path) -> None:
        self.spool = work / "spool"
        self.outgoing = self.spool / "outgoing"
        self.outgoing.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        config = {
            "spool": str(self.spool),
            "state": str(work / "state"),
            "defaults": {"report": False},
            "modems": [{"name": f"gsm{i}", "port": port} for i, port in enumerate(ports)],
            "http": {"listen": f"127.0.0.1:{self.port}", "metrics": True},
            "clients": [{"name": "bench", "token": self.token, "allow": ["+*"]}],
        }
        self.config = work / "gsmgw.yaml"
        self.config.write_text(json.dumps(config))  # JSON is YAML
        self.log = open(work / "gateway.log", "wb")
        environment = dict(os.environ, PYTHONPATH=str(package_root))
        self.process = subprocess.Popen([PYTHON, "-m", "gsmgw", "run", "-c", str(self.config)], cwd=package_root,
                                        env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def waiting(self) -> int:
        return sum(1 for name in os.listdir(self.outgoing) if not name.startswith("."))

    def drop_alert(self, name: str, text: str) -> float:
        staging = self.spool.parent / ".staging"
        staging.mkdir(exist_ok=True)
        (staging / name).write_text(f"To: {SINK_PREFIX}999\nPriority: high\n\n{text}\n")
        dropped = time.time()
        os.rename(staging / name, self.outgoing / name)
        return dropped

    def post_alert(self, text: str) -> tuple[float, float]:
        body = json.dumps({"to": f"{SINK_PREFIX}998", "text": text, "priority": "high"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/messages", data=body, method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        dropped = time.time()
        with urllib.request.urlopen(request, timeout=30) as answer:
            if answer.status != 202:
                raise RuntimeError(f"POST /api/v1/messages answered {answer.status}")
        return dropped, time.time() - dropped

    def wait_http(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gsmgw's /healthz did not answer 200 within {timeout:.0f} s")

    def stop(self) -> None:
        stop_process(self.process, timeout=60)
        self.log.close()


def submitted(simulator: Simulator, text: str, after: int, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        records = simulator.records()
        for record in records[after:]:
            if record.get("text") == text:
                return record
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def measure(run: Run, daemon: Daemon, simulator: Simulator, args, door: str, serial: int) -> float:
    """Drop one alert through `door`; record drop -> submit; return the drop time."""
    text = f"ALERT {run.label} {run.scenario} {door} {serial}"
    seen = len(simulator.records())
    waiting = daemon.waiting()
    accepted = None
    if door == "file":
        dropped = daemon.drop_alert(f"urgent-{serial}", text)
    else:
        dropped, accepted = daemon.post_alert(text)
    record = submitted(simulator, text, seen, args.timeout)
    seconds = overtaken = None
    if record is not None:
        seconds = record_time(record) - args.latency - dropped
        overtaken = sum(1 for other in simulator.records()
                        if not str(other.get("text", "")).startswith("ALERT")
                        and dropped < record_time(other) - args.latency < record_time(record) - args.latency)
    run.alerts.append(Alert(door, waiting, seconds, accepted, overtaken))
    return dropped


def alerts(run: Run, daemon: Daemon, simulator: Simulator, args) -> Run:
    """`--alerts` rounds of an alert as a file, then one over HTTP, 0.5 s apart; the backlog's
    throughput from the first drop. After an alert that timed out, the rest are skipped."""
    first = None
    for serial in range(1, 2 * args.alerts + 1):
        dropped = measure(run, daemon, simulator, args, "file" if serial % 2 else "http", serial)
        first = first or dropped
        if run.alerts[-1].seconds is None:
            run.note = "the alerts after one that was not sent were skipped"
            break
        time.sleep(0.5)
    run.throughput = throughput(simulator, first, args.window)
    return run


def throughput(simulator: Simulator, start: float, window: float) -> float:
    """Backlog submits per second in [start, start + window] (waits for the window to pass)."""
    remaining = start + window + 1.0 - time.time()  # and a second for the log to catch up
    if remaining > 0:
        time.sleep(remaining)
    count = sum(
        1 for record in simulator.records()
        if not str(record.get("text", "")).startswith("ALERT")
        and start <= record_time(record) <= start + window
    )
    return count / window


def scenario_files(label: str, package_root: Path, args, root: Path) -> Run:
    run = Run(label, "files")
    work = root / f"{label}-files"
    work.mkdir()
    simulator = Simulator(work / "sim", args.modems, args.latency)
    outgoing = work / "spool" / "outgoing"
    outgoing.mkdir(parents=True)
    for index in range(args.files):
        with open(outgoing / f"backlog-{index:07d}", "w", encoding="ascii") as handle:
            handle.write(f"To: {SINK_PREFIX}{index % 1000:03d}\n\nbacklog {index}\n")
    daemon = Daemon(work, simulator.ports, package_root)
    try:
        if not simulator.wait_records(1, 180):
            run.note = "no backlog message was submitted within 180 s of the start"
            return run
        time.sleep(2.0)
        return alerts(run, daemon, simulator, args)
    finally:
        daemon.stop()
        simulator.stop()


def scenario_campaign(label: str, package_root: Path, args, root: Path) -> Run:
    from gsmgw.spool.format import make_outgoing
    from gsmgw.spool.store import Spool

    run = Run(label, "campaign")
    work = root / f"{label}-campaign"
    work.mkdir()
    simulator = Simulator(work / "sim", args.modems, args.latency)
    daemon = Daemon(work, simulator.ports, package_root)
    try:
        daemon.wait_http(120)
        files = [
            make_outgoing(to=f"{SINK_PREFIX}{index % 1000:03d}", text=f"campaign {index}",
                          extra={"Campaign": "bench"})
            for index in range(args.campaign)
        ]
        Spool(daemon.spool).submit_many(files)
        time.sleep(args.campaign_pause)
        return alerts(run, daemon, simulator, args)
    finally:
        daemon.stop()
        simulator.stop()


def package_of(ref: str, root: Path) -> Path:
    """The gsmgw package of git ref `ref`, unpacked under `root`."""
    target = root / "before-package"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "gsmgw"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def fmt(seconds: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s (not sent)" if seconds is None else f"{seconds:.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.5, help="simulated submit latency, seconds")
    parser.add_argument("--files", type=int, default=100_000, help="backlog in outgoing/ (0: skip)")
    parser.add_argument("--campaign", type=int, default=5_000, help="campaign recipients (0: skip)")
    parser.add_argument("--campaign-pause", type=float, default=1.0,
                        help="seconds between queueing the campaign and the first alert")
    parser.add_argument("--alerts", type=int, default=3, help="alerts per door in each scenario")
    parser.add_argument("--window", type=float, default=10.0, help="seconds over which throughput is counted")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on an alert after this")
    parser.add_argument("--before", metavar="REF", help="also run the gsmgw of this git ref (e.g. main)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gsmgw-bench-priority-"))
    versions = []
    if args.before:
        versions.append((f"before ({args.before})", package_of(args.before, root)))
    versions.append(("after (this checkout)" if args.before else "this checkout", REPO))
    runs: list[Run] = []
    try:
        for label, package_root in versions:
            short = label.split()[0]
            if args.files:
                print(f"{label}: {args.files} files in outgoing/ ...", flush=True)
                runs.append(scenario_files(short, package_root, args, root))
            if args.campaign:
                print(f"{label}: campaign of {args.campaign} ...", flush=True)
                runs.append(scenario_campaign(short, package_root, args, root))
    finally:
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"{args.modems} simulated modems, {args.latency} s submit latency (ceiling "
          f"{args.modems / args.latency:.1f} submits/s); backlog: {args.files} files; campaign: "
          f"{args.campaign} recipients, alert {args.campaign_pause:.1f} s after it is queued")
    print(f"{'version':<10}{'scenario':<10}{'door':<6}{'waiting in outgoing/':>21}{'drop -> submit':>22}"
          f"{'sent before it':>16}{'backlog submits/s':>19}{'HTTP 202 after':>16}")
    for run in runs:
        for alert in run.alerts:
            rate = "-" if run.throughput is None else f"{run.throughput:.1f}"
            print(f"{run.label:<10}{run.scenario:<10}{alert.door:<6}{alert.waiting:>21}"
                  f"{fmt(alert.seconds, args.timeout):>22}{'-' if alert.overtaken is None else alert.overtaken:>16}"
                  f"{rate:>19}"
                  f"{'-' if alert.accepted is None else f'{alert.accepted:.3f} s':>16}")
        if run.note:
            print(f"{run.label:<10}{run.scenario:<10}{run.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
