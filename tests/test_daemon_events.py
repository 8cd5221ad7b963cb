"""The event bus: subscribers are called, a slow or failing one never holds up a publisher."""

from __future__ import annotations

import asyncio
import logging

from gsmgw.daemon.events import EventBus
from gsmgw.events import MessageQueued


def test_every_subscriber_gets_every_event_in_order():
    async def scenario():
        bus = EventBus()
        seen_sync, seen_async = [], []
        done = asyncio.Event()

        async def on_async(event):
            seen_async.append(event.id)
            if len(seen_async) == 2:
                done.set()

        bus.subscribe(lambda event: seen_sync.append(event.id))
        bus.subscribe(on_async)
        bus.publish(MessageQueued("a", "+491", 1))
        bus.publish(MessageQueued("b", "+491", 1))
        await asyncio.wait_for(done.wait(), 5)
        return seen_sync, seen_async

    assert asyncio.run(scenario()) == (["a", "b"], ["a", "b"])


def test_slow_subscriber_does_not_block_publish(caplog):
    async def scenario():
        bus = EventBus()
        release = asyncio.Event()
        fast_seen = asyncio.Event()

        async def slow(event):
            await release.wait()

        bus.subscribe(slow)
        bus.subscribe(lambda event: fast_seen.set())
        bus.publish(MessageQueued("a", "+491", 1))  # returns at once
        await asyncio.wait_for(fast_seen.wait(), 5)
        release.set()
        await bus.drain(timeout=5)
        return True

    assert asyncio.run(scenario())


def test_failing_subscriber_is_logged_and_the_others_still_run(caplog):
    async def scenario():
        bus = EventBus()
        got = asyncio.Event()

        def broken(event):
            raise RuntimeError("boom")

        async def broken_async(event):
            raise ValueError("async boom")

        bus.subscribe(broken)
        bus.subscribe(broken_async)
        bus.subscribe(lambda event: got.set())
        bus.publish(MessageQueued("file-1", "+491", 1))
        await asyncio.wait_for(got.wait(), 5)
        await bus.drain(timeout=5)

    with caplog.at_level(logging.ERROR, logger="gsmgw.events"):
        asyncio.run(scenario())
    text = caplog.text
    assert "boom" in text and "async boom" in text and "MessageQueued(file-1)" in text


def test_unsubscribe_stops_delivery():
    async def scenario():
        bus = EventBus()
        seen = []
        unsubscribe = bus.subscribe(lambda event: seen.append(event.id))
        bus.publish(MessageQueued("a", "+491", 1))
        await asyncio.sleep(0)
        unsubscribe()
        bus.publish(MessageQueued("b", "+491", 1))
        await bus.drain(timeout=1)
        return seen

    assert asyncio.run(scenario()) == ["a"]
