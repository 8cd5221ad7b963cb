"""The daemon's wiring: systemd notifications, reload with a broken config, API status of files
the journal never knew."""

from __future__ import annotations

import asyncio
import socket

from gsmgw.config import simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageFailed
from gsmgw.sim import SimNetwork
from helpers import free_port

FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0}


def test_systemd_gets_ready_status_watchdog_and_stopping(tmp_path, monkeypatch):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # every 1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    config = simulation_config(tmp_path / "spool", [network.modems[0].path])

    messages: list[str] = []

    async def receive_until(word: str) -> None:
        loop = asyncio.get_running_loop()
        while not any(word in m for m in messages):
            data = await asyncio.wait_for(loop.sock_recv(listener, 4096), 10)
            messages.append(data.decode())

    async def main():
        listener.setblocking(False)
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            await receive_until("STATUS=1/1 modems up")
            await receive_until("WATCHDOG=1")
        finally:
            await gateway.close()
        await receive_until("STOPPING=1")

    try:
        asyncio.run(main())
    finally:
        network.stop()
        listener.close()
    text = "\n".join(messages)
    assert messages[0].startswith("READY=1")
    assert "STATUS=1/1 modems up, 0 queued" in text
    assert "WATCHDOG=1" in text
    assert "STOPPING=1" in text


