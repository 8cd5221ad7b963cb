"""`gsmgw check-config [FILE]`: validate a config, listing every problem at once.

Exit codes: 0 the config is valid (warnings may be printed), 1 it has errors, 2 the file cannot
be read (or a usage error). Each problem is one line, `FILE:LINE: KEY: what is wrong; what to
write instead`, on standard output.
"""

from __future__ import annotations

import sys

import click

from gsmgw import config as gsmgw_config

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


@click.command("check-config")
@click.option("-c", "--config", "config_option", metavar="CONFIG", help="Same as FILE.")
@click.argument("file", required=False)
def check_config_command(config_option, file):
    """Validate FILE (default: -c, $GSMGW_CONFIG, or /etc/gsmgw/gsmgw.yaml)."""
    path = gsmgw_config.config_path(file or config_option)
    try:
        # Without modems a config is still whole for `run --simulate`; the warning says so.
        result = gsmgw_config.check_config(path, modems_required=False)
    except gsmgw_config.ConfigUnreadable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_UNREADABLE)
    for issue in result.errors:
        click.echo(issue.render(path))
    for issue in result.warnings:
        click.echo("warning: " + issue.render(path))
    if result.errors:
        count = len(result.errors)
        click.echo(f"{path}: {count} error{'s' if count != 1 else ''}")
        sys.exit(EXIT_INVALID)
    click.echo(f"{path}: OK")
    sys.exit(EXIT_OK)


# gsmgw.cli looks the command up by this name.
check_config = check_config_command
