"""`gsmgw status`: what the daemon is doing, from the status file it keeps in the state dir.

It reads only files (status.json in the state directory, failed/ for recent failures), so it
works as any user who can read them, without talking to the daemon. Exit status: 0 when a status
file was read (also a stale one: the output says so), 1 when there is none. `--json` prints one
object with the keys of docs/spool.md (status.json) also then (`updated: null`, every configured
modem `absent`), so a script reading it never has to handle empty output.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from gsmgw.config import CONFIG_ENV, ConfigError, config_path, given_config_path, load_config
from gsmgw.daemon.status import ModemStatus, StatusUnavailable, format_table, read_status, snapshot
from gsmgw.spool.format import read_spool_file
from gsmgw.spool.store import Spool

RECENT_FAILURES = 5


def _dirs(config_option: str | None, spool_option: str | None, state_option: str | None):
    """(spool dir or None, state dir, config or None). `--spool`/`--state` without a config named
    (-c, $GSMGW_CONFIG) read none: a host that has none (a `run --simulate`, a copy of a state
    dir) must not be sent looking for /etc/gsmgw/gsmgw.yaml."""
    if (spool_option or state_option) and given_config_path(config_option) is None:
        spool = Path(spool_option) if spool_option else None
        if state_option:
            return spool, Path(state_option), None
        assert spool is not None  # one of the two was given
        return spool, spool / ".state", None  # as `run --simulate`
    path = config_path(config_option)
    try:
        config = load_config(path, read_secrets=False)
    except ConfigError as error:
        click.echo(
            f"gsmgw status: the config {path} cannot be used:\n{error}\n"
            f"(give -c CONFIG, or --spool DIR for a `gsmgw run --simulate` spool)",
            err=True,
        )
        sys.exit(1)
    spool = Path(spool_option) if spool_option else config.spool
    return spool, Path(state_option) if state_option else config.state, config


def state_dir(config_option: str | None, spool_option: str | None, state_option: str | None, command: str) -> Path:
    """The state directory of the gateway a command talks to: --state, --spool's .state, or the
    config's state: (-c, $GSMGW_CONFIG, the default config)."""
    if state_option:
        return Path(state_option)
    if spool_option and given_config_path(config_option) is None:
        return Path(spool_option) / ".state"
    path = config_path(config_option)
    try:
        return load_config(path, read_secrets=False).state
    except ConfigError as error:
        click.echo(f"{command}: the config {path} cannot be used:\n{error}\n(give -c CONFIG or --state DIR)", err=True)
        sys.exit(2)


def _balances(state: Path) -> tuple[dict, str | None]:
    """{modem: balance or {"error", "kind"}} from the running daemon, and an error line."""
    from gsmgw.daemon.control import ControlClient, ControlError

    try:
        return ControlClient(state).request("balance", wait=120.0), None
    except ControlError as error:
        return {}, str(error)


def _without_daemon(config, spool_dir: Path | None, reason: str) -> dict:
    """The status object when the daemon has written none: the configured modems, all absent."""
    modems = []
    if config is not None:
        for modem in config.modems:
            kind, value = modem.binding
            modems.append(ModemStatus(modem.name, state="absent", port=value if kind == "port" else None,
                                      last_error=reason))
    depths = {}
    if spool_dir is not None:
        spool = Spool(spool_dir)
        for name in ("outgoing", "checked"):
            try:
                depths[name] = spool.depth(name)
            except OSError:  # unreadable: the stderr line already says the status is unavailable
                depths[name] = 0
    current = snapshot(modems, {}, depths, 0, time.time())
    current["updated"] = None
    return current


def _recent_failures(spool_dir: Path | None) -> list[tuple[str, str]]:
    if spool_dir is None:
        return []
    spool = Spool(spool_dir)
    names = spool.list("failed", order="mtime")[-RECENT_FAILURES:]
    result = []
    for name in reversed(names):
        try:
            reason = read_spool_file(spool.read("failed", name)).headers.get("Fail_reason")
        except (OSError, ValueError):
            reason = None
        result.append((name, reason or "(moved to failed/ unread: not a regular file or too large)"))
    return result


@click.command("status")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help=f"Config file (default: ${CONFIG_ENV} or /etc/gsmgw/gsmgw.yaml).")
@click.option("--spool", "spool_option", metavar="DIR",
              help="Spool directory of a `gsmgw run --simulate` (its state is DIR/.state).")
@click.option("--state", "state_option", metavar="DIR",
              help="State directory (default: the config's state:); without -c no config is read.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the status as one JSON object (docs/spool.md, status.json).")
@click.option("--balance", "with_balance", is_flag=True,
              help="Also ask the running gateway for each modem's balance (its balance: USSD code).")
def status(config_option, spool_option, state_option, as_json, with_balance):
    """Show each modem's state, signal, operator and counters, queue depths and recent failures."""
    spool_dir, state, config = _dirs(config_option, spool_option, state_option)
    try:
        current = read_status(state)
    except StatusUnavailable as error:
        click.echo(f"gsmgw status: {error}", err=True)
        if as_json:
            click.echo(json.dumps(_without_daemon(config, spool_dir, "the daemon has not written a status"), indent=1))
        sys.exit(1)
    balances, problem = _balances(state) if with_balance else ({}, None)
    if problem is not None:
        click.echo(f"gsmgw status: no balances: {problem}", err=True)
    if with_balance:
        for modem in current.get("modems", []):
            modem["balance"] = balances.get(modem.get("name"))  # null: no balance: code (or no answer)
    if as_json:
        click.echo(json.dumps(current, indent=1, ensure_ascii=False))
        return
    click.echo(format_table(current, time.time(), _recent_failures(spool_dir)), nl=False)
    if with_balance and balances:
        click.echo("\nBalance")
        for name, value in balances.items():
            if "error" in value:
                click.echo(f"  {name}: not known: {value['error']}")
            else:
                click.echo(f"  {name}: {value['text']}  ({value['code']}, {value['checked']})")
    if problem is not None:
        sys.exit(1)
