"""The pool scheduler's rules, as tables of cases (pure: no modem, no clock)."""

from __future__ import annotations

import pytest

from gsmgw.daemon.pool import (
    BUSY,
    READY,
    RESTING,
    ABSENT,
    GiveUp,
    ModemView,
    Retry,
    Usage,
    after_permanent_error,
    after_temporary_error,
    backoff,
    has_room,
    plan,
)
from gsmgw.spool.journal import QueuedMessage
from gsmgw.config import SendingConfig


def msg(id="m", to="+4915112345678", parts=1, pinned=None, bound=None, avoid=(), refused=(), attempts=0):
    return QueuedMessage(
        id=id, recipient=to, priority=1, queued=0.0, not_before=0.0, expires=None, pinned=pinned,
        bound_modem=bound, bound_imsi=None if bound is None else f"imsi-{bound}", parts=parts,
        pending_parts=parts, attempts=attempts, avoid=frozenset(avoid), refused=frozenset(refused),
    )


def fleet(*views):
    return {v.name: v for v in views}


def modem(name, state=READY, **kw):
    return ModemView(name=name, sim=f"imsi-{name}", imsi=f"imsi-{name}", state=state, **kw)


def test_oldest_message_goes_to_the_first_free_modem():
    f = fleet(modem("gsm1"), modem("gsm2"))
    assert [(m, q.id) for m, q in plan(["gsm1", "gsm2"], [msg("a"), msg("b"), msg("c")], f, {})] == [
        ("gsm1", "a"),
        ("gsm2", "b"),
    ]


def test_pinned_message_waits_for_its_modem_and_others_go_past_it():
    f = fleet(modem("gsm1", state=RESTING), modem("gsm2"))
    assigned = plan(["gsm2"], [msg("pinned", pinned="gsm1"), msg("free")], f, {})
    assert [(m, q.id) for m, q in assigned] == [("gsm2", "free")]


def test_bound_message_only_goes_through_its_sim():
    f = fleet(modem("gsm1"), modem("gsm2"))
    assert [(m, q.id) for m, q in plan(["gsm1", "gsm2"], [msg("b", bound="gsm2")], f, {})] == [
        ("gsm2", "b")
    ]
    # bound outweighs a temporary error on that SIM: there is no other SIM it may use
    assert [m for m, _ in plan(["gsm2"], [msg("b", bound="gsm2", avoid=["gsm2"])], f, {})] == ["gsm2"]


@pytest.mark.parametrize(
    "limits, used, parts, fits",
    [
        ({"per_minute": 6}, Usage(5, 5), 1, True),
        ({"per_minute": 6}, Usage(6, 6), 1, False),
        ({"per_minute": 6}, Usage(5, 5), 2, False),  # all parts of one message through one SIM
        ({"per_minute": 2}, Usage(0, 0), 3, True),  # bigger than the limit: goes when empty
        ({"per_minute": 2}, Usage(1, 1), 3, False),
        ({"per_day": 10}, Usage(0, 10), 1, False),
        ({}, Usage(1000, 100000), 1, True),
    ],
)
def test_limits(limits, used, parts, fits):
    assert has_room(modem("gsm1", **limits), used, parts) is fits


def test_over_limit_waits_and_another_modem_takes_it():
    f = fleet(modem("gsm1", per_minute=1), modem("gsm2", per_minute=1))
    usage = {"gsm1": Usage(1, 1)}
    assert [(m, q.id) for m, q in plan(["gsm1", "gsm2"], [msg("a"), msg("b")], f, usage)] == [("gsm2", "a")]
    assert plan(["gsm1"], [msg("a")], f, usage) == []


def test_plan_counts_its_own_assignments_against_limits():
    f = fleet(modem("gsm1", per_minute=2))
    assert [q.id for _, q in plan(["gsm1"], [msg("a", parts=2)], f, {"gsm1": Usage(1, 1)})] == []


