"""`gsmgw probe [PORT…] [--json]`: what is on each serial port. Thin: gsmgw.at.probe does it."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from gsmgw.at.probe import DEFAULT_PATTERNS, MM_ADVICE, describe, modemmanager_running, probe_ports, scan_ports


@click.command()
@click.argument("ports", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of objects with stable keys.")
@click.option(
    "--timeout", default=5.0, show_default=True, type=click.FloatRange(0.5, 120),
    help="Seconds each port has to answer (all ports are probed in parallel).",
)
@click.option(
    "--profile", type=click.Choice(["generic", "huawei", "simcom", "quectel"]), default=None,
    help="Force a vendor dialect instead of detecting it from AT+CGMI.",
)
def probe(ports: tuple[str, ...], as_json: bool, timeout: float, profile: str | None) -> None:
    """Identify the modems on PORTS (default: scan /dev/gsmgw/*, /dev/serial/by-id/*,
    /dev/ttyUSB*, /dev/ttyACM*). Never enters a PIN; skips ports another program holds.

    Exits 0 when at least one modem answered, 1 otherwise.
    """
    paths = list(ports) or scan_ports(DEFAULT_PATTERNS)
    if not paths:
        if as_json:
            click.echo("[]")
        click.echo(
            "gsmgw probe: no serial ports found (looked at " + ", ".join(DEFAULT_PATTERNS)
            + "); plug in a modem or name its port", err=True,
        )
        sys.exit(1)
    results = asyncio.run(probe_ports(paths, timeout=timeout, profile=profile))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
    else:
        for result in results:
            for line in describe(result):
                click.echo(line)
        if modemmanager_running():
            click.echo(f"note: ModemManager is running and may take modem ports; {MM_ADVICE}")
    sys.exit(0 if any(r.ok for r in results) else 1)
