"""This host's place in a cluster of gsmgw hosts sharing one PostgreSQL journal (CLUSTER.md).

What it does, in one loop (`Membership.run`), every `renew_every` seconds and when woken:
- renews this member's lease and publishes its modems (state, SIM, limits, prefixes), and reads
  the other members and theirs: the dispatcher's fleet (`views`) sees every member's modems, so
  `Modem:` pins and prefix routing work across hosts, and a dead member's modems are `absent`.
  A modem that comes up or goes down (`modems_changed`) is published at once with a
  `gsmgw_members` notice, as is a member's leave; a notice from another member makes this one
  read the members at once. So a member sees another's modems come up within a round trip,
  not a renewal later (ready <-> busy is no such change: both are up);
- reaps members whose lease ran out: their claimed, unsubmitted messages go back to the queue at
  once, and the parts they were submitting are logged as possible duplicates. A member reaps
  only after it has held its own lease for a whole lease, so after an outage that cut every
  member off, each first records what it sent and renews before anyone reaps anyone;
- writes the result files of this host's messages that other members finished, and the reports
  they received for them (`gsmgw_filing` notices wake it at once; the loop makes a lost notice
  harmless), also after this host was down;
- watches the journal's health. While the database cannot be reached, sending pauses (the
  journal refuses every call), the doors keep accepting into the spool, inbound SMS stay on the
  SIM, and the status says `journal unreachable`. When it answers again: the MRs it could not
  take are written first, the lease renewed, the claims this host's modems no longer hold
  released, files claimed into checked/ meanwhile queued, outgoing/ scanned again. Nothing
  needs a restart.

The timings follow from the lease (`cluster.lease`): renewal every lease/4; a submit's timeout in
a cluster is lease/2 (`submit_timeout`), and the journal's fence demands that plus a margin, so a
renewal that fails twice in a row already stops new submits, and a member whose lease ran out
has no submit left running.

Every journal call of the loop runs in a thread (`asyncio.to_thread`): a database that hangs
never stalls the daemon's loop beyond the journal's own timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from gsmgw.daemon import pool
from gsmgw.spool.journal import (
    ClusterJournal,
    Fenced,
    JournalBusy,
    JournalError,
    JournalUnavailable,
    MemberRow,
    Released,
)

log = logging.getLogger("gsmgw.cluster")

FILING_GATHER = 0.1  # seconds
JOURNAL_OK = "ok"
JOURNAL_UNREACHABLE = "journal unreachable"


def submit_timeout(lease: float) -> float:
    """The AT+CMGS timeout of a cluster member (see the module docstring)."""
    return lease / 2


def fence_margin(lease: float) -> float:
    """Slack for the database round trips between the fence and AT+CMGS."""
    return max(0.2, min(2.0, lease / 10))


def fence(lease: float) -> float:
    return submit_timeout(lease) + fence_margin(lease)


def modem_record(status: Any, view: pool.ModemView) -> dict:
    """What a member publishes about one of its modems: its status object's fields (as
    `gsmgw status --json` shows them) and what routing needs (limits, prefixes)."""
    return {
        "name": view.name,
        "state": view.state,
        "port": getattr(status, "port", None),
        "imsi": view.imsi,
        "iccid": getattr(status, "iccid", None),
        "imei": getattr(status, "imei", None),
        "operator": getattr(status, "operator", None),
        "signal_dbm": getattr(status, "signal_dbm", None),
        "registered": getattr(status, "registered", None),
        "last_error": getattr(status, "last_error", None),
        "sim": view.sim,
        "per_minute": view.per_minute,
        "per_day": view.per_day,
        "prefixes": list(view.prefixes),
    }


def remote_views(members: Iterable[MemberRow], me: str) -> dict[str, pool.ModemView]:
    """The other members' modems as the scheduler sees them; a dead member's are `absent`."""
    views: dict[str, pool.ModemView] = {}
    for member in members:
        if member.name == me:
            continue
        for modem in member.modems:
            name = modem.get("name")
            if not name or name in views:
                continue
            views[name] = pool.ModemView(
                name=name,
                sim=modem.get("sim") or name,
                imsi=modem.get("imsi"),
                state=(modem.get("state") or pool.ABSENT) if member.alive else pool.ABSENT,
                per_minute=modem.get("per_minute"),
                per_day=modem.get("per_day"),
                prefixes=tuple(modem.get("prefixes") or ()),
            )
    return views


def member_status(member: MemberRow, me: str) -> dict:
    """One member for `gsmgw status --json`'s `members` list."""
    modems = []
    for modem in member.modems:
        row = {key: modem.get(key) for key in ("name", "state", "port", "imsi", "iccid", "imei", "operator",
                                               "signal_dbm", "registered", "last_error")}
        if not member.alive:
            row["state"] = pool.ABSENT
        modems.append(row)
    return {
        "name": member.name,
        "host": member.host,
        "self": member.name == me,
        "state": "up" if member.alive else "down",
        "lease_left": round(member.lease_left, 1),
        "clock_offset": None if member.clock_offset is None else round(member.clock_offset, 3),
        "version": member.version,
        "modems": modems,
    }


