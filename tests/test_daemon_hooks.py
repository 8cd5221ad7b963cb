"""Hooks run with arguments (never a shell), time out, and never block the caller."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time

from gsmgw.daemon.events import EventBus
from gsmgw.daemon.hooks import Hooks
from gsmgw.events import MessageSent


def script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_hook_gets_event_and_path_as_arguments_without_a_shell(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    out = tmp_path / "out"
    hook = script(tmp_path / "hook", f'printf "%s|%s|%s|%s" "$1" "$2" "$GSMGW_ID" "$NOTIFY_SOCKET" > {out}\n')
    tricky = str(tmp_path / "sent" / "x; touch pwned $(id)")

    async def scenario():
        hooks = Hooks({"sent": hook})
        return await hooks.start("sent", tricky, "x; touch pwned $(id)")

    assert asyncio.run(scenario()) == 0
    assert out.read_text() == f"sent|{tricky}|x; touch pwned $(id)|"  # no NOTIFY_SOCKET for hooks
    assert not (tmp_path / "pwned").exists()


def test_slow_hook_is_killed_at_its_timeout_and_does_not_block_the_bus(tmp_path, caplog):
    hook = script(tmp_path / "slow", "sleep 30\n")

    async def scenario():
        bus = EventBus()
        hooks = Hooks({"sent": hook}, timeout=0.5)
        bus.subscribe(hooks.on_event)
        started = time.monotonic()
        bus.publish(MessageSent("f", "+491", "gsm1", None, (1,), "/x/sent/f"))
        publish_took = time.monotonic() - started
        await asyncio.sleep(0)
        (task,) = hooks._tasks
        status = await asyncio.wait_for(task, 10)
        return publish_took, status, time.monotonic() - started

    with caplog.at_level(logging.ERROR, logger="gsmgw.hooks"):
        publish_took, status, total = asyncio.run(scenario())
    assert publish_took < 0.1
    assert status == -9
    assert total < 5
    assert "ran longer than" in caplog.text


def test_missing_or_failing_hook_is_logged(tmp_path, caplog):
    failing = script(tmp_path / "fail", "echo broken >&2; exit 3\n")

    async def scenario():
        hooks = Hooks({"failed": failing, "report": str(tmp_path / "nope")})
        return await hooks.start("failed", "/f", "f"), await hooks.start("report", "/r", "r")

    with caplog.at_level(logging.WARNING, logger="gsmgw.hooks"):
        assert asyncio.run(scenario()) == (3, None)
    assert "exited with 3: broken" in caplog.text
    assert "cannot run" in caplog.text and "executable" in caplog.text


def test_unconfigured_hook_does_nothing(tmp_path):
    async def scenario():
        return Hooks({"sent": None}).start("sent", "/x", "x")

    assert asyncio.run(scenario()) is None
    assert os.listdir(tmp_path) == []
