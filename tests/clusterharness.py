"""Several gsmgw members on one PostgreSQL, as real processes (CLUSTER.md), for the fault tests.

    network = SimNetwork(tmp_path / "sim", modems=6, latency=0.05); network.start()
    cluster = Cluster(tmp_path, dsn, network, {"gw-a": 2, "gw-b": 2, "gw-c": 2}, lease=3.0)
    cluster.start()                      # every member: `python -m gsmgw run -c CONFIG`
    cluster["gw-a"].drop("m001", "+4915190000001", "hello")
    ...
    cluster.stop()

Each member has its own spool, state, config and log, and its own simulated modems (named after
it: gw-a's are a1, a2, ...) of the one simulated network, whose submission log is the ground truth
of what reached the network. The simulator runs in the test's process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from gsmgw.sim import SimNetwork
from helpers import stop_process


class Member:
    def __init__(self, root: Path, name: str, dsn: str, modems: list, *, lease: float, extra: str = ""):
        self.name = name
        self.root = root / name
        self.spool = self.root / "spool"
        self.state = self.root / "state"
        self.log = self.root / "daemon.log"
        self.modems = modems  # the network's ModemInfo of this member's modems
        self.modem_names = [f"{name[-1]}{i + 1}" for i in range(len(modems))]
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}  # more environment for its process (NOTIFY_SOCKET)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.spool / "outgoing").mkdir(parents=True, exist_ok=True)
        self.dsn = dsn
        lines = [
            f"spool: {self.spool}",
            f"state: {self.state}",
            f"journal: {json.dumps(dsn)}",
            f"cluster: {{member: {name}, lease: {lease} s}}",
            "status_interval: 5 s",
            "inbound: {sweep_interval: 2 s}",
            "modems:",
        ]
        for modem_name, info in zip(self.modem_names, modems):
            lines += [f"  - name: {modem_name}", f"    port: {info.path}"]
        self.config = self.root / "gsmgw.yaml"
        self.config.write_text("\n".join(lines) + "\n" + extra)

    @property
    def modem_indices(self) -> list[int]:
        return [info.index for info in self.modems]

    def start(self) -> None:
        with self.log.open("ab") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gsmgw", "run", "-c", str(self.config)],
                stdout=stream, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1", **self.env),
            )

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            assert stop_process(self.process, timeout), f"{self.name} did not stop on SIGTERM"
        self.process = None

    def drop(self, name: str, to: str, text: str, **headers: str) -> None:
        """A file renamed into outgoing/, as scripts do."""
        lines = [f"To: {to}"] + [f"{key}: {value}" for key, value in headers.items()]
        staging = self.spool / f".{name}"
        staging.write_text("\n".join(lines) + f"\n\n{text}\n")
        os.rename(staging, self.spool / "outgoing" / name)

    def files(self, directory: str) -> list[str]:
        path = self.spool / directory
        return sorted(n for n in os.listdir(path) if not n.startswith(".")) if path.exists() else []

    def status(self) -> dict:
        return json.loads((self.state / "status.json").read_text())

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in {self.name}'s log within {timeout} s:\n{self.text()[-4000:]}")
            time.sleep(0.05)

    def wait_files(self, directory: str, count: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            names = self.files(directory)
            if len(names) >= count:
                return names
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {len(names)} of {count} files in {directory}/ after {timeout} s; "
                                     f"log:\n{self.text()[-4000:]}")
            time.sleep(0.05)

    def wait_status(self, predicate, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                current = self.status()
                if predicate(current):
                    return current
            except (OSError, ValueError):
                current = None  # not written yet, or being replaced
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: status not as expected after {timeout} s: {current}")
            time.sleep(0.05)


class Cluster:
    def __init__(self, root: Path, dsn: str, network: SimNetwork, layout: dict[str, int], *, lease: float = 3.0,
                 dsns: dict[str, str] | None = None, extra: str = "", extras: dict[str, str] | None = None):
        self.network = network
        self.members: dict[str, Member] = {}
        first = 0
        for name, count in layout.items():
            modems = network.modems[first:first + count]
            first += count
            self.members[name] = Member(root, name, (dsns or {}).get(name, dsn), modems, lease=lease,
                                        extra=extra + (extras or {}).get(name, ""))
        self.modem_member = {info.index: member for member in self.members.values() for info in member.modems}

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    def start(self, timeout: float = 30) -> None:
        for member in self.members.values():
            member.start()
        for member in self.members.values():
            member.wait_log(r"gsmgw started", timeout)
            member.wait_status(lambda s: all(m["state"] == "ready" for m in s["modems"]), timeout)

    def stop(self) -> None:
        for member in self.members.values():
            if member.process is not None and member.process.poll() is None:
                member.process.send_signal(signal.SIGTERM)
        for member in self.members.values():
            if member.process is not None:
                try:
                    member.process.wait(30)
                except subprocess.TimeoutExpired:
                    member.process.kill()
                    member.process.wait(10)
                member.process = None

    def submissions(self) -> list[dict]:
        """What reached the network, each with the member whose modem sent it."""
        records = []
        for record in self.network.submissions:
            records.append(dict(record, member=self.modem_member[record["modem"]].name,
                                at=datetime.fromisoformat(record["time"]).timestamp()))
        return records

    def logs(self) -> str:
        return "\n".join(member.text() for member in self.members.values())
