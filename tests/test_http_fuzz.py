"""Fuzzing the request parsing: random bytes and random JSON never escape as anything but a
clear 4xx answer (ApiError), and what is accepted is exactly what the daemon will read back."""

import asyncio
import json
import threading
from urllib.parse import urlencode
from datetime import datetime

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmgw.clients import Client, ClientRegistry
from gsmgw.http.kannel import collect_parameters, parse_sendsms
from gsmgw.http.validation import (
    ApiError,
    SendPolicy,
    check_destinations,
    parse_json_body,
    parse_send_request,
    prepare_messages,
)
from gsmgw.spool.format import parse_outgoing
from spoolfiles import durations, times
from test_http_api import TOKEN, Context, write_config

REGISTRY = ClientRegistry(
    [Client("app", token="t", allow=("+49*", "group:team"), deny=("+49900*",))],
    {"team": ["+4915112345678", "+4917612345678"]},
)
POLICY = SendPolicy(default_country="49", default_max_parts=6, modem_names=("gsm1",))
NOW = datetime(2026, 11, 25, 12, 0, 0).astimezone()

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
valid_numbers = st.sampled_from(["+4915112345678", "0151 1234 5678", "004917612345678", "4930123456", "group:team", "+49 (0) 30 123456"])
phone_like = valid_numbers | st.from_regex(r"\A(\+|00|0)?[0-9 ().-]{0,18}\Z") | st.sampled_from(["group:x", "+4990012345", "+33612345678"])
# Mostly valid values, so that the accepting path is fuzzed as hard as the refusing one.
field_values = {
    "report": st.booleans() | json_values,
    "flash": st.booleans() | json_values,
    "validity": st.sampled_from(["2 days", "30 min", "255", "0", "1 week", "-1", "300", "x"]) | st.integers(-5, 300) | durations | json_values,
    "priority": st.sampled_from(["high", "normal", "low", "HIGH", "urgent"]) | json_values,
    "modem": st.sampled_from(["gsm1", "gsm2", "gsm1\n"]) | json_values,
    "send_after": st.sampled_from(["2026-11-24T10:15:00+01:00", "2026-11-24", "10 min", "Z"]) | durations | times | json_values,
    "expires": st.sampled_from(["2026-11-24T10:15:00Z", "1 h 30 min", "soon"]) | durations | times | json_values,
    "max_parts": st.integers(1, 255) | st.integers(-3, 300) | json_values,
    "callback": st.sampled_from(["https://a.example/x", "http://[::1]:8/", "javascript:x", "https://"]) | json_values,
}
mostly_valid = st.fixed_dictionaries(
    {
        "to": valid_numbers | st.lists(valid_numbers, min_size=1, max_size=4),
        "text": st.text(min_size=1, max_size=400),
    },
    optional={name: st.one_of(strategy) for name, strategy in field_values.items()},
)
anything = st.fixed_dictionaries(
    {},
    optional={"to": phone_like | st.lists(phone_like, max_size=4) | json_values, "text": st.text(max_size=400) | json_values, **field_values},
) | st.dictionaries(st.text(max_size=10), json_values, max_size=5)
send_objects = mostly_valid | anything


def accept_or_refuse(body: bytes):
    """The whole pure path of a POST; returns the prepared messages or raises ApiError."""
    fields = parse_json_body(body)
    request = parse_send_request(fields, registry=REGISTRY, policy=POLICY, now=NOW)
    check_destinations(REGISTRY, REGISTRY.clients[0], request.recipients)
    return request, prepare_messages(request, client_name="app", policy=POLICY, now=NOW)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_give_an_answer_not_an_exception(body):
    try:
        accept_or_refuse(body)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.message


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(send_objects)
def test_random_json_objects_are_accepted_exactly_or_refused_clearly(fields):
    body = json.dumps(fields).encode()
    try:
        request, prepared = accept_or_refuse(body)
    except ApiError as exc:
        assert exc.status in (400, 403) and exc.message
        return
    assert [message.to for message in prepared] == list(request.recipients)
    for message in prepared:
        parsed = parse_outgoing(message.data, now=NOW, default_country="49")
        assert parsed.recipients == (message.to,)
        assert parsed.text == fields["text"].removeprefix("\ufeff")
        assert parsed.parts == message.parts <= (fields.get("max_parts") or 6)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200), st.sampled_from(["", "text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-16"]))
def test_random_kannel_requests_give_a_kannel_answer(query, body, content_type):
    try:
        params = collect_parameters(query, body, content_type, {})
        parse_sendsms(params, registry=REGISTRY, policy=POLICY, now=NOW)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.message
    except ValueError as exc:
        # Only the form decoder's own complaint is allowed through; the server answers it with 400.
        assert "bad query field" in str(exc) or "form" in str(exc).lower(), exc


kannel_values = {
    "deferred": st.integers(-5, 10**40).map(str) | st.sampled_from(["", "x", "1e9"]),
    "validity": st.integers(-5, 10**40).map(str) | st.sampled_from(["", "x"]),
    "mclass": st.integers(-1, 4).map(str),
    "coding": st.integers(-1, 3).map(str),
    "charset": st.sampled_from(["UTF-8", "ISO-8859-1", "UTF-16BE", "klingon"]),
    "smsc": st.sampled_from(["gsm1", "gsm2", ""]),
    "dlr-mask": st.integers(-1, 100).map(str),
    "dlr-url": st.sampled_from(["https://a.example/x?s=%d", "ftp://x", ""]),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({"to": valid_numbers | phone_like, "text": st.text(max_size=100)},
                             optional={k: v for k, v in kannel_values.items() if k not in ("to", "text")}))
def test_near_valid_kannel_requests_are_accepted_or_refused_clearly(fields):
    # deferred= in minutes used to overflow the clock arithmetic (a 500) for a large number.
    query = urlencode({name: value for name, value in fields.items()}).encode()
    try:
        params = collect_parameters(query, b"", "", {})
        request = parse_sendsms(params, registry=REGISTRY, policy=POLICY, now=NOW)
        check_destinations(REGISTRY, REGISTRY.clients[0], request.recipients)
        prepare_messages(request, client_name="app", policy=POLICY, now=NOW)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.message


class ServerThread:
    """One real server in a background event loop, shared by every fuzz example."""

    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ctx = Context(write_config(tmp_path))
        self.call(self._start())

    async def _start(self):
        from gsmgw.http.server import start

        self.server = await start(self.ctx)
        self.session = aiohttp.ClientSession()

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _post(self, path, body, headers):
        async with self.session.post(self.server.url + path, data=body, headers=headers) as response:
            return response.status, await response.read()

    def post(self, path, body, headers):
        return self.call(self._post(path, body, headers))

    def close(self):
        async def stop():
            await self.session.close()
            await self.server.close()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_random_requests_over_http_never_give_500(tmp_path):
    server = ServerThread(tmp_path)
    headers = {"Authorization": f"Bearer {TOKEN}"}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.binary(max_size=200), send_objects.map(lambda f: json.dumps(f).encode())))
    def post_anything(body):
        status, answer = server.post("/api/v1/messages", body, headers)
        assert status in (202, 400, 403), (status, answer)
        assert "error" in json.loads(answer) or status == 202
        status, answer = server.post("/cgi-bin/sendsms?username=zabbix&password=" + TOKEN, body, {})
        assert status in (202, 400, 403), (status, answer)

    try:
        post_anything()
    finally:
        server.close()
