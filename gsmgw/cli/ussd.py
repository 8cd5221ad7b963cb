"""`gsmgw ussd MODEM CODE`: run a USSD code (a balance check, "*100#") on a modem of the running
gateway, and print the network's answer.

The daemon holds the modem's port, so this asks the daemon over its control socket
(STATE/control.sock, gsmgw.daemon.control); the modem pauses sending for the exchange only.
Exit status: 0 answered, 1 the gateway or the modem could not do it, 2 bad input.
"""

from __future__ import annotations

import json
import sys

import click

from gsmgw.cli.status import state_dir
from gsmgw.config import CONFIG_ENV
from gsmgw.daemon.control import ControlClient, ControlError
from gsmgw.ussd import USSD_TIMEOUT, UssdError, check_code

# TS 27.007 §7.15 <m> of +CUSD, for people.
STATUS_WORDS = {0: "done", 1: "the network expects an answer", 2: "ended by the network", 3: "answered by another client",
                4: "not supported by the network", 5: "the network timed out"}


@click.command("ussd")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help=f"Config file (default: ${CONFIG_ENV} or /etc/gsmgw/gsmgw.yaml); it names the state directory.")
@click.option("--state", "state_option", metavar="DIR", help="State directory of the running gateway (without -c no config is read).")
@click.option("--spool", "spool_option", metavar="DIR", help="Spool of a `gsmgw run --simulate` (its state is DIR/.state).")
@click.option("--timeout", type=click.FloatRange(1, 180), default=USSD_TIMEOUT, show_default=True,
              help="Seconds the network has to answer.")
@click.option("--json", "as_json", is_flag=True, help="Print {modem, code, status, text} as JSON.")
@click.argument("modem")
@click.argument("code")
def ussd(config_option, state_option, spool_option, timeout, as_json, modem, code):
    """Run the USSD CODE (e.g. "*100#") on MODEM of the running gateway; print the answer."""
    try:
        code = check_code(code)
    except UssdError as error:
        raise click.BadParameter(str(error), param_hint="CODE") from None
    client = ControlClient(state_dir(config_option, spool_option, state_option, "gsmgw ussd"))
    try:
        answer = client.request("ussd", wait=timeout + 90.0, modem=modem, code=code, timeout=timeout)
    except ControlError as error:
        click.echo(f"gsmgw ussd: {error}", err=True)
        sys.exit(2 if error.kind in ("bad_code", "unknown_modem", "bad_request") else 1)
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
        return
    if answer["text"] is not None:
        click.echo(answer["text"])
    if answer["status"] not in (0, 2) or answer["text"] is None:
        words = STATUS_WORDS.get(answer["status"], "unknown")
        click.echo(f"gsmgw ussd: {modem} {code}: +CUSD status {answer['status']} ({words})", err=True)
