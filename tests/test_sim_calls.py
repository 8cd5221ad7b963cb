"""The simulator rings a modem (SimNetwork.ring, the control socket, `gsmgw simulate ring`) and
answers USSD codes as configured (set_ussd_reply), seen through a raw serial port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from gsmgw.sim import SimError
from gsmgw.sim.control import ControlClient
from simfixtures import AtTerminal

CALLER = "+4915112345678"


def test_a_call_rings_until_the_modem_hangs_up(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        call = net.ring(0, CALLER, interval=0.2)
        assert b"RING" in at.read_until(re.compile(rb"RING\r\n"), timeout=3)  # V.250: +CRC=0, +CLIP=0
        assert at.command("AT+CRC=1;+CLIP=1").endswith("OK\r\n")
        announced = at.read_until(re.compile(rb'\+CLIP: "\+4915112345678",145,"",,"",0\r\n'), timeout=3)
        assert b"+CRING: VOICE" in announced  # TS 27.007 §6.11
        assert "OK" in at.command("AT+CHUP")
        record = net.wait_for_call(call["id"], timeout=3)
        assert record["outcome"] == "hung up" and record["rings"] >= 2 and record["caller"] == CALLER
        assert b"RING" not in at.silence(0.5)


def test_a_modem_that_prints_nothing_until_crc_or_clip_is_set(sim_network):
    net = sim_network(modems=1, profile="zte")
    with AtTerminal(net.modems[0].path) as at:
        at.command('AT+CSCS="GSM"')
        call = net.ring(0, "", interval=0.2)  # a withheld number
        assert at.silence(0.6).strip(b"\r\n") == b""
        at.command("AT+CLIP=1")
        assert b'+CLIP: "",128,"",,"",1' in at.read_until(re.compile(rb"\+CLIP: [^\r]*\r\n"), timeout=3)
        assert "OK" in at.command("ATH")
        assert net.wait_for_call(call["id"], timeout=3)["outcome"] == "hung up"


def test_the_caller_gives_up_and_a_modem_rings_once_at_a_time(sim_network):
    net = sim_network(modems=1)
    call = net.ring(0, CALLER, interval=0.1, timeout=0.3)
    with pytest.raises(SimError, match="ringing already"):
        net.ring(0, CALLER)
    record = net.wait_for_call(call["id"], timeout=3)
    assert record["outcome"] == "caller gave up" and record["rings"] >= 2
    net.unplug(0)
    with pytest.raises(SimError, match="not registered"):
        net.ring(0, CALLER)


def test_ussd_replies_are_configurable_in_gsm7_and_ucs2(sim_network):
    net = sim_network(modems=2)
    net.set_ussd_reply("*101#", "Остаток 5 руб", dcs=72)
    net.set_ussd_reply("*100#", "Credit 3.50 EUR", modem=1)
    net.set_ussd_reply("*999#", None, status=4)
    with AtTerminal(net.modems[0].path) as at:
        at.command("AT+CUSD=1,\"*101#\",15")
        ucs2 = at.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n")).decode()
        assert "Остаток 5 руб".encode("utf-16-be").hex().upper() in ucs2 and ucs2.strip().endswith(",72")
        at.command("AT+CUSD=1,\"*100#\",15")
        assert '"Guthaben: 12,34 EUR",15' in at.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n")).decode()
        at.command("AT+CUSD=1,\"*999#\",15")
        assert at.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n")).decode().strip().endswith("+CUSD: 4")
    with AtTerminal(net.modems[1].path) as at:
        at.command("AT+CUSD=1,\"*100#\",15")
        assert '"Credit 3.50 EUR",15' in at.read_until(re.compile(rb"\+CUSD: [^\r]*\r\n")).decode()


def test_gsmgw_simulate_rings_through_its_control_socket(tmp_path):
    directory = tmp_path / "sim"
    process = subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "simulate", "--modems", "1", "--dir", str(directory)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert "ready" in process.stdout.readline() + process.stdout.readline()
        done = subprocess.run(
            [sys.executable, "-m", "gsmgw", "simulate", "ring", "--dir", str(directory), "--from", CALLER,
             "--interval", "0.2", "--timeout", "0.5", "--wait"],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "call 1 to modem0 from +4915112345678: caller gave up after" in done.stdout
        with ControlClient(directory / "control.sock") as client:
            (call,) = client.calls()
            assert call["outcome"] == "caller gave up"
            client.set_ussd_reply("*100#", "Saldo 1", modem=0)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not os.path.exists(directory / "control.sock")
