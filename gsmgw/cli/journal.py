"""`gsmgw journal migrate|export|import|reindex`: the journal's schema, moving a host onto
PostgreSQL, and its message index.

- `migrate`: bring the journal's schema to this gsmgw's version. For PostgreSQL (`journal:`) run it
  once, from one host, after an upgrade (a new database is made by the first member that starts);
  the SQLite journal is migrated by the daemon itself at start, and this only says its version.
- `export`: a single host's SQLite journal as JSON lines (stdout, or -o FILE), while that host's
  daemon is stopped.
- `import`: those lines into the PostgreSQL journal of the config (`journal:`), as the messages of
  its `cluster.member`, all or nothing.
- `reindex`: rebuild the message index from the spool. The daemon keeps the index current as
  messages move, and at start indexes what changed while it was stopped (or builds the index of a
  spool an earlier gsmgw wrote). This rebuilds it from scratch: after restoring a spool from a
  backup, or when the index file was lost. It reads every file of sent/, failed/, checked/,
  outgoing/ and incoming/, and refuses while a daemon keeps the same state directory (that
  daemon's own updates would race with the rebuild).

Moving a host: stop gsmgw; `gsmgw journal export -c gsmgw.yaml -o journal.jsonl`; add `journal:`
and `cluster:` to the config; `gsmgw journal import -c gsmgw.yaml journal.jsonl`; start gsmgw.
Exit status: 0 done, 1 refused or failed (the message says why and what to do), 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from gsmgw.cli.status import _dirs
from gsmgw.config import CONFIG_ENV, ConfigError, config_path, load_config
from gsmgw.daemon.lock import AlreadyRunning, DaemonLock
from gsmgw.spool.index import INDEX_FILE, IndexError_, MessageIndex, PostgresIndex
from gsmgw.spool.store import Spool

FORMAT = "gsmgw-journal-export"
FORMAT_VERSION = 1


def _config(option: str | None):
    path = config_path(option)
    try:
        return load_config(path, read_secrets=False, modems_required=False)
    except ConfigError as error:
        click.echo(f"gsmgw journal: the config {path} cannot be used:\n{error}", err=True)
        sys.exit(1)


def _fail(message: str) -> None:
    click.echo(f"gsmgw journal: {message}", err=True)
    sys.exit(1)


@click.group("journal")
def journal() -> None:
    """Work on the journal: its schema, moving a host's SQLite journal into PostgreSQL, its index."""


@journal.command("migrate")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help=f"Config file (default: ${CONFIG_ENV} or /etc/gsmgw/gsmgw.yaml).")
def migrate_command(config_option):
    """Bring the journal's schema to this gsmgw's version."""
    from gsmgw.spool.journal import JOURNAL_FILE, JournalError, SqliteJournal

    config = _config(config_option)
    if config.journal is None:
        try:
            sqlite = SqliteJournal(Path(config.state) / JOURNAL_FILE)
        except JournalError as error:
            _fail(str(error))
        click.echo(f"the SQLite journal {Path(config.state) / JOURNAL_FILE} has schema {sqlite.schema_version()} "
                   f"(gsmgw migrates it at start)")
        sqlite.close()
        return
    from gsmgw.spool.journal.postgresql import SCHEMA_VERSION, masked_dsn, migrate

    try:
        before, after = migrate(config.journal)
    except JournalError as error:
        _fail(f"{error} ({masked_dsn(config.journal)}); check journal: in the config and that PostgreSQL runs")
    if after > SCHEMA_VERSION:
        _fail(f"the journal in {masked_dsn(config.journal)} has schema {after}, newer than this gsmgw knows "
              f"({SCHEMA_VERSION}); upgrade gsmgw on this host")
    if before == after:
        click.echo(f"the journal in {masked_dsn(config.journal)} has schema {after}: nothing to do")
    else:
        click.echo(f"the journal in {masked_dsn(config.journal)} migrated from schema {before} to {after}")


