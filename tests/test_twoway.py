"""Two-way SMS: allowed senders run allowlisted commands or acknowledge alerts; replies land in the spool."""

from __future__ import annotations

import asyncio
import dataclasses
from types import MappingProxyType, SimpleNamespace

import pytest

from gsmgw.clients import Client, ClientRegistry
from gsmgw.config import TwoWayConfig
from gsmgw.daemon.twoway import MAX_REPLIES_PER_HOUR, MAX_RUNS_PER_HOUR, TwoWay, format_reply
from gsmgw.events import MessageReceived
from gsmgw.http.alertmanager import AlertmanagerService, ReceiverSetup
from gsmgw.sms.address import TOA_ALPHANUMERIC, TOA_NATIONAL, TOA_UNKNOWN, address_kind
from gsmgw.sms.split import count_parts
from gsmgw.spool.format import read_spool_file
from gsmgw.spool.store import Spool
from helpers import async_test, stop_process

BOSS = "+4915112345678"
COLLEAGUE = "+4917612345678"
STRANGER = "+4930123456789"


def config(*, enabled=True, timeout=10.0, secret=None, **commands):
    commands = commands or {"uptime": ("/bin/echo", "up 3 days")}
    return SimpleNamespace(
        default_country="49",
        defaults=SimpleNamespace(max_parts=6),
        two_way=TwoWayConfig(enabled, (BOSS, COLLEAGUE), MappingProxyType(commands), timeout, secret),
    )


@pytest.fixture
def spool(tmp_path):
    store = Spool(tmp_path / "spool")
    store.ensure_dirs()
    return store


def sms(text, sender=BOSS, *, incomplete=False, toa=None, n=[0]):
    """A received SMS; its sender's TOA is what a network would use for it unless `toa` is given."""
    n[0] += 1
    return MessageReceived(id=f"gsm1-20261124-101503-{n[0]:04d}", path="/x", sender=sender, text=text,
                           modem="gsm1", sent=None, received="2026-11-24T10:15:05+01:00", parts=1,
                           incomplete=incomplete, sender_toa=address_kind(sender) if toa is None else toa)


def replies(spool):
    out = []
    for name in spool.list("outgoing"):
        parsed = read_spool_file(spool.read("outgoing", name))
        out.append((parsed.headers.get("To"), parsed.body.decode().rstrip("\n")))
    return out


@async_test
async def test_an_allowed_sender_runs_a_command_and_gets_its_output(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("Uptime"))
    assert replies(spool) == [(BOSS, "uptime: ok\nup 3 days")]


@async_test
async def test_the_sender_in_national_format_is_recognised(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("uptime", sender="015112345678", toa=TOA_NATIONAL))
    await twoway.handle(sms("uptime", sender="15112345678", toa=TOA_NATIONAL))  # without the trunk 0
    assert replies(spool) == [(BOSS, "uptime: ok\nup 3 days")] * 2


@async_test
async def test_an_alphanumeric_sender_that_reads_like_an_allowed_number_is_ignored(spool, caplog):
    # Anybody can send "015112345678" as an alphanumeric sender name: it is not that number.
    twoway = TwoWay(config(), spool)
    with caplog.at_level("INFO", logger="gsmgw.twoway"):
        await twoway.handle(sms("uptime", sender="015112345678", toa=TOA_ALPHANUMERIC))
        await twoway.handle(sms("ack", sender="4915112345678", toa=TOA_UNKNOWN))
    assert replies(spool) == []
    assert "its address is alphanumeric" in caplog.text and "its address is unknown" in caplog.text


@async_test
async def test_a_sender_of_unknown_type_is_not_trusted(spool):
    event = MessageReceived(id="x", path="/x", sender=BOSS, text="uptime", modem="gsm1", sent=None,
                            received="2026-11-24T10:15:05+01:00", parts=1, incomplete=False)
    assert event.sender_toa is None
    await TwoWay(config(), spool).handle(event)
    assert replies(spool) == []


@async_test
async def test_strangers_are_ignored_and_never_answered(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("uptime", sender=STRANGER))
    await twoway.handle(sms("uptime", sender="Vodafone"))
    assert replies(spool) == []


@async_test
async def test_off_by_default(spool):
    twoway = TwoWay(config(enabled=False), spool)
    await twoway.handle(sms("uptime"))
    assert replies(spool) == []
    assert TwoWayConfig().enabled is False


