"""Binary SMS and user data headers through the SMPP server (issue 13), with smpplib (a third-party
client) and raw PDUs: data_coding 2/4/0xF4-0xF7, esm_class UDHI, message_payload, sar_* TLVs,
destination_port/source_port; refusals with SMPP 3.4 §5.1.3 command_status; deliver_sm of
received binary messages."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from gammu_peer import gammu_decode, needs_gammu
from gsmgw.events import MessageReceived
from gsmgw.sms import encode_submit
from gsmgw.smpp.pdu import Status, Tag
from gsmgw.spool.format import parse_outgoing
from smppharness import ServerThread, bind, raw_bind, raw_read, raw_send, read_until, submit_pdu

WAP_UDH = bytes.fromhex("0605040B8423F0")
PUSH = bytes.fromhex("0106") + b"\x03WAP push\x00" + bytes(range(20))


@dataclasses.dataclass(frozen=True)
class Defaults:
    """The config's defaults as the SMPP server reads them."""

    max_parts: int
    report: bool = True
    validity: int | None = None
    national_languages: tuple[str, ...] = ()


def queued(smpp_gateway, name):
    return parse_outgoing(smpp_gateway.spool.read("outgoing", name), now=datetime.now(timezone.utc))


def test_data_coding_4_with_udhi_keeps_the_header(smpp_gateway):
    client = bind(smpp_gateway)
    client.send_message(destination_addr="+4915112345678", dest_addr_ton=1, data_coding=4, esm_class=0x40,
                        short_message=WAP_UDH + PUSH)
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == 0
    message = queued(smpp_gateway, resp.message_id.decode())
    assert (message.data, message.udh, message.message_class) == (PUSH, WAP_UDH, None)
    client.disconnect()


def test_long_binary_in_udh_segments_is_joined_and_other_elements_kept(smpp_gateway):
    """Each segment: the client's ports and a concatenation IE; the file: the ports once, data joined."""
    data = bytes(range(256)) * 2
    segments = [data[i:i + 128] for i in range(0, len(data), 128)]
    client = bind(smpp_gateway)
    for seq, chunk in enumerate(segments, start=1):
        header = bytes.fromhex("0B") + WAP_UDH[1:] + bytes([0x00, 3, 0x42, len(segments), seq])
        client.send_message(destination_addr="+4915112345678", dest_addr_ton=1, data_coding=0xF5, esm_class=0x40,
                            short_message=header + chunk)
    ids = {read_until(client, "submit_sm_resp").message_id.decode() for _ in segments}
    (message_id,) = ids
    message = queued(smpp_gateway, message_id)
    assert (message.data, message.udh, message.message_class, message.parts) == (data, WAP_UDH, 1, 4)
    client.disconnect()


def test_sar_tlvs_message_payload_and_port_tlvs_with_8_bit_data(smpp_gateway):
    client = bind(smpp_gateway)
    for seq, chunk in ((1, b"\x00" * 100), (2, b"\xff" * 100)):
        client.send_message(destination_addr="+4915112345678", data_coding=2, short_message=chunk,
                            sar_msg_ref_num=7, sar_total_segments=2, sar_segment_seqnum=seq)
    (sar_id,) = {read_until(client, "submit_sm_resp").message_id.decode() for _ in range(2)}
    assert queued(smpp_gateway, sar_id).data == b"\x00" * 100 + b"\xff" * 100
    client.send_message(destination_addr="+4915112345678", short_message=None, data_coding=0xF6, esm_class=0x40,
                        message_payload=WAP_UDH + PUSH * 8)
    payload_id = read_until(client, "submit_sm_resp").message_id.decode()
    message = queued(smpp_gateway, payload_id)
    assert (message.data, message.udh, message.message_class) == (PUSH * 8, WAP_UDH, 2)
    client.send_message(destination_addr="+4915112345678", data_coding=4, short_message=PUSH,
                        destination_port=2948, source_port=9200)
    ports_id = read_until(client, "submit_sm_resp").message_id.decode()
    assert queued(smpp_gateway, ports_id).udh == WAP_UDH
    client.disconnect()


def test_a_national_text_is_read_with_the_tables_its_header_names(smpp_gateway):
    """GSM-7 septets with a Turkish single shift IE (TS 23.038 A.2.1: ESC 0x47 is 'Ğ')."""
    client = bind(smpp_gateway)
    header = bytes.fromhex("03240101")
    client.send_message(destination_addr="+4915112345678", dest_addr_ton=1, data_coding=0, esm_class=0x40,
                        short_message=header + bytes([0x1B, 0x47]) + b"ok")
    message = queued(smpp_gateway, read_until(client, "submit_sm_resp").message_id.decode())
    assert message.text == "Ğok" and message.udh is None
    client.disconnect()


