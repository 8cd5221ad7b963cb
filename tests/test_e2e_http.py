"""End to end over HTTP: the whole gateway (daemon + HTTP server) on simulated modems over real
ptys, a webhook receiver on loopback, and `gsmgw run` killed with SIGKILL right after a 202; a
message posted over the API goes out through the modems, and the API reports its progress from
the journal (GatewayContext.message_status).

Every wait is for an event (the daemon's bus, the simulator's condition, a webhook arriving) or a
poll of the API with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import aiohttp
import pytest

from gsmgw.config import ClientConfig, HttpConfig, load_config, simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageSent, ReportReceived
from gsmgw.sim import SimNetwork
from gsmgw.sms import decode_pdu, join_parts
from gsmgw.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from helpers import free_port, stop_process
from test_webhooks import Receiver

pytestmark = pytest.mark.slow

TOKEN = "e2e-token-0123456789"
SECRET = "received-secret-42"
APP_SECRET = "app-webhook-secret-7"
FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}


def write_config(tmp_path, network, *, report_url=None, received_url=None, extra=""):
    (tmp_path / "app.token").write_text(TOKEN + "\n")
    (tmp_path / "app.webhook").write_text(APP_SECRET + "\n")
    os.chmod(tmp_path / "app.token", 0o600)
    os.chmod(tmp_path / "app.webhook", 0o600)
    modems = "".join(f"  - name: gsm{i + 1}\n    port: {modem.path}\n" for i, modem in enumerate(network.modems))
    webhooks = ""
    if report_url or received_url:
        webhooks = "webhooks:\n" + (f"  report: {report_url}\n" if report_url else "") + (
            f"  received: {received_url}\n" if received_url else "") + f"  secret: {SECRET}\n"
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        http:
          listen: 127.0.0.1:{free_port()}
        clients:
          - name: app
            token_file: {tmp_path}/app.token
            allow: ["+49*", "group:oncall", "modem:*"]
            callback_hosts: ["127.0.0.1"]
            callback_private_addresses: true     # the test's receivers listen on loopback
            webhook_secret_file: {tmp_path}/app.webhook
        groups:
          oncall: ["+4915112345678", "+4917612345678", "+4930123456"]
        """) + "modems:\n" + modems + webhooks + extra)
    return path


def texts_by_recipient(network):
    """What the network received, multipart joined: {recipient: [texts]}."""
    parts: dict[tuple, list] = {}
    for record in network.submissions:
        sms = decode_pdu(record["pdu"])
        key = (record["to"], sms.concat.ref if sms.concat else ("single", record["seq"]))
        parts.setdefault(key, []).append(sms)
    joined: dict[str, list[str]] = {}
    for (recipient, _), pieces in parts.items():
        pieces.sort(key=lambda sms: sms.concat.seq if sms.concat else 1)
        joined.setdefault(recipient, []).append(join_parts(pieces))
    return joined


class Client:
    def __init__(self, session, base):
        self.session, self.base = session, base
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    async def post(self, body):
        async with self.session.post(self.base + "/api/v1/messages", json=body, headers=self.headers) as response:
            return response.status, await response.json()

    async def get(self, path):
        async with self.session.get(self.base + path, headers=self.headers) as response:
            return response.status, await response.json()

    async def wait_status(self, message_id, wanted, timeout=30.0):
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = await self.get(f"/api/v1/messages/{message_id}")
            assert status == 200, body
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] == wanted:
                return seen, body
            await asyncio.sleep(0.05)
        raise AssertionError(f"{message_id} never reached {wanted}; went through {seen}")


