"""`gsmgw journal reindex`: rebuild the journal's message index from the spool.

The daemon keeps the index current as messages move, and at start indexes what changed while it
was stopped (or builds the index of a spool an earlier gsmgw wrote). This command rebuilds it
from scratch: after restoring a spool from a backup, or when the index file was lost. It reads
every file of sent/, failed/, checked/, outgoing/ and incoming/, and refuses while a daemon
keeps the same state directory (that daemon's own updates would race with the rebuild).
"""

from __future__ import annotations

import sys
import time

import click

from gsmgw.cli.status import _dirs
from gsmgw.daemon.lock import AlreadyRunning, DaemonLock
from gsmgw.spool.index import INDEX_FILE, IndexError_, MessageIndex
from gsmgw.spool.store import Spool


@click.group("journal")
def journal() -> None:
    """Work on the daemon's journal (state directory)."""


@journal.command("reindex")
@click.option("-c", "--config", "config_option", metavar="CONFIG", help="Config file (spool: and state:).")
@click.option("--spool", "spool_option", metavar="DIR", help="Spool directory (a `run --simulate` spool without -c).")
@click.option("--state", "state_option", metavar="DIR", help="State directory (default: the config's, or SPOOL/.state).")
def reindex(config_option, spool_option, state_option) -> None:
    """Rebuild the message index (conversations, console, `gsmgw thread`) from the spool."""
    from gsmgw.daemon.indexer import rebuild

    spool_dir, state_dir, _ = _dirs(config_option, spool_option, state_option)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        # The daemon's own locks: a running daemon keeps the index current and its updates would
        # race with the rebuild, and no daemon may start until the rebuild is done.
        lock = DaemonLock.acquire(state_dir, spool_dir)
    except AlreadyRunning as error:
        click.echo(f"gsmgw journal reindex: {error} A running daemon keeps the index current itself.", err=True)
        sys.exit(1)
    except OSError as error:
        click.echo(f"gsmgw journal reindex: cannot lock {state_dir}: {error.strerror}; run it as the user gsmgw "
                   "runs as", err=True)
        sys.exit(1)
    try:
        try:
            index = MessageIndex(state_dir / INDEX_FILE)
        except IndexError_ as error:
            click.echo(f"gsmgw journal reindex: {error}", err=True)
            sys.exit(1)
        started = time.monotonic()
        try:
            count = rebuild(index, Spool(spool_dir))
        finally:
            index.close()
    finally:
        lock.release()
    click.echo(f"indexed {count} messages from {spool_dir} in {time.monotonic() - started:.1f} s "
               f"({state_dir / INDEX_FILE})")
