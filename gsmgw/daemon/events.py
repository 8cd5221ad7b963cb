"""The daemon's event bus: what happened to messages, for whoever listens in this process.
The events themselves are the dataclasses of gsmgw.events.

Publishers are the daemon's workers and inbound handling; subscribers are the HTTP webhooks, the
SMPP server (deliver_sm), the two-way command handler, hooks and metrics. They never reach into
the workers.

Rules:
- `publish` never waits for a subscriber and never raises: each callback is scheduled on the
  event loop (a coroutine function becomes a task), so a slow subscriber cannot hold up sending.
- An exception in a subscriber is logged with the event and forgotten.
- `publish` may be called from the loop's thread only; other threads use `publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable

from gsmgw.events import Event, Subscriber

log = logging.getLogger("gsmgw.events")


class EventBus:
    """In-process publish/subscribe; see the module docstring for the rules."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._subscribers: list[Subscriber] = []
        self._loop = loop
        self._tasks: set[asyncio.Task] = set()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        for callback in list(self._subscribers):
            loop.call_soon(self._deliver, callback, event)

    def publish_threadsafe(self, event: Event) -> None:
        if self._loop is None:
            raise RuntimeError("the event bus has no loop yet: publish once from the loop first")
        self._loop.call_soon_threadsafe(self.publish, event)

    def _deliver(self, callback: Subscriber, event: Event) -> None:
        try:
            if inspect.iscoroutinefunction(callback):
                task = asyncio.ensure_future(callback(event))
            else:
                result = callback(event)
                if not inspect.isawaitable(result):
                    return
                task = asyncio.ensure_future(result)
        except Exception:
            log.exception("event subscriber %r failed on %s", callback, _describe(event))
            return
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, callback, event))

    def _finished(self, task: asyncio.Task, callback: Subscriber, event: Event) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error(
                "event subscriber %r failed on %s: %s", callback, _describe(event), error,
                exc_info=error,
            )

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for subscriber tasks still running, e.g. at shutdown."""
        await asyncio.sleep(0)  # let scheduled deliveries start their tasks
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def _describe(event: Any) -> str:
    name = type(event).__name__
    ident = getattr(event, "id", None) or getattr(event, "modem", "")
    return f"{name}({ident})"
