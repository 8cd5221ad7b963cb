"""The HTTP server's REST API against a real spool, config, event bus and metrics registry.

The daemon's workers are not running here (tests/test_e2e_http.py runs the whole gateway); the
status snapshot is a fixed dict so /healthz and /api/v1/modems can be driven.
"""

import asyncio
import contextlib
import json
import os
import shutil
import socket
import textwrap
from datetime import datetime, timedelta

import aiohttp
import pytest

from gsmgw.config import load_config
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.http.server import HttpStartError, start
from gsmgw.spool.format import build_failed, build_incoming, build_sent, read_spool_file, update_headers
from gsmgw.spool.message_status import MessageStatus
from gsmgw.spool.store import Spool
from helpers import SEAL_KEY, free_port

TOKEN = "tok-zabbix-0123456789"
OTHER_TOKEN = "tok-limited-9876543210"
WEBHOOK_SECRET = "wh-zabbix-5555555555"


def write_config(tmp_path, extra="", metrics=True, limited_per_minute=3):
    (tmp_path / "zabbix.token").write_text(TOKEN + "\n")
    (tmp_path / "limited.token").write_text(OTHER_TOKEN + "\n")
    (tmp_path / "zabbix.webhook").write_text(WEBHOOK_SECRET + "\n")
    for name in ("zabbix.token", "limited.token", "zabbix.webhook"):
        os.chmod(tmp_path / name, 0o600)
    config = tmp_path / "gsmgw.yaml"
    config.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - name: gsm1
            port: {tmp_path}/modem0
          - name: gsm2
            port: {tmp_path}/modem1
        http:
          listen: 127.0.0.1:{free_port()}
          metrics: {"true" if metrics else "false"}
        clients:
          - name: zabbix
            token_file: {tmp_path}/zabbix.token
            allow: ["+49*", "group:oncall", "modem:*"]
            deny: ["+49900*", "+49137*"]
            callback_hosts: ["app.example", "127.0.0.1"]
            callback_private_addresses: true     # the test's receivers listen on loopback
            webhook_secret_file: {tmp_path}/zabbix.webhook
          - name: limited
            token_file: {tmp_path}/limited.token
            allow: ["+4915*"]
            limits: {{per_minute: {limited_per_minute}}}
        groups:
          oncall: ["+4915112345678", "017612345678"]
          empty_of_rights: ["+33612345678"]
        """) + extra)
    return config


class Context:
    """The parts of the daemon's GatewayContext the HTTP server uses, built from real pieces."""

    def __init__(self, config_path):
        self.config = load_config(config_path)
        self.spool = Spool(self.config.spool, seal_key=SEAL_KEY)
        self.spool.ensure_dirs()
        self.bus = EventBus()
        self.metrics = Metrics()
        for modem in self.config.modems:
            self.metrics.add_modem(modem.name)
        self.modem_states = {"gsm1": "ready", "gsm2": "absent"}
        self.statuses = {}
        self.wakes = 0

    def status_snapshot(self):
        return {
            "updated": datetime.now().astimezone().isoformat(timespec="seconds"),
            "modems": [{"name": name, "state": state} for name, state in self.modem_states.items()],
            "queue": self.spool.depths(),
        }

    def message_status(self, message_id):
        return self.statuses.get(message_id)

    def wake(self):
        self.wakes += 1


class Api:
    """A running server plus a client session; `await api.post(...)` gives (status, json, headers)."""

    def __init__(self, ctx, server, session):
        self.ctx, self.server, self.session = ctx, server, session

    async def request(self, method, path, *, token=TOKEN, json_body=None, data=None, headers=None):
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.server.url + path, json=json_body, data=data, headers=all_headers) as response:
            raw = await response.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            return response.status, body, response.headers

    async def send(self, body, **kwargs):
        return await self.request("POST", "/api/v1/messages", json_body=body, **kwargs)

    def outgoing(self):
        return self.ctx.spool.list("outgoing")


@contextlib.asynccontextmanager
async def running_api(tmp_path, **config_kwargs):
    ctx = Context(write_config(tmp_path, **config_kwargs))
    server = await start(ctx)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(ctx, server, session)
    finally:
        await server.close()


def run(scenario, tmp_path, **config_kwargs):
    async def main():
        async with running_api(tmp_path, **config_kwargs) as api:
            await scenario(api)

    asyncio.run(main())


# --- sending ------------------------------------------------------------------------------------


