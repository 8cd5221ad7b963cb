"""`gsmgw passwd [NAME]`: make the password hash of a console login (WEB.md "Accounts").

Reads the password twice from a terminal (once from a pipe, for scripts) and prints one line,
the hash, to store in the client's `web.password_file`. The clear password is never printed or
written anywhere.
"""

from __future__ import annotations

import getpass
import sys

import click

from gsmgw.passwords import DEFAULT_LN, MAX_LN, MIN_LN, hash_password

EXIT_BAD_INPUT = 2
MIN_LENGTH = 8


def _fail(message: str) -> None:
    click.echo(f"gsmgw passwd: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _read_password(name: str | None) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    who = f" for {name}" if name else ""
    first = getpass.getpass(f"Password{who}: ")
    second = getpass.getpass("Again: ")
    if first != second:
        _fail("the two passwords differ; nothing was printed, run it again")
    return first


@click.command("passwd")
@click.argument("name", required=False)
@click.option("--cost", type=click.IntRange(MIN_LN, MAX_LN), default=DEFAULT_LN, show_default=True,
              help="scrypt cost as log2(N); each step doubles the time and memory of a sign-in.")
def passwd(name: str | None, cost: int) -> None:
    """Print the hash of a console password, for a client's web.password_file.

    \b
    Example:
      gsmgw passwd anna > /etc/gsmgw/anna.pw && chmod 600 /etc/gsmgw/anna.pw
    and in the config:
      clients: [{name: anna, web: {password_file: /etc/gsmgw/anna.pw}, role: operator}]
    """
    password = _read_password(name)
    if len(password) < MIN_LENGTH:
        _fail(f"the password has {len(password)} characters; use at least {MIN_LENGTH}")
    click.echo(hash_password(password, ln=cost))
    if sys.stderr.isatty() and name:
        click.echo(f"store this line in the file named by web.password_file of client {name!r} (chmod 600)",
                   err=True)
