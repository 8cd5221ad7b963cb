"""`gsmgw thread NUMBER`: one conversation in the terminal, from the journal's message index
(the same rows the web console's thread shows), oldest first."""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import datetime

import click

from gsmgw.cli.status import _dirs
from gsmgw.sms import AddressError, normalize_number
from gsmgw.spool.index import IN, INDEX_FILE, IndexError_, MessageIndex, PostgresIndex, Scope


def printable(text: str) -> str:
    """Text from outside made safe for a terminal: control and format characters (escape
    sequences, RTL overrides) are shown as \\x../\\u.... escapes; newlines stay."""
    out = []
    for char in text:
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command("thread")
@click.argument("number")
@click.option("-c", "--config", "config_option", metavar="CONFIG", help="Config file (spool: and state:).")
@click.option("--spool", "spool_option", metavar="DIR", help="Spool directory (a `run --simulate` spool without -c).")
@click.option("--state", "state_option", metavar="DIR", help="State directory (default: the config's, or SPOOL/.state).")
@click.option("--limit", type=click.IntRange(1, 100000), default=500, show_default=True, help="The newest N messages.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message, one per line.")
def thread(number, config_option, spool_option, state_option, limit, as_json) -> None:
    """Print the conversation with NUMBER: what was sent to it and received from it."""
    _, state_dir, config = _dirs(config_option, spool_option, state_option)
    text = number.strip()
    try:
        wanted = normalize_number(text, config.default_country if config else None)
    except AddressError:
        wanted = text  # an alphanumeric sender ("Vodafone") is looked up as written
    path = state_dir / INDEX_FILE
    cluster = config is not None and config.journal is not None
    if not cluster and not path.exists():
        click.echo(f"gsmgw thread: there is no message index at {path}; the daemon makes it at its start, "
                   "or run `gsmgw journal reindex` with the same -c/--spool", err=True)
        sys.exit(1)
    try:
        index = PostgresIndex(config.journal, config.cluster.member) if cluster else MessageIndex(path)
    except IndexError_ as error:
        click.echo(f"gsmgw thread: {error}", err=True)
        sys.exit(1)
    try:
        messages = index.thread(Scope.all(), wanted, limit=limit)
        contact = index.contact(wanted)
    finally:
        index.close()
    if as_json:
        for m in messages:
            click.echo(json.dumps({
                "id": m.id, "direction": m.direction, "number": m.number, "state": m.state,
                "time": datetime.fromtimestamp(m.at).astimezone().isoformat(timespec="seconds"),
                "text": m.text, "modem": m.modem, "client": m.client, "campaign": m.campaign,
                "fail_reason": m.fail_reason,
            }, ensure_ascii=False))
        return
    title = printable(f"{wanted} ({contact.name})" if contact else wanted)
    if not messages:
        click.echo(f"no messages with {title}")
        return
    click.echo(f"conversation with {title}: {len(messages)} message(s)")
    for m in messages:
        arrow = "<-" if m.direction == IN else "->"
        state = m.state + (f" ({printable(m.fail_reason)})" if m.fail_reason else "")
        via = f"  [{m.modem}]" if m.modem else ""
        body = printable(m.text or "").replace("\n", "\n" + " " * 24)
        click.echo(f"{_when(m.at)}  {arrow} {state:<10} {body}{via}")
