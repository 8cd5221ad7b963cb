"""The daemon against every dialect of the simulator, with a SIM PIN; and a wrong PIN.

Each dialect brings its own URC noise, storage index base and vendor queries; the daemon must
send, receive and match reports the same way on all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import pytest

from gsmgw.config import simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageReceived, MessageSent, ReportReceived
from gsmgw.sim import SimNetwork
from gsmgw.sim.profiles import PROFILES
from gsmgw.spool.format import read_spool_file

FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}


async def until(events: list, changed: asyncio.Event, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}; last events {events[-5:]}")
        changed.clear()
        try:
            await asyncio.wait_for(changed.wait(), min(remaining, 0.5))
        except asyncio.TimeoutError:
            pass


def gateway_for(tmp_path, network: SimNetwork, pin: str | None) -> Gateway:
    config = simulation_config(tmp_path / "spool", [m.path for m in network.modems])
    config = dataclasses.replace(
        config, modems=tuple(dataclasses.replace(m, pin=pin) for m in config.modems)
    )
    return Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)


@pytest.mark.parametrize("profile", sorted(set(PROFILES) - {"generic"}))
def test_send_receive_and_report_on_each_dialect(tmp_path, profile):
    network = SimNetwork(tmp_path / "sim", modems=2, profile=profile, pin="1234")
    network.start()
    text = "Dialect test: Grüße 😀 " * 8  # UCS-2, several parts

    async def main():
        gateway = gateway_for(tmp_path, network, "1234")
        events: list = []
        changed = asyncio.Event()

        def record(event):
            events.append(event)
            changed.set()

        gateway.bus.subscribe(record)
        await gateway.start()
        try:
            await until(events, changed, lambda: all(w.state == "ready" for w in gateway.workers.values()),
                        20, "modems ready")
            target = network.modems[1].number
            spool = tmp_path / "spool"
            (spool / "outgoing" / ".x").write_text(f"To: {target}\nModem: modem0\nReport: yes\n\n{text}\n")
            (spool / "outgoing" / ".x").rename(spool / "outgoing" / "dialect")
            await until(
                events, changed,
                lambda: any(isinstance(e, MessageReceived) for e in events)
                and any(isinstance(e, ReportReceived) and e.delivered for e in events),
                30, "received and delivered",
            )
            (received,) = [e for e in events if isinstance(e, MessageReceived)]
            incoming = read_spool_file((spool / "incoming" / received.id).read_bytes())
            assert incoming.body.decode() == text
            assert incoming.headers.get("From") == network.modems[0].number
            assert incoming.headers.get("Modem") == "modem1"
            sent = read_spool_file((spool / "sent" / "dialect").read_bytes())
            assert sent.headers.get("Status").startswith("delivered")
            assert [e.id for e in events if isinstance(e, MessageSent)] == ["dialect"]
            status = gateway.status_snapshot()
            assert all(m["imsi"] and m["iccid"] and m["imei"] for m in status["modems"])
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()
    assert [network.modem(i).pin_attempts for i in range(2)] == [3, 3]


def test_a_wrong_pin_is_tried_once_and_the_modem_is_locked(tmp_path, caplog):
    network = SimNetwork(tmp_path / "sim", modems=1, pin="1234")
    network.start()

    async def main():
        gateway = gateway_for(tmp_path, network, "9999")
        changed = asyncio.Event()
        gateway.bus.subscribe(lambda event: changed.set())
        await gateway.start()
        try:
            await until([], changed, lambda: gateway.workers["modem0"].state == "locked", 20, "locked")
            # Stay a while: the supervisor retries, but must not send the PIN again.
            await asyncio.sleep(2.5)
            status = gateway.status_snapshot()
            assert status["modems"][0]["state"] == "locked"
            assert status["modems"][0]["last_error"]
        finally:
            await gateway.close()

    try:
        with caplog.at_level(logging.DEBUG):  # AT traffic included: the PIN must be masked there too
            asyncio.run(main())
    finally:
        network.stop()
    assert "AT+CPIN" in caplog.text
    assert network.modem(0).pin_attempts == 2  # one wrong try, never a second
    assert "9999" not in caplog.text
