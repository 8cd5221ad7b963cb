"""Kannel's /cgi-bin/sendsms as Kannel scripts use it: GET, POST form, X-Kannel headers, curl."""

import asyncio
import shutil
import subprocess
import urllib.parse

import pytest

from gsmgw.http.kannel import collect_parameters, decode_text, parse_form
from gsmgw.spool.format import read_spool_file
from test_http_api import OTHER_TOKEN, TOKEN, running_api


def sendsms_query(**params):
    return "/cgi-bin/sendsms?" + urllib.parse.urlencode(params)


async def get(api, path, **kwargs):
    async with api.session.get(api.server.url + path, **kwargs) as response:
        return response.status, await response.text(), response.headers


async def post(api, path, **kwargs):
    async with api.session.post(api.server.url + path, **kwargs) as response:
        return response.status, await response.text(), response.headers


def only_file(api):
    [name] = api.outgoing()
    return api.ctx.spool.verified(api.ctx.spool.read("outgoing", name))


def run(scenario, tmp_path):
    async def main():
        async with running_api(tmp_path) as api:
            await scenario(api)

    asyncio.run(main())


def test_get_is_accepted_like_kannel(tmp_path):
    async def scenario(api):
        status, text, headers = await get(api, sendsms_query(
            username="zabbix", password=TOKEN, to="004915112345678", text="Disk full on db1 ä", **{"dlr-mask": "31"}))
        assert (status, text) == (202, "0: Accepted for delivery")
        assert headers["Content-Type"].startswith("text/html")
        spool_file = only_file(api)
        assert spool_file.headers.get("To") == "+4915112345678"
        assert spool_file.headers.get("Report") == "yes"
        assert spool_file.headers.get("Client") == "zabbix"
        assert spool_file.body.decode() == "Disk full on db1 ä\n"

    run(scenario, tmp_path)


@pytest.mark.parametrize("level, priority", [("3", "high"), ("2", "high"), ("1", None), ("0", None), (None, None)])
def test_kannels_priority_is_the_smpp_flags(tmp_path, level, priority):
    """Kannel's `priority` (0..3) means what SMPP's priority_flag means: 2 and 3 go first."""
    async def scenario(api):
        extra = {} if level is None else {"priority": level}
        status, _, _ = await get(api, sendsms_query(username="zabbix", password=TOKEN, to="+4915112345678",
                                                    text="disk full", **extra))
        assert status == 202
        assert only_file(api).headers.get("Priority") == priority

    run(scenario, tmp_path)


def test_plus_in_an_unencoded_query_still_finds_the_number(tmp_path):
    # Scripts often write to=+49… without encoding; the + arrives as a space, as in Kannel.
    async def scenario(api):
        status, text, _ = await get(api, f"/cgi-bin/sendsms?username=zabbix&password={TOKEN}&to=+4915112345678&text=hi+there")
        assert (status, text) == (202, "0: Accepted for delivery")
        spool_file = only_file(api)
        assert spool_file.headers.get("To") == "+4915112345678"
        assert spool_file.body.decode() == "hi there\n"

    run(scenario, tmp_path)


def test_several_receivers_separated_by_spaces(tmp_path):
    async def scenario(api):
        status, _, _ = await get(api, sendsms_query(user="zabbix", **{"pass": TOKEN}, to="+4915112345678 +4917612345678", text="x"))
        assert status == 202
        assert len(api.outgoing()) == 2

    run(scenario, tmp_path)


def test_post_form_and_dlr_url(tmp_path):
    async def scenario(api):
        form = {"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "form body",
                "dlr-mask": "8", "dlr-url": "http://app.example/dlr?id=1"}
        status, text, _ = await post(api, "/cgi-bin/sendsms", data=form)
        assert (status, text) == (202, "0: Accepted for delivery")
        spool_file = only_file(api)
        assert spool_file.headers.get("Callback") == "http://app.example/dlr?id=1"
        # dlr-mask 8 (SMSC accepted) asks for no delivery report, so none is requested
        assert spool_file.headers.get("Report") == "no"
        api.ctx.spool.remove("outgoing", api.outgoing()[0])
        del form["dlr-mask"]
        status, _, _ = await post(api, "/cgi-bin/sendsms", data=form)
        assert status == 202
        assert only_file(api).headers.get("Report") == "yes", "a dlr-url without dlr-mask wants the report"

    run(scenario, tmp_path)


def test_post_with_x_kannel_headers_and_text_body(tmp_path):
    async def scenario(api):
        headers = {"X-Kannel-Username": "zabbix", "X-Kannel-Password": TOKEN, "X-Kannel-To": "+4915112345678",
                   "Content-Type": "text/plain; charset=ISO-8859-1"}
        status, text, _ = await post(api, "/cgi-bin/sendsms", data="Grüße".encode("latin-1"), headers=headers)
        assert (status, text) == (202, "0: Accepted for delivery")
        assert only_file(api).body.decode() == "Grüße\n"

    run(scenario, tmp_path)