def run_gateway(tmp_path, scenario, *, modems=1, timeout=60.0, report_delay=0.0, extra_config=""):
    network = SimNetwork(tmp_path / "sim", modems=modems, report_delay=report_delay)
    network.start()

    async def main():
        receivers = {name: Receiver() for name in ("report", "received")}
        async with receivers["report"] as report, receivers["received"] as received:
            config = load_config(write_config(tmp_path, network, report_url=report.url, received_url=received.url,
                                              extra=extra_config))
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
            await gateway.start()
            try:
                base = f"http://127.0.0.1:{config.http.listen_port}"
                async with aiohttp.ClientSession() as session:
                    client = Client(session, base)
                    await asyncio.wait_for(scenario(client, network, gateway, report, received), timeout)
            finally:
                await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_unicode_send_reaches_the_network_and_the_report_comes_back_signed(tmp_path):
    text = "Grüße aus Köln 😀🎉 — Привет! " * 3  # UCS-2, several parts

    async def scenario(client, network, gateway, report, received):
        status, body = await client.post({"to": "+4915112345678", "text": text, "report": True})
        assert status == 202, body
        [message] = body["messages"]
        assert message["parts"] > 1 and message["alphabet"] == "ucs2"
        seen, final = await client.wait_status(message["id"], "delivered")
        # The network holds the report back for a while, so "sent" is seen before "delivered".
        assert seen[0] in ("queued", "sending") and seen[-2:] == ["sent", "delivered"], seen
        assert texts_by_recipient(network)["+4915112345678"] == [text]
        assert final["modem"] == "gsm1" and len(final["message_ids"]) == message["parts"]
        assert final["sent"] and final["delivered"]

        raw = await report.next(timeout=20)
        while json.loads(raw)["status"] != "delivered":
            raw = await report.next(timeout=20)
        payload = json.loads(raw)
        assert payload["id"] == message["id"] and payload["to"] == "+4915112345678"
        assert payload["message_ids"] == final["message_ids"]
        headers = report.requests[-1][1]
        assert headers[SIGNATURE_HEADER] == sign(headers[TIMESTAMP_HEADER], raw, APP_SECRET), \
            "reports are signed with the client's webhook secret"

    run_gateway(tmp_path, scenario, report_delay=1.0)


def test_inbound_sms_reaches_the_received_webhook_and_the_inbox(tmp_path):
    async def scenario(client, network, gateway, report, received):
        await asyncio.to_thread(network.inject_sms, 0, sender="+4915199999999", text="Antwort: ja ✅")
        raw = await received.next(timeout=20)
        payload = json.loads(raw)
        assert payload["from"] == "+4915199999999" and payload["text"] == "Antwort: ja ✅"
        assert payload["modem"] == "gsm1" and payload["parts"] == 1 and payload["incomplete"] is False
        headers = received.requests[0][1]
        assert headers[SIGNATURE_HEADER] == sign(headers[TIMESTAMP_HEADER], raw, SECRET)

        status, inbox = await client.get("/api/v1/inbox")
        assert status == 200
        [entry] = inbox["messages"]
        assert entry["id"] == payload["id"] and entry["text"] == "Antwort: ja ✅" and entry["from"] == "+4915199999999"

    run_gateway(tmp_path, scenario)


def test_an_undecodable_sms_is_announced_with_its_decode_error(tmp_path):
    """Issue 11: a PDU that cannot be decoded was written to incoming/ but never announced: no
    `received` hook, webhook or SMPP delivery ran for it."""
    truncated = "0791947101670000040C91"  # an SMS-DELIVER cut off in its sender's address
    hook_log = tmp_path / "hook.log"
    hook = tmp_path / "on-received"
    hook.write_text(f'#!/bin/sh\necho "$1 $2 $GSMGW_ID" >> {hook_log}\n')
    hook.chmod(0o755)

    async def scenario(client, network, gateway, report, received):
        await asyncio.to_thread(network.inject_sms, 0, "", pdu=truncated, check=False)
        payload = json.loads(await received.next(timeout=20))
        assert payload["from"] is None and payload["text"] == truncated and payload["modem"] == "gsm1"
        assert payload["decode_error"].startswith("TP-OA needs 6 octets")
        file = (tmp_path / "spool" / "incoming" / payload["id"]).read_text()
        assert f"Decode_error: {payload['decode_error']}\n" in file
        status, inbox = await client.get("/api/v1/inbox")
        [entry] = inbox["messages"]
        assert (entry["id"], entry["text"], entry["decode_error"]) == (payload["id"], truncated, payload["decode_error"])
        deadline = time.monotonic() + 10
        while not hook_log.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        path = tmp_path / "spool" / "incoming" / payload["id"]
        assert hook_log.read_text() == f"received {path} {payload['id']}\n"

    run_gateway(tmp_path, scenario, extra_config=f"hooks:\n  received: {hook}\n")


def test_group_send_gives_one_message_per_member(tmp_path):
    async def scenario(client, network, gateway, report, received):
        status, body = await client.post({"to": "group:oncall", "text": "DB down", "report": False})
        assert status == 202
        assert [m["to"] for m in body["messages"]] == ["+4915112345678", "+4917612345678", "+4930123456"]
        for message in body["messages"]:
            await client.wait_status(message["id"], "sent")
        got = texts_by_recipient(network)
        assert {number: got[number] for number in got} == {
            "+4915112345678": ["DB down"], "+4917612345678": ["DB down"], "+4930123456": ["DB down"]}

    run_gateway(tmp_path, scenario)


