"""The daemon's event bus: what happened to messages, for whoever listens in this process.

Publishers are the daemon's workers and inbound handling; subscribers are the HTTP webhooks, the
SMPP server (deliver_sm), the two-way command handler, hooks and metrics. They never reach into
the workers.

Rules:
- `publish` never waits for a subscriber and never raises: each callback is scheduled on the
  event loop (a coroutine function becomes a task), so a slow subscriber cannot hold up sending.
- An exception in a subscriber is logged with the event and forgotten.
- Events are frozen dataclasses; the `id` is always the spool file's name, so it names the same
  thing as `sent/<id>`, `failed/<id>`, `incoming/<id>` and the HTTP API.
- `publish` may be called from the loop's thread only; other threads use `publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Union

log = logging.getLogger("gsmgw.events")


@dataclass(frozen=True)
class MessageQueued:
    id: str
    to: str
    parts: int
    headers: Mapping[str, str] = field(default_factory=dict)  # incl. Client:, Callback: if given


@dataclass(frozen=True)
class MessageSent:
    id: str
    to: str
    modem: str
    imsi: str | None
    message_ids: tuple[int, ...]  # the TP-MR of each part
    path: str  # the file in sent/
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageFailed:
    id: str
    to: str | None  # None when the file was too broken to name a recipient
    reason: str
    path: str  # the file in failed/
    headers: Mapping[str, str] = field(default_factory=dict)
    expired: bool = False


@dataclass(frozen=True)
class MessageReceived:
    id: str  # the file's name in incoming/
    path: str
    sender: str  # "" when the PDU could not be decoded
    text: str  # for 8-bit data, and for a PDU that could not be decoded, the hex (as the file's body)
    modem: str
    sent: str | None  # service-centre time stamp, ISO-8601 with offset
    received: str  # ISO-8601
    parts: int
    incomplete: bool
    decode_error: str | None = None  # the file's Decode_error: what is wrong with the PDU
    # The TOA octet of the sender's address (TS 23.040 §9.1.2.5), None when unknown: only an
    # international or national number may be trusted as one (gsmgw.sms.sender_number).
    sender_toa: int | None = None
    # A binary message (8-bit data: WAP push, OTA settings, ...): its octets, parts joined; `text`
    # is then their hex. None for a text.
    data: bytes | None = None
    # The sender's user data header without concatenation, UDHL first (b"" when none); for text
    # and data alike (e.g. application ports).
    udh: bytes = b""
    ports: tuple[int, int] | None = None  # application port addressing: (destination, origin)

    @property
    def binary(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class ReportReceived:
    id: str  # the sent file's name
    to: str
    status: str  # 'delivered' / 'pending' / 'failed'
    delivered: bool  # the whole message (every part) is delivered
    message_ids: tuple[int, ...]
    report_path: str
    modem: str
    discharge: str | None
    tp_status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # of the sent file (Client:, Callback:)


@dataclass(frozen=True)
class CallReceived:
    """An incoming call was recorded in calls/ (and hung up, unless calls.hangup is off)."""

    id: str  # the file's name in calls/
    path: str
    caller: str | None  # "+49..." as the network gave it; None when withheld or not available
    caller_toa: int | None  # the TOA octet of +CLIP's <type> (TS 24.008 §10.5.4.7), None if not given
    withheld: bool  # the caller withheld the number (CLI validity 1)
    modem: str
    received: str  # ISO-8601: the first ring
    rings: int
    hung_up: bool


@dataclass(frozen=True)
class ModemStateChanged:
    modem: str
    state: str
    previous: str
    reason: str | None = None


Event = Union[
    MessageQueued, MessageSent, MessageFailed, MessageReceived, ReportReceived, CallReceived, ModemStateChanged
]
Subscriber = Callable[[Any], Union[None, Awaitable[None]]]


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
