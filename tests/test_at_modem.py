"""The session and modem driver against the simulator (gsmgw.sim) over real ptys.

Each fault the simulator can inject is exercised; each test asserts the outcome: nothing lost,
the right error class, the modem usable afterwards. Timeouts are short so the file stays quick.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gsmgw.at.errors import CmsError, ModemTimeout, PortBusy, PortGone, SimLocked
from gsmgw.at.events import (
    IncomingStored,
    LatePrompt,
    LateSubmitResult,
    Noise,
    PortClosed,
    Ring,
    SignalReport,
    StorageFull,
)
from gsmgw.at.modem import Modem
from gsmgw.sim import SimNetwork
from gsmgw.sms import decode_pdu, encode_submit

PROFILES = ["generic", "huawei", "simcom", "quectel"]


def run(coro, timeout: float = 20.0):
    """Run one test coroutine; a hang fails the test instead of stalling the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def net(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=2, profile="generic") as network:
        yield network


def make_modem(path, urcs=None, **options):
    options.setdefault("command_timeout", 2.0)
    options.setdefault("send_timeout", 5.0)
    options.setdefault("prompt_timeout", 2.0)
    options.setdefault("ready_timeout", 5.0)
    return Modem(str(path), on_urc=(urcs.append if urcs is not None else None), **options)


class Urcs(list):
    """The URCs a modem delivered, with an event to wait on instead of polling."""

    def __init__(self):
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, event) -> None:
        super().append(event)
        self.changed.set()


async def next_event(urcs: Urcs, kind, timeout: float = 5.0):
    """The first event of ``kind`` in ``urcs``, waiting for the modem's reader to deliver it."""

    async def look():
        while True:
            for event in urcs:
                if isinstance(event, kind):
                    return event
            urcs.changed.clear()
            await urcs.changed.wait()

    try:
        return await asyncio.wait_for(look(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {kind} within {timeout} s; got {urcs!r}") from None


@pytest.mark.parametrize("profile", PROFILES)
def test_initialize_identifies_each_dialect(tmp_path, profile):
    with SimNetwork(tmp_path / "sim", modems=1, profile=profile) as net:
        sim = net.modems[0]

        async def main():
            modem = make_modem(sim.path)
            await modem.open()
            try:
                info = await modem.initialize()
                registration = await modem.registration()
                dbm = await modem.signal_dbm()
                storage = await modem.storage_status()
            finally:
                await modem.close()
            return info, registration, dbm, storage

        info, registration, dbm, storage = run(main())
    assert info.profile == profile
    assert (info.imsi, info.imei, info.iccid) == (sim.imsi, sim.imei, sim.iccid)
    assert info.own_number == sim.number
    assert info.pin_state == "READY" and not info.pin_entered
    assert info.cnmi == "2,1,0,2,0"
    assert info.smsc and info.smsc.startswith("+")
    assert registration.registered and registration.operator == sim.operator
    assert dbm is not None and -113 <= dbm <= -51
    assert storage.read.total > 0


def test_send_pdu_returns_the_mr_and_the_network_gets_it(net):
    target = net.modems[1].number

    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        parts = encode_submit(target, "hello from the driver", report=True)
        mrs = [await modem.send_pdu(p.pdu, p.length) for p in parts]
        await modem.close()
        return mrs

    mrs = run(main())
    (submission,) = net.wait_for_submissions(1, timeout=5)
    assert (submission["to"], submission["text"]) == (target, "hello from the driver")
    assert submission["report"] and submission["mr"] == mrs[0]


def test_receive_store_read_delete(net):
    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text="inbound one")
        event = await next_event(urcs, IncomingStored)
        stored = await modem.read_message(event.storage, event.index)
        listed = await modem.list_messages(event.storage)
        await modem.delete_message(event.storage, event.index)
        after = await modem.list_messages(event.storage)
        empty = await modem.read_message(event.storage, event.index)
        await modem.close()
        return stored, listed, after, empty

    stored, listed, after, empty = run(main())
    sms = decode_pdu(stored.pdu)
    assert sms.text == "inbound one" and sms.number == "+4915112345678"
    assert [m.index for m in listed] == [stored.index]
    assert after == [] and empty is None


def test_urc_in_the_middle_of_a_response_is_delivered_and_the_response_is_intact(net):
    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "urc_in_response", lines=["RING", "^RSSI: 20"])
        info = await modem.identity()
        await modem.close()
        return info, urcs

    info, urcs = run(main())
    assert info.imsi == net.modems[0].imsi and info.imei == net.modems[0].imei
    assert any(isinstance(e, Ring) for e in urcs)
    assert any(isinstance(e, SignalReport) and e.dbm == -73 for e in urcs)


