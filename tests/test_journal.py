"""The send journal: queue order, crash recovery, limits, report matching, inbound parts."""

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


def message(id, to="+4915112345678", parts=1, **kw):
    return NewMessage(
        id=id,
        recipient=to,
        parts=[NewPart(seq=i + 1, pdu=f"00{i:02X}", length=10 + i) for i in range(parts)],
        **kw,
    )


@pytest.fixture
def journal(tmp_path):
    j = SqliteJournal(tmp_path / "state" / "journal.sqlite")
    yield j
    j.close()


def test_queue_order_is_priority_then_age(journal):
    journal.add_messages([message("a")], T0)
    journal.add_messages([message("b", priority=PRIORITY["high"])], T0 + 1)
    journal.add_messages([message("c", priority=PRIORITY["low"])], T0 + 2)
    journal.add_messages([message("d")], T0 + 3)
    assert [m.id for m in journal.queued_candidates(T0 + 10)] == ["b", "a", "d", "c"]


def test_send_after_hides_a_message_until_its_time(journal):
    journal.add_messages([message("later", send_after=T0 + 100), message("now")], T0)
    assert [m.id for m in journal.queued_candidates(T0 + 1)] == ["now"]
    assert journal.next_wakeup(T0 + 1) == T0 + 100
    assert [m.id for m in journal.queued_candidates(T0 + 100)] == ["later", "now"]  # equal age: file order


def test_adding_the_same_id_twice_keeps_its_progress(journal):
    journal.add_messages([message("m", parts=2)], T0)
    assert journal.claim("m", "gsm1")
    journal.mark_submitting("m", 1, "gsm1", "262010000000001")
    journal.mark_submitted("m", 1, 17, T0 + 1, sim="262010000000001", report=True)
    assert journal.add_messages([message("m", parts=2)], T0 + 2) == []
    assert [p.seq for p in journal.pending_parts("m")] == [2]


def test_claim_is_exclusive(journal):
    journal.add_messages([message("m")], T0)
    assert journal.claim("m", "gsm1")
    assert not journal.claim("m", "gsm2")
    assert journal.queued_candidates(T0) == []


def test_recover_names_parts_in_flight_and_never_resends_parts_with_an_mr(journal):
    journal.add_messages([message("m", parts=3)], T0)
    journal.claim("m", "gsm1")
    journal.mark_submitting("m", 1, "gsm1", "sim1")
    journal.mark_submitted("m", 1, 5, T0, sim="sim1", report=False)
    journal.mark_submitting("m", 2, "gsm1", "sim1")
    # crash here: part 2 was handed to the modem, no +CMGS seen
    journal.close()
    again = SqliteJournal(journal.path)
    found = again.recover()
    assert found.possible_duplicates == (("m", 2),)
    assert found.requeued == ("m",)
    assert [p.seq for p in again.pending_parts("m")] == [2, 3]
    queued = again.queued_candidates(T0 + 1)
    assert [(q.id, q.bound_modem, q.bound_imsi, q.pending_parts) for q in queued] == [
        ("m", "gsm1", "sim1", 2)
    ]
    again.close()


def test_committed_state_survives_kill_9(tmp_path):
    """A commit that returned is on disk even when the process dies at once after it."""
    path = tmp_path / "journal.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from gsmgw.spool.journal import NewMessage, NewPart, SqliteJournal
        j = SqliteJournal({str(path)!r})
        j.add_messages([NewMessage(id="m", recipient="+491", parts=[NewPart(1, "00", 1)])], 1.0)
        j.claim("m", "gsm1")
        j.mark_submitting("m", 1, "gsm1", "sim")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert result.returncode == -9
    journal = SqliteJournal(path)
    assert journal.recover().possible_duplicates == (("m", 1),)
    journal.close()


