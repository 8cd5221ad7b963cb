"""One definition of "registered" (gsmgw.at.registration), used by the driver's poll and by the
worker's URC handler alike; checked against the simulator reporting the LTE states of
TS 27.007 §7.2 (6, 7: SMS only; 9, 10: CSFB not preferred) in answers and in URCs."""

from __future__ import annotations

import asyncio

import pytest

from gsmgw.at.events import RegistrationChanged
from gsmgw.at.modem import Modem
from gsmgw.at.registration import REGISTRATION_STATUS, is_registered
from gsmgw.config import simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageReceived
from gsmgw.sim import SimNetwork

FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0}


@pytest.mark.parametrize("status, registered", [
    (0, False), (1, True), (2, False), (3, False), (4, False), (5, True), (6, True), (7, True),
    (8, False), (9, True), (10, True), (11, False), (None, False),
])
def test_which_stat_values_are_registered(status, registered):
    assert is_registered(status) is registered
    if status is not None:
        assert RegistrationChanged(f"+CEREG: {status}", "+CEREG", status).registered is registered
    assert set(REGISTRATION_STATUS) == set(range(11))


@pytest.mark.parametrize("stat", [6, 7, 9, 10])
def test_the_driver_reads_lte_states_as_registered(tmp_path, stat):
    with SimNetwork(tmp_path / "sim", modems=1) as net:
        net.set_registration(0, stat, announce=False)

        async def main():
            modem = Modem(str(net.modems[0].path), command_timeout=2.0, ready_timeout=5.0)
            await modem.open()
            try:
                await modem.initialize()
                return await modem.registration()
            finally:
                await modem.close()

        registration = asyncio.run(asyncio.wait_for(main(), 20))
    assert registration.registered and registration.status == stat
    assert registration.status_text == REGISTRATION_STATUS[stat]


@pytest.mark.parametrize("stat", [7, 10])
def test_an_lte_registration_urc_keeps_the_worker_registered(tmp_path, stat):
    # The worker read `+CREG: 7` / `+CEREG: 7` as "not registered" (only 1 and 5 counted), while
    # the driver's poll said registered: an LTE modem flipped at every URC.
    net = SimNetwork(tmp_path / "sim", modems=1)
    net.start()
    config = simulation_config(tmp_path / "spool", [net.modems[0].path])

    async def main():
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        received = asyncio.Event()
        gateway.bus.subscribe(lambda event: received.set() if isinstance(event, MessageReceived) else None)
        await gateway.start()
        try:
            worker = gateway.workers["modem0"]
            await asyncio.wait_for(_until(lambda: worker.status.registered is True), 15)
            await asyncio.to_thread(net.set_registration, 0, stat)
            # An SMS after the URCs: once it is in incoming/, the worker has handled the URCs
            # that came before it on the same port.
            await asyncio.to_thread(net.inject_sms, 0, "+4915112345678", "after the URC")
            await asyncio.wait_for(received.wait(), 15)
            return worker.status.registered
        finally:
            await gateway.close()

    try:
        registered = asyncio.run(main())
    finally:
        net.stop()
    assert registered is True


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.05)
