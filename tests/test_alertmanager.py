"""Alertmanager webhook receiver: real v4 payloads in, the right spool files out.

The payloads follow Alertmanager's documented webhook body, version 4
(https://prometheus.io/docs/alerting/latest/configuration/#webhook_config), with
the groupKey, fingerprint and generatorURL shapes Alertmanager 0.27 produces
(notify/webhook/webhook.go; groupKey is "<route path>:<group labels>").
Time is injected: the relay takes `now`, the service a clock and a sleep.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace


import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gsmgw.clients import WINDOW_BUCKETS
from gsmgw.http.alertmanager import (
    ACK_LOOKBACK_S,
    MAX_ALERTS_KEPT,
    AlertRelay,
    PayloadError,
    add_routes,
    format_notification,
    parse_notification,
)
from gsmgw.sms.split import count_parts
from gsmgw.spool.format import read_spool_file
from gsmgw.spool.store import Spool
from helpers import async_test

ONCALL = ("+4915112345678", "+4917612345678")
TOKEN = "am-secret-token"


def alert(i: int, *, status: str = "firing", job: str = "api") -> dict:
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "job": job, "instance": f"api-{i:02d}:9100",
                   "severity": "page"},
        "annotations": {"summary": "p99 over 2s",
                        "description": f"p99 latency of api-{i:02d} is 2.31s (threshold 2s)"},
        "startsAt": "2026-11-24T10:15:03.512Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-24T10:45:03.512Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=histogram_quantile%280.99%29+%3E+2&g0.tab=1",
        "fingerprint": f"{0x5f3a9c0d12e4b700 + i:016x}",
    }


def payload(n: int = 30, *, status: str = "firing", job: str = "api", truncated: int = 0) -> dict:
    """A grouped notification: n alerts of one group (route group_by: [alertname, job])."""
    return {
        "receiver": "sms-oncall",
        "status": status,
        "alerts": [alert(i, status=status, job=job) for i in range(n - truncated)],
        "groupLabels": {"alertname": "HighLatency", "job": job},
        "commonLabels": {"alertname": "HighLatency", "job": job, "severity": "page"},
        "commonAnnotations": {"summary": "p99 over 2s"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity="page"}}:{{alertname="HighLatency", job="{job}"}}',
        "truncatedAlerts": truncated,
    }


# --- parsing and formatting ----------------------------------------------------------------


def test_grouped_payload_reads_as_one_line():
    notification = parse_notification(payload(30))
    assert format_notification(notification, 6) == "[FIRING:30] HighLatency job=api: p99 over 2s (+29 more)"


def test_truncated_alerts_count_in_the_total():
    notification = parse_notification(payload(30, truncated=25))
    assert len(notification.alerts) == 5
    assert format_notification(notification, 6) == "[FIRING:30] HighLatency job=api: p99 over 2s (+29 more)"


def test_resolved_single_alert():
    text = format_notification(parse_notification(payload(1, status="resolved")), 6)
    assert text == "[RESOLVED] HighLatency job=api: p99 over 2s"


def test_a_long_summary_is_cut_to_max_parts_and_keeps_the_count():
    body = payload(3)
    for a in body["alerts"]:
        a["annotations"]["summary"] = "latency " * 200
    text = format_notification(parse_notification(body), 1)
    assert count_parts(text).parts == 1
    assert text.startswith("[FIRING:3] HighLatency job=api: latency")
    assert text.endswith("... (+2 more)")


@pytest.mark.parametrize(
    "body, reason",
    [
        ([], "JSON object"),
        ({"status": "firing", "alerts": [alert(0)]}, "groupKey"),
        ({**payload(1), "status": "burning"}, "status"),
        ({**payload(1), "alerts": []}, "non-empty"),
        ({**payload(1), "alerts": [{"labels": {}}]}, "labels"),
        ({**payload(1), "version": "3"}, "version"),
        ({"text": "hello", "channel": "#ops"}, "status"),
    ],
)
def test_not_alertmanager_json_is_refused_with_the_reason(body, reason):
    with pytest.raises(PayloadError, match=reason):
        parse_notification(body)


# --- the relay: windows, duplicates, limits ------------------------------------------------


def relay(window=120.0, max_per_hour=10, max_parts=6) -> AlertRelay:
    return AlertRelay("oncall", window=window, max_per_hour=max_per_hour, max_parts=max_parts)


def test_first_notification_goes_at_once_later_ones_merge_at_window_end():
    r = relay()
    first = r.receive(parse_notification(payload(30)), ONCALL, now=0.0)
    assert first.action == "sent" and first.flush_at == 120.0
    assert [o.to for o in first.outgoing] == [ONCALL]

    second = r.receive(parse_notification(payload(2, job="db")), ONCALL, now=30.0)
    third = r.receive(parse_notification(payload(1, job="web")), ONCALL, now=60.0)
    assert second.action == third.action == "merged"
    assert second.outgoing == third.outgoing == []

    flushed = r.flush(now=120.0)
    assert len(flushed) == 1 and flushed[0].kind == "merged" and flushed[0].to == ONCALL
    assert flushed[0].text == (
        "[FIRING:2] HighLatency job=db: p99 over 2s (+1 more)\n[FIRING:1] HighLatency job=web: p99 over 2s"
    )
    # The window is over: the next notification goes out at once again.
    assert r.receive(parse_notification(payload(1, job="cache")), ONCALL, now=130.0).action == "sent"


def test_same_group_status_and_fingerprints_inside_the_window_sends_nothing():
    r = relay()
    assert r.receive(parse_notification(payload(30)), ONCALL, now=0.0).action == "sent"
    again = r.receive(parse_notification(payload(30)), ONCALL, now=60.0)
    assert again.action == "duplicate" and again.outgoing == []
    assert r.flush(now=120.0) == []
    # One more alert in the group changes the fingerprints: that is news.
    assert r.receive(parse_notification(payload(31)), ONCALL, now=121.0).action == "sent"


def test_resolved_is_sent_once():
    r = relay(window=60.0)
    assert r.receive(parse_notification(payload(1)), ONCALL, now=0.0).action == "sent"
    r.flush(now=60.0)
    resolved = r.receive(parse_notification(payload(1, status="resolved")), ONCALL, now=100.0)
    assert resolved.action == "sent"
    assert resolved.outgoing[0].text.startswith("[RESOLVED] HighLatency job=api")
    r.flush(now=160.0)
    # A second Alertmanager of an HA pair sends the same resolved notification later.
    assert r.receive(parse_notification(payload(1, status="resolved")), ONCALL, now=400.0).action == "duplicate"


def test_a_storm_stays_within_max_per_hour_and_ends_with_one_summary():
    r = relay(window=60.0, max_per_hour=3)
    sent_texts = []
    summaries = []
    now = 0.0
    for group in range(12):  # 12 different groups, each at a window start
        outcome = r.receive(parse_notification(payload(1, job=f"svc{group}")), ONCALL[:1], now=now)
        sent_texts += [o.text for o in outcome.outgoing if o.kind != "summary"]
        flushed = r.flush(now=now + 60.0)
        summaries += [o.text for o in flushed if o.kind == "summary"]
        sent_texts += [o.text for o in flushed if o.kind != "summary"]
        now += 61.0
    assert len(sent_texts) == 3
    # One summary per window in which something was held back: 9 windows.
    assert len(summaries) == 9
    assert summaries[0] == "[gsmgw] 1 alert notification held back (max 3/hour, receiver oncall): HighLatency job=svc3"
    # After an hour the recipient gets notifications again.
    later = r.receive(parse_notification(payload(1, job="late")), ONCALL[:1], now=3700.0)
    assert later.action == "sent" and later.outgoing[0].kind == "notification"


def test_held_back_groups_are_summed_up_in_one_sms_per_window():
    r = relay(window=60.0, max_per_hour=1)
    r.receive(parse_notification(payload(1, job="a")), ONCALL[:1], now=0.0)
    for i, job in enumerate(["b", "c", "d"]):
        r.receive(parse_notification(payload(1, job=job)), ONCALL[:1], now=10.0 + i)
    flushed = r.flush(now=60.0)
    assert [o.kind for o in flushed] == ["summary"]
    assert "3 alert notifications held back" in flushed[0].text
    assert "HighLatency job=b" in flushed[0].text and "HighLatency job=d" in flushed[0].text


def test_a_zero_window_sends_everything_at_once():
    r = relay(window=0.0)
    assert r.receive(parse_notification(payload(1, job="a")), ONCALL, now=0.0).action == "sent"
    assert r.receive(parse_notification(payload(1, job="b")), ONCALL, now=0.0).action == "sent"


# --- over HTTP, into the spool -------------------------------------------------------------


class ManualClock:
    """A clock the test moves; sleepers wake when it passes their time."""

    def __init__(self):
        self.now = 1000.0
        self._waiters: list[tuple[float, asyncio.Future]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.now + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, future in list(self._waiters):
            if due <= self.now and not future.done():
                future.set_result(None)
                self._waiters.remove((due, future))


def gateway_config(tmp_path, *, allow=("+49*",), limits=None):
    receiver = SimpleNamespace(to=("group:oncall",), window=120.0, max_per_hour=10, max_parts=2)
    return SimpleNamespace(
        spool=tmp_path / "spool",
        default_country="49",
        defaults=SimpleNamespace(max_parts=6),
        clients=[{"name": "alertmanager", "token": TOKEN, "allow": list(allow), "limits": limits or {}}],
        groups={"oncall": list(ONCALL)},
        alertmanager=SimpleNamespace(receivers={"oncall": receiver}),
    )


@pytest.fixture
def spool(tmp_path):
    store = Spool(tmp_path / "spool")
    store.ensure_dirs()
    return store


async def start(config, spool, clock=None):
    app = web.Application()
    ctx = SimpleNamespace(config=config, spool=spool)
    service = add_routes(app, ctx)
    if clock is not None:
        service.clock, service.sleep = clock, clock.sleep
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, service


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def outgoing_files(spool):
    return [read_spool_file(spool.read("outgoing", name)) for name in spool.list("outgoing")]


@async_test
async def test_webhook_turns_a_grouped_notification_into_one_spool_file(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path), spool)
    try:
        response = await client.post("/api/v1/alertmanager/oncall", json=payload(30), headers=auth())
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "sent" and len(body["queued"]) == 1
        (queued,) = outgoing_files(spool)
        assert queued.headers.get("To") == ", ".join(ONCALL)
        assert queued.headers.get("Max_parts") == "2"
        assert queued.headers.get("Expires")
        assert queued.headers.get("Priority") == "high"  # an alert never waits behind a campaign
        assert queued.body.decode().strip() == "[FIRING:30] HighLatency job=api: p99 over 2s (+29 more)"
        # The same notification again (Alertmanager's group_interval resend): nothing new.
        again = await client.post("/api/v1/alertmanager/oncall", json=payload(30), headers=auth())
        assert (await again.json())["status"] == "duplicate"
        assert len(spool.list("outgoing")) == 1

        recent = await client.get("/api/v1/alertmanager/oncall/recent", headers=auth())
        entries = (await recent.json())["notifications"]
        assert [e["action"] for e in entries] == ["sent", "duplicate"]
        assert len(entries[0]["alerts"]) == MAX_ALERTS_KEPT and entries[0]["alerts_total"] == 30
    finally:
        await client.close()


@async_test
async def test_merged_notifications_go_out_when_the_window_ends(tmp_path, spool):
    clock = ManualClock()
    client, service = await start(gateway_config(tmp_path), spool, clock)
    try:
        await client.post("/api/v1/alertmanager/oncall", json=payload(3), headers=auth())
        await client.post("/api/v1/alertmanager/oncall", json=payload(2, job="db"), headers=auth())
        await client.post("/api/v1/alertmanager/oncall", json=payload(1, job="web"), headers=auth())
        assert len(spool.list("outgoing")) == 1
        timer = service.receivers["oncall"].timer
        clock.advance(119.0)
        await asyncio.sleep(0)
        assert not timer.done()
        clock.advance(1.0)
        await asyncio.wait_for(timer, timeout=5)
        files = outgoing_files(spool)
        assert len(files) == 2
        merged = [f for f in files if b"job=db" in f.body][0]
        assert merged.body.decode().strip() == (
            "[FIRING:2] HighLatency job=db: p99 over 2s (+1 more)\n[FIRING:1] HighLatency job=web: p99 over 2s"
        )
        recent = service.recent("oncall")["notifications"]
        assert [e["action"] for e in recent] == ["sent", "sent merged", "sent merged"]
    finally:
        await client.close()


@async_test
async def test_pending_notifications_are_queued_at_shutdown(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path), spool)
    await client.post("/api/v1/alertmanager/oncall", json=payload(1), headers=auth())
    await client.post("/api/v1/alertmanager/oncall", json=payload(1, job="db"), headers=auth())
    assert len(spool.list("outgoing")) == 1
    await client.close()
    assert len(spool.list("outgoing")) == 2


@async_test
async def test_http_errors(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path), spool)
    try:
        url = "/api/v1/alertmanager/oncall"
        assert (await client.post(url, json=payload(1))).status == 401
        assert (await client.post(url, json=payload(1), headers=auth("wrong"))).status == 401
        unknown = await client.post("/api/v1/alertmanager/nobody", json=payload(1), headers=auth())
        assert unknown.status == 404 and "oncall" in (await unknown.json())["error"]
        bad = await client.post(url, data=b"{not json", headers=auth())
        assert bad.status == 400
        slack = await client.post(url, json={"text": "deploy done"}, headers=auth())
        assert slack.status == 400 and "Alertmanager" in (await slack.json())["error"]
        assert (await client.get("/api/v1/alertmanager/nobody/recent", headers=auth())).status == 404
        assert spool.list("outgoing") == []
    finally:
        await client.close()


@async_test
async def test_deeply_nested_json_is_a_400_not_a_500(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path), spool)
    try:
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            response = await client.post("/api/v1/alertmanager/oncall", data=body, headers=auth())
            assert response.status == 400
            assert "nested too deeply" in (await response.json())["error"]
        assert spool.list("outgoing") == []
    finally:
        await client.close()


@async_test
async def test_destinations_are_checked_against_the_clients_rules(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path, allow=("+4915*",)), spool)
    try:
        response = await client.post("/api/v1/alertmanager/oncall", json=payload(1), headers=auth())
        assert response.status == 200
        assert (await response.json())["refused"] == ["+4917612345678"]
        (queued,) = outgoing_files(spool)
        assert queued.headers.get("To") == "+4915112345678"
    finally:
        await client.close()
    client, _ = await start(gateway_config(tmp_path, allow=("+33*",)), spool)
    try:
        response = await client.post("/api/v1/alertmanager/oncall", json=payload(1, job="x"), headers=auth())
        assert response.status == 403
    finally:
        await client.close()


def test_ack_quiets_the_group_until_it_resolves_and_tells_the_others():
    r = relay(window=60.0)
    r.receive(parse_notification(payload(3)), ONCALL, now=0.0)
    groups, notices = r.acknowledge(ONCALL[0], now=10.0)
    assert groups == ["HighLatency job=api"]
    assert [(n.to, n.text) for n in notices] == [((ONCALL[1],), f"[ACK] HighLatency job=api by {ONCALL[0]}")]
    r.flush(now=60.0)
    # Alertmanager's repeat_interval resends the still-firing group: quiet.
    assert r.receive(parse_notification(payload(4)), ONCALL, now=4 * 3600.0).action == "acknowledged"
    resolved = r.receive(parse_notification(payload(4, status="resolved")), ONCALL, now=5 * 3600.0)
    assert resolved.action == "sent" and resolved.outgoing[0].text.startswith("[RESOLVED]")
    # The next incident of the same group is news again.
    r.flush(now=5 * 3600.0 + 60)
    assert r.receive(parse_notification(payload(2)), ONCALL, now=6 * 3600.0).action == "sent"


def test_ack_acknowledges_only_the_groups_sent_to_that_number():
    """Two recipients whose merged SMS read alike ("<first group>\n(+1 more groups)") but carry
    different groups: each one's ack quiets its own groups, never the other's."""
    a, b = ONCALL
    r = relay(window=60.0, max_parts=1)

    def long(job):
        body = payload(1, job=job)
        body["alerts"][0]["annotations"]["summary"] = "latency far above the objective " * 8
        return parse_notification(body)

    r.receive(long("first"), ONCALL, now=0.0)
    r.receive(long("both"), ONCALL, now=1.0)
    r.receive(long("only-a"), (a,), now=2.0)
    r.receive(long("only-b"), (b,), now=3.0)
    flushed = r.flush(now=60.0)
    assert {o.text for o in flushed} == {flushed[0].text} and flushed[0].text.endswith("(+1 more groups)")
    assert sorted(o.to for o in flushed) == [(a,), (b,)], "one SMS per recipient: they carry different groups"
    groups, notices = r.acknowledge(b, now=61.0)
    assert groups == ["HighLatency job=both", "HighLatency job=only-b"]
    assert [(n.to, n.text.split(" by ")[1]) for n in notices] == [((a,), b)]
    assert r.receive(long("only-a"), (a,), now=200.0).action != "acknowledged"


def test_ack_from_someone_who_got_nothing_acknowledges_nothing():
    r = relay()
    r.receive(parse_notification(payload(1)), ONCALL[:1], now=0.0)
    assert r.acknowledge("+4930123456", now=1.0) == ([], [])
    assert r.acknowledge(ONCALL[0], now=ACK_LOOKBACK_S + 1.0) == ([], [])


class FullDisk:
    """A spool whose disk is full until `space` is set: real files once it is."""

    def __init__(self, spool):
        self.spool, self.space = spool, False

    def submit_many(self, files):
        if not self.space:
            raise OSError(28, "No space left on device")
        return self.spool.submit_many(files)


@async_test
async def test_a_spool_error_gets_503_and_the_retry_is_not_a_duplicate(tmp_path, spool):
    disk = FullDisk(spool)
    client, _ = await start(gateway_config(tmp_path), disk)
    try:
        first = await client.post("/api/v1/alertmanager/oncall", json=payload(2), headers=auth())
        assert first.status == 503
        disk.space = True
        retry = await client.post("/api/v1/alertmanager/oncall", json=payload(2), headers=auth())
        assert retry.status == 200 and (await retry.json())["status"] == "sent"
        assert len(spool.list("outgoing")) == 1
    finally:
        await client.close()


@async_test
async def test_merged_sms_that_meet_a_full_disk_are_retried(tmp_path, spool):
    clock = ManualClock()
    disk = FullDisk(spool)
    disk.space = True
    client, service = await start(gateway_config(tmp_path), disk, clock)
    try:
        await client.post("/api/v1/alertmanager/oncall", json=payload(1), headers=auth())
        await client.post("/api/v1/alertmanager/oncall", json=payload(1, job="db"), headers=auth())
        disk.space = False
        timer = service.receivers["oncall"].timer
        clock.advance(120.0)
        await asyncio.wait_for(timer, timeout=5)
        assert len(spool.list("outgoing")) == 1
        retry = service.receivers["oncall"].retry
        disk.space = True
        clock.advance(30.0)
        await asyncio.wait_for(retry, timeout=5)
        assert len(spool.list("outgoing")) == 2
    finally:
        await client.close()


@async_test
async def test_through_the_gateways_http_server_with_a_real_config(tmp_path, spool):
    """The HTTP server (gsmgw.http.server) mounts the receiver from a config file."""
    from gsmgw.config import load_config
    from gsmgw.http.server import HttpServer

    token_file = tmp_path / "am.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config_file = tmp_path / "gsmgw.yaml"
    config_file.write_text(f"""