@async_test
async def test_the_sender_cannot_add_arguments_and_nothing_goes_through_a_shell(spool):
    twoway = TwoWay(config(whoami=("/bin/echo", "$(id)", ";", "reboot")), spool)
    await twoway.handle(sms("whoami; reboot"))
    await twoway.handle(sms("whoami"))
    assert replies(spool) == [
        (BOSS, "unknown command 'whoami;'. commands: ack, whoami"),
        (BOSS, "whoami: ok\n$(id) ; reboot"),
    ]
    await twoway.handle(sms("whoami now"))
    assert replies(spool)[-1] == (BOSS, 'whoami: takes no arguments; send just "whoami"')


@async_test
async def test_exit_status_and_output_of_a_failing_command(spool):
    twoway = TwoWay(config(backup=("/bin/sh", "-c", "echo disk full >&2; exit 3")), spool)
    await twoway.handle(sms("backup"))
    assert replies(spool) == [(BOSS, "backup: failed (exit 3)\ndisk full")]


@async_test
async def test_a_command_that_hangs_is_killed_with_its_children(spool, tmp_path):
    marker = tmp_path / "child-survived"
    script = f"(sleep 2; touch {marker}) & sleep 30"
    twoway = TwoWay(config(timeout=0.5, hang=("/bin/sh", "-c", script)), spool)
    await twoway.handle(sms("hang"))
    assert replies(spool) == [(BOSS, "hang: timed out after 0.5 s, stopped")]
    # A negative check needs a wait: the child's own timer would have written the marker by now.
    await asyncio.sleep(2.5)
    assert not marker.exists()


@async_test
async def test_long_output_is_cut_to_the_reply_parts(spool):
    twoway = TwoWay(config(log=("/usr/bin/seq", "1", "5000")), spool)
    await twoway.handle(sms("log"))
    ((to, text),) = replies(spool)
    assert count_parts(text).parts <= 3
    assert text.startswith("log: ok\n1\n2\n3") and text.endswith("...")


def test_format_reply_fits_any_max_parts():
    text = format_reply("x", 0, "é" * 1000, 1, timeout=30)
    assert count_parts(text).parts == 1 and text.endswith("...")


@async_test
async def test_help_and_unknown_words(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("help"))
    await twoway.handle(sms("reboot"))
    assert replies(spool) == [
        (BOSS, "commands: ack, uptime"),
        (BOSS, "unknown command 'reboot'. commands: ack, uptime"),
    ]


@async_test
async def test_incomplete_messages_run_nothing(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("uptime", incomplete=True))
    assert replies(spool) == []


@async_test
async def test_replies_per_sender_are_limited(spool):
    now = [0.0]
    twoway = TwoWay(config(), spool, clock=lambda: now[0])
    for _ in range(MAX_REPLIES_PER_HOUR + 5):
        await twoway.handle(sms("help"))
    assert len(replies(spool)) == MAX_REPLIES_PER_HOUR
    now[0] = 3601.0
    await twoway.handle(sms("help"))
    assert len(replies(spool)) == MAX_REPLIES_PER_HOUR + 1


@async_test
async def test_with_a_secret_word_only_requests_that_start_with_it_run(spool, caplog):
    twoway = TwoWay(config(secret="Blue-Heron-42"), spool)
    with caplog.at_level("DEBUG", logger="gsmgw.twoway"):
        await twoway.handle(sms("uptime"))
        await twoway.handle(sms("blue-heron-41 uptime"))  # a near miss
        await twoway.handle(sms("ack"))
        await twoway.handle(sms("Blue-heron-42 uptime"))  # a phone capitalised the first word
        await twoway.handle(sms("blue-heron-42 nonsense"))
        await twoway.handle(sms("blue-heron-42"))
    refused = "not done: start the message with the secret word, then the command"
    assert replies(spool) == [
        (BOSS, refused), (BOSS, refused), (BOSS, refused),
        (BOSS, "uptime: ok\nup 3 days"),
        (BOSS, "unknown command 'nonsense'. commands: ack, uptime"),
        (BOSS, "commands: ack, uptime"),
    ]
    # Neither the secret nor a guess at it is ever logged or echoed.
    assert "heron" not in caplog.text.lower()
    assert "does not start with two_way.secret" in caplog.text


def test_the_secret_word_is_compared_in_constant_time_of_digests():
    from gsmgw.daemon.twoway import secret_matches

    assert secret_matches("BLUE-HERON-42", "Blue-Heron-42")
    assert not secret_matches("Blue-Heron-4", "Blue-Heron-42")
    assert not secret_matches("", "Blue-Heron-42")