def test_noise_bytes_do_not_corrupt_answers(net):
    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs)
        await modem.open()
        await asyncio.to_thread(net.set_fault, 0, "noise")
        info = await modem.initialize()
        await modem.close()
        return info, urcs

    info, urcs = run(main())
    assert (info.manufacturer, info.imsi) == ("gsmgw", net.modems[0].imsi)
    assert any(isinstance(e, Noise) for e in urcs)


def test_hang_times_out_then_the_modem_answers_again(net):
    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "hang", seconds=1.0)
        with pytest.raises(ModemTimeout, match="did not answer"):
            await modem.health_check(timeout=0.4)
        assert modem.session.consecutive_timeouts == 1
        await asyncio.sleep(0.8)  # the simulated hang is timed: wait it out
        await modem.health_check(timeout=2.0)
        dbm = await modem.signal_dbm()
        await modem.close()
        return dbm

    assert run(main()) is not None


def test_late_cmgs_is_reported_as_late_not_as_a_new_event(net):
    target = net.modems[1].number

    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs, send_timeout=0.5)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "late_cmgs", seconds=1.2)
        (part,) = encode_submit(target, "late one")
        with pytest.raises(ModemTimeout):
            await modem.send_pdu(part.pdu, part.length)
        late = await next_event(urcs, LateSubmitResult, timeout=3.0)
        # The next command gets its own answer, not the late one's OK.
        dbm = await modem.signal_dbm()
        (part2,) = encode_submit(target, "next one")
        mr2 = await modem.send_pdu(part2.pdu, part2.length)
        await modem.close()
        return late, dbm, mr2, urcs

    late, dbm, mr2, urcs = run(main())
    assert dbm is not None
    assert not any(isinstance(e, IncomingStored) for e in urcs)
    submissions = net.wait_for_submissions(2, timeout=5)
    assert [(s["text"], s["mr"]) for s in submissions] == [("late one", late.mr), ("next one", mr2)]


def test_slow_prompt_is_cancelled_with_esc_and_nothing_is_sent(net):
    target = net.modems[1].number

    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs, prompt_timeout=0.3, command_timeout=1.0)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "slow_prompt", seconds=0.8)
        (part,) = encode_submit(target, "never sent")
        with pytest.raises(ModemTimeout, match="prompt"):
            await modem.send_pdu(part.pdu, part.length)
        await asyncio.to_thread(net.clear_fault, 0, "slow_prompt")
        await next_event(urcs, LatePrompt)  # answered with ESC by the session
        for _ in range(3):
            try:
                await modem.health_check(timeout=1.0)
                break
            except ModemTimeout:
                continue
        (part2,) = encode_submit(target, "sent after")
        mr = await modem.send_pdu(part2.pdu, part2.length)
        await modem.close()
        return mr

    mr = run(main())
    submissions = net.wait_for_submissions(1, timeout=5)
    assert [(s["text"], s["mr"]) for s in submissions] == [("sent after", mr)]


@pytest.mark.parametrize("code,temporary", [(42, True), (21, False), (330, True)])
def test_cms_error_has_code_meaning_and_class(net, code, temporary):
    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "cms_error", codes=[code], count=1)
        (part,) = encode_submit(net.modems[1].number, "refused")
        with pytest.raises(CmsError) as caught:
            await modem.send_pdu(part.pdu, part.length)
        await modem.close()
        return caught.value

    error = run(main())
    assert error.code == code and error.temporary is temporary and error.meaning


def test_storage_full_is_reported(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, profile="huawei") as net:

        async def main():
            urcs = Urcs()
            modem = make_modem(net.modems[0].path, urcs)
            await modem.open()
            await modem.initialize()
            await asyncio.to_thread(net.set_fault, 0, "storage_full")
            status = await modem.storage_status()
            await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text="no room")
            full = await next_event(urcs, StorageFull)
            await modem.close()
            return status, full

        status, full = run(main())
    assert status.receive is not None and status.receive.full
    assert full.storage == "SM"