def test_send_unicode_is_durable_and_exact(tmp_path):
    text = "Grüße aus Köln 😀 — € [ok]"

    async def scenario(api):
        status, body, _ = await api.send({"to": "+49 151 1234-5678", "text": text, "report": True})
        assert status == 202
        [message] = body["messages"]
        assert message["to"] == "+4915112345678"
        assert message["status"] == "queued"
        assert message["alphabet"] == "ucs2" and message["parts"] == 1
        assert api.outgoing() == [message["id"]]
        spool_file = api.ctx.spool.verified(api.ctx.spool.read("outgoing", message["id"]))
        assert spool_file.headers.get("To") == "+4915112345678"
        assert spool_file.headers.get("Client") == "zabbix"
        assert spool_file.headers.get("Report") == "yes"
        assert spool_file.body.decode("utf-8") == text + "\n"
        assert api.ctx.wakes >= 1

    run(scenario, tmp_path)


def test_every_option_reaches_the_spool_file(tmp_path):
    async def scenario(api):
        status, body, _ = await api.send({
            "to": "+4915112345678", "text": "x", "report": False, "flash": True, "validity": "12 hours",
            "priority": "high", "modem": "gsm2", "send_after": "2026-11-24T10:15:00+01:00",
            "expires": "30 min", "max_parts": 2, "callback": "https://app.example/dlr?id=7",
        })
        assert status == 202, body
        headers = api.ctx.spool.verified(api.ctx.spool.read("outgoing", body["messages"][0]["id"])).headers
        assert headers.get("Report") == "no"
        assert headers.get("Flash") == "yes"
        assert headers.get("Validity") == "12 hours"
        assert headers.get("Priority") == "high"
        assert headers.get("Modem") == "gsm2"
        assert headers.get("Send_after") == "2026-11-24T10:15:00+01:00"
        expires = datetime.fromisoformat(headers.get("Expires"))
        assert timedelta(minutes=29) < expires - datetime.now().astimezone() <= timedelta(minutes=30)
        assert headers.get("Max_parts") == "2"
        assert headers.get("Callback") == "https://app.example/dlr?id=7"

    run(scenario, tmp_path)


def test_several_recipients_and_groups_give_one_message_each(tmp_path):
    async def scenario(api):
        status, body, _ = await api.send({"to": ["group:oncall", "+4930123456", "+4915112345678"], "text": "alarm"})
        assert status == 202
        recipients = [message["to"] for message in body["messages"]]
        # the group member listed again is sent once
        assert recipients == ["+4915112345678", "+4917612345678", "+4930123456"]
        assert len(set(message["id"] for message in body["messages"])) == 3
        assert sorted(api.outgoing()) == sorted(message["id"] for message in body["messages"])
        for message in body["messages"]:
            headers = api.ctx.spool.verified(api.ctx.spool.read("outgoing", message["id"])).headers
            assert headers.get("To") == message["to"]

        status, body, _ = await api.send({"to": "group:oncall", "text": "alarm"})
        assert status == 202 and len(body["messages"]) == 2

        # A comma-separated string, as in a spool file's To: line.
        status, body, _ = await api.send({"to": "+4930123456, group:oncall", "text": "alarm"})
        assert status == 202
        assert [m["to"] for m in body["messages"]] == ["+4930123456", "+4915112345678", "+4917612345678"]

    run(scenario, tmp_path)


def test_a_denied_recipient_queues_nothing(tmp_path):
    async def scenario(api):
        status, body, _ = await api.send({"to": ["+4915112345678", "+49900123456"], "text": "x"})
        assert status == 403
        assert "+49900123456" in body["error"] and "+49900*" in body["error"]
        status, body, _ = await api.send({"to": "+33612345678", "text": "x"})
        assert status == 403 and "allow" in body["error"]
        status, body, _ = await api.send({"to": "group:empty_of_rights", "text": "x"})
        assert status == 403
        assert api.outgoing() == []

    run(scenario, tmp_path)