@async_test
async def test_command_runs_per_sender_are_limited(spool, caplog):
    now = [0.0]
    twoway = TwoWay(config(), spool, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="gsmgw.twoway"):
        for _ in range(MAX_RUNS_PER_HOUR + 2):
            await twoway.handle(sms("uptime"))
    texts = [text for _, text in replies(spool)]
    assert texts.count("uptime: ok\nup 3 days") == MAX_RUNS_PER_HOUR
    assert texts[-1] == f"uptime: not run, {MAX_RUNS_PER_HOUR} commands in the last hour already; try again later"
    assert f"{MAX_RUNS_PER_HOUR} commands in the last hour already" in caplog.text
    # Another allowed sender has an allowance of its own; the first one's comes back after an hour.
    await twoway.handle(sms("uptime", sender=COLLEAGUE))
    now[0] = 3601.0
    await twoway.handle(sms("uptime"))
    assert replies(spool)[-2:] == [(COLLEAGUE, "uptime: ok\nup 3 days"), (BOSS, "uptime: ok\nup 3 days")]


@async_test
async def test_the_counts_survive_a_new_two_way_handler(spool):
    """A config reload builds a new TwoWay; it takes the old one's counts (app.py passes them)."""
    first = TwoWay(config(), spool, clock=lambda: 0.0)
    for _ in range(MAX_RUNS_PER_HOUR):
        await first.handle(sms("uptime"))
    second = TwoWay(config(), spool, clock=lambda: 1.0, limits=first.limits)
    await second.handle(sms("uptime"))
    assert "not run" in replies(spool)[-1][1]


# Alertmanager's webhook body, version 4 (see tests/test_alertmanager.py for the source).
FIRING = {
    "version": "4", "status": "firing", "receiver": "sms", "truncatedAlerts": 0,
    "groupKey": '{}:{alertname="HighLatency", job="api"}',
    "groupLabels": {"alertname": "HighLatency", "job": "api"},
    "commonLabels": {"alertname": "HighLatency", "job": "api"}, "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "HighLatency", "job": "api", "instance": f"api-{i}"},
         "annotations": {"summary": "p99 over 2s"}, "startsAt": "2026-11-24T10:15:03Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": f"a1b2c3d4e5f6a7b{i}"}
        for i in range(3)
    ],
}


@async_test
async def test_ack_acknowledges_the_alert_and_tells_the_colleague(spool):
    alertmanager = Client("am", token="t", allow=("group:oncall",))
    service = AlertmanagerService(
        [ReceiverSetup("oncall", ("group:oncall",), window=60.0, max_per_hour=10, max_parts=2)],
        spool=spool, registry=ClientRegistry([alertmanager], {"oncall": (BOSS, COLLEAGUE)}),
    )
    status, _ = service.handle("oncall", alertmanager, FIRING)
    assert status == 200
    before = set(spool.list("outgoing"))
    twoway = TwoWay(config(), spool, alerts=lambda: service)
    await twoway.handle(sms("ACK"))
    new = [read_spool_file(spool.read("outgoing", n)) for n in sorted(set(spool.list("outgoing")) - before)]
    sent = {(f.headers.get("To"), f.body.decode().strip()) for f in new}
    assert sent == {
        (COLLEAGUE, f"[ACK] HighLatency job=api by {BOSS}"),
        (BOSS, "ack: HighLatency job=api acknowledged; repeats stay quiet until resolved"),
    }
    assert service.recent("oncall")["notifications"][-1]["action"] == "acknowledged"
    service.flush_all()


@async_test
async def test_ack_without_alerts(spool):
    twoway = TwoWay(config(), spool)
    await twoway.handle(sms("ack"))
    assert replies(spool) == [(BOSS, "ack: no alerts come through this gateway (alertmanager: is not configured)")]


