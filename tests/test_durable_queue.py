"""gsmgw.durable_queue: the queue webhooks and mail out share, with a receiver we control and a
clock the test moves (no waiting for backoff)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import asdict, dataclass

from gsmgw.durable_queue import DurableQueue, GiveUp
from helpers import async_test


@dataclass
class Note:
    id: str
    created: float
    text: str = ""
    attempts: int = 0
    next_at: float = 0.0
    last_error: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Note":
        return cls(**json.loads(data))

    def describe(self) -> str:
        return f"note {self.id}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class NoteQueue(DurableQueue[Note]):
    def __init__(self, directory, clock, *, answers=(), **options):
        super().__init__(directory, load=Note.from_bytes, name="notes", max_age=options.pop("max_age", 3600.0),
                         first_delay=10.0, max_delay=600.0, concurrency=2, clock=clock, **options)
        self.answers = list(answers)  # consumed per attempt: None delivers, a str fails, GiveUp ends
        self.delivered: list[str] = []
        self.attempted = asyncio.Event()

    async def deliver(self, item):
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            self.delivered.append(item.id)
        self.attempted.set()
        return answer


async def attempt(queue: NoteQueue) -> None:
    queue.attempted.clear()
    queue.wake()
    await asyncio.wait_for(queue.attempted.wait(), 5)
    for _ in range(20):  # let the attempt's bookkeeping (file writes in a thread) finish
        await asyncio.sleep(0.01)


@async_test
async def test_a_receiver_down_for_an_hour_gets_the_delivery_once_when_it_is_back(tmp_path):
    clock = Clock()
    queue = NoteQueue(tmp_path / "q", clock, answers=["down"] * 6, max_age=2 * 86400)
    await queue.start()
    try:
        assert await queue.add(Note("n1", clock.now, "hello"))
        await attempt(queue)
        for _ in range(6):  # 10 s, 20 s, 40 s, ... apart: an hour goes by in a few steps
            assert queue.retrying() == 1 and not queue.delivered
            clock.now += 700
            await attempt(queue)
        assert queue.delivered == ["n1"] and queue.pending() == 0
        clock.now += 700
        queue.wake()
        await asyncio.sleep(0.05)
        assert queue.delivered == ["n1"]
    finally:
        await queue.close()
    assert not list((tmp_path / "q").glob("*.json"))


@async_test
async def test_pending_deliveries_survive_a_restart(tmp_path):
    clock = Clock()
    queue = NoteQueue(tmp_path / "q", clock, answers=["down"])
    await queue.start()
    await queue.add(Note("n1", clock.now))
    await attempt(queue)
    await queue.close()
    again = NoteQueue(tmp_path / "q", clock)
    await again.start()
    try:
        clock.now += 60
        await attempt(again)
        assert again.delivered == ["n1"]
    finally:
        await again.close()


@async_test
async def test_remember_done_makes_a_repeated_announcement_one_delivery_across_restarts(tmp_path):
    clock = Clock()
    queue = NoteQueue(tmp_path / "q", clock, remember_done=3 * 86400)
    await queue.start()
    await queue.add(Note("n1", clock.now))
    await attempt(queue)
    assert queue.delivered == ["n1"]
    await queue.close()
    again = NoteQueue(tmp_path / "q", clock, remember_done=3 * 86400)
    await again.start()
    try:
        assert not await again.add(Note("n1", clock.now))
        assert again.pending() == 0
        clock.now += 4 * 86400  # forgotten after remember_done: the mark is pruned
        await attempt_prune(again)
        assert await again.add(Note("n1", clock.now))
    finally:
        await again.close()


async def attempt_prune(queue: NoteQueue) -> None:
    queue.wake()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not any((queue.done_directory).iterdir()):
            return
    raise AssertionError("the done mark was not pruned")


@async_test
async def test_give_up_and_max_age_move_the_delivery_to_dead(tmp_path):
    clock = Clock()
    queue = NoteQueue(tmp_path / "q", clock, answers=[GiveUp("550 no such user"), "down", "down"], max_age=30)
    await queue.start()
    try:
        await queue.add(Note("refused", clock.now))
        await attempt(queue)
        await queue.add(Note("old", clock.now))
        await attempt(queue)
        clock.now += 15
        await attempt(queue)
        assert queue.dead_total == 2 and queue.pending() == 0
    finally:
        await queue.close()
    dead = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "q" / "dead").glob("*.json")}
    assert dead["refused"]["last_error"] == "550 no such user"
    assert dead["old"]["attempts"] == 2


class GatedQueue(NoteQueue):
    """Each delivery waits until the test opens the gate: a delivery the test can catch in flight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.texts: list[str] = []

    async def deliver(self, item):
        self.attempted.set()
        await self.gate.wait()
        self.texts.append(item.text)
        return None


async def both_delivered(queue: GatedQueue) -> None:
    for _ in range(200):
        if queue.texts == ["old", "new"] and queue.pending() == 0:
            return
        await asyncio.sleep(0.01)
    assert queue.texts == ["old", "new"] and queue.pending() == 0


@async_test
async def test_an_item_replaced_while_its_older_version_is_in_flight_is_delivered_too(tmp_path):
    """Regression: the older version's success removed the newer one (a webhook announced twice,
    the second time while the first was being posted, was lost)."""
    clock = Clock()
    queue = GatedQueue(tmp_path / "q", clock)
    await queue.start()
    try:
        await queue.add(Note("n1", clock.now, "old"))
        await asyncio.wait_for(queue.attempted.wait(), 5)
        await queue.replace(Note("n1", clock.now, "new"))
        queue.gate.set()
        await both_delivered(queue)
    finally:
        await queue.close()
    assert not list((tmp_path / "q").glob("*.json"))


class SlowDoneQueue(GatedQueue):
    """Removing a delivered item's file is slow (a busy disk): the test replaces the item meanwhile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate.set()
        self.removing = threading.Event()
        self.disk = threading.Event()

    def _done(self, item):
        self.removing.set()
        self.disk.wait(5)
        super()._done(item)


@async_test
async def test_an_item_replaced_while_the_older_ones_file_is_being_removed_is_delivered_too(tmp_path):
    """Regression: the older version's removal, still running when the newer came, took the newer
    one out of the queue after it was delivered."""
    clock = Clock()
    queue = SlowDoneQueue(tmp_path / "q", clock)
    await queue.start()
    try:
        await queue.add(Note("n1", clock.now, "old"))
        await asyncio.get_running_loop().run_in_executor(None, queue.removing.wait, 5)
        replacing = asyncio.ensure_future(queue.replace(Note("n1", clock.now, "new")))
        await asyncio.sleep(0.05)
        queue.disk.set()
        await replacing
        await both_delivered(queue)
    finally:
        await queue.close()
    assert not list((tmp_path / "q").glob("*.json"))