@pytest.mark.parametrize(
    "body, words",
    [
        ({"text": "x"}, '"to" is missing'),
        ({"to": "+4915112345678"}, '"text" is missing'),
        ({"to": "+4915112345678", "text": ""}, '"text" is empty'),
        ({"to": "+4915112345678", "text": 5}, '"text" must be a string'),
        ({"to": "abc", "text": "x"}, "is not a phone number"),
        ({"to": ["+4915112345678", "12"], "text": "x"}, '"to"[1]'),
        ({"to": [], "text": "x"}, "empty list"),
        ({"to": 4915112345678, "text": "x"}, "as a string"),
        ({"to": "group:nobody", "text": "x"}, "unknown group 'nobody'"),
        ({"to": "+4915112345678", "text": "x" * 1000}, "needs 7 SMS parts"),
        ({"to": "+4915112345678", "text": "€" * 160, "max_parts": 1}, "needs 3 SMS parts (320 GSM-7"),
        ({"to": "+4915112345678", "text": "x", "max_parts": 0}, '"max_parts"'),
        ({"to": "+4915112345678", "text": "x", "report": "yes"}, '"report" must be true or false'),
        ({"to": "+4915112345678", "text": "x", "validity": "forever"}, '"validity"'),
        ({"to": "+4915112345678", "text": "x", "priority": "urgent"}, '"priority"'),
        ({"to": "+4915112345678", "text": "x", "modem": "gsm9"}, "no modem named 'gsm9'"),
        ({"to": "+4915112345678", "text": "x", "send_after": "tomorrow"}, '"send_after"'),
        ({"to": "+4915112345678", "text": "x", "callback": "ftp://x"}, '"callback"'),
        ({"to": "+4915112345678", "text": "x", "callback": "https://a\nX: y"}, '"callback"'),
        ({"to": "+4915112345678", "text": "x", "modem": "gsm1\nTo: +4990012"}, '"modem"'),
        ({"to": "+4915112345678", "text": "x", "from": "me"}, "unknown field(s) 'from'"),
        # Durations and times beyond the one bound of gsmgw.durations used to give a 500
        # (OverflowError past the year 9999).
        ({"to": "+4915112345678", "text": "x", "expires": "1000000 weeks"}, "longer than 3650 days"),
        ({"to": "+4915112345678", "text": "x", "send_after": "1000000 weeks"}, "longer than 3650 days"),
        ({"to": "+4915112345678", "text": "x", "validity": "1000000 weeks"}, "longer than 3650 days"),
        ({"to": "+4915112345678", "text": "x", "expires": "9999-12-31T23:59:59-14:00"}, "within ten years"),
        ({"to": "+4915112345678", "text": "x", "send_after": "0001-01-01T00:00:00+14:00"}, "within ten years"),
    ],
)
def test_bad_fields_get_400_saying_what_to_send(tmp_path, body, words):
    async def scenario(api):
        status, answer, _ = await api.send(body)
        assert status == 400, answer
        assert words in answer["error"]
        assert api.outgoing() == []

    run(scenario, tmp_path)


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"{", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "JSON"),
        (b'{"to": "+4915112345678", "text": "\\ud83d"}', "surrogate"),
    ],
)
def test_malformed_bodies_get_400(tmp_path, raw, words):
    async def scenario(api):
        status, answer, _ = await api.request("POST", "/api/v1/messages", data=raw)
        assert status == 400
        assert words in answer["error"]

    run(scenario, tmp_path)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    async def scenario(api):
        status, body, _ = await api.request("POST", "/api/v1/messages", data=b'\xef\xbb\xbf{"to": "+4915112345678", "text": "x"}')
        assert status == 202, body

    run(scenario, tmp_path)


def test_emoji_as_a_surrogate_pair_in_json_is_fine(tmp_path):
    async def scenario(api):
        status, body, _ = await api.request(
            "POST", "/api/v1/messages", data=b'{"to": "+4915112345678", "text": "\\ud83d\\ude00"}'
        )
        assert status == 202
        data = api.ctx.spool.read("outgoing", body["messages"][0]["id"])
        assert read_spool_file(data).body.decode() == "😀\n"

    run(scenario, tmp_path)


def test_oversized_bodies_get_413_also_when_chunked(tmp_path):
    async def scenario(api):
        big = json.dumps({"to": "+4915112345678", "text": "x" * 70000}).encode()
        status, answer, _ = await api.request("POST", "/api/v1/messages", data=big)
        assert status == 413 and "64 KiB" in answer["error"]

        async def chunks():
            for _ in range(20):
                yield b" " * 4096

        status, answer, _ = await api.request("POST", "/api/v1/messages", data=chunks())
        assert status == 413
        assert api.outgoing() == []

    run(scenario, tmp_path)


def test_tokens(tmp_path):
    async def scenario(api):
        body = {"to": "+4915112345678", "text": "x"}
        status, answer, headers = await api.send(body, token=None)
        assert status == 401 and "Authorization: Bearer" in answer["error"]
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, answer, _ = await api.send(body, token="tok-zabbix-012345678")
        assert status == 401 and "not valid" in answer["error"]
        status, _, _ = await api.send(body, token=None, headers={"Authorization": f"Basic {TOKEN}"})
        assert status == 401
        for path in ("/api/v1/inbox", "/api/v1/modems", "/api/v1/messages/x"):
            status, _, _ = await api.request("GET", path, token="wrong")
            assert status == 401
        assert api.outgoing() == []

    run(scenario, tmp_path)


def test_limits_give_429_with_retry_after(tmp_path):
    async def scenario(api):
        for _ in range(3):
            status, _, _ = await api.send({"to": "+4915112345678", "text": "x"}, token=OTHER_TOKEN)
            assert status == 202
        status, answer, headers = await api.send({"to": "+4915112345678", "text": "x"}, token=OTHER_TOKEN)
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 61  # a part counts for its minute plus at most 0.6 s
        assert "3 per minute" in answer["error"]
        status, answer, headers = await api.send({"to": ["+4915112345678"] * 1 + ["+4915212345678", "+4915312345678", "+4915412345678"], "text": "x"}, token=OTHER_TOKEN)
        assert status == 429 and "split it" in answer["error"]
        assert len(api.outgoing()) == 3
        # Another client is not affected.
        status, _, _ = await api.send({"to": "+4915112345678", "text": "x"})
        assert status == 202

    run(scenario, tmp_path)


