"""Mail out (gsmgw.email.mailout) against a real SMTP server (aiosmtpd) as the smarthost, with the
queue's clock in the test's hands: an hour of backoff passes in a few steps, not an hour."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import textwrap
import time
from datetime import datetime

from gsmgw.email.mailout import MailOut
from gsmgw.events import MessageFailed, MessageReceived, ReportReceived
from gsmgw.spool.format import Headers, build_incoming
from helpers import free_port, self_signed_certificate
from test_http_api import Context
from smarthost import Smarthost

DOMAIN = "sms.example.org"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def write_config(tmp_path, smarthost_port, extra_out="", modem_extra=""):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - name: gsm1
            port: {tmp_path}/modem0
          - name: gsm2
            port: {tmp_path}/modem1
        """) + modem_extra + textwrap.dedent(f"""\
        smtp:
          domains: [{DOMAIN}]
        clients:
          - name: office
            smtp: {{from: ["office@example.org"]}}
            allow: ["+49*"]
        email_out:
          smarthost: 127.0.0.1:{smarthost_port}
          from: "SMS gateway <sms@{DOMAIN}>"
          received: [office@example.org]
        """) + extra_out)
    return path


def incoming(ctx, name, sender, text, modem="gsm1"):
    """Write an incoming/ file as the daemon does; its event, as the daemon would publish it."""
    received = datetime.now().astimezone()
    data = build_incoming(sender=sender, sender_toa=0x91, smsc=None, sent=received, received=received, modem=modem,
                          imsi=None, alphabet="ucs2", parts=1, text=text)
    path = ctx.spool.write_atomic("incoming", name, data)
    return MessageReceived(id=name, path=str(path), sender=sender, text=text, modem=modem, sent=None,
                           received=received.isoformat(), parts=1, incomplete=False)


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def in_thread(function, *args, **kwargs):
    return asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


def test_a_smarthost_down_for_an_hour_gets_every_mail_once_also_across_restarts(tmp_path):
    port = free_port()
    ctx = Context(write_config(tmp_path, port))
    clock = Clock()

    async def scenario():
        service = MailOut(ctx, clock=clock)
        await service.start()
        events = [incoming(ctx, f"gsm1-20261207-10000{n}-aa", f"+491511234567{n}", f"Nachricht {n} 😀") for n in range(3)]
        for event in events:
            ctx.bus.publish(event)
        await until(lambda: service.queue.retrying() == 3)  # the smarthost is down: each failed once
        down_since = clock.now
        while clock.now < down_since + 3600:  # an hour, one step per round of retries (1, 2, 4, ... min)
            before = sum(item.attempts for item in service.queue._deliveries.values())
            clock.now = max(item.next_at for item in service.queue._deliveries.values()) + 1
            service.queue.wake()
            await until(lambda: sum(item.attempts for item in service.queue._deliveries.values()) >= before + 3)
        assert service.queue.pending() == 3
        smarthost = Smarthost(port).start()
        try:
            clock.now = max(item.next_at for item in service.queue._deliveries.values()) + 1
            service.queue.wake()
            mails = await in_thread(smarthost.wait_for, 3)
            await until(lambda: service.queue.pending() == 0)
            await service.close()

            # A restart re-reads incoming/ from its cursor (with an overlap): still once each.
            again = MailOut(ctx, clock=clock)
            await again.start()
            # A crash between an incoming/ file and its event: the restart's catch-up mails it.
            incoming(ctx, "gsm1-20261207-100010-bb", "+4917612345678", "nach dem Absturz")
            await again.close()
            third = MailOut(ctx, clock=clock)
            await third.start()
            try:
                mails = await in_thread(smarthost.wait_for, 4)
                await asyncio.sleep(0.5)  # a negative check: no duplicate may follow
                assert len(smarthost.received) == 4
            finally:
                await third.close()
        finally:
            smarthost.stop()
        subjects = sorted(mail.message["Subject"] for mail in mails)
        assert subjects == ["SMS from +4915112345670", "SMS from +4915112345671", "SMS from +4915112345672",
                            "SMS from +4917612345678"]
        assert len({mail.message["Message-ID"] for mail in mails}) == 4

    asyncio.run(scenario())


