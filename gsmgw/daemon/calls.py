"""Incoming calls: from the modem's RING / +CRING / +CLIP to one file in calls/ per call.

A SIM that people call rings. The driver turns the modem's lines into `events.Ring` and
`events.CallerId`; the worker feeds them to its `CallTracker` (pure: events and the time in,
one decision out) and, when the tracker says a call is ready, hangs up (`calls.hangup`) and hands
the call to `CallLog`, which writes the file and announces `CallReceived` on the bus (the `call`
hook, the `call` webhook and two-way's call acknowledgement listen).

When a call is ready: as soon as its caller is known (+CLIP), or CLIP_WAIT after its first
ring when the modem names no caller (+CLIP off or refused). A call that gsmgw does not hang up
goes on ringing: its further rings belong to the same call until none came for RING_GAP.
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
from dataclasses import dataclass
from gsmgw.at import events as at_events
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.events import CallReceived
from gsmgw.spool.format import build_call, incoming_name, iso

log = logging.getLogger("gsmgw.calls")

# +CLIP follows RING on the same burst of lines (TS 27.007 §7.6); a modem that sends no +CLIP is
# not waited for longer than this.
CLIP_WAIT = 1.0
# Networks repeat RING every 3-6 s; a call not hung up has ended when no ring came for this long.
RING_GAP = 8.0
# TS 27.007 §7.6 <CLI validity>: 1 withheld by the calling party.
CLI_WITHHELD = 1


@dataclass
class Call:
    """What the modem said about one incoming call."""

    first_ring: float
    last_ring: float
    rings: int = 0
    caller: str | None = None
    caller_toa: int | None = None
    withheld: bool = False
    call_type: str | None = None
    recorded: bool = False  # handed out by `CallTracker.take` (recorded, hung up if configured)


class CallTracker:
    """Pure state of the call ringing at one modem: `seen` takes the driver's events, `due` says
    when to look again, `take` hands out a call that is ready (once)."""

    def __init__(self) -> None:
        self.call: Call | None = None

    def seen(self, event: at_events.Urc, now: float) -> None:
        call = self.call
        if call is not None and (call.recorded and now - call.last_ring > RING_GAP):
            call = self.call = None  # the previous call ended without a hang-up; this is a new one
        if call is None:
            call = self.call = Call(first_ring=now, last_ring=now)
        call.last_ring = now
        if isinstance(event, at_events.Ring):
            call.rings += 1
            call.call_type = call.call_type or (event.call_type or None)
        elif isinstance(event, at_events.CallerId):
            if call.rings == 0:
                call.rings = 1  # a modem that announces the caller without a RING line
            if event.number:
                call.caller, call.caller_toa = event.number, event.toa
            call.withheld = event.validity == CLI_WITHHELD

    def due(self, now: float) -> float | None:
        """Seconds until `take` or `forget` has something to do; None when no call is ringing."""
        call = self.call
        if call is None:
            return None
        if call.recorded:
            return max(0.0, call.last_ring + RING_GAP - now)
        if call.caller is not None or call.withheld:
            return 0.0
        return max(0.0, call.first_ring + CLIP_WAIT - now)

    def take(self, now: float) -> Call | None:
        """The call, once it is ready to record (its caller known, or CLIP_WAIT over)."""
        call = self.call
        if call is None:
            return None
        if call.recorded:
            if now - call.last_ring > RING_GAP:
                self.call = None
            return None
        if self.due(now) != 0.0:
            return None
        call.recorded = True
        return call

    def hung_up(self) -> None:
        """gsmgw hung the call up: the next ring is a new call."""
        self.call = None


class CallLog:
    """Writes calls/ files (atomically, like incoming/) and announces them on the bus. `hangup`
    is calls.hangup (the gateway sets it again on reload)."""

    def __init__(self, spool, bus: EventBus | None, metrics: Metrics | None = None, *, hangup: bool = True):
        self.spool = spool
        self.bus = bus
        self.metrics = metrics
        self.hangup = hangup

    def record(self, call: Call, *, modem: str, imsi: str | None, hung_up: float | None) -> str:
        received = _local(call.first_ring)
        content = build_call(
            caller=call.caller, caller_toa=call.caller_toa, withheld=call.withheld, modem=modem, imsi=imsi,
            received=received, rings=call.rings, call_type=call.call_type,
            hung_up=_local(hung_up) if hung_up is not None else None,
        )
        name = self.spool.write_new("calls", content, name=incoming_name(modem, received, secrets.token_hex(4)))
        who = call.caller or ("a withheld number" if call.withheld else "an unknown caller")
        log.info("%s: call from %s on %s, %d ring(s)%s", name, who, modem, call.rings,
                 ", hung up" if hung_up is not None else "")
        if self.metrics:
            self.metrics.calls.labels(modem).inc()
        if self.bus:
            self.bus.publish(
                CallReceived(
                    id=name, path=str(self.spool.path("calls", name)), caller=call.caller,
                    caller_toa=call.caller_toa, withheld=call.withheld, modem=modem, received=iso(received),
                    rings=call.rings, hung_up=hung_up is not None,
                )
            )
        return name


def _local(moment: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(moment).astimezone()

