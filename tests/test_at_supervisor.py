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


def direct_routing(port, **options):
    """A SIMCom driver whose only +CNMI choice routes SMS and reports straight to us (+CMT/+CDS):
    then AT+CSMS decides whether each one must be acknowledged with AT+CNMA."""
    import dataclasses

    from gsmgw.at.modem import Modem
    from gsmgw.at.profiles import SIMCOM

    modem = Modem(port, **options)
    modem.forced_profile = modem.profile = dataclasses.replace(SIMCOM, cnmi_choices=("2,2,0,1,0",))
    return modem


def test_a_modem_that_announces_a_restart_is_set_up_again_and_decides_cnma_anew(tmp_path):
    """Issue 11: a stick that reboots (USB power dip) prints RDY ... SMS Ready and comes back with
    its power-up settings; it must be initialised again, +CSMS read again, the PIN entered again."""
    with SimNetwork(tmp_path / "sim", modems=1, profile="simcom", pin="1234") as net:
        net.call(lambda: setattr(net.modem(0), "csms", 1))  # left so by other software

        async def main():
            rec = Recorder()
            urcs = []
            sup = ModemSupervisor(net.modems[0].path, on_event=rec, on_urc=urcs.append, pin="1234",
                                  modem_factory=direct_routing, modem_options=dict(FAST),
                                  health_interval=30.0, backoff_initial=0.1, backoff_max=0.5)
            task = asyncio.create_task(sup.run())
            before = (await rec.wait_for("ready")).info
            mark = len(rec.events)
            await asyncio.to_thread(net.reboot, 0)
            restarted = await rec.wait_for("restarted", after=mark)
            after = (await rec.wait_for("recovered", after=mark)).info
            settings = net.call(lambda: (net.modem(0).echo, net.modem(0).cmee, net.modem(0).cnmi))
            await asyncio.to_thread(net.inject_sms, 0, "+4915112345678", "after the reboot")
            for _ in range(100):
                if any(type(u).__name__ == "IncomingDirect" for u in urcs):
                    break
                await asyncio.sleep(0.05)
            await sup.stop()
            await task
            return before, restarted, after, settings, [u for u in urcs if type(u).__name__ == "IncomingDirect"]

        before, restarted, after, settings, incoming = run(main())
    assert before.needs_ack  # +CSMS 1 and direct routing
    assert "RDY" in restarted.detail or "+CFUN" in restarted.detail
    assert after.pin_entered and not after.needs_ack  # the reboot put +CSMS back to 0
    assert settings == (False, 1, [2, 2, 0, 1, 0])
    assert len(incoming) == 1 and not incoming[0].needs_ack


def test_a_different_sim_after_a_restart_is_a_sim_change(tmp_path):
    net = SimNetwork(tmp_path / "sim", modems=1, profile="quectel")

    async def main():
        rec = Recorder()
        sup = supervisor(net.modems[0].path, rec, health_interval=30.0)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("ready")
        await asyncio.to_thread(net.reboot, 0, 5)
        changed = await rec.wait_for("sim_changed")
        await rec.wait_for("recovered")
        await sup.stop()
        await task
        return changed

    with net:
        changed = run(main())
    assert changed.previous.imsi == "262010000000000"
    assert changed.info.imsi == net.modems[0].imsi == "262030000000005"
    assert changed.info.imei == changed.previous.imei


def test_a_modem_that_restarts_without_a_word_is_noticed_by_its_echo(net):
    """The generic dialect prints nothing when it restarts; its echo, back on after power-up,
    gives it away at the next health check."""

    async def main():
        rec = Recorder()
        sup = supervisor(net.modems[0].path, rec, health_interval=0.3)
        task = asyncio.create_task(sup.run())
        await rec.wait_for("ready")
        await asyncio.to_thread(net.reboot, 0)
        restarted = await rec.wait_for("restarted")
        await rec.wait_for("recovered")
        settings = net.call(lambda: (net.modem(0).echo, net.modem(0).cmee, net.modem(0).cnmi))
        await sup.stop()
        await task
        return restarted, settings

    restarted, settings = run(main())
    assert "echoed" in restarted.detail
    assert settings == (False, 1, [2, 1, 0, 2, 0])


def test_every_event_kind_has_a_state_or_none_and_every_state_its_moves():
    from gsmgw.at.supervisor import ENTERS, MOVES, EventKind, SupervisorState

    assert set(ENTERS) == set(EventKind)
    assert set(MOVES) == set(SupervisorState)
    assert all(SupervisorState.STOPPED in moves for moves in MOVES.values())  # stop() ends any state


def test_the_supervisor_refuses_a_move_its_table_does_not_list():
    from gsmgw.at.supervisor import EventKind, SupervisorState
    from gsmgw.states import StateMoveRefused

    events: list[SupervisorEvent] = []
    supervisor = ModemSupervisor("/dev/nonexistent-gsmgw-test", on_event=events.append)
    supervisor._emit(EventKind.OPENING)
    supervisor._emit(EventKind.READY)
    with pytest.raises(StateMoveRefused, match="ready -> busy"):
        supervisor._emit(EventKind.BUSY)  # a ready modem's port is not taken from it unseen
    assert supervisor.state is SupervisorState.READY and [e.kind for e in events] == ["opening", "ready"]
    supervisor._emit(EventKind.MODEM_CHANGED)  # no state of its own
    assert supervisor.state is SupervisorState.READY


def test_the_worker_table_brings_a_down_modem_back_only_through_starting():
    from gsmgw.daemon import pool
    from gsmgw.states import StateMoveRefused, check_move

    assert set(pool.WORKER_MOVES) == set(pool.WorkerState)
    for down in (pool.ABSENT, pool.LOCKED, pool.FAILED):
        check_move(pool.WORKER_MOVES, down, pool.STARTING, "w")
        for up in (pool.READY, pool.BUSY):
            with pytest.raises(StateMoveRefused):
                check_move(pool.WORKER_MOVES, down, up, "w")
