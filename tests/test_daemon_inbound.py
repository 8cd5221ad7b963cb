"""Inbound: PDUs to incoming/ files, multipart through the parts store, reports to report/."""

from __future__ import annotations

import datetime as dt

import pytest

from gsmgw.daemon.inbound import Inbound
from gsmgw.sms import encode_deliver, encode_status_report, encode_submit
from gsmgw.spool.format import make_outgoing, read_spool_file, seal
from gsmgw.spool.journal import NewMessage, NewPart, SqliteJournal
from gsmgw.spool.store import Spool
from helpers import SEAL_KEY

TZ = dt.timezone(dt.timedelta(hours=1))
SCTS = dt.datetime(2026, 11, 24, 10, 15, 3, tzinfo=TZ)


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    spool = Spool(tmp_path / "spool", seal_key=SEAL_KEY)
    spool.ensure_dirs()
    journal = SqliteJournal(tmp_path / "state" / "journal.sqlite")
    clock = Clock()
    inbound = Inbound(spool, journal, None, reassembly_timeout=3600, clock=clock)
    yield spool, journal, inbound, clock
    journal.close()


def incoming(spool):
    return [read_spool_file(spool.read("incoming", name)) for name in spool.list("incoming")]


def test_single_sms_with_emoji_is_written_exactly(setup):
    spool, journal, inbound, _ = setup
    (pdu,) = encode_deliver("+4915112345678", "Grüße 😀", timestamp=SCTS, smsc="+491710760000")
    result = inbound.accept_pdu(pdu, modem="gsm1", imsi="262010000000001")
    assert result.durable and result.kind == "message" and result.name.startswith("gsm1-")
    (file,) = incoming(spool)
    assert file.body.decode() == "Grüße 😀"
    h = file.headers
    assert (h.get("From"), h.get("Modem"), h.get("IMSI"), h.get("Alphabet"), h.get("Parts")) == (
        "+4915112345678", "gsm1", "262010000000001", "UCS2", "1",
    )
    assert h.get("Sent") == "2026-11-24T10:15:03+01:00" and h.get("From_SMSC") == "+491710760000"


def test_multipart_parts_wait_in_the_store_then_join_even_out_of_order(setup):
    spool, journal, inbound, _ = setup
    text = "😀" * 80  # UCS-2, surrogate pairs across part boundaries
    pdus = encode_deliver("+4915112345678", text, timestamp=SCTS, ref=42)
    assert len(pdus) >= 3
    results = [inbound.accept_pdu(p, modem="gsm1", imsi="sim") for p in reversed(pdus)]
    assert [r.kind for r in results] == ["part"] * (len(pdus) - 1) + ["message"]
    (file,) = incoming(spool)
    assert file.body.decode() == text
    assert file.headers.get("Parts") == str(len(pdus))
    assert journal.complete_inbound_groups() == []


def test_parts_survive_a_restart(setup, tmp_path):
    spool, journal, inbound, clock = setup
    pdus = encode_deliver("+4915112345678", "x" * 200, timestamp=SCTS, ref=7)
    inbound.accept_pdu(pdus[0], modem="gsm1", imsi="sim")
    journal.close()
    again = SqliteJournal(journal.path)
    second = Inbound(spool, again, None, clock=clock)
    second.accept_pdu(pdus[1], modem="gsm1", imsi="sim")
    (file,) = incoming(spool)
    assert file.body.decode() == "x" * 200
    again.close()


def test_missing_part_times_out_as_incomplete(setup):
    spool, journal, inbound, clock = setup
    pdus = encode_deliver("+4915112345678", "a" * 153 + "b" * 153 + "c" * 10, timestamp=SCTS, ref=9)
    inbound.accept_pdu(pdus[0], modem="gsm1", imsi="sim")
    inbound.accept_pdu(pdus[2], modem="gsm1", imsi="sim")
    assert inbound.flush() == []
    clock.now += 3601
    (name,) = inbound.flush()
    (file,) = incoming(spool)
    assert file.headers.get("Incomplete") == "yes"
    assert file.body.decode() == "a" * 153 + "c" * 10


def test_undecodable_pdu_is_saved_with_its_hex_and_reason(setup):
    spool, _, inbound, _ = setup
    result = inbound.accept_pdu("0791947101670000040C91", modem="gsm2", imsi=None)
    assert result.kind == "undecodable" and result.durable
    (file,) = incoming(spool)
    assert file.headers.get("PDU") == "0791947101670000040C91"
    assert file.headers.get("Decode_error")
    assert file.body.decode().strip() == "0791947101670000040C91"