def test_unplug_ends_the_port_with_a_clear_event_and_fails_the_command(net):
    async def main():
        urcs = Urcs()
        states: list = []
        modem = make_modem(net.modems[0].path, urcs, on_state=lambda s, d: states.append(s))
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "hang", seconds=5)
        pending = asyncio.ensure_future(modem.health_check(timeout=4))
        while modem.session.parser.command_in_flight is None:
            await asyncio.sleep(0)  # let the command be written before the unplug
        await asyncio.to_thread(net.unplug, 0)
        with pytest.raises(PortGone):
            await pending
        closed = await next_event(urcs, PortClosed)
        with pytest.raises(PortGone, match="not open"):
            await modem.signal_dbm()
        return closed, states

    closed, states = run(main())
    assert "gone" in closed.reason
    assert states[-1] == "gone"


@pytest.mark.parametrize("profile", PROFILES)
def test_pin_with_one_attempt_left_is_never_tried(tmp_path, profile):
    with SimNetwork(tmp_path / "sim", modems=1, profile=profile, pin="1234") as net:
        net._call(lambda: setattr(net.modem(0), "pin_attempts", 1))

        async def main():
            modem = make_modem(net.modems[0].path)
            await modem.open()
            try:
                with pytest.raises(SimLocked) as caught:
                    await modem.initialize(pin="1234")
            finally:
                await modem.close()
            return caught.value

        error = run(main())
        left = net._call(lambda: net.modem(0).pin_attempts)
    assert error.reason == "few_attempts" and error.attempts_left == 1
    assert "1234" not in str(error)
    assert left == 1  # not one attempt used


def test_pin_entered_when_enough_attempts_and_wrong_pin_is_tried_once(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="gsmgw.at")
    with SimNetwork(tmp_path / "sim", modems=2, profile="generic", pin="1234") as net:

        async def main():
            good = make_modem(net.modems[0].path)
            await good.open()
            info = await good.initialize(pin="1234")
            await good.close()
            bad = make_modem(net.modems[1].path)
            await bad.open()
            with pytest.raises(SimLocked) as caught:
                await bad.initialize(pin="9999")
            await bad.close()
            return info, caught.value

        info, error = run(main())
        left = net._call(lambda: net.modem(1).pin_attempts)
    assert info.pin_entered and info.pin_state == "READY" and info.imsi == net.modems[0].imsi
    assert error.reason == "pin_rejected" and error.attempts_left == 2 and left == 2
    assert "9999" not in str(error)
    driver_log = "\n".join(r.getMessage() for r in caplog.records if r.name == "gsmgw.at")
    assert "AT+CPIN=" in driver_log  # the commands are logged ...
    assert "1234" not in driver_log and "9999" not in driver_log  # ... but never the PIN


def test_sim_pin_without_configured_pin_says_what_to_do(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, pin="1234") as net:

        async def main():
            modem = make_modem(net.modems[0].path)
            await modem.open()
            with pytest.raises(SimLocked, match="set `pin:`") as caught:
                await modem.initialize()
            await modem.close()
            return caught.value

        assert run(main()).reason == "no_pin"


def test_ussd_in_gsm7_and_in_ucs2(net):
    net.set_ussd_reply("*101#", "Баланс: 100,50 ₽", dcs=72)

    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        replies = [await modem.ussd(code, timeout=5) for code in ("*100#", "*101#")]
        await modem.close()
        return replies

    assert [reply.text for reply in run(main())] == ["Guthaben: 12,34 EUR", "Баланс: 100,50 ₽"]


def test_soft_reset_then_initialize_again(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, profile="simcom") as net:

        async def main():
            modem = make_modem(net.modems[0].path)
            await modem.open()
            await modem.initialize()
            await modem.soft_reset()
            info = await modem.initialize()
            await modem.close()
            return info

        assert run(main()).imsi == net.modems[0].imsi


