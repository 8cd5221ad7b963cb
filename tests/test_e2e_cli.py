"""The README's commands as a user types them: `gsmgw run --simulate`, `gsmgw send`, `gsmgw status`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from gsmgw.spool.format import read_spool_file
from helpers import wait_for_text

GSMGW = [sys.executable, "-m", "gsmgw"]


@pytest.mark.slow
def test_run_simulate_prints_what_to_do_and_it_works(tmp_path):
    spool = tmp_path / "demo-spool"
    out = tmp_path / "out.log"
    with out.open("wb") as stream:  # the child has its own copy of the descriptor
        daemon = subprocess.Popen(
            GSMGW + ["run", "--simulate", "2", "--spool", str(spool), "--latency", "0"],
            stdout=stream, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    try:
        text = wait_for_text(out, r"Stop with Ctrl-C", 30)
        numbers = re.findall(r"modem\d\s+(\+\d+)", text)
        assert len(numbers) == 2
        assert str(spool / "outgoing") in text and "gsmgw send" in text and "gsmgw status" in text
        wait_for_text(out, r"modem1: starting -> ready|modem1: \w+ -> ready", 30)
        # The banner's first suggestion, as printed (a naive write straight into outgoing/).
        (spool / "outgoing" / "hello").write_text(f"To: {numbers[1]}\n\nHello from gsmgw\n")
        sent = subprocess.run(
            GSMGW + ["send", "--spool", str(spool), "--to", numbers[0], "Hello again"],
            capture_output=True, text=True, timeout=30,
        )
        assert sent.returncode == 0, sent.stderr
        wait_for_text(out, r"received SMS from .*\n(.|\n)*received SMS from", 30)
        incoming = [read_spool_file(p.read_bytes()) for p in (spool / "incoming").iterdir()]
        assert sorted(f.body.decode() for f in incoming) == ["Hello again", "Hello from gsmgw"]
        # The status file follows within a moment (it is rewritten on changes, debounced).
        deadline = time.monotonic() + 15
        while True:
            status = subprocess.run(GSMGW + ["status", "--spool", str(spool), "--json"],
                                    capture_output=True, text=True, timeout=30)
            assert status.returncode == 0, status.stderr
            current = json.loads(status.stdout)
            if current["queue"]["sent_today"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert current["queue"]["sent_today"] == 2
        assert all(m["state"] in ("ready", "busy") for m in current["modems"])
        table = subprocess.run(GSMGW + ["status", "--spool", str(spool)], capture_output=True, text=True, timeout=30)
        assert "modem0" in table.stdout and "WARNING" not in table.stdout
    finally:
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0


def test_status_says_when_the_daemon_is_not_running(tmp_path):
    spool = tmp_path / "spool"
    state = spool / ".state"
    state.mkdir(parents=True)
    missing = subprocess.run(GSMGW + ["status", "--spool", str(spool)], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "gsmgw run" in missing.stderr
    old = {
        "updated": "2020-01-01T00:00:00+00:00",
        "modems": [{"name": "gsm1", "state": "ready", "port": "/dev/ttyUSB0", "imsi": None, "iccid": None,
                    "imei": None, "operator": None, "signal_dbm": None, "registered": None, "sent_today": 0,
                    "failed_today": 0, "received_today": 0, "last_error": None}],
        "queue": {"outgoing": 0, "checked": 0, "retrying": 0, "sent_today": 0, "failed_today": 0},
    }
    (state / "status.json").write_text(json.dumps(old))
    table = subprocess.run(GSMGW + ["status", "--spool", str(spool)], capture_output=True, text=True, timeout=30)
    assert table.returncode == 0
    assert table.stdout.startswith("WARNING: this status is") and "not running" in table.stdout
    as_json = subprocess.run(GSMGW + ["status", "--spool", str(spool), "--json"],
                             capture_output=True, text=True, timeout=30)
    assert json.loads(as_json.stdout) == old


def test_run_without_a_config_says_how_to_start(tmp_path):
    result = subprocess.run(GSMGW + ["run", "-c", str(tmp_path / "nope.yaml")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert "gsmgw run --simulate" in result.stderr


def test_run_refuses_a_spool_it_cannot_create_and_says_why(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool should be")
    config = tmp_path / "gsmgw.yaml"
    config.write_text(
        f"spool: {blocker / 'spool'}\nstate: {tmp_path / 'state'}\nmodems:\n  - name: gsm1\n    port: {tmp_path / 'tty'}\n"
    )
    result = subprocess.run(GSMGW + ["run", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "cannot create the spool directory" in result.stdout + result.stderr


def _console_script() -> str:
    script = os.path.join(os.path.dirname(sys.executable), "gsmgw")
    assert os.access(script, os.X_OK), f"{script}: the test environment has no gsmgw script (pip install -e .)"
    return script


@pytest.mark.slow
def test_the_commands_run_simulate_prints_work_as_printed_when_gsmgw_is_not_on_the_path(tmp_path):
    # ./dev run starts .venv/bin/gsmgw, which is not on the PATH; the banner used to say `gsmgw send`.
    path_without_gsmgw = "/usr/local/bin:/usr/bin:/bin"
    assert subprocess.run(["sh", "-c", "command -v gsmgw"], env={"PATH": path_without_gsmgw}).returncode != 0
    spool = tmp_path / "demo-spool"
    out = tmp_path / "out.log"
    with out.open("wb") as stream:
        daemon = subprocess.Popen(
            [_console_script(), "run", "--simulate", "2", "--spool", str(spool), "--latency", "0"],
            stdout=stream, stderr=subprocess.STDOUT, cwd=tmp_path,
            env=dict(os.environ, PYTHONUNBUFFERED="1", PATH=path_without_gsmgw),
        )
    try:
        text = wait_for_text(out, r"Stop with Ctrl-C", 30)
        commands = [line.strip() for line in text.splitlines() if re.search(r"\b(send|status) --spool", line)]
        assert len(commands) == 2, text
        assert all(command.startswith(_console_script() + " ") for command in commands), commands
        for command in commands:  # typed into another shell, as printed
            typed = subprocess.run(["sh", "-c", command], env={"PATH": path_without_gsmgw},
                                   capture_output=True, text=True, timeout=30, cwd=tmp_path)
            assert typed.returncode in (0, 1) and "not found" not in typed.stderr, (command, typed.stderr)
            if " send " in command:
                assert typed.returncode == 0, typed.stderr
    finally:
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0


def test_gsmgw_is_printed_as_gsmgw_when_that_name_on_the_path_is_this_program(monkeypatch):
    from gsmgw.cli.run import gsmgw_command

    script = _console_script()
    monkeypatch.setenv("PATH", os.path.dirname(script))
    assert gsmgw_command(script) == "gsmgw"
    assert gsmgw_command("gsmgw") == "gsmgw"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert gsmgw_command(script) == script
    assert gsmgw_command("/somewhere/gsmgw/__main__.py") == f"{sys.executable} -m gsmgw"
