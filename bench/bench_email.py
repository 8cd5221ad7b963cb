#!/usr/bin/env python3
"""SMTP acceptance speed: mails per second (one recipient each) from 16 clients, and latency.

    .venv/bin/python bench/bench_email.py [--count 5000] [--clients 16] [--dir DIR] [--timeout 120]

What it does (loopback only, bounded by --count and --timeout):
1. measures the fsync ceiling of the spool's file system in this run, as bench_http.py does: the
   time of one durable spool write and how many of them one writer does per second;
2. starts the gsmgw SMTP listener in a child process (so the load generator and the listener do
   not share one interpreter lock) on a real Spool in DIR/spool;
3. --clients concurrent SMTP sessions send one mail each after the other (MAIL, RCPT, DATA; one
   recipient, a quoted-printable UTF-8 body) until --count are accepted: throughput. Each `250`
   comes after the SMS file is durable in outgoing/; concurrent mails share one group commit
   (the spool's committer, gsmgw.spool.commit);
4. sends at half that rate, paced, and measures each mail's time from MAIL FROM to its `250`:
   p50/p99;
5. runs bench_http.py's measurement with the same --count and --clients, and prints mails/s
   against HTTP messages/s (one durable file each) and issue 15's targets: at least 300 mails/s,
   p99 under 100 ms at half that rate.

Not a test: it prints figures. The spool directory is removed at the end unless --dir is given.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_http  # noqa: E402 - the HTTP door's figures, measured in the same run for comparison
from bench_http import arguments, config_head, flood_with, paced_with, run_bench, run_server  # noqa: E402 - one driver for both doors

TARGET_RATE = 300.0  # issue 15: mails per second, one recipient each, 16 clients
TARGET_P99 = 0.100  # seconds, at half that rate

DOMAIN = "sms.example.org"
MAIL = (
    "From: Nagios <nagios@example.org>\r\n"
    "Subject: PROBLEM web{n}\r\n"
    "Message-ID: <{n}.bench@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "HTTP CRITICAL on web{n} =E2=9C=93\r\n"
    "-- \r\n"
    "Nagios\r\n"
    ".\r\n"
)


def write_config(directory: Path, port: int) -> Path:
    config = directory / "gsmgw.yaml"
    config.write_text(config_head(directory) + textwrap.dedent(f"""\
        smtp:
          listen: 127.0.0.1:{port}
          domains: [{DOMAIN}]
          trusted_networks: [127.0.0.1/32]
        clients:
          - name: nagios
            smtp: {{from: ["nagios@example.org"]}}
            allow: ["+49*"]
        """))
    return config


class Session:
    """A minimal SMTP client on one connection: the load generator must cost less CPU than the
    listener it measures (both share this machine's cores), so no smtplib."""

    async def open(self, port: int) -> "Session":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.reply()
        await self.command("EHLO bench.example.org")
        return self

    async def reply(self) -> bytes:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the listener closed the session")
            if line[3:4] != b"-":
                return line

    async def command(self, text: str) -> bytes:
        self.writer.write(text.encode("ascii") + b"\r\n")
        return await self.reply()

    async def mail(self, number: str, n: int) -> bool:
        for command, code in (("MAIL FROM:<nagios@example.org>", b"250"), (f"RCPT TO:<{number}@{DOMAIN}>", b"250"),
                              ("DATA", b"354")):
            if not (await self.command(command)).startswith(code):
                await self.command("RSET")
                return False
        self.writer.write(MAIL.format(n=n).encode("ascii"))
        return (await self.reply()).startswith(b"250")

    def close(self) -> None:
        self.writer.close()


async def send_mail(session: Session, number: int | None, sequence: int) -> bool | str:
    recipient = f"+4917{sequence:09d}" if number is None else f"+4915{number:04d}{sequence:06d}"
    return True if await session.mail(recipient, sequence) else "refused"


async def flood(port: int, count: int, clients: int, timeout: float) -> tuple[float, int, list[float]]:
    """`clients` sessions send mails back to back until `count` 250s; (seconds, accepted, latencies)."""
    return await flood_with(lambda: Session().open(port), send_mail, count, clients, timeout)


async def paced(port: int, rate: float, seconds: float, clients: int) -> list[float]:
    """One mail every 1/rate s for `seconds`, each on an idle session; their latencies."""
    return await paced_with(lambda: Session().open(port), send_mail, rate, seconds, clients)


def main() -> int:
    args = arguments(__doc__.split("\n\n")[0], clients=16, unit="mails")
    mail: dict = {}
    status = run_bench(args, prefix="gsmgw-bench-email-", write_config=write_config,
                       serve=functools.partial(run_server, door="smtp"), flood=flood, paced=paced, unit="mails",
                       answer="250", clients_text="concurrent SMTP clients, one recipient each", measured=mail)
    if status or not mail:
        return status or 1
    print(f"-- the HTTP door in the same run ({args.clients} clients, one recipient per request), for comparison:")
    http_args = argparse.Namespace(**vars(args))
    if args.dir:
        http_args.dir = str(Path(args.dir) / "http")
    http: dict = {}
    status = run_bench(http_args, prefix="gsmgw-bench-http-", write_config=bench_http.write_config,
                       serve=bench_http.run_server, flood=bench_http.flood,
                       paced=lambda url, rate, seconds, clients: bench_http.paced(url, rate, seconds),
                       unit="messages", answer="202", clients_text="concurrent HTTP clients", measured=http)
    if status or not http:
        return status or 1
    print(f"mail vs HTTP: {mail['rate']:.0f} mails/s / {http['rate']:.0f} messages/s = {mail['rate'] / http['rate']:.2f}; "
          f"mail vs the fsync ceiling of its run ({mail['fsync_writes_per_second']:.0f} durable writes/s, one writer "
          f"without group commit): {mail['rate'] / mail['fsync_writes_per_second']:.2f}")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"issue 15 targets: >= {TARGET_RATE:.0f} mails/s: {met(mail['rate'] >= TARGET_RATE)} ({mail['rate']:.0f}); "
          f"p99 < {TARGET_P99 * 1000:.0f} ms at half that rate: {met(mail['p99_half_rate'] < TARGET_P99)} "
          f"({mail['p99_half_rate'] * 1000:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