def test_failures_and_reports_go_to_failed_and_to_the_sender_of_the_mail(tmp_path):
    with Smarthost() as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port, extra_out="  failed: [ops@example.org]\n  report: true\n",
                                   modem_extra="    email_to: [second@example.org]\n"))

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                headers = Headers([("Client", "office"), ("Email_from", "office@example.org"), ("Email_message_id", "<m1@example.org>")])
                # A file the mail door sealed; its event without headers, as for a file failed before
                # it was claimed: mail out reads the mail's sender from the file, through the seal.
                failed_path = ctx.spool.write_atomic("failed", "20261207-100000-000001-aa", ctx.spool.seal(
                    b"To: +4915112345678\nClient: office\nEmail_from: office@example.org\n"
                    b"Email_message_id: <m1@example.org>\nFail_reason: SIM rejected it\n\nDisk voll\n"))
                ctx.bus.publish(MessageFailed(id="20261207-100000-000001-aa", to="+4915112345678",
                                              reason="SIM rejected it", path=str(failed_path)))
                ctx.spool.write_atomic("sent", "20261207-100000-000002-bb", b"To: +4917612345678\n\nServer ok\n")
                ctx.bus.publish(ReportReceived(
                    id="20261207-100000-000002-bb", to="+4917612345678", status="delivered", delivered=True,
                    message_ids=(7,), report_path=str(ctx.spool.path("report", "gsm1-r1")), modem="gsm1",
                    discharge="2026-12-07T10:00:05+01:00", tp_status=0, headers=headers))
                ctx.bus.publish(incoming(ctx, "gsm2-20261207-100000-cc", "Vodafone", "Ihr Guthaben", modem="gsm2"))
                mails = {mail.message["Subject"]: mail for mail in await in_thread(smarthost.wait_for, 3)}
            finally:
                await service.close()
            failed = mails["SMS to +4915112345678 failed"]
            assert sorted(failed.rcpt_tos) == ["office@example.org", "ops@example.org"]
            assert failed.message["In-Reply-To"] == "<m1@example.org>"
            body = failed.message.get_content()
            assert "SIM rejected it" in body and "Disk voll" in body
            report = mails["SMS to +4917612345678 delivered"]
            assert report.rcpt_tos == ["office@example.org"] and "Server ok" in report.message.get_content()
            # modems[].email_to replaces email_out.received; an alphanumeric sender has no Reply-To.
            inbound = mails["SMS from Vodafone"]
            assert inbound.rcpt_tos == ["second@example.org"] and inbound.message["Reply-To"] is None

        asyncio.run(scenario())


def test_a_refusing_smarthost_puts_the_mail_aside_at_once(tmp_path):
    with Smarthost(answers=["550 5.7.1 relaying denied"]) as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port))

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                ctx.bus.publish(incoming(ctx, "gsm1-20261207-100000-dd", "+4915112345678", "x"))
                await until(lambda: service.queue.dead_total == 1)
            finally:
                await service.close()

        asyncio.run(scenario())
        [dead] = (tmp_path / "state" / "mail-out" / "dead").glob("*.json")
        assert "relaying denied" in json.loads(dead.read_text())["last_error"]


def test_starttls_required_with_the_smarthosts_ca_and_a_login(tmp_path):
    cert, key = self_signed_certificate(tmp_path, "smarthost")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert), str(key))
    (tmp_path / "smarthost.pw").write_text("relay-pw\n")
    os.chmod(tmp_path / "smarthost.pw", 0o600)
    with Smarthost(tls_context=server_tls, require_starttls=True, users={"gsmgw": "relay-pw"}) as smarthost:
        extra = (f"  tls: required\n  ca_file: {cert}\n  user: gsmgw\n  password_file: {tmp_path}/smarthost.pw\n")
        ctx = Context(write_config(tmp_path, smarthost.port, extra_out=extra))

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                ctx.bus.publish(incoming(ctx, "gsm1-20261207-100000-ee", "+4915112345678", "über TLS"))
                [mail] = await in_thread(smarthost.wait_for, 1)
            finally:
                await service.close()
            assert mail.tls and mail.login == "gsmgw"

        asyncio.run(scenario())


def test_tls_required_and_not_offered_is_retried_with_the_reason(tmp_path):
    with Smarthost() as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port, extra_out="  tls: required\n"))

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                ctx.bus.publish(incoming(ctx, "gsm1-20261207-100000-ff", "+4915112345678", "x"))
                await until(lambda: service.queue.retrying() == 1)
                [item] = service.queue._deliveries.values()
                assert "does not offer STARTTLS" in item.last_error
            finally:
                await service.close()
            assert smarthost.received == []

        asyncio.run(scenario())


