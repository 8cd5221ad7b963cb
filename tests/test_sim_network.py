"""The simulated network: delivery between SIMs, routing per +CNMI, reports, the sink, PIN/PUK."""

from __future__ import annotations

import json
import re
import threading
import time

from simfixtures import AtTerminal

from gsmgw.sms import decode_pdu, encode_submit

OUTSIDE = "+4915112345678"
URC_CMTI = re.compile(rb'\+CMTI: "(\w+)",(\d+)\r\n')
URC_CDS = re.compile(rb"\+CDS: (\d+)\r\n([0-9A-F]+)\r\n")
URC_CMT = re.compile(rb"\+CMT: ,(\d+)\r\n([0-9A-F]+)\r\n")


def send(at: AtTerminal, to: str, text: str, **options) -> list[int]:
    """Submit like a client does; the MRs that +CMGS answered."""
    mrs = []
    for part in encode_submit(to, text, **options):
        assert at.command(f"AT+CMGS={part.length}").endswith("> ")
        at.write(part.pdu.encode() + b"\x1a")
        answer = at.read_until(re.compile(rb"\r\n(OK|ERROR|\+CMS ERROR: \d+)\r\n"), timeout=10).decode()
        match = re.search(r"\+CMGS: (\d+)", answer)
        assert match, answer
        mrs.append(int(match.group(1)))
    return mrs


def join_gsmmodem_notification_threads(timeout: float = 5.0) -> None:
    """python-gsmmodem handles each +CMTI/+CDSI in a thread of its own that reads and deletes the
    message; closing the port under it makes it time out later, inside some other test. Wait for
    them before close()."""
    for thread in threading.enumerate():
        if "HandleModemNotification" in thread.name:
            thread.join(timeout)
            assert not thread.is_alive(), f"python-gsmmodem's {thread.name} did not finish in {timeout} s"


def test_python_gsmmodem_sends_multipart_unicode_to_another_sim(sim_network):
    from gsmmodem.modem import GsmModem

    net = sim_network(modems=2, latency=0.05)
    text = "Grüße aus Köln ☃ — Привет мир! " * 6  # 186 characters: UCS-2 in 3 parts of at most 67
    received = []
    all_parts = threading.Event()

    def on_sms(sms):
        received.append(sms)
        if len(received) == 3:
            all_parts.set()

    # No reports asked: they would reach the sender's notification thread after close() below.
    sender = GsmModem(net.modems[0].path, 115200, requestDelivery=False)
    receiver = GsmModem(net.modems[1].path, 115200, smsReceivedCallbackFunc=on_sms)
    sender.connect()
    receiver.connect()
    try:
        assert sender.imei == net.modems[0].imei
        sender.sendSms(net.modems[1].number, text)
        assert all_parts.wait(10), f"{len(received)} of 3 parts arrived"
        # python-gsmmodem deletes each message after its callback and tells nobody when that is
        # done; watch the SIM so that close() does not cut its AT+CMGD short.
        deadline = time.monotonic() + 5
        while net.stored_messages(1, "ME") or net.stored_messages(1, "SM"):
            assert time.monotonic() < deadline, "the receiver did not delete the parts it read"
            time.sleep(0.02)
        join_gsmmodem_notification_threads()
    finally:
        sender.close()
        receiver.close()
    parts = sorted(received, key=lambda sms: sms.udh[0].number)
    assert "".join(sms.text for sms in parts) == text
    assert {sms.number for sms in parts} == {net.modems[0].number}

    submissions = net.submissions
    assert [s["concat"]["seq"] for s in submissions] == [1, 2, 3]
    assert {(s["from"], s["to"], s["alphabet"], s["outside"]) for s in submissions} == {
        (net.modems[0].number, net.modems[1].number, "ucs2", False)
    }
    assert "".join(s["text"] for s in submissions) == text
    logged = [json.loads(line) for line in (net.directory / "network.jsonl").read_text().splitlines()]
    assert logged == submissions


def test_python_gsmmodem_gets_its_delivery_report(sim_network):
    from gsmmodem.modem import GsmModem, StatusReport

    net = sim_network(modems=1)
    modem = GsmModem(net.modems[0].path, 115200)
    modem.connect()
    try:
        sent = modem.sendSms(OUTSIDE, "report me", waitForDeliveryReport=True, deliveryTimeout=10)
        join_gsmmodem_notification_threads()
    finally:
        modem.close()
    # python-gsmmodem matches the report to the message by the TP-MR that +CMGS gave it.
    assert sent.report is not None and sent.report.deliveryStatus == StatusReport.DELIVERED
    assert sent.reference == net.submissions[0]["mr"] == net.reports[0]["mr"]


