"""gsmgw.smpp.session and gsmgw.smpp.message without sockets: PDUs and time in, actions out."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.clients import ClientRegistry
from gsmgw.smpp import message as M
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu, Status, Tag
from gsmgw.sms.gsm7 import encode_septets
from gsmgw.smpp.session import (
    Bound, Close, Delivered, Delivery, Park, Query, Queue, Send, Session, State, Submit, Timers,
)

WALL = datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc)
REGISTRY = ClientRegistry.from_config(
    {"clients": [{"name": "app", "smpp": {"system_id": "app", "password": "pw"}, "allow": ["+49*"]}]},
)


def new_session(**kwargs) -> Session:
    ids = iter(f"id-{n}" for n in range(1, 1000))
    options = dict(now=0.0, wall_clock=lambda: WALL, new_id=lambda: next(ids), window=3)
    options.update(kwargs)
    return Session(REGISTRY, **options)


def sent(actions) -> list[Pdu]:
    return [P.decode(a.data) for a in actions if isinstance(a, Send)]


def bound_session(**kwargs) -> Session:
    session = new_session(**kwargs)
    actions = session.data_received(
        P.encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {"system_id": "app", "password": "pw", "interface_version": 0x34})),
        0.0,
    )
    (resp,) = sent(actions)
    assert resp.status == 0 and resp.tlv_int(Tag.SC_INTERFACE_VERSION) == 0x34
    assert any(isinstance(a, Bound) for a in actions)
    return session


def submit(sequence, text=b"hi", to="+4915112345678", **params):
    fields = {"dest_addr_ton": 1, "destination_addr": to, "short_message": text}
    tlvs = params.pop("tlvs", {})
    fields.update(params)
    return P.encode(Pdu(CommandId.SUBMIT_SM, sequence, 0, fields, tlvs))


def test_submit_is_answered_only_after_it_is_durable():
    session = bound_session()
    (action,) = session.data_received(submit(2), 1.0)
    assert isinstance(action, Submit)
    assert action.submission.to == "+4915112345678" and action.submission.text == "hi"
    (resp,) = sent(session.submit_done(action.submission, "20261125-100000-aa"))
    assert (resp.command_id, resp.sequence, resp.params["message_id"]) == (CommandId.SUBMIT_SM_RESP, 2, "20261125-100000-aa")


def test_unbind_waits_for_open_submissions():
    session = bound_session()
    (submit_action,) = session.data_received(submit(2), 1.0)
    assert session.data_received(P.encode(Pdu(CommandId.UNBIND, 3)), 1.0) == []
    actions = session.submit_done(submit_action.submission, "x")
    assert [p.command_id for p in sent(actions)] == [CommandId.SUBMIT_SM_RESP, CommandId.UNBIND_RESP]
    assert isinstance(actions[-1], Close) and session.state is State.CLOSED


def test_segments_share_the_message_id_and_the_last_one_carries_the_text():
    session = bound_session()
    udh = lambda seq: bytes([5, 0, 3, 0x42, 2, seq])  # noqa: E731
    first = session.data_received(submit(2, udh(1) + "Grü".encode("utf-16-be"), esm_class=0x40, data_coding=8), 1.0)
    (resp,) = sent(first)
    assert resp.status == 0 and resp.params["message_id"] == "id-1"
    (action,) = session.data_received(submit(3, udh(2) + "ße".encode("utf-16-be"), esm_class=0x40, data_coding=8), 2.0)
    assert action.submission.text == "Grüße" and action.submission.message_id == "id-1"


def test_gsm7_escape_split_across_segments_is_joined():
    session = bound_session()
    session.data_received(submit(2, b"\x05\x00\x03\x01\x02\x01" + b"price \x1b", esm_class=0x40), 1.0)
    (action,) = session.data_received(submit(3, b"\x05\x00\x03\x01\x02\x02" + b"\x65 5", esm_class=0x40), 1.0)
    assert action.submission.text == "price € 5"


def test_incomplete_long_message_is_dropped_with_a_rejectd_receipt():
    session = bound_session(reassembly_timeout=60, timers=Timers(idle=1000, dead=1000))
    session.data_received(submit(2, b"\x05\x00\x03\x07\x03\x01abc", esm_class=0x40, registered_delivery=1), 0.0)
    session.data_received(submit(3, b"\x05\x00\x03\x08\x03\x01abc", esm_class=0x40), 0.0)  # no receipt wanted
    assert session.tick(30.0) == []
    (action,) = session.tick(61.0)
    assert isinstance(action, Queue)
    delivery = action.delivery
    assert delivery.esm_class == P.ESM_DELIVERY_RECEIPT and delivery.client_name == "app"
    assert b"id:id-1 " in delivery.short_message and b"stat:REJECTD" in delivery.short_message
    assert delivery.tlvs[Tag.MESSAGE_STATE] == bytes([P.MessageState.REJECTED])


def test_window_counts_requests_waiting_for_their_answer():
    session = bound_session()
    actions = session.data_received(b"".join(submit(s) for s in range(10, 15)), 1.0)
    submits = [a for a in actions if isinstance(a, Submit)]
    assert len(submits) == 3
    assert [(p.sequence, p.status) for p in sent(actions)] == [(13, Status.ESME_RMSGQFUL), (14, Status.ESME_RMSGQFUL)]
    session.submit_done(submits[0].submission, "a")
    assert isinstance(session.data_received(submit(15), 1.0)[0], Submit)


def test_deliveries_respect_the_window_and_come_back_when_unanswered():
    session = bound_session(timers=Timers(idle=1000, dead=1000, response=10))
    deliveries = [Delivery("app", "+4915112345678", "gsm1", 0, 0, b"x") for _ in range(4)]
    sequences = []
    for delivery in deliveries[:3]:
        assert session.can_deliver
        (pdu,) = sent(session.deliver(delivery, 1.0))
        assert pdu.command_id == CommandId.DELIVER_SM and pdu.params["source_addr"] == "4915112345678"
        sequences.append(pdu.sequence)
    assert not session.can_deliver
    (done,) = session.data_received(P.encode(Pdu(CommandId.DELIVER_SM_RESP, sequences[0], 0, {"message_id": ""})), 2.0)
    assert done == Delivered(deliveries[0], 0)
    assert session.can_deliver
    lost = session.tick(12.0)
    assert sorted(id(a.delivery) for a in lost) == sorted(id(d) for d in deliveries[1:3])
    assert all(isinstance(a, Delivered) and a.status is None for a in lost)


def test_enquire_link_when_silent_then_close_when_dead():
    session = bound_session(timers=Timers(idle=10, dead=25))
    assert session.tick(5.0) == []
    (probe,) = sent(session.tick(10.0))
    assert probe.command_id == CommandId.ENQUIRE_LINK
    assert session.tick(15.0) == []  # one probe at a time
    (close,) = session.tick(25.0)
    assert isinstance(close, Close) and session.state is State.CLOSED


def test_enquire_link_resp_keeps_the_session_alive():
    session = bound_session(timers=Timers(idle=10, dead=25))
    (probe,) = sent(session.tick(10.0))
    session.data_received(P.encode(Pdu(CommandId.ENQUIRE_LINK_RESP, probe.sequence)), 12.0)
    assert session.tick(20.0) == []
    (second_probe,) = sent(session.tick(30.0))  # silent again: probe again, but not dead
    assert second_probe.command_id == CommandId.ENQUIRE_LINK
    assert session.state is State.BOUND


def test_query_goes_to_the_server_and_back():
    session = bound_session()
    (query,) = session.data_received(P.encode(Pdu(CommandId.QUERY_SM, 4, 0, {"message_id": "abc"})), 1.0)
    assert isinstance(query, Query) and query.message_id == "abc"
    (resp,) = sent(session.query_done(query.sequence, "abc", 2, WALL))
    assert resp.params == {"message_id": "abc", "final_date": "261125100000000+", "message_state": 2, "error_code": 0}


def test_three_failed_binds_close_the_connection():
    session = new_session()
    bad = P.encode(Pdu(CommandId.BIND_TRANSMITTER, 1, 0, {"system_id": "app", "password": "no"}))
    for _ in range(2):
        (resp,) = sent(session.data_received(bad, 1.0))
        assert resp.status == Status.ESME_RINVPASWD
    actions = session.data_received(bad, 1.0)
    assert isinstance(actions[-1], Close)


def test_validity_and_schedule_become_times():
    session = bound_session()
    (action,) = session.data_received(
        submit(2, validity_period="000000010000000R", schedule_delivery_time="261125120000004+", priority_flag=2), 1.0
    )
    assert action.submission.validity_until == WALL + timedelta(hours=1)
    assert action.submission.send_after == datetime(2026, 11, 25, 11, 0, tzinfo=timezone.utc)
    assert action.submission.priority == "high"
    (resp,) = sent(session.data_received(submit(3, validity_period="2611251"), 1.0))
    assert resp.status == Status.ESME_RINVEXPIRY


@pytest.mark.parametrize("field,value,status", [
    ("validity_period", "990000000000000R", Status.ESME_RINVEXPIRY),  # 99 years from now
    ("schedule_delivery_time", "991231230000000+", Status.ESME_RINVSCHED),  # 2099
])
def test_times_beyond_the_duration_bound_are_refused(field, value, status):
    session = bound_session()
    (resp,) = sent(session.data_received(submit(2, **{field: value}), 1.0))
    assert resp.status == status


# ---- message.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected_parts,data_coding",
    [("a" * 160, 1, 0), ("a" * 161, 2, 0), ("a\r\n" * 53, 1, 0), ("€" * 70, 1, 8), ("€" * 71, 2, 8),
     ("@" * 70, 1, 8), ("ä" * 70, 1, 8), ("ж" * 70, 1, 8), ("ж" * 71, 2, 8), ("😀" * 35, 1, 8), ("😀" * 36, 2, 8)],
)
def test_encode_for_delivery_parts(text, expected_parts, data_coding):
    segments = M.encode_for_delivery(text, ref=9)
    assert len(segments) == expected_parts
    assert all(dc == data_coding for dc, _, _ in segments)
    if expected_parts == 1:
        payload = segments[0][2]
    else:
        assert all(esm == 0x40 and sm[:5] == bytes([5, 0, 3, 9, expected_parts]) for _, esm, sm in segments)
        payload = b"".join(sm[6:] for _, _, sm in segments)
        for _, _, sm in segments:  # each part decodes on its own: no escape or surrogate pair split
            M.decode_text(data_coding, sm[6:])
    assert M.decode_text(data_coding, payload)[0] == text


def test_receipt_text_is_appendix_b():
    text = M.receipt_text(message_id="X1", stat="DELIVRD", submitted=WALL, done=WALL + timedelta(minutes=3), err=0,
                          text="Server 17 ✓ bitte prüfen")
    assert text == "id:X1 sub:001 dlvrd:001 submit date:2611251000 done date:2611251003 stat:DELIVRD err:000 text:Server 17 ✓ bitte pr"


# ---- fuzz ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=10), st.booleans())
def test_fuzz_session_never_raises(chunks, bind_first):
    session = bound_session() if bind_first else new_session()
    for chunk in chunks:
        for action in session.data_received(chunk, 1.0):
            assert isinstance(action, (Send, Close, Bound, Submit, Query, Queue, Delivered))
            if isinstance(action, Send):
                P.decode(action.data)  # whatever we send is a well-formed PDU


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 0xFF), st.integers(0, 0xFF), st.binary(max_size=200),
    st.dictionaries(st.sampled_from([int(t) for t in Tag]), st.binary(max_size=6), max_size=4),
)
def test_fuzz_submit_fields_get_an_answer_or_a_submission(esm_class, data_coding, short_message, tlvs):
    session = bound_session()
    frame = submit(7, short_message, esm_class=esm_class, data_coding=data_coding, tlvs=tlvs)
    actions = session.data_received(frame, 1.0)
    assert len(actions) == 1
    (action,) = actions
    if isinstance(action, Send):
        resp = P.decode(action.data)
        assert resp.sequence == 7 and resp.command_id in (CommandId.SUBMIT_SM_RESP, CommandId.GENERIC_NACK)
    else:
        assert isinstance(action, Submit)


@pytest.mark.parametrize(
    "address,ton,npi,value",
    [("+4915112345678", 1, 1, "4915112345678"), ("22000", 0, 1, "22000"), ("Vodafone", 5, 0, "Vodafone"), ("", 0, 0, "")],
)
def test_deliver_sm_addresses_carry_their_ton(address, ton, npi, value):
    session = bound_session()
    (pdu,) = sent(session.deliver(Delivery("app", address, "modem0", 0, 0, b"x"), 1.0))
    assert (pdu.params["source_addr_ton"], pdu.params["source_addr_npi"], pdu.params["source_addr"]) == (ton, npi, value)
    assert (pdu.params["dest_addr_ton"], pdu.params["destination_addr"]) == (5, "modem0")


@pytest.mark.parametrize("sender,value", [
    ("ΔΦ€", "DFEUR"), ("Müller", "Muller"), ("ΣΩΤΗΡ", "SOTIR"), ("Ærø Bank", "AEro Bank"), ("£5 off", "GBP5 off"),
])
def test_an_alphanumeric_sender_is_spelt_in_ascii(sender, value):
    # "ΔΦ€" could not be encoded in the C-octet string: the session closed after every bind.
    session = bound_session()
    (pdu,) = sent(session.deliver(Delivery("app", sender, "modem0", 0, 0, b"x"), 1.0))
    assert (pdu.params["source_addr_ton"], pdu.params["source_addr"]) == (5, value)


@pytest.mark.parametrize("sender", ["中国移动", "ΨΨΨΨΨΨΨΨΨΨΨ", "a\0b"])
def test_a_delivery_no_deliver_sm_can_carry_is_parked_without_taking_the_window(sender):
    session = bound_session()
    (park,) = session.deliver(Delivery("app", sender, "modem0", 0, 0, b"x"), 1.0)
    assert isinstance(park, Park) and park.reason
    assert session.can_deliver
    (pdu,) = sent(session.deliver(Delivery("app", "+4915112345678", "modem0", 0, 0, b"y"), 1.0))
    assert pdu.sequence == 1  # the parked one used no sequence number and no window slot


def test_a_receipt_goes_back_to_the_esme_source_addr_as_it_sent_it():
    session = bound_session()
    receipt = Delivery("app", "+4915112345678", "Caf\xe9", 0, P.ESM_DELIVERY_RECEIPT, b"id:1 stat:DELIVRD")
    (pdu,) = sent(session.deliver(receipt, 1.0))
    assert pdu.params["destination_addr"] == "Caf\xe9" and pdu.params["dest_addr_ton"] == 5


@pytest.mark.parametrize(
    "resp_body,status",
    [(b"", 0), (b"\0", 0), (b"no-terminator", 0), (b"", 0x64)],  # 0x64 ESME_RX_T_APPN: the client wants it again later
)
def test_bare_or_garbled_deliver_sm_resp_is_taken_as_the_answer_never_nacked(resp_body, status):
    session = bound_session()
    (pdu,) = sent(session.deliver(Delivery("app", "+4915112345678", "gsm1", 0, 0, b"x"), 1.0))
    frame = struct.pack(">IIII", 16 + len(resp_body), CommandId.DELIVER_SM_RESP, status, pdu.sequence) + resp_body
    (action,) = session.data_received(frame, 2.0)
    assert isinstance(action, Delivered) and action.status == status
    assert session.can_deliver


@pytest.mark.parametrize(
    "raw,expected",
    [
        (bytes([0x00, 0x02, 0x11]) + b" 5", "@$_ 5"),  # GSM-7 codes
        (b"\x1b\x3cFIRING\x1b\x3e \x1b\x65", "[FIRING] €"),  # GSM-7 escapes
        (b"K\x7cln \x5bber", "Köln Äber"),  # GSM-7 letters, nothing ASCII-only
        (b"mail me @ 10:00, $5", "mail me @ 10:00, $5"),  # ASCII from a client that ignores GSM-7
        (b"[FIRING:1] disk_full", "[FIRING:1] disk_full"),
        (b"{json}", "{json}"),
        ("Grüße".encode("latin-1"), "Grüße"),  # octets above 0x7F cannot be septets
        (smpplib.gsm.gsm_encode("Grüße @ 5€ [x]"), "Grüße @ 5€ [x]"),
    ],
)
def test_data_coding_0_is_gsm7_unless_it_cannot_be(raw, expected):
    assert M.decode_text(0, raw) == (expected, False)


def test_receipt_text_keeps_every_character_on_one_line():
    text = M.receipt_text(message_id="X", stat="UNDELIV", submitted=WALL, done=WALL, err=65,
                          text="a@b_c\nÜber {x} and more than twenty")
    assert text.endswith("stat:UNDELIV err:065 text:a@b_c Über {x} and m")


@pytest.mark.parametrize(
    "text, coding, data_coding, octets",
    [
        ("text:Grüße", M.DC_DEFAULT, 0, bytes(encode_septets("text:Grüße"))),
        ("text:a@b 5€", M.DC_DEFAULT, 0, b"text:a\x00b 5\x1be"),  # GSM-7's own "@" and "€"
        ("text:Grüße", M.DC_LATIN1, 3, "text:Grüße".encode("latin-1")),
        ("text:abc", M.DC_IA5, 1, b"text:abc"),
        # UCS-2 (or not known): characters that read the same in ASCII and GSM-7, transliterated.
        ("text:Grüße aus Łódź 😀", M.DC_UCS2, 0, b"text:Grusse aus Lodz "),
        ("text:“a@b” [1] 5€", None, 0, b'text:"a(at)b" (1) 5EUR'),
        ("text:Привет!", M.DC_UCS2, 0, b"text:!"),  # no transliteration for Cyrillic: left out
        ("text:5€", M.DC_LATIN1, 3, b"text:5EUR"),  # not Latin-1 (an edited file)
    ],
)
def test_receipt_short_message_uses_the_alphabet_of_the_esme(text, coding, data_coding, octets):
    assert M.receipt_short_message(text, coding) == (data_coding, octets)
    assert b"?" not in octets


@pytest.mark.parametrize(
    "data_coding, raw, coding",
    [
        (0, smpplib.gsm.gsm_encode("Grüße"), M.DC_DEFAULT),
        (0xF0, b"hello", M.DC_DEFAULT),
        (0, "Grüße".encode("latin-1"), M.DC_LATIN1),
        (1, b"hello", M.DC_IA5),
        (3, b"hello", M.DC_LATIN1),
        (8, "hi".encode("utf-16-be"), M.DC_UCS2),
    ],
)
def test_text_coding_names_the_alphabet_the_text_was_read_in(data_coding, raw, coding):
    assert M.text_coding(data_coding, raw) == coding


# ---- memory and limits of long messages (checked at the FIRST segment) ---------------------

def limited_session(**kwargs) -> Session:
    """A session bound as a client that may send two SMS parts a minute: one 2-segment message."""
    session = new_session(**kwargs)
    session.policy = ClientRegistry.from_config(
        {"clients": [{"name": "app", "smpp": {"system_id": "app", "password": "pw"}, "allow": ["+49*"],
                      "limits": {"per_minute": 2}}]},
    )
    session.data_received(P.encode(Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {"system_id": "app", "password": "pw"})), 0.0)
    return session


def segment(sequence, ref, total, seq, payload=b"abc", **params):
    return submit(sequence, bytes([5, 0, 3, ref, total, seq]) + payload, esm_class=0x40, **params)


def test_more_segments_than_max_parts_are_refused_at_the_first():
    # max_parts was checked only when the last of up to 255 segments came.
    session = bound_session()
    session.policy = ClientRegistry.from_config({"clients": [{"name": "app", "smpp": {"system_id": "app", "password": "pw"},
                                                              "allow": ["+49*"]}], "defaults": {"max_parts": 3}})
    (resp,) = sent(session.data_received(segment(2, 1, 4, 1), 1.0))
    assert resp.status == Status.ESME_RINVMSGLEN
    assert len(session._reassembly) == 0 and session._reassembly.octets == 0
    (resp,) = sent(session.data_received(segment(3, 2, 3, 1), 1.0))
    assert resp.status == 0


def test_the_client_limits_are_checked_at_the_first_segment():
    session = limited_session()
    (resp,) = sent(session.data_received(segment(2, 1, 2, 1), 1.0))
    assert resp.status == 0
    # A second long message: refused at once, not after its last segment was held.
    (resp,) = sent(session.data_received(segment(3, 2, 2, 1), 1.0))
    assert resp.status == Status.ESME_RTHROTTLED and len(session._reassembly) == 1
    # The first one completes without being counted twice.
    (action,) = session.data_received(segment(4, 1, 2, 2), 2.0)
    assert isinstance(action, Submit) and action.submission.acquired_at == 1.0


def test_an_unfinished_long_message_gives_its_limit_back_when_dropped():
    session = limited_session(reassembly_timeout=30, timers=Timers(idle=1000, dead=1000))
    assert sent(session.data_received(segment(2, 1, 2, 1), 1.0))[0].status == 0
    session.tick(31.0)  # expired: it never reaches the spool, so it does not count
    assert sent(session.data_received(segment(3, 2, 2, 1), 32.0))[0].status == 0
    session.connection_lost()  # nor does one unfinished when the session ends
    session = limited_session()
    assert sent(session.data_received(segment(2, 3, 2, 1), 33.0))[0].status == 0


def test_a_segment_larger_than_one_sms_part_is_refused():
    session = bound_session()
    sar = {Tag.SAR_MSG_REF_NUM: b"\x00\x01", Tag.SAR_TOTAL_SEGMENTS: b"\x02", Tag.SAR_SEGMENT_SEQNUM: b"\x01"}
    (resp,) = sent(session.data_received(submit(2, b"", tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 1000, **sar}), 1.0))
    assert resp.status == Status.ESME_RINVMSGLEN and session._reassembly.octets == 0


def test_pending_octets_are_capped_per_session_and_per_client():
    full = b"x" * (M.SEGMENT_OCTETS - 6)  # a full short_message with its concatenation header
    budget = M.PendingOctets(limit=3 * len(full))
    first = bound_session(pending_octets=budget, window=100)
    first._reassembly.max_octets = 2 * len(full)
    statuses = [sent(first.data_received(segment(n, n, 2, 1, full), 1.0))[0].status for n in (2, 3, 4)]
    assert statuses == [0, 0, Status.ESME_RMSGQFUL]  # the session's own cap
    second = bound_session(pending_octets=budget, window=100)  # the same client
    statuses = [sent(second.data_received(segment(n, n, 2, 1, full), 1.0))[0].status for n in (5, 6)]
    assert statuses == [0, Status.ESME_RMSGQFUL]  # the client's cap over both sessions
    assert budget.held("app") == 3 * len(full)
    first.connection_lost()  # a session that ends gives its octets back
    assert budget.held("app") == len(full)
    assert sent(second.data_received(segment(7, 7, 2, 1, full), 1.0))[0].status == 0


def test_a_session_whose_login_is_gone_is_unbound_and_then_dropped():
    session = bound_session(timers=Timers(idle=1000, dead=1000, response=30))
    actions = session.client_changed(None, False)
    (unbind,) = sent(actions)
    assert unbind.command_id == CommandId.UNBIND and session.state is State.UNBINDING
    (resp,) = sent(session.data_received(submit(5), 2.0))
    assert resp.status == Status.ESME_RINVBNDSTS
    assert session.tick(3.0) == [] and session.tick(20.0) == []
    assert isinstance(session.tick(33.5)[-1], Close)  # no unbind_resp within `response`


def test_a_reloaded_client_replaces_the_bound_one():
    session = bound_session()
    new_client = REGISTRY.by_name("app")
    assert session.client_changed(new_client, True) == [] and session.client is new_client


def test_an_unknown_system_id_and_a_wrong_password_get_the_same_answer():
    for system_id, password in (("app", "nope"), ("nobody", "pw")):
        session = new_session()
        (resp,) = sent(session.data_received(
            P.encode(Pdu(CommandId.BIND_TRANSMITTER, 1, 0, {"system_id": system_id, "password": password})), 1.0))
        assert resp.status == Status.ESME_RINVPASWD


def test_a_long_message_counts_the_parts_the_sims_send_not_its_segments():
    session = limited_session()  # 2 parts a minute
    assert sent(session.data_received(segment(2, 1, 2, 1), 1.0))[0].status == 0  # counted as 2 for now
    (action,) = session.data_received(segment(3, 1, 2, 2), 1.0)
    assert action.submission.parts == 1  # "abcabc" is one SMS part: the other one is given back
    session.submit_done(action.submission, "id-1")
    (action,) = session.data_received(submit(4), 2.0)
    assert isinstance(action, Submit)
    assert sent(session.data_received(submit(5), 2.0))[0].status == Status.ESME_RTHROTTLED
