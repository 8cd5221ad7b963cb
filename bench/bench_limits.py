#!/usr/bin/env python3
"""What one client limit check costs, by how much its window holds.

    .venv/bin/python bench/bench_limits.py [--checks 20000] [--levels 0,1000,100000,1000000]

For windows that already hold 0, 1,000, 100,000 and 1,000,000 accepted parts (a `per_day`
limit generous enough never to refuse, as a busy client has), it times `ClientRegistry.acquire`
(one check and one count, as every HTTP request and SMPP submit_sm does) and prints checks per
second and microseconds per check, plus the memory the window keeps. A check that costs the same
whatever the window holds prints the same figure on every line. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gsmgw.clients import Client, ClientRegistry  # noqa: E402

STEP = 0.01  # seconds between two parts: 1,000,000 parts span under 3 hours of a day's window


def filled(parts: int) -> tuple[ClientRegistry, Client, float, int]:
    """A registry whose client has `parts` parts in its per_day window; the next `now`; bytes held."""
    tracemalloc.start()
    registry = ClientRegistry([Client("busy", token="t", allow=("*",), limits={"per_day": 10**9})])
    client = registry.by_name("busy")
    now = 0.0
    for _ in range(parts):
        registry.acquire(client, 1, now)
        now += STEP
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return registry, client, now, held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000, help="checks timed per fill level")
    parser.add_argument("--levels", default="0,1000,100000,1000000",
                        help="parts already in the window, comma-separated (default 0,1000,100000,1000000)")
    args = parser.parse_args()
    print(f"{'parts in window':>16} {'checks/s':>12} {'µs/check':>9} {'window memory':>14}")
    for parts in (int(level) for level in args.levels.split(",")):
        registry, client, now, held = filled(parts)
        started = time.perf_counter()
        for _ in range(args.checks):
            registry.acquire(client, 1, now)
            now += STEP
        elapsed = time.perf_counter() - started
        print(f"{parts:>16,} {args.checks / elapsed:>12,.0f} {elapsed / args.checks * 1e6:>9.2f} {held / 1024:>11,.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
