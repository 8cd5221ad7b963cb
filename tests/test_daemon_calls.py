"""Incoming calls without a modem: the tracker's decisions, the calls/ file, the config keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gsmgw.at.events import CallerId, Ring
from gsmgw.config import check_config
from gsmgw.daemon.calls import CLIP_WAIT, RING_GAP, CallTracker
from gsmgw.spool.format import build_call, read_spool_file
from test_config import MINIMAL, write

NUMBER = "+4915112345678"
CLIP = CallerId(f'+CLIP: "{NUMBER}",145,"",,"",0', NUMBER, 145, 0)


def test_a_call_is_ready_when_its_caller_is_known():
    tracker = CallTracker()
    tracker.seen(Ring("+CRING: VOICE", "VOICE"), 100.0)
    assert tracker.due(100.0) == CLIP_WAIT and tracker.take(100.0) is None
    tracker.seen(CLIP, 100.1)
    call = tracker.take(100.1)
    assert (call.caller, call.caller_toa, call.rings, call.call_type, call.withheld) == (NUMBER, 145, 1, "VOICE", False)
    assert tracker.take(100.2) is None  # handed out once
    tracker.hung_up()
    tracker.seen(Ring("RING"), 105.0)  # after a hang-up, a ring is a new call
    assert tracker.call.rings == 1 and not tracker.call.recorded


def test_a_modem_without_caller_id_gives_the_call_after_clip_wait():
    tracker = CallTracker()
    tracker.seen(Ring("RING"), 10.0)
    assert tracker.take(10.0 + CLIP_WAIT / 2) is None
    call = tracker.take(10.0 + CLIP_WAIT)
    assert call.caller is None and not call.withheld


def test_withheld_and_clip_without_ring():
    tracker = CallTracker()
    tracker.seen(CallerId('+CLIP: "",128,"",,"",1', "", 128, 1), 1.0)
    call = tracker.take(1.0)
    assert call.withheld and call.caller is None and call.rings == 1


def test_a_call_not_hung_up_is_one_call_until_it_stops_ringing():
    tracker = CallTracker()
    tracker.seen(Ring("RING"), 0.0)
    tracker.seen(CLIP, 0.0)
    assert tracker.take(0.0) is not None
    for moment in (3.0, 6.0, 9.0):
        tracker.seen(Ring("RING"), moment)
        tracker.seen(CLIP, moment)
        assert tracker.take(moment) is None
    assert tracker.call.rings == 4 and tracker.due(9.0) == RING_GAP
    assert tracker.take(9.0 + RING_GAP + 0.1) is None and tracker.call is None
    tracker.seen(Ring("RING"), 30.0)
    assert tracker.call.rings == 1  # the next call


def test_the_calls_file():
    received = datetime(2026, 11, 24, 10, 15, 3, tzinfo=timezone(timedelta(hours=1)))
    data = build_call(caller=NUMBER, caller_toa=0x91, withheld=False, modem="gsm1", imsi="262011234567890",
                      received=received, rings=2, call_type="VOICE", hung_up=received + timedelta(seconds=1))
    assert data == (b"From: +4915112345678\nFrom_TOA: 91 international\nModem: gsm1\nIMSI: 262011234567890\n"
                    b"Received: 2026-11-24T10:15:03+01:00\nRings: 2\nCall_type: VOICE\n"
                    b"Hung_up: 2026-11-24T10:15:04+01:00\n\n")
    withheld = read_spool_file(build_call(caller=None, caller_toa=None, withheld=True, modem="gsm1", imsi=None,
                                          received=received, rings=1, call_type=None, hung_up=None))
    assert withheld.headers.get("Withheld") == "yes" and withheld.headers.get("From") is None
    assert withheld.headers.get("Hung_up") is None


def test_calls_config(tmp_path):
    config = check_config(write(tmp_path, MINIMAL + "calls: {hangup: false}\nhooks: {call: /bin/true}\n")).config
    assert (config.calls.hangup, config.calls.ack, config.hooks.call) == (False, False, "/bin/true")
    result = check_config(write(tmp_path, MINIMAL + "calls: {ack: true}\n"))
    (issue,) = result.errors
    assert issue.path == "calls.ack" and "two_way is off" in issue.message and "enabled: true" in issue.fix
    two_way = 'two_way: {enabled: true, allow_from: ["+4915112345678"], secret: "Heron42x"}\n'
    result = check_config(write(tmp_path, MINIMAL + two_way + "calls: {ack: true}\n"))
    assert not result.errors and any(w.path == "calls.ack" and "no secret word" in w.message for w in result.warnings)
    result = check_config(write(tmp_path, MINIMAL + "calls: {hangup: maybe}\n"))
    assert [issue.path for issue in result.errors] == ["calls.hangup"]