def test_stored_delivery_and_status_report_with_matching_mr(sim_network):
    net = sim_network(modems=2)
    with AtTerminal(net.modems[0].path) as alice, AtTerminal(net.modems[1].path) as bob:
        alice.command("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
        bob.command("ATE0;+CMEE=1;+CNMI=2,1,0,0,0")
        [mr] = send(alice, net.modems[1].number, "report please", report=True)
        storage, index = URC_CMTI.search(bob.read_until(URC_CMTI)).groups()
        assert storage == b"SM"
        answer = bob.command(f"AT+CMGR={int(index)}")
        header, pdu = answer.split("\r\n")[1:3]
        assert header.startswith("+CMGR: 0,,")  # REC UNREAD, then read
        message = decode_pdu(pdu)
        assert (message.type, message.number, message.text) == ("deliver", net.modems[0].number, "report please")
        length, report_pdu = URC_CDS.search(alice.read_until(URC_CDS)).groups()
        report = decode_pdu(report_pdu.decode())
        assert (report.type, report.mr, report.status, report.number) == ("status-report", mr, 0, net.modems[1].number)
        assert int(length) == report.tpdu_length
        assert "+CMGR: 1,," in bob.command(f"AT+CMGR={int(index)}")


def test_a_text_in_national_tables_reaches_the_other_sim_in_its_tables(sim_network):
    """A Hindi text sent with the Hindi locking and single shift tables (2 parts, not 4 in UCS-2)
    is delivered, with those tables, and its report comes back (the network once refused it:
    it re-encoded the text without the sender's tables and dropped it)."""
    hindi = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6
    net = sim_network(modems=2)
    with AtTerminal(net.modems[0].path) as alice, AtTerminal(net.modems[1].path) as bob:
        alice.command("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
        bob.command("ATE0;+CMEE=1;+CNMI=2,2,0,0,0")
        send(alice, net.modems[1].number, hindi, national_languages=["hi"], report=True, ref=9)
        parts = []
        for _ in range(2):
            parts.append(decode_pdu(URC_CMT.search(bob.read_until(URC_CMT)).group(2).decode()))
        assert [(part.alphabet, part.national) for part in parts] == [("gsm7", (6, 6))] * 2
        assert "".join(part.text for part in sorted(parts, key=lambda part: part.concat.seq)) == hindi
        report = decode_pdu(URC_CDS.search(alice.read_until(URC_CDS)).group(2).decode())
        assert report.status == 0


def test_report_stored_in_sr_with_cdsi(sim_network):
    net = sim_network(modems=2)
    with AtTerminal(net.modems[0].path) as alice:
        alice.command("ATE0;+CNMI=2,1,0,2,0")
        [mr] = send(alice, OUTSIDE, "to the sink", report=True)
        match = re.search(rb'\+CDSI: "SR",(\d+)', alice.read_until(re.compile(rb'\+CDSI: "SR",\d+\r\n')))
        alice.command('AT+CPMS="SR"')
        answer = alice.command(f"AT+CMGR={int(match.group(1))}")
        report = decode_pdu(answer.split("\r\n")[2])
        assert (report.mr, report.status, report.number) == (mr, 0, OUTSIDE)
    [record] = net.submissions
    assert record["outside"] and record["report"] and record["mr"] == mr


def test_report_outcomes_pending_then_final_and_failed(sim_network):
    net = sim_network(modems=2)
    net.set_report_outcome(net.modems[1].number, [0x20, 0x00], interval=0.1)
    with AtTerminal(net.modems[0].path) as alice:
        alice.command("ATE0;+CNMI=2,1,0,1,0")
        [mr] = send(alice, net.modems[1].number, "slowly", report=True)
        first = URC_CDS.search(alice.read_until(URC_CDS))
        rest = alice.read_until(URC_CDS)
        statuses = [decode_pdu(m.group(2).decode()).status for m in (first, URC_CDS.search(rest))]
        assert statuses == [0x20, 0x00]
        net.set_report_outcome(OUTSIDE, [0x41])
        [mr] = send(alice, OUTSIDE, "never arrives", report=True)
        report = decode_pdu(URC_CDS.search(alice.read_until(URC_CDS)).group(2).decode())
        assert (report.mr, report.status) == (mr, 0x41)
    assert [r["status"] for r in net.reports] == [0x20, 0x00, 0x41]


def test_failed_outcome_is_not_delivered(sim_network):
    net = sim_network(modems=2)
    net.set_report_outcome(net.modems[1].number, [0x41])
    with AtTerminal(net.modems[0].path) as alice:
        alice.command("ATE0")
        send(alice, net.modems[1].number, "lost", report=True)
    net.wait_for_submissions(1)
    assert net.stored_messages(1) == []


def test_cmt_routing_and_cnma_with_service_1(sim_network):
    net = sim_network(modems=1, ack_timeout=0.3)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1;+CSMS=1;+CNMI=2,2,0,0,0")
        net.inject_sms(0, OUTSIDE, "first")
        net.inject_sms(0, OUTSIDE, "second")
        first = URC_CMT.search(at.read_until(URC_CMT))
        assert decode_pdu(first.group(2).decode()).text == "first"
        # 27.005 §3.4.1: no second +CMT before the first is acknowledged.
        assert URC_CMT.search(at.silence(0.1)) is None
        assert at.command("AT+CNMA").endswith("\r\nOK\r\n")
        second = URC_CMT.search(at.read_until(URC_CMT))
        assert decode_pdu(second.group(2).decode()).text == "second"
        assert at.command("AT+CNMA").endswith("OK\r\n")
        assert at.command("AT+CNMA").endswith("+CMS ERROR: 340\r\n")
        # Unacknowledged: after the timeout the ME switches routing off and the
        # network's retry lands in storage, without a URC.
        net.inject_sms(0, OUTSIDE, "third")
        URC_CMT.search(at.read_until(URC_CMT))
        deadline = time.monotonic() + 5
        while "+CNMI: 2,0,0,0,0" not in at.command("AT+CNMI?"):
            assert time.monotonic() < deadline, "routing was not switched off after the +CNMA timeout"
            at.silence(0.1)
        assert [decode_pdu(m["pdu"]).text for m in net.stored_messages(0)] == ["third"]


def test_cmt_with_service_0_needs_no_ack(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1;+CNMI=2,2,0,0,0")
        net.inject_sms(0, OUTSIDE, "direct")
        assert decode_pdu(URC_CMT.search(at.read_until(URC_CMT)).group(2).decode()).text == "direct"
        assert at.command("AT+CNMA").endswith("+CMS ERROR: 340\r\n")
    assert net.stored_messages(0) == []


def test_mode_0_buffers_urcs_until_cnmi_flushes(sim_network):
    net = sim_network(modems=1)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CNMI=0,1,0,0,0")
        net.inject_sms(0, OUTSIDE, "buffered")
        assert b"+CMTI" not in at.silence(0.1)
        at.write(b"AT+CNMI=2,1,0,0,0\r")  # <bfr> 0: the buffer is flushed after the OK
        assert at.read_until(URC_CMTI) == b'\r\nOK\r\n\r\n+CMTI: "SM",1\r\n'


def test_inject_text_unicode_multipart_data_and_raw_pdu(sim_network):
    net = sim_network(modems=1, delivery_interval=0)
    net.inject_sms(0, OUTSIDE, "plain")
    net.inject_sms(0, "Vodafone", "Ünïcödé ☃")
    net.inject_sms(0, OUTSIDE, "x" * 300, ref=77)
    net.inject_sms(0, OUTSIDE, data=b"\x00\xff\x10", ports=(2948, 9200))
    phone_pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    net.inject_sms(0, OUTSIDE, pdu=phone_pdu)
    stored = [decode_pdu(m["pdu"]) for m in net.stored_messages(0)]
    assert [m.text for m in stored[:2]] == ["plain", "Ünïcödé ☃"]
    assert stored[1].number == "Vodafone" and stored[1].alphabet == "ucs2"
    assert [(m.concat.ref, m.concat.seq, m.concat.total) for m in stored[2:4]] == [(77, 1, 2), (77, 2, 2)]
    assert stored[4].data == b"\x00\xff\x10" and stored[4].ports.destination == 2948
    assert stored[5].text == "How are you?"
    with AtTerminal(net.modems[0].path) as at:
        assert '\r\n+CPMS: "SM",6,20,' in at.command("ATE0;+CPMS?")


def test_full_storage_holds_messages_in_the_network(sim_network):
    net = sim_network(modems=1, profile="huawei", delivery_interval=0)
    for number in range(21):
        net.inject_sms(0, OUTSIDE, f"message {number}")
    assert len(net.stored_messages(0)) == 20
    with AtTerminal(net.modems[0].path) as at:
        at.command("AT^CURC=0;E0;+CMEE=1")
        assert '+CPMS: "SM",20,20' in at.command("AT+CPMS?")
        assert at.command("AT+CMGD=0").endswith("OK\r\n")
        storage, index = URC_CMTI.search(at.read_until(URC_CMTI)).groups()
        assert index == b"0"  # Huawei counts from 0; the waiting message took the freed slot
        assert decode_pdu(at.command("AT+CMGR=0").split("\r\n")[2]).text == "message 20"
        assert at.command("AT+CMGD=0,4").endswith("OK\r\n")
        assert '+CPMS: "SM",0,20' in at.command("AT+CPMS?")


def test_pin_puk_and_messages_waiting_for_the_pin(sim_network):
    net = sim_network(modems=1, pin="1234")
    net.inject_sms(0, OUTSIDE, "after the pin")
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1")
        assert "+CPIN: SIM PIN" in at.command("AT+CPIN?")
        assert at.command("AT+CMGL=4").endswith("+CMS ERROR: 311\r\n")
        assert at.command("AT+CIMI").endswith("+CME ERROR: 11\r\n")
        assert "+CREG: 0,0" in at.command("AT+CREG?")
        assert at.command('AT+CPIN="1234"').endswith("\r\nOK\r\n")
        assert URC_CMTI.search(at.read_until(URC_CMTI))  # the network delivers once registered
        assert "+CREG: 0,1" in at.command("AT+CREG?")

    net.replug(0)  # a power cycle asks for the PIN again
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1")
        for left in (2, 1):
            assert at.command('AT+CPIN="0000"').endswith("+CME ERROR: 16\r\n")
            assert f"+CPINR: SIM PIN,{left},3" in at.command('AT+CPINR="SIM PIN"')
        assert at.command('AT+CPIN="0000"').endswith("+CME ERROR: 16\r\n")
        assert "+CPIN: SIM PUK" in at.command("AT+CPIN?")
        assert "+CPINR: SIM PUK,10,10" in at.command("AT+CPINR")
        # A PIN alone while the SIM wants its PUK is refused without costing a PUK try.
        assert at.command('AT+CPIN="1234"').endswith("+CME ERROR: 50\r\n")
        assert "+CPINR: SIM PUK,10,10" in at.command("AT+CPINR")
        assert at.command('AT+CPIN="87654321","4321"').endswith("+CME ERROR: 16\r\n")
        assert "+CPINR: SIM PUK,9,10" in at.command("AT+CPINR")
        assert at.command('AT+CPIN="12345678","4321"').endswith("\r\nOK\r\n")
        assert "+CPIN: READY" in at.command("AT+CPIN?")
    net.replug(0)
    with AtTerminal(net.modems[0].path) as at:
        assert at.command('ATE0;+CPIN="4321"').endswith("\r\nOK\r\n")


def test_registration_takes_its_time_and_is_announced(sim_network):
    net = sim_network(modems=1, register_delay=0.3)
    with AtTerminal(net.modems[0].path) as at:
        at.command("ATE0;+CMEE=1;+CREG=1")
        assert "+CREG: 1,2" in at.command("AT+CREG?")  # searching
        assert "+CSQ: 99,99" in at.command("AT+CSQ")
        part = encode_submit(OUTSIDE, "too early")[0]
        assert at.command(f"AT+CMGS={part.length}").endswith("> ")
        at.write(part.pdu.encode() + b"\x1a")
        assert at.read_until(re.compile(rb"ERROR: \d+\r\n")).endswith(b"+CMS ERROR: 331\r\n")  # no network service
        assert at.read_until(re.compile(rb"\+CREG: 1\r\n"), timeout=3)
        assert "+CREG: 1,1" in at.command("AT+CREG?")
