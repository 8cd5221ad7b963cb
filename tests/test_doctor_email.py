"""`gsmgw doctor` on the email door: the SMTP listener's port, the smarthost, TLS certificates near
their end. Facts are gathered from real sockets and real certificates; diagnose() is pure."""

from __future__ import annotations

import textwrap
import time

import pytest

from gsmgw.config import load_config
from gsmgw.doctor import (
    Account, CertificateFacts, Facts, PortAnswer, ProcessFacts, certificate_not_after, check_email, gather_email,
)
from helpers import free_port, self_signed_certificate
from smarthost import Smarthost

DAEMON = ProcessFacts(4242, "gsmgw", ("/usr/bin/python3", "/usr/bin/gsmgw", "run"), frozenset())


def certificate(tmp_path, days, name="tls"):
    return self_signed_certificate(tmp_path, name, days=days, common_name="gsmgw")


def config(tmp_path, smtp_port, smarthost_port, cert, key):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        modems: [{{name: gsm1, port: /dev/null}}]
        smtp:
          listen: 127.0.0.1:{smtp_port}
          domains: [sms.example.org]
          tls: {{cert: {cert}, key: {key}}}
        clients:
          - name: office
            networks: [127.0.0.1]
            allow: ["+49*"]
        email_out:
          smarthost: 127.0.0.1:{smarthost_port}
          from: sms@sms.example.org
          received: [office@example.org]
        """))
    return load_config(path)


def findings(facts):
    return {(finding.check, finding.severity): finding for finding in check_email(facts)}


def test_a_certificate_ending_within_14_days_and_a_smarthost_that_does_not_answer(tmp_path):
    cert, key = certificate(tmp_path, 10)
    facts = Facts(processes=[], daemon=Account("gsmgw", 998, frozenset()))
    gather_email(config(tmp_path, free_port(), free_port(), cert, key), facts)
    found = findings(facts)
    assert "expires in 10 day(s)" in found["certificate", "warning"].problem
    assert "smtp.tls.cert" in found["certificate", "warning"].subject
    smarthost = found["smarthost", "error"]
    assert "cannot be reached" in smarthost.problem and "refused" in smarthost.problem.lower()
    assert ("smtp-listener", "error") not in found  # the daemon does not run: a closed port is right


def test_a_good_certificate_and_a_smarthost_that_answers_give_no_findings(tmp_path):
    cert, key = certificate(tmp_path, 90)
    with Smarthost() as smarthost:
        facts = Facts(processes=[], daemon=Account("gsmgw", 998, frozenset()))
        gather_email(config(tmp_path, free_port(), smarthost.port, cert, key), facts)
    assert check_email(facts) == []


def test_the_listeners_port(tmp_path):
    cert, key = certificate(tmp_path, 90)
    with Smarthost() as other_server:  # another mail server on the port gsmgw wants
        facts = Facts(processes=[], daemon=Account("gsmgw", 998, frozenset()))
        gather_email(config(tmp_path, other_server.port, other_server.port, cert, key), facts)
    problem = findings(facts)["smtp-listener", "error"]
    assert "another mail server answers there" in problem.problem and "2525" in problem.fix

    running = Facts(processes=[DAEMON], daemon=Account("gsmgw", 998, frozenset()),
                    smtp_port=PortAnswer("smtp.listen", "127.0.0.1", 2525, error="Connection refused"))
    assert "gsmgw runs but nothing answers" in findings(running)["smtp-listener", "error"].problem
    answering = Facts(processes=[DAEMON], smtp_port=PortAnswer("smtp.listen", "127.0.0.1", 2525,
                                                                 greeting="220 sms.example.org ESMTP gsmgw"))
    assert check_email(answering) == []
    low = Facts(processes=[DAEMON], daemon=Account("gsmgw", 998, frozenset()),
                smtp_port=PortAnswer("smtp.listen", "127.0.0.1", 25, greeting="220 sms.example.org ESMTP gsmgw"))
    assert "below 1024" in findings(low)["smtp-listener", "warning"].problem


def test_an_expired_or_unreadable_certificate_is_an_error():
    now = time.time()
    facts = Facts(now=now, certificates=[CertificateFacts("http.tls.cert", "/etc/gsmgw/old.crt", now - 3600),
                                         CertificateFacts("smpp.tls.cert", "/etc/gsmgw/x.crt", error="no PEM certificate")])
    problems = sorted(finding.problem for finding in check_email(facts))
    assert problems[0].startswith("cannot read the certificate") and problems[1].startswith("the certificate expired")


def test_certificate_not_after_reads_utctime_and_generalizedtime(tmp_path):
    cert, _ = certificate(tmp_path, 30)
    assert abs(certificate_not_after(cert.read_text()) - (time.time() + 30 * 86400)) < 120
    far, _ = certificate(tmp_path, 365 * 40, name="far")  # after 2049: GeneralizedTime (RFC 5280 4.1.2.5)
    assert certificate_not_after(far.read_text()) > time.time() + 365 * 39 * 86400
    with pytest.raises(ValueError):
        certificate_not_after("not a certificate")
