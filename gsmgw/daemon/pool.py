"""The SIM pool scheduler: the only place that decides which message goes through which modem.

Pure: no I/O and no clock. The caller (app.py's dispatcher) reads the queue and the limit windows
from the journal, describes the modems as `ModemView`s, and asks `plan()` which idle modem takes
which message. After a failed submit it asks `after_temporary_error()` /
`after_permanent_error()` what to do. Everything here is decided from its arguments, so the rules
can be tested with a table of cases.

The rules (README "How messages are sent"):
- A free modem takes the next message by priority, then age (the candidates come in that order).
- A message bound to a SIM (one of its parts already has an MR there) goes only through that SIM,
  because the recipient joins parts by sender (ARCHITECTURE.md).
- `Modem:`/`Queue:` pins a message to one modem; it waits while that modem is absent, locked or
  resting, until `Expires:`.
- `prefixes`: a destination matching some modems' prefixes goes to one of those while one of them
  is up (ready or busy) and has room in its limits; other modems take it only when none can.
- `limits` count submitted parts per SIM in sliding windows. A message is taken only when all its
  remaining parts fit; one with more parts than the limit itself goes when the window is empty.
  Over the limit a message waits, it never fails.
- A modem that gave a permanent error for a message never gets it again; one that gave a temporary
  error gets it again only when no other modem could take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Mapping, Sequence

from gsmgw.config import SendingConfig
from gsmgw.spool.journal import QueuedMessage


class WorkerState(StrEnum):
    """A worker's state (docs/spool.md `status.json` `state`; gsmgw.daemon.worker draws the moves)."""

    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    RESTING = "resting"
    ABSENT = "absent"
    LOCKED = "locked"
    FAILED = "failed"


STARTING = WorkerState.STARTING
READY = WorkerState.READY
BUSY = WorkerState.BUSY
RESTING = WorkerState.RESTING
ABSENT = WorkerState.ABSENT
LOCKED = WorkerState.LOCKED
FAILED = WorkerState.FAILED
UP_STATES = (READY, BUSY)

_DOWN = frozenset({ABSENT, LOCKED, FAILED})
# The moves a worker makes (gsmgw.states.check_move refuses any other). A modem that is down
# comes back only through starting (the supervisor opens it again); from any state it can go
# down or start recovering. Only a modem that is up rests (sends failed in a row), or one that
# comes up while its rest is still due (starting -> resting): a rest ends in ready, so resting
# must never hold a modem whose port is gone (gsmgw.daemon.worker defers such a rest).
WORKER_MOVES: Mapping[WorkerState, frozenset[WorkerState]] = {
    STARTING: frozenset({READY, BUSY, RESTING}) | _DOWN,
    READY: frozenset({BUSY, RESTING, STARTING}) | _DOWN,
    BUSY: frozenset({READY, RESTING, STARTING}) | _DOWN,
    RESTING: frozenset({READY, BUSY, STARTING}) | _DOWN,
    ABSENT: frozenset({STARTING}) | _DOWN,
    LOCKED: frozenset({STARTING}) | _DOWN,
    FAILED: frozenset({STARTING}) | _DOWN,
}

MINUTE = 60.0
DAY = 86400.0

# Temporary errors back off sending.retry_first (15 s), twice that, ... up to sending.retry_max
# (10 min), and give up after sending.attempts (8): gsmgw.config.SendingConfig, today's values.
DEFAULT_SENDING = SendingConfig()


