"""Byte vectors for gsmgw.smpp.pdu (SMPP 3.4), each checked whole, byte by byte and with
trailing bytes, plus a hypothesis fuzz of the reader."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, MalformedPdu, Pdu, Status, Tag


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# (name, wire bytes, command_id, sequence, status, params, tlvs)
VECTORS = [
    (
        "bind_transceiver",
        h("0000002f 00000009 00000000 00000001" "7a6162626978 00" "736563726574 00" "00" "34 01 01" "00"),
        CommandId.BIND_TRANSCEIVER, 1, 0,
        {"system_id": "zabbix", "password": "secret", "system_type": "", "interface_version": 0x34,
         "addr_ton": 1, "addr_npi": 1, "address_range": ""},
        {},
    ),
    (
        "bind_transmitter_resp with sc_interface_version",
        h("00000020 80000002 00000000 00000007" "6773 6d67 7700" "0210 0001 34"),
        CommandId.BIND_TRANSMITTER_RESP, 7, 0, {"system_id": "gsmgw"}, {Tag.SC_INTERFACE_VERSION: b"\x34"},
    ),
    (
        "bind_receiver_resp error without body (SMPP 3.4 4.1.2)",
        h("00000010 80000001 0000000e 00000002"),
        CommandId.BIND_RECEIVER_RESP, 2, Status.ESME_RINVPASWD, {}, {},
    ),
    (
        "submit_sm GSM-7 unpacked, registered_delivery",
        h(
            "0000003c 00000004 00000000 00000005"
            "00" "01 01" "3132333400" "01 01" "2b343931353131323334353637 38 00"
            "00 00 00" "00" "00" "01 00 00 00" "05 68656c6c6f"
        ),
        CommandId.SUBMIT_SM, 5, 0,
        {"service_type": "", "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "1234",
         "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "+4915112345678",
         "esm_class": 0, "protocol_id": 0, "priority_flag": 0, "schedule_delivery_time": "",
         "validity_period": "", "registered_delivery": 1, "replace_if_present_flag": 0,
         "data_coding": 0, "sm_default_msg_id": 0, "short_message": b"hello"},
        {},
    ),
    (
        "submit_sm with sar TLVs and message_payload",
        h(
            "00000043 00000004 00000000 00000006"
            "00" "00 00" "00" "01 01" "3439313500"
            "00 00 00" "00" "00" "00 00 08 00" "00"
            "020c 0002 1234" "020e 0001 02" "020f 0001 01" "0424 0004 00480069"
        ),
        CommandId.SUBMIT_SM, 6, 0,
        {"service_type": "", "source_addr_ton": 0, "source_addr_npi": 0, "source_addr": "",
         "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "4915",
         "esm_class": 0, "protocol_id": 0, "priority_flag": 0, "schedule_delivery_time": "",
         "validity_period": "", "registered_delivery": 0, "replace_if_present_flag": 0,
         "data_coding": 8, "sm_default_msg_id": 0, "short_message": b""},
        {Tag.SAR_MSG_REF_NUM: b"\x12\x34", Tag.SAR_TOTAL_SEGMENTS: b"\x02", Tag.SAR_SEGMENT_SEQNUM: b"\x01",
         Tag.MESSAGE_PAYLOAD: b"\x00H\x00i"},
    ),
    (
        "submit_sm_resp",
        h("00000018 80000004 00000000 00000005" "6162632d303031 00"),
        CommandId.SUBMIT_SM_RESP, 5, 0, {"message_id": "abc-001"}, {},
    ),
    (
        "submit_sm_resp throttled, no body (SMPP 3.4 4.4.2)",
        h("00000010 80000004 00000058 00000009"),
        CommandId.SUBMIT_SM_RESP, 9, Status.ESME_RTHROTTLED, {}, {},
    ),
    (
        "deliver_sm receipt with receipted_message_id and message_state",
        h(
            "00000036 00000005 00000000 0000000a"
            "00" "01 01" "343900" "00 00" "00"
            "04 00 00" "00" "00" "00 00 00 00" "02 6964"
            "001e 0004 61626300" "0427 0001 02"
        ),
        CommandId.DELIVER_SM, 10, 0,
        {"service_type": "", "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "49",
         "dest_addr_ton": 0, "dest_addr_npi": 0, "destination_addr": "",
         "esm_class": 4, "protocol_id": 0, "priority_flag": 0, "schedule_delivery_time": "",
         "validity_period": "", "registered_delivery": 0, "replace_if_present_flag": 0,
         "data_coding": 0, "sm_default_msg_id": 0, "short_message": b"id"},
        {Tag.RECEIPTED_MESSAGE_ID: b"abc\0", Tag.MESSAGE_STATE: b"\x02"},
    ),
    (
        "deliver_sm_resp",
        h("00000011 80000005 00000000 0000000a 00"),
        CommandId.DELIVER_SM_RESP, 10, 0, {"message_id": ""}, {},
    ),
    (
        "query_sm",
        h("0000001a 00000003 00000000 0000000b" "6964 00" "01 01" "3132 00"),
        CommandId.QUERY_SM, 11, 0,
        {"message_id": "id", "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "12"},
        {},
    ),
    (
        "query_sm_resp",
        h("00000016 80000003 00000000 0000000b" "6964 00" "00" "02" "00"),
        CommandId.QUERY_SM_RESP, 11, 0,
        {"message_id": "id", "final_date": "", "message_state": 2, "error_code": 0},
        {},
    ),
    ("enquire_link", h("00000010 00000015 00000000 0000000c"), CommandId.ENQUIRE_LINK, 12, 0, {}, {}),
    ("enquire_link_resp", h("00000010 80000015 00000000 0000000c"), CommandId.ENQUIRE_LINK_RESP, 12, 0, {}, {}),
    ("unbind", h("00000010 00000006 00000000 0000000d"), CommandId.UNBIND, 13, 0, {}, {}),
    ("unbind_resp", h("00000010 80000006 00000000 0000000d"), CommandId.UNBIND_RESP, 13, 0, {}, {}),
    ("generic_nack", h("00000010 80000000 00000003 0000000e"), CommandId.GENERIC_NACK, 14, Status.ESME_RINVCMDID, {}, {}),
]


def _fix_lengths():
    # The hex above is written field by field; recompute command_length so a typo in a length
    # prefix shows up as a field mismatch below, not as a framing error.
    fixed = []
    for name, wire, *rest in VECTORS:
        wire = struct.pack(">I", len(wire)) + wire[4:]
        fixed.append((name, wire, *rest))
    return fixed


CASES = _fix_lengths()


@pytest.mark.parametrize("name,wire,cid,seq,status,params,tlvs", CASES, ids=[c[0] for c in CASES])
def test_decode_vector(name, wire, cid, seq, status, params, tlvs):
    pdu = P.decode(wire)
    assert pdu.command_id == cid
    assert pdu.sequence == seq
    assert pdu.status == status
    assert pdu.params == params
    assert pdu.tlvs == tlvs


@pytest.mark.parametrize("name,wire,cid,seq,status,params,tlvs", CASES, ids=[c[0] for c in CASES])
def test_encode_vector(name, wire, cid, seq, status, params, tlvs):
    assert P.encode(Pdu(cid, seq, status, dict(params), dict(tlvs))) == wire


@pytest.mark.parametrize("name,wire,cid,seq,status,params,tlvs", CASES, ids=[c[0] for c in CASES])
def test_reader_byte_by_byte_with_trailing_bytes(name, wire, cid, seq, status, params, tlvs):
    reader = P.PduReader()
    events = []
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        while (ev := reader.next_event()) is not P.NEED_DATA:
            events.append(ev)
    reader.feed(wire + wire[:7])  # one more whole PDU and the start of a third
    while (ev := reader.next_event()) is not P.NEED_DATA:
        events.append(ev)
    assert [(e.command_id, e.sequence, e.params) for e in events] == [(cid, seq, params)] * 2
    assert reader.buffered == 7


class _FixedSequence:
    """What smpplib asks of a client when it builds or parses a PDU outside a connection."""

    sequence = 3

    def next_sequence(self):
        return 3


def test_smpplib_builds_what_we_read():
    """A third-party encoder as a second source of vectors."""
    import smpplib.smpp

    raw = smpplib.smpp.make_pdu(
        "submit_sm", client=_FixedSequence(), source_addr="gsmgw", destination_addr="+4915112345678",
        short_message=b"\x05\x00\x03\x2a\x02\x01abc", esm_class=0x40, data_coding=8,
        registered_delivery=1, sar_msg_ref_num=42,
    ).generate()
    pdu = P.decode(raw)
    assert pdu.command_id == CommandId.SUBMIT_SM
    assert pdu.params["destination_addr"] == "+4915112345678"
    assert pdu.params["short_message"] == b"\x05\x00\x03\x2a\x02\x01abc"
    assert pdu.params["esm_class"] == 0x40 and pdu.params["data_coding"] == 8
    assert pdu.tlv_int(Tag.SAR_MSG_REF_NUM) == 42


def test_smpplib_reads_what_we_build():
    import smpplib.smpp

    receipt = Pdu(
        CommandId.DELIVER_SM, 99, 0,
        {"source_addr": "+4915112345678", "esm_class": P.ESM_DELIVERY_RECEIPT, "short_message": b"id:x stat:DELIVRD"},
        {Tag.RECEIPTED_MESSAGE_ID: P.tlv_cstring("x"), Tag.MESSAGE_STATE: P.tlv_u8(2)},
    )
    parsed = smpplib.smpp.parse_pdu(P.encode(receipt), client=_FixedSequence(), allow_unknown_opt_params=False)
    assert parsed.command == "deliver_sm"
    assert parsed.sequence == 99
    assert parsed.short_message == b"id:x stat:DELIVRD"
    assert parsed.receipted_message_id == b"x" or parsed.receipted_message_id == "x"
    assert parsed.message_state == 2


# ---- malformed bodies: (name, wire, status) -----------------------------------------------
MALFORMED = [
    ("unknown command_id", h("00000010 000000ff 00000000 00000004"), Status.ESME_RINVCMDID),
    ("outbind is not for a server", h("00000010 00000102 00000000 00000004"), Status.ESME_RINVCMDID),
    ("bind with no body", h("00000010 00000009 00000000 00000004"), Status.ESME_RINVCMDLEN),
    ("system_id without NUL", h("00000014 00000009 00000000 00000004 61626364"), Status.ESME_RINVCMDLEN),
    ("system_id over 64 octets",
     h("00000022 00000009 00000000 00000004") + b"a" * 70 + b"\0", Status.ESME_RINVSYSID),
    ("destination_addr over 20 octets",
     h("00000022 00000004 00000000 00000004 00 0000 00 0000") + b"1" * 21 + b"\0", Status.ESME_RINVDSTADR),
    ("sm_length past the end",
     h("00000025 00000004 00000000 00000004 00 0000 00 0000 00 000000 00 00 00000000 ff 6869"),
     Status.ESME_RINVMSGLEN),
    ("sm_length 255 is over the 254 limit",
     h("00000024 00000004 00000000 00000004 00 0000 00 0000 00 000000 00 00 00000000 ff") + b"x" * 255,
     Status.ESME_RINVMSGLEN),
    ("TLV length past the end",
     h("00000029 00000004 00000000 00000004 00 0000 00 0000 00 000000 00 00 00000000 00 0424 0010 00"),
     Status.ESME_RINVOPTPARSTREAM),
    ("TLV header cut short",
     h("00000026 00000004 00000000 00000004 00 0000 00 0000 00 000000 00 00 00000000 00 0424"),
     Status.ESME_RINVOPTPARSTREAM),
    ("sar_total_segments with length 2",
     h("0000002a 00000004 00000000 00000004 00 0000 00 0000 00 000000 00 00 00000000 00 020e 0002 0001"),
     Status.ESME_RINVPARLEN),
    ("enquire_link with a body", h("00000011 00000015 00000000 00000004 00"), Status.ESME_RINVCMDLEN),
]


@pytest.mark.parametrize("name,wire,status", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_body_is_an_event_and_the_stream_stays_in_step(name, wire, status):
    wire = struct.pack(">I", len(wire)) + wire[4:]
    reader = P.PduReader()
    follow = P.encode(Pdu(CommandId.ENQUIRE_LINK, 5))
    reader.feed(wire + follow)
    bad = reader.next_event()
    assert isinstance(bad, MalformedPdu), bad
    assert bad.status == status
    assert bad.sequence == 4
    good = reader.next_event()
    assert isinstance(good, Pdu) and good.command_id == CommandId.ENQUIRE_LINK
    assert reader.next_event() is P.NEED_DATA


@pytest.mark.parametrize("length", [0, 1, 15, P.MAX_COMMAND_LENGTH + 1, 0xFFFFFFFF])
def test_hopeless_command_length_is_fatal(length):
    reader = P.PduReader()
    reader.feed(struct.pack(">IIII", length, 0x15, 0, 1))
    with pytest.raises(P.FramingError, match="command_length"):
        reader.next_event()
    with pytest.raises(P.FramingError):
        reader.next_event()


def test_encode_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="system_id"):
        P.encode(Pdu(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, {"system_id": "x" * 16}))
    with pytest.raises(ValueError, match="message_payload"):
        P.encode(Pdu(CommandId.DELIVER_SM, 1, 0, {"short_message": b"x" * 255}))


def test_response_to_keeps_the_sequence():
    req = P.decode(CASES[0][1])
    resp = P.response_to(req, 0, system_id="gsmgw")
    assert resp.command_id == CommandId.BIND_TRANSCEIVER_RESP and resp.sequence == 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_fuzz_reader_yields_events_or_framing_error(chunks):
    reader = P.PduReader()
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while (ev := reader.next_event()) is not P.NEED_DATA:
                assert isinstance(ev, (Pdu, MalformedPdu))
    except P.FramingError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=300))
def test_fuzz_sane_length_frames_never_raise(command_id, sequence, body):
    frame = struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body
    reader = P.PduReader()
    reader.feed(frame)
    ev = reader.next_event()
    assert isinstance(ev, (Pdu, MalformedPdu))
    assert ev.sequence == sequence
    if isinstance(ev, Pdu):
        assert P.encode(ev) == frame or ev.command_id in P._BODY_OMITTED_ON_ERROR


def test_bind_with_a_password_longer_than_smpp_34_allows_is_read():
    body = b"app\0" + b"a-long-password\0" + b"\0" + bytes([0x34, 0, 0]) + b"\0"
    frame = struct.pack(">IIII", 16 + len(body), CommandId.BIND_TRANSMITTER, 0, 1) + body
    assert P.decode(frame).params["password"] == "a-long-password"