def test_busy_port_is_refused_with_advice(net):
    async def main():
        first = make_modem(net.modems[0].path)
        await first.open()
        second = make_modem(net.modems[0].path)
        try:
            with pytest.raises(PortBusy) as caught:
                await second.open()
        finally:
            await first.close()
        return caught.value

    error = run(main())
    assert "in use" in str(error)


def test_missing_port_says_plug_it_in(tmp_path):
    async def main():
        modem = make_modem(tmp_path / "nothing")
        with pytest.raises(PortGone, match="plugged in"):
            await modem.open()

    run(main())


def test_status_report_arrives_and_can_be_read(net):
    from gsmgw.at.events import ReportDirect, ReportStored

    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs)
        await modem.open()
        await modem.initialize()
        (part,) = encode_submit("+4915112345678", "report me", report=True)
        mr = await modem.send_pdu(part.pdu, part.length)
        event = await next_event(urcs, (ReportStored, ReportDirect))
        if isinstance(event, ReportStored):
            stored = await modem.read_message(event.storage, event.index)
            pdu = stored.pdu
            await modem.delete_message(event.storage, event.index)
        else:
            pdu = event.pdu
        await modem.close()
        return mr, pdu

    mr, pdu = run(main())
    report = decode_pdu(pdu)
    assert report.type == "status-report" and report.mr == mr and report.status == 0


def test_direct_delivery_with_phase2plus_is_acknowledged_with_cnma(tmp_path):
    """TS 27.005 §3.4.4: a routed +CMT under AT+CSMS=1 must be acknowledged in time, else the
    modem switches routing off. A second SMS still routed after that time proves the ack."""
    import dataclasses

    from gsmgw.at.events import IncomingDirect
    from gsmgw.at.profiles import GENERIC

    ack_timeout = 0.4
    with SimNetwork(tmp_path / "sim", modems=1, ack_timeout=ack_timeout) as net:

        async def main():
            urcs = Urcs()
            modem = make_modem(net.modems[0].path, urcs)
            await modem.open()
            await modem.command("AT+CSMS=1")  # Phase 2+: routed SMS must be acknowledged
            modem.forced_profile = modem.profile = dataclasses.replace(GENERIC, cnmi_choices=("2,2,0,0,0",))
            info = await modem.initialize()
            await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text="direct one")
            first = await next_event(urcs, IncomingDirect)
            await modem.ack_new_message()
            await asyncio.sleep(ack_timeout * 2)  # past the modem's deadline for the ack
            urcs.clear()
            await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text="direct two")
            second = await next_event(urcs, IncomingDirect)
            await modem.ack_new_message()
            await modem.close()
            return info, first, second

        info, first, second = run(main())
    assert info.cnmi == "2,2,0,0,0" and info.needs_ack
    assert first.needs_ack and decode_pdu(first.pdu).text == "direct one"
    assert decode_pdu(second.pdu).text == "direct two"


def test_initialize_leaves_a_prompt_left_by_a_killed_process(net):
    """kill -9 between AT+CMGS and the PDU leaves the modem waiting for message text."""

    async def main():
        killed = make_modem(net.modems[0].path)
        await killed.open()
        await killed.initialize()
        await killed.session.send_raw(b"AT+CMGS=20\r")
        await asyncio.sleep(0.3)  # the "> " prompt is out; nobody answers it
        await killed.close()
        fresh = make_modem(net.modems[0].path)
        await fresh.open()
        info = await fresh.initialize()
        dbm = await fresh.signal_dbm()
        await fresh.close()
        return info, dbm

    info, dbm = run(main())
    assert info.imsi == net.modems[0].imsi and dbm is not None
    assert net.submissions == []


def test_concurrent_callers_get_their_own_answers(net):
    """Exactly one command in flight: callers queue, nobody gets another's answer."""

    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        calls = []
        for _ in range(5):
            calls += [modem.signal_dbm(), modem.registration(), modem.identity(), modem.storage_status()]
        results = await asyncio.gather(*calls)
        await modem.close()
        return results

    results = run(main())
    for i in range(0, len(results), 4):
        dbm, registration, info, storage = results[i:i + 4]
        assert isinstance(dbm, int) and registration.registered
        assert info.imsi == net.modems[0].imsi and storage.read.total > 0