def test_report_updates_sent_file_and_writes_report(setup):
    spool, journal, inbound, clock = setup
    to = "+4915112345678"
    original = seal(make_outgoing(to=to, text="hello", extra={"Client": "zabbix"}), SEAL_KEY)
    spool.write_atomic("sent", "msg1", original)
    parts = encode_submit(to, "hello", report=True)
    journal.add_messages([NewMessage("msg1", to, [NewPart(1, parts[0].pdu, parts[0].length)], report=True)], clock.now)
    journal.claim("msg1", "gsm1")
    journal.mark_submitting("msg1", 1, "gsm1", "sim")
    journal.mark_submitted("msg1", 1, 33, clock.now, sim="sim", report=True)
    journal.mark_sent("msg1", "gsm1", "sim", clock.now)
    clock.now += 5
    report = encode_status_report(mr=33, recipient=to, scts=SCTS, discharge=SCTS, status=0)
    result = inbound.accept_pdu(report, modem="gsm1", imsi="sim")
    assert result.kind == "report"
    (name,) = spool.list("report")
    rep = read_spool_file(spool.read("report", name))
    assert rep.headers.get("Sent_file") == "msg1" and rep.headers.get("Message_id") == "33"
    assert rep.headers.get("Status").startswith("delivered 0")
    sent = spool.verified(spool.read("sent", "msg1"))
    assert sent.headers.get("Status").startswith("delivered") and sent.headers.get("Delivered")
    assert sent.headers.get("Client") == "zabbix"
    assert journal.message("msg1").state == "delivered"


def test_a_part_read_again_after_its_message_was_written_is_not_a_new_message(setup):
    spool, journal, inbound, clock = setup
    pdus = encode_deliver("+4915112345678", "p" * 200, timestamp=SCTS, ref=3)
    for pdu in pdus:
        inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
    again = inbound.accept_pdu(pdus[0], modem="gsm1", imsi="sim")  # its deletion had failed
    assert again.kind == "duplicate" and again.durable
    clock.now += 7200
    assert inbound.flush() == []  # no "Incomplete" ghost
    assert len(spool.list("incoming")) == 1
    # The same text sent again later is a new message (new time stamp): it is kept.
    later = encode_deliver("+4915112345678", "p" * 200, timestamp=SCTS.replace(minute=16), ref=3)
    for pdu in later:
        inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
    assert len(spool.list("incoming")) == 2


def test_a_single_sms_read_again_is_written_once_whatever_the_crash_left(setup):
    spool, journal, inbound, clock = setup
    from gsmgw.daemon.inbound import _part_key

    (first,) = encode_deliver("+4915112345678", "one", timestamp=SCTS)
    written = inbound.accept_pdu(first, modem="gsm1", imsi="sim")
    spool.remove("incoming", written.name)  # a consumer took the file; the SIM copy is still there
    again = inbound.accept_pdu(first, modem="gsm1", imsi="sim")
    assert (again.kind, again.name, spool.list("incoming")) == ("duplicate", written.name, [])

    # A crash after the journal named the file and before it was written: it is written now.
    (second,) = encode_deliver("+4915112345678", "two", timestamp=SCTS)
    journal.record_inbound_file(_part_key("sim", second), "gsm1-20261124-101503-crash", clock())
    result = inbound.accept_pdu(second, modem="gsm1", imsi="sim")
    assert (result.kind, result.name) == ("message", "gsm1-20261124-101503-crash")
    assert [f.body.decode() for f in incoming(spool)] == ["two"]
    assert inbound.accept_pdu(second, modem="gsm1", imsi="sim").kind == "duplicate"


# --- binary messages and user data headers (issue 13) -------------------------------------------

WAP_UDH = bytes.fromhex("0605040B8423F0")


def test_a_wap_push_is_written_as_smstools3_writes_binary_and_can_be_sent_again(setup):
    """GM at-sms/33 (gammu's test suite): a WAP push MMS notification, 8-bit, ports 2948 <- 9200."""
    from gsmgw.spool.format import parse_outgoing, read_incoming, update_headers

    spool, _, inbound, _ = setup
    pdu = (
        "07913307005630F0440BA13307570230F00006017010900412806A0605040B8423F0040603BEAF848C82983132373739"
        "3730303539008D92891980160433333730373532303033302F545950453D504C4D4E009679424F008A808E0122880481"
        "020BB883687474703A2F2F6D6D73632E6C61626D6374656C2E66723A393039302F6D333300"
    )
    assert inbound.accept_pdu(pdu, modem="gsm1", imsi="sim").kind == "message"
    (name,) = spool.list("incoming")
    data = spool.read("incoming", name)
    headers = read_spool_file(data).headers
    # smstools3's spelling in received files (fileformat.html, "Received messages"): UDH: true|false.
    assert (headers.get("Alphabet"), headers.get("UDH"), headers.get("UDH-DATA"), headers.get("Hex")) == (
        "binary", "true", "06 05 04 0B 84 23 F0", "yes")
    assert (headers.get("Port"), headers.get("From_port")) == ("2948", "9200")
    incoming_file = read_incoming(data)
    assert incoming_file.data[:9] == bytes.fromhex("040603BEAF848C8298") and len(incoming_file.data) == 99
    # The file is an outgoing file too: with a To: it sends the same header and data.
    again = parse_outgoing(update_headers(data, {"To": "+4915112345678"}), now=dt.datetime.now(TZ))
    assert (again.udh, again.data) == (WAP_UDH, incoming_file.data)