def test_ucs2_coding_with_utf16_text(tmp_path):
    async def scenario(api):
        raw = "Привет 😀".encode("utf-16-be")
        query = f"username=zabbix&password={TOKEN}&to=%2B4915112345678&coding=2&text=" + urllib.parse.quote_from_bytes(raw)
        status, text, _ = await get(api, "/cgi-bin/sendsms?" + query)
        assert (status, text) == (202, "0: Accepted for delivery")
        assert only_file(api).body.decode() == "Привет 😀\n"

    run(scenario, tmp_path)


@pytest.mark.parametrize(
    "params, status, answer",
    [
        ({"username": "zabbix", "password": "wrong", "to": "+4915112345678", "text": "x"}, 403, "Authorization failed for sendsms"),
        ({"username": "nobody", "password": TOKEN, "to": "+4915112345678", "text": "x"}, 403, "Authorization failed for sendsms"),
        ({"to": "+4915112345678", "text": "x"}, 403, "Authorization failed for sendsms"),
        ({"username": "zabbix", "password": TOKEN, "text": "x"}, 400, "Missing receiver number, rejected"),
        ({"username": "zabbix", "password": TOKEN, "to": " ", "text": "x"}, 400, "Empty receiver number not allowed, rejected"),
        ({"username": "zabbix", "password": TOKEN, "to": "+49900123", "text": "x"}, 403, "Number(s) has/have been denied by white- and/or black-lists."),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678"}, 400, "Missing text, rejected"),
        ({"username": "zabbix", "password": TOKEN, "to": "abc", "text": "x"}, 400, "is not a phone number"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "coding": "3"}, 400, "Coding field misformed"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "mclass": "4"}, 400, "MClass field misformed"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "priority": "4"}, 400,
         "Priority field misformed"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "udh": b"\x07\x05\x04\x0b\x84#\xf0"},
         400, "UDH field misformed: its first octet says 7 octets but 6 follow"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "udh": b"\x05\x00\x03\x01\x02\x01"},
         400, "UDH field misformed: the UDH claims concatenation itself"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "dlr-mask": "all"}, 400, "dlr-mask must be a number"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "charset": "klingon"}, 400, "Unknown charset"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "smsc": "nope"}, 400, "Unknown smsc"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x" * 2000}, 400, "SMS parts"),
        # Used to give a 500 (OverflowError in timedelta): durations have one bound.
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "deferred": "10080000000"}, 400,
         "deferred=10080000000 minutes"),
        ({"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "text": "x", "validity": "10080000000"}, 400,
         "longer than 3650 days"),
    ],
)
def test_kannel_errors(tmp_path, params, status, answer):
    async def scenario(api):
        got_status, text, _ = await get(api, sendsms_query(**params))
        assert got_status == status
        assert answer in text
        assert api.outgoing() == []

    run(scenario, tmp_path)


def test_kannel_limits_answer_429(tmp_path):
    async def scenario(api):
        query = sendsms_query(username="limited", password=OTHER_TOKEN, to="+4915112345678", text="x")
        for _ in range(3):
            assert (await get(api, query))[0] == 202
        status, text, headers = await get(api, query)
        assert status == 429 and int(headers["Retry-After"]) >= 1

    run(scenario, tmp_path)


def test_the_password_never_reaches_the_log(tmp_path, caplog):
    async def scenario(api):
        caplog.set_level("DEBUG")
        await get(api, sendsms_query(username="zabbix", password=TOKEN, to="+4915112345678", text="x"))
        await asyncio.sleep(0)

    run(scenario, tmp_path)
    assert "/cgi-bin/sendsms" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_as_a_kannel_user_would(tmp_path):
    async def scenario(api):
        url = api.server.url + "/cgi-bin/sendsms"
        process = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-i", "--max-time", "10", "-G", url,
            "--data-urlencode", "username=zabbix", "--data-urlencode", f"password={TOKEN}",
            "--data-urlencode", "to=+4915112345678", "--data-urlencode", "text=Server down 🔥",
            "--data-urlencode", "dlr-mask=1",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 15)
        assert process.returncode == 0, err
        response = out.decode()
        assert response.startswith("HTTP/1.1 202")
        assert response.endswith("0: Accepted for delivery")
        spool_file = only_file(api)
        assert spool_file.body.decode() == "Server down 🔥\n"
        assert spool_file.headers.get("Report") == "yes"

    run(scenario, tmp_path)