def test_requeue_avoids_a_modem_and_delays(journal):
    journal.add_messages([message("m")], T0)
    journal.claim("m", "gsm1")
    journal.requeue("m", not_before=T0 + 30, error="+CMS ERROR 38", avoid_modem="gsm1")
    assert journal.queued_candidates(T0 + 29) == []
    (queued,) = journal.queued_candidates(T0 + 30)
    assert queued.avoid == {"gsm1"} and queued.attempts == 1
    assert journal.count_retrying(T0) == 1


def test_expired_lists_only_queued_messages_past_their_time(journal):
    journal.add_messages([message("old", expires=T0 + 5), message("new", expires=T0 + 500)], T0)
    assert journal.expired(T0 + 10) == ["old"]
    journal.mark_failed("old", "expired", T0 + 10, state="expired")
    assert journal.expired(T0 + 10) == []
    assert journal.message("old").state == "expired"


def test_limit_windows_count_submissions_per_sim(journal):
    journal.add_messages([message("m", parts=3)], T0)
    journal.claim("m", "gsm1")
    for seq in (1, 2, 3):
        journal.mark_submitting("m", seq, "gsm1", "simA")
        journal.mark_submitted("m", seq, seq, T0 + seq * 20, sim="simA", report=False)
    assert journal.submissions_since("simA", T0 + 60 - 60) == 3
    assert journal.submissions_since("simA", T0 + 40) == 1
    assert journal.submissions_since("simB", T0) == 0
    assert journal.oldest_submission_since("simA", T0 + 30) == T0 + 40


def _send(journal, id, to, mrs, at, sim="simA", modem="gsm1"):
    journal.add_messages([message(id, to=to, parts=len(mrs), report=True)], at)
    journal.claim(id, modem)
    for seq, mr in enumerate(mrs, 1):
        journal.mark_submitting(id, seq, modem, sim)
        journal.mark_submitted(id, seq, mr, at, sim=sim, report=True)
    journal.mark_sent(id, modem, sim, at)


def test_report_matches_the_most_recent_part_with_that_mr_after_wrap_around(journal):
    to = "+4915112345678"
    _send(journal, "first", to, [7], T0)
    _send(journal, "after-wrap", to, [7], T0 + 600)  # 256 submits later the MR is 7 again
    match = journal.match_report(
        imsi="simA", modem="gsm1", mr=7, recipient=to, tp_status=0, report_state="delivered",
        discharge=None, now=T0 + 601, window=3 * 86400,
    )
    assert match.message.id == "after-wrap" and match.delivered
    assert journal.message("after-wrap").state == "delivered"
    assert journal.message("first").state == "sent"


def test_report_needs_same_sim_recipient_and_window(journal):
    to = "+4915112345678"
    _send(journal, "m", to, [9], T0)
    common = dict(tp_status=0, report_state="delivered", discharge=None)
    assert journal.match_report(imsi="simB", modem="gsm2", mr=9, recipient=to, now=T0 + 1, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient="+4917000000000", now=T0 + 1, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient=to, now=T0 + 1000, window=100, **common) is None
    assert journal.match_report(imsi="simA", modem="gsm1", mr=9, recipient=to, now=T0 + 1, window=100, **common) is not None


def test_multipart_is_delivered_only_when_every_part_is(journal):
    to = "+4915112345678"
    _send(journal, "m", to, [1, 2], T0)
    common = dict(imsi="simA", modem="gsm1", recipient=to, discharge=None, now=T0 + 5, window=100)
    first = journal.match_report(mr=1, tp_status=0, report_state="delivered", **common)
    assert not first.delivered and not first.all_final
    second = journal.match_report(mr=2, tp_status=0, report_state="delivered", **common)
    assert second.delivered and second.all_final
    assert journal.message("m").state == "delivered"


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
    journal.drop_inbound_group("k")
    assert journal.inbound_groups_older_than(T0 + 100) == []


def test_counters_are_per_day_and_modem(journal):
    _send(journal, "m", "+491", [1], T0)
    journal.mark_failed("n", "bad", T0, modem="gsm2")
    journal.record_invalid(T0)
    today = journal.counters_today(T0)
    assert today[("gsm1", "sent")] == 1
    assert today[("gsm2", "failed")] == 1
    assert today[("", "failed")] == 1
    assert journal.counters_today(T0 + 2 * 86400) == {}


