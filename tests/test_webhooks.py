"""gsmgw.webhooks: durable at-least-once queue, HMAC signature, backoff, restart, give-up."""

import asyncio
import hashlib
import hmac
import json
import time

from aiohttp import web

from gsmgw.clients import Client, ClientRegistry
from gsmgw.events import MessageFailed, MessageReceived, MessageSent, ReportReceived
from gsmgw.spool.format import Headers, build_report, make_outgoing, seal
from gsmgw.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    Route,
    WebhookDispatcher,
    WebhookQueue,
    kannel_dlr_url,
    report_event_from_files,
    sign,
)
from helpers import SEAL_KEY, free_port


class Receiver:
    """A webhook receiver on loopback; `answers` is consumed per request (default 200)."""

    def __init__(self, answers=(), port=0, hang=False, redirect_to=None, host="127.0.0.1"):
        self.answers = list(answers)
        self.port = port
        self.hang = hang
        self.redirect_to = redirect_to
        self.host = host
        self.requests = []
        self.arrived = asyncio.Queue()
        self.release = asyncio.Event()

    async def handle(self, request):
        body = await request.read()
        self.requests.append((request.path_qs if request.method == "GET" else request.path, dict(request.headers), body))
        await self.arrived.put(body if request.method != "GET" else request.path_qs)
        if self.hang:
            await self.release.wait()
        if self.redirect_to:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok")

    async def __aenter__(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}/hook"
        return self

    async def __aexit__(self, *exc):
        self.release.set()
        await self.runner.cleanup()

    async def next(self, timeout=5.0):
        return await asyncio.wait_for(self.arrived.get(), timeout)