def test_unwritable_spool_gives_503_and_queues_nothing(tmp_path):
    async def scenario(api):
        outgoing = api.ctx.spool.path("outgoing")
        shutil.rmtree(outgoing)
        outgoing.write_text("not a directory")  # works also when the tests run as root
        try:
            status, answer, _ = await api.send({"to": ["+4915112345678", "+4917612345678"], "text": "x"})
            assert status == 503
            assert "spool cannot be written" in answer["error"]
            status, answer, _ = await api.request("GET", "/healthz", token=None)
            assert status == 503 and "not writable" in answer["reason"]
        finally:
            outgoing.unlink()
            outgoing.mkdir()
        status, _, _ = await api.send({"to": "+4915112345678", "text": "x"})
        assert status == 202

    run(scenario, tmp_path)


def test_concurrent_requests_are_all_durable(tmp_path):
    async def scenario(api):
        results = await asyncio.gather(*(
            api.send({"to": f"+49151000000{n:02d}", "text": f"n{n:02d}"}) for n in range(60)
        ))
        ids = [body["messages"][0]["id"] for status, body, _ in results if status == 202]
        assert len(ids) == 60
        assert sorted(ids) == sorted(api.outgoing())
        for status, body, _ in results:
            message = body["messages"][0]
            text = api.ctx.spool.verified(api.ctx.spool.read("outgoing", message["id"])).body.decode().strip()
            assert text == "n" + message["to"][-2:]
        assert api.ctx.spool.committer.batches < 60, "concurrent requests share group commits"

    run(scenario, tmp_path)


# --- reading ------------------------------------------------------------------------------------


