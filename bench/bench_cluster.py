#!/usr/bin/env python3
"""Cluster benchmark (issue 16): three gsmgw members on one PostgreSQL against one member on SQLite.

In one run, on a fresh `gsmgw simulate` network each (12 modems by default, fixed submit latency):

1. cluster: three members (`gsmgw run -c CONFIG`, separate processes, 4 modems each) share a
   throwaway PostgreSQL (initdb/pg_ctl as in the tests, but with fsync on, as in production);
2. sqlite: one member with all 12 modems and the embedded SQLite journal.

For each: latency probes (single messages dropped on the first member into an idle gateway; the
figure is the time from the file's rename into outgoing/ to the moment the modem received the
PDU: the network log's time minus the simulated latency), then a burst of 600 files dropped at
once on the first member; utilisation is the ideal time (messages x latency / modems) over the
time from the drop to the last submit. Also: how the burst spread over the members' modems.

    .venv/bin/python bench/bench_cluster.py                     # 3 x 4 modems, 0.5 s, 600 files
    .venv/bin/python bench/bench_cluster.py --messages 200 --latency 0.2
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench_pool import PYTHON, SINK_PREFIX, Result, Simulator, fmt, record_time, stop_process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pgserver import PgServer  # noqa: E402  (the tests' throwaway server)


@dataclass
class ClusterResult(Result):
    per_member: dict[str, int] = field(default_factory=dict)  # burst submissions by each member's modems


class Member:
    def __init__(self, work: Path, name: str, ports: list[str], first_modem: int, journal: str | None, log):
        self.name = name
        self.spool = work / name / "spool"
        self.outgoing = self.spool / "outgoing"
        self.outgoing.mkdir(parents=True, exist_ok=True)
        config = {
            "spool": str(self.spool),
            "state": str(work / name / "state"),
            "defaults": {"report": False},
            "modems": [{"name": f"gsm{first_modem + i}", "port": port} for i, port in enumerate(ports)],
        }
        if journal is not None:
            config["journal"] = journal
            config["cluster"] = {"member": name}
        path = work / name / "gsmgw.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        self.process = subprocess.Popen([PYTHON, "-m", "gsmgw", "run", "-c", str(path)], stdout=log,
                                        stderr=subprocess.STDOUT)

    def drop(self, index: int, number: str, text: str) -> None:
        staging = self.spool / f".bench-{index:06d}"
        staging.write_text(f"To: {number}\n\n{text}\n", encoding="utf-8")
        staging.rename(self.outgoing / f"bench-{index:06d}")

    def stop(self) -> None:
        stop_process(self.process)


def run(name: str, args: argparse.Namespace, root: Path, journal: str | None, members: int) -> ClusterResult:
    work = root / name
    work.mkdir()
    simulator = Simulator(work / "sim", args.modems, args.latency)
    log = open(work / "gateways.log", "wb")
    per = args.modems // members
    gateways = [
        Member(work, f"gw-{chr(ord('a') + i)}", simulator.ports[i * per:(i + 1) * per], i * per, journal, log)
        for i in range(members)
    ]
    modem_member = {f"modem{i}": gateways[i // per].name for i in range(args.modems)}
    result = ClusterResult(name, ideal_seconds=args.messages * args.latency / args.modems)
    first = gateways[0]
    try:
        counter = 0

        def probe(seen: int, timeout: float) -> bool:
            nonlocal counter
            counter += 1
            dropped = time.time()
            first.drop(counter, f"{SINK_PREFIX}{counter:03d}", f"latency probe {counter}")
            records = simulator.wait_records(seen + 1, timeout)
            if len(records) <= seen:
                return False
            result.latencies.append(record_time(records[seen]) - args.latency - dropped)
            return True

        if not probe(0, 120):
            result.note = "no message reached the network within 120 s of start"
            return result
        time.sleep(2.0)  # every member up and renewed
        result.latencies.clear()
        seen = 1
        for _ in range(args.probes):
            time.sleep(0.3)
            if not probe(seen, 30):
                result.note = "a latency probe was not submitted within 30 s"
                return result
            seen += 1

        time.sleep(1.0)
        start = time.time()
        for index in range(args.messages):
            first.drop(10_000 + index, f"{SINK_PREFIX}{index % 1000:03d}", f"burst {index}")
        records = simulator.wait_records(seen + args.messages, args.timeout)
        burst = records[seen:]
        result.burst_sent = len(burst)
        result.burst_unique = len({r["text"] for r in burst})
        result.per_member = dict(collections.Counter(modem_member[r["modem_name"]] for r in burst))
        if burst:
            result.burst_seconds = max(record_time(r) for r in burst) - start
        if len(burst) < args.messages:
            result.note = f"only {len(burst)} of {args.messages} submitted within {args.timeout:.0f} s"
        return result
    finally:
        for gateway in gateways:
            gateway.stop()
        log.close()
        simulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, default=12, help="in all (split over three members)")
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gsmgw-bench-cluster-"))
    server = PgServer.start(settings={"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"})
    results = []
    try:
        print("running cluster (3 members on PostgreSQL) ...", flush=True)
        results.append(run("cluster", args, root, server.new_database(), members=3))
        print("running sqlite (1 member) ...", flush=True)
        results.append(run("sqlite", args, root, None, members=1))
    finally:
        server.destroy()
        if args.keep:
            print(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"{args.modems} simulated modems, {args.latency} s submit latency, burst of {args.messages} files dropped on "
          f"one member (ideal {args.messages * args.latency / args.modems:.1f} s), {args.probes} latency probes")
    print(f"{'setup':<34}{'utilisation':>12}{'burst s':>9}{'sent':>6}{'unique':>7}{'median drop->submit':>21}"
          f"  per member")
    labels = {"cluster": "3 members x 4 modems, PostgreSQL", "sqlite": "1 member x 12 modems, SQLite"}
    for r in results:
        print(f"{labels[r.gateway]:<34}{fmt(r.utilisation, '{:.0%}'):>12}{fmt(r.burst_seconds, '{:.1f}'):>9}"
              f"{r.burst_sent:>6}{r.burst_unique:>7}{fmt(r.median_latency, '{:.3f} s'):>21}  "
              + ", ".join(f"{k}: {v}" for k, v in sorted(r.per_member.items())) + (f"  ({r.note})" if r.note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
