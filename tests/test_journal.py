"""The send journal, one suite for every backend (SQLite, PostgreSQL): queue order, crash
recovery, limits, report matching, inbound parts. Tests of what only one backend has are at the
end (SQLite's file and query plan) and in test_journal_cluster.py (PostgreSQL's cluster rules)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from gsmgw.spool.journal import (
    PRIORITY,
    JournalError,
    NewMessage,
    NewPart,
    SqliteJournal,
)
from gsmgw.spool.journal.sqlite import CANDIDATES_SQL

T0 = 1_800_000_000.0
MEMBER = "gw-a"


class Backend:
    """Opens journals of one kind on one store, as a restarted daemon would."""

    def __init__(self, kind: str, tmp_path, postgres=None):
        self.kind = kind
        self.path = tmp_path / "state" / "journal.sqlite"
        self.dsn = postgres.new_database() if kind == "postgresql" else None
        self.opened = []

    def open(self):
        if self.kind == "sqlite":
            journal = SqliteJournal(self.path, member=MEMBER)
        else:
            from gsmgw.spool.journal.postgresql import PostgresJournal

            journal = PostgresJournal(self.dsn, member=MEMBER, lease=30.0)
            journal.join(host="test", pid=os.getpid(), version="test")
        self.opened.append(journal)
        return journal

    def script(self) -> str:
        """Python that opens a journal of this kind as `j` (for a process that is then killed)."""
        if self.kind == "sqlite":
            return f"from gsmgw.spool.journal import SqliteJournal\nj = SqliteJournal({str(self.path)!r})\n"
        return (f"import os\nfrom gsmgw.spool.journal.postgresql import PostgresJournal\n"
                f"j = PostgresJournal({self.dsn!r}, member={MEMBER!r}, lease=30.0)\n"
                f"j.join(host='test', pid=os.getpid(), version='test')\n")

    def close(self):
        for journal in self.opened:
            journal.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    opened = Backend(request.param, tmp_path, postgres)
    yield opened
    opened.close()


@pytest.fixture
def journal(backend):
    return backend.open()


@pytest.fixture
def k(journal):
    """A message's key from its spool name (the name itself on SQLite, origin/name in a cluster)."""
    return journal.key


def message(id, to="+4915112345678", parts=1, **kw):
    return NewMessage(
        id=id,
        recipient=to,
        parts=[NewPart(seq=i + 1, pdu=f"00{i:02X}", length=10 + i) for i in range(parts)],
        **kw,
    )


def test_queue_order_is_priority_then_age(journal, k):
    journal.add_messages([message(k("a"))], T0)
    journal.add_messages([message(k("b"), priority=PRIORITY["high"])], T0 + 1)
    journal.add_messages([message(k("c"), priority=PRIORITY["low"])], T0 + 2)
    journal.add_messages([message(k("d"))], T0 + 3)
    assert [m.id for m in journal.queued_candidates(T0 + 10)] == [k("b"), k("a"), k("d"), k("c")]


def test_send_after_hides_a_message_until_its_time(journal, k):
    journal.add_messages([message(k("later"), send_after=T0 + 100), message(k("now"))], T0)
    assert [m.id for m in journal.queued_candidates(T0 + 1)] == [k("now")]
    assert journal.next_wakeup(T0 + 1) == T0 + 100
    assert [m.id for m in journal.queued_candidates(T0 + 100)] == [k("later"), k("now")]  # equal age: file order


def test_adding_the_same_id_twice_keeps_its_progress(journal, k):
    journal.add_messages([message(k("m"), parts=2)], T0)
    assert journal.claim(k("m"), "gsm1")
    journal.mark_submitting(k("m"), 1, "gsm1", "262010000000001")
    journal.mark_submitted(k("m"), 1, 17, T0 + 1, sim="262010000000001", report=True)
    assert journal.add_messages([message(k("m"), parts=2)], T0 + 2) == []
    assert [p.seq for p in journal.pending_parts(k("m"))] == [2]