@pytest.mark.parametrize("code", [27, 38, 42, 111, 330, 500])
def test_text_errors_under_cmee2_are_mapped_back_to_codes(net, code):
    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        await modem.initialize()
        await modem.command("AT+CMEE=2")
        await asyncio.to_thread(net.set_fault, 0, "cms_error", codes=[code], count=1)
        (part,) = encode_submit(net.modems[1].number, "refused")
        with pytest.raises(CmsError) as caught:
            await modem.send_pdu(part.pdu, part.length)
        await modem.close()
        return caught.value

    error = run(main())
    assert error.code == code, error.final
    assert not error.final.split(":")[1].strip().isdigit()  # it came as text


def test_defaults_give_cmgs_at_least_60_seconds():
    assert Modem("/dev/null").send_timeout >= 60


def test_cancelled_send_leaves_the_modem_usable_and_sends_nothing(net):
    """A caller cancelled while waiting for the prompt (daemon stopping): ESC, nothing sent."""

    async def main():
        urcs = Urcs()
        modem = make_modem(net.modems[0].path, urcs)
        await modem.open()
        await modem.initialize()
        await asyncio.to_thread(net.set_fault, 0, "slow_prompt", seconds=0.5)
        (part,) = encode_submit(net.modems[1].number, "cancelled")
        sending = asyncio.ensure_future(modem.send_pdu(part.pdu, part.length))
        while modem.session.parser.command_in_flight is None:
            await asyncio.sleep(0)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await next_event(urcs, LatePrompt)
        await asyncio.to_thread(net.clear_fault, 0, "slow_prompt")
        for _ in range(3):  # the ESC's own final may take the first health check's place
            try:
                await modem.health_check(timeout=1.0)
                break
            except ModemTimeout:
                continue
        info = await modem.identity()
        await modem.close()
        return info

    assert run(main()).imsi == net.modems[0].imsi
    assert net.submissions == []


@pytest.mark.parametrize("profile", PROFILES)
def test_several_stored_sms_listed_and_deleted_in_each_dialect(tmp_path, profile):
    """Huawei and Quectel number their slots from 0, Quectel stores in ME: all must work."""
    with SimNetwork(tmp_path / "sim", modems=1, profile=profile) as net:

        async def main():
            urcs = Urcs()
            modem = make_modem(net.modems[0].path, urcs)
            await modem.open()
            info = await modem.initialize()
            for text in ("first", "second", "third"):
                await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text=text)
            while len([e for e in urcs if isinstance(e, IncomingStored)]) < 3:
                urcs.changed.clear()
                await asyncio.wait_for(urcs.changed.wait(), 5)
            announced = [e for e in urcs if isinstance(e, IncomingStored)]
            storage = announced[0].storage
            listed = await modem.list_messages(storage)
            before = await modem.storage_status()
            for message in listed:
                await modem.delete_message(storage, message.index)
            after = await modem.storage_status()
            await modem.close()
            return info, announced, listed, before, after

        info, announced, listed, before, after = run(main())
    assert {e.index for e in announced} == {m.index for m in listed}
    assert sorted(decode_pdu(m.pdu).text for m in listed) == ["first", "second", "third"]
    assert announced[0].storage == info.storage[2]
    assert before.read.used == 3 and after.read.used == 0


# ------------------------------------------------ broken firmwares (the simulator's zte dialect)


def test_zte_dialect_raw_answers_show_its_quirks(tmp_path):
    """The dialect really is broken the way gsmgw/sim/profiles.py says (else the driver test
    below would prove nothing)."""
    import re
    import time

    from tests.simfixtures import AtTerminal

    def exchange(term, line, final):
        term.write(line.encode() + b"\r")
        return term.read_until(re.compile(final)).decode("latin-1")

    with SimNetwork(tmp_path / "sim", modems=1, profile="zte") as net:
        with AtTerminal(net.modems[0].path) as term:
            exchange(term, "ATE0", rb"OK\r\n")
            assert exchange(term, "AT", rb"OK\r\n").startswith("AT\r")  # echo stays on
            assert "COMMAND NOT SUPPORT\r\n" in exchange(term, "AT+NOSUCH", rb"SUPPORT\r\n")
            assert re.search(r"\+CSQ: \d+,99OK\r\n$", exchange(term, "AT+CSQ", rb"OK\r\n"))
            assert "+CPIN: NOT READY" in exchange(term, "AT+CPIN?", rb"OK\r\n")  # SIM starting
            deadline = time.monotonic() + 5
            while "+CPIN: READY" not in exchange(term, "AT+CPIN?", rb"OK\r\n"):
                assert time.monotonic() < deadline, "the SIM never became ready"
                time.sleep(0.2)
            assert exchange(term, "AT+CMGS=12", rb"> ").endswith("AT+CMGS=12\r> ")
            term.write(b"\x1b")
            exchange(term, "AT", rb"OK\r\n")