def test_prefix_prefers_its_modem_while_it_is_up():
    f = fleet(modem("gsm1"), modem("gsm2", state=BUSY, prefixes=("+4917",)))
    to17 = msg("a", to="+4917612345678")
    assert plan(["gsm1"], [to17], f, {}) == []  # gsm2 is busy but up: it takes it next
    f = fleet(modem("gsm1"), modem("gsm2", state=ABSENT, prefixes=("+4917",)))
    assert [m for m, _ in plan(["gsm1"], [to17], f, {})] == ["gsm1"]
    f = fleet(modem("gsm1"), modem("gsm2", prefixes=("+4917",)))
    assert [m for m, _ in plan(["gsm1", "gsm2"], [to17, msg("b")], f, {})] == ["gsm2", "gsm1"]


def test_temporary_error_prefers_another_modem():
    f = fleet(modem("gsm1"), modem("gsm2", state=BUSY))
    retried = msg("a", avoid=["gsm1"], attempts=1)
    assert plan(["gsm1"], [retried], f, {}) == []  # gsm2 is up: wait for it
    f = fleet(modem("gsm1"), modem("gsm2", state=ABSENT))
    assert [m for m, _ in plan(["gsm1"], [retried], f, {})] == ["gsm1"]


def test_refused_modem_never_gets_the_message_again():
    f = fleet(modem("gsm1"), modem("gsm2", state=ABSENT))
    assert plan(["gsm1"], [msg("a", refused=["gsm1"])], f, {}) == []


def test_after_temporary_error():
    f = fleet(modem("gsm1", state=BUSY), modem("gsm2"))
    assert after_temporary_error(msg(), "gsm1", 1, "+CMS ERROR 38", f) == Retry(delay=0.0, avoid="gsm1")
    busy_other = fleet(modem("gsm1", state=BUSY), modem("gsm2", state=BUSY))
    assert after_temporary_error(msg(), "gsm1", 1, "x", busy_other) == Retry(delay=0.0, avoid="gsm1")
    # both have failed with it: back off instead of bouncing between them
    both_tried = msg(avoid=["gsm2"])
    assert after_temporary_error(both_tried, "gsm1", 2, "x", busy_other) == Retry(delay=backoff(2), avoid="gsm1")
    alone = fleet(modem("gsm1", state=BUSY))
    assert after_temporary_error(msg(), "gsm1", 2, "x", alone) == Retry(delay=backoff(2), avoid="gsm1")
    assert isinstance(after_temporary_error(msg(), "gsm1", SendingConfig().attempts, "x", alone), GiveUp)
    assert [backoff(n) for n in (1, 2, 3)] == [15.0, 30.0, 60.0] and backoff(50) == 600.0
    quick = SendingConfig(retry_first=2.0, retry_max=5.0, attempts=2)
    assert [backoff(n, quick) for n in (1, 2, 3)] == [2.0, 4.0, 5.0]
    assert after_temporary_error(msg(), "gsm1", 1, "x", alone, quick) == Retry(delay=2.0, avoid="gsm1")
    assert isinstance(after_temporary_error(msg(), "gsm1", 2, "x", alone, quick), GiveUp)


def test_after_permanent_error():
    f = fleet(modem("gsm1", state=BUSY), modem("gsm2"))
    assert after_permanent_error(msg(), "gsm1", "e", f) == Retry(delay=0.0, refuse="gsm1")
    assert after_permanent_error(msg(pinned="gsm1"), "gsm1", "e", f) == GiveUp("e")
    assert after_permanent_error(msg(bound="gsm1"), "gsm1", "e", f) == GiveUp("e")
    assert after_permanent_error(msg(refused=["gsm2"]), "gsm1", "e", f) == GiveUp("e")
    down = fleet(modem("gsm1", state=BUSY), modem("gsm2", state=ABSENT))
    assert after_permanent_error(msg(), "gsm1", "e", down) == GiveUp("e")
