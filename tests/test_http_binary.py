"""Binary SMS and user data headers through the HTTP API (issue 13): "binary" and "udh" as hex,
"class"; the inbox and the answer show binary messages as the received webhook does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gsmgw.spool.format import build_incoming, parse_outgoing
from test_http_api import run

WAP_UDH_HEX = "0605040B8423F0"


def outgoing_message(api, name):
    return parse_outgoing(api.ctx.spool.read("outgoing", name), now=datetime.now(timezone.utc))


def test_binary_data_with_a_udh_is_queued_as_smstools3_would_read_it(tmp_path):
    async def scenario(api):
        data = bytes(range(200))  # two parts beside the ports: the answer counts them
        status, body, _ = await api.send({"to": "+4915112345678", "binary": data.hex(), "udh": WAP_UDH_HEX, "class": 1})
        assert status == 202, body
        [answer] = body["messages"]
        assert (answer["alphabet"], answer["parts"]) == ("8bit", 2)
        message = outgoing_message(api, answer["id"])
        assert (message.data, message.udh.hex().upper(), message.message_class) == (data, WAP_UDH_HEX, 1)

    run(scenario, tmp_path)


def test_a_text_with_a_udh_and_spaces_in_the_hex(tmp_path):
    async def scenario(api):
        status, body, _ = await api.send({"to": "+4915112345678", "text": "BEGIN:VCARD", "udh": "06 05 04 23 F4 23 F4"})
        assert status == 202, body
        message = outgoing_message(api, body["messages"][0]["id"])
        assert (message.text, message.udh) == ("BEGIN:VCARD", bytes.fromhex("06050423F423F4"))

    run(scenario, tmp_path)


@pytest.mark.parametrize(
    "body, words",
    [
        ({"binary": "0106A"}, '"binary" has an odd number of hex digits (5); write two digits per octet'),
        ({"binary": "01 zz"}, '"binary" is not hex'),
        ({"binary": 106}, '"binary" must be a string of hex digits'),
        ({"binary": "01", "udh": "0705040B8423F0"}, "the UDH's length octet says 7 octets (07) but 6 follow; write 06"),
        ({"binary": "01", "udh": "050003010201"}, "claims concatenation itself"),
        ({"text": "x", "udh": "03250106"}, "national_languages"),
        ({"binary": "00" * 1000}, "needs 8 SMS parts (1000 octets) but at most 6"),
        ({"binary": "01", "text": "x"}, '"text" and "binary" are both given'),
        ({"binary": ""}, '"binary" is empty'),
        ({"text": "x", "class": 4}, '"class" must be a message class 0..3'),
        ({"text": "x", "class": 1, "flash": True}, '"flash": true is class 0'),
    ],
)
def test_bad_binary_fields_get_400_saying_what_to_send(tmp_path, body, words):
    async def scenario(api):
        status, answer, _ = await api.send({"to": "+4915112345678", **body})
        assert status == 400, answer
        assert words in answer["error"]
        assert api.outgoing() == []

    run(scenario, tmp_path)


def test_binary_over_255_parts_cannot_pass_the_body_limit(tmp_path):
    """255 parts of 134 octets are 68,340 hex digits: more than a request body may hold (64 KiB),
    so over HTTP a message is refused for its size before its parts are counted."""
    async def scenario(api):
        status, answer, _ = await api.send({"to": "+4915112345678", "binary": "00" * (256 * 134), "max_parts": 255})
        assert status == 413 and api.outgoing() == []

    run(scenario, tmp_path)


def test_the_inbox_shows_binary_messages_with_their_data_header_and_ports(tmp_path):
    async def scenario(api):
        received = datetime(2026, 11, 25, 10, 0, 0).astimezone()
        content = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=None, received=received,
                                 modem="gsm1", imsi=None, alphabet="8bit", parts=1, data=b"\x01\x06",
                                 udh=bytes.fromhex(WAP_UDH_HEX), ports=(2948, 9200))
        api.ctx.spool.write_atomic("incoming", "gsm1-20261125-100000-aa", content)
        text = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=None,
                              received=received + timedelta(minutes=1), modem="gsm1", imsi=None, alphabet="gsm7",
                              parts=1, text="hi")
        api.ctx.spool.write_atomic("incoming", "gsm1-20261125-100100-bb", text)
        status, answer, _ = await api.request("GET", "/api/v1/inbox")
        assert status == 200
        binary, plain = answer["messages"]
        assert {key: binary[key] for key in ("text", "binary", "data", "udh", "port", "from_port")} == {
            "text": "0106", "binary": True, "data": "0106", "udh": WAP_UDH_HEX, "port": 2948, "from_port": 9200}
        assert (plain["binary"], plain["data"], plain["udh"], plain["port"]) == (False, None, None, None)

    run(scenario, tmp_path)