def test_a_binary_sms_is_mailed_as_its_octets_in_hex(tmp_path):
    with Smarthost() as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port))

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                received = datetime.now().astimezone()
                data = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=received,
                                      received=received, modem="gsm1", imsi=None, alphabet="8bit", parts=1,
                                      data=b"\x0b\x05\x04\xca\xfe", ports=(2948, 9200))
                path = ctx.spool.write_atomic("incoming", "gsm1-20261207-100000-bin", data)
                ctx.bus.publish(MessageReceived(
                    id="gsm1-20261207-100000-bin", path=str(path), sender="+4915112345678", text="0B0504CAFE",
                    modem="gsm1", sent=None, received=received.isoformat(), parts=1, incomplete=False,
                    data=b"\x0b\x05\x04\xca\xfe", ports=(2948, 9200)))
                [mail] = await in_thread(smarthost.wait_for, 1)
            finally:
                await service.close()
            assert mail.message["Subject"] == "SMS from +4915112345678 (binary)"
            body = mail.message.get_content()
            assert "0B0504CAFE" in body and "port 2948" in body

        asyncio.run(scenario())


def test_a_contact_of_the_web_console_is_named_in_the_subject(tmp_path):
    from gsmgw.spool.index import Contact, MessageIndex

    with Smarthost() as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port))
        ctx.index = MessageIndex(tmp_path / "index.sqlite")
        ctx.index.save_contacts([Contact("+4915112345678", "Anna Müller\nBcc: evil@example.org", "")], time.time())

        async def scenario():
            service = MailOut(ctx)
            await service.start()
            try:
                ctx.bus.publish(incoming(ctx, "gsm1-20261207-100000-aa", "+4915112345678", "Bin gleich da"))
                ctx.bus.publish(incoming(ctx, "gsm1-20261207-100001-bb", "+4917612345678", "Wer ist da?"))
                mails = {mail.message["X-Gsmgw-Id"]: mail.message for mail in await in_thread(smarthost.wait_for, 2)}
            finally:
                await service.close()
                ctx.index.close()
            known = mails["gsm1-20261207-100000-aa"]
            # The name is data: one line of the subject, never a header of its own.
            assert known["Subject"] == "SMS from Anna Müller Bcc: evil@example.org (+4915112345678)"
            assert known["Bcc"] is None and known["Reply-To"] == f"+4915112345678@{DOMAIN}"
            assert mails["gsm1-20261207-100001-bb"]["Subject"] == "SMS from +4917612345678"


def test_what_a_claim_set_aside_unread_neither_blocks_the_start_nor_is_followed(tmp_path):
    # Issue 11's "same class elsewhere": whoever may drop files into outgoing/ may drop a FIFO or a
    # symlink; the claim moves it to failed/ as it is, never opened. Mail out's catch-up then
    # opened it: the FIFO blocked the daemon's start for good (and its stop), the symlink was
    # followed to a file only gsmgw may read, and its text was mailed.
    secret = tmp_path / "private"
    secret.write_text("To: +4915112345678\nFail_reason: x\n\nTOP SECRET\n")
    os.chmod(secret, 0o600)
    with Smarthost() as smarthost:
        ctx = Context(write_config(tmp_path, smarthost.port, extra_out="  failed: [ops@example.org]\n"))

        async def scenario():
            first = MailOut(ctx)
            await first.start()
            await first.close()
            failed = ctx.spool.path("failed")
            os.mkfifo(failed / "20261207-100000-000001-aa")
            os.symlink(secret, failed / "20261207-100000-000002-bb")
            ctx.spool.write_atomic("failed", "20261207-100000-000003-cc",
                                   b"To: +4917612345678\nFail_reason: SIM rejected it\n\nreal\n")
            again = MailOut(ctx)
            try:
                await asyncio.wait_for(again.start(), 10)
            except asyncio.TimeoutError:
                os.close(os.open(failed / "20261207-100000-000001-aa", os.O_WRONLY | os.O_NONBLOCK))  # free the thread
                raise AssertionError("mail out's start waits for a writer of the FIFO in failed/") from None
            try:
                ctx.bus.publish(MessageFailed(id="20261207-100000-000002-bb", to="+4915112345678", reason="a symlink",
                                              path=str(failed / "20261207-100000-000002-bb")))
                mails = await in_thread(smarthost.wait_for, 2)
            finally:
                await again.close()
            bodies = {mail.message["Subject"]: mail.message.get_content() for mail in mails}
            assert "real" in bodies["SMS to +4917612345678 failed"]
            assert "TOP SECRET" not in bodies["SMS to +4915112345678 failed"]

        asyncio.run(scenario())