def test_claim_is_exclusive(journal, k):
    journal.add_messages([message(k("m"))], T0)
    assert journal.claim(k("m"), "gsm1")
    assert not journal.claim(k("m"), "gsm2")
    assert journal.queued_candidates(T0) == []


def test_claim_candidates_claims_what_the_assignment_chose_in_one_go(journal, k):
    journal.add_messages([message(k(f"m{i}")) for i in range(5)], T0)
    seen, chosen = journal.claim_candidates(
        T0, 3, 0, lambda candidates: [("gsm1", candidates[0]), ("gsm2", candidates[2])]
    )
    assert seen == 3
    assert [(modem, m.id) for modem, m in chosen] == [("gsm1", k("m0")), ("gsm2", k("m2"))]
    assert (journal.message(k("m0")).state, journal.message(k("m0")).modem) == ("sending", "gsm1")
    assert journal.message(k("m1")).state == "queued"
    assert [m.id for m in journal.queued_candidates(T0)] == [k("m1"), k("m3"), k("m4")]
    seen, chosen = journal.claim_candidates(T0, 3, 3, lambda candidates: [])
    assert (seen, chosen) == (0, [])


def test_rows_name_their_origin_and_spool_name(journal, k):
    journal.add_messages([message(k("file-1"))], T0)
    row = journal.message(k("file-1"))
    assert (row.id, row.name, row.origin, row.filed) == (k("file-1"), "file-1", journal.member, True)


def test_recover_names_parts_in_flight_and_never_resends_parts_with_an_mr(backend, journal, k):
    journal.add_messages([message(k("m"), parts=3)], T0)
    journal.claim(k("m"), "gsm1")
    journal.mark_submitting(k("m"), 1, "gsm1", "sim1")
    journal.mark_submitted(k("m"), 1, 5, T0, sim="sim1", report=False)
    journal.mark_submitting(k("m"), 2, "gsm1", "sim1")
    # crash here: part 2 was handed to the modem, no +CMGS seen
    journal.close()
    again = backend.open()
    found = again.recover()
    assert found.possible_duplicates == ((k("m"), 2),)
    assert found.requeued == (k("m"),)
    assert [p.seq for p in again.pending_parts(k("m"))] == [2, 3]
    queued = again.queued_candidates(T0 + 1)
    assert [(q.id, q.bound_modem, q.bound_imsi, q.pending_parts) for q in queued] == [
        (k("m"), "gsm1", "sim1", 2)
    ]


