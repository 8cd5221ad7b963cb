"""Recipient addresses and mail senders (gsmgw.email.addresses, the SMTP part of gsmgw.clients)."""

from __future__ import annotations

import ipaddress

import pytest

from gsmgw.clients import ClientConfigError, ClientRegistry, client_from_config, peer_address
from gsmgw.email.addresses import Refusal, reply_address, resolve_recipient, sender_client

DOMAINS = ("sms.example.org", "sms2.example.org")
GROUPS = {"oncall": ("+4915112345678", "+4917612345678"), "Ops": ("+4930123456",), "empty": ()}


def resolve(address, default_country="49"):
    return resolve_recipient(address, domains=DOMAINS, groups=GROUPS, default_country=default_country)


@pytest.mark.parametrize("address, numbers", [
    ("+4915112345678@sms.example.org", ("+4915112345678",)),
    ("004915112345678@sms.example.org", ("+4915112345678",)),
    ("4915112345678@SMS.Example.ORG", ("+4915112345678",)),
    ("015112345678@sms2.example.org", ("+4915112345678",)),
    ('"+49 151 1234 5678"@sms.example.org', ("+4915112345678",)),
    ("+49-151-12345678@sms.example.org", ("+4915112345678",)),
    ("<+4915112345678@sms.example.org>", ("+4915112345678",)),
    ("oncall@sms.example.org", ("+4915112345678", "+4917612345678")),
    ("OnCall@sms.example.org", ("+4915112345678", "+4917612345678")),
    ("ops@sms.example.org", ("+4930123456",)),
])
def test_recipient_forms(address, numbers):
    assert resolve(address).numbers == numbers


def test_a_group_recipient_names_its_group():
    assert resolve("oncall@sms.example.org").group == "oncall"
    assert resolve("+4915112345678@sms.example.org").group is None


@pytest.mark.parametrize("address, code, status, words", [
    ("+4915112345678@example.com", 550, "5.1.2", "+4915112345678@sms.example.org"),
    ("nobody@sms.example.org", 550, "5.1.1", "neither a phone number nor a group"),
    ("12345@sms.example.org", 550, "5.1.1", "too short"),
    ("empty@sms.example.org", 550, "5.1.1", "no members"),
    ("no-at-sign", 550, "5.1.3", "not a mail address"),
])
def test_refused_recipients_say_what_to_write(address, code, status, words):
    with pytest.raises(Refusal) as refused:
        resolve(address)
    assert (refused.value.code, refused.value.status) == (code, status)
    assert words in refused.value.text
    assert refused.value.reply.startswith(f"{code} {status} ")


def test_national_numbers_need_a_default_country():
    with pytest.raises(Refusal, match="default_country"):
        resolve("015112345678@sms.example.org", default_country=None)


def test_reply_address():
    assert reply_address("+4915112345678", DOMAINS) == "+4915112345678@sms.example.org"
    assert reply_address("Vodafone", DOMAINS) is None
    assert reply_address("+4915112345678", ()) is None


# --- senders ----------------------------------------------------------------------------------------

def registry():
    return ClientRegistry([
        client_from_config({"name": "nagios", "smtp": {"user": "nagios", "password": "pw1", "from": ["nagios@example.org"]},
                            "allow": ["+49*"]}),
        client_from_config({"name": "printers", "networks": ["10.0.5.0/24"], "allow": ["+49*"]}),
        client_from_config({"name": "ups", "networks": ["10.0.5.7"], "smtp": {"from": ["ups-*@example.org"]},
                            "allow": ["+49*"]}),
        client_from_config({"name": "cron", "smtp": {"from": ["root@*"]}, "allow": ["+49*"]}),
    ])


TRUSTED = (ipaddress.ip_network("127.0.0.0/8"),)


def choose(peer, mail_from, authenticated=None):
    return sender_client(registry(), authenticated=authenticated, peer=peer_address(peer),
                         trusted_networks=TRUSTED, mail_from=mail_from).name


def test_authenticated_sessions_are_their_client_within_its_from_rules():
    reg = registry()
    nagios = reg.authenticate_smtp("nagios", "pw1")
    assert nagios is not None and reg.authenticate_smtp("nagios", "wrong") is None
    assert reg.authenticate_smtp("nagios", "") is None and reg.authenticate_smtp("printers", "pw1") is None
    assert choose("192.0.2.1", "Nagios@Example.ORG", nagios) == "nagios"
    with pytest.raises(Refusal, match="may not send as other@example.org") as refused:
        choose("192.0.2.1", "other@example.org", nagios)
    assert refused.value.status == "5.7.1"


def test_networks_map_unauthenticated_mail_to_clients_most_specific_first():
    assert choose("10.0.5.7", "ups-1@example.org") == "ups"
    assert choose("10.0.5.7", "someone@else.org") == "printers"  # the /24 client takes any sender
    assert choose("10.0.5.8", "anything@x.org") == "printers"
    assert choose("::ffff:10.0.5.9", "anything@x.org") == "printers"


def test_trusted_networks_find_the_client_by_its_from_rules():
    assert choose("127.0.0.1", "root@host1") == "cron"
    assert choose("127.0.0.1", "nagios@example.org") == "nagios"
    with pytest.raises(Refusal, match="unknown sender stranger@x.org"):
        choose("127.0.0.1", "stranger@x.org")


def test_other_addresses_must_authenticate():
    with pytest.raises(Refusal, match="without logging in") as refused:
        choose("192.0.2.1", "root@host1")
    assert refused.value.reply.startswith("550 5.7.1 ")


def test_bad_networks_and_smtp_password_files_name_the_key(tmp_path):
    with pytest.raises(ClientConfigError, match=r"clients\[x\]\.networks: '10\.0\.5\.0/33'"):
        client_from_config({"name": "x", "networks": ["10.0.5.0/33"]})
    with pytest.raises(ClientConfigError, match=r"clients\[x\]\.smtp\.password_file"):
        client_from_config({"name": "x", "smtp": {"password_file": str(tmp_path / "missing")}})
    (tmp_path / "pw").write_text("secret\n")
    client = client_from_config({"name": "x", "smtp": {"password_file": str(tmp_path / "pw")}})
    assert (client.smtp_user, client.smtp_password) == ("x", "secret")
