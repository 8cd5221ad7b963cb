"""`gsmgw simulate` as its own process: scriptable output, the control socket, clean exit; gammu as a client."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest
from simfixtures import AtTerminal

from gsmgw.sim import SimError
from gsmgw.sim.control import ControlClient
from gsmgw.sms import decode_pdu

START_TIMEOUT = 20.0


def start_simulator(directory, *options: str) -> tuple[subprocess.Popen, list[dict]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "simulate", "--dir", str(directory), "--json", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    events: list[dict] = []
    deadline = time.monotonic() + START_TIMEOUT
    buffer = b""
    while not events or events[-1]["event"] != "ready":
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
        if not readable:
            process.kill()
            raise TimeoutError(f"gsmgw simulate printed no ready line; stderr: {process.stderr.read()!r}")
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            raise RuntimeError(f"gsmgw simulate ended: {process.wait()} {process.stderr.read()!r}")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        events.extend(json.loads(line) for line in lines if line)
    return process, events


def stop_simulator(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


@pytest.fixture
def simulator(tmp_path):
    started = []

    def start(*options: str):
        process, events = start_simulator(tmp_path, *options)
        started.append(process)
        return process, events

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_simulate_prints_modems_and_cleans_up(simulator, tmp_path):
    process, events = simulator("--modems", "2", "--latency", "0-0.1", "--profile", "generic,huawei")
    modems, ready = events[:-1], events[-1]
    assert [(m["name"], m["number"], m["imsi"], m["profile"]) for m in modems] == [
        ("modem0", "+4917000000000", "262010000000000", "generic"),
        ("modem1", "+4917000000001", "262020000000001", "huawei"),
    ]
    assert all(os.readlink(m["path"]) == m["device"] for m in modems)
    assert ready["control"] == str(tmp_path / "control.sock")
    assert stop_simulator(process) == 0
    assert not os.path.lexists(tmp_path / "modem0") and not os.path.lexists(tmp_path / "modem1")
    assert not os.path.exists(tmp_path / "control.sock")


def test_control_socket_drives_a_running_network(simulator, tmp_path):
    process, events = simulator("--modems", "2", "--fault", "1:cms_error:codes=47,count=1")
    with ControlClient(tmp_path / "control.sock") as control:
        assert control.ping() == "pong"
        assert [m["number"] for m in control.modems()] == ["+4917000000000", "+4917000000001"]
        control.inject_sms(0, "+4915112345678", "über den Socket")
        [stored] = control.stored_messages(0)
        assert decode_pdu(stored["pdu"]).text == "über den Socket"
        with pytest.raises(SimError, match="modems 0 to 1"):
            control.unplug(5)
        control.unplug(1)
        assert not os.path.lexists(tmp_path / "modem1")
        control.replug(1)
        with AtTerminal(str(tmp_path / "modem1")) as at:
            assert at.command("ATE0;+CMEE=1").endswith("OK\r\n")
            control.reboot(1, sim=4)
            assert at.command("AT+CIMI").startswith("AT+CIMI\r")  # echo on again after the restart
        assert control.modems()[1]["imsi"] == "262020000000004"
        control.set_fault(0, "storage_full")
        control.clear_fault(0)
        with pytest.raises(SimError, match="0 of 1"):
            control.wait_for_submissions(1, timeout=0.2)
    assert stop_simulator(process) == 0


@pytest.mark.skipif(shutil.which("gammu") is None, reason="gammu is not installed (apt-get install gammu)")
def test_gammu_identifies_and_sends(simulator, tmp_path):
    process, events = simulator("--modems", "2", "--latency", "0.1")
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\ndevice = {events[0]['path']}\nconnection = at\n")
    identify = subprocess.run(["gammu", "-c", str(rc), "identify"], capture_output=True, text=True, timeout=60)
    assert identify.returncode == 0, identify.stderr
    assert events[0]["imei"] in identify.stdout and events[0]["imsi"] in identify.stdout
    sent = subprocess.run(
        ["gammu", "-c", str(rc), "sendsms", "TEXT", events[1]["number"], "-text", "Hallo von gammu"],
        capture_output=True, text=True, timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    with ControlClient(tmp_path / "control.sock") as control:
        [record] = control.wait_for_submissions(1, timeout=10)
        assert (record["from"], record["to"], record["text"]) == (events[0]["number"], events[1]["number"], "Hallo von gammu")
        assert f"reference={record['mr']}" in sent.stdout
    assert stop_simulator(process) == 0


def _wait_for_text(directory, needle: str, timeout: float) -> str:
    """The text of the file smsd finished in ``directory`` holding ``needle`` (smsd gives no
    other signal than the file; it may still rename or rewrite it, so a vanished file is
    looked for again)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(directory):
            try:
                text = (directory / name).read_text(errors="replace")
            except (FileNotFoundError, IsADirectoryError):
                continue
            if needle in text:
                return text
        time.sleep(0.2)
    raise TimeoutError(f"no file with {needle!r} arrived in {directory} within {timeout} s")