def test_committed_state_survives_kill_9(backend):
    """A commit that returned is durable even when the process dies at once after it."""
    script = backend.script() + textwrap.dedent(
        """
        import signal
        from gsmgw.spool.journal import NewMessage, NewPart
        key = j.key("m")
        j.add_messages([NewMessage(id=key, recipient="+491", parts=[NewPart(1, "00", 1)])], 1.0)
        j.claim(key, "gsm1")
        j.mark_submitting(key, 1, "gsm1", "sim")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", "import os\n" + script], timeout=30)
    assert result.returncode == -9
    journal = backend.open()
    assert journal.recover().possible_duplicates == ((journal.key("m"), 1),)


def test_requeue_avoids_a_modem_and_delays(journal, k):
    journal.add_messages([message(k("m"))], T0)
    journal.claim(k("m"), "gsm1")
    journal.requeue(k("m"), not_before=T0 + 30, error="+CMS ERROR 38", avoid_modem="gsm1")
    assert journal.queued_candidates(T0 + 29) == []
    (queued,) = journal.queued_candidates(T0 + 30)
    assert queued.avoid == {"gsm1"} and queued.attempts == 1
    assert journal.count_retrying(T0) == 1
    assert journal.retrying() == [("m", 1, "+CMS ERROR 38")]  # by spool name: the console links it


def test_expired_lists_only_queued_messages_past_their_time(journal, k):
    journal.add_messages([message(k("old"), expires=T0 + 5), message(k("new"), expires=T0 + 500)], T0)
    assert journal.expired(T0 + 10) == [k("old")]
    journal.mark_failed(k("old"), "expired", T0 + 10, state="expired")
    assert journal.expired(T0 + 10) == []
    assert journal.message(k("old")).state == "expired"


def test_limit_windows_count_submissions_per_sim(journal, k):
    journal.add_messages([message(k("m"), parts=3)], T0)
    journal.claim(k("m"), "gsm1")
    for seq in (1, 2, 3):
        journal.mark_submitting(k("m"), seq, "gsm1", "simA")
        journal.mark_submitted(k("m"), seq, seq, T0 + seq * 20, sim="simA", report=False)
    assert journal.submissions_since("simA", T0 + 60 - 60) == 3
    assert journal.submissions_since("simA", T0 + 40) == 1
    assert journal.submissions_since("simB", T0) == 0
    assert journal.oldest_submission_since("simA", T0 + 30) == T0 + 40


def _send(journal, id, to, mrs, at, imsi="simA", modem="gsm1"):
    key = journal.key(id)
    journal.add_messages([message(key, to=to, parts=len(mrs), report=True)], at)
    journal.claim(key, modem)
    for seq, mr in enumerate(mrs, 1):
        journal.mark_submitting(key, seq, modem, imsi)
        journal.mark_submitted(key, seq, mr, at, sim=imsi or modem, report=True)
    journal.mark_sent(key, modem, imsi, at)


def test_report_matches_the_most_recent_part_with_that_mr_after_wrap_around(journal, k):
    to = "+4915112345678"
    _send(journal, "first", to, [7], T0)
    _send(journal, "after-wrap", to, [7], T0 + 600)  # 256 submits later the MR is 7 again
    match = journal.match_report(
        imsi="simA", modem="gsm1", mr=7, recipient=to, tp_status=0, report_state="delivered",
        discharge=None, now=T0 + 601, window=3 * 86400,
    )
    assert match.message.id == k("after-wrap") and match.delivered and not match.forwarded
    assert journal.message(k("after-wrap")).state == "delivered"
    assert journal.message(k("first")).state == "sent"


def test_report_needs_same_sim_recipient_and_window(journal):
    to = "+4915112345678"
    _send(journal, "m", to, [9], T0)
    common = dict(tp_status=0, report_state="delivered", discharge=None)
    assert journal.match_report(imsi="simB", modem="gsm2", mr=9, recipient=to, now=T0 + 1, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient="+4917000000000", now=T0 + 1, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient=to, now=T0 + 1000, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient=to, now=T0 + 1, window=100, **common) is not None


def test_report_without_an_imsi_matches_by_modem(journal, k):
    to = "+4915112345678"
    _send(journal, "m", to, [4], T0, imsi=None)
    match = journal.match_report(imsi=None, modem="gsm1", mr=4, recipient=to, tp_status=0,
                                 report_state="delivered", discharge=None, now=T0 + 1, window=100)
    assert match is not None and match.message.id == k("m")


def test_multipart_is_delivered_only_when_every_part_is(journal, k):
    to = "+4915112345678"
    _send(journal, "m", to, [1, 2], T0)
    common = dict(imsi="simA", modem="gsm1", recipient=to, discharge=None, now=T0 + 5, window=100)
    first = journal.match_report(mr=1, tp_status=0, report_state="delivered", **common)
    assert not first.delivered and not first.all_final
    second = journal.match_report(mr=2, tp_status=0, report_state="delivered", **common)
    assert second.delivered and second.all_final
    assert journal.message(k("m")).state == "delivered"


def test_inbound_parts_store_joins_and_times_out(journal):
    group = journal.store_inbound_part("k", 2, 3, "AA", "gsm1", "sim", T0)
    assert group.pdus == {2: "AA"} and group.total == 3
    group = journal.store_inbound_part("k", 2, 3, "BB", "gsm1", "sim", T0 + 1)
    assert group.pdus == {2: "AA"}  # a part read twice keeps its first copy
    journal.store_inbound_part("k", 1, 3, "CC", "gsm1", "sim", T0 + 2)
    assert journal.complete_inbound_groups() == []
    assert [g.key for g in journal.inbound_groups_older_than(T0)] == ["k"]
    journal.store_inbound_part("k", 3, 3, "DD", "gsm1", "sim", T0 + 3)
    assert [g.pdus for g in journal.complete_inbound_groups()] == [{1: "CC", 2: "AA", 3: "DD"}]
    journal.drop_inbound_group("k", done=["p1", "p2", "p3"], now=T0 + 3)
    assert journal.inbound_groups_older_than(T0 + 100) == []
    assert journal.inbound_part_done("p2") and not journal.inbound_part_done("p4")


def test_a_single_sms_is_recorded_before_its_file(journal):
    assert journal.inbound_file_for("key") is None
    journal.record_inbound_file("key", "gsm1-20260101-000000-abcd", T0)
    assert journal.inbound_file_for("key") == ("gsm1-20260101-000000-abcd", False)
    journal.inbound_file_written("key")
    assert journal.inbound_file_for("key") == ("gsm1-20260101-000000-abcd", True)


def test_counters_are_per_day_and_modem(journal, k):
    _send(journal, "m", "+491", [1], T0)
    journal.add_messages([message(k("n"))], T0)
    journal.mark_failed(k("n"), "bad", T0, modem="gsm2")
    journal.record_invalid(T0)
    journal.count(T0, "gsm1", "received", 2)
    today = journal.counters_today(T0)
    assert today[("gsm1", "sent")] == 1
    assert today[("gsm2", "failed")] == 1
    assert today[("", "failed")] == 1
    assert today[("gsm1", "received")] == 2
    assert journal.counters_today(T0 + 2 * 86400) == {}


def test_prune_drops_old_history_but_not_the_queue(journal, k):
    _send(journal, "old", "+491", [1], T0)
    journal.add_messages([message(k("waiting"))], T0)
    assert journal.prune(T0 + 40 * 86400) >= 2
    assert journal.message(k("old")) is None
    assert journal.message(k("waiting")) is not None


def test_only_an_accepted_part_binds_a_message_to_its_sim(journal, k):
    journal.add_messages([message(k("m"), parts=2)], T0)
    journal.claim(k("m"), "gsm1")
    journal.mark_submitting(k("m"), 1, "gsm1", "simA")
    journal.unmark_submitting(k("m"), 1)  # +CMS ERROR: nothing went out
    journal.requeue(k("m"), not_before=T0, error="+CMS ERROR 38", avoid_modem="gsm1")
    (queued,) = journal.queued_candidates(T0)
    assert (queued.bound_modem, queued.bound_imsi) == (None, None)
    journal.claim(k("m"), "gsm2")
    journal.mark_submitting(k("m"), 1, "gsm2", "simB")
    journal.mark_submitted(k("m"), 1, 4, T0, sim="simB", report=False)
    journal.requeue(k("m"), not_before=T0, error="+CMS ERROR 38")
    (queued,) = journal.queued_candidates(T0)
    assert (queued.bound_modem, queued.bound_imsi, queued.pending_parts) == ("gsm2", "simB", 1)


def test_fully_submitted_lists_queued_messages_with_every_part_accepted(journal, k):
    journal.add_messages([message(k("done"), parts=2), message(k("half"), parts=2)], T0)
    for id, seqs in (("done", (1, 2)), ("half", (1,))):
        journal.claim(k(id), "gsm1")
        for seq in seqs:
            journal.mark_submitting(k(id), seq, "gsm1", "sim")
            journal.mark_submitted(k(id), seq, seq, T0, sim="sim", report=False)
    journal.recover()  # the stop came before either reached sent/
    # Either the journal lists it for its origin to finish (SQLite), or it finished it as sent and
    # its origin writes the file (PostgreSQL: `unfiled`). Never is it sent again.
    listed = journal.fully_submitted()
    done = journal.message(k("done"))
    assert listed == [k("done")] or (listed == [] and done.state == "sent" and not done.filed)
    assert journal.message(k("half")).state == "queued"
    assert [p.seq for p in journal.pending_parts(k("half"))] == [2]


def test_reports_that_beat_the_last_part_leave_the_message_delivered(journal, k):
    journal.add_messages([message(k("m"), to="+491", parts=1, report=True)], T0)
    journal.claim(k("m"), "gsm1")
    journal.mark_submitting(k("m"), 1, "gsm1", "sim")
    journal.mark_submitted(k("m"), 1, 8, T0, sim="sim", report=True)
    match = journal.match_report(imsi="sim", modem="gsm1", mr=8, recipient="+491", tp_status=0,
                                 report_state="delivered", discharge=None, now=T0 + 1, window=60)
    assert match.delivered and journal.message(k("m")).state == "sending"
    journal.mark_sent(k("m"), "gsm1", "sim", T0 + 2)
    assert journal.message(k("m")).state == "delivered"


def test_a_reused_file_name_after_its_message_finished_is_a_new_message(journal, k):
    _send(journal, "test", "+491", [3], T0)
    assert journal.add_messages([message(k("test"), to="+492")], T0 + 10) == [k("test")]
    row = journal.message(k("test"))
    assert (row.state, row.recipient, row.bound_modem) == ("queued", "+492", None)
    assert [p.state for p in journal.parts(k("test"))] == ["pending"]


def test_report_matches_a_recipient_the_network_writes_in_national_format(journal, k):
    _send(journal, "m", "+4915112345678", [12], T0)
    match = journal.match_report(imsi="simA", modem="gsm1", mr=12, recipient="015112345678", tp_status=0,
                                 report_state="delivered", discharge=None, now=T0 + 1, window=100)
    assert match is not None and match.message.id == k("m")
    assert journal.match_report(imsi="simA", modem="gsm1", mr=12, recipient="+4917099999999", tp_status=0,
                                report_state="delivered", discharge=None, now=T0 + 1, window=100) is None


def test_messages_in_state_streams_this_hosts_queue(journal, k):
    journal.add_messages([message(k(f"m{i:03d}")) for i in range(620)], T0)
    journal.claim(k("m000"), "gsm1")
    assert sorted(journal.messages_in_state("queued")) == [k(f"m{i:03d}") for i in range(1, 620)]
    assert list(journal.messages_in_state("sending")) == [k("m000")]


def test_a_journal_knows_its_schema_version(journal):
    assert journal.schema_version() >= 1


# -- SQLite only: its file and its query plan ----------------------------------------------------

def test_a_file_that_is_not_a_journal_gives_a_clear_error(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="move it away"):
        SqliteJournal(path)


def test_scan_stays_cheap_with_many_queued_messages(tmp_path):
    """100,000 queued rows: the scheduler's scan reads only the first page."""
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    batch = [message(f"m{i:06d}") for i in range(100_000)]
    journal.add_messages(batch, T0)
    plan = journal._db.execute(
        "EXPLAIN QUERY PLAN " + CANDIDATES_SQL, (T0, 10, 0)
    ).fetchall()
    assert any("message_queue" in str(tuple(row)) for row in plan)
    assert not any("TEMP B-TREE" in str(tuple(row)) for row in plan)
    assert [m.id for m in journal.queued_candidates(T0, limit=3)] == ["m000000", "m000001", "m000002"]
    assert [m.id for m in journal.queued_candidates(T0, limit=2, offset=99_998)] == ["m099998", "m099999"]
    assert os.path.getsize(journal.path) < 200 * 1024 * 1024
    journal.close()
