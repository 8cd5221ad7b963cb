"""Binary SMS end to end (issue 13): a spool file in smstools3's binary format -> the daemon ->
a simulated modem on a pty -> the simulated network -> the other simulated modem -> incoming/,
written as smstools3 writes binary messages, with `Port:`; and from there to the received
webhook (a receiver on loopback) and an SMPP receiver (smpplib) with the data intact."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import smpplib.client

from gammu_peer import gammu_decode, needs_gammu
from gsmgw.config import WebhooksConfig
from gsmgw.events import MessageReceived, MessageSent
from gsmgw.spool.format import read_incoming
from gsmgw.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from helpers import free_port
from test_e2e_gateway import run_scenario
from test_smpp_e2e import read_pdu_until, with_smpp
from test_spool_binary import SMSTOOLS3_WAP_PUSH, WAP_PUSH_DATA
from test_webhooks import Receiver

WAP_UDH = bytes.fromhex("0605040B8423F0")
SECRET = "binary-webhook-secret-1"


def _wap_push_file(to: str) -> bytes:
    # smstools3's fileformat.html example, addressed to the second simulated SIM and sent by the first.
    return SMSTOOLS3_WAP_PUSH.replace(b"To: 358401234567\n", f"To: {to}\nModem: modem0\n".encode())


def _smpp_messages(port: int, count: int) -> list:
    """Blocking: bind a receiver and read deliver_sm until `count` messages are whole
    (a segment's UDH concatenation IE says how many parts its message has)."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=30, allow_unknown_opt_params=True)
    client.connect()
    try:
        client.bind_receiver(system_id="app", password="secret")
        segments, done = {}, 0
        while done < count:
            pdu = read_pdu_until(client, "deliver_sm")
            header = pdu.short_message[: pdu.short_message[0] + 1] if pdu.esm_class & 0x40 else b""
            concat = header.find(bytes((0x00, 3)), 1)
            key = header[concat + 2] if concat > 0 else ("single", len(segments))
            segments.setdefault(key, []).append(pdu)
            total = header[concat + 3] if concat > 0 else 1
            done += len(segments[key]) == total
        return list(segments.values())
    finally:
        client.disconnect()


@needs_gammu
def test_a_wap_push_from_a_spool_file_arrives_in_the_other_modems_incoming_as_smstools3_writes_it(tmp_path):
    long_data = bytes(range(256)) + b"tail of a long binary message"
    smpp_port, hook_port = free_port(), free_port()

    def configure(config):
        webhooks = WebhooksConfig(received=f"http://127.0.0.1:{hook_port}/hook", secret=SECRET)
        return dataclasses.replace(with_smpp(config, smpp_port), webhooks=webhooks)

    async def scenario(run):
        async with Receiver(port=hook_port) as hook:
            await run.ready()
            smpp = asyncio.ensure_future(asyncio.to_thread(_smpp_messages, smpp_port, 2))
            receiver = run.network.modems[1].number
            run.drop("wap-push", _wap_push_file(receiver))
            run.drop("long-binary", (
                f"To: {receiver}\nModem: modem0\nAlphabet: binary\nHex: yes\nUDH-DATA: 06 05 04 0B 84 23 F0\n\n"
                + long_data.hex()).encode())
            await run.until(lambda: len(run.of(MessageReceived)) == 2, 30, "both binary messages received")
            assert {event.id for event in run.of(MessageSent)} == {"wap-push", "long-binary"}
            by_length = {len(event.data): event for event in run.of(MessageReceived)}
            push, joined = by_length[len(WAP_PUSH_DATA)], by_length[len(long_data)]
            assert push.modem == joined.modem == "modem1" and push.sender == run.network.modems[0].number
            assert (push.data, push.udh, push.ports) == (WAP_PUSH_DATA, WAP_UDH, (2948, 9200))
            assert joined.data == long_data and joined.parts == 3 and joined.ports == (2948, 9200)

            data = (run.spool / "incoming" / push.id).read_bytes()
            headers = read_incoming(data).headers
            assert (headers.get("Alphabet"), headers.get("UDH"), headers.get("UDH-DATA"), headers.get("Hex")) == (
                "binary", "true", "06 05 04 0B 84 23 F0", "yes")
            assert (headers.get("Port"), headers.get("From_port"), headers.get("Parts")) == ("2948", "9200", "1")
            assert data.split(b"\n\n", 1)[1] == WAP_PUSH_DATA.hex().upper().encode()
            assert read_incoming((run.spool / "incoming" / joined.id).read_bytes()).data == long_data

            # What went over the air, read by gammu: 8-bit, the ports in every part, each part <= 140 octets.
            records = run.network.submissions
            answers = gammu_decode([record["pdu"] for record in records])
            assert [answer["coding"] for answer in answers] == ["8bit"] * 4
            assert all(record["udh"] == "0605040B8423F0" for record in records)
            assert all(len(bytes.fromhex(answer["udh"] + answer["text"])) <= 140 for answer in answers)

            # The received webhook: each message once, signed, its octets, header and ports as sent.
            bodies = {}
            for _ in range(2):
                body = await hook.next(timeout=30)
                bodies[json.loads(body)["id"]] = json.loads(body)
            for (_, headers_sent, body) in hook.requests:
                assert headers_sent[SIGNATURE_HEADER] == sign(headers_sent[TIMESTAMP_HEADER], body, SECRET)
            for event, octets in ((push, WAP_PUSH_DATA), (joined, long_data)):
                hooked = bodies[event.id]
                assert (hooked["binary"], hooked["data"], hooked["udh"], hooked["port"], hooked["from_port"]) == (
                    True, octets.hex().upper(), "0605040B8423F0", 2948, 9200)

            # The SMPP receiver: data_coding 4 with UDHI, the ports in every segment, the octets whole.
            messages = await asyncio.wait_for(smpp, 30)
            got = {}
            for segments in messages:
                segments.sort(key=lambda pdu: pdu.short_message[11] if len(segments) > 1 else 0)
                octets = b""
                for pdu in segments:
                    assert (pdu.data_coding, pdu.esm_class & 0x40, len(pdu.short_message) <= 140) == (4, 0x40, True)
                    header = pdu.short_message[: pdu.short_message[0] + 1]
                    assert header[1:7] == WAP_UDH[1:]  # 05 04 0B84 23F0 first, then concatenation when split
                    octets += pdu.short_message[len(header):]
                got[len(segments)] = octets
            assert got == {1: WAP_PUSH_DATA, 3: long_data}

    run_scenario(tmp_path, scenario, configure=configure)