@dataclass(frozen=True)
class ModemView:
    name: str
    sim: str  # the IMSI, or the modem's name when the SIM did not give one
    imsi: str | None
    state: str
    per_minute: int | None = None
    per_day: int | None = None
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Parts submitted by a SIM in the last minute and the last day."""

    minute: int = 0
    day: int = 0

    def plus(self, parts: int) -> "Usage":
        return Usage(self.minute + parts, self.day + parts)


def has_room(modem: ModemView, usage: Usage, parts: int) -> bool:
    """All `parts` fit in both windows (an oversized message needs an empty window)."""
    for limit, used in ((modem.per_minute, usage.minute), (modem.per_day, usage.day)):
        if limit is None:
            continue
        if used + parts > limit and used > 0:
            return False
    return True


def may_send(modem: ModemView, message: QueuedMessage) -> bool:
    """Bound, pinned and refused rules; they hold whatever the load."""
    if message.bound_imsi is not None or message.bound_modem is not None:
        if message.bound_imsi is not None and modem.imsi is not None:
            return modem.imsi == message.bound_imsi
        return modem.name == message.bound_modem
    if message.pinned is not None and modem.name != message.pinned:
        return False
    return modem.name not in message.refused


def matches_prefix(modem: ModemView, recipient: str) -> bool:
    return any(recipient.startswith(prefix) for prefix in modem.prefixes)


def plan(
    idle: Sequence[str],
    candidates: Iterable[QueuedMessage],
    fleet: Mapping[str, ModemView],
    usage: Mapping[str, Usage],
) -> list[tuple[str, QueuedMessage]]:
    """Assign messages to the idle modems: [(modem name, message)], at most one per modem.

    `fleet` describes every configured modem (also the ones that are down), `usage` is keyed by
    modem name. Candidates come in priority-then-age order; each is given to the first idle modem
    that may take it, so the oldest urgent message never waits behind a younger one.
    """
    free = [name for name in idle if fleet[name].state == READY]
    load = dict(usage)
    assignments: list[tuple[str, QueuedMessage]] = []
    for message in candidates:
        if not free:
            break
        choice = _choose_modem(message, free, fleet, load)
        if choice is None:
            continue
        free.remove(choice)
        load[choice] = load.get(choice, Usage()).plus(message.pending_parts)
        assignments.append((choice, message))
    return assignments


def _choose_modem(
    message: QueuedMessage,
    free: Sequence[str],
    fleet: Mapping[str, ModemView],
    load: Mapping[str, Usage],
) -> str | None:
    def fits(name: str) -> bool:
        return has_room(fleet[name], load.get(name, Usage()), message.pending_parts)

    allowed = [name for name in free if may_send(fleet[name], message) and fits(name)]
    if not allowed:
        return None
    if message.bound_modem is None and message.pinned is None:
        preferred_up = [
            view.name
            for view in fleet.values()
            if view.state in UP_STATES
            and matches_prefix(view, message.recipient)
            and may_send(view, message)
            and fits(view.name)
        ]
        if preferred_up:
            allowed = [name for name in allowed if name in preferred_up]
            if not allowed:
                return None  # a preferred modem is up but busy: it takes this one next
    # A modem that just had a temporary error with this message is the last choice, and is
    # skipped while any other modem that may send it is up (it will be free soon).
    fresh = [name for name in allowed if name not in message.avoid]
    if fresh:
        return fresh[0]
    others_up = [
        view.name
        for view in fleet.values()
        if view.state in UP_STATES and view.name not in message.avoid and may_send(view, message)
    ]
    if others_up:
        return None
    return allowed[0]


def backoff(attempts: int, sending: SendingConfig = DEFAULT_SENDING) -> float:
    """Seconds before the next try after `attempts` tries that ended in a temporary error."""
    return min(sending.retry_first * 2 ** max(attempts - 1, 0), sending.retry_max)


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds from now
    avoid: str | None = None  # temporary: prefer other modems
    refuse: str | None = None  # permanent: never this modem again


@dataclass(frozen=True)
class GiveUp:
    reason: str


def after_temporary_error(
    message: QueuedMessage, modem: str, attempts: int, error: str, fleet: Mapping[str, ModemView],
    sending: SendingConfig = DEFAULT_SENDING,
) -> Retry | GiveUp:
    """A temporary `+CMS ERROR` (or a timeout): retry at once when another modem that has not
    failed with this message is up (ready, or busy and free soon); else after a backoff on any.
    After `sending.attempts` tries, give up."""
    if attempts >= sending.attempts:
        return GiveUp(f"gave up after {attempts} attempts; last error: {error}")
    tried = message.avoid | {modem}
    other_up = any(
        view.state in UP_STATES and view.name not in tried and may_send(view, message)
        for view in fleet.values()
    )
    return Retry(delay=0.0 if other_up else backoff(attempts, sending), avoid=modem)


def after_permanent_error(
    message: QueuedMessage, modem: str, error: str, fleet: Mapping[str, ModemView]
) -> Retry | GiveUp:
    """A permanent `+CMS ERROR`: fails a pinned or bound message at once; an unpinned one moves to
    another modem that is up and has not refused it, and fails only when none is left."""
    if message.pinned is not None or message.bound_modem is not None:
        return GiveUp(error)
    refused = message.refused | {modem}
    others = [
        view.name
        for view in fleet.values()
        if view.state in UP_STATES and view.name not in refused and view.name != modem
    ]
    if not others:
        return GiveUp(error)
    return Retry(delay=0.0, refuse=modem)
