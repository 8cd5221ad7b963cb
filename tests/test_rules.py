"""Allow/deny rules: written in any accepted form, they match every form of a number that any
door accepts (HTTP JSON, Kannel URL, SMPP TON/NPI, spool To:), and check-config accepts exactly
what the registry can match."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import datetime

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.clients import Client, ClientConfigError, ClientRegistry
from gsmgw.config import check_text, load_config
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.http.kannel import collect_parameters, parse_sendsms
from gsmgw.http.server import start
from gsmgw.http.validation import ApiError, SendPolicy, parse_send_request
from gsmgw.rules import RuleError, normalize_rule
from gsmgw.smpp import message as M
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu, Status
from gsmgw.smpp.session import Send, Session
from gsmgw.spool.format import parse_outgoing
from gsmgw.spool.store import Spool
from helpers import free_port

COUNTRY = "49"
NOW = datetime(2026, 11, 25, 12, 0, 0).astimezone()
POLICY = SendPolicy(default_country=COUNTRY, default_max_parts=6)
PREMIUM = ("+49900123456", "+4990012", "+491371234567")

SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "/"])


def spaced(digits: str, draw) -> str:
    """`digits` with separators between some of them, as people write numbers."""
    return "".join(char + draw(SEPARATORS) for char in digits).rstrip(" -./")


@st.composite
def numbers(draw):
    """(country code, national significant number) of a valid E.164 number."""
    country = draw(st.sampled_from([COUNTRY, COUNTRY, "1", "44", "353"]))
    first = draw(st.sampled_from("123456789"))
    rest = draw(st.text("0123456789", min_size=6 - len(country), max_size=14 - len(country)))
    return country, first + rest


@st.composite
def written_forms(draw, number):
    """One way a person or a program writes the number (all normalise to the same E.164)."""
    country, national = number
    forms = ["+" + spaced(country + national, draw), "00" + spaced(country + national, draw),
             spaced(country + national, draw), f"+{country} (0) {spaced(national, draw)}"]
    if country == COUNTRY:
        forms.append("0" + spaced(national, draw))
    return draw(st.sampled_from(forms))


def door_forms(number, form):
    """What each door makes of `form`: (door, the E.164 number it would check)."""
    country, national = number
    found = []
    http = parse_send_request({"to": form, "text": "x"}, registry=ClientRegistry([]), policy=POLICY, now=NOW)
    found.append(("http", http.recipients[0]))
    http_list = parse_send_request({"to": [form], "text": "x"}, registry=ClientRegistry([]), policy=POLICY, now=NOW)
    found.append(("http list", http_list.recipients[0]))
    compact = "".join(char for char in form if char not in " ")
    for query_to in (urllib.parse.quote(compact), compact):  # a raw "+" arrives as a space, as in Kannel
        params = collect_parameters(f"username=a&password=b&text=x&to={query_to}".encode(), b"", "", {})
        found.append(("kannel", parse_sendsms(params, registry=ClientRegistry([]), policy=POLICY, now=NOW).recipients[0]))
    found.append(("smpp ton 0", M.destination_number(0, form, COUNTRY)))
    found.append(("smpp ton 1", M.destination_number(1, country + national, COUNTRY)))
    found.append(("smpp ton 1 +", M.destination_number(1, "+" + country + national, COUNTRY)))
    if country == COUNTRY:
        found.append(("smpp ton 2", M.destination_number(2, national, COUNTRY)))
        found.append(("smpp ton 2 trunk 0", M.destination_number(2, "0" + national, COUNTRY)))
    spool = parse_outgoing(f"To: {form}\n\nx\n".encode(), now=NOW, default_country=COUNTRY)
    found.append(("spool", spool.recipients[0]))
    return found


@st.composite
def rule_forms(draw, number, cut):
    """A deny rule for the first `cut` digits of the national number, written some way."""
    country, national = number
    prefix = national[:cut]
    forms = ["+" + spaced(country + prefix, draw) + "*", "00" + spaced(country + prefix, draw) + "*",
             spaced(country + prefix, draw) + "*", f"+{country} (0){prefix}*"]
    if country == COUNTRY:
        forms.append("0" + spaced(prefix, draw) + "*")
    return draw(st.sampled_from(forms))


def registry_with_deny(rule: str) -> tuple[ClientRegistry, Client]:
    """The registry of a client that may send anywhere but to `rule` (that check-config reads the
    same rules the same way is the last property below)."""
    registry = ClientRegistry([Client("app", token="tok", allow=("*",), deny=(rule,))], default_country=COUNTRY)
    return registry, registry.by_name("app")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_rule_in_any_form_matches_every_form_of_the_number_through_every_door(data):
    number = data.draw(numbers())
    cut = data.draw(st.integers(0, len(number[1])))
    rule = data.draw(rule_forms(number, cut))
    registry, client = registry_with_deny(rule)
    form = data.draw(written_forms(number))
    for door, e164 in door_forms(number, form):
        assert e164 == "+" + number[0] + number[1], (door, form)
        verdict = registry.check_destination(client, e164)
        assert not verdict.allowed, f"deny {rule!r} let {form!r} through the {door} door ({verdict.reason})"
        # The registry reads a number as the doors do, also when given the form itself.
        assert not registry.check_destination(client, form).allowed


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_rule_holds_back_only_the_numbers_it_names(data):
    number = data.draw(numbers())
    other = data.draw(numbers())
    cut = data.draw(st.integers(1, len(number[1])))
    registry, client = registry_with_deny(data.draw(rule_forms(number, cut)))
    other_e164 = "+" + other[0] + other[1]
    named = other_e164.startswith("+" + number[0] + number[1][:cut])
    assert registry.check_destination(client, other_e164).allowed is not named


def configured_registry(client_yaml: str) -> ClientRegistry:
    """The registry of a config whose one client is `client_yaml` (check-config must accept it)."""
    yaml_text = (
        f"spool: /tmp/s\nstate: /tmp/t\ndefault_country: \"{COUNTRY}\"\nmodems: [{{name: gsm1, port: /dev/null}}]\n"
        f"http: {{listen: 127.0.0.1:8025}}\ngroups: {{prem: [\"+49900123456\"]}}\n"
        f"clients:\n  - name: app\n    token: tok\n{client_yaml}"
    )
    result = check_text(yaml_text, read_secrets=False)
    assert not result.errors, [issue.render() for issue in result.errors]
    return ClientRegistry.from_config(result.config)


@pytest.mark.parametrize("rule", ["+49 900*", "0900*", "0049900*", "49900*", "+49 (0) 900*", "+49-900-*"])
@pytest.mark.parametrize("number", PREMIUM[:2])
def test_the_reported_premium_rate_rules_hold(rule, number):
    registry = configured_registry(f"    allow: [\"*\"]\n    deny: [{json.dumps(rule)}]\n")
    assert not registry.check_destination(registry.by_name("app"), number).allowed


@pytest.mark.parametrize("rule", ["Group:prem", "GROUP: prem", "group:prem "])
def test_a_group_rule_in_any_case_holds_back_its_members(rule):
    registry = configured_registry(f"    allow: [\"*\"]\n    deny: [{json.dumps(rule)}]\n")
    client = registry.by_name("app")
    assert not registry.check_destination(client, "+49900123456").allowed
    assert registry.check_destination(client, "+4915112345678").allowed


@pytest.mark.parametrize("rule", ["Modem:gsm1", "MODEM: gsm1", "modem:gsm*"])
def test_a_modem_rule_in_any_case_names_its_modem(rule):
    registry = ClientRegistry([Client("app", token="t", allow=(rule,))])
    client = registry.by_name("app")
    assert registry.receives_from_modem(client, "gsm1")
    assert not registry.receives_from_modem(client, "other")


@pytest.mark.parametrize(
    "rule, deny, words",
    [
        ("0900*", False, "default_country"),  # national without a default_country
        ("+0900*", False, "no country code"),
        ("+4990012345678901*", False, "matches nothing"),
        ("?49*", False, "starts with ?"),
        ("+49 9OO*", False, "not a phone number"),
        ("modem:gsm1", True, "move it to allow"),
        ("group:", False, "names no group"),
        ("", False, "non-empty"),
    ],
)
def test_rules_that_cannot_match_are_refused_with_what_to_write(rule, deny, words):
    with pytest.raises(RuleError, match=words):
        normalize_rule(rule, None, deny=deny)


@settings(max_examples=150, deadline=None)
@given(rule=st.text("+0123456789*? -./()gGrRoOuUpPmMdDeE:", min_size=1, max_size=16), deny=st.booleans())
def test_check_config_accepts_exactly_the_rules_the_registry_can_match(rule, deny):
    key = "deny" if deny else "allow"
    yaml_text = (
        f"spool: /tmp/s\nstate: /tmp/t\ndefault_country: \"{COUNTRY}\"\nmodems: [{{name: gsm1, port: /dev/null}}]\n"
        f"http: {{listen: 127.0.0.1:8025}}\ngroups: {{prem: [\"+49900123456\"]}}\n"
        f"clients:\n  - name: app\n    token: tok\n    {key}: [{json.dumps(rule)}]\n"
    )
    result = check_text(yaml_text, read_secrets=False)
    raw_client = Client("app", token="tok", **{key: (rule,)})
    try:
        registry = ClientRegistry([raw_client], {"prem": ["+49900123456"]}, default_country=COUNTRY)
    except ClientConfigError:
        assert result.errors, f"check-config accepted {rule!r}, the registry refused it"
        return
    assert not result.errors, f"check-config refused {rule!r}: {[i.render() for i in result.errors]}"
    configured = ClientRegistry.from_config(result.config).by_name("app")
    assert getattr(configured, key) == getattr(registry.by_name("app"), key)


def test_smpp_national_ton_gets_the_default_country():
    assert M.destination_number(2, "15112345678", "49") == "+4915112345678"
    assert M.destination_number(2, "015112345678", "49") == "+4915112345678"
    with pytest.raises(M.MessageError, match="default_country"):
        M.destination_number(2, "15112345678", None)


def test_http_accepts_a_group_written_in_any_case():
    registry = ClientRegistry([], {"team": ["+4915112345678"]})
    request = parse_send_request({"to": "Group: team", "text": "x"}, registry=registry, policy=POLICY, now=NOW)
    assert request.recipients == ("+4915112345678",)
    with pytest.raises(ApiError, match="unknown group"):
        parse_send_request({"to": "GROUP:nope", "text": "x"}, registry=registry, policy=POLICY, now=NOW)


DOOR_CONFIG = """\
spool: {tmp}/spool
state: {tmp}/state
default_country: "49"
modems: [{{name: gsm1, port: {tmp}/modem0}}]
http: {{listen: "127.0.0.1:{port}"}}
smpp: {{listen: "127.0.0.1:{port2}"}}
groups: {{prem: ["+49137123456"]}}
clients:
  - name: app
    token: tok-app-0123456789
    smpp: {{system_id: app, password: pw}}
    allow: ["*"]
    deny: ["0900*", "Group:prem"]
