"""The `gsmgw` command line (click).

Each subcommand lives in its own module under gsmgw/cli/ and is imported only
when it is run, so `gsmgw pdu decode` does not pay for aiohttp or the daemon.
The commands stay thin: parse arguments, load config, call into the packages.
"""

from __future__ import annotations

import importlib

import click

from gsmgw import __version__

# command name -> ("module:attribute" under gsmgw.cli, one-line help).
# The help is kept here so that `gsmgw --help` imports no command module.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run:run", "Run the gateway daemon (or on simulated modems)."),
    "simulate": ("simulate:simulate", "Run only simulated modems on pseudo-terminals."),
    "send": ("send:send", "Queue an SMS by writing a file into outgoing/."),
    "status": ("status:status", "Show modems, queues and recent failures."),
    "probe": ("probe:probe", "Identify the modems on serial ports."),
    "check-config": ("check_config:check_config", "Validate a config file."),
    "doctor": ("doctor:doctor", "Find the usual reasons a gateway does not work."),
    "pdu": ("pdu:pdu", "Encode or decode SMS PDUs."),
    "passwd": ("passwd:passwd", "Print the password hash of a web console login."),
    "journal": ("journal:journal", "Migrate the journal's schema, move a host's journal into PostgreSQL, rebuild its index."),
    "thread": ("thread:thread", "Print the conversation with a number."),
    "ussd": ("ussd:ussd", "Run a USSD code (e.g. a balance check) on a modem of the running gateway."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        module = importlib.import_module(f"gsmgw.cli.{module_name}")
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="gsmgw")
def main() -> None:
    """gsmgw: an SMS gateway for USB GSM modems.

    Drop a file into the spool's outgoing/ directory (or use `gsmgw send`)
    and it goes out through the SIM pool. Start with
    `gsmgw run --simulate 2 --spool ./demo-spool` to try it without hardware.
    """