def test_message_status_follows_the_spool(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.request("GET", "/api/v1/messages/nope")
        assert status == 404 and "POST /api/v1/messages" in answer["error"]
        status, answer, _ = await api.request("GET", "/api/v1/messages/..")
        assert status == 404

        _, body, _ = await api.send({"to": "+4915112345678", "text": "x" * 200})
        name = body["messages"][0]["id"]
        status, answer, _ = await api.request("GET", f"/api/v1/messages/{name}")
        assert status == 200
        assert set(answer) == {"id", "to", "status", "modem", "parts", "message_ids", "queued", "sent", "delivered", "fail_reason"}
        assert answer["status"] == "queued" and answer["to"] == "+4915112345678" and answer["parts"] == 2
        assert answer["queued"]

        spool = api.ctx.spool
        original = spool.read("outgoing", name)
        sent = build_sent(original, modem="gsm1", imsi="262011234567890",
                          sent=datetime.now().astimezone(), parts=2, message_ids=[5, 6])
        spool.finish(name, "sent", sent, src="outgoing")
        _, answer, _ = await api.request("GET", f"/api/v1/messages/{name}")
        assert (answer["status"], answer["modem"], answer["message_ids"], answer["parts"]) == ("sent", "gsm1", [5, 6], 2)
        assert answer["sent"]

        delivered = update_headers(sent, {"Status": "delivered 0 (received by the SME)", "Delivered": "2026-11-25T10:00:00+01:00"})
        spool.write_atomic("sent", name, delivered)
        _, answer, _ = await api.request("GET", f"/api/v1/messages/{name}")
        assert answer["status"] == "delivered" and answer["delivered"] == "2026-11-25T10:00:00+01:00"

        _, body, _ = await api.send({"to": "+4915112345678", "text": "late"})
        late = body["messages"][0]["id"]
        failed = build_failed(spool.read("outgoing", late), failed=datetime.now().astimezone(), reason="expired", attempts=0)
        spool.finish(late, "failed", failed, src="outgoing")
        _, answer, _ = await api.request("GET", f"/api/v1/messages/{late}")
        assert answer["status"] == "expired" and answer["fail_reason"] == "expired"

    run(scenario, tmp_path)


def test_the_name_of_a_dropped_multi_recipient_file_points_to_its_recipients_ids(tmp_path):
    async def scenario(api):
        spool = api.ctx.spool
        for n, number in enumerate(["+4915112345678", "+4917612345678"], start=1):
            # zabbix's through a door (sealed: a hand-written Client: would be nobody's)
            single = spool.seal(b"To: " + number.encode() + b"\nClient: zabbix\n\nhi\n")
            spool.write_atomic("sent", f"multi.{n}", build_sent(single, modem="gsm1", imsi=None,
                                                                sent=datetime.now().astimezone(), parts=1, message_ids=[n]))
        status, answer, _ = await api.request("GET", "/api/v1/messages/multi")
        assert status == 404 and "multi.1, multi.2" in answer["error"]
        status, answer, _ = await api.request("GET", "/api/v1/messages/multi.2")
        assert status == 200 and answer["to"] == "+4917612345678"

    run(scenario, tmp_path)


def test_message_status_prefers_the_daemon(tmp_path):
    async def scenario(api):
        api.ctx.statuses["abc"] = MessageStatus(id="abc", to="+491", status="sending", modem="gsm1", parts=1,
                                                message_ids=(), queued="t", sent=None, delivered=None, fail_reason=None)
        # Whose it is comes from its file (the file alone would say queued).
        api.ctx.spool.write_atomic("checked", "abc", api.ctx.spool.seal(b"To: +491\nClient: zabbix\n\nhi\n"))
        status, answer, _ = await api.request("GET", "/api/v1/messages/abc")
        assert status == 200 and answer["status"] == "sending"

    run(scenario, tmp_path)


def incoming(spool, name, *, received, text, sender="+4915112345678", parts=1, incomplete=False):
    data = build_incoming(sender=sender, sender_toa=0x91, smsc="+491710760000", sent=received - timedelta(seconds=2),
                          received=received, modem="gsm1", imsi="262011234567890", alphabet="ucs2", parts=parts,
                          incomplete=incomplete, text=text)
    spool.write_atomic("incoming", name, data)


def test_inbox_since_and_limit(tmp_path):
    async def scenario(api):
        base = datetime(2026, 11, 25, 10, 0, 0).astimezone()
        spool = api.ctx.spool
        incoming(spool, "gsm1-20261125-100000-aa", received=base, text="first 😀")
        incoming(spool, "gsm1-20261125-100100-bb", received=base + timedelta(minutes=1), text="second\nline", parts=2)
        incoming(spool, "gsm1-20261125-100200-cc", received=base + timedelta(minutes=2), text="third", incomplete=True)

        status, answer, _ = await api.request("GET", "/api/v1/inbox")
        assert status == 200
        assert [m["text"] for m in answer["messages"]] == ["first 😀", "second\nline", "third"]
        first = answer["messages"][0]
        assert first["id"] == "gsm1-20261125-100000-aa"
        assert first["from"] == "+4915112345678" and first["modem"] == "gsm1" and first["parts"] == 1
        assert first["received"] == base.isoformat(timespec="seconds")
        assert first["sent"] == (base - timedelta(seconds=2)).isoformat(timespec="seconds")
        assert answer["messages"][2]["incomplete"] is True

        since = (base + timedelta(minutes=1)).isoformat()
        status, answer, _ = await api.request("GET", f"/api/v1/inbox?since={since.replace('+', '%2B')}")
        assert [m["text"] for m in answer["messages"]] == ["second\nline", "third"]
        # An offset's + that was not URL-encoded arrives as a space; Unix seconds work too.
        status, answer, _ = await api.request("GET", f"/api/v1/inbox?since={since}")
        assert [m["text"] for m in answer["messages"]] == ["second\nline", "third"]
        status, answer, _ = await api.request("GET", f"/api/v1/inbox?since={int((base + timedelta(minutes=2)).timestamp())}")
        assert [m["text"] for m in answer["messages"]] == ["third"]
        status, answer, _ = await api.request("GET", "/api/v1/inbox?limit=1")
        assert [m["text"] for m in answer["messages"]] == ["first 😀"]

        for query in ("since=yesterday", "limit=0", "limit=abc", "limit=5000"):
            status, answer, _ = await api.request("GET", f"/api/v1/inbox?{query}")
            assert status == 400 and answer["error"]

    run(scenario, tmp_path)


def test_a_time_at_the_end_of_the_calendar_is_refused_not_a_500(tmp_path):
    # A naive 0001-01-01 in the local zone is year 0 in UTC: the inbox answered 500 to the
    # query, and one incoming/ file with such a Received: broke every inbox query.
    async def scenario(api):
        spool = api.ctx.spool
        incoming(spool, "gsm1-20261125-100000-aa", received=datetime(2026, 11, 25, 10, 0).astimezone(), text="good")
        spool.write_atomic("incoming", "gsm1-odd", b"From: +4915112345678\nReceived: 0001-01-01T00:00:00\n\nodd")
        status, answer, _ = await api.request("GET", "/api/v1/inbox?since=0001-01-01T00:00:00")
        assert status == 400 and "since=" in answer["error"]
        status, answer, _ = await api.request("GET", "/api/v1/inbox?since=2026-01-01T00:00:00Z")
        assert status == 200 and [m["text"] for m in answer["messages"]] == ["good"]

    run(scenario, tmp_path)


def test_modems_is_the_status_snapshot(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.request("GET", "/api/v1/modems")
        assert status == 200
        assert [m["name"] for m in answer["modems"]] == ["gsm1", "gsm2"]
        assert "queue" in answer and "updated" in answer

    run(scenario, tmp_path)


# --- monitoring ---------------------------------------------------------------------------------


def test_healthz_needs_a_ready_modem(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.request("GET", "/healthz", token=None)
        assert status == 200 and answer["status"] == "ok"
        api.ctx.modem_states["gsm1"] = "locked"
        status, answer, _ = await api.request("GET", "/healthz", token=None)
        assert status == 503
        assert "no modem is ready" in answer["reason"] and "gsm1: locked" in answer["reason"]

    run(scenario, tmp_path)


def test_metrics_exposition(tmp_path):
    async def scenario(api):
        await api.send({"to": "+4915112345678", "text": "x"})
        status, text, headers = await api.request("GET", "/metrics", token=None)
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain")
        for series in ('gsmgw_modem_up{modem="gsm1"}', 'gsmgw_modem_signal_dbm{modem="gsm1"}',
                       'gsmgw_messages_sent_total{modem="gsm1"}', 'gsmgw_messages_received_total{modem="gsm1"}',
                       "gsmgw_messages_failed_total", 'gsmgw_queue_depth{dir="outgoing"} 1.0',
                       'gsmgw_http_requests_total{code="202",route="/api/v1/messages"} 1.0',
                       "gsmgw_webhooks_pending 0.0"):
            assert series in text, series

    run(scenario, tmp_path)


def test_metrics_false_turns_off_metrics_and_healthz(tmp_path):
    async def scenario(api):
        for path in ("/metrics", "/healthz"):
            status, answer, _ = await api.request("GET", path, token=None)
            assert status == 404 and answer["error"]

    run(scenario, tmp_path, metrics=False)


def test_unknown_routes_and_methods_answer_json(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.request("GET", "/api/v2/messages")
        assert status == 404 and "/api/v1/" in answer["error"]
        status, answer, _ = await api.request("DELETE", "/api/v1/messages")
        assert status == 405 and "POST" in answer["error"]

    run(scenario, tmp_path)


def test_port_in_use_is_a_clear_error(tmp_path):
    async def scenario():
        ctx = Context(write_config(tmp_path))
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", ctx.config.http.listen_port))
            blocker.listen()
            with pytest.raises(HttpStartError, match="cannot listen on 127.0.0.1"):
                await start(ctx)

    asyncio.run(scenario())


def test_a_config_reload_applies_to_the_next_request_and_keeps_limits(tmp_path):
    async def scenario(api):
        for _ in range(3):
            assert (await api.send({"to": "+4915112345678", "text": "x"}, token=OTHER_TOKEN))[0] == 202
        config_path = tmp_path / "gsmgw.yaml"
        config_path.write_text(config_path.read_text().replace('allow: ["+4915*"]', 'allow: ["+4917*"]')
                               .replace("oncall: [", "night: [\"+4930123456\"]\n  oncall: ["))
        api.ctx.config = load_config(config_path)  # what the daemon does on SIGHUP
        status, answer, _ = await api.send({"to": "+4917612345678", "text": "x"}, token=OTHER_TOKEN)
        assert status == 429, "limits survive a reload"
        status, answer, _ = await api.send({"to": "group:night", "text": "x"})
        assert status == 202 and answer["messages"][0]["to"] == "+4930123456"
        status, answer, _ = await api.send({"to": "+4915112345678", "text": "x"}, token=OTHER_TOKEN)
        assert status == 403, "the new allow rules apply"

    run(scenario, tmp_path)


def test_received_webhook_of_a_file_written_just_before_a_crash_is_sent_after_restart(tmp_path):
    from test_webhooks import Receiver

    async def scenario():
        async with Receiver() as hook:
            config = write_config(tmp_path, extra=f"webhooks:\n  received: {hook.url}\n  secret: s3\n")
            ctx = Context(config)
            server = await start(ctx)   # first start: the cursor begins now
            await server.close()
            now = datetime.now().astimezone()
            for name, moment in (("gsm1-old", now - timedelta(hours=1)), ("gsm1-a", now), ("gsm1-b", now + timedelta(seconds=20))):
                incoming(ctx.spool, name, received=moment, text=f"text of {name}")
                os.utime(ctx.spool.path("incoming", name), (moment.timestamp(), moment.timestamp()))
            server = await start(Context(config))  # the restart after the crash
            try:
                first, second = json.loads(await hook.next()), json.loads(await hook.next())
                assert (first["id"], first["text"]) == ("gsm1-a", "text of gsm1-a")
                assert second["id"] == "gsm1-b"
                assert [headers["X-Gsmgw-Delivery"] for _, headers, _ in hook.requests] == ["received-gsm1-a", "received-gsm1-b"]
                await asyncio.sleep(0.3)
                assert len(hook.requests) == 2, "files from before the cursor are not announced"
            finally:
                await server.close()
            server = await start(Context(config))
            try:
                # Only the newest file is inside the cursor's overlap; it keeps its delivery id.
                await hook.next()
                await asyncio.sleep(0.3)
                assert [headers["X-Gsmgw-Delivery"] for _, headers, _ in hook.requests[2:]] == ["received-gsm1-b"]
            finally:
                await server.close()

    asyncio.run(scenario())


def test_report_written_just_before_a_crash_reaches_the_callback_after_restart(tmp_path):
    from gsmgw.spool.format import build_report
    from gsmgw.webhooks import sign
    from test_webhooks import Receiver

    async def scenario():
        async with Receiver() as callback:
            config = write_config(tmp_path)
            ctx = Context(config)
            server = await start(ctx)
            async with aiohttp.ClientSession() as session:
                async with session.post(server.url + "/api/v1/messages", headers={"Authorization": f"Bearer {TOKEN}"},
                                        json={"to": "+4915112345678", "text": "x", "callback": callback.url}) as response:
                    name = (await response.json())["messages"][0]["id"]
            await server.close()
            # What the daemon did before it was killed: sent, and the report written, unannounced.
            now = datetime.now().astimezone()
            sent = build_sent(ctx.spool.read("outgoing", name), modem="gsm1", imsi=None, sent=now, parts=1, message_ids=[9])
            sent = update_headers(sent, {"Status": "delivered 0 (received by the SME)", "Delivered": now.isoformat(timespec="seconds")})
            ctx.spool.finish(name, "sent", sent, src="outgoing")
            ctx.spool.write_atomic("report", "gsm1-20261125-120000-rr", build_report(
                recipient="+4915112345678", modem="gsm1", message_id=9, sent_file=name, status=0, discharge=now))

            server = await start(Context(config))
            try:
                raw = await callback.next()
                body = json.loads(raw)
                assert body == {"id": name, "to": "+4915112345678", "status": "delivered",
                                "delivered": now.isoformat(timespec="seconds"), "message_ids": [9]}
                headers = callback.requests[0][1]
                assert headers["X-Gsmgw-Signature"] == sign(headers["X-Gsmgw-Timestamp"], raw, WEBHOOK_SECRET)
            finally:
                await server.close()

    asyncio.run(scenario())


def test_a_report_that_matched_no_message_is_not_announced_after_a_restart_either(tmp_path):
    """Live, a report that matches no sent message gets its report/ file but no event; the
    restart's catch-up announced it to the report webhook with the report file's name as id."""
    from gsmgw.spool.format import build_report
    from test_webhooks import Receiver

    async def scenario():
        async with Receiver() as hook:
            config = write_config(tmp_path, extra=f"webhooks:\n  report: {hook.url}\n  secret: s3\n")
            server = await start(Context(config))  # the cursor begins now
            await server.close()
            ctx = Context(config)
            now = datetime.now().astimezone()
            ctx.spool.write_atomic("report", "gsm1-20261125-120000-aa", build_report(
                recipient="+4915112345678", modem="gsm1", message_id=9, sent_file=None, status=0, discharge=now))
            server = await start(ctx)
            try:
                await asyncio.sleep(0.5)
                assert hook.requests == []
            finally:
                await server.close()

    asyncio.run(scenario())


def test_alertmanager_routes_are_served_when_configured(tmp_path):
    extra = "alertmanager:\n  receivers:\n    oncall:\n      to: [\"group:oncall\"]\n      window: 2 min\n      max_per_hour: 10\n"

    async def scenario(api):
        payload = {"version": "4", "status": "firing", "receiver": "oncall", "groupKey": "{}:{alertname=\"X\"}",
                   "truncatedAlerts": 0, "groupLabels": {"alertname": "X"}, "commonLabels": {"alertname": "X"},
                   "commonAnnotations": {}, "externalURL": "http://am", "alerts": [
                       {"status": "firing", "labels": {"alertname": "X"}, "annotations": {"summary": "disk full"},
                        "startsAt": "2026-11-25T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc"}]}
        status, answer, _ = await api.request("POST", "/api/v1/alertmanager/oncall", json_body=payload)
        assert status == 200, answer
        assert len(api.outgoing()) == 1  # one SMS per notification, to the group's members in one file
        status, _, _ = await api.request("POST", "/api/v1/alertmanager/oncall", json_body=payload, token="bad")
        assert status == 401

    run(scenario, tmp_path, extra=extra)


def test_an_oversized_body_gets_413_before_the_token_is_looked_at(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.request("POST", "/api/v1/messages", data=b"x" * (64 * 1024 + 1), token=None)
        assert status == 413 and "64 KiB" in answer["error"]
        status, answer, _ = await api.request("POST", "/api/v1/messages", data=b"x" * (64 * 1024), token=None)
        assert status == 401

    run(scenario, tmp_path)


def test_webhooks_run_without_the_http_server_and_are_not_started_twice(tmp_path):
    from gsmgw import webhooks
    from gsmgw.events import MessageReceived
    from test_webhooks import Receiver

    async def scenario():
        async with Receiver() as hook:
            ctx = Context(write_config(tmp_path, extra=f"webhooks:\n  received: {hook.url}\n  secret: wh-shared-0123456789\n"))
            ctx.webhooks = await webhooks.start(ctx)   # what a daemon without `http:` would do
            try:
                event = MessageReceived(id="gsm1-x", path=str(ctx.spool.path("incoming", "gsm1-x")), sender="+4915112345678",
                                        text="hi", modem="gsm1", sent=None, received="2026-11-25T10:00:00+00:00",
                                        parts=1, incomplete=False)
                ctx.bus.publish(event)
                body = await hook.next()
                assert json.loads(body)["id"] == "gsm1-x"
                headers = hook.requests[0][1]
                assert headers["X-Gsmgw-Signature"] == webhooks.sign(headers["X-Gsmgw-Timestamp"], body, "wh-shared-0123456789")
                server = await start(ctx)
                try:
                    assert server.webhooks is ctx.webhooks
                    ctx.bus.publish(event)
                    await hook.next()
                    await asyncio.sleep(0.2)
                    assert len(hook.requests) == 2, "one subscriber, not two"
                finally:
                    await server.close()
            finally:
                await ctx.webhooks.close()

    asyncio.run(scenario())


def test_the_answer_names_the_national_tables_that_carry_the_text(tmp_path):
    """defaults.national_languages: a 204-character Hindi text takes 2 parts, not 4 (and max_parts 3 allows it)."""
    hindi = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6

    async def scenario(api):
        status, body, _ = await api.send({"to": "+4915112345678", "text": hindi, "max_parts": 3})
        assert status == 202, body
        [message] = body["messages"]
        assert (message["parts"], message["alphabet"]) == (2, "gsm7")
        assert message["national"] == {"locking": "hi", "single": "hi"}
        status, body, _ = await api.send({"to": "+4915112345678", "text": "short"})
        assert "national" not in body["messages"][0]

    run(scenario, tmp_path, extra="defaults: {national_languages: [hi]}\n")


def test_a_callback_must_name_a_host_the_client_may_call_back(tmp_path):
    async def scenario(api):
        for token, url, words in (
            # `limited` has no callback_hosts: callbacks are off for it.
            (OTHER_TOKEN, "https://app.example/dlr", "(callback_hosts: none)"),
            (TOKEN, "http://attacker.example/x", "add it to clients[].callback_hosts of client 'zabbix'"),
            (TOKEN, "http://app.example.evil.example/x", "callback_hosts"),
            (TOKEN, "http://169.254.169.254/latest/meta-data/", "callback_hosts"),
        ):
            status, answer, _ = await api.send({"to": "+4915112345678", "text": "x", "callback": url}, token=token)
            assert status == 400 and words in answer["error"], answer
        assert api.outgoing() == []
        status, _, _ = await api.send({"to": "+4915112345678", "text": "x", "callback": "https://APP.example./dlr"})
        assert status == 202

    run(scenario, tmp_path)


def test_a_listed_address_that_is_not_public_needs_callback_private_addresses(tmp_path):
    async def scenario(api):
        status, answer, _ = await api.send({"to": "+4915112345678", "text": "x",
                                            "callback": "http://169.254.169.254/latest/meta-data/"})
        assert status == 400, answer
        assert "the cloud metadata service" in answer["error"]
        assert "clients[].callback_private_addresses" in answer["error"]

    async def main():
        path = write_config(tmp_path)
        text = path.read_text().replace('callback_hosts: ["app.example", "127.0.0.1"]',
                                        'callback_hosts: ["169.254.169.254"]')
        path.write_text(text.replace("callback_private_addresses: true", "callback_private_addresses: false"))
        ctx = Context(path)
        server = await start(ctx)
        try:
            async with aiohttp.ClientSession() as session:
                await scenario(Api(ctx, server, session))
        finally:
            await server.close()

    asyncio.run(main())


def test_max_parts_is_capped_and_limits_count_parts(tmp_path):
    # Regression (issue 11): "max_parts" up to 255 was accepted, and limits counted messages.
    async def scenario(api):
        status, answer, _ = await api.send({"to": "+4915112345678", "text": "x" * 153 * 7, "max_parts": 255})
        assert status == 400 and "at most 6" in answer["error"]
        status, _, _ = await api.send({"to": "+4915112345678", "text": "x" * 300}, token=OTHER_TOKEN)
        assert status == 202  # 2 parts of the 3 per minute
        status, answer, _ = await api.send({"to": "+4915112345678", "text": "x" * 300}, token=OTHER_TOKEN)
        assert status == 429 and "3 per minute" in answer["error"]
        assert len(api.outgoing()) == 1

    run(scenario, tmp_path)