"""


def test_the_doors_refuse_what_a_national_deny_rule_names(tmp_path):
    """The running HTTP server (JSON and Kannel) and an SMPP session refuse premium numbers in
    every form, with the deny rule written nationally and a group rule in another case."""
    path = tmp_path / "gsmgw.yaml"
    path.write_text(DOOR_CONFIG.format(tmp=tmp_path, port=free_port(), port2=free_port()))
    config = load_config(path)

    class Ctx:
        def __init__(self):
            self.config = config
            self.spool = Spool(config.spool)
            self.spool.ensure_dirs()
            self.bus = EventBus()
            self.metrics = Metrics()

        def status_snapshot(self):
            return {"updated": None, "modems": [], "queue": {}}

        def message_status(self, message_id):
            return None

    refused = ["+49 900 123456", "0049900123456", "0900 123456", "49900123456", "+49 137 123456"]

    async def main():
        server = await start(Ctx())
        try:
            async with aiohttp.ClientSession() as session:
                for number in refused:
                    async with session.post(server.url + "/api/v1/messages", json={"to": number, "text": "x"},
                                            headers={"Authorization": "Bearer tok-app-0123456789"}) as response:
                        assert response.status == 403, number
                    query = urllib.parse.urlencode({"username": "app", "password": "tok-app-0123456789",
                                                    "to": number.replace(" ", ""), "text": "x"})
                    async with session.get(server.url + "/cgi-bin/sendsms?" + query) as response:
                        assert response.status == 403, number
                async with session.post(server.url + "/api/v1/messages", json={"to": "+4915112345678", "text": "x"},
                                        headers={"Authorization": "Bearer tok-app-0123456789"}) as response:
                    assert response.status == 202
        finally:
            await server.close()

    asyncio.run(main())

    registry = ClientRegistry.from_config(config)
    smpp = Session(registry, now=0.0, wall_clock=lambda: NOW, new_id=lambda: "id", default_country=COUNTRY)
    smpp.data_received(P.encode(Pdu(CommandId.BIND_TRANSMITTER, 1, 0, {"system_id": "app", "password": "pw"})), 0.0)
    for sequence, (ton, address) in enumerate([(1, "49900123456"), (2, "900123456"), (2, "0900123456"),
                                               (0, "0900123456"), (0, "+49900123456"), (1, "49137123456")], 2):
        pdu = Pdu(CommandId.SUBMIT_SM, sequence, 0, {"dest_addr_ton": ton, "destination_addr": address, "short_message": b"x"})
        [answer] = [P.decode(a.data) for a in smpp.data_received(P.encode(pdu), 1.0) if isinstance(a, Send)]
        assert answer.status == Status.ESME_RINVDSTADR, (ton, address)