def test_multipart_binary_is_joined_with_the_senders_header_once(setup):
    spool, _, inbound, _ = setup
    payload = bytes(range(256)) + bytes(44)  # 128 octets a part beside the ports and concatenation IEs
    pdus = encode_deliver("+4915112345678", data=payload, udh=WAP_UDH, timestamp=SCTS, ref=5)
    assert len(pdus) == 3
    for pdu in pdus:
        inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
    (file,) = incoming(spool)
    assert file.body == payload.hex().upper().encode()
    assert file.headers.get("UDH-DATA") == "06 05 04 0B 84 23 F0" and file.headers.get("Parts") == "3"


def test_binary_without_a_header_says_udh_false():
    from gsmgw.spool.format import build_incoming, parse_outgoing, update_headers

    data = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=None,
                          received=SCTS, modem="gsm1", imsi=None, alphabet="8bit", parts=1, data=b"\x00")
    assert b"Alphabet: binary\nUDH: false\nHex: yes\n" in data and data.endswith(b"\n\n00")
    # Read back as an outgoing file (with a To:), UDH: false means the data has no header.
    again = parse_outgoing(update_headers(data, {"To": "+4915112345678"}), now=dt.datetime.now(TZ))
    assert (again.udh, again.data) == (None, b"\x00")


def test_a_port_addressed_text_keeps_its_text_and_its_header(setup):
    """smstools3 writes a text with a header as text, with UDH: and UDH-DATA:; 8-bit ports too."""
    spool, _, inbound, _ = setup
    (pdu,) = encode_deliver("+4915112345678", "BEGIN:VCARD", ports=(9204, 9204), timestamp=SCTS)
    inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
    (eight_bit_ports,) = encode_deliver("+4915112345678", "x", udh=bytes.fromhex("0404020205"), timestamp=SCTS)
    inbound.accept_pdu(eight_bit_ports, modem="gsm1", imsi="sim")
    first, second = sorted(incoming(spool), key=lambda file: file.body != b"BEGIN:VCARD")
    assert first.body == b"BEGIN:VCARD" and first.headers.get("Alphabet") == "GSM"
    assert (first.headers.get("UDH"), first.headers.get("UDH-DATA"), first.headers.get("Port")) == (
        "true", "06 05 04 23 F4 23 F4", "9204")
    assert (second.headers.get("Port"), second.headers.get("From_port")) == ("2", "5")


def test_a_sim_ota_message_is_kept_as_binary_with_its_command_packet_header(setup):
    """SIM OTA (TS 23.048 over TS 23.040): PID 7F (SIM data download), DCS F6 (8-bit, class 2),
    UDH 02 70 00 (IE 70: command packet); a modem that shows it to the TE gets it written whole."""
    from gsmgw.sms.pdu import encode_timestamp
    from gsmgw.spool.format import read_incoming

    spool, _, inbound, _ = setup
    packet = bytes.fromhex("00280D150000000000000000B0010000")
    user_data = bytes.fromhex("027000") + packet
    tpdu = (bytes.fromhex("440B919471000000F0") + bytes((0x7F, 0xF6)) + encode_timestamp(SCTS)
            + bytes((len(user_data),)) + user_data)
    assert inbound.accept_pdu("00" + tpdu.hex(), modem="gsm1", imsi="sim").kind == "message"
    (name,) = spool.list("incoming")
    written = read_incoming(spool.read("incoming", name))
    assert (written.headers.get("Alphabet"), written.headers.get("UDH-DATA"), written.data) == (
        "binary", "02 70 00", packet)


def test_a_national_text_has_no_udh_data(setup):
    """The shift IEs of a national text are applied in decoding; they are not a header to keep."""
    spool, _, inbound, _ = setup
    (pdu,) = encode_deliver("+4915112345678", "नमस्ते दुनिया", national_languages=["hi"], timestamp=SCTS)
    inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
    (file,) = incoming(spool)
    assert file.body.decode() == "नमस्ते दुनिया" and file.headers.get("UDH-DATA") is None


def test_the_received_event_carries_the_data(tmp_path):
    import asyncio

    from gsmgw.daemon.events import EventBus
    from gsmgw.events import MessageReceived

    async def scenario():
        spool = Spool(tmp_path / "spool")
        spool.ensure_dirs()
        journal = SqliteJournal(tmp_path / "journal.sqlite")
        bus = EventBus()
        seen = []
        bus.subscribe(seen.append)
        inbound = Inbound(spool, journal, bus, clock=Clock())
        (pdu,) = encode_deliver("+4915112345678", data=b"\x01\x02", udh=WAP_UDH, timestamp=SCTS)
        inbound.accept_pdu(pdu, modem="gsm1", imsi="sim")
        await asyncio.sleep(0)
        journal.close()
        return seen

    (event,) = asyncio.run(scenario())
    assert isinstance(event, MessageReceived) and event.binary
    assert (event.data, event.udh, event.ports, event.text) == (b"\x01\x02", WAP_UDH, (2948, 9200), "0102")
