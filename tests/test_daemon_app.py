"""The daemon's wiring: systemd notifications, reload with a broken config, API status of files
the journal never knew."""

from __future__ import annotations

import asyncio
import socket

from gsmgw.config import simulation_config
from gsmgw.daemon.app import Gateway
from gsmgw.daemon.events import MessageFailed
from gsmgw.sim import SimNetwork

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
            assert status["status"] == "failed" and "blank line" in status["fail_reason"]
            assert gateway.ctx.message_status("never-heard-of") is None
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()