@pytest.mark.parametrize(
    "fields, status",
    [
        # The UDHL runs past short_message: "Invalid esm_class field data" (UDHI promised a header).
        (dict(esm_class=0x40, data_coding=4, short_message=bytes.fromhex("09050400")), Status.ESME_RINVESMCLASS),
        # An element whose length octet runs past the header.
        (dict(esm_class=0x40, data_coding=4, short_message=bytes.fromhex("0405060B84") + b"x"), Status.ESME_RINVESMCLASS),
        # 600 octets need 5 parts; max_parts is 4 here: "Message Length is invalid".
        (dict(data_coding=4, short_message=b"", tlvs={Tag.MESSAGE_PAYLOAD: bytes(600)}), Status.ESME_RINVMSGLEN),
        # A header so long that nothing is left for the data.
        (dict(esm_class=0x40, data_coding=4, short_message=bytes([139, 0x70, 137]) + bytes(137) + b"x"),
         Status.ESME_RINVMSGLEN),
        # Not a coding gsmgw knows (JIS): "Invalid data_coding" (SMPP 5.0's code, which 3.4 clients know).
        (dict(data_coding=5, short_message=b"x"), Status.ESME_RINVDCS),
    ],
    ids=["udhl past the end", "element past the header", "over max_parts", "no room for data", "JIS"],
)
def test_bad_binary_submits_get_the_right_command_status(tmp_path, fields, status):
    with ServerThread(tmp_path, defaults=Defaults(max_parts=4)) as server:
        sock = raw_bind(server)
        raw_send(sock, submit_pdu(2, **fields))
        resp = raw_read(sock)
        assert (resp.sequence, resp.status) == (2, status)
        assert server.spool.list("outgoing") == []
        sock.close()


def test_binary_over_255_parts_gets_esme_rinvmsglen_even_when_max_parts_allows_255(tmp_path):
    """One message_payload (up to 64 KiB) can hold more octets than 255 parts carry: 256 x 134 + 1."""
    with ServerThread(tmp_path, defaults=Defaults(max_parts=255)) as server:
        sock = raw_bind(server)
        raw_send(sock, submit_pdu(2, data_coding=4, short_message=b"", tlvs={Tag.MESSAGE_PAYLOAD: bytes(256 * 134 + 1)}))
        resp = raw_read(sock)
        assert (resp.sequence, resp.status) == (2, Status.ESME_RINVMSGLEN)
        raw_send(sock, submit_pdu(3, data_coding=4, short_message=b"", tlvs={Tag.MESSAGE_PAYLOAD: bytes(255 * 134)}))
        assert raw_read(sock).status == 0  # 255 parts exactly are one message
        assert len(server.spool.list("outgoing")) == 1
        sock.close()


def _received(**fields):
    base = dict(id="gsm1-20261125-101500-abcd", path="/x", sender="+4915112345678", modem="gsm1", sent=None,
                received="2026-11-25T10:15:00+00:00", parts=1, incomplete=False)
    return MessageReceived(**{**base, **fields})


def test_received_binary_goes_to_receivers_as_data_coding_4_with_udhi(smpp_gateway):
    client = bind(smpp_gateway, how="bind_receiver")
    smpp_gateway.publish(_received(text=PUSH.hex().upper(), data=PUSH, udh=WAP_UDH, ports=(2948, 9200)))
    deliver = read_until(client, "deliver_sm")
    assert (deliver.data_coding, deliver.esm_class) == (4, 0x40)
    assert deliver.short_message == WAP_UDH + PUSH
    long_data = bytes(range(256))
    smpp_gateway.publish(_received(id="gsm1-2", text=long_data.hex(), data=long_data, udh=WAP_UDH, ports=(2948, 9200)))
    # UDHL 0B: the ports (6 octets) then the concatenation IE 00 03 ref total seq; seq at octet 11.
    segments = sorted((read_until(client, "deliver_sm") for _ in range(2)), key=lambda s: s.short_message[11])
    assert all(s.short_message[:9] == bytes.fromhex("0B05040B8423F00003") for s in segments)
    assert all(len(s.short_message) <= 140 and s.esm_class == 0x40 for s in segments)
    assert b"".join(s.short_message[12:] for s in segments) == long_data
    smpp_gateway.publish(_received(id="gsm1-3", text="BEGIN:VCARD", udh=bytes.fromhex("06050423F423F4"), ports=(9204, 9204)))
    vcard = read_until(client, "deliver_sm")
    assert (vcard.data_coding, vcard.esm_class, vcard.short_message) == (0, 0x40, bytes.fromhex("06050423F423F4") + b"BEGIN:VCARD")
    client.disconnect()


@needs_gammu
def test_gammu_reads_what_an_smpp_binary_submit_becomes(smpp_gateway):
    client = bind(smpp_gateway)
    client.send_message(destination_addr="+4915112345678", dest_addr_ton=1, data_coding=4, esm_class=0x40,
                        short_message=WAP_UDH + PUSH)
    message = queued(smpp_gateway, read_until(client, "submit_sm_resp").message_id.decode())
    client.disconnect()
    (answer,) = gammu_decode([part.pdu for part in encode_submit("+4915112345678", data=message.data, udh=message.udh)])
    assert (answer["coding"], answer["udh"], answer["text"]) == ("8bit", WAP_UDH.hex().upper(), PUSH.hex().upper())
