"""`gsmgw run`: the daemon, on real modems (-c CONFIG) or on simulated ones (--simulate N).

Thin: it loads the config (or builds the simulated one), sets up logging to stdout (one line per
event; journald adds the time stamps, an interactive terminal gets them here), and runs
`gsmgw.daemon.app.run_gateway` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

import click

from gsmgw.config import (
    CONFIG_ENV,
    ConfigError,
    config_path,
    console_admin,
    load_config,
    simulation_config,
    with_simulated_console,
)

EXIT_CONFIG = 2
SIMULATED_BALANCE_CODE = "*100#"


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if sys.stdout.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def _load(config_option: str | None, modems_required: bool = True):
    path = config_path(config_option)
    try:
        return load_config(path, modems_required=modems_required)
    except ConfigError as error:
        click.echo(f"gsmgw run: the config {path} cannot be used:\n{error}", err=True)
        if not os.path.exists(path):
            click.echo(
                f"Give the config with -c FILE (or ${CONFIG_ENV}); to try gsmgw without modems run:\n"
                f"  {gsmgw_command()} run --simulate 2 --spool ./demo-spool",
                err=True,
            )
        sys.exit(EXIT_CONFIG)


@click.command("run")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help=f"Config file (default: ${CONFIG_ENV} or /etc/gsmgw/gsmgw.yaml).")
@click.option("--simulate", type=click.IntRange(1, 64), metavar="N",
              help="Run on N simulated modems (no hardware); with -c, they replace the config's modems.")
@click.option("--spool", "spool_option", metavar="DIR",
              help="Spool directory (with --simulate; default ./demo-spool).")
@click.option("--latency", type=float, default=0.05, show_default=True, metavar="S",
              help="Simulated modems: seconds each AT command takes.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Log level (default: the config's log_level, info).")
def run(config_option, simulate, spool_option, latency, log_level):
    """Run the gateway daemon in the foreground (systemd runs it so)."""
    from gsmgw.daemon.app import run_gateway

    if simulate is None:
        if spool_option:
            click.echo("gsmgw run: --spool is for --simulate; a real daemon takes spool: from its config", err=True)
            sys.exit(EXIT_CONFIG)
        config = _load(config_option)
        _setup_logging(log_level or config.log_level)
        sys.exit(asyncio.run(run_gateway(config)))

    from gsmgw.daemon.app import StartupError, lock_directories
    from gsmgw.sim import SimNetwork

    spool = Path(spool_option or "./demo-spool").absolute()
    base = _load(config_option, modems_required=False) if config_option else None
    state = simulation_config(spool, []).state
    sim_dir = spool / ".sim"
    try:
        for directory in (state, sim_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Before the simulated modems: a second run on this spool must not replace (and at its
        # end remove) the first one's ports.
        lock = lock_directories(state, spool, elsewhere="give this one another --spool DIR")
    except OSError as error:
        click.echo(f"gsmgw run: cannot create {error.filename}: {error.strerror}; use another --spool", err=True)
        sys.exit(1)
    except StartupError as error:
        click.echo(f"gsmgw run: {error}", err=True)
        sys.exit(1)
    try:
        with SimNetwork(sim_dir, modems=simulate, latency=latency, control_socket=True) as network:
            config = simulation_config(spool, [m.path for m in network.modems])
            # The simulated network answers this code (gsmgw.sim.network.USSD_REPLIES), so the
            # console's and status's balance work in a demo as on a real SIM.
            config = dataclasses.replace(config, modems=tuple(
                dataclasses.replace(modem, balance=SIMULATED_BALANCE_CODE) for modem in config.modems))
            if base is not None:
                config = dataclasses.replace(base, spool=config.spool, state=config.state, modems=config.modems,
                                             probe_ports=config.probe_ports)
            config = with_simulated_console(config)
            _setup_logging(log_level or config.log_level)

            def started(gateway) -> None:
                gateway.ctx.simulator = network  # the console's /simulator page plays the outside phones
                console = getattr(gateway.ctx, "console", None)
                admin = console_admin(config)
                link = console.login_link(admin) if console is not None and admin else None
                click.echo(_banner(spool, network, config_option, link))

            status = asyncio.run(run_gateway(config, on_started=started, lock=lock))
    finally:
        lock.release()
    sys.exit(status)


def gsmgw_command(argv0: str | None = None) -> str:
    """How to type this gsmgw in a shell: `gsmgw` when that name on the PATH is this program,
    else its path (`./dev run` starts `.venv/bin/gsmgw`, which is not on the PATH), or
    `PYTHON -m gsmgw` when it was started so."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    on_path = shutil.which("gsmgw")
    if os.path.basename(argv0) in ("__main__.py", "-m", "-c"):
        if on_path and os.path.dirname(on_path) == os.path.dirname(sys.executable):
            return "gsmgw"  # the gsmgw script of this same environment
        return f"{shlex.quote(sys.executable)} -m gsmgw"
    program = shutil.which(argv0) if os.sep not in argv0 else argv0
    if program is None:
        return "gsmgw"
    if on_path and os.path.exists(program) and os.path.samefile(on_path, program):
        return "gsmgw"
    return shlex.quote(os.path.abspath(program))


def _banner(spool: Path, network, config_option: str | None, console_link: str | None = None) -> str:
    modems = network.modems
    target = modems[1].number if len(modems) > 1 else "+4915112345678"
    q = shlex.quote
    gsmgw = gsmgw_command()
    lines = [
        "",
        f"gsmgw is running on {len(modems)} simulated modem(s). Spool: {spool}",
        "",
        "  modem     number           port",
    ]
    for info in modems:
        lines.append(f"  {info.name:<9} {info.number:<16} {info.path}")
    if console_link:
        lines += [
            "",
            "Open the web console (the link signs you in once, within 10 minutes):",
            f"  {console_link}",
            f"Text the simulated SIMs from any number on its Simulator page, or: {gsmgw} simulate inject --spool {q(str(spool))} ...",
        ]
    lines += [
        "",
        "Send an SMS (any of these; a simulated number receives it back into incoming/):",
        f"  printf 'To: {target}\\n\\nHello from gsmgw\\n' > {q(str(spool / 'outgoing' / 'hello'))}",
        f"  {gsmgw} send --spool {q(str(spool))} --to {target} 'Hello again'",
        "",
        "Watch the results:",
        f"  ls {q(str(spool))}/sent {q(str(spool))}/incoming {q(str(spool))}/report {q(str(spool))}/failed",
        f"  {gsmgw} status --spool {q(str(spool))}",
        "",
        "Numbers outside the simulation (e.g. +4915112345678) are accepted and delivered by the network;",
        f"every submit is logged in {network.directory / 'network.jsonl'}.",
        "Stop with Ctrl-C (messages in flight are finished first).",
        "",
    ]
    return "\n".join(lines)