def test_prune_drops_old_history_but_not_the_queue(journal):
    _send(journal, "old", "+491", [1], T0)
    journal.add_messages([message("waiting")], T0)
    assert journal.prune(T0 + 40 * 86400) >= 2
    assert journal.message("old") is None
    assert journal.message("waiting") is not None


def test_a_file_that_is_not_a_journal_gives_a_clear_error(tmp_path):
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="move it away"):
        SqliteJournal(path)


def test_scan_stays_cheap_with_many_queued_messages(journal):
    """100,000 queued rows: the scheduler's scan reads only the first page."""
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


def test_only_an_accepted_part_binds_a_message_to_its_sim(journal):
    journal.add_messages([message("m", parts=2)], T0)
    journal.claim("m", "gsm1")
    journal.mark_submitting("m", 1, "gsm1", "simA")
    journal.unmark_submitting("m", 1)  # +CMS ERROR: nothing went out
    journal.requeue("m", not_before=T0, error="+CMS ERROR 38", avoid_modem="gsm1")
    (queued,) = journal.queued_candidates(T0)
    assert (queued.bound_modem, queued.bound_imsi) == (None, None)
    journal.claim("m", "gsm2")
    journal.mark_submitting("m", 1, "gsm2", "simB")
    journal.mark_submitted("m", 1, 4, T0, sim="simB", report=False)
    journal.requeue("m", not_before=T0, error="+CMS ERROR 38")
    (queued,) = journal.queued_candidates(T0)
    assert (queued.bound_modem, queued.bound_imsi, queued.pending_parts) == ("gsm2", "simB", 1)


def test_fully_submitted_lists_queued_messages_with_every_part_accepted(journal):
    journal.add_messages([message("done", parts=2), message("half", parts=2)], T0)
    for id, seqs in (("done", (1, 2)), ("half", (1,))):
        journal.claim(id, "gsm1")
        for seq in seqs:
            journal.mark_submitting(id, seq, "gsm1", "sim")
            journal.mark_submitted(id, seq, seq, T0, sim="sim", report=False)
    journal.recover()  # the stop came before either reached sent/
    assert journal.fully_submitted() == ["done"]


def test_reports_that_beat_the_last_part_leave_the_message_delivered(journal):
    journal.add_messages([message("m", to="+491", parts=1, report=True)], T0)
    journal.claim("m", "gsm1")
    journal.mark_submitting("m", 1, "gsm1", "sim")
    journal.mark_submitted("m", 1, 8, T0, sim="sim", report=True)
    match = journal.match_report(imsi="sim", modem="gsm1", mr=8, recipient="+491", tp_status=0,
                                 report_state="delivered", discharge=None, now=T0 + 1, window=60)
    assert match.delivered and journal.message("m").state == "sending"
    journal.mark_sent("m", "gsm1", "sim", T0 + 2)
    assert journal.message("m").state == "delivered"


def test_a_reused_file_name_after_its_message_finished_is_a_new_message(journal):
    _send(journal, "test", "+491", [3], T0)
    assert journal.add_messages([message("test", to="+492")], T0 + 10) == ["test"]
    row = journal.message("test")
    assert (row.state, row.recipient, row.bound_modem) == ("queued", "+492", None)
    assert [p.state for p in journal.parts("test")] == ["pending"]


def test_report_matches_a_recipient_the_network_writes_in_national_format(journal):
    _send(journal, "m", "+4915112345678", [12], T0)
    match = journal.match_report(imsi="simA", modem="gsm1", mr=12, recipient="015112345678", tp_status=0,
                                 report_state="delivered", discharge=None, now=T0 + 1, window=100)
    assert match is not None and match.message.id == "m"
    assert journal.match_report(imsi="simA", modem="gsm1", mr=12, recipient="+4917099999999", tp_status=0,
                                report_state="delivered", discharge=None, now=T0 + 1, window=100) is None