async def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_delivery_is_signed_and_removed_after_2xx(tmp_path):
    async def scenario():
        async with Receiver() as receiver:
            queue = WebhookQueue(tmp_path / "webhooks", route=lambda delivery: Route(key="tok", trusted=True))
            await queue.start()
            try:
                before = int(time.time())
                delivery_id = await queue.enqueue(receiver.url, "received", {"text": "Grüße 😀", "id": "x"})
                # Durable before enqueue returned.
                body = await receiver.next()
                path, headers, raw = receiver.requests[0]
                assert path == "/hook"
                assert json.loads(raw) == {"text": "Grüße 😀", "id": "x"}
                timestamp = headers[TIMESTAMP_HEADER]
                assert before <= int(timestamp) <= time.time()
                expected = hmac.new(b"tok", timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
                assert headers[SIGNATURE_HEADER] == expected == sign(timestamp, body, "tok")
                assert headers[DELIVERY_HEADER] == delivery_id
                assert headers["X-Gsmgw-Event"] == "received"
                await wait_until(lambda: queue.pending() == 0)
                assert not list((tmp_path / "webhooks").glob("*.json"))
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_enqueued_file_exists_before_enqueue_returns(tmp_path):
    async def scenario():
        queue = WebhookQueue(tmp_path / "wh", first_delay=60)
        await queue.start()
        try:
            delivery_id = await queue.enqueue(f"http://127.0.0.1:{free_port()}/", "report", {"id": "a"}, client="app")
            stored = json.loads((tmp_path / "wh" / f"{delivery_id}.json").read_text())
            assert stored["url"].startswith("http://127.0.0.1:") and stored["client"] == "app"
            assert "signature" not in stored, "signed when sent, with that moment's time and the current secret"
        finally:
            await queue.close()

    asyncio.run(scenario())


def test_errors_are_retried_with_backoff(tmp_path):
    async def scenario():
        async with Receiver(answers=[500, 503]) as receiver:
            queue = WebhookQueue(tmp_path / "wh", first_delay=0.05)
            await queue.start()
            try:
                await queue.enqueue(receiver.url, "report", {"id": "a"})
                first = await receiver.next()
                second = await receiver.next()
                third = await receiver.next()
                assert first == second == third
                await wait_until(lambda: queue.pending() == 0)
                assert queue.delivered_total == 1
                ids = {headers[DELIVERY_HEADER] for _, headers, _ in receiver.requests}
                assert len(ids) == 1, "a retry keeps its delivery id so receivers can drop duplicates"
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_pending_delivery_survives_a_restart(tmp_path):
    port = free_port()

    async def first_life():
        queue = WebhookQueue(tmp_path / "wh", first_delay=0.05)
        await queue.start()
        await queue.enqueue(f"http://127.0.0.1:{port}/later", "received", {"id": "m1"})
        await wait_until(lambda: any(d.attempts for d in queue._deliveries.values()))
        await queue.close()

    async def second_life():
        async with Receiver(port=port) as receiver:
            queue = WebhookQueue(tmp_path / "wh", first_delay=0.05)
            await queue.start()
            try:
                body = await receiver.next()
                assert json.loads(body) == {"id": "m1"}
                await wait_until(lambda: queue.pending() == 0)
            finally:
                await queue.close()

    asyncio.run(first_life())
    assert len(list((tmp_path / "wh").glob("*.json"))) == 1
    asyncio.run(second_life())
    assert not list((tmp_path / "wh").glob("*.json"))


def test_gives_up_after_max_age_and_keeps_the_file(tmp_path):
    async def scenario():
        queue = WebhookQueue(tmp_path / "wh", first_delay=0.05, max_age=0.3)
        await queue.start()
        try:
            await queue.enqueue(f"http://127.0.0.1:{free_port()}/", "report", {"id": "a"})
            await wait_until(lambda: queue.dead_total == 1)
        finally:
            await queue.close()
        dead = list((tmp_path / "wh" / "dead").glob("*.json"))
        assert len(dead) == 1
        assert json.loads(dead[0].read_text())["attempts"] >= 2
        assert not list((tmp_path / "wh").glob("*.json"))

    asyncio.run(scenario())


def test_a_hanging_receiver_does_not_slow_enqueue(tmp_path):
    async def scenario():
        async with Receiver(hang=True) as receiver:
            queue = WebhookQueue(tmp_path / "wh", timeout=30, concurrency=2)
            await queue.start()
            try:
                started = time.monotonic()
                for number in range(20):
                    await queue.enqueue(receiver.url, "received", {"n": number})
                elapsed = time.monotonic() - started
                await receiver.next()
                assert elapsed < 2.0, f"20 enqueues took {elapsed:.2f} s with a hanging receiver"
                assert queue.pending() == 20
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_damaged_queue_file_is_set_aside(tmp_path):
    async def scenario():
        (tmp_path / "wh").mkdir()
        (tmp_path / "wh" / "broken.json").write_text("{not json")
        (tmp_path / "wh" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        queue = WebhookQueue(tmp_path / "wh")
        await queue.start()
        await queue.close()
        assert (tmp_path / "wh" / "dead" / "broken.json").exists()
        assert (tmp_path / "wh" / "dead" / "deep.json").exists()

    asyncio.run(scenario())


class WebhooksConfig:
    def __init__(self, received=None, report=None, secret=None):
        self.received, self.report, self.secret = received, report, secret


def signed_with(request, key):
    """Was this received request signed with `key` (over its timestamp and body)?"""
    _, headers, body = request
    return headers.get(SIGNATURE_HEADER) == sign(headers.get(TIMESTAMP_HEADER, ""), body, key)


def test_dispatcher_signs_with_webhook_secrets_never_with_tokens(tmp_path):
    registry = ClientRegistry([
        Client("first", token="tok-first"),
        Client("app", token="tok-app", webhook_secret="wh-app", callback_hosts=("127.0.0.1",),
               callback_private_addresses=True),
    ])

    async def scenario():
        async with Receiver() as inbox, Receiver() as dlr, Receiver() as callback:
            queue = WebhookQueue(tmp_path / "wh")
            dispatcher = WebhookDispatcher(queue, WebhooksConfig(inbox.url, dlr.url, "shared"), registry)
            queue.route = dispatcher.route
            await queue.start()
            try:
                await dispatcher(MessageReceived(
                    id="gsm1-20261125-101500-ab", path="/x", sender="+4915112345678", text="hi",
                    modem="gsm1", sent="2026-11-25T10:15:00+01:00", received="2026-11-25T10:15:02+01:00",
                    parts=1, incomplete=False,
                ))
                received_body = await inbox.next()
                assert json.loads(received_body) == {
                    "id": "gsm1-20261125-101500-ab", "from": "+4915112345678", "text": "hi",
                    "modem": "gsm1", "sent": "2026-11-25T10:15:00+01:00",
                    "received": "2026-11-25T10:15:02+01:00", "parts": 1, "incomplete": False,
                    "decode_error": None,
                    "binary": False, "data": None, "udh": None, "port": None, "from_port": None,
                }
                assert signed_with(inbox.requests[0], "shared")

                report = dict(
                    id="20261125-101000-xy", to="+4915112345678", status="delivered", delivered=True,
                    message_ids=(17, 18), report_path="/r", modem="gsm1",
                    discharge="2026-11-25T10:16:00+01:00", tp_status=0,
                )
                await dispatcher(ReportReceived(**report, headers=Headers([("Client", "app")])))
                report_body = await dlr.next()
                assert json.loads(report_body) == {
                    "id": "20261125-101000-xy", "to": "+4915112345678", "status": "delivered",
                    "delivered": "2026-11-25T10:16:00+01:00", "message_ids": [17, 18],
                }
                assert signed_with(dlr.requests[0], "wh-app"), "a client's reports: its own webhook secret"
                await dispatcher(ReportReceived(**report, headers=Headers([("Client", "first")])))
                await dlr.next()
                assert signed_with(dlr.requests[1], "shared"), "a client without one: webhooks.secret"

                await dispatcher(ReportReceived(**report, headers=Headers([("client", "app"), ("callback", callback.url)])))
                await callback.next()
                assert signed_with(callback.requests[0], "wh-app")
                assert len(dlr.requests) == 2, "a per-message callback replaces the report webhook"
                every = inbox.requests + dlr.requests + callback.requests
                assert not any(signed_with(r, token) for r in every for token in ("tok-first", "tok-app"))
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_no_api_token_ever_signs_a_webhook():
    """Without webhooks.secret (check-config refuses that; a config built in code can), webhooks
    go unsigned rather than signed with a client's token, which would let the receiver send SMS."""
    registry = ClientRegistry([Client("smpp-only"), Client("first", token="tok-first")])
    dispatcher = WebhookDispatcher(None, WebhooksConfig(received="http://in.example/"), registry)
    delivery = Delivery(id="d", url="http://in.example/", event="received", body="{}", created=0.0)
    assert dispatcher.route(delivery).key is None
    report = Delivery(id="r", url="http://in.example/", event="report", body="{}", created=0.0, client="first")
    assert dispatcher.route(report).key is None


def test_kannel_escapes_are_filled_and_quoted():
    values = {"d": "1", "p": "+4915112345678", "A": "delivered 0", "I": "20261125-x"}
    url = kannel_dlr_url("http://app/dlr?s=%d&to=%p&t=%A&id=%I&x=%Z&pct=%%", values)
    assert url == "http://app/dlr?s=1&to=%2B4915112345678&t=delivered%200&id=20261125-x&x=%Z&pct=%"


def test_kannel_dlr_url_is_a_get_for_the_events_in_the_mask(tmp_path):
    registry = ClientRegistry([Client("app", token="tok-app", callback_hosts=("127.0.0.1",),
                                      callback_private_addresses=True)])

    async def scenario():
        async with Receiver() as app:
            queue = WebhookQueue(tmp_path / "wh")
            await queue.start()
            try:
                dispatcher = WebhookDispatcher(queue, WebhooksConfig(report=app.url + "/json"), registry)
                queue.route = dispatcher.route
                headers = {"Client": "app", "Callback": app.url + "?id=42&status=%d&to=%p", "Dlr_mask": "11"}
                report = dict(id="m1", to="+4915112345678", message_ids=(3,), report_path="/r", modem="gsm1",
                              discharge=None, tp_status=0, headers=headers)
                await dispatcher(MessageSent(id="m1", to="+4915112345678", modem="gsm1", imsi=None, message_ids=(3,),
                                             path="/s", headers=headers))
                assert await app.next() == "/hook?id=42&status=8&to=%2B4915112345678"
                await dispatcher(ReportReceived(**report, status="pending", delivered=False))  # 4 is not in 11
                await dispatcher(ReportReceived(**report, status="delivered", delivered=True))
                assert await app.next() == "/hook?id=42&status=1&to=%2B4915112345678"
                await dispatcher(MessageFailed("m1", "+4915112345678", "expired", "/f", headers))  # 16 not in 11
                await asyncio.sleep(0.2)
                assert [method_path for method_path, _, _ in app.requests] == [
                    "/hook?id=42&status=8&to=%2B4915112345678", "/hook?id=42&status=1&to=%2B4915112345678"]
                assert all(SIGNATURE_HEADER not in headers for _, headers, _ in app.requests)
            finally:
                await queue.close()

    asyncio.run(scenario())


# --- callbacks: allowed hosts, public addresses, no redirects ---------------------------------


REPORT = dict(id="m1", to="+4915112345678", status="delivered", delivered=True, message_ids=(3,),
              report_path="/r", modem="gsm1", discharge=None, tp_status=0)


async def deliver_callback(tmp_path, client, url, *, client_header=True):
    """Announce a report whose message has `url` as its callback; the queue's own deliveries."""
    registry = ClientRegistry([client])
    queue = WebhookQueue(tmp_path / "wh", first_delay=60)
    dispatcher = WebhookDispatcher(queue, WebhooksConfig(secret="shared"), registry)
    queue.route = dispatcher.route
    await queue.start()
    headers = {"Callback": url, **({"Client": client.name} if client_header else {})}
    await dispatcher(ReportReceived(**REPORT, headers=headers))
    return queue


def test_a_callback_to_an_allowed_host_with_private_addresses_allowed_is_delivered(tmp_path):
    async def scenario():
        async with Receiver() as app:
            client = Client("app", token="t", webhook_secret="wh", callback_hosts=("localhost",),
                            callback_private_addresses=True)
            queue = await deliver_callback(tmp_path, client, f"http://localhost:{app.port}/dlr")
            try:
                assert json.loads(await app.next())["id"] == "m1"
                await wait_until(lambda: queue.delivered_total == 1)
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_callbacks_are_refused_outside_the_clients_rules_and_given_up_at_once(tmp_path, caplog):
    metadata = "169.254.169.254"

    async def scenario():
        async with Receiver() as app:
            cases = [
                # (client, url, what the log says)
                (Client("app", token="t", webhook_secret="wh", callback_hosts=("app.example",)),
                 app.url, "not among the callback_hosts of client 'app'"),
                (Client("app", token="t", webhook_secret="wh", callback_hosts=("127.0.0.1",)),
                 app.url, "127.0.0.1 is a loopback address; if that address is meant, set "
                          "callback_private_addresses: true for client 'app'"),
                # A name is checked after it is resolved, at the moment of the call.
                (Client("app", token="t", webhook_secret="wh", callback_hosts=("localhost",)),
                 f"http://localhost:{app.port}/hook", "localhost resolves only to addresses callbacks may not reach"),
                (Client("app", token="t", webhook_secret="wh", callback_hosts=(metadata,)),
                 f"http://{metadata}/latest/meta-data/", "link-local address (the cloud metadata service)"),
            ]
            for number, (client, url, words) in enumerate(cases):
                caplog.clear()
                with caplog.at_level("ERROR", logger="gsmgw.webhooks"):
                    queue = await deliver_callback(tmp_path / str(number), client, url)
                    try:
                        await wait_until(lambda: queue.dead_total == 1)
                    finally:
                        await queue.close()
                assert words in caplog.text and "giving up on report" in caplog.text, caplog.text
            # A callback in a message no client submitted has nobody's rules: refused.
            queue = await deliver_callback(tmp_path / "none", cases[1][0], app.url, client_header=False)
            try:
                await wait_until(lambda: queue.dead_total == 1)
            finally:
                await queue.close()
            assert app.requests == []

    asyncio.run(scenario())


def test_no_redirect_is_followed(tmp_path, caplog):
    async def scenario():
        async with Receiver() as target, Receiver() as app:
            app.redirect_to = target.url
            client = Client("app", token="t", webhook_secret="wh", callback_hosts=("127.0.0.1",),
                            callback_private_addresses=True)
            with caplog.at_level("WARNING", logger="gsmgw.webhooks"):
                queue = await deliver_callback(tmp_path, client, app.url)
                try:
                    await app.next()
                    await wait_until(lambda: "follows no redirects" in caplog.text)
                    assert queue.pending() == 1 and queue.delivered_total == 0, "a redirect is a failed delivery"
                finally:
                    await queue.close()
            assert target.requests == []
            assert f"a redirect to {target.url}" in caplog.text

    asyncio.run(scenario())


def test_the_configured_webhook_urls_may_be_private_but_do_not_follow_redirects(tmp_path, caplog):
    async def scenario():
        async with Receiver() as target, Receiver() as inbox:
            registry = ClientRegistry([])
            queue = WebhookQueue(tmp_path / "wh", first_delay=60)
            dispatcher = WebhookDispatcher(queue, WebhooksConfig(received=inbox.url, secret="shared"), registry)
            queue.route = dispatcher.route
            await queue.start()
            try:
                event = MessageReceived(id="a", path="/x", sender="+4915112345678", text="hi", modem="gsm1",
                                        sent=None, received="2026-11-25T10:15:02+01:00", parts=1, incomplete=False)
                await dispatcher(event)
                await inbox.next()
                await wait_until(lambda: queue.delivered_total == 1)
                inbox.redirect_to = target.url
                with caplog.at_level("WARNING", logger="gsmgw.webhooks"):
                    await dispatcher(MessageReceived(**{**event.__dict__, "id": "b"}))
                    await inbox.next()
                    await wait_until(lambda: "follows no redirects" in caplog.text)
                assert target.requests == []
            finally:
                await queue.close()

    asyncio.run(scenario())


def test_a_report_announced_after_a_restart_trusts_only_a_sealed_sent_file():
    # Regression (issue 11): the catch-up after a restart read Callback:/Client: from any sent file.
    report = build_report(recipient="+4915112345678", modem="gsm1", message_id=9, sent_file="m1", status=0,
                          discharge=None)
    door_file = make_outgoing(to="+4915112345678", text="x", extra={"Client": "app", "Callback": "https://a.example/"})
    for sent, trusted in ((seal(door_file, SEAL_KEY), True), (door_file, False)):
        event = report_event_from_files("gsm1-r1", report, sent, "/spool/report/gsm1-r1", seal_key=SEAL_KEY)
        assert (event.headers.get("Callback") == "https://a.example/") is trusted
        assert (event.headers.get("Client") == "app") is trusted