def test_reload_with_a_broken_config_keeps_the_running_one(tmp_path, caplog):
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    path = tmp_path / "gsmgw.yaml"
    path.write_text(
        f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\nmodems:\n"
        f"  - name: gsm1\n    port: {network.modems[0].path}\n"
    )
    from gsmgw.config import load_config

    config = load_config(path)

    async def main():
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            path.write_text(path.read_text() + "unknown_key: 1\n")
            await gateway.reload()
            assert gateway.config is config
            assert "keeping the running one" in caplog.text and "unknown_key" in caplog.text
            path.write_text(path.read_text().replace("unknown_key: 1\n", "hook_timeout: 5 s\n"))
            await gateway.reload()
            assert gateway.config is not config and gateway.hooks.timeout == 5
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_message_status_of_a_refused_file_comes_from_failed(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    config = simulation_config(tmp_path / "spool", [network.modems[0].path])

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        failed = asyncio.Event()
        gateway.bus.subscribe(lambda event: failed.set() if isinstance(event, MessageFailed) else None)
        await gateway.start()
        try:
            (tmp_path / "spool" / "outgoing" / "broken").write_text("To: +4915112345678\nno blank line")
            await asyncio.wait_for(failed.wait(), 10)
            status = gateway.ctx.message_status("broken")
            assert status.status == "failed" and "blank line" in status.fail_reason
            assert gateway.ctx.message_status("never-heard-of") is None
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def _with_http(tmp_path, network) -> tuple[int, str]:
    """A free loopback port and the head of a config: spool, state, one modem, http on that port."""
    port = free_port()
    return port, (
        f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\nmodems:\n"
        f"  - name: gsm1\n    port: {network.modems[0].path}\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\n"
    )


def test_reload_gives_http_the_new_clients_and_keeps_their_limit_counts(tmp_path):
    import aiohttp

    from gsmgw.config import load_config

    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    path = tmp_path / "gsmgw.yaml"
    port, head = _with_http(tmp_path, network)
    template = head + "clients:\n  - name: app\n    token: TOKEN\n    allow: ['+49*']\n    limits: {per_minute: 2}\n"
    path.write_text(template.replace("TOKEN", "old-token-0123456789"))
    config = load_config(path)
    url = f"http://127.0.0.1:{port}/api/v1/messages"

    async def post(session, token):
        async with session.post(url, json={"to": "+4915112345678", "text": "hi"},
                                headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status

    async def main():
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            async with aiohttp.ClientSession() as session:
                assert await post(session, "old-token-0123456789") == 202
                limiter = gateway.ctx.clients.limiter
                path.write_text(template.replace("TOKEN", "new-token-0123456789"))
                await gateway.reload()
                assert gateway.ctx.clients.limiter is limiter
                assert await post(session, "old-token-0123456789") == 401
                assert await post(session, "new-token-0123456789") == 202
                # per_minute: 2 counts the message sent with the old token too.
                assert await post(session, "new-token-0123456789") == 429
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_reload_gives_alertmanager_the_new_receivers(tmp_path):
    import aiohttp

    from gsmgw.config import load_config
    from gsmgw.spool.format import read_spool_file

    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    path = tmp_path / "gsmgw.yaml"
    port, head = _with_http(tmp_path, network)
    head += ("clients:\n  - name: prometheus\n    token: am-token-0123456789\n    allow: ['+49*']\n"
             "alertmanager:\n  receivers:\n")
    path.write_text(head + "    ops: {to: '+4915100000001', window: 0 s}\n")
    config = load_config(path)
    alert = {"status": "firing", "groupKey": "{}:{alertname=\"DiskFull\"}", "receiver": "x",
             "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}, "annotations": {},
                         "fingerprint": "f1", "startsAt": "2026-12-06T10:00:00Z"}],
             "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {}, "commonAnnotations": {}}

    async def post(session, receiver):
        async with session.post(f"http://127.0.0.1:{port}/api/v1/alertmanager/{receiver}", json=alert,
                                headers={"Authorization": "Bearer am-token-0123456789"}) as response:
            return response.status

    def queued_to() -> list[str]:
        spool = tmp_path / "spool"
        return sorted(read_spool_file(file.read_bytes()).headers.get("To") or ""
                      for directory in ("outgoing", "checked", "sent", "failed") for file in (spool / directory).glob("*"))

    async def main():
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            async with aiohttp.ClientSession() as session:
                assert await post(session, "oncall") == 404
                path.write_text(head + "    ops: {to: '+4915100000002', window: 0 s}\n"
                                       "    oncall: {to: '+4915100000003', window: 0 s}\n")
                await gateway.reload()
                assert await post(session, "oncall") == 200
                assert await post(session, "ops") == 200
            assert queued_to() == ["+4915100000002", "+4915100000003"]
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_reload_gives_two_way_the_new_commands(tmp_path):
    from gsmgw.config import load_config

    boss = "+4915112345678"
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    path = tmp_path / "gsmgw.yaml"
    head = (
        f"spool: {tmp_path / 'spool'}\nstate: {tmp_path / 'state'}\nmodems:\n"
        f"  - name: gsm1\n    port: {network.modems[0].path}\n"
        f"two_way:\n  enabled: true\n  allow_from: ['{boss}']\n  commands:\n"
    )
    path.write_text(head + "    hello: [/bin/echo, hello]\n")
    config = load_config(path)

    async def main():
        gateway = Gateway(config, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            path.write_text(head + "    bye: [/bin/echo, bye from the new config]\n")
            await gateway.reload()
            network.inject_sms(0, boss, "bye")
            (reply,) = await asyncio.to_thread(network.wait_for_submissions, 1, timeout=30)
            assert (reply["to"], reply["text"]) == (boss, "bye: ok\nbye from the new config")
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_a_file_with_an_endless_expires_fails_alone_and_the_daemon_goes_on(tmp_path):
    # `Expires: 1000000 weeks` used to raise OverflowError out of the file reader: the watcher
    # died, and recovery raised again at every start, so systemd gave up.
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    config = simulation_config(tmp_path / "spool", [network.modems[0].path])
    endless = b"To: +4915112345678\nExpires: 1000000 weeks\n\nhi"
    (tmp_path / "spool" / "checked").mkdir(parents=True)
    (tmp_path / "spool" / "checked" / "left-at-stop").write_bytes(endless)

    async def main():
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        failed: list[MessageFailed] = []
        two_failed = asyncio.Event()

        def on_event(event):
            if isinstance(event, MessageFailed):
                failed.append(event)
                if len(failed) == 2:
                    two_failed.set()

        gateway.bus.subscribe(on_event)
        await gateway.start()
        try:
            (tmp_path / "spool" / "outgoing" / "dropped").write_bytes(endless)
            await asyncio.wait_for(two_failed.wait(), 10)
            (tmp_path / "spool" / "outgoing" / "after").write_bytes(b"To: +4915112345678\n\nstill sending")
            await asyncio.to_thread(network.wait_for_submissions, 1, 15)
        finally:
            await gateway.close()
        return failed

    try:
        failed = asyncio.run(main())
    finally:
        network.stop()
    assert sorted(event.id for event in failed) == ["dropped", "left-at-stop"]
    assert all("longer than 3650 days" in event.reason for event in failed)
    for name in ("dropped", "left-at-stop"):
        assert b"Fail_reason: Expires: '1000000 weeks' is longer than 3650 days" in (
            tmp_path / "spool" / "failed" / name).read_bytes()
    assert network.submissions[0]["text"] == "still sending"
