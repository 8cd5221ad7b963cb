"""The daemon with its HTTP listener: a message posted over the API goes out through the modems,
and the API reports its progress from the journal (GatewayContext.message_status)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import aiohttp

from gsmgw.config import ClientConfig, HttpConfig, simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageSent, ReportReceived
from gsmgw.sim import SimNetwork
from helpers import free_port

TOKEN = "e2e-secret-token-0123456789"


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
