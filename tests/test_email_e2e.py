"""End to end over the simulated modems: the whole gateway (daemon, SMTP listener, mail out) with
real SMTP clients (smtplib and Debian's swaks) and a real SMTP server as the smarthost.

mail -> SMS -> network, and SMS -> mail -> reply mail -> SMS; `gsmgw run` killed with SIGKILL
right after a 250. Every wait is for an event with a deadline.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import signal
import smtplib
import subprocess
import sys
import textwrap
import time
from email.message import EmailMessage

import pytest

from gsmgw.config import load_config
from gsmgw.daemon.app import Gateway
from gsmgw.sim import SimNetwork
from gsmgw.sms import decode_pdu
from helpers import debian_tool, free_port
from smarthost import Smarthost
from test_e2e_http import texts_by_recipient

pytestmark = pytest.mark.slow

DOMAIN = "sms.example.org"
FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}
# Umlauts and emoji, quoted-printable UTF-8, as Thunderbird sends them.
QP_MAIL = (
    "From: Jürgen <office@example.org>\r\n"
    "To: +4915112345678@sms.example.org\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n"
    "Message-ID: <qp-1@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "K=C3=B6ln, =C3=84rger =C3=BCber =C3=96l =F0=9F=98=80=F0=9F=8E=89 =E2=82=AC\r\n"
    "\r\n"
    "-- \r\n"
    "J=C3=BCrgen\r\n"
)
QP_TEXT = "Grüße: Köln, Ärger über Öl 😀🎉 €"


def write_config(tmp_path, network, smarthost_port, *, smtp_port=None, email_out_extra=""):
    modems = "".join(f"  - name: gsm{i + 1}\n    port: {modem.path}\n" for i, modem in enumerate(network.modems))
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        smtp:
          listen: 127.0.0.1:{smtp_port or free_port()}
          domains: [{DOMAIN}]
          trusted_networks: [127.0.0.1/32]
        email_out:
          smarthost: 127.0.0.1:{smarthost_port}
          from: "SMS gateway <sms@{DOMAIN}>"
          received: ["office@example.org"]
        clients:
          - name: office
            smtp: {{from: ["office@example.org", "*@office.example.org"]}}
            allow: ["+49*", "group:oncall"]
            deny: ["+49900*"]
        groups:
          oncall: ["+4915112345678", "+4917612345678", "+4930123456"]
        """).replace("clients:\n", email_out_extra + "clients:\n", 1) + "modems:\n" + modems)
    return path


def run_gateway(tmp_path, scenario, *, modems=1, timeout=60.0, email_out_extra=""):
    network = SimNetwork(tmp_path / "sim", modems=modems)
    network.start()
    smarthost = Smarthost().start()

    async def main():
        config = load_config(write_config(tmp_path, network, smarthost.port, email_out_extra=email_out_extra))
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            await asyncio.wait_for(scenario(config.smtp.listen_port, network, smarthost, gateway), timeout)
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        smarthost.stop()
        network.stop()


def in_thread(function, *args, **kwargs):
    return asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


async def wait_texts(network, recipient, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = texts_by_recipient(network).get(recipient, [])
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"{recipient} got {texts_by_recipient(network).get(recipient)} within {timeout} s")


def smtp_send(port, data: bytes, sender, recipients):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        return smtp.sendmail(sender, recipients, data)


def test_a_qp_utf8_mail_by_smtplib_and_by_swaks_reaches_the_network_exactly(tmp_path):
    swaks = debian_tool("swaks")

    async def scenario(port, network, smarthost, gateway):
        assert await in_thread(smtp_send, port, QP_MAIL.encode(), "office@example.org",
                               [f"+4915112345678@{DOMAIN}"]) == {}
        assert await wait_texts(network, "+4915112345678", 1) == [QP_TEXT]
        mail_file = tmp_path / "mail.eml"
        mail_file.write_bytes(QP_MAIL.encode())
        # POSIXLY_CORRECT: swaks' option parser (Perl Getopt::Long) otherwise reads "+49…" as an option.
        result = await in_thread(subprocess.run, [
            swaks, "--server", f"127.0.0.1:{port}", "--from", "office@example.org",
            "--to", f"+4917612345678@{DOMAIN}", "--data", f"@{mail_file}"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "POSIXLY_CORRECT": "1"})
        assert result.returncode == 0, result.stdout + result.stderr
        assert "<-  250 2.0.0 queued 1 SMS as " in result.stdout
        assert await wait_texts(network, "+4917612345678", 1) == [QP_TEXT]

    run_gateway(tmp_path, scenario)


def test_a_group_address_gives_one_sms_per_member_and_a_denied_number_queues_nothing(tmp_path):
    async def scenario(port, network, smarthost, gateway):
        group_mail = b"Subject: DB down\r\n\r\nprimary lost\r\n"
        assert await in_thread(smtp_send, port, group_mail, "ops@office.example.org", [f"oncall@{DOMAIN}"]) == {}
        for number in ("+4915112345678", "+4917612345678", "+4930123456"):
            assert await wait_texts(network, number, 1) == ["DB down: primary lost"]
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await in_thread(smtp_send, port, b"Subject: x\r\n\r\npremium\r\n", "office@example.org",
                            [f"+49900123456@{DOMAIN}"])
        [(code, text)] = refused.value.recipients.values()
        assert code == 550 and text.startswith(b"5.7.1 ")
        await asyncio.sleep(0.5)  # a negative check: nothing may come
        assert "+49900123456" not in texts_by_recipient(network)
        assert gateway.spool.list("outgoing") == [] and len(network.submissions) == 3

    run_gateway(tmp_path, scenario)


