"""check-config on the email keys (EMAIL.md): smtp:, email_out:, clients[].smtp/networks and
modems[].email_to. Every error names the key, its line and what to write instead."""

from __future__ import annotations

import os
import textwrap

from gsmgw.config import check_text

BASE = """\
spool: /var/spool/gsmgw
state: /var/lib/gsmgw
default_country: "49"
modems:
  - name: gsm1
    port: /dev/gsmgw/gsm1
"""


def check(text, tmp_path=None):
    return check_text(BASE + textwrap.dedent(text), filename="gsmgw.yaml")


def messages(result):
    return [issue.render("gsmgw.yaml") for issue in result.errors], [issue.render("gsmgw.yaml") for issue in result.warnings]


def test_a_complete_email_config(tmp_path):
    (tmp_path / "nagios.smtp").write_text("pw\n")
    (tmp_path / "relay.pw").write_text("pw2\n")
    (tmp_path / "ca.pem").write_text("x\n")
    for name in ("nagios.smtp", "relay.pw"):
        os.chmod(tmp_path / name, 0o600)
    result = check(f"""\
        smtp:
          listen: 127.0.0.1:2525
          domains: [SMS.Example.org, sms2.example.org.]
          max_size: 1 MiB
          text: body
          trusted_networks: [127.0.0.1/32, "::1"]
        email_out:
          smarthost: mail.example.org:587
          user: gsmgw
          password_file: {tmp_path}/relay.pw
          from: "SMS gateway <sms@sms.example.org>"
          received: office@example.org
          failed: [ops@example.org]
          report: true
          tls: required
          ca_file: {tmp_path}/ca.pem
        clients:
          - name: nagios
            smtp: {{user: nagios, password_file: {tmp_path}/nagios.smtp, from: ["nagios@example.org", "*@nagios.example.org"]}}
            networks: [10.0.5.0/24]
            allow: ["+49*"]
        """)
    assert result.errors == [], messages(result)
    config = result.config
    assert config.smtp.domains == ("sms.example.org", "sms2.example.org")
    assert (config.smtp.max_size, config.smtp.text, config.smtp.trusted_networks) == (1024 * 1024, "body", ("127.0.0.1/32", "::1"))
    out = config.email_out
    assert (out.smarthost_host, out.smarthost_port, out.password, out.received, out.report, out.tls) == (
        "mail.example.org", 587, "pw2", ("office@example.org",), True, "required")
    client = config.clients[0]
    assert client.smtp.password == "pw" and client.smtp.senders == ("nagios@example.org", "*@nagios.example.org")
    assert client.networks == ("10.0.5.0/24",)


def test_every_bad_email_key_is_named_with_its_fix():
    result = check("""\
        smtp:
          listen: 127.0.0.1:99999
          domains: ["bad domain!"]
          max_size: 10 GiB
          text: subjekt
          trusted_networks: [10.0.0.0/33]
          tls: {cert: /nonexistent.crt, key: /nonexistent.key}
        email_out:
          smarthost: "mail example org"
          from: "no address"
          user: gsmgw
          tls: maybe
          received: [not-an-address]
        clients:
          - name: nagios
            smtp: {user: nagios, from: [nagios]}
            networks: [somewhere]
            allow: ["+49*"]
          - name: cron
            smtp: {}
            allow: ["+49*"]
        """)
    errors, _ = messages(result)
    expected = [
        "smtp.listen: port 99999 is outside 1..65535",
        "smtp.domains[0]: 'bad domain!' is not a domain name; write the domain of the SMS addresses",
        "smtp.max_size: 10 GiB is outside 1 KiB..64 MiB; write a size from 1 KiB to 64 MiB",
        "smtp.text: 'subjekt' is not one of subject, body, subject+body; did you mean subject?",
        "smtp.trusted_networks[0]: '10.0.0.0/33' is not a network",
        "smtp.tls.cert: /nonexistent.crt does not exist",
        "email_out.smarthost: cannot read 'mail example org' as host:port",
        "email_out.from: 'no address' has no mail address",
        "email_out.user: has no password; add password_file:",
        "email_out.tls: 'maybe' is not one of auto, required",
        "email_out.received[0]: 'not-an-address' is not a mail address; write it like ops@example.org",
        "clients[0].smtp: the user 'nagios' has no password; add password_file:",
        "clients[0].smtp.from[0]: 'nagios' is not a sender address or pattern",
        "clients[0].networks[0]: 'somewhere' is not a network",
        "clients[1].smtp: says neither how to log in nor which senders are this client's",
    ]
    for words in expected:
        assert any(words in error for error in errors), (words, errors)
    assert all(error.startswith("gsmgw.yaml:") for error in errors)


def test_email_warnings():
    result = check("""\
        smtp:
          listen: 0.0.0.0:2525
          domains: [sms.example.org]
          trusted_networks: [0.0.0.0/0]
        email_out:
          smarthost: mail.example.org
          from: sms@sms.example.org
        clients:
          - name: nagios
            smtp: {user: nagios, password: inline-secret}
            allow: ["+49*"]
        """)
    assert result.errors == [], messages(result)
    _, warnings = messages(result)
    for words in ("smtp.trusted_networks[0]: 0.0.0.0/0 is every address",
                  "smtp.tls: AUTH is offered only under TLS or on loopback",
                  "email_out: nothing is mailed"):
        assert any(words in warning for warning in warnings), (words, warnings)
    assert result.config.email_out.smarthost_port == 25


def test_email_to_needs_email_out_and_a_listener_needs_clients():
    result = check_text(BASE + "    email_to: [office@example.org]\nsmtp: {domains: [sms.example.org]}\n",
                        filename="gsmgw.yaml")
    errors, warnings = messages(result)
    assert any("email_out: (the smarthost) is not configured" in error for error in errors), errors
    assert any("smtp: no client may send mail" in warning for warning in warnings), warnings