spool: {tmp_path / 'spool'}
state: {tmp_path / 'state'}
modems:
  - name: gsm1
    port: /dev/null
http:
  listen: 127.0.0.1:8025   # not bound here: TestServer picks its own port
clients:
  - name: alertmanager
    token_file: {token_file}
    allow: ["group:oncall"]
groups:
  oncall: ["{ONCALL[0]}", "{ONCALL[1]}"]
alertmanager:
  receivers:
    oncall: {{to: ["group:oncall"], window: 2 min, max_per_hour: 10, max_parts: 1}}
""")
    config_file.chmod(0o600)
    config = load_config(config_file)
    server = HttpServer(SimpleNamespace(config=config, spool=spool, status=lambda: {}))
    client = TestClient(TestServer(server.make_app(), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.post("/api/v1/alertmanager/oncall", json=payload(30), headers=auth())
        assert response.status == 200, await response.text()
        (queued,) = outgoing_files(spool)
        assert queued.headers.get("To") == ", ".join(ONCALL)
        assert queued.headers.get("Max_parts") == "1"
        assert queued.body.decode().strip() == "[FIRING:30] HighLatency job=api: p99 over 2s (+29 more)"
        recent = await client.get("/api/v1/alertmanager/oncall/recent", headers=auth())
        assert recent.status == 200
    finally:
        await client.close()


# --- the posting client's limits, and bounded memory -------------------------------------------


@async_test
async def test_the_clients_limits_count_parts_and_alertmanager_is_asked_to_retry(tmp_path, spool):
    # Each notification is one SMS part to two recipients: 2 parts. The client may send 3 a minute.
    clock = ManualClock()
    client, service = await start(gateway_config(tmp_path, limits={"per_minute": 3}), spool, clock)
    url = "/api/v1/alertmanager/oncall"
    try:
        assert (await client.post(url, json=payload(3), headers=auth())).status == 200
        over = await client.post(url, json=payload(2, job="db"), headers=auth())
        # A minute, plus at most one of the limiter's buckets (gsmgw.clients.WINDOW_BUCKETS).
        assert over.status == 503 and 60 <= int(over.headers["Retry-After"]) <= 61
        assert "over its limits (3 per minute)" in (await over.json())["error"]
        # A repeat costs nothing, so it is answered as always.
        assert (await (await client.post(url, json=payload(3), headers=auth())).json())["status"] == "duplicate"
        clock.advance(60.0 + 60.0 / WINDOW_BUCKETS)
        again = await client.post(url, json=payload(2, job="db"), headers=auth())
        assert again.status == 200 and (await again.json())["status"] == "merged"
        actions = [entry["action"] for entry in service.recent("oncall")["notifications"]]
        assert actions == ["sent", "over the client's limits, Alertmanager retries", "duplicate", "merged"]
    finally:
        await client.close()


@async_test
async def test_a_notification_larger_than_a_limit_gets_429(tmp_path, spool):
    client, _ = await start(gateway_config(tmp_path, limits={"per_hour": 1}), spool)
    try:
        response = await client.post("/api/v1/alertmanager/oncall", json=payload(1), headers=auth())
        assert response.status == 429
        assert "needs 2 SMS parts (2 recipients)" in (await response.json())["error"]
        assert spool.list("outgoing") == []
    finally:
        await client.close()


@async_test
async def test_a_spool_error_gives_the_parts_back(tmp_path, spool):
    disk = FullDisk(spool)
    client, _ = await start(gateway_config(tmp_path, limits={"per_minute": 2}), disk)
    try:
        assert (await client.post("/api/v1/alertmanager/oncall", json=payload(2), headers=auth())).status == 503
        disk.space = True
        retry = await client.post("/api/v1/alertmanager/oncall", json=payload(2), headers=auth())
        assert retry.status == 200 and (await retry.json())["status"] == "sent"
    finally:
        await client.close()


def big_payload(job: str, size: int) -> dict:
    body = payload(200, job=job)
    for item in body["alerts"]:
        item["annotations"]["summary"] = "x" * (size // 200)
        item["labels"]["pod"] = "y" * 200
    body["groupKey"] = "{}:" + job * 50
    return body


@async_test
async def test_memory_stays_bounded_whatever_the_payloads(spool):
    """Notifications of nearly 1 MiB, each of another group, merged inside one window: the
    receiver keeps a small fixed amount of each, not the payload."""
    import gc
    import json
    import tracemalloc

    from gsmgw.clients import Client, ClientRegistry
    from gsmgw.http.alertmanager import AlertmanagerService, ReceiverSetup

    poster = Client("am", token="t", allow=("+49*",))
    service = AlertmanagerService(
        [ReceiverSetup("oncall", ONCALL, window=3600.0, max_per_hour=10, max_parts=2)],
        spool=spool, registry=ClientRegistry([poster]), clock=lambda: 5000.0,
    )
    template = json.dumps(big_payload("JOB", 900_000))
    service.handle("oncall", poster, json.loads(template.replace("JOB", "first")))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(30):
            # Decoded per request, as the HTTP server does: every payload's strings are new.
            status, body = service.handle("oncall", poster, json.loads(template.replace("JOB", f"job{number:02d}")))
            assert (status, body["status"]) == (200, "merged")
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 3 * 1024 * 1024, f"{kept / 2**20:.1f} MiB kept for 30 notifications of 0.9 MiB"
    service.flush_all()


@async_test
async def test_a_window_holds_a_bounded_number_of_groups_and_counts_the_rest(spool, caplog, monkeypatch):
    from gsmgw.clients import Client, ClientRegistry
    from gsmgw.http import alertmanager

    monkeypatch.setattr(alertmanager, "MAX_PENDING", 3)
    poster = Client("am", token="t", allow=("+49*",))
    service = alertmanager.AlertmanagerService(
        [alertmanager.ReceiverSetup("oncall", ONCALL, window=3600.0, max_per_hour=10, max_parts=2)],
        spool=spool, registry=ClientRegistry([poster]), clock=lambda: 5000.0,
    )
    with caplog.at_level("WARNING", logger="gsmgw.alertmanager"):
        for job in ("first", "a", "b", "c", "d", "e"):
            assert service.handle("oncall", poster, payload(1, job=job))[1]["status"] in ("sent", "merged")
    assert service.receivers["oncall"].relay.pending == 3
    assert "more than 3 groups in one window; 'HighLatency job=a' is held back" in caplog.text
    # What no longer fitted into the window is counted in the summary, not dropped.
    flushed = service.receivers["oncall"].relay.flush(9000.0)
    (summary,) = [o for o in flushed if o.kind == "summary"]
    assert summary.text.startswith("[gsmgw] 2 alert notifications held back (max 10/hour or too many groups")
    assert "HighLatency job=a, HighLatency job=b" in summary.text
    service.flush_all()


def test_remembered_duplicates_are_capped_and_the_oldest_forgotten(monkeypatch):
    from gsmgw.http import alertmanager

    monkeypatch.setattr(alertmanager, "MAX_SEEN", 50)
    r = relay(window=0.0, max_per_hour=None)
    for number in range(53):
        r.receive(parse_notification(payload(1, job=f"j{number}", status="resolved")), ONCALL, now=float(number))
    assert len(r._seen) == 50
    notes = r.take_notes()
    assert len(notes) == 3 and "forgot the oldest" in notes[0] and "j0" in notes[0]
    assert r.take_notes() == []
    # The forgotten one is news again; the remembered ones are still duplicates.
    assert r.receive(parse_notification(payload(1, job="j0", status="resolved")), ONCALL, now=60.0).action == "sent"
    assert r.receive(parse_notification(payload(1, job="j52", status="resolved")), ONCALL, now=61.0).action == "duplicate"


def test_held_back_groups_keep_an_exact_count_and_a_bounded_list():
    from gsmgw.http.alertmanager import MAX_HELD_GROUPS, Held, format_summary

    held = Held()
    held.add(f"group{n}" for n in range(MAX_HELD_GROUPS + 20))
    held.add(["group0"])
    assert held.count == MAX_HELD_GROUPS + 21 and len(held.groups) == MAX_HELD_GROUPS and held.overflow
    text = format_summary("oncall", held, 10, 1)
    assert text.startswith(f"[gsmgw] {MAX_HELD_GROUPS + 21} alert notifications held back") and "more)" in text
    assert count_parts(text).parts == 1


def test_a_notification_keeps_a_bounded_part_of_its_payload():
    from gsmgw.http.alertmanager import MAX_TEXT

    notification = parse_notification(big_payload("api", 900_000))
    assert len(notification.alerts) == MAX_ALERTS_KEPT and notification.total == 200
    assert notification.alert_count == 200
    assert all(len(a.summary) <= MAX_TEXT for a in notification.alerts)
    assert len(notification.group_key) <= 256 and len(notification.fingerprints) == 64
    # Only the alerts that were not kept differ: still another notification, not a duplicate.
    other = big_payload("api", 900_000)
    other["alerts"][-1]["fingerprint"] = "ffffffffffffffff"
    assert parse_notification(other).dedup_key != notification.dedup_key