def test_zte_dialect_send_list_read_delete(tmp_path):
    """Echo that stays on, COMMAND NOT SUPPORT, a bare "> ", +CMGS: <mr>,"<scts>", OK glued to
    the last line and "REC UNREAD" words in PDU mode: the driver still sends, lists, reads and
    deletes."""
    with SimNetwork(tmp_path / "sim", modems=2, profile=["zte", "generic"]) as net:
        target = net.modems[1].number

        async def main():
            urcs = Urcs()
            modem = make_modem(net.modems[0].path, urcs)
            await modem.open()
            try:
                info = await modem.initialize()
                registration = await modem.registration()
                dbm = await modem.signal_dbm()
                storage = await modem.storage_status()
                (part,) = encode_submit(target, "through a broken firmware", report=True)
                mr = await modem.send_pdu(part.pdu, part.length)
                await asyncio.to_thread(net.inject_sms, 0, sender="+4915112345678", text="inbound")
                event = await next_event(urcs, IncomingStored)
                listed = await modem.list_messages(event.storage)
                stored = await modem.read_message(event.storage, event.index)
                await modem.delete_message(event.storage, event.index)
                after = await modem.list_messages(event.storage)
            finally:
                await modem.close()
            return info, registration, dbm, storage, mr, event, listed, stored, after

        info, registration, dbm, storage, mr, event, listed, stored, after = run(main())
        (submission,) = net.wait_for_submissions(1, timeout=5)
    assert info.imsi == net.modems[0].imsi and info.cnmi == "2,1,0,2,0"
    assert registration.registered and dbm is not None and storage.read.total > 0
    assert submission["mr"] == mr and submission["text"] == "through a broken firmware"
    assert [(m.index, m.stat) for m in listed] == [(event.index, 0)]
    assert stored is not None and decode_pdu(stored.pdu).text == "inbound"
    assert after == []


def test_pin_accepted_but_sim_pin_until_the_ready_urc(tmp_path):
    """ZTE MF-series: AT+CPIN="<pin>" answers OK, AT+CPIN? still says SIM PIN, and +CPIN: READY
    comes unasked a moment later. That is a PIN accepted, not a SIM that stays locked."""
    with SimNetwork(tmp_path / "sim", modems=1, profile="zte", pin="1234") as net:

        async def main():
            modem = make_modem(net.modems[0].path)
            await modem.open()
            try:
                return await modem.initialize(pin="1234")
            finally:
                await modem.close()

        info = run(main())
        left = net.call(lambda: net.modem(0).pin_attempts)
        charset = net.call(lambda: net.modem(0).cscs)
    assert info.pin_entered and info.pin_state == "READY" and info.imsi == net.modems[0].imsi
    # It starts in UCS2 and knows no IRA: the PIN went in as plain digits after AT+CSCS="GSM".
    assert left == 3 and charset == "GSM"


def test_unknown_signal_and_creg_left_in_mode_2_by_another_client(net):
    """AT+CSQ 99,99 is "not known" (TS 27.007 §8.5), not -113 dBm; a modem left in AT+CREG=2 by
    smstools3 answers +CREG: 2,1,"<lac>","<ci>" and is still registered."""
    net.set_signal(0, 99)

    async def main():
        modem = make_modem(net.modems[0].path)
        await modem.open()
        try:
            await modem.initialize()
            await modem.command("AT+CREG=2")
            return await modem.signal_dbm(), await modem.registration()
        finally:
            await modem.close()

    dbm, registration = run(main())
    assert dbm is None
    assert registration.registered and registration.status == 1