def test_an_inbound_sms_is_mailed_and_the_reply_comes_back_as_an_sms(tmp_path):
    async def scenario(port, network, smarthost, gateway):
        await in_thread(network.inject_sms, 0, "+4915112345678", "Kommst du heute? 😀")
        [received] = await in_thread(smarthost.wait_for, 1)
        mail = received.message
        assert received.rcpt_tos == ["office@example.org"] and received.mail_from == f"sms@{DOMAIN}"
        assert mail["Subject"] == "SMS from +4915112345678"
        assert mail["Reply-To"] == f"+4915112345678@{DOMAIN}"
        assert mail["X-Gsmgw-Modem"] == "gsm1" and mail["X-Gsmgw-Id"].startswith("gsm1-")
        assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
        assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == "Kommst du heute? 😀"

        # The office answers from its mail client: quote and signature stay out of the SMS.
        reply = EmailMessage()
        reply["From"] = "Office <office@example.org>"
        reply["To"] = mail["Reply-To"]
        reply["Subject"] = "Re: " + mail["Subject"]
        reply["In-Reply-To"] = mail["Message-ID"]
        reply.set_content("Ja, ab 18 Uhr.\n\nOn Mon, 7 Dec 2026, SMS gateway wrote:\n> Kommst du heute? 😀\n\n"
                          "-- \nOffice, ACME\n")
        assert await in_thread(smtp_send, port, reply.as_bytes(policy=email.policy.SMTP), "office@example.org", [mail["Reply-To"]]) == {}
        assert await wait_texts(network, "+4915112345678", 1) == ["Ja, ab 18 Uhr."]

    run_gateway(tmp_path, scenario)


def test_only_door_sealed_files_send_failures_and_reports_to_their_mail_sender(tmp_path):
    """Regression: Email_from: was not a trusted header, so a file dropped into outgoing/ with
    `Email_from: victim@example.org` made mail out send its failure and report mails (with the
    file's text) to any address. Now only files the mail door sealed name a mail sender."""

    async def scenario(port, network, smarthost, gateway):
        hand = b"Email_from: victim@example.org\nEmail_message_id: <x@victim.example.org>\n"
        gateway.spool.write_atomic("outgoing", "hand-sent", b"To: +4917612345678\n" + hand + b"\nbuy now\n")
        gateway.spool.write_atomic("outgoing", "hand-failed", b"To: no-number\n" + hand + b"\nbuy now\n")
        mail = b"Subject: disk\r\nMessage-ID: <door-1@example.org>\r\n\r\nfull\r\n"
        assert await in_thread(smtp_send, port, mail, "office@example.org", [f"+4915112345678@{DOMAIN}"]) == {}
        mails = await in_thread(smarthost.wait_for, 2)
        deadline = time.monotonic() + 20  # both sent SMS' reports are in, so each had its chance to be mailed
        while len(gateway.spool.list("report")) < 2:
            assert time.monotonic() < deadline, f"reports: {gateway.spool.list('report')}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a negative check: no mail to the victim may follow
        by_subject = {received.message["Subject"]: received for received in smarthost.received}
        assert sorted(by_subject) == ["SMS to +4915112345678 delivered", "SMS to no-number failed"], mails
        assert by_subject["SMS to no-number failed"].rcpt_tos == ["ops@example.org"]
        door = by_subject["SMS to +4915112345678 delivered"]
        assert door.rcpt_tos == ["office@example.org"] and door.message["In-Reply-To"] == "<door-1@example.org>"
        assert not any("victim@example.org" in received.rcpt_tos for received in smarthost.received)

    run_gateway(tmp_path, scenario, email_out_extra='  failed: ["ops@example.org"]\n  report: true\n')


def test_kill_9_right_after_250_loses_nothing(tmp_path):
    network = SimNetwork(tmp_path / "sim", modems=1)
    network.start()
    smarthost_port = free_port()
    config_path = write_config(tmp_path, network, smarthost_port)
    port = load_config(config_path).smtp.listen_port
    command = [sys.executable, "-m", "gsmgw", "run", "-c", str(config_path)]
    log = open(tmp_path / "daemon.log", "ab")

    def send_then_kill(process):
        deadline = time.monotonic() + 30
        while True:  # wait for the listener
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
                    smtp.noop()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the SMTP listener did not come up"
                time.sleep(0.1)
        network.set_latency(0, 5.0)  # the modem is too slow to send before the kill: it must come from disk
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("office@example.org", [f"+4915112345678@{DOMAIN}"], b"Subject: kill\r\n\r\nsurvives -9\r\n")
            os.kill(process.pid, signal.SIGKILL)

    first = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        send_then_kill(first)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    assert not any(decode_pdu(r["pdu"]).text == "kill: survives -9" for r in network.submissions)
    network.set_latency(0, 0.0)
    second = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        network.wait_for_submissions(1, timeout=30)
        assert [decode_pdu(r["pdu"]).text for r in network.submissions] == ["kill: survives -9"]
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
        log.close()
        network.stop()
