"""The SMPP server with real pieces: a real Spool on disk, the real ClientRegistry, the daemon's
EventBus, TCP on loopback, and smpplib (a third-party client) or raw sockets for broken PDUs."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from datetime import datetime, timezone

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from gsmgw.clients import ClientRegistry
from gsmgw.daemon.events import EventBus
from gsmgw.events import MessageFailed, MessageReceived, ReportReceived
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu, Status, Tag
from gsmgw.smpp.session import Timers
from gsmgw.spool.format import update_headers
from gsmgw.spool.store import Spool
from smppharness import CLIENTS, ServerThread, bind, client_for, raw_bind, raw_connection, raw_read, raw_send, read_until, submit_pdu


def outgoing(smpp_gateway, name):
    return smpp_gateway.spool.verified(smpp_gateway.spool.read("outgoing", name))


def text_of(spool_file) -> str:
    return spool_file.body.decode("utf-8")[:-1]  # make_outgoing adds one final newline


# ---- raw socket helpers, for what no well-behaved client sends ----------------------------


# ---- bind ---------------------------------------------------------------------------------


def test_bind_transceiver_and_unbind(smpp_gateway):
    client = client_for(smpp_gateway)
    resp = client.bind_transceiver(system_id="zabbix", password="s3cret")
    assert resp.status == 0
    assert resp.system_id in (b"gsmgw", "gsmgw")
    assert client.unbind().command == "unbind_resp"
    client.disconnect()


@pytest.mark.parametrize("system_id,password", [("zabbix", "wrong"), ("nobody", "s3cret"), ("httponly", "t0ken")])
def test_bind_refused_alike_whether_or_not_the_system_id_exists(smpp_gateway, system_id, password):
    # Regression (issue 11): an unknown system_id got ESME_RINVSYSID, a known one ESME_RINVPASWD.
    client = client_for(smpp_gateway)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        client.bind_transmitter(system_id=system_id, password=password)
    assert info.value.args[1] == Status.ESME_RINVPASWD
    client.disconnect()


def reload_clients(smpp_gateway, clients) -> None:
    """What SIGHUP does: a new client registry (the limit counts carry over)."""
    registry = ClientRegistry.from_config({"clients": clients, "groups": {}})

    async def swap():
        registry.limiter = smpp_gateway.server.registry.limiter
        smpp_gateway.server.registry = registry

    smpp_gateway.call(swap())


def test_a_reload_applies_new_rules_and_limits_to_bound_sessions(smpp_gateway):
    # Regression (issue 11): a bound session kept the client it bound with until it reconnected.
    sock = raw_bind(smpp_gateway, "zabbix", "s3cret")
    raw_send(sock, submit_pdu(2))
    assert raw_read(sock).status == 0
    changed = [dict(CLIENTS[0], allow=["+33*"], limits={"per_minute": 1}), *CLIENTS[1:]]
    reload_clients(smpp_gateway, changed)
    raw_send(sock, submit_pdu(3))
    assert raw_read(sock).status == Status.ESME_RINVDSTADR
    raw_send(sock, submit_pdu(4, to="+33612345678"))
    assert raw_read(sock).status == 0
    raw_send(sock, submit_pdu(5, to="+33612345678"))
    assert raw_read(sock).status == Status.ESME_RTHROTTLED  # its new per_minute: 1 (in parts)
    sock.close()


@pytest.mark.parametrize("change", ["removed", "password"])
def test_a_reload_unbinds_a_session_whose_login_is_gone(smpp_gateway, change):
    sock = raw_bind(smpp_gateway, "zabbix", "s3cret")
    other = raw_bind(smpp_gateway, "limited", "pw")
    changed = CLIENTS[1:] if change == "removed" else [dict(CLIENTS[0], smpp={"system_id": "zabbix", "password": "new"}), *CLIENTS[1:]]
    reload_clients(smpp_gateway, changed)
    raw_send(sock, submit_pdu(2))  # the first PDU after the reload meets the new clients
    unbind = raw_read(sock)
    assert unbind.command_id == CommandId.UNBIND
    assert raw_read(sock).status == Status.ESME_RINVBNDSTS  # nothing new is accepted
    raw_send(sock, Pdu(CommandId.UNBIND_RESP, unbind.sequence))
    with pytest.raises(ConnectionError):
        raw_read(sock)  # closed
    raw_send(other, submit_pdu(3))  # the other client's session goes on
    assert raw_read(other).status == 0
    sock.close()
    other.close()


def test_request_before_bind_gets_rinvbndsts(smpp_gateway):
    sock = raw_connection(smpp_gateway)
    raw_send(sock, submit_pdu(3))
    resp = raw_read(sock)
    assert (resp.command_id, resp.sequence, resp.status) == (CommandId.SUBMIT_SM_RESP, 3, Status.ESME_RINVBNDSTS)
    raw_send(sock, Pdu(CommandId.ENQUIRE_LINK, 4))
    assert raw_read(sock).command_id == CommandId.ENQUIRE_LINK_RESP
    sock.close()


def test_receiver_may_not_submit_and_second_bind_is_refused(smpp_gateway):
    sock = raw_connection(smpp_gateway)
    raw_send(sock, Pdu(CommandId.BIND_RECEIVER, 1, 0, {"system_id": "zabbix", "password": "s3cret"}))
    assert raw_read(sock).status == 0
    raw_send(sock, submit_pdu(2))
    resp = raw_read(sock)
    assert (resp.command_id, resp.status) == (CommandId.SUBMIT_SM_RESP, Status.ESME_RINVBNDSTS)
    raw_send(sock, Pdu(CommandId.BIND_TRANSMITTER, 3, 0, {"system_id": "zabbix", "password": "s3cret"}))
    resp = raw_read(sock)
    assert (resp.command_id, resp.status) == (CommandId.BIND_TRANSMITTER_RESP, Status.ESME_RALYBND)
    sock.close()


# ---- submit_sm ----------------------------------------------------------------------------


def test_submit_writes_one_durable_file_named_by_the_message_id(smpp_gateway):
    client = bind(smpp_gateway)
    client.send_message(
        source_addr="4711", dest_addr_ton=1, destination_addr="4915112345678",
        short_message=smpplib.gsm.gsm_encode("Alarm: disk {full} @ 95% €"), registered_delivery=1,
    )
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == 0
    message_id = resp.message_id.decode()
    spool_file = outgoing(smpp_gateway, message_id)
    assert spool_file.headers.get("To") == "+4915112345678"
    assert spool_file.headers.get("Client") == "zabbix"
    assert spool_file.headers.get("Report") == "yes"
    assert spool_file.headers.get("Smpp_source") == "4711"
    assert text_of(spool_file) == "Alarm: disk {full} @ 95% €"
    client.disconnect()


def test_long_ucs2_message_with_udh_becomes_one_file(smpp_gateway):
    text = "Störung im Rechenzentrum 🚨 " * 8  # UCS-2 with surrogate pairs, several parts
    parts, encoding, esm_class = smpplib.gsm.make_parts(text, encoding=smpplib.consts.SMPP_ENCODING_ISO10646)
    assert len(parts) > 2 and esm_class == 0x40
    client = bind(smpp_gateway)
    for part in parts:
        client.send_message(destination_addr="+4915112345678", dest_addr_ton=1, short_message=part,
                            data_coding=encoding, esm_class=esm_class, registered_delivery=1)
    ids = {read_until(client, "submit_sm_resp").message_id.decode() for _ in parts}
    assert len(ids) == 1
    (message_id,) = ids
    assert smpp_gateway.spool.list("outgoing") == [message_id]
    assert text_of(outgoing(smpp_gateway, message_id)) == text
    client.disconnect()


def test_long_message_with_sar_tlvs_and_message_payload(smpp_gateway):
    client = bind(smpp_gateway)
    first, second = "x" * 150, "y" * 40
    for seq, chunk in ((2, second), (1, first)):  # out of order on purpose
        client.send_message(destination_addr="+4915112345678", short_message=chunk.encode(),
                            sar_msg_ref_num=0x1234, sar_total_segments=2, sar_segment_seqnum=seq)
    ids = {read_until(client, "submit_sm_resp").message_id.decode() for _ in range(2)}
    assert len(ids) == 1
    assert text_of(outgoing(smpp_gateway, ids.pop())) == first + second

    long_text = "Übertragung " * 30
    client.send_message(destination_addr="+4915112345678", short_message=None, data_coding=3,
                        message_payload=long_text.encode("latin-1"))
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == 0
    assert text_of(outgoing(smpp_gateway, resp.message_id.decode())) == long_text
    client.disconnect()


@pytest.mark.parametrize(
    "to,status",
    [("+4990012345", Status.ESME_RINVDSTADR),  # deny rule
     ("+3312345678", Status.ESME_RINVDSTADR),  # not in allow
     ("not a number", Status.ESME_RINVDSTADR)],
)
def test_excluded_destination(smpp_gateway, to, status):
    client = bind(smpp_gateway)
    client.send_message(destination_addr=to, short_message=b"x")
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == status
    assert smpp_gateway.spool.list("outgoing") == []
    client.disconnect()


def _segment(sequence, ref, total, seq, text=b"part"):
    return submit_pdu(sequence, text=bytes([5, 0, 3, ref, total, seq]) + text, esm_class=0x40)


def test_a_long_message_is_refused_at_its_first_segment(smpp_gateway):
    # Over max_parts (6 by default) or over the client's limits: the first segment is refused
    # with the right command_status; nothing of the message was held.
    sock = raw_bind(smpp_gateway)
    raw_send(sock, _segment(2, 1, 255, 1))
    assert raw_read(sock).status == Status.ESME_RINVMSGLEN
    sock.close()
    sock = raw_bind(smpp_gateway, "limited", "pw")  # two SMS parts a minute: one 2-segment message
    raw_send(sock, _segment(2, 1, 2, 1))
    assert raw_read(sock).status == 0
    raw_send(sock, _segment(3, 2, 2, 1))
    assert raw_read(sock).status == Status.ESME_RTHROTTLED
    raw_send(sock, _segment(4, 1, 2, 2))  # the one that was counted completes
    assert raw_read(sock).status == 0
    assert len(smpp_gateway.spool.list("outgoing")) == 1
    sock.close()


def test_over_limits_is_throttled(smpp_gateway):
    client = bind(smpp_gateway, "limited", "pw")
    statuses = []
    for _ in range(3):
        client.send_message(destination_addr="+4915112345678", short_message=b"x")
        statuses.append(read_until(client, "submit_sm_resp").status)
    assert statuses == [0, 0, Status.ESME_RTHROTTLED]
    assert len(smpp_gateway.spool.list("outgoing")) == 2
    client.disconnect()


@pytest.mark.parametrize("data_coding,status", [(5, Status.ESME_RINVDCS), (6, Status.ESME_RINVDCS), (0x0E, Status.ESME_RINVDCS)])
def test_unsupported_data_coding(smpp_gateway, data_coding, status):
    sock = raw_bind(smpp_gateway)
    raw_send(sock, submit_pdu(2, data_coding=data_coding))
    resp = raw_read(sock)
    assert (resp.sequence, resp.status) == (2, status)
    sock.close()


@pytest.mark.parametrize(
    "data_coding,raw,expected",
    [(0, bytes([0x00, 0x02, 0x11, 0x1B, 0x65]), "@$_€"), (3, "Grüße".encode("latin-1"), "Grüße"),
     (8, "Привет".encode("utf-16-be"), "Привет"), (0xF0, b"Flash", "Flash")],
)
def test_understood_data_codings(smpp_gateway, data_coding, raw, expected):
    sock = raw_bind(smpp_gateway)
    raw_send(sock, submit_pdu(2, text=raw, data_coding=data_coding))
    resp = raw_read(sock)
    assert resp.status == 0
    spool_file = outgoing(smpp_gateway, resp.params["message_id"])
    assert text_of(spool_file) == expected
    assert (spool_file.headers.get("Flash") == "yes") == (data_coding == 0xF0)
    sock.close()


def test_too_many_parts_is_refused_before_queueing(tmp_path):
    with ServerThread(tmp_path) as smpp_gateway:
        sock = raw_bind(smpp_gateway)
        raw_send(sock, submit_pdu(2, text=b"", tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 1200}))
        resp = raw_read(sock)
        assert resp.status == Status.ESME_RINVMSGLEN
        assert smpp_gateway.spool.list("outgoing") == []
        sock.close()


# ---- protocol errors ----------------------------------------------------------------------


def test_malformed_pdu_gets_generic_nack_and_session_stays_up(smpp_gateway):
    sock = raw_bind(smpp_gateway)
    # submit_sm whose sm_length runs past the end of the PDU
    body = bytes.fromhex("00 0000 00 0000 00 000000 00 00 00000000 ff 6869".replace(" ", ""))
    bad = struct.pack(">IIII", 16 + len(body), CommandId.SUBMIT_SM, 0, 7) + body
    sock.sendall(bad)
    nack = raw_read(sock)
    assert (nack.command_id, nack.sequence, nack.status) == (CommandId.GENERIC_NACK, 7, Status.ESME_RINVMSGLEN)
    raw_send(sock, submit_pdu(8))
    resp = raw_read(sock)
    assert (resp.command_id, resp.sequence, resp.status) == (CommandId.SUBMIT_SM_RESP, 8, 0)
    sock.close()


def test_unknown_command_gets_generic_nack_rinvcmdid(smpp_gateway):
    sock = raw_bind(smpp_gateway)
    sock.sendall(struct.pack(">IIII", 16, 0x00000042, 0, 5))
    nack = raw_read(sock)
    assert (nack.command_id, nack.sequence, nack.status) == (CommandId.GENERIC_NACK, 5, Status.ESME_RINVCMDID)
    raw_send(sock, Pdu(CommandId.ENQUIRE_LINK, 6))
    assert raw_read(sock).command_id == CommandId.ENQUIRE_LINK_RESP
    sock.close()


def test_hopeless_length_closes_only_that_session(smpp_gateway):
    healthy = bind(smpp_gateway)
    sock = raw_bind(smpp_gateway)
    sock.sendall(struct.pack(">IIII", 0x7FFFFFFF, 4, 0, 1))
    sock.settimeout(5)
    assert sock.recv(100) == b""  # closed by the server
    sock.close()
    healthy.send_message(destination_addr="+4915112345678", short_message=b"still here")
    assert read_until(healthy, "submit_sm_resp").status == 0
    healthy.disconnect()


def test_window_overflow_gets_rmsgqful(tmp_path):
    with ServerThread(tmp_path, window=4) as smpp_gateway:
        sock = raw_bind(smpp_gateway)
        # Eight submit_sm in one write: the session sees them all before any can be written.
        sock.sendall(b"".join(P.encode(submit_pdu(seq)) for seq in range(10, 18)))
        answers = {}
        for _ in range(8):
            resp = raw_read(sock)
            answers[resp.sequence] = resp.status
        assert sorted(answers) == list(range(10, 18))
        assert list(answers[s] for s in range(10, 14)) == [0, 0, 0, 0]
        assert list(answers[s] for s in range(14, 18)) == [Status.ESME_RMSGQFUL] * 4
        assert len(smpp_gateway.spool.list("outgoing")) == 4
        sock.close()


def test_dead_session_is_closed_after_enquire_link_timeout(tmp_path):
    timers = Timers(idle=0.5, dead=1.5, bind=5, response=5)
    with ServerThread(tmp_path, timers=timers) as smpp_gateway:
        sock = raw_bind(smpp_gateway)
        sock.settimeout(5)
        request = raw_read(sock)
        assert request.command_id == CommandId.ENQUIRE_LINK  # the server checks the silent peer
        # ... which does not answer: the server gives up on it.
        assert sock.recv(100) == b""
        sock.close()


def test_connection_that_never_binds_is_closed(tmp_path):
    with ServerThread(tmp_path, timers=Timers(idle=5, dead=10, bind=1, response=5)) as smpp_gateway:
        sock = raw_connection(smpp_gateway)
        sock.settimeout(5)
        assert sock.recv(100) == b""
        sock.close()


# ---- deliver_sm: receipts and inbound -----------------------------------------------------


def _submit_and_get_id(client, **kwargs) -> str:
    client.send_message(destination_addr="+4915112345678", short_message=b"disk full", registered_delivery=1, **kwargs)
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == 0
    return resp.message_id.decode()


def _report_event(smpp_gateway, message_id, status="delivered", delivered=True, tp_status=0):
    headers = outgoing(smpp_gateway, message_id).headers.as_dict()
    return ReportReceived(
        id=message_id, to="+4915112345678", status=status, delivered=delivered, message_ids=(17,),
        report_path="/nonexistent", modem="gsm1", discharge="2026-11-25T10:15:00+00:00", tp_status=tp_status,
        headers=headers,
    )


def test_delivery_receipt_reaches_the_transceiver(smpp_gateway):
    client = bind(smpp_gateway)
    message_id = _submit_and_get_id(client, source_addr="4711")
    smpp_gateway.publish(_report_event(smpp_gateway, message_id))
    receipt = read_until(client, "deliver_sm")
    assert receipt.esm_class == 0x04
    text = receipt.short_message.decode()
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
    assert " done date:2611251015 stat:DELIVRD err:000 text:disk full" in text
    assert receipt.receipted_message_id in (message_id, message_id.encode())
    assert receipt.message_state == P.MessageState.DELIVERED
    assert receipt.destination_addr in (b"4711", "4711")
    client.disconnect()


def test_failure_receipts(smpp_gateway):
    client = bind(smpp_gateway)
    first = _submit_and_get_id(client)
    second = _submit_and_get_id(client)
    headers = outgoing(smpp_gateway, second).headers.as_dict()
    smpp_gateway.publish(_report_event(smpp_gateway, first, status="failed", delivered=False, tp_status=0x41))
    receipt = read_until(client, "deliver_sm")
    assert "stat:UNDELIV" in receipt.short_message.decode() and receipt.message_state == P.MessageState.UNDELIVERABLE
    smpp_gateway.publish(MessageFailed(id=second, to="+4915112345678", reason="expired", path="/x", headers=headers, expired=True))
    receipt = read_until(client, "deliver_sm")
    assert f"id:{second} " in receipt.short_message.decode()
    assert "stat:EXPIRED" in receipt.short_message.decode() and receipt.message_state == P.MessageState.EXPIRED
    client.disconnect()


def _as_the_esme_reads(data_coding: int, octets: bytes) -> str:
    """A receipt's text as an ESME decodes it: data_coding 0 with smpplib's own GSM-7 table."""
    if data_coding == 0:
        table, out, escaped = smpplib.gsm.GSM_CHARACTER_TABLE, [], False
        for octet in octets:
            if octet == 0x1B and not escaped:
                escaped = True
                continue
            out.append(table[0x80 + octet] if escaped else table[octet])
            escaped = False
        return "".join(out)
    return octets.decode({1: "ascii", 3: "latin-1", 8: "utf-16-be"}[data_coding])


@pytest.mark.parametrize(
    "data_coding, short_message, receipt_coding, snippet",
    [
        (0, smpplib.gsm.gsm_encode("Grüße aus Köln"), 0, "Grüße aus Köln"),  # smpplib's make_parts does this
        (0, smpplib.gsm.gsm_encode("Preis: 5€ @ [x]"), 0, "Preis: 5€ @ [x]"),
        (3, "Grüße aus Köln".encode("latin-1"), 3, "Grüße aus Köln"),
        (0, "Grüße aus Köln".encode("latin-1"), 3, "Grüße aus Köln"),  # Latin-1 sent as data_coding 0
        # A UCS-2 receipt would not fit in short_message: ASCII-safe GSM-7, transliterated.
        (8, "Grüße aus Köln 😀".encode("utf-16-be"), 0, "Grusse aus Koln "),
        (1, b"disk full", 1, "disk full"),
    ],
)
def test_receipt_text_comes_in_the_alphabet_the_esme_wrote_in(smpp_gateway, data_coding, short_message,
                                                              receipt_coding, snippet):
    # Receipts used to turn everything beyond ASCII into "?": "text:Gr??e aus K?ln".
    client = bind(smpp_gateway)
    client.send_message(destination_addr="+4915112345678", short_message=short_message,
                        data_coding=data_coding, registered_delivery=1)
    resp = read_until(client, "submit_sm_resp")
    assert resp.status == 0
    message_id = resp.message_id.decode()
    smpp_gateway.publish(_report_event(smpp_gateway, message_id))
    receipt = read_until(client, "deliver_sm")
    assert receipt.esm_class == 0x04 and receipt.data_coding == receipt_coding
    text = _as_the_esme_reads(receipt.data_coding, receipt.short_message)
    assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
    assert text.endswith(f" stat:DELIVRD err:000 text:{snippet}")
    client.disconnect()


def test_receipt_waits_for_the_client_to_bind(smpp_gateway):
    client = bind(smpp_gateway, how="bind_transmitter")
    message_id = _submit_and_get_id(client)
    client.unbind()
    client.disconnect()
    smpp_gateway.publish(_report_event(smpp_gateway, message_id))
    receiver = bind(smpp_gateway, how="bind_receiver")
    receipt = read_until(receiver, "deliver_sm")
    assert f"id:{message_id} " in receipt.short_message.decode()
    receiver.disconnect()


def test_inbound_sms_goes_to_receivers_whose_allow_names_the_modem(smpp_gateway):
    zabbix = bind(smpp_gateway, how="bind_receiver")
    limited = bind(smpp_gateway, "limited", "pw", how="bind_receiver")  # allow: ["*"]
    text = "Antwort: OK ✓ " * 12  # UCS-2, three parts
    smpp_gateway.publish(MessageReceived(
        id="gsm1-20261125-101500-abcd", path="/x", sender="+4915112345678", text=text, modem="gsm1",
        sent=None, received="2026-11-25T10:15:00+00:00", parts=3, incomplete=False,
    ))
    for client in (zabbix, limited):
        segments = [read_until(client, "deliver_sm") for _ in range(3)]
        assert all(s.esm_class == 0x40 and s.data_coding == 8 for s in segments)
        joined = b"".join(s.short_message[6:] for s in sorted(segments, key=lambda s: s.short_message[5]))
        assert joined.decode("utf-16-be") == text
        assert segments[0].source_addr in (b"4915112345678", "4915112345678")
    # zabbix's allow names gsm1 only: an SMS on gsm2 reaches "limited" alone.
    smpp_gateway.publish(MessageReceived(
        id="gsm2-1", path="/x", sender="+4917000000009", text="hi", modem="gsm2",
        sent=None, received="2026-11-25T10:15:00+00:00", parts=1, incomplete=False,
    ))
    assert read_until(limited, "deliver_sm").short_message == b"hi"
    zabbix.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=zabbix))
    assert read_until(zabbix, "enquire_link_resp").command == "enquire_link_resp"  # and no deliver_sm before it
    zabbix.disconnect()
    limited.disconnect()


def test_an_inbound_pdu_that_could_not_be_decoded_is_delivered_as_its_hex(smpp_gateway):
    client = bind(smpp_gateway, how="bind_receiver")
    smpp_gateway.publish(MessageReceived(
        id="gsm1-20261125-101500-dead", path="/x", sender="", text="0791947101670000040C91", modem="gsm1",
        sent=None, received="2026-11-25T10:15:00+00:00", parts=1, incomplete=False,
        decode_error="TP-OA needs 6 octets but only 0 are left (TP-OA, octet 11)",
    ))
    deliver = read_until(client, "deliver_sm")
    assert deliver.short_message == b"0791947101670000040C91" and deliver.source_addr in (b"", "")
    client.disconnect()


def test_query_sm_reports_the_message_state(smpp_gateway):
    client = bind(smpp_gateway)
    message_id = _submit_and_get_id(client)
    client.query_message(message_id=message_id, source_addr="")
    resp = read_until(client, "query_sm_resp")
    assert resp.status == 0 and resp.message_state == P.MessageState.ENROUTE
    client.query_message(message_id="20990101-000000-nothere", source_addr="")
    assert read_until(client, "query_sm_resp").status == Status.ESME_RQUERYFAIL
    client.disconnect()
    other = bind(smpp_gateway, "limited", "pw")  # another client does not see it
    other.query_message(message_id=message_id, source_addr="")
    assert read_until(other, "query_sm_resp").status == Status.ESME_RQUERYFAIL
    other.disconnect()


def test_query_sm_of_a_message_with_an_impossible_delivery_time_answers(smpp_gateway):
    # A sent/ file edited to say "Delivered: 9999-12-31T23:59:59-14:00" has no UTC time; the
    # query used to raise OverflowError, which closed the client's session.
    client = bind(smpp_gateway)
    message_id = _submit_and_get_id(client)
    data = smpp_gateway.spool.read("outgoing", message_id)
    smpp_gateway.spool.write_atomic("sent", message_id, update_headers(data, {
        "Status": "delivered 0 (short message received by the SME)", "Delivered": "9999-12-31T23:59:59-14:00"}))
    smpp_gateway.spool.remove("outgoing", message_id)
    client.query_message(message_id=message_id, source_addr="")
    resp = read_until(client, "query_sm_resp")
    assert resp.status == 0 and resp.message_state == P.MessageState.DELIVERED
    client.disconnect()


def test_a_hand_written_client_header_owns_nothing(smpp_gateway):
    # Regression (issue 11): a file dropped with `Client: zabbix` counted as that client's message.
    smpp_gateway.spool.write_atomic("outgoing", "20990101-000000-forged", b"To: +4915112345678\nClient: zabbix\n\nhi\n")
    client = bind(smpp_gateway)
    client.query_message(message_id="20990101-000000-forged", source_addr="")
    assert read_until(client, "query_sm_resp").status == Status.ESME_RQUERYFAIL
    client.disconnect()


# ---- TLS ----------------------------------------------------------------------------------


def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, timeout=60,
    )
    if made.returncode != 0:
        pytest.skip("openssl cannot make a test certificate here")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    with ServerThread(tmp_path, ssl_context=server_context) as smpp_gateway:
        client_context = ssl.create_default_context(cafile=str(cert))
        client_context.check_hostname = False
        client = smpplib.client.Client("127.0.0.1", smpp_gateway.port, timeout=5, ssl_context=client_context,
                                       allow_unknown_opt_params=True)
        client.connect()
        client.bind_transceiver(system_id="zabbix", password="s3cret")
        client.send_message(destination_addr="+4915112345678", short_message=b"over TLS")
        assert read_until(client, "submit_sm_resp").status == 0
        client.disconnect()


def test_garbage_from_many_connections_leaves_the_server_and_other_sessions_up(smpp_gateway):
    import random

    healthy = bind(smpp_gateway)
    rng = random.Random(20261125)
    for round_number in range(40):
        sock = raw_bind(smpp_gateway) if round_number % 2 else raw_connection(smpp_gateway)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        if round_number % 3 == 0:
            # a sane length with a random body and command: must get an answer, not a close
            junk = struct.pack(">IIII", 16 + len(junk), rng.choice([4, 9, 3, 0x15, 0x42, 5]), 0, 99) + junk
        sock.sendall(junk)
        sock.close()
        healthy.send_message(destination_addr="+4915112345678", short_message=b"ping %d" % round_number)
        assert read_until(healthy, "submit_sm_resp").status == 0
    assert len(smpp_gateway.spool.list("outgoing")) == 40
    healthy.disconnect()


def test_one_final_receipt_per_message_even_when_several_parts_fail(smpp_gateway):
    client = bind(smpp_gateway)
    message_id = _submit_and_get_id(client)
    for _ in range(3):  # a three-part message whose parts all fail
        smpp_gateway.publish(_report_event(smpp_gateway, message_id, status="failed", delivered=False, tp_status=0x41))
    receipt = read_until(client, "deliver_sm")
    assert "stat:UNDELIV" in receipt.short_message.decode()
    client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
    assert client.read_pdu().command == "enquire_link_resp"  # no second receipt came before it
    client.disconnect()


def test_queued_receipt_survives_a_restart_and_is_sent_once(tmp_path):
    from gsmgw.smpp.outbox import Outbox

    state = tmp_path / "state"
    state.mkdir()
    with ServerThread(tmp_path, outbox=Outbox(state / "smpp-outbox.sqlite")) as smpp_gateway:
        client = bind(smpp_gateway, how="bind_transmitter")
        message_id = _submit_and_get_id(client)
        client.unbind()
        client.disconnect()
        smpp_gateway.publish(_report_event(smpp_gateway, message_id))
        smpp_gateway.call(smpp_gateway.bus.drain())
    # The daemon restarts (same spool and state directory): the receipt is still waiting.
    with ServerThread(tmp_path, outbox=Outbox(state / "smpp-outbox.sqlite")) as smpp_gateway:
        receiver = bind(smpp_gateway, how="bind_receiver")
        receipt = read_until(receiver, "deliver_sm")
        assert f"id:{message_id} " in receipt.short_message.decode()
        assert receipt.message_state == P.MessageState.DELIVERED
        receiver.unbind()
        receiver.disconnect()
    with ServerThread(tmp_path, outbox=Outbox(state / "smpp-outbox.sqlite")) as smpp_gateway:
        assert smpp_gateway.server.outbox.load() == []  # answered with ESME_ROK: gone


def test_validity_schedule_and_priority_become_spool_headers(smpp_gateway):
    sock = raw_bind(smpp_gateway)
    next_year = datetime.now(timezone.utc).year % 100 + 1
    raw_send(sock, submit_pdu(2, validity_period="000000020000000R", schedule_delivery_time=f"{next_year:02d}1231230000000+",
                              priority_flag=3, registered_delivery=0))
    resp = raw_read(sock)
    assert resp.status == 0
    headers = outgoing(smpp_gateway, resp.params["message_id"]).headers
    assert headers.get("Validity") == "120 min"
    expires = datetime.fromisoformat(headers.get("Expires"))
    assert 7100 < (expires - datetime.now(timezone.utc)).total_seconds() <= 7200
    assert headers.get("Send_after") == f"20{next_year:02d}-12-31T23:00:00+00:00"
    assert headers.get("Priority") == "high"
    assert headers.get("Report") is None  # no receipt wanted: the config's default decides
    sock.close()


def _inbound(text, modem="gsm1", ident="in-1"):
    return MessageReceived(
        id=ident, path="/x", sender="+4915112345678", text=text, modem=modem,
        sent=None, received="2026-11-25T10:15:00+00:00", parts=1, incomplete=False,
    )


def test_segments_of_one_inbound_sms_stay_on_one_session(smpp_gateway):
    first = bind(smpp_gateway, how="bind_receiver")
    second = bind(smpp_gateway, how="bind_transceiver")
    smpp_gateway.publish(_inbound("x" * 400))  # three GSM-7 parts
    segments = [read_until(first, "deliver_sm") for _ in range(3)]
    assert sorted(s.short_message[5] for s in segments) == [1, 2, 3]
    first.disconnect()
    smpp_gateway.publish(_inbound("after the first went away", ident="in-2"))
    assert read_until(second, "deliver_sm").short_message == b"after the first went away"
    second.disconnect()


def test_a_refused_delivery_is_retried_later(smpp_gateway, monkeypatch):
    import gsmgw.smpp.server as server_module

    monkeypatch.setattr(server_module, "RETRY_DELAY", 0.2)
    sock = raw_connection(smpp_gateway)
    raw_send(sock, Pdu(CommandId.BIND_RECEIVER, 1, 0, {"system_id": "zabbix", "password": "s3cret"}))
    assert raw_read(sock).status == 0
    smpp_gateway.publish(_inbound("try me"))
    first = raw_read(sock)
    assert first.command_id == CommandId.DELIVER_SM
    refused_at = time.monotonic()
    raw_send(sock, Pdu(CommandId.DELIVER_SM_RESP, first.sequence, 0x64))  # ESME_RX_T_APPN
    again = raw_read(sock)
    assert again.command_id == CommandId.DELIVER_SM and again.params["short_message"] == b"try me"
    assert again.sequence != first.sequence and time.monotonic() - refused_at >= 0.15
    raw_send(sock, Pdu(CommandId.DELIVER_SM_RESP, again.sequence, 0, {"message_id": ""}))
    raw_send(sock, Pdu(CommandId.ENQUIRE_LINK, 9))
    assert raw_read(sock).command_id == CommandId.ENQUIRE_LINK_RESP  # nothing more was queued
    sock.close()


def _from(sender, text, ident):
    return MessageReceived(
        id=ident, path="/x", sender=sender, text=text, modem="gsm1",
        sent=None, received="2026-11-25T10:15:00+00:00", parts=1, incomplete=False,
    )


def test_an_inbound_sms_whose_sender_cannot_be_encoded_never_blocks_the_others(tmp_path):
    # "ΔΦ€" as an alphanumeric sender raised while the deliver_sm was built: the session closed
    # after every bind, and the delivery was sent again at the next bind, for ever.
    from gsmgw.daemon.metrics import Metrics
    from gsmgw.smpp.outbox import Outbox

    state = tmp_path / "state"
    state.mkdir()
    metrics = Metrics()
    outbox = state / "smpp-outbox.sqlite"
    with ServerThread(tmp_path, outbox=Outbox(outbox), metrics=metrics) as smpp_gateway:
        receiver = bind(smpp_gateway, how="bind_receiver")
        smpp_gateway.publish(_from("ΔΦ€", "greek", "in-1"))
        smpp_gateway.publish(_from("中国移动", "no ascii spelling", "in-2"))
        smpp_gateway.publish(_from("+4915112345678", "after them", "in-3"))
        first, second = read_until(receiver, "deliver_sm"), read_until(receiver, "deliver_sm")
        assert (first.source_addr_ton, first.source_addr, first.short_message) == (5, b"DFEUR", b"greek")
        assert (second.source_addr, second.short_message) == (b"4915112345678", b"after them")
        receiver.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=receiver))
        assert read_until(receiver, "enquire_link_resp")  # the session is alive, nothing else came
        receiver.unbind()
        receiver.disconnect()
        assert metrics.smpp_parked._value.get() == 1
    # Parked: kept with its reason, not loaded (so not sent) again after a restart.
    kept = Outbox(outbox)
    try:
        assert [d for d in kept.load() if d.client_name == "zabbix"] == []  # "limited" never bound
        ((delivery, reason, _when),) = kept.parked()
        assert delivery.source_addr == "中国移动" and "no ASCII spelling" in reason
    finally:
        kept.close()


def test_a_delivery_refused_again_and_again_is_parked_not_dropped(tmp_path, monkeypatch):
    # Given up after MAX_DELIVERY_ATTEMPTS refusals, a delivery used to be deleted: the SMS
    # never reached the client, and nothing showed it.
    import gsmgw.smpp.server as server_module
    from gsmgw.smpp.outbox import Outbox

    monkeypatch.setattr(server_module, "RETRY_DELAY", 0.01)
    monkeypatch.setattr(server_module, "MAX_DELIVERY_ATTEMPTS", 2)
    (tmp_path / "state").mkdir()
    outbox = tmp_path / "state" / "smpp-outbox.sqlite"
    with ServerThread(tmp_path, outbox=Outbox(outbox)) as smpp_gateway:
        sock = raw_connection(smpp_gateway)
        raw_send(sock, Pdu(CommandId.BIND_RECEIVER, 1, 0, {"system_id": "zabbix", "password": "s3cret"}))
        assert raw_read(sock).status == 0
        smpp_gateway.publish(_inbound("poison"))
        for _ in range(2):
            refused = raw_read(sock)
            assert refused.params["short_message"] == b"poison"
            raw_send(sock, Pdu(CommandId.DELIVER_SM_RESP, refused.sequence, 0x64))
        smpp_gateway.publish(_inbound("next", ident="in-2"))
        following = raw_read(sock)
        assert following.params["short_message"] == b"next"
        raw_send(sock, Pdu(CommandId.DELIVER_SM_RESP, following.sequence, 0, {"message_id": ""}))
        sock.close()
    kept = Outbox(outbox)
    try:
        parked = [(d.short_message, reason) for d, reason, _ in kept.parked() if d.client_name == "zabbix"]
        assert parked == [(b"poison", "refused 2 times (last command_status 0x64)")]
    finally:
        kept.close()


def test_a_source_addr_that_cannot_be_a_header_is_refused_not_crashed(smpp_gateway):
    sock = raw_bind(smpp_gateway)
    raw_send(sock, submit_pdu(2, source_addr="12\n34"))
    resp = raw_read(sock)
    assert (resp.sequence, resp.status) == (2, Status.ESME_RINVSRCADR)
    raw_send(sock, submit_pdu(3))
    assert raw_read(sock).status == 0
    sock.close()