def up_or_down(records: Sequence[Mapping]) -> tuple[tuple[str, str], ...]:
    """What other members must hear about at once: which modems are up (ready or busy, both take
    work) and the state of those that are not."""
    return tuple(sorted((str(record.get("name")), "up" if record.get("state") in pool.UP_STATES
                         else str(record.get("state"))) for record in records))


def _some(keys: Sequence[str], most: int = 20) -> str:
    return ", ".join(keys[:most]) + (" ..." if len(keys) > most else "")


class Membership:
    def __init__(
        self,
        journal: ClusterJournal,
        *,
        lease: float,
        version: str,
        modems: Callable[[], Sequence[Mapping]],
        held: Callable[[], Iterable[str]],
        on_rejoin: Callable[[], None],
        file_results: Callable[[], Awaitable[int]],
        wake: Callable[[], None],
        on_change: Callable[[], None],
    ):
        self.journal = journal
        self.lease = lease
        self.renew_every = lease / 4
        self.version = version
        self.modems = modems
        self.held = held
        self.on_rejoin = on_rejoin  # adopt what arrived meanwhile, rescan outgoing/
        self.file_results = file_results
        self.wake = wake
        self.on_change = on_change
        self.members: list[MemberRow] = []
        self.views: dict[str, pool.ModemView] = {}
        self.state = JOURNAL_OK  # a member starts only with the journal reachable (app.py)
        self.reason: str | None = None
        self._lease_since: float | None = None  # monotonic time since which the lease is held without a break
        self._published: tuple[tuple[str, str], ...] | None = None  # up_or_down() of the last renewal
        self._announce = False  # a modem came up or went down: renew and tell the others now
        self._reread = False  # another member told: read the members now
        self._kick = asyncio.Event()
        self._filing = asyncio.Event()
        self._stop_listening: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what the rest of the daemon asks -----------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.state == JOURNAL_OK

    def status(self) -> dict:
        """`journal` and `members` of the status object; this member's modems as they are now,
        the others' as they published them."""
        me = self.journal.member
        members = [dataclasses.replace(member, modems=tuple(self.modems())) if member.name == me else member
                   for member in self.members]
        return {
            "journal": {
                "backend": "postgresql",
                "member": me,
                "state": self.state,
                "reason": self.reason,
            },
            "members": [member_status(member, me) for member in members],
        }

    def modems_changed(self) -> None:
        """A local modem changed state: when one came up or went down, publish it now."""
        if self._published is not None and up_or_down(self.modems()) != self._published:
            self._announce = True
            self._kick.set()

    def modem_names(self) -> tuple[str, ...]:
        return tuple(self.views)

    def knows_modem(self, name: str) -> bool:
        """Has any member (also one that joined after the last look) a modem of this name? While
        the journal cannot be asked, a pin is given the benefit of the doubt: it waits."""
        if name in self.views:
            return True
        try:
            self._set_members(self.journal.members())
        except JournalUnavailable:
            return True
        return name in self.views

    # -- start --------------------------------------------------------------------------------

    def join(self) -> None:
        """At start: become a member (JournalError if the name is taken, JournalUnavailable)."""
        self.journal.join(host=socket.gethostname(), pid=os.getpid(), version=self.version)
        self._lease_since = time.monotonic()
        records = self.modems()
        self.journal.renew(records, time.time(), announce=True)
        self._published = up_or_down(records)
        self._due_renewal = time.monotonic() + self.renew_every
        self._set_members(self.journal.members())

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_listening = self.journal.listen(self._notice_from_thread)

    def _notice_from_thread(self, channel: str, payload: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._notice, channel, payload)
        except RuntimeError:
            pass  # the loop is closing: the daemon is stopping

    def _notice(self, channel: str, payload: str) -> None:
        if channel == "gsmgw_filing":
            if payload == self.journal.member:
                self._filing.set()
                self._kick.set()
            return
        if channel == "gsmgw_members":
            if payload != self.journal.member:
                self._reread = True
                self._kick.set()
            return
        if channel == "reconnected":
            self._filing.set()
            self._kick.set()
        self.wake()

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self._round()
            except JournalBusy as error:
                log.info("%s", error)  # the database answers: a dead member's locks are on their way out
            except JournalUnavailable as error:
                self._unreachable(str(error))
            except Fenced as error:
                log.error("%s", error)
            except JournalError as error:
                # A schema the journal cannot use (another member migrated it): say so and
                # stay paused until someone fixes it; the doors keep accepting.
                self._unreachable(str(error))
            except Exception:
                log.exception("cluster membership round failed; trying again")
            delay = self.renew_every if self.healthy else min(1.0, self.renew_every)
            if self.healthy and (self._announce or self._reread):
                delay = 0.0  # asked for during this round (the kick is cleared below); each flag is cleared when tried
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), delay)
            except asyncio.TimeoutError:
                pass  # the next renewal is due

    async def _round(self) -> None:
        journal = self.journal
        if not journal.available or not self.healthy:
            late = await asyncio.to_thread(journal.reconnect)
            for key, seq, why in late:
                log.warning("possible duplicate: %s part %d went out from this member before the journal was "
                            "unreachable, but its MR came too late: %s", key, seq, why)
            await self._rejoin()
            return
        now_monotonic = time.monotonic()
        due = self._due_renewal
        if due is None or now_monotonic >= due or self._announce:
            records = self.modems()
            published = up_or_down(records)
            self._announce = False
            lease = await asyncio.to_thread(journal.renew, records, time.time(),
                                            announce=published != self._published)
            self._published = published
            if lease.lost:
                log.warning("member %s: its lease had run out; releasing the claims its modems no longer hold",
                            journal.member)
                await self._release_mine()
                self._lease_since = time.monotonic()
            self._due_renewal = time.monotonic() + self.renew_every
            await self._look_at_members()
            self._filing.set()  # the periodic look: a lost notice delays a result by one renewal
        elif self._reread:
            await self._look_at_members()
        if self._filing.is_set():
            # A short wait gathers the results of several messages into one pass (and one
            # transaction); a notice comes per message from every member.
            await asyncio.sleep(FILING_GATHER)
            self._filing.clear()
            await self.file_results()

    _due_renewal: float | None = None

    async def _look_at_members(self) -> None:
        """Read every member and its modems; reap those whose lease ran out (also one that just
        left: its claims go back now)."""
        self._reread = False
        self._set_members(await asyncio.to_thread(self.journal.members))
        if self._lease_since is not None and time.monotonic() - self._lease_since >= self.lease:
            for released in await asyncio.to_thread(self.journal.reap):
                self._log_released(released, "its lease ran out")
                self.wake()

    async def _rejoin(self) -> None:
        """Back after an outage (see the module docstring)."""
        journal = self.journal
        records = self.modems()
        self._announce = False
        lease = await asyncio.to_thread(journal.renew, records, time.time(), announce=True)  # back, maybe changed
        self._published = up_or_down(records)
        await self._release_mine()
        self._lease_since = time.monotonic()
        self._due_renewal = time.monotonic() + self.renew_every
        self._set_members(await asyncio.to_thread(journal.members))
        was = self.reason
        self.state, self.reason = JOURNAL_OK, None
        log.info("journal reachable again: member %s is back (it was unreachable: %s) (lease %.0f s left); "
                 "sending resumes", journal.member, was, lease.left)
        self.on_rejoin()
        await self.file_results()
        self.on_change()
        self.wake()

    async def _release_mine(self) -> None:
        held = list(self.held())
        released = await asyncio.to_thread(self.journal.release_mine, held)
        self._log_released(released, "it could not reach the journal")

    def _log_released(self, released: Released, why: str) -> None:
        for key, seq in released.possible_duplicates:
            log.warning("possible duplicate: %s part %d was being submitted by %s when %s; it is sent again",
                        key, seq, released.member, why)
        if released.requeued:
            log.warning("member %s: %s; %d message(s) it had claimed are back in the queue: %s",
                        released.member, why, len(released.requeued), _some(released.requeued))
        if released.finished:
            log.warning("member %s: %s; %d message(s) it had submitted completely are sent: %s",
                        released.member, why, len(released.finished), _some(released.finished))

    def _set_members(self, members: list[MemberRow]) -> None:
        before = {m.name: m.alive for m in self.members}
        modems_before = {name: view.state for name, view in self.views.items()}
        self.members = members
        self.views = remote_views(members, self.journal.member)
        for member in members:
            if member.name != self.journal.member and before.get(member.name, member.alive) != member.alive:
                log.warning("member %s is %s", member.name, "up" if member.alive else
                            "down (its lease ran out); its modems are absent")
        if {m.name: m.alive for m in members} != before or modems_before != {
            name: view.state for name, view in self.views.items()
        }:
            self.on_change()

    def _unreachable(self, reason: str) -> None:
        if self.healthy:
            log.error("%s (%s): sending pauses; files, HTTP and SMPP keep accepting into the spool, inbound "
                      "SMS stay on the SIM; everything resumes by itself when it answers", JOURNAL_UNREACHABLE, reason)
        self.state, self.reason = JOURNAL_UNREACHABLE, reason
        self._lease_since = None
        self.on_change()

    def kick(self) -> None:
        """Look at the journal now (a call elsewhere found it unreachable)."""
        self._kick.set()

    async def stop(self) -> None:
        """Shutdown, after the workers are done: end the lease, so others take over at once."""
        self._stop_listening()
        if self.journal.available:
            try:
                await asyncio.to_thread(self.journal.leave)
            except JournalError as error:
                log.warning("could not end this member's lease (%s); the others wait for it to run out", error)
