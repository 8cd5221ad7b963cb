"""ModemSupervisor against the simulator: unplug/replug, a hung modem and the recovery ladder,
a different SIM behind the same path, a wrong PIN that must not be retried."""

from __future__ import annotations

import asyncio
import os

import pytest

from gsmgw.at.supervisor import ModemSupervisor, SupervisorEvent
from gsmgw.sim import SimNetwork

FAST = {"command_timeout": 0.5, "ready_timeout": 1.0, "reset_timeout": 1.0, "send_timeout": 2.0}


def run(coro, timeout: float = 25.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Recorder:
    """Collects supervisor events and lets a test wait for one by kind."""

    def __init__(self):
        self.events: list[SupervisorEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: SupervisorEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def wait_for(self, kind: str, *, after: int = 0, timeout: float = 10.0) -> SupervisorEvent:
        async def look():
            while True:
                for event in self.events[after:]:
                    if event.kind == kind:
                        return event
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(look(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {kind!r} event within {timeout} s; got {self.kinds()}") from None


def supervisor(path, recorder, **options):
    options.setdefault("health_interval", 0.3)
    options.setdefault("health_timeout", 0.3)
    options.setdefault("backoff_initial", 0.1)
    options.setdefault("backoff_max", 0.5)
    return ModemSupervisor(str(path), on_event=recorder, modem_options=dict(FAST), **options)


@pytest.fixture
def net(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=2) as network:
        yield network


def test_unplug_reports_absent_and_replug_brings_it_back(net):
    async def main():
        rec = Recorder()
        sup = supervisor(net.modems[0].path, rec)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("ready")
        mark = len(rec.events)
        await asyncio.to_thread(net.unplug, 0)
        absent = await rec.wait_for("absent", after=mark)
        assert sup.modem is None
        await asyncio.to_thread(net.replug, 0)
        ready = await rec.wait_for("ready", after=mark)
        dbm = await sup.modem.signal_dbm()
        await sup.stop()
        await task
        return rec, absent, ready, dbm

    rec, absent, ready, dbm = run(main())
    assert "gone" in absent.detail
    assert ready.info.imsi == net.modems[0].imsi
    assert "sim_changed" not in rec.kinds()
    assert rec.kinds().count("absent") == 1
    assert dbm is not None
    assert rec.kinds()[-1] == "stopped"


def test_hung_modem_is_detected_and_the_ladder_is_climbed_until_it_answers(net):
    async def main():
        rec = Recorder()
        sup = supervisor(net.modems[0].path, rec)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("ready")
        await asyncio.to_thread(net.set_fault, 0, "hang", seconds=2.5)
        await rec.wait_for("unresponsive")
        recovered = await rec.wait_for("recovered", timeout=15)
        info = await sup.modem.identity()
        await sup.stop()
        await task
        return rec, recovered, info

    rec, recovered, info = run(main())
    kinds = rec.kinds()
    steps = [e.step for e in rec.events if e.kind == "recovery"]
    assert kinds.index("unresponsive") < kinds.index("recovered")
    assert steps[0] == "reinit" and len(steps) >= 2  # the hang outlasts the first rung
    assert recovered.step in ("reset", "reopen", "reinit")
    assert info.imsi == net.modems[0].imsi


def test_a_different_sim_behind_the_same_path_is_reported(net, tmp_path):
    link = tmp_path / "gsm1"
    link.symlink_to(net.modems[0].path)

    async def main():
        rec = Recorder()
        sup = supervisor(link, rec)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("ready")
        # The stick moves: the stable name now leads to another modem, the old one vanishes.
        tmp = tmp_path / "gsm1.new"
        tmp.symlink_to(net.modems[1].path)
        os.replace(tmp, link)
        await asyncio.to_thread(net.unplug, 0)
        changed = await rec.wait_for("sim_changed")
        await sup.stop()
        await task
        return changed

    changed = run(main())
    assert changed.previous.imsi == net.modems[0].imsi
    assert changed.info.imsi == net.modems[1].imsi


def test_rejected_pin_is_never_sent_again(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, pin="1234") as net:

        async def main():
            rec = Recorder()
            sup = supervisor(net.modems[0].path, rec, pin="0000")
            task = asyncio.create_task(sup.run())
            first = await rec.wait_for("locked")
            second = await rec.wait_for("locked", after=rec.events.index(first) + 1, timeout=5)
            await sup.stop()
            await task
            return first, second

        first, second = run(main())
        left = net._call(lambda: net.modem(0).pin_attempts)
    assert "refused the PIN" in first.detail
    assert "will not try the configured one again" in second.detail
    assert left == 2
    assert "0000" not in first.detail + second.detail


def test_accepted_pin_is_entered_again_after_a_replug(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, pin="1234") as net:

        async def main():
            rec = Recorder()
            sup = supervisor(net.modems[0].path, rec, pin="1234")
            task = asyncio.create_task(sup.run())
            first = await rec.wait_for("ready")
            mark = len(rec.events)
            await asyncio.to_thread(net.replug, 0)  # power cycle: the SIM asks again
            await rec.wait_for("absent", after=mark)
            second = await rec.wait_for("ready", after=mark)
            await sup.stop()
            await task
            return first, second

        first, second = run(main())
        left = net._call(lambda: net.modem(0).pin_attempts)
    assert first.info.pin_entered and second.info.pin_entered
    assert second.info.imsi == net.modems[0].imsi and left == 3


def test_stop_during_initialisation_returns_at_once_and_closes_the_port(net):
    async def main():
        rec = Recorder()
        # A long ready_timeout: without cancellation, stop() would wait for it.
        sup = ModemSupervisor(net.modems[0].path, on_event=rec,
                              modem_options={"command_timeout": 5.0, "ready_timeout": 30.0})
        await asyncio.to_thread(net.set_fault, 0, "hang", seconds=10)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("opening")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await sup.stop()
        await asyncio.wait_for(task, 2.0)
        return loop.time() - start, rec

    elapsed, rec = run(main())
    assert elapsed < 1.0 and rec.kinds()[-1] == "stopped"
    # The port was closed: a new exclusive open succeeds.
    import serial

    serial.Serial(net.modems[0].path, exclusive=True).close()
