"""`gsmgw send`: queue an SMS by writing a checked file into the spool's outgoing/.

The file is rendered and then read back with the daemon's own parser, so anything the daemon
would refuse (a bad number, too many parts, an unknown group) is refused here, with exit code 2,
before anything is written. Writing is atomic (temporary file, fsync, rename, fsync dir): the
name printed is a file that exists whole.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn
from datetime import datetime

import click

from gsmgw.config import CONFIG_ENV, Config, ConfigError, config_path, given_config_path, load_config
from gsmgw.sms import AddressError, normalize_number
from gsmgw.spool.format import PRIORITIES, SpoolFormatError, make_outgoing, parse_outgoing
from gsmgw.spool.store import Spool, SpoolError

EXIT_BAD_INPUT = 2
EXIT_SPOOL = 1


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"gsmgw send: {message}", err=True)
    sys.exit(code)


def _load(config_option: str | None, spool_option: str | None) -> Config | None:
    if given_config_path(config_option) is None and spool_option:
        return None  # groups and default_country then need -c
    path = config_path(config_option)
    try:
        # The PIN and tokens are the daemon's business; a user may send without reading them.
        return load_config(path, read_secrets=False)
    except ConfigError as exc:
        _fail(f"the config {path} cannot be used:\n{exc}\n(check it with: gsmgw check-config {path}; "
              "or give --spool DIR to send without it)")
    return None


def _read_text(text: str) -> str:
    if text != "-":
        return text
    data = sys.stdin.buffer.read()
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _fail(f"the text on standard input is not UTF-8 (byte {exc.start}); convert it with iconv -t UTF-8")
    # `echo text | gsmgw send -` adds one newline that is not part of the message (as in spool files).
    if decoded.endswith("\r\n"):
        return decoded[:-2]
    return decoded.removesuffix("\n")


@click.command("send")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help=f"Config file (default: ${CONFIG_ENV} or /etc/gsmgw/gsmgw.yaml).")
@click.option("--to", "to", multiple=True, metavar="NUMBER",
              help="Recipient; repeat it or separate numbers by commas. One file per recipient.")
@click.option("--group", "groups", multiple=True, metavar="NAME", help="A group from the config (To: group:NAME).")
@click.option("--report/--no-report", default=None, help="Ask for a delivery report (default: the config's).")
@click.option("--flash", is_flag=True, help="Send as a class-0 (flash) message.")
@click.option("--validity", metavar="V", help='Validity period: "30 min", "12 hours", "2 days", or 0-255.')
@click.option("--priority", type=click.Choice(PRIORITIES, case_sensitive=False), help="Queue priority.")
@click.option("--modem", metavar="NAME", help="Send only through this modem.")
@click.option("--expires", metavar="E", help='Give up if not sent by then: ISO-8601 time or a duration ("30 min").')
@click.option("--send-after", "send_after", metavar="T", help="Do not send before this ISO-8601 time (or duration).")
@click.option("--max-parts", "max_parts", type=click.IntRange(1, 255), help="Refuse a text that needs more parts.")
@click.option("--allow-empty", "allow_empty", is_flag=True, help="Send an empty TEXT (refused without this).")
@click.option("--spool", "spool_option", metavar="DIR",
              help="Spool directory (default: the config's spool:). Without -c, no config is read.")
@click.option("--dry-run", "dry_run", is_flag=True,
              help="Check the message and print what each recipient's SMS would cost (parts, encoding); queue nothing.")
@click.argument("text")
def send(config_option, to, groups, report, flash, validity, priority, modem, expires, send_after, max_parts,
         allow_empty, spool_option, dry_run, text):
    """Queue TEXT (or standard input, with -) for each recipient; print each file's name."""
    config = _load(config_option, spool_option)
    spool_dir = spool_option or (str(config.spool) if config is not None else None)
    if spool_dir is None and not dry_run:
        _fail("no spool directory: give --spool DIR or a config with spool:")
    default_country = config.default_country if config is not None else None
    numbers = []
    for item in (item.strip() for value in to for item in value.split(",")):
        if item:
            try:
                numbers.append(normalize_number(item, default_country))
            except AddressError as exc:
                _fail(f"--to: {exc}")
    numbers = list(dict.fromkeys(numbers))
    if not numbers and not groups:
        _fail("no recipient: give --to NUMBER (repeatable, or comma-separated) or --group NAME")
    known_groups = dict(config.groups) if config is not None else {}
    for group in groups:
        if group not in known_groups:
            known = ", ".join(sorted(known_groups)) or "no groups are configured"
            _fail(f"group {group!r} is not in the config ({known}); add it under groups: or use --to")
    if modem is not None and config is not None and config.modem(modem) is None:
        modem_names = ", ".join(m.name for m in config.modems)
        _fail(f"no modem named {modem!r} in the config (modems: {modem_names})")

    message_text = _read_text(text)
    if not message_text and not allow_empty:
        # An empty SMS is almost always a script whose variable was empty (the HTTP API refuses
        # one with 400 too); a deliberate one needs the flag.
        where = "standard input was empty" if text == "-" else "TEXT is empty"
        _fail(f"{where}, so the SMS would be empty; give the message text (or - to read it from "
              "standard input), or --allow-empty to send an empty SMS on purpose")
    now = datetime.now().astimezone()
    files = []
    parsed = None
    costs = []
    for recipient in numbers + [f"group:{group}" for group in groups]:
        try:
            data = make_outgoing(
                to=recipient, text=message_text, report=report, flash=flash, validity=validity,
                priority=priority, modem=modem, send_after=send_after, expires=expires, max_parts=max_parts,
            )
            parsed = parse_outgoing(
                data, now=now,
                default_country=default_country,
                defaults=config.defaults if config is not None else None,
                groups=known_groups,
            )
        except SpoolFormatError as exc:
            _fail(exc.reason)
        files.append(data)
        costs.append(f"{recipient}: {_cost(parsed)}")
    if dry_run:
        # The same check and count as a real send (the daemon's parser with the config's
        # national_languages), so the figures are what the daemon will send.
        for line in costs:
            click.echo(line)
        return

    assert spool_dir is not None  # refused above unless --dry-run, which has returned
    spool = Spool(spool_dir)
    try:
        os.makedirs(spool.path("outgoing"), exist_ok=True)
        names = spool.submit_many(files)
    except (OSError, SpoolError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        _fail(f"cannot write into {spool.path('outgoing')}: {reason}; check that the directory exists and "
              "that you may write to it (e.g. be in the gsmgw group)", EXIT_SPOOL)
    for name in names:
        click.echo(name)
    if parsed is not None and sys.stderr.isatty():
        # For a person at a terminal only: scripts read the names on stdout and nothing else.
        click.echo(f"gsmgw send: {_cost(parsed, ' each')}", err=True)


def _cost(message, each: str = "") -> str:
    """ "2 SMS parts, GSM-7 with the Hindi locking and single shift tables" for a parsed message."""
    plural = "s" if message.parts > 1 else ""
    encoding = message.encoding.describe() if message.encoding is not None else message.alphabet
    return f"{message.parts} SMS part{plural}{each}, {encoding}"
