"""`gsmgw probe` and gsmgw.at.probe against simulated modems and ptys nobody answers on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gsmgw.at.probe import JSON_KEYS, find_port, port_holders, probe_port, probe_ports, scan_ports
from gsmgw.cli import main as cli
from gsmgw.sim import SimNetwork


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe") / "sim"
    with SimNetwork(directory, modems=2, profile=["huawei", "simcom"]) as network:
        yield network


@pytest.fixture
def silent_pty():
    """A pty whose other end never answers (a modem's data port, or a hung modem)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield path
    os.close(master)


def test_probe_identifies_two_dialects_in_parallel(net):
    paths = [m.path for m in net.modems]
    results = asyncio.run(probe_ports(paths, timeout=5))
    assert [r.ok for r in results] == [True, True]
    assert [r.profile for r in results] == ["huawei", "simcom"]
    for result, sim in zip(results, net.modems):
        assert (result.imsi, result.imei, result.iccid) == (sim.imsi, sim.imei, sim.iccid)
        assert result.operator == sim.operator and result.registered
        assert result.signal_dbm is not None and result.pin_state == "READY"
        assert result.error is None and result.held_by is None


def test_silent_port_is_reported_within_the_timeout_and_does_not_delay_others(net, silent_pty):
    start = time.monotonic()
    results = asyncio.run(probe_ports([silent_pty, net.modems[0].path], timeout=1.5))
    elapsed = time.monotonic() - start
    silent, good = results
    assert not silent.ok and "no answer within 1.5 s" in silent.error
    assert good.ok
    assert elapsed < 3.0


def test_port_held_by_another_process_is_reported_and_not_opened(net):
    path = net.modems[1].path
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_NOCTTY)\n"
         "print('open', flush=True)\n"
         "time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        assert [pid for pid, _ in port_holders(path)] == [holder.pid]
        result = asyncio.run(probe_port(path, timeout=2))
    finally:
        holder.kill()
        holder.wait(timeout=5)
    assert not result.ok
    assert str(holder.pid) in result.held_by and "busy" in result.error


def test_the_simulator_itself_is_not_a_holder(net):
    assert port_holders(net.modems[0].path) == []


def test_find_port_by_imsi_and_iccid(net):
    paths = [m.path for m in net.modems]
    assert asyncio.run(find_port(imsi=net.modems[1].imsi, paths=paths)) == paths[1]
    assert asyncio.run(find_port(iccid=net.modems[0].iccid, paths=paths)) == paths[0]
    assert asyncio.run(find_port(imsi="001019999999999", paths=paths)) is None


def test_missing_port(tmp_path):
    result = asyncio.run(probe_port(str(tmp_path / "ttyUSB9")))
    assert not result.ok and "plugged in" in result.error


def test_scan_lists_one_path_per_device(tmp_path, net):
    (tmp_path / "a").symlink_to(net.modems[0].path)
    (tmp_path / "b").symlink_to(os.path.realpath(net.modems[0].path))
    found = scan_ports([str(tmp_path / "*")])
    assert found == [str(tmp_path / "a")]


def test_cli_json_has_the_stable_keys(net):
    runner = CliRunner()
    outcome = runner.invoke(cli, ["probe", "--json", "--timeout", "5", *(m.path for m in net.modems)])
    assert outcome.exit_code == 0, outcome.output
    data = json.loads(outcome.output)
    assert [tuple(item) for item in data] == [JSON_KEYS, JSON_KEYS]
    assert JSON_KEYS == (
        "port", "ok", "error", "manufacturer", "model", "revision", "imei", "imsi", "iccid",
        "operator", "signal_dbm", "registered", "registration", "profile", "pin_state", "held_by",
    )
    assert [d["profile"] for d in data] == ["huawei", "simcom"]


def test_cli_text_and_exit_code_when_nothing_answers(silent_pty):
    runner = CliRunner()
    outcome = runner.invoke(cli, ["probe", "--timeout", "1", silent_pty])
    assert outcome.exit_code == 1
    assert f"{silent_pty}: no answer within 1 s" in outcome.output


def test_probe_never_sends_a_pin(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=1, pin="1234") as net:
        result = asyncio.run(probe_port(net.modems[0].path, timeout=5))
        left = net._call(lambda: net.modem(0).pin_attempts)
    assert result.ok and result.pin_state == "SIM PIN" and not result.registered
    assert left == 3


def test_port_held_by_modemmanager_gets_the_advice(net):
    """A process named ModemManager (set with prctl PR_SET_NAME) holds one port."""
    held, free = net.modems[1].path, net.modems[0].path
    fake = subprocess.Popen(
        [sys.executable, "-c",
         "import ctypes, os, time\n"
         "ctypes.CDLL(None).prctl(15, b'ModemManager', 0, 0, 0)\n"
         f"fd = os.open({str(held)!r}, os.O_RDWR | os.O_NOCTTY)\n"
         "print('open', flush=True)\n"
         "time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert fake.stdout.readline().strip() == "open"
        held_result, free_result = asyncio.run(probe_ports([held, free], timeout=3))
        outcome = CliRunner().invoke(cli, ["probe", "--timeout", "3", free])
    finally:
        fake.kill()
        fake.wait(timeout=5)
    assert not held_result.ok and held_result.held_by == f"ModemManager (pid {fake.pid})"
    assert "ID_MM_DEVICE_IGNORE" in held_result.error
    # Running but not holding the other port: it is probed, and the risk is named.
    assert free_result.ok and "ModemManager (running" in free_result.held_by
    assert "ModemManager is running" in outcome.output
