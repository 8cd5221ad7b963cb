"""Take files from outgoing/ into the journal: `Priority: high` ones first, whatever waits.

Where names come from: the watcher (gsmgw.spool.watch) reports the names in outgoing/ that are
ready, and the daemon's own doors (HTTP, Kannel, SMPP, mail, console, Alertmanager) announce the
`Priority: high` files they have just made durable (`Spool.on_high_priority`), so those wait
neither for inotify nor, without it, for a poll.

The order, in each turn of the loop:
  1. urgent names (announced by a door, or found by step 2) are claimed and committed to the
     journal at once, which wakes the dispatcher: the journal hands out by priority, then age,
     so the alert takes the next free modem;
  2. the names the watcher reported are looked into (`Spool.declared_priority`: the first 4 KiB,
     no claim, no fsync, about 50 times cheaper than a claim), the newest batch first, a slice
     at a time; high ones become urgent. Every reported name is looked into before the backlog
     is claimed further, so a high file is claimed before any file reported with it or earlier:
     100,000 files left in outgoing/ at a restart still give the alert among them first;
  3. one slice of the backlog, in the order reported (name order), is claimed: at most
     CLAIM_SLICE names or CLAIM_BUDGET seconds, then the loop is given back for CLAIM_PAUSE, so
     workers between two submits wait for at most one slice. While an urgent message claimed
     here still waits in the journal for a modem (at most HOLD seconds), the backlog is not
     claimed at all: the loop is the workers', so the next free modem is free sooner.

Nothing here is durable state. A name is a hint and the file in outgoing/ is the truth: a
stop, or a journal outage (the names are dropped; the rescan on rejoin reports them again),
leaves the files where they are. A name claimed twice (urgent, and again in the backlog) is
simply gone the second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from gsmgw.daemon.outbound import Outbound
from gsmgw.spool import journal as J
from gsmgw.spool.journal import JournalUnavailable
from gsmgw.spool.watch import OutgoingWatcher

log = logging.getLogger("gsmgw.claimer")

# A backlog in outgoing/ (100,000 files at start) is claimed in slices of at most CLAIM_BUDGET
# seconds, with CLAIM_PAUSE seconds of the loop given back after each: a worker between two
# submits (journal, sent/ file, next AT+CMGS) then waits for at most one slice, so the modems
# keep sending at full speed while the backlog is taken in the background.
CLAIM_SLICE = 200
CLAIM_BUDGET = 0.02
CLAIM_PAUSE = 0.01
# Names looked into for their priority per turn, at most (a look costs an open and a read).
LOOK_BUDGET = 0.01
# How long the backlog waits for an urgent message to be handed to a modem, at most (it may be
# pinned to a modem that is down, or due later), and how often the claimer looks meanwhile.
HOLD = 2.0
HOLD_PAUSE = 0.05


class Claimer:
    def __init__(
        self,
        outbound: Outbound,
        *,
        journal_usable: Callable[[], bool],
        journal_lost: Callable[[], None],
    ) -> None:
        """`journal_usable`: False while a cluster's journal or this member's lease is away;
        `journal_lost`: a claim found the journal away (the membership loop is told)."""
        self.outbound = outbound
        self.spool = outbound.spool
        self.journal_usable = journal_usable
        self.journal_lost = journal_lost
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._urgent: dict[str, None] = {}  # insertion-ordered set
        self._backlog: deque[str] = deque()
        self._unlooked: list[deque[str]] = []  # batches not yet looked into, newest last
        self._held: dict[str, float] = {}  # journal key of an urgent message -> until when it holds the backlog

    def wake(self) -> None:
        self._wake.set()

    def urgent(self, names: list[str]) -> None:
        """Claim these names before anything else (on the loop's thread)."""
        for name in names:
            self._urgent[name] = None
        self._wake.set()

    def urgent_threadsafe(self, names: list[str]) -> None:
        """`urgent` from any thread: what `Spool.on_high_priority` is set to."""
        loop = self._loop
        if loop is None:
            return  # not running yet: the watcher's first scan finds the files
        try:
            loop.call_soon_threadsafe(self.urgent, names)
        except RuntimeError:
            pass  # the loop is closed (stopping): the files wait in outgoing/ for the next start

    async def run(self, watcher: OutgoingWatcher, stopping: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        while not stopping.is_set():
            self._wake.clear()
            self._gather(watcher)
            if not (self._urgent or self._backlog):
                await self._wake.wait()
                continue
            if not self.journal_usable():
                # The files stay in outgoing/ (accepted, durable); they are claimed when the
                # journal answers again (the membership loop rescans outgoing/ then).
                self._forget()
                continue
            try:
                pause = self._turn()
            except JournalUnavailable:
                # Files claimed into checked/ before the journal took them are queued on rejoin.
                self._forget()
                self.journal_lost()
                continue
            except OSError as error:
                log.error("claiming files from outgoing/ failed: %s; retrying", error)
                self._forget()
                watcher.rescan()
                await asyncio.sleep(1.0)
                continue
            if pause == HOLD_PAUSE:
                # Holding the backlog: a new urgent name must not wait for the pause.
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except asyncio.TimeoutError:
                    pass  # time to look at the journal again
            else:
                await asyncio.sleep(pause)

    def _gather(self, watcher: OutgoingWatcher) -> None:
        fresh = watcher.take()
        if fresh:
            self._backlog.extend(fresh)
            self._unlooked.append(deque(fresh))

    def _turn(self) -> float:
        """One step of the module docstring's order, the first that has work: a slice of
        urgent names, a slice of looks, or a slice of the backlog. Returns the pause after it."""
        if self._urgent:
            names = list(self._urgent)[:CLAIM_SLICE]
            log.info("claiming %d high-priority file(s) first: %s%s", len(names), ", ".join(names[:3]),
                     ", ..." if len(names) > 3 else "")
            taken, _ = self.outbound.accept_until(names, deadline=time.monotonic() + CLAIM_BUDGET)
            until = time.monotonic() + HOLD
            for name in names[:taken]:
                del self._urgent[name]
                self._held[self.outbound.journal.key(name)] = until
            return 0.0
        if self._unlooked:
            self._look(time.monotonic() + LOOK_BUDGET)
            return 0.0
        if self._holding():
            return HOLD_PAUSE
        batch = [self._backlog[i] for i in range(min(CLAIM_SLICE, len(self._backlog)))]
        taken, _ = self.outbound.accept_until(batch, deadline=time.monotonic() + CLAIM_BUDGET)
        for _ in range(taken):
            self._backlog.popleft()
        return CLAIM_PAUSE

    def _look(self, deadline: float) -> None:
        """Look into reported names for their priority, newest batch first, until `deadline`."""
        while self._unlooked:
            batch = self._unlooked[-1]
            while batch:
                name = batch.popleft()
                if self.spool.declared_priority(name) == "high":
                    self._urgent[name] = None
                if time.monotonic() >= deadline:
                    if not batch:
                        self._unlooked.pop()
                    return
            self._unlooked.pop()

    def _holding(self) -> bool:
        """An urgent message claimed here is still queued in the journal (for at most HOLD s)."""
        now = time.monotonic()
        while self._held:
            # The oldest first: it is the likeliest to be sent, and one still queued is enough
            # (a campaign sent high holds thousands of keys; each turn looks at few of them).
            key, until = next(iter(self._held.items()))
            if now < until:
                row = self.outbound.journal.message(key)
                if row is not None and row.state == J.QUEUED:
                    return True
            del self._held[key]
        return False

    def _forget(self) -> None:
        self._held.clear()
        self._urgent.clear()
        self._backlog.clear()
        self._unlooked.clear()
