"""The AT command engine of a simulated modem, seen over its pty with pyserial."""

from __future__ import annotations

import re

import pytest
from simfixtures import AtTerminal

from gsmgw.sim.atline import Command, LineSyntaxError, split_line
from gsmgw.sim.identity import identity_for, luhn_digit
from gsmgw.sms import decode_pdu, encode_submit


def test_line_splitting_follows_v250():
    assert split_line("E0V1") == [Command("E", "action", "0"), Command("V", "action", "1")]
    assert split_line('+CMGF=0;+CSCA="+49171",145;+CPMS?') == [
        Command("+CMGF", "set", "0"),
        Command("+CSCA", "set", '"+49171",145'),
        Command("+CPMS", "read"),
    ]
    assert split_line("&FE0S0=0+CMGF=?") == [
        Command("&F", "action", ""),
        Command("E", "action", "0"),
        Command("S0", "set", "0"),
        Command("+CMGF", "test"),
    ]
    assert split_line('+CUSD=1,"*100#;x",15') == [Command("+CUSD", "set", '1,"*100#;x",15')]
    with pytest.raises(LineSyntaxError):
        split_line('+CSCA="+49')


def test_identities_are_deterministic_and_check_digits_valid():
    first = identity_for(0)
    assert (first.number, first.imsi, first.operator.long_name) == ("+4917000000000", "262010000000000", "Telekom.de")
    second = identity_for(1)
    assert (second.number, second.imsi) == ("+4917000000001", "262020000000001")
    for identity in (first, second, identity_for(42)):
        assert luhn_digit(identity.imei[:-1]) == identity.imei[-1] and len(identity.imei) == 15
        assert luhn_digit(identity.iccid[:-1]) == identity.iccid[-1]


