"""The PostgreSQL journal's cluster rules (CLUSTER.md), with several members on one real server:
claims that skip each other's rows, the lease and the fence, reaping a dead member, results and
reports kept for their origin, notices, the schema's version, and a database that goes away."""

from __future__ import annotations

import os
import threading
import time

import psycopg
import pytest

from gsmgw.spool.journal import Fenced, JournalError, JournalUnavailable, NewMessage, NewPart
from gsmgw.spool.journal.postgresql import SCHEMA_VERSION, PostgresJournal, masked_dsn, migrate
from tcpproxy import TcpProxy

T0 = 1_800_000_000.0


@pytest.fixture
def dsn(postgres):
    return postgres.new_database()


@pytest.fixture
def members(dsn):
    opened = []

    def member(name, *, lease=30.0, fence=None, timeout=None, address=dsn):
        journal = PostgresJournal(address, member=name, lease=lease, fence=fence, timeout=timeout)
        journal.join(host=f"host-{name}", pid=os.getpid(), version="test")
        opened.append(journal)
        return journal

    yield member
    for journal in opened:
        journal.close()


def message(key, to="+4915112345678", parts=1, **kw):
    return NewMessage(id=key, recipient=to, parts=[NewPart(i + 1, f"00{i:02X}", 10) for i in range(parts)], **kw)


def run_sql(dsn, sql, params=()):
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql, params)


def end_lease(dsn, name):
    """The member's lease ran out (as if it had not renewed for a whole lease)."""
    run_sql(dsn, "UPDATE member SET lease_until = clock_timestamp() - interval '1 second' WHERE name = %s", (name,))


def submit(journal, key, seq=1, modem="gsm1", imsi="sim1", mr=None):
    journal.mark_submitting(key, seq, modem, imsi)
    if mr is not None:
        journal.mark_submitted(key, seq, mr, T0, sim=imsi, report=True)


def test_members_claiming_at_once_never_take_the_same_message(members):
    a, b = members("gw-a"), members("gw-b")
    a.add_messages([message(a.key(f"m{i}")) for i in range(6)], T0)
    seen_by_b = {}

    def a_assigns(candidates):
        # While gw-a holds its rows (inside its transaction), gw-b claims: it skips them.
        seen_by_b["seen"], seen_by_b["chosen"] = b.claim_candidates(
            T0, 10, 0, lambda others: [("b1", m) for m in others])
        return [("a1", m) for m in candidates]

    seen_a, chosen_a = a.claim_candidates(T0, 3, 0, a_assigns)
    assert seen_a == 3 and seen_by_b["seen"] == 3
    taken_a = {m.id for _, m in chosen_a}
    taken_b = {m.id for _, m in seen_by_b["chosen"]}
    assert taken_a.isdisjoint(taken_b) and len(taken_a | taken_b) == 6
    assert {a.message(key).member for key in taken_b} == {"gw-b"}


def test_a_member_without_a_lease_claims_nothing(dsn, members):
    a = members("gw-a")
    a.add_messages([message(a.key("m"))], T0)
    end_lease(dsn, "gw-a")
    with pytest.raises(Fenced, match="lease"):
        a.claim_candidates(T0, 10, 0, lambda candidates: [("gsm1", candidates[0])])
    assert not a.claim(a.key("m"), "gsm1")
    assert a.message(a.key("m")).state == "queued"


def test_the_fence_refuses_a_submit_that_could_outlast_the_lease(members):
    a = members("gw-a", lease=30.0, fence=31.0)
    a.add_messages([message(a.key("m"))], T0)
    assert a.claim(a.key("m"), "gsm1")
    with pytest.raises(Fenced, match="less than a submit may take"):
        a.mark_submitting(a.key("m"), 1, "gsm1", "sim1")
    assert [p.state for p in a.parts(a.key("m"))] == ["pending"]


