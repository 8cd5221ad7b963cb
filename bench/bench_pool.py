#!/usr/bin/env python3
"""Pool benchmark: gsmgw against smstools3 and Gammu SMSD on the same simulated modems.

Every gateway gets a fresh `gsmgw simulate` network (N modems, fixed submit latency)
and the same work, in one run, so the ratios printed at the end compare like with like
on a shared, noisy machine:

1. latency: single messages dropped into an idle gateway, one at a time; the figure is
   the time from the file's rename into the outgoing directory to the moment the modem
   received the PDU (the network log's time minus the simulated submit latency);
2. throughput: a burst of messages dropped at once; utilisation is the ideal time
   (messages x latency / modems) over the time from the drop to the last submit;
3. idle CPU: the gateway's CPU seconds over an idle stretch after the burst;
4. (gsmgw only, --big N) N files queued before the daemon starts: time to the first
   submit and the daemon's peak RSS.

smstools3 (`smsd`) and `gammu-smsd` are run when installed (Debian packages smstools
and gammu-smsd); Gammu SMSD runs as one process per modem, sharing one outbox, which
is how it is deployed for a pool (each with its own outbox: see GammuSmsd).

    .venv/bin/python bench/bench_pool.py                 # all gateways found
    .venv/bin/python bench/bench_pool.py --only gsmgw --big 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

PYTHON = sys.executable
SINK_PREFIX = "+4915190000"  # outside numbers: the simulator's sink


@dataclass
class Result:
    gateway: str
    latencies: list[float] = field(default_factory=list)
    burst_seconds: float | None = None
    burst_sent: int = 0
    burst_unique: int = 0
    ideal_seconds: float = 0.0
    idle_cpu_seconds: float | None = None
    idle_seconds: float = 0.0
    note: str = ""

    @property
    def utilisation(self) -> float | None:
        if not self.burst_seconds:
            return None
        return self.ideal_seconds / self.burst_seconds

    @property
    def median_latency(self) -> float | None:
        return statistics.median(self.latencies) if self.latencies else None


class Simulator:
    """`gsmgw simulate` as a child process; its network log is the ground truth."""

    def __init__(self, directory: Path, modems: int, latency: float) -> None:
        self.directory = directory
        self.latency = latency
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gsmgw", "simulate", "--modems", str(modems), "--dir", str(directory),
             "--latency", str(latency), "--json", "--no-outside-reports"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.ports: list[str] = []
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            if event.get("event") == "modem":
                self.ports.append(event["path"])
            if event.get("event") == "ready":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("gsmgw simulate did not become ready in 30 s")
        if len(self.ports) != modems:
            raise RuntimeError(f"gsmgw simulate started {len(self.ports)} of {modems} modems")
        self.log = directory / "network.jsonl"

    def records(self) -> list[dict]:
        if not self.log.exists():
            return []
        with open(self.log, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.endswith("\n")]

    def wait_records(self, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def record_time(record: dict) -> float:
    return datetime.fromisoformat(record["time"]).timestamp()


# ----------------------------------------------------------------- gateways
class Gateway:
    name = "?"
    outgoing: Path

    def drop(self, index: int, number: str, text: str) -> None:
        """Write a message file beside outgoing/ and rename it in, as scripts do."""
        name = self.file_name(index, number)
        staging = self.outgoing.parent.parent / ".staging"
        staging.mkdir(exist_ok=True)
        temporary = staging / name
        temporary.write_text(self.file_body(number, text), encoding="utf-8")
        os.rename(temporary, self.outgoing / name)

    def file_name(self, index: int, number: str) -> str:
        return f"bench-{index:06d}"

    def file_body(self, number: str, text: str) -> str:
        return f"To: {number}\n\n{text}\n"

    def pids(self) -> list[int]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Gsmgw(Gateway):
    name = "gsmgw"

    def __init__(self, work: Path, ports: list[str], log) -> None:
        self.spool = work / "spool"
        self.outgoing = self.spool / "outgoing"
        self.outgoing.mkdir(parents=True, exist_ok=True)
        config = {
            "spool": str(self.spool),
            "state": str(work / "state"),
            "defaults": {"report": False},
            "modems": [{"name": f"gsm{i}", "port": port} for i, port in enumerate(ports)],
        }
        config_path = work / "gsmgw.yaml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self.process = subprocess.Popen([PYTHON, "-m", "gsmgw", "run", "-c", str(config_path)],
                                        stdout=log, stderr=subprocess.STDOUT)

    def pids(self) -> list[int]:
        return [self.process.pid]

    def stop(self) -> None:
        stop_process(self.process)


class Smstools(Gateway):
    name = "smstools3"

    def __init__(self, work: Path, ports: list[str], log) -> None:
        spool = work / "spool"
        dirs = {d: spool / d for d in ("outgoing", "checked", "failed", "incoming", "sent")}
        for directory in dirs.values():
            directory.mkdir(parents=True, exist_ok=True)
        self.outgoing = dirs["outgoing"]
        names = [f"GSM{i}" for i in range(len(ports))]
        lines = [f"devices = {', '.join(names)}"]
        lines += [f"{key} = {value}" for key, value in dirs.items()]
        lines += [f"logfile = {work / 'smsd.log'}", "loglevel = 4", f"infofile = {work / 'smsd.running'}",
                  f"pidfile = {work / 'smsd.pid'}", "receive_before_send = no", "autosplit = 3",
                  # smsd looks at outgoing/ every `delaytime` seconds (default 10); 1 s is its
                  # fastest setting and what a latency-minded admin would choose.
                  "delaytime = 1", "delaytime_mainprocess = 1"]
        for name, port in zip(names, ports):
            lines += ["", f"[{name}]", f"device = {port}", "incoming = no", "baudrate = 115200",
                      "report = no", "signal_quality_ber_ignore = yes"]
        config = work / "smsd.conf"
        config.write_text("\n".join(lines) + "\n")
        self.pidfile = work / "smsd.pid"
        # -t: stay in the terminal (no fork), so the PID we hold is smsd's main process.
        self.process = subprocess.Popen(["smsd", "-t", f"-c{config}"], stdout=log, stderr=subprocess.STDOUT)

    def file_body(self, number: str, text: str) -> str:
        return f"To: {number.lstrip('+')}\n\n{text}\n"

    def pids(self) -> list[int]:
        # smsd forks one process per device; count them all.
        return [self.process.pid] + children_of(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process)


class GammuSmsd(Gateway):
    """One gammu-smsd per modem. Processes sharing one outbox send the same file
    several times (seen here: 20 files gave 20 submits of only 5 texts), so each gets
    its own outbox and the files are dealt out round-robin, as an admin must do."""

    name = "gammu-smsd x N"

    def __init__(self, work: Path, ports: list[str], log) -> None:
        self.outboxes: list[Path] = []
        self.processes = []
        for i, port in enumerate(ports):
            spool = work / f"spool{i}"
            dirs = {d: spool / d for d in ("inbox", "outbox", "sent", "error")}
            for directory in dirs.values():
                directory.mkdir(parents=True, exist_ok=True)
            self.outboxes.append(dirs["outbox"])
            config = work / f"smsdrc{i}"
            config.write_text(
                "[gammu]\n"
                f"device = {port}\nconnection = at115200\n"
                "[smsd]\nservice = files\n"
                f"logfile = {work / f'gammu{i}.log'}\ndebuglevel = 0\nphoneid = gsm{i}\n"
                f"inboxpath = {dirs['inbox']}/\noutboxpath = {dirs['outbox']}/\n"
                f"sentsmspath = {dirs['sent']}/\nerrorsmspath = {dirs['error']}/\n"
                "checksecurity = 0\nreceivefrequency = 3600\nstatusfrequency = 0\nchecksignal = 0\n"
                "checkbattery = 0\ndeliveryreport = no\n"
                # CommTimeout: seconds to wait after finding the outbox empty (default 30);
                # 1 is the latency-minded setting, as delaytime = 1 is for smstools3.
                "commtimeout = 1\n"
            )
            self.processes.append(subprocess.Popen(["gammu-smsd", "-c", str(config)],
                                                   stdout=log, stderr=subprocess.STDOUT))

    def drop(self, index: int, number: str, text: str) -> None:
        self.outgoing = self.outboxes[index % len(self.outboxes)]
        super().drop(index, number, text)

    def file_name(self, index: int, number: str) -> str:
        # Gammu's files backend takes OUT<priority><date>_<time>_<serial>_<number>_<any>.txt
        return f"OUTC20260101_000000_{index:06d}_{number}_bench.txt"

    def file_body(self, number: str, text: str) -> str:
        return text

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


GATEWAYS = {"gsmgw": Gsmgw, "smstools3": Smstools, "gammu": GammuSmsd}
PEER_BINARIES = {"smstools3": "smsd", "gammu": "gammu-smsd"}


def run_gateway(kind: str, args: argparse.Namespace, root: Path) -> Result:
    work = root / kind
    work.mkdir()
    simulator = Simulator(work / "sim", args.modems, args.latency)
    log = open(work / "gateway.log", "wb")
    gateway = GATEWAYS[kind](work, simulator.ports, log)
    result = Result(gateway.name, ideal_seconds=args.messages * args.latency / args.modems)
    try:
        counter = 0

        def send_and_wait(count_before: int, timeout: float) -> dict | None:
            nonlocal counter
            counter += 1
            number = f"{SINK_PREFIX}{counter:03d}"
            dropped = time.time()
            gateway.drop(counter, number, f"latency probe {counter}")
            records = simulator.wait_records(count_before + 1, timeout)
            if len(records) <= count_before:
                return None
            record = records[count_before]
            result.latencies.append(record_time(record) - args.latency - dropped)
            return record

        # warm-up: the first message waits for the gateway to bring its modems up.
        if send_and_wait(0, 120) is None:
            result.note = "no message reached the network within 120 s of start"
            return result
        result.latencies.clear()
        seen = 1
        for _ in range(args.probes):
            time.sleep(0.3)
            if send_and_wait(seen, 30) is None:
                result.note = "a latency probe was not submitted within 30 s"
                return result
            seen += 1

        time.sleep(1.0)
        start = time.time()
        for index in range(args.messages):
            number = f"{SINK_PREFIX}{index % 1000:03d}"
            gateway.drop(10_000 + index, number, f"burst {index}")
        records = simulator.wait_records(seen + args.messages, args.timeout)
        burst = records[seen:]
        result.burst_sent = len(burst)
        result.burst_unique = len({r["text"] for r in burst})
        if burst:
            result.burst_seconds = max(record_time(r) for r in burst) - start
        if len(burst) < args.messages:
            result.note = f"only {len(burst)} of {args.messages} burst messages submitted within {args.timeout:.0f} s"

        time.sleep(1.0)
        pids = gateway.pids()
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(args.idle)
        result.idle_cpu_seconds = sum(cpu_seconds(pid) for pid in pids) - before
        result.idle_seconds = args.idle
        return result
    finally:
        gateway.stop()
        log.close()
        simulator.stop()


def run_big(args: argparse.Namespace, root: Path) -> str:
    """N files already queued when gsmgw starts: time to the first submit, peak RSS."""
    work = root / "big"
    work.mkdir()
    simulator = Simulator(work / "sim", args.modems, args.latency)
    outgoing = work / "spool" / "outgoing"
    outgoing.mkdir(parents=True)
    body = f"To: {SINK_PREFIX}001\n\nqueued\n"
    for index in range(args.big):
        (outgoing / f"big-{index:07d}").write_text(body)
    log = open(work / "gateway.log", "wb")
    started = time.time()
    gateway = Gsmgw(work, simulator.ports, log)
    try:
        records = simulator.wait_records(1, 120)
        first = record_time(records[0]) - started if records else None
        end = time.time() + args.big_watch
        peak = 0.0
        while time.time() < end and gateway.process.poll() is None:
            peak = max(peak, peak_rss_mib(gateway.process.pid))
            time.sleep(0.5)
        sent = len(simulator.records())
        first_text = f"{first:.1f} s" if first is not None else "none in 120 s"
        return (f"{args.big} queued files: first submit after {first_text}; "
                f"{sent} submitted in the first {args.big_watch:.0f} s of watching; peak RSS {peak:.0f} MiB")
    finally:
        gateway.stop()
        log.close()
        simulator.stop()


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--probes", type=int, default=10, help="single-message latency probes")
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds for the CPU figure")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a burst after this")
    parser.add_argument("--only", action="append", choices=sorted(GATEWAYS), help="run only these")
    parser.add_argument("--big", type=int, default=0, help="also queue this many files before gsmgw starts")
    parser.add_argument("--big-watch", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    kinds = args.only or list(GATEWAYS)
    root = Path(tempfile.mkdtemp(prefix="gsmgw-bench-"))
    results: list[Result] = []
    try:
        for kind in kinds:
            binary = PEER_BINARIES.get(kind)
            if binary and shutil.which(binary) is None:
                print(f"{kind}: {binary} not installed, skipped (apt-get install smstools gammu-smsd)")
                continue
            print(f"running {kind} ...", flush=True)
            results.append(run_gateway(kind, args, root))
        big = run_big(args, root) if args.big else None
    finally:
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"{args.modems} simulated modems, {args.latency} s submit latency, burst of {args.messages} "
          f"(ideal {args.messages * args.latency / args.modems:.1f} s), {args.probes} latency probes")
    header = f"{'gateway':<16}{'utilisation':>12}{'burst s':>9}{'sent':>6}{'unique':>7}{'median drop->submit':>21}{'idle CPU':>10}"
    print(header)
    for r in results:
        print(f"{r.gateway:<16}{fmt(r.utilisation, '{:.0%}'):>12}{fmt(r.burst_seconds, '{:.1f}'):>9}"
              f"{r.burst_sent:>6}{r.burst_unique:>7}{fmt(r.median_latency, '{:.3f} s'):>21}"
              f"{fmt(r.idle_cpu_seconds, '{:.2f} s'):>10}" + (f"  ({r.note})" if r.note else ""))
    ours = next((r for r in results if r.gateway == "gsmgw"), None)
    if ours:
        for peer in results:
            if peer is ours:
                continue
            parts = []
            if ours.utilisation and peer.utilisation:
                parts.append(f"utilisation x{ours.utilisation / peer.utilisation:.2f}")
            if ours.median_latency and peer.median_latency:
                parts.append(f"drop->submit {peer.median_latency / ours.median_latency:.1f}x faster")
            print(f"gsmgw vs {peer.gateway}: " + ", ".join(parts))
    if big:
        print(big)
    return 0


if __name__ == "__main__":
    sys.exit(main())