def test_echo_framing_and_lowercase(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        assert at.command("AT") == "AT\r\r\nOK\r\n"  # echo on after power-up
        assert at.command("ate0") == "ate0\r\r\nOK\r\n"  # the echo of ATE0 itself still comes
        assert at.command("AT") == "\r\nOK\r\n"
        assert at.command("at+cgsn;+cimi") == f"\r\n{net.modems[0].imei}\r\n\r\n{net.modems[0].imsi}\r\n\r\nOK\r\n"
        assert at.command("AT+NOSUCH") == "\r\nERROR\r\n"
        assert at.command("garbage without prefix then AT") == "\r\nOK\r\n"
        at.write(b"ATV0\r")  # numeric results: "0<CR>", info lines without the leading CR LF
        assert at.read_until(re.compile(rb"0\r")) == b"0\r"
        at.write(b"AT+CSQ\r")
        assert at.read_until(re.compile(rb"\r\n0\r")) == b"+CSQ: 20,99\r\n0\r"
        assert at.command("ATZ") == "\r\nOK\r\n"  # ATZ restores verbose and echo...
        assert at.command("AT") == "AT\r\r\nOK\r\n"  # ...from the next line on


def test_cmee_decides_the_error_form(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        assert at.command("AT+CPIN=1234").endswith("\r\nERROR\r\n")  # +CME errors become ERROR
        assert at.command("AT+CMGR=999").endswith("\r\n+CMS ERROR: 321\r\n")  # 27.005 §3.2.5: +CMS stays
        at.command("AT+CMEE=1")
        assert at.command("AT+CMGR=999").endswith("\r\n+CMS ERROR: 321\r\n")
        assert at.command("AT+CPIN=1234").endswith("\r\n+CME ERROR: 3\r\n")
        at.command("AT+CMEE=2")
        assert at.command("AT+CMGR=999").endswith("\r\n+CMS ERROR: invalid memory index\r\n")
        # A failing command stops the rest of its line.
        answer = at.command("AT+CMEE?;+CMGR=999;+CMEE=0")
        assert answer == "\r\n+CMEE: 2\r\n\r\n+CMS ERROR: invalid memory index\r\n"


def test_startup_commands_of_real_clients(sim_network):
    net = sim_network(modems=1)
    expected = {
        "AT+CMGF=?": "+CMGF: (0)",
        "AT+CPMS=?": '+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")',
        "AT+CNMI=?": "+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)",
        "AT+CPIN?": "+CPIN: READY",
        "AT+CREG?": "+CREG: 0,1",
        "AT+CGREG?": "+CGREG: 0,1",
        "AT+COPS?": '+COPS: 0,0,"Telekom.de",2',
        "AT+CSCA?": '+CSCA: "+491710760000",145',
        "AT+CSMS=1": "+CSMS: 1,1,1",
        "AT+CNUM": '+CNUM: "","+4917000000000",145',
        "AT+CCID": f"+CCID: {net.modems[0].iccid}",
        "AT+GCAP": "+GCAP: +CGSM,+DS,+ES",
        "AT+CFUN?": "+CFUN: 1",
        "AT+CGMI": "gsmgw",
    }
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        for command, line in expected.items():
            assert at.command(command) == f"\r\n{line}\r\n\r\nOK\r\n", command
        for command in ("AT&F", "ATE0", "ATV1", "AT+CMEE=1", "AT+CLIP=1", "AT+CRC=1", "AT+CVHU=0", "ATH",
                        'AT+CSCS="GSM"', "AT+CMGF=0", "AT+COPS=3,0", "AT+CNMI=2,1,0,2,0", "AT+CSMP=17,167,0,0",
                        'AT+CPMS="SM","SM","SM"', "AT+CREG=2"):
            assert at.command(command).endswith("\r\nOK\r\n"), command
        assert at.command("ATS0=2S0?") == "\r\n002\r\n\r\nOK\r\n"
        for command in ("AT+CLAC=?", "AT+CMGS=?", "AT+CMGR=?", "AT+CPIN=?", "AT+CIMI=?", "AT+CGMI=?"):
            assert at.command(command) == "\r\nOK\r\n", command
        assert "AT+CMGS" in at.command("AT+CLAC")
        assert at.command("AT+CMGF=1").endswith("+CMS ERROR: 303\r\n")  # PDU mode only
        at.command("AT+CUSD=1,\"*100#\",15")
        assert at.read_until(re.compile(rb'\+CUSD: 0,"[^"]+",15\r\n'))


def test_submit_prompt_ctrl_z_and_esc(sim_network):
    net = sim_network(modems=2)
    part = encode_submit(net.modems[1].number, "hello")[0]
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0")
        assert at.command(f"AT+CMGS={part.length}") == "\r\n> "
        at.write(b"\x1b")  # ESC: nothing is sent
        assert at.read_until(re.compile(rb"\r\nOK\r\n")) == b"\r\nOK\r\n"
        assert net.submissions == []
        assert at.command(f"AT+CMGS={part.length}") == "\r\n> "
        at.write(part.pdu.encode() + b"\x1a")
        answer = at.read_until(re.compile(rb"\r\nOK\r\n")).decode()
        assert re.fullmatch(r"\r\n\+CMGS: (\d+)\r\n\r\nOK\r\n", answer)
        # A length that does not match the PDU is refused.
        assert at.command(f"AT+CMGS={part.length + 1}") == "\r\n> "
        at.write(part.pdu.encode() + b"\x1a")
        assert at.read_until(re.compile(rb"ERROR: 304\r\n")) == b"\r\n+CMS ERROR: 304\r\n"
    record = net.wait_for_submissions(1)[0]
    assert record["text"] == "hello" and record["to"] == net.modems[1].number
    assert len(net.submissions) == 1


def test_port_can_be_closed_and_reopened(sim_network):
    net = sim_network(modems=1)
    for _ in range(3):
        with AtTerminal(net.modems[0].path) as at:
            assert at.command("AT").endswith("\r\nOK\r\n")


@pytest.mark.parametrize(
    "profile, first_index, header",
    [("generic", 1, "+CMGL: 1,0,,"), ("huawei", 0, "+CMGL: 0,0,,"), ("simcom", 1, '+CMGL: 1,0,"",'),
     ("quectel", 0, "+CMGL: 0,0,,")],
)
def test_dialects_list_layout(sim_network, profile, first_index, header):
    net = sim_network(modems=1, profile=profile)
    net.inject_sms(0, "+4915112345678", "dialect")
    with AtTerminal(net.modems[0].path) as at:
        answer = at.command("ATE0;+CMGL=4")
        assert header in answer
        pdu = answer.split("\r\n")[2]
        assert decode_pdu(pdu).text == "dialect"
        answer = at.command(f"AT+CMGR={first_index}")
        assert decode_pdu(answer.split("\r\n")[2]).text == "dialect"


def test_vendor_queries(sim_network):
    net = sim_network(modems=3, profile=["huawei", "simcom", "quectel"], pin="1234")
    with AtTerminal(net.modems[0].path) as huawei:
        huawei.command("AT^CURC=0;E0")
        assert "^CPIN: SIM PIN,3,10,3,10,3" in huawei.command("AT^CPIN?")
        iccid = net.modems[0].iccid
        swapped = "".join(iccid[i + 1] + iccid[i] for i in range(0, 20, 2))
        assert f"^ICCID: {swapped}" in huawei.command("AT^ICCID?")
    with AtTerminal(net.modems[1].path) as simcom:
        assert "+SPIC: 3,3,10,10" in simcom.command("ATE0;+SPIC")
        assert f"\r\n{net.modems[1].iccid}\r\n" in simcom.command("AT+CCID")
    with AtTerminal(net.modems[2].path) as quectel:
        assert '+QPINC: "SC",3,10' in quectel.command("ATE0;+QPINC?")
        assert "ERROR" in quectel.command("AT^CPIN?")  # another vendor's command
