"""Incoming calls end to end (issue 13): the simulator rings a modem over its pty, the daemon hangs
up (AT+CHUP), records the call in calls/, runs the `call` hook and the `call` webhook, and a call
from an on-call number acknowledges the alert sent to it (calls.ack, two-way)."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap

import aiohttp
import pytest

from gsmgw.config import load_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import CallReceived
from gsmgw.sim import SimNetwork
from gsmgw.spool.format import read_spool_file
from gsmgw.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from test_alertmanager import payload as alert_payload
from test_e2e_gateway import run_scenario
from test_http_api import free_port
from test_webhooks import Receiver

pytestmark = pytest.mark.slow

ONCALL = "+4915112345678"
STRANGER = "+4917699999999"
TOKEN = "calls-token-0123456789"
SECRET = "call-webhook-secret-42"
FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}


def write_config(tmp_path, network, hook, webhook_url):
    (tmp_path / "app.token").write_text(TOKEN + "\n")
    os.chmod(tmp_path / "app.token", 0o600)
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - {{name: gsm1, port: {network.modems[0].path}}}
        http: {{listen: "127.0.0.1:{free_port()}"}}
        clients:
          - {{name: alertmanager, token_file: {tmp_path}/app.token, allow: ["+49*"]}}
        alertmanager:
          receivers:
            oncall: {{to: ["{ONCALL}"]}}
        two_way: {{enabled: true, allow_from: ["{ONCALL}"]}}
        calls: {{hangup: true, ack: true}}
        hooks: {{call: {hook}}}
        webhooks: {{call: "{webhook_url}", secret: {SECRET}}}
        """))
    return path


def test_a_call_is_hung_up_recorded_announced_and_acknowledges_the_alert(tmp_path):
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "on-call"
    hook.write_text(f'#!/bin/sh\necho "$1 $2 $GSMGW_ID" >> {hook_log}\n')
    hook.chmod(0o755)
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()

    async def main():
        async with Receiver() as receiver:
            config = load_config(write_config(tmp_path, network, hook, receiver.url))
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
            calls: list[CallReceived] = []
            gateway.bus.subscribe(lambda event: calls.append(event) if isinstance(event, CallReceived) else None)
            await gateway.start()
            try:
                await asyncio.wait_for(scenario(gateway, config, receiver, calls), 60)
            finally:
                await gateway.close()

    async def scenario(gateway, config, receiver, calls):
        while gateway.workers["gsm1"].state != "ready":
            await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{config.http.listen_port}/api/v1/alertmanager/oncall"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=alert_payload(1), headers={"Authorization": f"Bearer {TOKEN}"}) as answer:
                assert answer.status == 200
        await asyncio.to_thread(network.wait_for_submissions, 1, 20)  # the alert went out to the on-call phone

        call = await asyncio.to_thread(network.ring, 0, ONCALL, interval=0.5)
        ended = await asyncio.to_thread(network.wait_for_call, call["id"], 10)
        assert ended["outcome"] == "hung up"
        while not calls:
            await asyncio.sleep(0.05)
        (event,) = calls
        assert (event.caller, event.modem, event.hung_up, event.withheld) == (ONCALL, "gsm1", True, False)
        headers = read_spool_file((tmp_path / "spool" / "calls" / event.id).read_bytes()).headers
        assert (headers.get("From"), headers.get("From_TOA"), headers.get("Modem")) == (ONCALL, "91 international", "gsm1")
        assert headers.get("Hung_up") and headers.get("Rings") == "1" and headers.get("Call_type") == "VOICE"

        raw = await receiver.next(timeout=20)
        body = json.loads(raw)
        assert body == {"id": event.id, "from": ONCALL, "withheld": False, "modem": "gsm1",
                        "received": headers.get("Received"), "rings": 1, "hung_up": True}
        sent_headers = receiver.requests[0][1]
        assert sent_headers[SIGNATURE_HEADER] == sign(sent_headers[TIMESTAMP_HEADER], raw, SECRET)

        # The acknowledgement answers the caller by SMS, as an SMS "ack" does.
        submissions = await asyncio.to_thread(network.wait_for_submissions, 2, 20)
        assert submissions[1]["to"] == ONCALL and "acknowledged" in submissions[1]["text"]

        # A stranger's call is recorded and hung up too, but acknowledges nothing.
        call = await asyncio.to_thread(network.ring, 0, STRANGER, interval=0.5)
        assert (await asyncio.to_thread(network.wait_for_call, call["id"], 10))["outcome"] == "hung up"
        while len(calls) < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a wrongly sent acknowledgement would be queued by now (negative check)
        assert len(network.submissions) == 2
        while not hook_log.exists() or len(hook_log.read_text().splitlines()) < 2:
            await asyncio.sleep(0.05)
        lines = hook_log.read_text().splitlines()
        assert lines[0] == f"call {tmp_path}/spool/calls/{event.id} {event.id}"

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_without_hangup_a_call_is_recorded_once_and_rings_on(tmp_path):
    import dataclasses

    def configure(config):
        return dataclasses.replace(config, calls=dataclasses.replace(config.calls, hangup=False))

    async def scenario(run):
        await run.ready()
        call = await asyncio.to_thread(run.network.ring, 1, STRANGER, interval=0.3, timeout=1.5)
        ended = await asyncio.to_thread(run.network.wait_for_call, call["id"], 10)
        assert ended["outcome"] == "caller gave up" and ended["rings"] >= 4
        await run.until(lambda: run.of(CallReceived), what="the call recorded")
        await asyncio.sleep(0.5)  # further rings are the same call (negative check)
        (event,) = run.of(CallReceived)
        assert event.modem == "modem1" and event.hung_up is False
        headers = run.file("calls", event.id).headers
        assert headers.get("Hung_up") is None and headers.get("From") == STRANGER

    run_scenario(tmp_path, scenario, configure=configure)


def test_a_modem_silent_while_it_rings_is_heard_through_clip_and_a_withheld_caller_is_kept(tmp_path):
    """The zte dialect prints no RING; the driver's AT+CRC=1/AT+CLIP=1 make the call heard."""
    async def scenario(run):
        await run.ready()
        call = await asyncio.to_thread(run.network.ring, 0, "", interval=0.3)
        assert (await asyncio.to_thread(run.network.wait_for_call, call["id"], 10))["outcome"] == "hung up"
        await run.until(lambda: run.of(CallReceived), what="the call recorded")
        (event,) = run.of(CallReceived)
        assert event.caller is None and event.withheld and event.hung_up
        headers = run.file("calls", event.id).headers
        assert headers.get("Withheld") == "yes" and headers.get("From") is None

    run_scenario(tmp_path, scenario, modems=1, profile="zte")
