"""Each fault of a simulated modem, seen from outside over its pty."""

from __future__ import annotations

import os
import re
import time

import pytest
import serial
from simfixtures import AtTerminal

from gsmgw.sim import SimError
from gsmgw.sms import decode_pdu, encode_submit

OUTSIDE = "+4915112345678"
OK = re.compile(rb"\r\nOK\r\n")


def submit(at: AtTerminal, text: str = "fault test", timeout: float = 5.0) -> str:
    part = encode_submit(OUTSIDE, text)[0]
    assert at.command(f"AT+CMGS={part.length}").endswith("> ")
    at.write(part.pdu.encode() + b"\x1a")
    return at.read_until(re.compile(rb"\r\n(OK|ERROR|\+CMS ERROR: \d+)\r\n"), timeout).decode()


def test_cms_error_on_submit(sim_network):
    net = sim_network(modems=1)
    net.set_fault(0, "cms_error", codes=[42], count=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1")
        assert submit(at) == "\r\n+CMS ERROR: 42\r\n"
        assert re.fullmatch(r"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", submit(at))
    assert len(net.submissions) == 1  # the refused one never reached the network


def test_cms_error_probability_is_seeded(sim_network):
    net = sim_network(modems=1, seed=3)
    net.set_fault(0, "cms_error", codes=[38, 41], probability=0.5)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1")
        answers = [submit(at) for _ in range(12)]
    errors = [a for a in answers if "+CMS ERROR" in a]
    assert 0 < len(errors) < 12
    assert {a.strip() for a in errors} <= {"+CMS ERROR: 38", "+CMS ERROR: 41"}


def test_hang_answers_nothing_then_recovers(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        net.set_fault(0, "hang", seconds=0.5)
        started = time.monotonic()
        at.write(b"AT\r")
        assert at.silence(0.3) == b""
        # The line sent during the hang was lost: once it is over, one AT gets one OK.
        while time.monotonic() - started < 0.5:
            at.silence(0.05)
        assert at.command("AT") == "\r\nOK\r\n"
        assert at.silence(0.1) == b""


def test_unplug_and_replug(sim_network):
    net = sim_network(modems=2, pin="1234")
    path = net.modems[1].path
    client = serial.Serial(path, 115200, timeout=1)
    net.set_fault(1, "unplug")
    assert not os.path.lexists(path)
    with pytest.raises(serial.SerialException):
        client.read(1)  # the tty is gone under the client's feet
    client.close()
    net.inject_sms(1, OUTSIDE, "while unplugged")  # the network keeps it
    net.set_fault(1, "replug")
    assert os.path.islink(path) and os.readlink(path).startswith("/dev/pts/")  # the kernel may reuse the number
    with AtTerminal(path) as at:
        at.command("ATE0")
        assert "+CPIN: SIM PIN" in at.command("AT+CPIN?")  # a power cycle: PIN again
        at.write(b'AT+CPIN="1234"\r')
        assert re.search(rb'\+CMTI: "SM",1', at.read_until(re.compile(rb'\+CMTI: "SM",1\r\n')))


def test_reboot_restores_power_up_settings_and_prints_the_dialects_start_up_lines(sim_network):
    net = sim_network(modems=2, profile="simcom", pin="1234")
    with AtTerminal(net.modems[0].path) as at:
        at.command('ATE0;+CMEE=1;+CNMI=2,1,0,2,0;+CSMS=1')
        at.command('AT+CPIN="1234"')
        net.set_fault(0, "reboot")
        boot = at.read_until(re.compile(rb"SMS Ready\r\n")).decode()
        assert [line for line in boot.split("\r\n") if line] == [
            "RDY", "+CFUN: 1", "+CPIN: SIM PIN", "Call Ready", "SMS Ready"]
        assert at.command("AT+CNMI?") == "AT+CNMI?\r\r\n+CNMI: 2,1,0,0,0\r\n\r\nOK\r\n"  # echo is back on
        assert "+CSMS: 0" in at.command("AT+CSMS?")
        assert at.command("AT+CMGS=20").endswith("\r\n+CMS ERROR: 311\r\n")  # SIM PIN required again
        assert at.command("AT+CIMI").endswith("\r\nERROR\r\n")  # +CMEE=0: +CME ERROR: 11 shows as ERROR
    assert net.modems[0].number == "+4917000000000"


def test_reboot_with_another_sim(sim_network):
    net = sim_network(modems=2, profile="quectel")
    with AtTerminal(net.modems[0].path) as at:
        imei = at.command("AT+CGSN")
        net.reboot(0, sim=9)
        at.read_until(re.compile(rb"PB DONE\r\n"))
        at.command("ATE0")
        assert "262010000000009" in at.command("AT+CIMI")
        assert at.command("AT+CGSN").endswith(imei.split("\r\n", 1)[1])  # the modem is the same
    assert (net.modems[0].imsi, net.modems[0].number) == ("262010000000009", "+4917000000009")
    net.inject_sms(1, OUTSIDE, "to the new number")  # the network routes by the new number
    with pytest.raises(SimError, match="is in modem 1"):
        net.reboot(0, sim=1)
    net.unplug(1)
    with pytest.raises(SimError, match="unplugged"):
        net.reboot(1)
    with pytest.raises(SimError, match="does not take"):
        net.set_fault(0, "reboot", seconds=1)


def test_storage_full(sim_network):
    net = sim_network(modems=1, delivery_interval=0)
    net.set_fault(0, "storage_full")
    net.inject_sms(0, OUTSIDE, "waits in the network")
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1")
        assert '+CPMS: "SM",20,20,"SM",20,20,"SM",20,20' in at.command("AT+CPMS?")
        part = encode_submit(OUTSIDE, "draft")[0]
        assert at.command(f"AT+CMGW={part.length}").endswith("> ")
        at.write(part.pdu.encode() + b"\x1a")
        assert at.read_until(re.compile(rb"ERROR: \d+\r\n")) == b"\r\n+CMS ERROR: 322\r\n"
        assert net.stored_messages(0) == []
        net.clear_fault(0, "storage_full")
        assert re.search(rb'\+CMTI: "SM",1', at.read_until(re.compile(rb"\+CMTI: .*\r\n")))
        assert at.command(f"AT+CMGW={part.length}").endswith("> ")
        at.write(part.pdu.encode() + b"\x1a")
        assert at.read_until(OK) == b"\r\n+CMGW: 2\r\n\r\nOK\r\n"


def test_unsolicited_lines_inside_a_response(sim_network):
    net = sim_network(modems=1)
    net.set_fault(0, "urc_in_response", lines=["RING", "^RSSI: 5", '+CMTI: "SM",3'], count=1)
    with AtTerminal(net.modems[0].path) as at:
        at.write(b"ATE0;+CSQ\r")
        answer = at.read_until(OK)
        assert answer == b'ATE0;+CSQ\r\r\n+CSQ: 20,99\r\n\r\nRING\r\n^RSSI: 5\r\n+CMTI: "SM",3\r\n\r\nOK\r\n'
        assert at.command("AT+CSQ") == "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"  # count=1: once only


def test_unsolicited_line_between_a_list_header_and_its_pdu(sim_network):
    net = sim_network(modems=1)
    [pdu] = net.inject_sms(0, OUTSIDE, "listed")
    net.set_fault(0, "urc_in_response", lines=["RING"], where="first", count=1)
    with AtTerminal(net.modems[0].path) as at:
        at.write(b"ATE0;+CMGL=4\r")
        answer = at.read_until(OK).decode()
        assert answer == f"ATE0;+CMGL=4\r\r\n+CMGL: 1,0,,{len(pdu) // 2 - 8}\r\n\r\nRING\r\n\r\n{pdu}\r\n\r\nOK\r\n"


def test_noise_bytes_including_invalid_utf8(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        net.set_fault(0, "noise", data="ff00c328fe0d0a", count=1)
        assert at.read_until(re.compile(rb"\xfe\r\n")) == b"\xff\x00\xc3\x28\xfe\r\n"  # at once, by itself
        answer = at.command("AT").encode("latin-1")
        assert answer == b"\xff\x00\xc3\x28\xfe\r\n\r\nOK\r\n"  # and before the next answer
        with pytest.raises(UnicodeDecodeError):
            answer.decode("utf-8")
        assert at.command("AT") == "\r\nOK\r\n"


def test_slow_prompt_drops_what_came_before_it(sim_network):
    net = sim_network(modems=1)
    net.set_fault(0, "slow_prompt", seconds=0.4)
    part = encode_submit(OUTSIDE, "patience")[0]
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        started = time.monotonic()
        at.write(f"AT+CMGS={part.length}\r".encode() + part.pdu.encode())  # an impatient client
        assert at.read_until(re.compile(rb"> $")) == b"\r\n> "
        assert time.monotonic() - started >= 0.4
        at.write(part.pdu.encode() + b"\x1a")
        assert b"+CMGS:" in at.read_until(OK)
    assert [s["text"] for s in net.submissions] == ["patience"]


def test_late_cmgs_arrives_after_the_clients_timeout(sim_network):
    net = sim_network(modems=1)
    net.set_fault(0, "late_cmgs", seconds=0.6)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        with pytest.raises(TimeoutError):
            submit(at, "late", timeout=0.2)
        assert net.submissions == []
        late = at.read_until(OK, timeout=2).decode()
        assert re.fullmatch(r"\r\n\+CMGS: (\d+)\r\n\r\nOK\r\n", late)
        assert net.wait_for_submissions(1)[0]["text"] == "late"
        assert re.fullmatch(r"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", submit(at, "on time", timeout=1))  # once only


def test_bad_fault_requests_say_what_to_send(sim_network):
    net = sim_network(modems=1)
    with pytest.raises(SimError, match="known:"):
        net.set_fault(0, "gremlins")
    with pytest.raises(SimError, match="seconds"):
        net.set_fault(0, "hang")
    with pytest.raises(SimError, match="modems 0 to 0"):
        net.set_fault(3, "hang", seconds=1)
    assert decode_pdu(net.inject_sms(0, OUTSIDE, "still fine")[0]).text == "still fine"
