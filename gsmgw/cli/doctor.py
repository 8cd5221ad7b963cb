"""`gsmgw doctor [-c CONFIG] [--json]`: the usual reasons a gateway does not work, with fixes.

Exit codes: 0 nothing needs fixing, 1 at least one finding (error or warning).
It never enters or prints a PIN. Run it as root (or as the gsmgw user) to see
every process's open ports and the SIM PIN file.
"""

from __future__ import annotations

import json
import sys

import click


@click.command("doctor")
@click.option("-c", "--config", "config_file", metavar="CONFIG",
              help="The config (default: $GSMGW_CONFIG, or /etc/gsmgw/gsmgw.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--no-modems", is_flag=True, help="Do not talk to the modems (only files, processes, USB).")
@click.option("--sys-root", default="/sys", hidden=True, help="Where /sys is (tests use a fixture tree).")
@click.option("--proc-root", default="/proc", hidden=True, help="Where /proc is (tests use a fixture tree).")
@click.option("--user", "daemon_user", default=None, hidden=True,
              help="Check permissions for this user instead of gsmgw.")
def doctor(config_file, as_json, no_modems, sys_root, proc_root, daemon_user):
    """Find the usual reasons a gateway does not work: ModemManager, sticks in mass-storage
    mode, port permissions, SIM PIN/PUK, network registration, SMSC, full SIM storage, spool
    permissions and a config that shows its PIN to everyone."""
    from gsmgw import doctor as doctor_module
    from gsmgw.config import config_path

    account = doctor_module.daemon_account(daemon_user) if daemon_user else None
    facts, secrets = doctor_module.gather(
        config_path(config_file), sys_root=sys_root, proc_root=proc_root, account=account,
        probe=None if no_modems else doctor_module.probe_modem,
    )
    findings = doctor_module.diagnose(facts)
    notes = doctor_module.notes(facts)
    if as_json:
        click.echo(json.dumps(doctor_module.render_json(findings, secrets, notes), indent=2))
    else:
        click.echo(doctor_module.render_text(findings, secrets, notes), nl=False)
    sys.exit(1 if findings else 0)