@journal.command("export")
@click.option("-c", "--config", "config_option", metavar="CONFIG", help="Config file (its state: directory).")
@click.option("--state", "state_option", metavar="DIR", help="State directory (default: the config's state:).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write here, not to stdout.")
def export_command(config_option, state_option, output):
    """Write this host's SQLite journal as JSON lines (the daemon must be stopped)."""
    from gsmgw.daemon.lock import holder
    from gsmgw.spool.journal import JOURNAL_FILE, JournalError, SqliteJournal

    state = Path(state_option) if state_option else Path(_config(config_option).state)
    path = state / JOURNAL_FILE
    if not path.exists():
        _fail(f"there is no SQLite journal at {path}; give the state directory of the host to move (--state)")
    pid = holder(state)
    if pid is not None:
        _fail(f"the daemon (pid {pid}) runs on {state}; stop it first (systemctl stop gsmgw), so that "
              f"nothing changes after the export")
    try:
        sqlite = SqliteJournal(path)
    except JournalError as error:
        _fail(str(error))
    out = open(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        out.write(json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "schema": sqlite.schema_version(),
                              "source": str(path)}) + "\n")
        count = 0
        for table, row in sqlite.export_rows():
            out.write(json.dumps({"table": table, "row": row}) + "\n")
            count += table == "message"
    finally:
        sqlite.close()
        if output:
            out.close()
    click.echo(f"exported {count} messages from {path}", err=True)


@journal.command("import")
@click.option("-c", "--config", "config_option", metavar="CONFIG",
              help="Config file with journal: (PostgreSQL) and cluster.member: the member the messages become.")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
def import_command(config_option, source):
    """Read `gsmgw journal export` lines into the config's PostgreSQL journal."""
    from gsmgw.spool.journal import JournalError
    from gsmgw.spool.journal.postgresql import PostgresJournal, masked_dsn

    config = _config(config_option)
    if config.journal is None:
        _fail("the config has no journal: (the PostgreSQL database to import into); add journal: and cluster: "
              "as README's \"Several hosts\" shows")
    header_line = source.readline()
    try:
        header = json.loads(header_line)
        if header.get("format") != FORMAT:
            raise ValueError("not a journal export")
    except (ValueError, AttributeError):
        _fail(f"{source.name} is not the output of `gsmgw journal export`")
    if header.get("version") != FORMAT_VERSION:
        _fail(f"{source.name} was written by another gsmgw version (format {header.get('version')}); export again "
              f"with this one")

    def records():
        for number, line in enumerate(source, 2):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                yield item["table"], item["row"]
            except (ValueError, KeyError, TypeError):
                _fail(f"{source.name}:{number}: not a line of `gsmgw journal export`; nothing was imported")

    try:
        # A large journal takes its time: the daemon's short timeout is for its loop, not for this.
        target = PostgresJournal(config.journal, member=config.cluster.member, lease=config.cluster.lease,
                                 timeout=3600.0)
    except JournalError as error:
        _fail(f"{error} ({masked_dsn(config.journal)})")
    try:
        counts = target.import_rows(records())
    except JournalError as error:
        _fail(str(error))
    finally:
        target.close()
    summary = ", ".join(f"{table}: {n}" for table, n in sorted(counts.items())) or "nothing"
    click.echo(f"imported into {masked_dsn(config.journal)} as member {config.cluster.member} (rows per table): {summary}")


@journal.command("reindex")
@click.option("-c", "--config", "config_option", metavar="CONFIG", help="Config file (spool: and state:).")
@click.option("--spool", "spool_option", metavar="DIR", help="Spool directory (a `run --simulate` spool without -c).")
@click.option("--state", "state_option", metavar="DIR", help="State directory (default: the config's, or SPOOL/.state).")
def reindex(config_option, spool_option, state_option) -> None:
    """Rebuild the message index (conversations, console, `gsmgw thread`) from the spool."""
    from gsmgw.daemon.indexer import rebuild

    spool_dir, state_dir, config = _dirs(config_option, spool_option, state_option)
    cluster = config is not None and config.journal is not None
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
            index = PostgresIndex(config.journal, config.cluster.member) if cluster else MessageIndex(
                state_dir / INDEX_FILE)
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
               f"({index.path if cluster else state_dir / INDEX_FILE})")
