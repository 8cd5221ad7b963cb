"""Binary SMS end to end (issue 13): a spool file in smstools3's binary format -> the daemon ->
a simulated modem on a pty -> the simulated network -> the other simulated modem -> incoming/,
written as smstools3 writes binary messages, with `Port:`."""

from __future__ import annotations

from gammu_peer import gammu_decode, needs_gammu
from gsmgw.daemon.events import MessageReceived, MessageSent
from gsmgw.spool.format import read_incoming
from test_e2e_gateway import run_scenario
from test_spool_binary import SMSTOOLS3_WAP_PUSH, WAP_PUSH_DATA

WAP_UDH = bytes.fromhex("0605040B8423F0")


def _wap_push_file(to: str) -> bytes:
    # smstools3's fileformat.html example, addressed to the second simulated SIM and sent by the first.
    return SMSTOOLS3_WAP_PUSH.replace(b"To: 358401234567\n", f"To: {to}\nModem: modem0\n".encode())


@needs_gammu
def test_a_wap_push_from_a_spool_file_arrives_in_the_other_modems_incoming_as_smstools3_writes_it(tmp_path):
    long_data = bytes(range(256)) + b"tail of a long binary message"

    async def scenario(run):
        await run.ready()
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
            "binary", "yes", "06 05 04 0B 84 23 F0", "yes")
        assert (headers.get("Port"), headers.get("From_port"), headers.get("Parts")) == ("2948", "9200", "1")
        assert data.split(b"\n\n", 1)[1] == WAP_PUSH_DATA.hex().upper().encode()
        assert read_incoming((run.spool / "incoming" / joined.id).read_bytes()).data == long_data

        # What went over the air, read by gammu: 8-bit, the ports in every part, each part <= 140 octets.
        records = run.network.submissions
        answers = gammu_decode([record["pdu"] for record in records])
        assert [answer["coding"] for answer in answers] == ["8bit"] * 4
        assert all(record["udh"] == "0605040B8423F0" for record in records)
        assert all(len(bytes.fromhex(answer["udh"] + answer["text"])) <= 140 for answer in answers)

    run_scenario(tmp_path, scenario)
