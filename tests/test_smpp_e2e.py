"""SMPP end to end: smpplib (a third-party client) → gsmgw's SMPP server → the daemon → simulated
modems on real ptys → the simulated network, and the delivery report and an inbound SMS back
to the client as deliver_sm.

The daemon runs on the test's event loop; smpplib is blocking, so its calls run in a thread.
Every wait is for a PDU or a bus event, with a timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm
import smpplib.smpp

from gsmgw.config import ClientConfig, ClientSmpp, SmppConfig, simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageReceived, ReportReceived
from gsmgw.sim import SimNetwork
from gsmgw.sms import decode_pdu, join_parts
from helpers import free_port

pytestmark = pytest.mark.slow

FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}
RECIPIENT = "+4915112345678"


def with_smpp(config, port: int):
    client = ClientConfig(
        name="app", smpp=ClientSmpp(system_id="app", password="secret"), allow=("+49*", "modem:*"), deny=("+49900*",)
    )
    return dataclasses.replace(config, smpp=SmppConfig(listen_port=port), clients=(client,))


def read_pdu_until(client, wanted: str, timeout: float = 30.0):
    """Blocking: read PDUs, answering deliver_sm and enquire_link, until one named `wanted`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pdu = client.read_pdu()
        if pdu.command in ("deliver_sm", "enquire_link"):
            resp = smpplib.smpp.make_pdu(pdu.command + "_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
        if pdu.command == wanted:
            return pdu
    raise AssertionError(f"no {wanted} within {timeout} s")


def test_smpplib_long_ucs2_submit_receipt_and_inbound(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=2)
    network.start()
    port = free_port()
    config = with_smpp(simulation_config(tmp_path / "spool", [m.path for m in network.modems]), port)
    text = "Störung: Pumpe 3 ausgefallen 🚨 bitte prüfen. " * 4  # UCS-2, 3 parts, surrogate pairs

    async def scenario(gateway: Gateway) -> None:
        events: list = []
        changed = asyncio.Event()

        def record(event) -> None:
            events.append(event)
            changed.set()

        gateway.bus.subscribe(record)

        async def until(predicate, what: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while not predicate():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}; events: {events[-8:]}")
                changed.clear()
                try:
                    await asyncio.wait_for(changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass  # look again

        await until(lambda: all(w.state == "ready" for w in gateway.workers.values()), "modems ready")
        client = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
        await asyncio.to_thread(client.connect)
        try:
            await asyncio.to_thread(client.bind_transceiver, system_id="app", password="secret")

            parts, encoding, esm_class = smpplib.gsm.make_parts(text, encoding=smpplib.consts.SMPP_ENCODING_ISO10646)
            assert len(parts) == 3

            def submit_all() -> set[str]:
                for part in parts:
                    client.send_message(
                        source_addr="4711", dest_addr_ton=1, destination_addr=RECIPIENT.lstrip("+"),
                        short_message=part, data_coding=encoding, esm_class=esm_class, registered_delivery=1,
                    )
                ids = set()
                for _ in parts:
                    resp = read_pdu_until(client, "submit_sm_resp")
                    assert resp.status == 0
                    ids.add(resp.message_id.decode())
                return ids

            ids = await asyncio.to_thread(submit_all)
            assert len(ids) == 1
            (message_id,) = ids

            await until(
                lambda: any(isinstance(e, ReportReceived) and e.id == message_id and e.delivered for e in events),
                "the delivery report",
            )
            receipt = await asyncio.to_thread(read_pdu_until, client, "deliver_sm")
            assert receipt.esm_class == 0x04
            # UCS-2 does not fit a receipt: ASCII-safe data_coding 0, transliterated, no "?".
            assert receipt.data_coding == 0
            body = receipt.short_message.decode("ascii")
            assert body.startswith(f"id:{message_id} sub:001 dlvrd:001 ")
            assert body.endswith("stat:DELIVRD err:000 text:Storung: Pumpe 3 aus")
            assert receipt.receipted_message_id in (message_id, message_id.encode())
            assert receipt.message_state == 2
            assert receipt.destination_addr in (b"4711", "4711")

            # What reached the network is the whole text, re-split for the modem, through one SIM.
            records = [r for r in network.submissions if r["to"] == RECIPIENT]
            sms_parts = sorted((decode_pdu(r["pdu"]) for r in records), key=lambda s: s.concat.seq if s.concat else 1)
            assert join_parts(sms_parts) == text
            assert len({r["modem"] for r in records}) == 1

            network.inject_sms(1, sender="+4917612345678", text="Antwort: erledigt ✓")
            await until(lambda: any(isinstance(e, MessageReceived) for e in events), "the inbound SMS")
            inbound = await asyncio.to_thread(read_pdu_until, client, "deliver_sm")
            assert inbound.esm_class == 0 and inbound.data_coding == 8
            assert inbound.short_message.decode("utf-16-be") == "Antwort: erledigt ✓"
            assert inbound.source_addr in (b"4917612345678", "4917612345678")

            resp = await asyncio.to_thread(client.unbind)
            assert resp.command == "unbind_resp"
        finally:
            client.disconnect()

    async def main() -> None:
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            await asyncio.wait_for(scenario(gateway), 90)
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()