def test_modems_healthz_and_metrics_from_the_running_daemon(tmp_path):
    async def scenario(client, network, gateway, report, received):
        deadline = time.monotonic() + 20
        while True:
            async with client.session.get(client.base + "/healthz") as response:
                if response.status == 200:
                    break
                assert time.monotonic() < deadline, await response.text()
            await asyncio.sleep(0.1)
        status, modems = await client.get("/api/v1/modems")
        assert status == 200 and modems["modems"][0]["name"] == "gsm1" and modems["modems"][0]["state"] in ("ready", "busy")
        async with client.session.get(client.base + "/metrics") as response:
            text = await response.text()
        assert 'gsmgw_modem_up{modem="gsm1"} 1.0' in text

    run_gateway(tmp_path, scenario)


def test_kill_9_right_after_202_still_sends_after_restart(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    config_path = write_config(tmp_path, network)
    port = load_config(config_path).http.listen_port
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gsmgw", "run", "-c", str(config_path)]
    log = open(tmp_path / "daemon.log", "ab")

    async def post_then_kill(process):
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:  # wait for the listener
                try:
                    async with session.get(base + "/api/v1/modems", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the daemon's HTTP server did not come up"
                await asyncio.sleep(0.1)
            # Make the modem too slow to send before the kill: the message must come from disk.
            network.set_latency(0, 5.0)
            async with session.post(base + "/api/v1/messages", json={"to": "+4915112345678", "text": "survives kill -9"},
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 202
                message_id = (await response.json())["messages"][0]["id"]
            os.kill(process.pid, signal.SIGKILL)
            return message_id

    first = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        message_id = asyncio.run(post_then_kill(first))
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    # Nothing reached the network before the kill: what is sent next can only come from the spool.
    assert not any(decode_pdu(r["pdu"]).text == "survives kill -9" for r in network.submissions)
    network.set_latency(0, 0.0)

    second = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        network.wait_for_submissions(1, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(tmp_path / "spool" / "sent" / message_id):
                break
            time.sleep(0.1)
        assert texts_by_recipient(network)["+4915112345678"][0] == "survives kill -9"
        assert os.path.exists(tmp_path / "spool" / "sent" / message_id), "the sent/ file keeps the id the API gave"
    finally:
        stop_process(second, 15)
        log.close()
        network.stop()


def test_kannel_sendsms_with_dlr_url_as_a_kannel_user_expects(tmp_path):
    async def scenario(client, network, gateway, report, received):
        async with Receiver() as kannel_app:
            params = {"username": "app", "password": TOKEN, "to": "004915112345678", "text": "Kannel ✓",
                      "dlr-mask": "9", "dlr-url": kannel_app.url + "?msg=7&type=%d&to=%p"}
            async with client.session.get(client.base + "/cgi-bin/sendsms", params=params) as response:
                assert response.status == 202
                assert await response.text() == "0: Accepted for delivery"
            assert await kannel_app.next(timeout=20) == "/hook?msg=7&type=8&to=%2B4915112345678"  # sent
            assert await kannel_app.next(timeout=20) == "/hook?msg=7&type=1&to=%2B4915112345678"  # delivered
            assert texts_by_recipient(network)["+4915112345678"] == ["Kannel ✓"]
            assert report.requests == [], "a dlr-url replaces the report webhook for its message"

    run_gateway(tmp_path, scenario)


@contextlib.asynccontextmanager
async def webhook_receiver(port: int, path: str):
    """A local HTTP receiver for webhooks: yields a queue of the JSON bodies POSTed to `path`."""
    from aiohttp import web

    posted: asyncio.Queue = asyncio.Queue()

    async def receive(request):
        await posted.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(path, receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield posted
    finally:
        await runner.cleanup()


def test_post_send_and_follow_a_message_over_http(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=2)
    network.start()
    port = free_port()
    config = simulation_config(tmp_path / "spool", [m.path for m in network.modems])
    config = dataclasses.replace(
        config,
        http=HttpConfig(listen_host="127.0.0.1", listen_port=port),
        clients=(ClientConfig(name="app", token=TOKEN, allow=("+49*",)),),
    )

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options={"backoff_initial": 0.1})
        delivered, ready = asyncio.Event(), asyncio.Event()
        seen = set()

        def watch(event):
            if isinstance(event, MessageSent) or (isinstance(event, ReportReceived) and event.delivered):
                seen.add(type(event))
            if seen == {MessageSent, ReportReceived}:  # in either order: a report may come first
                delivered.set()
            if all(w.state == "ready" for w in gateway.workers.values()):
                ready.set()

        gateway.bus.subscribe(watch)
        await gateway.start()
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:
                await asyncio.wait_for(ready.wait(), 15)
                async with http.post(f"{base}/api/v1/messages",
                                     json={"to": "+4915112345678", "text": "via HTTP 😀", "report": True}) as r:
                    assert r.status == 202, await r.text()
                    (accepted,) = (await r.json())["messages"]
                await asyncio.wait_for(delivered.wait(), 20)
                async with http.get(f"{base}/api/v1/messages/{accepted['id']}") as r:
                    status = await r.json()
                assert status["status"] == "delivered" and status["to"] == "+4915112345678"
                assert status["modem"] in ("modem0", "modem1") and status["message_ids"]
                assert set(status) == {"id", "to", "status", "modem", "parts", "message_ids", "queued",
                                       "sent", "delivered", "fail_reason"}
                async with http.get(f"{base}/api/v1/modems") as r:
                    modems = await r.json()
                assert [m["name"] for m in modems["modems"]] == ["modem0", "modem1"]
                async with http.get(f"{base}/metrics") as r:
                    metrics = await r.text()
                assert "gsmgw_messages_sent_total{" in metrics and "gsmgw_modem_up{" in metrics
            sent = [e for e in network.submissions if e["to"] == "+4915112345678"]
            assert [s["text"] for s in sent] == ["via HTTP 😀"]
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_webhooks_without_an_http_listener(tmp_path):
    """A daemon with `webhooks:` but no `http:` still posts received SMS (app.py starts them)."""
    from gsmgw.config import WebhooksConfig

    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    port = free_port()
    config = simulation_config(tmp_path / "spool", [network.modems[0].path])
    config = dataclasses.replace(
        config, webhooks=WebhooksConfig(received=f"http://127.0.0.1:{port}/in", secret="s3cret")
    )

    async def main():
        async with webhook_receiver(port, "/in") as posted:
            gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options={"backoff_initial": 0.1})
            await gateway.start()
            try:
                assert gateway.ctx.webhooks is not None
                network.inject_sms(0, sender="+4915112345678", text="hook me 😀")
                body = await asyncio.wait_for(posted.get(), 20)
                assert body["from"] == "+4915112345678" and body["text"] == "hook me 😀"
            finally:
                await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_a_failed_report_reads_failed_in_the_api_the_webhook_and_sent(tmp_path):
    """Issue 11: the API said `sent` for a message whose report said failed (it read the journal's
    state, which no report sets). One status view answers all three."""
    from gsmgw.config import WebhooksConfig

    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    port, hook_port = free_port(), free_port()
    config = simulation_config(tmp_path / "spool", [network.modems[0].path])
    config = dataclasses.replace(
        config,
        http=HttpConfig(listen_host="127.0.0.1", listen_port=port),
        clients=(ClientConfig(name="app", token=TOKEN, allow=("+49*",)),),
        webhooks=WebhooksConfig(report=f"http://127.0.0.1:{hook_port}/report", secret="s3cret"),
    )
    network.set_report_outcome("+4915112345600", [0x41])

    async def main():
        async with webhook_receiver(hook_port, "/report") as posted:
            await scenario(posted)

    async def scenario(posted):
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options={"backoff_initial": 0.1})
        await gateway.start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                async with http.post(f"{base}/api/v1/messages",
                                     json={"to": "+4915112345600", "text": "never arrives", "report": True}) as r:
                    assert r.status == 202, await r.text()
                    (accepted,) = (await r.json())["messages"]
                hook = await asyncio.wait_for(posted.get(), 30)
                async with http.get(f"{base}/api/v1/messages/{accepted['id']}") as r:
                    status = await r.json()
            assert hook["id"] == accepted["id"] and hook["status"] == "failed" and hook["delivered"] is None
            assert status["status"] == "failed", status
            assert "failed 65" in status["fail_reason"] and status["delivered"] is None
            sent = (tmp_path / "spool" / "sent" / accepted["id"]).read_text()
            assert "\nStatus: failed 65 (" in sent
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()
