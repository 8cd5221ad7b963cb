"""Live updates for open console pages: server-sent events (`GET /events?topics=...`).

A page names the topics it shows (`dashboard`, `conversations`, `thread:+49…`, `messages`,
`campaigns`, `campaign:ID`, `modem:NAME`, `simulator`). The hub listens to the indexer, which
tells it what it has committed (so a page that reloads a part on a notice reads the new state),
and to a light ticker for what changes without a message (signal, operator, queue depth). Each
open page gets `data: {"topics": [...], "announced": <when the daemon announced the change>}`
for the topics it named and may see (the visibility rule: another client's message never
notifies a page). Notices for one page are coalesced, so a burst of 5,000 state changes is a
few notices, and the work per change does not grow with the number of open pages beyond one
set intersection each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from gsmgw.daemon.indexer import MessageChange, ModemChange
from gsmgw.spool.index import OUT

log = logging.getLogger("gsmgw.web")

KEEPALIVE = 15.0  # a comment line this often keeps proxies from closing an idle stream
# Notices to one page are at least this far apart; each makes the page fetch a live part, so with
# many pages open the gap widens (GAP_PER_PAGE each) to keep those fetches off the daemon's loop,
# where the modems' work runs, but never beyond MAX_GAP, so a change is still shown within 1 s.
MIN_GAP = 0.25
GAP_PER_PAGE = 0.01
MAX_GAP = 0.6
TICK = 1.0  # how often the modems' state is compared while a page shows it
MAX_TOPICS = 8


class Connection:
    def __init__(self, user: str, sees: Callable[[str, str | None], bool], topics: set[str],
                 alive: Callable[[], bool]):
        self.user = user
        self.sees = sees  # (direction, client-or-modem) -> bool
        self.topics = topics
        self.alive = alive  # False once the session has ended
        self.pending: set[str] = set()
        self.announced: float | None = None
        self.wakeup = asyncio.Event()

    def notify(self, topics: set[str], announced: float | None) -> None:
        wanted = topics & self.topics
        if not wanted:
            return
        self.pending |= wanted
        if announced is not None and (self.announced is None or announced < self.announced):
            self.announced = announced
        self.wakeup.set()


def message_topics(change: MessageChange) -> set[str]:
    message = change.message
    topics = {"dashboard", "conversations", "messages", f"thread:{message.number}"}
    if message.campaign:
        topics |= {"campaigns", f"campaign:{message.campaign}"}
    if message.direction == OUT:
        topics.add("simulator")
    if message.modem:
        topics.add(f"modem:{message.modem}")
    return topics


class Hub:
    def __init__(self, snapshot: Callable, *, clock: Callable[[], float] = time.time):
        self.snapshot = snapshot  # async () -> the status object (modems, queue)
        self.clock = clock
        self.connections: set[Connection] = set()
        self._closed = False
        self._ticker: asyncio.Task | None = None
        self._last_modems: dict[str, object] = {}
        self.notices = 0
        # Grows with every change the hub hears of; rendered live parts are cached per version
        # (gsmgw.web.app.Console.cached), so fifty pages refreshing after one notice cost one render.
        self.version = 0

    def gap(self) -> float:
        """Seconds between two notices to one page, by the number of pages open."""
        return min(MAX_GAP, max(MIN_GAP, GAP_PER_PAGE * len(self.connections)))

    # -- from the indexer -------------------------------------------------------------------

    def on_changes(self, changes: list) -> None:
        self.version += 1
        for change in changes:
            if isinstance(change, MessageChange):
                topics = message_topics(change)
                message = change.message
                owner = message.client if message.direction == OUT else message.modem
                for connection in self.connections:
                    if connection.topics & topics and connection.sees(message.direction, owner):
                        connection.notify(topics, change.announced)
            elif isinstance(change, ModemChange):
                self.broadcast({"dashboard", f"modem:{change.modem}"}, change.announced)

    def broadcast(self, topics: set[str], announced: float | None = None) -> None:
        self.version += 1
        for connection in self.connections:
            connection.notify(topics, announced)

    # -- the ticker -------------------------------------------------------------------------

    async def _tick(self) -> None:
        while not self._closed and self.connections:
            try:
                snapshot = await self.snapshot()
                modems = {m.get("name"): tuple(sorted((k, str(v)) for k, v in m.items())) for m in snapshot.get("modems") or []}
                queue = tuple(sorted((snapshot.get("queue") or {}).items()))
                changed = {name for name, value in modems.items() if self._last_modems.get(name) != value}
                if self._last_modems.get("") != queue:
                    changed.add("")
                self._last_modems = {**modems, "": queue}
                if changed:
                    topics = {"dashboard"} | {f"modem:{name}" for name in changed if name}
                    self.broadcast(topics, self.clock())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: reading the modems' status failed")
            await asyncio.sleep(TICK)
        self._ticker = None

    # -- the stream -------------------------------------------------------------------------

    async def stream(self, request: web.Request, connection: Connection) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        self.connections.add(connection)
        if self._ticker is None and not self._closed:
            self._ticker = asyncio.ensure_future(self._tick())
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closed:
                try:
                    await asyncio.wait_for(connection.wakeup.wait(), KEEPALIVE)
                except asyncio.TimeoutError:
                    if not connection.alive():
                        await response.write(b"event: signout\ndata: {}\n\n")
                        break
                    await response.write(b": keepalive\n\n")
                    continue
                if self._closed:
                    break
                if not connection.alive():
                    await response.write(b"event: signout\ndata: {}\n\n")
                    break
                connection.wakeup.clear()
                topics, connection.pending = sorted(connection.pending), set()
                announced, connection.announced = connection.announced, None
                payload = json.dumps({"topics": topics, "announced": announced, "sent": self.clock()})
                await response.write(f"data: {payload}\n\n".encode())
                self.notices += 1
                await asyncio.sleep(self.gap())
        except ConnectionResetError:
            pass  # the page was closed: nobody to tell
        finally:
            self.connections.discard(connection)
        return response

    async def close(self, app=None) -> None:
        self._closed = True
        for connection in list(self.connections):
            connection.wakeup.set()
        if self._ticker is not None:
            self._ticker.cancel()
