"""The journal's message index: filled as messages move (the daemon's events), rebuilt from the
spool by `gsmgw journal reindex` (also a spool an earlier gsmgw wrote), read by `gsmgw thread`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta

from gsmgw.daemon.indexer import rebuild
from gsmgw.events import MessageReceived, ReportReceived
from gsmgw.spool.format import build_failed, build_incoming, build_sent, update_headers
import pytest

from gsmgw.spool.index import (
    DELIVERED,
    IN,
    OUT,
    QUEUED,
    RECEIVED,
    SENT,
    Campaign,
    Contact,
    IndexedMessage,
    MessageIndex,
    PostgresIndex,
    Scope,
    hour_of,
)
from gsmgw.spool.store import Spool
from test_e2e_gateway import OUTSIDE, run_scenario

T0 = 1_790_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def new_index(request, tmp_path):
    """An empty index of each kind: SQLite in the state directory, or a member's place in the
    cluster's PostgreSQL (the same class's SQL, rewritten by PostgresIndex)."""
    opened = []

    def make():
        if request.param == "sqlite":
            index = MessageIndex(tmp_path / "index.sqlite")
        else:
            index = PostgresIndex(request.getfixturevalue("postgres").new_database(), "gw-a")
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.close()


def out(id, number, state, at, **kw):
    return IndexedMessage(OUT, id, number, state, at, **kw)


def test_a_message_moving_updates_its_row_its_conversation_and_counts_each_step_once(tmp_path, new_index):
    index = new_index()
    index.record([out("m1", "+491", QUEUED, T0, client="anna", text="hello", modem=None)])
    index.record([out("m1", "+491", SENT, T0 + 5, sent=T0 + 5, modem="gsm1")])
    index.record([out("m1", "+491", DELIVERED, T0 + 9, sent=T0 + 5, delivered=T0 + 9, modem="gsm1")])
    index.record([out("m1", "+491", DELIVERED, T0 + 9, sent=T0 + 5, delivered=T0 + 9, modem="gsm1")])  # again
    row = index.message(OUT, "m1")
    assert (row.state, row.text, row.client, row.at, row.sent, row.modem) == (DELIVERED, "hello", "anna", T0, T0 + 5, "gsm1")
    tallies = index.tallies(hour_of(T0) - 1)
    assert tallies == {(hour_of(T0 + 5), "sent"): 1, (hour_of(T0 + 9), "delivered"): 1}
    index.record([IndexedMessage(IN, "gsm1-a", "+491", RECEIVED, T0 + 20, modem="gsm1", text="thanks")])
    [conversation] = index.conversations(Scope.all(), user="anna")
    assert (conversation.number, conversation.last_text, conversation.unread) == ("+491", "thanks", 1)
    index.mark_read("anna", "+491", T0 + 20)
    assert index.conversations(Scope.all(), user="anna")[0].unread == 0
    assert index.conversations(Scope.all(), user="bob")[0].unread == 1


def test_scope_keeps_other_clients_and_modems_out(tmp_path, new_index):
    index = new_index()
    index.record([
        out("a1", "+491", SENT, T0, client="anna", text="from anna"),
        out("b1", "+491", SENT, T0 + 1, client="bob", text="from bob"),
        IndexedMessage(IN, "gsm1-x", "+491", RECEIVED, T0 + 2, modem="gsm1", text="in gsm1"),
        IndexedMessage(IN, "gsm2-x", "+491", RECEIVED, T0 + 3, modem="gsm2", text="in gsm2"),
    ])
    anna = Scope(client="anna", modems=("gsm1",))
    assert [m.text for m in index.thread(anna, "+491")] == ["from anna", "in gsm1"]
    [conversation] = index.conversations(anna, user="anna")
    assert conversation.last_text == "in gsm1" and conversation.unread == 1
    assert [m.text for m in index.thread(Scope(client="bob", modems=()), "+491")] == ["from bob"]
    assert index.conversations(Scope(client="nobody", modems=()), user="x") == []
    assert len(index.thread(Scope.all(), "+491")) == 4
    assert [m.id for m in index.messages(anna, states=[SENT])] == ["a1"]
    found = index.conversations(Scope.all(), user="x", search="in gsm2")
    assert [c.number for c in found] == ["+491"]
    assert index.conversations(anna, user="x", search="in gsm2") == []  # text it may not see


def test_campaign_counts_include_files_not_yet_taken_and_opted_out(tmp_path, new_index):
    index = new_index()
    index.create_campaign(Campaign("c1", "Sale", "anna", "Hi {name}", T0, None, "preparing", 4),
                          [("+491", "A"), ("+492", "B"), ("+493", "C"), ("+494", "D")])
    index.campaign_queued("c1", ["f1", "f2", "f3", "f4"])
    index.record([
        out("f1", "+491", DELIVERED, T0, campaign="c1", sent=T0, delivered=T0),
        out("f2", "+492", SENT, T0, campaign="c1", sent=T0),
        out("f3", "+493", "failed", T0, campaign="c1", fail_reason="opted out (STOP received 2026-11-25T10:00:00+01:00)"),
    ])
    counts = index.campaign_counts("c1")
    assert (counts.recipients, counts.queued, counts.sent, counts.delivered, counts.pending, counts.failed,
            counts.opted_out) == (4, 1, 2, 1, 1, 0, 1)
    exported = [(r.number, r.name, r.state) for r in index.campaign_recipients("c1")]
    assert exported == [("+491", "A", DELIVERED), ("+492", "B", SENT), ("+493", "C", "failed"), ("+494", "D", None)]
    assert index.tallies(0) == {(hour_of(T0), "sent"): 2, (hour_of(T0), "delivered"): 1}  # opted out: no failure


def test_contacts_groups_and_optouts(tmp_path, new_index):
    index = new_index()
    index.save_contacts([Contact("+491", "Anna", "boss"), Contact("+492", "Bob", "")], T0)
    index.save_contacts([Contact("+493", "Anna B", "")], T0, replace_number="+492")
    assert [c.name for c in index.contacts()] == ["Anna", "Anna B"]
    assert [c.number for c in index.contacts(search="bos")] == ["+491"]
    index.save_group("team", ["+491", "+493", "+491"], T0)
    assert index.console_groups() == {"team": ("+491", "+493")}
    index.opt_out("+491", T0, "STOP")
    index.opt_out("+491", T0 + 5, "END")  # the first word and time are kept
    assert index.optouts() == {"+491": (T0, "STOP")}
    assert index.opt_in("+491") and not index.opt_in("+491")


def old_spool(root):
    """Files as an earlier gsmgw left them: no Queued:, no Campaign:, no index anywhere."""
    spool = Spool(root)
    spool.ensure_dirs()
    now = datetime.now().astimezone()
    original = b"To: +4915112345678\n\nold but sent\n"
    sent = build_sent(original, modem="gsm1", imsi=None, sent=now - timedelta(hours=2), parts=1, message_ids=[7])
    sent = update_headers(sent, {"Status": "delivered 0 (short message received by the SME)",
                                 "Delivered": (now - timedelta(hours=1)).isoformat(timespec="seconds")})
    spool.write_atomic("sent", "20261101-100000-old", sent)
    spool.write_atomic("failed", "20261101-100001-bad", build_failed(
        b"To: +4915112345678\nAlphabet: ISO\n\ncaf\xe9\n", failed=now, reason="expired", attempts=1))
    spool.write_atomic("incoming", "gsm1-20261101-100002-in", build_incoming(
        sender="+4915112345678", sender_toa=0x91, smsc=None, sent=now, received=now - timedelta(minutes=30),
        modem="gsm1", imsi=None, alphabet="ucs2", parts=1, text="<script>alert(1)</script> 😀"))
    return spool


def test_reindex_reads_a_spool_an_earlier_version_wrote(tmp_path):
    spool = old_spool(tmp_path / "spool")
    result = subprocess.run([sys.executable, "-m", "gsmgw", "journal", "reindex", "--spool", str(tmp_path / "spool")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("indexed 3 messages")
    index = MessageIndex(tmp_path / "spool" / ".state" / "index.sqlite")
    rows = {m.id: m for m in index.thread(Scope.all(), "+4915112345678")}
    assert rows["20261101-100000-old"].state == DELIVERED and rows["20261101-100000-old"].text == "old but sent"
    assert rows["20261101-100001-bad"].state == "expired" and rows["20261101-100001-bad"].text == "café"
    assert rows["gsm1-20261101-100002-in"].state == RECEIVED
    assert list(rows) == ["20261101-100000-old", "gsm1-20261101-100002-in", "20261101-100001-bad"]  # by time
    # Run twice: the same rows, the tallies counted once.
    tallies = index.tallies(0)
    assert rebuild(index, spool) == 3 and index.tallies(0) == tallies
    assert sum(n for (_, kind), n in tallies.items() if kind == "received") == 1

    thread = subprocess.run([sys.executable, "-m", "gsmgw", "thread", "0049 151 12345678", "--spool",
                             str(tmp_path / "spool")], capture_output=True, text=True, timeout=60)
    assert thread.returncode == 0, thread.stderr
    assert "conversation with +4915112345678: 3 message(s)" in thread.stdout
    assert "-> delivered  old but sent  [gsm1]" in thread.stdout
    assert "<- received" in thread.stdout and "<script>alert(1)</script>" in thread.stdout
    as_json = subprocess.run([sys.executable, "-m", "gsmgw", "thread", "+4915112345678", "--json", "--spool",
                              str(tmp_path / "spool")], capture_output=True, text=True, timeout=60)
    assert [json.loads(line)["state"] for line in as_json.stdout.splitlines()] == [DELIVERED, RECEIVED, "expired"]


def test_thread_shows_control_characters_as_escapes(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    now = datetime.now().astimezone()
    spool.write_atomic("incoming", "gsm1-evil", build_incoming(
        sender="+4915112345678", sender_toa=0x91, smsc=None, sent=now, received=now, modem="gsm1", imsi=None,
        alphabet="ucs2", parts=1, text="clear\x1b[2J\u202eesrever"))
    subprocess.run([sys.executable, "-m", "gsmgw", "journal", "reindex", "--spool", str(spool.root)],
                   check=True, capture_output=True, timeout=60)
    thread = subprocess.run([sys.executable, "-m", "gsmgw", "thread", "+4915112345678", "--spool", str(spool.root)],
                            capture_output=True, text=True, timeout=60)
    assert "clear\\x1b[2J\\u202eesrever" in thread.stdout and "\x1b" not in thread.stdout


def test_the_daemon_fills_the_index_as_messages_move_and_builds_it_for_an_old_spool(tmp_path):
    old_spool(tmp_path / "spool")

    async def scenario(run):
        gateway = run.gateway
        await run.ready()
        await gateway.indexer.flush()  # the start-up build of the earlier version's spool
        assert gateway.index.message(OUT, "20261101-100000-old").state == DELIVERED
        seen = []
        gateway.indexer.subscribe(lambda changes: seen.extend(getattr(c, "message", None) for c in changes))
        run.drop("hello", f"To: {OUTSIDE}\nClient: anna\n\nHello index\n")
        await run.until(lambda: run.of(ReportReceived), what="the delivery report")
        await gateway.indexer.flush()
        row = gateway.index.message(OUT, "hello")
        assert (row.state, row.text, row.modem is not None, row.sent is not None) == (DELIVERED, "Hello index", True, True)
        assert row.client is None  # a hand-written Client: is no client's (issue 11's trusted headers)
        assert [m.state for m in seen if m is not None and m.id == "hello"][-1] == DELIVERED
        run.network.inject_sms(0, OUTSIDE, "Reply <b>bold</b>")
        await run.until(lambda: run.of(MessageReceived), what="the inbound SMS")
        await gateway.indexer.flush()
        [inbound] = [m for m in gateway.index.thread(Scope.all(), OUTSIDE) if m.direction == IN and m.modem == "modem0"]
        assert inbound.text == "Reply <b>bold</b>"

    run_scenario(tmp_path, scenario, outside_reports=True)


def test_the_daemon_catches_up_with_changes_made_while_it_was_stopped(tmp_path):
    spool = old_spool(tmp_path / "spool")
    index_path = tmp_path / "spool" / ".state" / "index.sqlite"
    index = MessageIndex(index_path)
    rebuild(index, spool, clock=lambda: time.time() - 60)  # built a minute ago
    index.close()
    now = datetime.now().astimezone()
    spool.write_atomic("incoming", "gsm1-later", build_incoming(
        sender="+4915112345678", sender_toa=0x91, smsc=None, sent=now, received=now, modem="gsm1", imsi=None,
        alphabet="gsm7", parts=1, text="while stopped"))

    async def scenario(run):
        await run.gateway.indexer.flush()
        assert run.gateway.index.message(IN, "gsm1-later").text == "while stopped"

    run_scenario(tmp_path, scenario)


def test_messages_of_the_same_second_keep_their_order(tmp_path, new_index):
    """Headers carry whole seconds; a question and its answer within one second must not swap."""
    import os

    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    second = datetime(2026, 11, 25, 10, 0, 0).astimezone()
    spool.write_atomic("incoming", "gsm1-question", build_incoming(
        sender="+4915112345678", sender_toa=0x91, smsc=None, sent=second, received=second, modem="gsm1",
        imsi=None, alphabet="gsm7", parts=1, text="question"))
    sent = build_sent(b"To: +4915112345678\nQueued: " + second.isoformat().encode() + b"\n\nanswer\n",
                      modem="gsm1", imsi=None, sent=second, parts=1, message_ids=[1])
    spool.write_atomic("sent", "00-answer", sent)  # its name sorts before the question's
    os.utime(spool.path("incoming", "gsm1-question"), (second.timestamp() + 0.3,) * 2)
    os.utime(spool.path("sent", "00-answer"), (second.timestamp() + 0.6,) * 2)
    index = new_index()
    rebuild(index, spool)
    assert [m.text for m in index.thread(Scope.all(), "+4915112345678")] == ["question", "answer"]


def test_reindex_refuses_while_a_daemon_keeps_the_state_directory(tmp_path):
    from helpers import stop_process, wait_for_text

    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "gsmgw", "run", "--simulate", "1", "--spool",
                                   str(tmp_path / "spool"), "-c", str(_no_console(tmp_path))],
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_text(log, "gsmgw started", 30)
        result = subprocess.run([sys.executable, "-m", "gsmgw", "journal", "reindex", "--spool", str(tmp_path / "spool")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and f"PID {daemon.pid}" in result.stderr
        assert "keeps the index current" in result.stderr
    finally:
        stop_process(daemon, 30)
    after = subprocess.run([sys.executable, "-m", "gsmgw", "journal", "reindex", "--spool", str(tmp_path / "spool")],
                           capture_output=True, text=True, timeout=60)
    assert after.returncode == 0, after.stderr


def _no_console(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("web: {enabled: false}\n")
    return config


def test_an_answer_keeps_its_place_after_its_file_moves_in_a_later_second(tmp_path, new_index):
    """The answer was indexed from outgoing/ (its Queued: second, refined by the file's mtime to
    after the question); when its file reaches sent/ a second later, the header's whole second
    alone must not move it before the question it answers (the conversation list then showed
    the question as the last message)."""
    from gsmgw.daemon.indexer import inbound_row, outbound_row

    second = datetime(2026, 11, 25, 10, 0, 0).astimezone()
    t = second.timestamp()
    question = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=second, received=second,
                              modem="gsm1", imsi=None, alphabet="gsm7", parts=1, text="question")
    queued = b"To: +4915112345678\nClient: anna\nQueued: " + second.isoformat().encode() + b"\n\nanswer\n"
    sent = build_sent(queued, modem="gsm1", imsi=None, sent=second + timedelta(seconds=2), parts=1, message_ids=[1])
    index = new_index()
    index.record([inbound_row("gsm1-question", question, t + 0.3)])
    index.record([outbound_row("answer", "outgoing", queued, t + 0.6)])
    index.record([outbound_row("answer", "sent", sent, t + 2.4)])
    assert [m.text for m in index.thread(Scope.all(), "+4915112345678")] == ["question", "answer"]
    [row] = index.conversations(Scope.all(), user="anna")
    assert (row.last_direction, row.last_text) == (OUT, "answer")
    # An earlier time that is really earlier (another second) still wins.
    index.record([out("answer", "+4915112345678", SENT, t - 5.0)])
    assert index.message(OUT, "answer").at == t - 5.0