def test_form_parsing_keeps_raw_bytes_until_the_charset_is_known():
    assert parse_form(b"text=%E4&to=1") == [("text", b"\xe4"), ("to", b"1")]
    params = collect_parameters(b"text=%E4&charset=ISO-8859-1", b"", "", {})
    assert decode_text(params["text"], None, "ISO-8859-1") == "ä"
    # The first occurrence wins, as Kannel's http_cgi_variable.
    assert collect_parameters(b"to=1&to=2", b"", "", {})["to"] == b"1"


def test_an_unparsable_request_line_does_not_log_the_password(tmp_path, caplog):
    # aiohttp refuses raw (not URL-encoded) UTF-8 in a query with 400 and logs the request line.
    async def scenario(api):
        caplog.set_level("DEBUG")
        host, port = api.server.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET /cgi-bin/sendsms?username=zabbix&password={TOKEN}&to=+4915112345678&text=Grüße HTTP/1.1\r\n"
                     "Host: x\r\nConnection: close\r\n\r\n".encode("utf-8"))
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        assert api.outgoing() == []

    run(scenario, tmp_path)
    assert TOKEN not in caplog.text


def test_a_dlr_url_must_name_a_host_the_client_may_call_back(tmp_path):
    async def scenario(api):
        for user, password in (("zabbix", TOKEN), ("limited", OTHER_TOKEN)):
            status, text, _ = await get(api, sendsms_query(
                username=user, password=password, to="+4915112345678", text="x",
                **{"dlr-url": "http://192.168.1.1/admin?x=%d"}))
            assert status == 400 and "callback_hosts" in text, text
        assert api.outgoing() == []

    run(scenario, tmp_path)


WAP_UDH = bytes.fromhex("0605040B8423F0")


def test_binary_with_udh_as_kannel_scripts_send_it(tmp_path):
    """udh and text as URL-encoded octets; no coding: 8-bit because a udh is given (smsbox's rule)."""
    async def scenario(api):
        data = bytes.fromhex("0106") + b"\x00\xff binary\r\n"
        query = (f"username=zabbix&password={TOKEN}&to=%2B4915112345678&mclass=1&udh="
                 + urllib.parse.quote_from_bytes(WAP_UDH) + "&text=" + urllib.parse.quote_from_bytes(data))
        status, text, _ = await get(api, "/cgi-bin/sendsms?" + query)
        assert (status, text) == (202, "0: Accepted for delivery")
        from gsmgw.spool.format import parse_outgoing
        from datetime import datetime, timezone
        [name] = api.outgoing()
        message = parse_outgoing(api.ctx.spool.read("outgoing", name), now=datetime.now(timezone.utc))
        assert (message.data, message.udh, message.message_class) == (data, WAP_UDH, 1)

    run(scenario, tmp_path)


def test_a_text_with_a_udh_and_coding_0_and_the_x_kannel_header_form(tmp_path):
    async def scenario(api):
        query = f"username=zabbix&password={TOKEN}&to=%2B4915112345678&coding=0&text=BEGIN%3AVCARD&udh=%06%05%04%23%F4%23%F4"
        assert (await get(api, "/cgi-bin/sendsms?" + query))[:2] == (202, "0: Accepted for delivery")
        headers = {"X-Kannel-Username": "zabbix", "X-Kannel-Password": TOKEN, "X-Kannel-To": "+4915112345678",
                   "X-Kannel-UDH": "0605040B8423F0", "X-Kannel-Coding": "1", "Content-Type": "application/octet-stream"}
        status, text, _ = await post(api, "/cgi-bin/sendsms", data=b"\x01\x06", headers=headers)
        assert (status, text) == (202, "0: Accepted for delivery")
        files = sorted((read_spool_file(api.ctx.spool.read("outgoing", n)) for n in api.outgoing()),
                       key=lambda f: f.headers.get("Alphabet") or "")
        text_file, binary_file = files  # no Alphabet: line sorts before "binary"
        assert text_file.headers.get("UDH-DATA") == "06 05 04 23 F4 23 F4" and text_file.body == b"BEGIN:VCARD\n"
        assert binary_file.headers.get("Alphabet") == "binary" and binary_file.body == b"0106\n"
        assert binary_file.headers.get("UDH-DATA") == "06 05 04 0B 84 23 F0"

    run(scenario, tmp_path)


def test_binary_over_255_parts_is_refused(tmp_path):
    async def scenario(api):
        form = {"username": "zabbix", "password": TOKEN, "to": "+4915112345678", "coding": "1", "text": "x" * 40000}
        status, text, _ = await post(api, "/cgi-bin/sendsms", data=form)
        assert status == 400 and "needs 299 SMS parts" in text and "one message has at most 255" in text
        assert text.endswith(", rejected") and api.outgoing() == []

    run(scenario, tmp_path)