@pytest.mark.skipif(shutil.which("smsd") is None, reason="smstools3 is not installed (apt-get install smstools)")
def test_smstools3_sends_and_receives(simulator, tmp_path):
    """smstools3 (smsd 3.1) drives a simulated modem: an outgoing file becomes a submission and
    sent/ file, an SMS injected into the network becomes an incoming/ file."""
    process, events = simulator("--modems", "2")
    spool = tmp_path / "smsd"
    dirs = {name: spool / name for name in ("outgoing", "checked", "failed", "incoming", "sent", "report")}
    for path in dirs.values():
        path.mkdir(parents=True)
    config = spool / "smsd.conf"
    config.write_text(
        "devices = GSM1\n"
        + "".join(f"{name} = {path}\n" for name, path in dirs.items())
        + f"logfile = {spool}/smsd.log\nloglevel = 7\ninfofile = {spool}/smsd.running\n"
        f"pidfile = {spool}/smsd.pid\nstats = {spool}\n"
        f"[GSM1]\ndevice = {events[0]['path']}\nincoming = yes\nbaudrate = 115200\n"
    )
    smsd = subprocess.Popen(["smsd", f"-c{config}", "-t"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        outgoing = dirs["outgoing"] / "m1"
        (dirs["outgoing"] / ".m1").write_text(f"To: {events[1]['number'].lstrip('+')}\n\nHallo von smstools3")
        (dirs["outgoing"] / ".m1").rename(outgoing)
        with ControlClient(tmp_path / "control.sock") as control:
            [record] = control.wait_for_submissions(1, timeout=60)
            control.inject_sms(0, "+4915112345678", "Gruss an smstools3")
        sent = _wait_for_text(dirs["sent"], "Hallo von smstools3", 30)
        received = _wait_for_text(dirs["incoming"], "Gruss an smstools3", 60)
    finally:
        os.killpg(smsd.pid, signal.SIGTERM)  # smsd and the handlers it forked, nothing else
        smsd.wait(timeout=20)
    assert (record["from"], record["to"], record["text"]) == (events[0]["number"], events[1]["number"], "Hallo von smstools3")
    assert f"To: {events[1]['number'].lstrip('+')}" in sent
    assert "From: 4915112345678" in received
    assert stop_simulator(process) == 0


@pytest.mark.skipif(shutil.which("gammu") is None, reason="gammu is not installed (apt-get install gammu)")
def test_gammu_networkinfo_battery_and_inbox(simulator, tmp_path):
    """gammu's networkinfo asks AT+CGATT? and its monitor AT+CBC: both answer; getallsms reads
    what the network delivered, long messages as their linked parts."""
    process, events = simulator("--modems", "1")
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\ndevice = {events[0]['path']}\nconnection = at\n")

    def gammu(*args: str) -> str:
        done = subprocess.run(["gammu", "-c", str(rc), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    network = gammu("networkinfo")
    assert "home network" in network and "LAC 1A2B" in network and "GPRS                 : attached" in network
    assert "100 percent" in gammu("battery")
    with ControlClient(tmp_path / "control.sock") as control:
        control.inject_sms(0, "+4915112345678", "kurz")
        control.inject_sms(0, "+4915112345678", "lang " * 40)
        deadline = time.monotonic() + 10
        while len(control.stored_messages(0, "SM")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the network delivers at its own pace; the storage is the truth
    inbox = gammu("getallsms")
    assert "kurz" in inbox and "part 1 of 2" in inbox and "part 2 of 2" in inbox
    assert inbox.count('Remote number        : "+4915112345678"') == 3
    assert stop_simulator(process) == 0