def test_a_dead_members_claims_go_back_at_once_and_its_parts_in_flight_are_named(dsn, members):
    a, b, c = members("gw-a"), members("gw-b"), members("gw-c")
    keys = [a.key("inflight"), a.key("claimed"), a.key("done")]
    a.add_messages([message(key) for key in keys], T0)
    for key in keys:
        assert b.claim(key, "b1")
    submit(b, keys[0])  # AT+CMGS sent, no answer recorded: may have reached the network
    submit(b, keys[2], mr=5)
    end_lease(dsn, "gw-b")
    released = c.reap()
    assert [(r.member, r.requeued, r.possible_duplicates, r.finished) for r in released] == [
        ("gw-b", tuple(sorted(keys[:2])), ((keys[0], 1),), (keys[2],))
    ]
    assert a.reap() == [] and c.reap() == []  # reaped once
    assert {m.id for m in c.queued_candidates(T0)} == {keys[0], keys[1]}
    # Its last submit came before its lease ran out: sent, and the origin writes sent/.
    assert (c.message(keys[2]).state, c.message(keys[2]).modem) == ("sent", "gsm1")
    assert [row.id for row in a.unfiled()] == [keys[2]]
    # The dead member cannot submit what it lost, even if it wakes up.
    with pytest.raises(Fenced):
        b.mark_submitting(keys[1], 1, "b1", "sim1")
    members_now = {m.name: m.alive for m in c.members()}
    assert members_now == {"gw-a": True, "gw-b": False, "gw-c": True}


def test_an_mr_recorded_late_counts_unless_another_member_has_the_message(dsn, members):
    a, b = members("gw-a"), members("gw-b")
    first, second = a.key("first"), a.key("second")
    a.add_messages([message(first), message(second)], T0)
    for key in (first, second):
        assert a.claim(key, "a1")
        submit(a, key)
    end_lease(dsn, "gw-a")
    b.reap()
    # `first` is back in the queue, unclaimed: gw-a's late MR saves a duplicate.
    a.mark_submitted(first, 1, 7, T0, sim="sim1", report=False)
    assert a.parts(first)[0].state == "submitted" and a.fully_submitted() == [first]
    # `second` was taken by gw-b meanwhile: gw-a's MR comes too late, gw-b sends it again.
    assert b.claim(second, "b1")
    with pytest.raises(Fenced, match="holds the message"):
        a.mark_submitted(second, 1, 8, T0, sim="sim1", report=False)
    assert a.parts(second)[0].state == "pending"


def test_results_and_reports_wait_for_their_origin(members):
    a, b = members("gw-a"), members("gw-b")
    key = a.key("file-1")
    a.add_messages([message(key, report=True)], T0)
    assert b.claim(key, "b1")
    submit(b, key, modem="b1", imsi="simB", mr=42)
    b.mark_sent(key, "b1", "simB", T0 + 1, filed=False)
    assert [row.name for row in a.unfiled()] == ["file-1"] and b.unfiled() == []
    match = b.match_report(imsi="simB", modem="b1", mr=42, recipient="+4915112345678", tp_status=0,
                           report_state="delivered", discharge="2027-01-15T08:00:00+00:00", now=T0 + 2, window=60)
    assert match.forwarded and match.delivered and match.message.origin == "gw-a"
    (report,) = a.forwarded_reports()
    assert (report.message, report.part, report.modem, report.mr, report.tp_status) == (key, 1, "b1", 42, 0)
    assert b.forwarded_reports() == []
    a.mark_filed([key])
    a.report_filed(report.seq)
    assert a.unfiled() == [] and a.forwarded_reports() == []
    assert a.message(key).state == "delivered"


def test_a_member_publishes_its_modems_and_sees_the_others(dsn, members):
    a, b = members("gw-a"), members("gw-b")
    lease = b.renew([{"name": "gsm3", "state": "ready", "sim": "262010000000003", "prefixes": ["+4917"]}], time.time())
    assert not lease.lost and 29 < lease.left <= 30
    rows = {m.name: m for m in a.members()}
    assert rows["gw-b"].alive and rows["gw-b"].modems[0]["name"] == "gsm3"
    assert abs(rows["gw-b"].clock_offset) < 5
    end_lease(dsn, "gw-b")
    assert not {m.name: m for m in a.members()}["gw-b"].alive
    assert b.renew([], time.time()).lost  # it learns that it had lost its lease


def test_a_live_member_name_cannot_be_taken_by_another_host(dsn, members):
    members("gw-a")
    other = PostgresJournal(dsn, member="gw-a")
    try:
        with pytest.raises(JournalError, match="in use by host-gw-a"):
            other.join(host="elsewhere", pid=1, version="test")
    finally:
        other.close()


