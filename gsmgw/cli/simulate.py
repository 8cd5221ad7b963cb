"""`gsmgw simulate`: only the simulated modems, for other software to talk to.

Runs until SIGTERM or SIGINT.  Prints one line per modem (path and number),
or with --json one JSON object per modem and then {"event": "ready", ...}.
On exit the symlinks and the control socket are removed.

`gsmgw simulate inject` sends an SMS from an outside number to a simulated SIM, and `gsmgw
simulate ring` calls one, through the control socket of a running `gsmgw simulate --dir DIR` or
`gsmgw run --simulate` (--spool DIR).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

import click

from gsmgw.sim import SimError, SimNetwork
from gsmgw.sim.faults import DEVICE_EVENTS, FaultError, FaultState
from gsmgw.sim.modem import Latency
from gsmgw.sim.profiles import PROFILES

if TYPE_CHECKING:  # imported in the commands that need it (the CLI starts faster)
    from gsmgw.sim.control import ControlClient


def _parse_fault(text: str) -> tuple[int, str, dict]:
    """MODEM:KIND[:key=value,...]; a value is JSON if it parses, `a+b` is a list."""
    pieces = text.split(":", 2)
    if len(pieces) < 2 or not pieces[0].isdigit():
        raise click.BadParameter(
            f"{text!r}: write MODEM:KIND[:key=value,...], e.g. 1:hang:seconds=5 or 0:cms_error:codes=38+42,probability=0.3"
        )
    params: dict = {}
    if len(pieces) == 3 and pieces[2]:
        for item in pieces[2].split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} in {text!r}: write key=value")
            params[key.strip()] = _value(value.strip())
    return int(pieces[0]), pieces[1], params


def _value(text: str):
    if "+" in text.strip("+"):
        return [_value(part) for part in text.split("+")]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@click.group(invoke_without_command=True)
@click.option("--modems", "-n", type=click.IntRange(1, 999), default=2, show_default=True, help="How many modems.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Directory for modemN symlinks, control.sock and network.jsonl (required).")
@click.option("--latency", default="0", show_default=True, help="Submit latency in seconds: 0.5, or a range 1-5.")
@click.option(
    "--profile",
    default="generic",
    show_default=True,
    help=f"Dialect: {', '.join(PROFILES)}; or one per modem, comma-separated (generic,huawei).",
)
@click.option("--pin", default=None, help="Every SIM asks for this PIN (default: no PIN).")
@click.option("--register-delay", type=float, default=0.0, show_default=True, help="Seconds a modem searches for the network after power-up or PIN.")
@click.option("--report-delay", type=float, default=0.0, show_default=True, help="Seconds before a status report comes back.")
@click.option("--no-outside-reports", is_flag=True, help="No status reports for messages to numbers outside the simulation.")
@click.option("--fault", "faults", multiple=True, metavar="MODEM:KIND[:k=v,...]", help="Switch a fault on at start, e.g. 1:hang:seconds=30 (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random latency and fault chances.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per modem, then a ready line.")
@click.pass_context
def simulate(
    context: click.Context,
    modems: int,
    directory: str,
    latency: str,
    profile: str,
    pin: str | None,
    register_delay: float,
    report_delay: float,
    no_outside_reports: bool,
    faults: tuple[str, ...],
    seed: int,
    as_json: bool,
) -> None:
    """Run simulated GSM modems on pseudo-terminals until SIGTERM/SIGINT.

    Each modem is DIR/modemN (a symlink to its /dev/pts/N), PDU mode, echo on.
    modemN has the number +49170000000NN (e.g. modem0 = +4917000000000).
    A message from one to another's number is delivered; other numbers go to
    a sink. DIR/network.jsonl records every submitted message; DIR/control.sock
    takes JSON-line commands (gsmgw.sim.control.ControlClient).

    `gsmgw simulate inject --help`: text a simulated SIM from an outside number.
    """
    if context.invoked_subcommand is not None:
        return
    if directory is None:
        raise click.UsageError("--dir DIR is required: the directory for the modems' symlinks and control socket")
    try:
        Latency.parse(latency)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--latency") from None
    profiles = [p.strip() for p in profile.split(",")]
    unknown = sorted({p for p in profiles if p.lower() not in PROFILES})
    if unknown:
        raise click.BadParameter(f"unknown {', '.join(unknown)}; choose from {', '.join(PROFILES)}", param_hint="--profile")
    if len(profiles) == 1:
        profiles = profiles * modems
    if len(profiles) != modems:
        raise click.BadParameter(f"{len(profiles)} profiles for {modems} modems; give one, or one per modem", param_hint="--profile")
    parsed_faults = [_parse_fault(text) for text in faults]
    for index, kind, params in parsed_faults:
        # Checked before anything starts, so a typo costs no pty and leaves no files.
        if index >= modems:
            raise click.BadParameter(f"modem {index} does not exist; there are modems 0 to {modems - 1}", param_hint="--fault")
        if kind not in DEVICE_EVENTS:
            try:
                FaultState().set(kind, params, now=0.0)
            except FaultError as error:
                raise click.BadParameter(str(error), param_hint="--fault") from None

    network = SimNetwork(
        directory,
        modems=modems,
        profile=profiles,
        latency=latency,
        pin=pin,
        seed=seed,
        register_delay=register_delay,
        report_delay=report_delay,
        outside_reports=not no_outside_reports,
        control_socket=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        network.start()
    except (SimError, OSError) as error:
        click.echo(f"gsmgw simulate: {error}", err=True)
        sys.exit(1)
    try:
        for index, kind, params in parsed_faults:
            network.set_fault(index, kind, **params)
    except SimError as error:
        network.stop()
        click.echo(f"gsmgw simulate: --fault: {error}", err=True)
        sys.exit(2)

    control = os.path.join(directory, "control.sock")
    for info in network.modems:
        device = os.readlink(info.path)
        if as_json:
            click.echo(json.dumps({"event": "modem", **info.to_json(), "device": device}))
        else:
            click.echo(
                f"{info.name}: {info.path} -> {device}  number {info.number}  IMSI {info.imsi}  "
                f"{info.operator}  ({info.profile})"
            )
    if as_json:
        click.echo(json.dumps({"event": "ready", "modems": modems, "control": control, "log": os.path.join(directory, "network.jsonl")}))
    else:
        click.echo(f"ready: {modems} modem(s); control socket {control}; stop with Ctrl-C or SIGTERM")
    sys.stdout.flush()

    while not stop.wait(3600):
        pass
    network.stop()


_DIR_OPTION = click.option("--dir", "directory", type=click.Path(file_okay=False), help="The directory of a running `gsmgw simulate --dir`.")
_SPOOL_OPTION = click.option("--spool", "spool", type=click.Path(file_okay=False), help="The spool of a running `gsmgw run --simulate` (its simulator is SPOOL/.sim).")


def _control(directory: str | None, spool: str | None) -> ControlClient:
    from gsmgw.sim.control import ControlClient

    if directory is not None and spool is None:
        base = directory
    elif spool is not None and directory is None:
        base = os.path.join(spool, ".sim")
    else:
        raise click.UsageError("give --dir DIR (gsmgw simulate) or --spool DIR (gsmgw run --simulate)")
    return ControlClient(os.path.join(base, "control.sock"))


def _modem_index(known: list[dict], modem: str) -> int:
    index = next((m["index"] for m in known if modem in (str(m["index"]), m["name"])), None)
    if index is None:
        names = ", ".join(f"{m['index']} ({m['name']})" for m in known)
        raise click.BadParameter(f"no simulated SIM {modem!r}; there are {names}", param_hint="--modem")
    return index


@simulate.command("inject")
@_DIR_OPTION
@_SPOOL_OPTION
@click.option("--modem", "modem", default="0", show_default=True, help="The SIM that receives it: index (0) or name (modem0).")
@click.option("--from", "sender", required=True, help="The outside number it comes from, e.g. +4915112345678.")
@click.argument("text")
def inject(directory: str | None, spool: str | None, modem: str, sender: str, text: str) -> None:
    """Send TEXT from an outside number to a simulated SIM (an inbound SMS for the gateway)."""
    client = _control(directory, spool)
    try:
        known = client.modems()
        index = _modem_index(known, modem)
        parts = client.inject_sms(index, sender, text)
    except SimError as error:
        click.echo(f"gsmgw simulate inject: {error}", err=True)
        sys.exit(1)
    finally:
        client.close()
    target = next(m for m in known if m["index"] == index)
    click.echo(f"sent from {sender} to {target['name']} ({target['number']}) in {len(parts)} part(s)")


@simulate.command("ring")
@_DIR_OPTION
@_SPOOL_OPTION
@click.option("--modem", "modem", default="0", show_default=True, help="The SIM that is called: index (0) or name (modem0).")
@click.option("--from", "caller", default="", help="The caller's number, e.g. +4915112345678; leave out for a withheld number.")
@click.option("--interval", type=float, default=3.0, show_default=True, help="Seconds between rings.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds after which the caller gives up.")
@click.option("--wait", is_flag=True, help="Wait until the call ends (hung up, or the caller gave up) and print how.")
def ring(directory: str | None, spool: str | None, modem: str, caller: str, interval: float, timeout: float, wait: bool) -> None:
    """Call a simulated SIM: it rings (RING / +CRING, +CLIP) until the modem hangs up."""
    client = _control(directory, spool)
    try:
        index = _modem_index(client.modems(), modem)
        call = client.ring(index, caller, interval=interval, timeout=timeout)
        if wait:
            call = client.wait_for_call(call["id"], timeout=timeout + 5.0)
    except (SimError, TimeoutError) as error:
        click.echo(f"gsmgw simulate ring: {error}", err=True)
        sys.exit(1)
    finally:
        client.close()
    who = call["caller"] or "a withheld number"
    if call["outcome"] == "ringing":
        click.echo(f"call {call['id']} to modem{index} from {who}: ringing")
    else:
        click.echo(f"call {call['id']} to modem{index} from {who}: {call['outcome']} after {call['rings']} ring(s)")
