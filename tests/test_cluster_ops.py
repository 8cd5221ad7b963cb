"""Operating a cluster (CLUSTER.md "Operations"): the config keys, `gsmgw journal migrate|export|
import`, `gsmgw doctor`'s journal checks, `gsmgw status` with its members, /metrics' member label."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest
from prometheus_client import generate_latest

from gsmgw.config import check_text
from gsmgw.daemon.cluster import member_status, remote_views
from gsmgw.daemon.metrics import Metrics
from gsmgw.daemon.status import format_table
from gsmgw.doctor import Facts, JournalFacts, check_journal, gather_journal
from gsmgw.spool.journal import MemberRow, NewMessage, NewPart, SqliteJournal
from gsmgw.spool.journal.postgresql import SCHEMA_VERSION, PostgresJournal
from helpers import free_port

GSMGW = [sys.executable, "-m", "gsmgw"]
BASE = "spool: /tmp/s\nmodems: [{name: a1, port: /dev/ttyUSB0}]\n"


def config_of(text: str):
    result = check_text(BASE + text)
    return result.config, [issue.render() for issue in result.errors], [issue.render() for issue in result.warnings]


# -- config ---------------------------------------------------------------------------------------

def test_journal_and_cluster_keys():
    config, errors, _ = config_of(
        "journal: postgresql://gsmgw@db1,db2/gsmgw?target_session_attrs=read-write\n"
        "cluster: {member: gw-a, lease: 20 s}\n")
    assert errors == []
    assert config.journal == "postgresql://gsmgw@db1,db2/gsmgw?target_session_attrs=read-write"
    assert (config.cluster.member, config.cluster.lease) == ("gw-a", 20.0)


def test_without_journal_nothing_changes_and_the_member_defaults_to_the_host_name():
    import socket

    config, errors, _ = config_of("")
    assert errors == [] and config.journal is None and config.cluster is None
    config, errors, _ = config_of("journal: postgresql://gsmgw@db/gsmgw\n")
    assert errors == [] and config.cluster.member == socket.gethostname() and config.cluster.lease == 30.0


@pytest.mark.parametrize("text, message", [
    ("cluster: {member: gw-a}\n", "cluster: needs journal:"),
    ("journal: mysql://db/gsmgw\n", "not a PostgreSQL URI"),
    ("journal: postgresql://db\n", "not a PostgreSQL URI"),
    ("journal: postgresql://gsmgw@db/gsmgw\ncluster: {member: gw/a}\n", "not a member name"),
    ("journal: postgresql://gsmgw@db/gsmgw\ncluster: {lease: 1 s}\n", "too short"),
    ("journal: postgresql://gsmgw@db/gsmgw\ncluster: {member: gw-a, leese: 3 s}\n", "leese"),
])
def test_cluster_config_errors_say_what_to_write(text, message):
    config, errors, _ = config_of(text)
    assert config is None and any(message in error for error in errors), errors


def test_a_password_in_the_dsn_is_warned_about():
    _, errors, warnings = config_of("journal: postgresql://gsmgw:s3cret@db/gsmgw\ncluster: {member: gw-a}\n")
    assert errors == [] and any("~/.pgpass" in warning for warning in warnings)


# -- doctor ---------------------------------------------------------------------------------------

def journal_facts(**kw) -> Facts:
    return Facts(journal=JournalFacts(dsn="postgresql://gsmgw@db/gsmgw", member="gw-a", **kw))


@pytest.mark.parametrize("facts, check, severity, words", [
    (dict(error="connection refused"), "journal", "error", "cannot connect: connection refused"),
    (dict(schema=0), "journal-schema", "warning", "no gsmgw journal"),
    (dict(schema=1, expected=2), "journal-schema", "error", "needs 2"),
    (dict(schema=3, expected=2), "journal-schema", "error", "newer"),
    (dict(schema=1, skew=4.2), "clock", "warning", "+4.2 s off"),
    (dict(schema=1, skew=-40.0), "clock", "error", "-40.0 s off"),
    (dict(schema=1, skew=0.1, members=(("gw-b", True, 7.0),)), "clock", "warning", "its clock is +7.0 s"),
    (dict(schema=1, skew=0.1, modem_clashes=(("gsm1", "gw-b"),)), "modem-name", "warning", "gw-b also has"),
])
def test_doctor_checks_the_journal(facts, check, severity, words):
    (finding,) = check_journal(journal_facts(**facts))
    assert (finding.check, finding.severity) == (check, severity) and words in finding.problem
    assert finding.fix


def test_doctor_finds_nothing_wrong_with_a_healthy_journal(postgres):
    dsn = postgres.new_database()
    member = PostgresJournal(dsn, member="gw-b")
    try:
        member.join(host="b", pid=1, version="test")
        member.renew([{"name": "b1", "state": "ready"}], time.time())
        config, errors, _ = config_of(f"journal: {json.dumps(dsn)}\ncluster: {{member: gw-a}}\n")
        facts = gather_journal(config)
        assert (facts.schema, facts.error) == (SCHEMA_VERSION, None) and abs(facts.skew) < 1
        assert facts.members[0][0] == "gw-b"
        assert check_journal(Facts(journal=facts)) == []
        # A modem name another member uses too is found.
        clash = check_text(BASE.replace("a1", "b1") + f"journal: {json.dumps(dsn)}\ncluster: {{member: gw-a}}\n").config
        assert gather_journal(clash).modem_clashes == (("b1", "gw-b"),)
    finally:
        member.close()


def test_doctor_says_when_the_journal_cannot_be_reached():
    config, _, _ = config_of(f"journal: postgresql://gsmgw@127.0.0.1:{free_port()}/gsmgw\ncluster: {{member: gw-a}}\n")
    facts = gather_journal(config)
    assert facts.error and "127.0.0.1" in facts.error
    (finding,) = check_journal(Facts(journal=facts))
    assert finding.severity == "error" and "psql" in finding.fix


# -- status and metrics ---------------------------------------------------------------------------

def test_status_shows_every_member_and_its_modems():
    members = [
        MemberRow("gw-a", "host-a", 1, "0.1.0", True, 28.0, 0.0, 0.01, ({"name": "a1", "state": "ready"},)),
        MemberRow("gw-b", "host-b", 2, "0.1.0", False, -9.0, 0.0, 0.02,
                  ({"name": "b1", "state": "busy", "imsi": "262010000000001"},)),
    ]
    status = {"updated": "2026-12-06T10:00:00+00:00", "modems": [], "queue": {},
              "journal": {"backend": "postgresql", "member": "gw-a", "state": "ok", "reason": None},
              "members": [member_status(m, "gw-a") for m in members]}
    text = format_table(status, time.time())
    assert "gw-a (this host)" in text and "host-b" in text
    line = next(line for line in text.splitlines() if line.startswith("gw-b"))
    assert "down" in line and "b1" in line and "absent" in line  # a dead member's modems are absent
    assert remote_views(members, "gw-a")["b1"].state == "absent"
    status["journal"].update(state="journal unreachable", reason="connection refused")
    assert "JOURNAL UNREACHABLE (connection refused)" in format_table(status, time.time())


def test_metrics_of_a_member_carry_its_name():
    metrics = Metrics(member="gw-a")
    metrics.add_modem("a1")
    metrics.sent.labels("a1").inc()
    text = generate_latest(metrics.registry).decode()
    assert 'gsmgw_messages_sent_total{member="gw-a",modem="a1"} 1.0' in text
    assert 'member="' not in generate_latest(Metrics().registry).decode()  # a single host: as before


# -- what members see of each other --------------------------------------------------------------

def test_members_see_each_others_modems_come_up_and_the_leave_at_once(postgres):
    """Not a renewal later: with a 60 s lease a member renews every 15 s, and the waits below are 5 s."""
    import asyncio

    from gsmgw.daemon.cluster import Membership

    dsn = postgres.new_database()
    journals = []

    def member(name, records):
        journal = PostgresJournal(dsn, member=name, lease=60.0)
        journals.append(journal)

        async def nothing_to_file():
            return 0

        return Membership(journal, lease=60.0, version="test", modems=lambda: records, held=lambda: [],
                          on_rejoin=lambda: None, file_results=nothing_to_file, wake=lambda: None,
                          on_change=lambda: None)

    async def until(predicate, what):
        deadline = time.monotonic() + 5
        while not predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.02)

    async def scenario():
        a_modems = [{"name": "a1", "state": "starting"}]
        a, b = member("gw-a", a_modems), member("gw-b", [{"name": "b1", "state": "ready"}])
        stopping = asyncio.Event()
        tasks = []
        for one in (a, b):
            one.join()
            one.start()
            tasks.append(asyncio.ensure_future(one.run(stopping)))
        try:
            await until(lambda: "a1" in b.views, "gw-b sees gw-a")
            with psycopg.connect(dsn, autocommit=True) as connection:
                await until(lambda: connection.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'gsmgw gw-b listen' "
                    "AND query LIKE 'LISTEN gsmgw_members%'").fetchone()[0] == 1, "gw-b listening")
            a_modems[0] = {"name": "a1", "state": "ready"}
            a.modems_changed()
            await until(lambda: b.views["a1"].state == "ready", "gw-b sees a1 come up")
            # Its own row in its status is as its modems are now (busy is no news for the others).
            a_modems[0] = {"name": "a1", "state": "busy"}
            a.modems_changed()
            (mine,) = [m for m in a.status()["members"] if m["self"]]
            assert [modem["state"] for modem in mine["modems"]] == ["busy"]
            await a.stop()
            await until(lambda: b.views["a1"].state == "absent", "gw-b sees gw-a leave")
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()  # as the daemon does: a round waits up to a renewal otherwise
            await asyncio.gather(*tasks, return_exceptions=True)
            await b.stop()

    try:
        asyncio.run(scenario())
    finally:
        for journal in journals:
            journal.close()


# -- gsmgw journal migrate | export | import ------------------------------------------------------

def write_config(tmp_path, dsn=None, member="gw-a"):
    lines = [f"spool: {tmp_path / 'spool'}", f"state: {tmp_path / 'state'}", "modems: [{name: a1, port: /dev/null}]"]
    if dsn:
        lines += [f"journal: {json.dumps(dsn)}", f"cluster: {{member: {member}}}"]
    path = tmp_path / f"gsmgw-{'pg' if dsn else 'sqlite'}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_migrate_makes_the_schema_once(tmp_path, postgres):
    config = write_config(tmp_path, postgres.new_database())
    first = subprocess.run(GSMGW + ["journal", "migrate", "-c", str(config)], capture_output=True, text=True)
    assert first.returncode == 0 and f"migrated from schema 0 to {SCHEMA_VERSION}" in first.stdout
    again = subprocess.run(GSMGW + ["journal", "migrate", "-c", str(config)], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    sqlite = subprocess.run(GSMGW + ["journal", "migrate", "-c", str(write_config(tmp_path))],
                            capture_output=True, text=True)
    assert sqlite.returncode == 0 and "gsmgw migrates it at start" in sqlite.stdout


def test_a_hosts_sqlite_journal_moves_into_postgresql(tmp_path, postgres):
    state = tmp_path / "state"
    sqlite = SqliteJournal(state / "journal.sqlite")
    parts = [NewPart(1, "0011", 20), NewPart(2, "0022", 21)]
    sqlite.add_messages([NewMessage("waiting", "+4915100000001", parts, report=True),
                         NewMessage("done", "+4915100000002", [NewPart(1, "0033", 22)])], 1_800_000_000.0)
    assert sqlite.claim("done", "a1")
    sqlite.mark_submitting("done", 1, "a1", "sim1")
    sqlite.mark_submitted("done", 1, 17, 1_800_000_001.0, sim="sim1", report=False)
    sqlite.mark_sent("done", "a1", "sim1", 1_800_000_001.0)
    sqlite.store_inbound_part("group", 1, 2, "AA", "a1", "sim1", 1_800_000_002.0)
    sqlite.close()
    dump = tmp_path / "journal.jsonl"
    exported = subprocess.run(GSMGW + ["journal", "export", "-c", str(write_config(tmp_path)), "-o", str(dump)],
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 messages" in exported.stderr

    dsn = postgres.new_database()
    config = write_config(tmp_path, dsn)
    imported = subprocess.run(GSMGW + ["journal", "import", "-c", str(config), str(dump)], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert "as member gw-a (rows per table): counter: 1, inbound_part: 1, message: 2, submission: 1" in imported.stdout
    journal = PostgresJournal(dsn, member="gw-a")
    try:
        journal.join(host="test", pid=1, version="test")
        assert [m.id for m in journal.queued_candidates(1_800_000_100.0)] == ["gw-a/waiting"]
        done = journal.message("gw-a/done")
        assert (done.state, done.origin, done.name, done.modem) == ("sent", "gw-a", "done", "a1")
        assert [p.mr for p in journal.parts("gw-a/done")] == [17]
        assert journal.submissions_since("sim1", 0) == 1
        assert [g.key for g in journal.inbound_groups_older_than(1_800_000_003.0)] == ["group"]
        journal.leave()
    finally:
        journal.close()
    # Once only: a second import would double the limit windows.
    again = subprocess.run(GSMGW + ["journal", "import", "-c", str(config), str(dump)], capture_output=True, text=True)
    assert again.returncode == 1 and "imported once" in again.stderr
    with psycopg.connect(dsn) as connection:
        assert connection.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 2


def test_export_refuses_while_the_daemon_runs_and_import_refuses_a_stranger(tmp_path):
    from gsmgw.daemon.lock import DaemonLock

    state = tmp_path / "state"
    SqliteJournal(state / "journal.sqlite").close()
    (tmp_path / "spool").mkdir()
    lock = DaemonLock.acquire(state, tmp_path / "spool")
    try:
        result = subprocess.run(GSMGW + ["journal", "export", "--state", str(state)], capture_output=True, text=True)
        assert result.returncode == 1 and "stop it first" in result.stderr
    finally:
        lock.release()
    stranger = tmp_path / "stranger.jsonl"
    stranger.write_text('{"hello": 1}\n')
    result = subprocess.run(GSMGW + ["journal", "import", "-c", str(write_config(tmp_path, "postgresql://x@127.0.0.1:1/x")),
                                     str(stranger)], capture_output=True, text=True)
    assert result.returncode == 1 and "is not the output of `gsmgw journal export`" in result.stderr


def test_a_member_does_not_start_without_its_database(tmp_path):
    config = write_config(tmp_path, f"postgresql://gsmgw@127.0.0.1:{free_port()}/gsmgw")
    result = subprocess.run(GSMGW + ["run", "-c", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is unreachable" in result.stdout + result.stderr and "started again" in result.stdout + result.stderr