def alphanumeric_deliver(name: str, text: str) -> str:
    """An SMS-DELIVER PDU (hex with SMSC field) from the alphanumeric sender `name`, which may be
    all digits ("0301234567"): a sender name anybody can choose (TS 23.040 §9.1.2.5, TON 101)."""
    from datetime import datetime, timezone

    from gsmgw.sms import encode_deliver, gsm7

    (pdu,) = encode_deliver("+4930123456", text, timestamp=datetime(2026, 11, 24, 10, 15, tzinfo=timezone.utc))
    raw = bytes.fromhex(pdu)
    tpdu = raw[1 + raw[0]:]
    numeric_oa = 2 + (tpdu[1] + 1) // 2
    septets = gsm7.encode_septets(name)
    oa = bytes(((len(septets) * 7 + 3) // 4, TOA_ALPHANUMERIC)) + gsm7.pack_septets(septets)
    return (raw[: 1 + raw[0]] + tpdu[:1] + oa + tpdu[1 + numeric_oa:]).hex().upper()


def test_end_to_end_an_sms_runs_a_command_and_the_reply_goes_out(tmp_path):
    """Simulated network -> `gsmgw run` -> two-way -> spool -> modem -> the sender's phone.

    An alphanumeric sender "0301234567" is not +49301234567, though that number is allowed."""
    import subprocess
    import sys

    from gsmgw.sim.network import SimNetwork
    from gsmgw.sms import decode_pdu

    spoofed = alphanumeric_deliver("0301234567", "hello")
    assert (decode_pdu(spoofed).number, decode_pdu(spoofed).number_type) == ("0301234567", "alphanumeric")

    with SimNetwork(tmp_path / "sim", modems=1) as net:
        config = tmp_path / "gsmgw.yaml"
        config.write_text(
            f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\ndefault_country: '49'\n"
            f"modems:\n  - name: gsm1\n    port: {net.modems[0].path}\n"
            f"two_way:\n  enabled: true\n  allow_from: ['{BOSS}', '+49301234567']\n  timeout: 10 s\n"
            "  commands:\n    hello: [/bin/echo, hello from the gateway]\n"
        )
        daemon = subprocess.Popen([sys.executable, "-m", "gsmgw", "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            net.inject_sms(0, sender=STRANGER, text="hello")  # never answered
            net.inject_sms(0, sender="0301234567", pdu=spoofed)  # never answered either
            net.inject_sms(0, sender=BOSS, text="Hello")
            (reply,) = net.wait_for_submissions(1, timeout=30)
            assert reply["to"] == BOSS
            assert reply["text"] == "hello: ok\nhello from the gateway"
        finally:
            stopped = stop_process(daemon, 60)
            daemon.stderr.close()
            assert stopped, "gsmgw run did not exit within 60 s of SIGTERM"
        assert len(net.submissions) == 1


def test_end_to_end_ack_by_sms_to_an_alert_from_alertmanager(tmp_path):
    """Alertmanager -> HTTP -> SMS to two phones; one answers "ack"; the other learns who took it."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from gsmgw.sim.network import SimNetwork

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = tmp_path / "am.token"
    token.write_text("am-token-123\n")
    token.chmod(0o600)
    with SimNetwork(tmp_path / "sim", modems=1) as net:
        config = tmp_path / "gsmgw.yaml"
        config.write_text(
            f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\n"
            f"modems:\n  - name: gsm1\n    port: {net.modems[0].path}\n"
            f"http:\n  listen: 127.0.0.1:{port}\n"
            f"clients:\n  - name: alertmanager\n    token_file: {token}\n    allow: ['group:oncall']\n"
            f"groups:\n  oncall: ['{BOSS}', '{COLLEAGUE}']\n"
            "alertmanager:\n  receivers:\n    oncall: {to: ['group:oncall'], window: 2 min}\n"
            f"two_way:\n  enabled: true\n  allow_from: ['{BOSS}']\n"
        )
        daemon = subprocess.Popen([sys.executable, "-m", "gsmgw", "run", "-c", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/alertmanager/oncall", data=json.dumps(FIRING).encode(),
                headers={"Authorization": "Bearer am-token-123", "Content-Type": "application/json"},
            )
            # The HTTP server comes up with the daemon; from outside, a refused connection is the
            # only sign that it is not there yet, so retry until a deadline.
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        assert response.status == 200
                    break
                except OSError:
                    if daemon.poll() is not None:
                        raise AssertionError(daemon.stderr.read().decode()) from None
                    assert time.monotonic() < deadline, "the daemon's HTTP server did not come up in 30 s"
                    time.sleep(0.1)
            alerts = net.wait_for_submissions(2, timeout=30)
            assert {s["to"] for s in alerts} == {BOSS, COLLEAGUE}
            assert {s["text"] for s in alerts} == {"[FIRING:3] HighLatency job=api: p99 over 2s (+2 more)"}
            net.inject_sms(0, sender=BOSS, text="ack")
            answers = net.wait_for_submissions(4, timeout=30)[2:]
            assert {(s["to"], s["text"]) for s in answers} == {
                (COLLEAGUE, f"[ACK] HighLatency job=api by {BOSS}"),
                (BOSS, "ack: HighLatency job=api acknowledged; repeats stay quiet until resolved"),
            }
        finally:
            stopped = stop_process(daemon, 60)
            daemon.stderr.close()
            assert stopped, "gsmgw run did not exit within 60 s of SIGTERM"


@async_test
async def test_binary_data_from_an_allowed_sender_is_not_a_command(spool, caplog):
    """The hex of a WAP push (its `text`) could spell a command word; binary data never runs one."""
    twoway = TwoWay(config(), spool)
    event = dataclasses.replace(sms("uptime"), data=bytes.fromhex("01"), udh=bytes.fromhex("0605040B8423F0"))
    with caplog.at_level("INFO", logger="gsmgw.twoway"):
        await twoway.handle(event)
    assert replies(spool) == [] and "binary data is not a command" in caplog.text