def test_notices_wake_the_other_members(members):
    a, b = members("gw-a"), members("gw-b")
    heard = []
    arrived = threading.Event()

    def on_notice(channel, payload):
        heard.append((channel, payload))
        arrived.set()

    stop = b.listen(on_notice)
    try:
        deadline = time.monotonic() + 10
        while not arrived.is_set() and time.monotonic() < deadline:
            a.add_messages([message(a.key(f"m{len(heard)}-{time.monotonic()}"))], T0)  # until the listener is up
            arrived.wait(0.2)
        assert ("gsmgw_queue", "") in heard
    finally:
        stop()


def test_a_member_announces_its_modems_and_its_leave(members):
    a, b = members("gw-a"), members("gw-b")
    heard = []
    arrived = threading.Event()

    def on_notice(channel, payload):
        if channel == "gsmgw_members":
            heard.append(payload)
            arrived.set()

    stop = b.listen(on_notice)
    try:
        deadline = time.monotonic() + 10
        while not arrived.is_set() and time.monotonic() < deadline:  # until the listener is up
            a.renew([{"name": "a1", "state": "ready"}], time.time(), announce=True)
            arrived.wait(0.2)
        assert heard and set(heard) == {"gw-a"}
        heard.clear()
        arrived.clear()
        a.renew([{"name": "a1", "state": "busy"}], time.time())  # a renewal alone tells nobody
        b.renew([], time.time(), announce=True)  # (notices come in commit order: a marker)
        a.leave()
        deadline = time.monotonic() + 10
        while len(heard) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heard == ["gw-b", "gw-a"]  # the plain renewal sent none; the leave did
        assert not {m.name: m for m in b.members()}["gw-a"].alive
    finally:
        stop()


def test_the_schema_is_made_once_and_a_newer_one_is_refused(dsn):
    assert migrate(dsn) == (0, SCHEMA_VERSION)
    assert migrate(dsn) == (SCHEMA_VERSION, SCHEMA_VERSION)
    run_sql(dsn, "UPDATE meta SET value = %s WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(JournalError, match="newer than this gsmgw"):
        PostgresJournal(dsn, member="gw-a")


def test_a_database_without_a_journal_is_created_or_named(dsn):
    with pytest.raises(JournalError, match="gsmgw journal migrate"):
        PostgresJournal(dsn, member="gw-a", create=False)
    journal = PostgresJournal(dsn, member="gw-a")
    try:
        assert journal.schema_version() == SCHEMA_VERSION
    finally:
        journal.close()


def test_a_password_never_shows_in_the_dsn_of_a_message():
    assert masked_dsn("postgresql://gsmgw:s3cret@db1,db2/gsmgw?sslmode=require") == (
        "postgresql://gsmgw:***@db1,db2/gsmgw?sslmode=require")


def test_an_unreachable_database_fails_fast_and_comes_back(postgres, dsn, members):
    """A network that swallows packets: the first call gives up after the timeout, the next
    ones at once, none hangs; once it passes again, reconnect() writes the MR it kept first."""
    with TcpProxy(postgres.port) as proxy:
        a = members("gw-a", timeout=0.5, address=dsn.replace(f":{postgres.port}/", f":{proxy.port}/"))
        key = a.key("m")
        a.add_messages([message(key)], T0)
        assert a.claim(key, "a1")
        submit(a, key)
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(JournalUnavailable):
            a.mark_submitted(key, 1, 9, T0, sim="sim1", report=False)  # the part went out: MR kept
        assert time.monotonic() - started < 2.0 and not a.available
        started = time.monotonic()
        with pytest.raises(JournalUnavailable):
            a.message(key)
        assert time.monotonic() - started < 0.1
        proxy.thaw()
        deadline = time.monotonic() + 15
        while True:
            try:
                late = a.reconnect()
                break
            except JournalUnavailable:
                assert time.monotonic() < deadline, "the journal did not come back"
                time.sleep(0.2)
        assert late == [] and a.available
        assert [(p.state, p.mr) for p in a.parts(key)] == [("submitted", 9)]
