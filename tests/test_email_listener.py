"""The SMTP listener (gsmgw.email.listener) over real sockets on loopback: smtplib and raw SMTP
sessions against a listener writing into a real spool. The whole gateway is in test_email_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import textwrap
import threading
import time
from datetime import datetime
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from gsmgw.email.listener import SessionLimits, start
from gsmgw.sms import count_parts
from gsmgw.spool.format import parse_outgoing, read_spool_file
from helpers import SEAL_KEY, free_port, self_signed_certificate
from test_http_api import Context as HttpContext

DOMAIN = "sms.example.org"
PASSWORD = "nagios-secret-1"


def write_config(tmp_path, extra_smtp="", max_size="256 KiB"):
    (tmp_path / "nagios.smtp").write_text(PASSWORD + "\n")
    os.chmod(tmp_path / "nagios.smtp", 0o600)
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - name: gsm1
            port: {tmp_path}/modem0
        smtp:
          listen: 127.0.0.1:{free_port()}
          domains: [{DOMAIN}]
          max_size: {max_size}
          trusted_networks: [127.0.0.1/32]
        """) + extra_smtp + textwrap.dedent(f"""\
        clients:
          - name: nagios
            smtp: {{user: nagios, password_file: {tmp_path}/nagios.smtp, from: ["nagios@example.org"]}}
            allow: ["+49*", "group:oncall"]
            deny: ["+49900*"]
          - name: cron
            smtp: {{from: ["root@*"]}}
            allow: ["+4915112345678"]
        groups:
          oncall: ["+4915112345678", "+4917612345678", "030123456"]
        """))
    return path


class Context(HttpContext):
    """The HTTP tests' context of real pieces, with what the listener also reads."""

    def __init__(self, config_path):
        super().__init__(config_path)
        self.clients = None
        self.stopping = asyncio.Event()


def queued(ctx):
    """{recipient: headers and text} of every file in outgoing/."""
    found = {}
    for name in ctx.spool.list("outgoing"):
        data = ctx.spool.read("outgoing", name)
        message = parse_outgoing(data, now=datetime.now().astimezone(), default_country="49", seal_key=SEAL_KEY)
        found[message.recipients[0]] = (read_spool_file(data, seal_key=SEAL_KEY).headers, message.text, name)
    return found


def run(tmp_path, scenario, *, limits=None, config=None):
    async def main():
        ctx = Context(config or write_config(tmp_path))
        listener = await start(ctx, limits=limits)
        try:
            await asyncio.wait_for(scenario(ctx, listener), 60)
        finally:
            await listener.close()

    asyncio.run(main())


def in_thread(function, *args, **kwargs):
    return asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


def send(port, message, *, sender="nagios@example.org", recipients=None, login=None, starttls=None):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("test.example.org")
        if starttls is not None:
            smtp.starttls(context=starttls)
            smtp.ehlo("test.example.org")
        if login:
            smtp.login(*login)
        return smtp.send_message(message, from_addr=sender, to_addrs=recipients)


def mail(to, text, subject="Alert", charset="utf-8"):
    message = EmailMessage()
    message["From"] = "Nagios <nagios@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = "<abc.123@monitor.example.org>"
    message.set_content(text, charset=charset, cte="quoted-printable")
    return message


class Raw:
    """A raw SMTP session for what smtplib will not send."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        session = cls(reader, writer)
        assert (await session.line()).startswith("220 ")
        return session

    async def line(self, timeout=10):
        return (await asyncio.wait_for(self.reader.readline(), timeout)).decode()

    async def reply(self, timeout=10):
        """One whole reply (multi-line replies joined)."""
        lines = [await self.line(timeout)]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(await self.line(timeout))
        return "".join(lines)

    async def command(self, text):
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass  # the server hung up first: that is what some tests check


# --- mail in ------------------------------------------------------------------------------------


def test_a_mail_becomes_one_durable_file_with_its_client_and_mail_headers(tmp_path):
    async def scenario(ctx, listener):
        text = "Grüße aus Köln 😀 – Server web1 ist down"
        refused = await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", text))
        assert refused == {}
        files = queued(ctx)
        assert list(files) == ["+4915112345678"]
        headers, queued_text, _ = files["+4915112345678"]
        assert queued_text == f"Alert: {text}"
        assert headers.get("Client") == "nagios"
        assert headers.get("Email_from") == "nagios@example.org"
        assert headers.get("Email_message_id") == "<abc.123@monitor.example.org>"
        assert ctx.wakes == 1

    run(tmp_path, scenario)


@pytest.mark.parametrize("header, value, priority", [
    ("X-Priority", "1 (Highest)", "high"), ("Importance", "High", "high"), ("Priority", "urgent", "high"),
    ("X-Priority", "3 (Normal)", None), ("Importance", "low", None),
])
def test_a_mail_marked_urgent_is_queued_high(tmp_path, header, value, priority):
    """What a mail client writes for "high importance" becomes Priority: high (README, Priority)."""
    async def scenario(ctx, listener):
        message = mail(f"+4915112345678@{DOMAIN}", "DB down")
        message[header] = value
        assert await in_thread(send, listener.port, message) == {}
        headers, _, _ = queued(ctx)["+4915112345678"]
        assert headers.get("Priority") == priority

    run(tmp_path, scenario)


@pytest.mark.parametrize("address", [f"004915112345678@{DOMAIN}", f"015112345678@{DOMAIN.upper()}",
                                     f"4915112345678@{DOMAIN}"])
def test_recipient_forms(tmp_path, address):
    async def scenario(ctx, listener):
        await in_thread(send, listener.port, mail(address, "x"))
        assert list(queued(ctx)) == ["+4915112345678"]

    run(tmp_path, scenario)


def test_a_group_address_gives_one_sms_per_member(tmp_path):
    async def scenario(ctx, listener):
        answer = await in_thread(send, listener.port, mail(f"oncall@{DOMAIN}", "DB down"))
        assert answer == {}
        assert sorted(queued(ctx)) == ["+4915112345678", "+4917612345678", "+4930123456"]
        assert {text for _, text, _ in queued(ctx).values()} == {"Alert: DB down"}

    run(tmp_path, scenario)


def test_a_denied_number_is_refused_with_5_7_1_and_nothing_is_queued(tmp_path):
    async def scenario(ctx, listener):
        message = mail(f"+4915112345678@{DOMAIN}, 0049900123456@{DOMAIN}", "x")
        with pytest.raises(smtplib.SMTPDataError) as refused_data:
            # smtplib goes on to DATA with the accepted recipient: all or none refuses it there too
            await in_thread(send, listener.port, message)
        assert refused_data.value.smtp_code == 550
        assert b"5.7.1 nothing was queued" in refused_data.value.smtp_error
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await in_thread(send, listener.port, mail(f"0049900123456@{DOMAIN}", "x"))
        [(code, text)] = refused.value.recipients.values()
        assert code == 550 and text.startswith(b"5.7.1 +49900123456 is excluded by the deny rule '+49900*'")
        assert queued(ctx) == {}

    run(tmp_path, scenario)


def test_recipients_that_are_no_number_or_not_our_domain_say_what_to_write(tmp_path):
    async def scenario(ctx, listener):
        session = await Raw.open(listener.port)
        await session.command("EHLO test")
        assert (await session.command("MAIL FROM:<nagios@example.org>")).startswith("250 ")
        answer = await session.command(f"RCPT TO:<bob@{DOMAIN}>")
        assert answer.startswith("550 5.1.1 ") and f"+4915112345678@{DOMAIN}" in answer
        answer = await session.command("RCPT TO:<+4915112345678@example.com>")
        assert answer.startswith("550 5.1.2 ") and DOMAIN in answer
        assert (await session.command("DATA")).startswith("503 5.5.1 no recipient was accepted")
        await session.close()
        assert queued(ctx) == {}

    run(tmp_path, scenario)


def test_senders_unauthenticated_unknown_and_authenticated(tmp_path):
    async def scenario(ctx, listener):
        # From the trusted network, the sender names the client (clients[].smtp.from).
        await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "cron"), sender="root@host1")
        assert queued(ctx)["+4915112345678"][0].get("Client") == "cron"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "x"), sender="stranger@x.org")
        assert refused.value.smtp_code == 550 and b"5.7.1 unknown sender stranger@x.org" in refused.value.smtp_error
        # AUTH (offered on loopback without TLS): the login is the client, its from rules apply.
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            await in_thread(lambda: send(listener.port, mail("x@y", "x"), login=("nagios", "wrong")))
        assert wrong.value.smtp_code == 535 and b"clients[].smtp" in wrong.value.smtp_error
        await in_thread(lambda: send(listener.port, mail(f"+4917612345678@{DOMAIN}", "authed"),
                                     login=("nagios", PASSWORD)))
        assert queued(ctx)["+4917612345678"][0].get("Client") == "nagios"
        with pytest.raises(smtplib.SMTPSenderRefused) as other_sender:
            await in_thread(lambda: send(listener.port, mail(f"+4917612345678@{DOMAIN}", "x"),
                                         sender="root@host1", login=("nagios", PASSWORD)))
        assert b"may not send as root@host1" in other_sender.value.smtp_error

    run(tmp_path, scenario)


def test_auth_is_offered_only_under_tls_or_on_loopback(tmp_path):
    """The decision, for a peer that is not on loopback (tests may only use loopback sockets)."""
    from gsmgw.clients import peer_address
    from gsmgw.email.listener import _Connection

    async def scenario(ctx, listener):
        door = listener.door
        responses = ["250-sms.example.org", "250-SIZE 262144", "250-AUTH LOGIN PLAIN", "250 HELP"]
        remote = SimpleNamespace(state=_Connection(peer_address("192.0.2.7"), 0.0), hostname="h")
        local = SimpleNamespace(state=_Connection(peer_address("127.0.0.1"), 0.0), hostname="h")
        plain, tls = SimpleNamespace(ssl=None, host_name=None), SimpleNamespace(ssl={"cipher": "x"}, host_name=None)
        assert "250-AUTH LOGIN PLAIN" not in await door.handle_EHLO(remote, plain, None, "x", list(responses))
        assert "250-AUTH LOGIN PLAIN" in await door.handle_EHLO(remote, tls, None, "x", list(responses))
        assert "250-AUTH LOGIN PLAIN" in await door.handle_EHLO(local, plain, None, "x", list(responses))
        assert (await door.handle_AUTH(remote, plain, None, ["PLAIN"])).startswith("538 5.7.11 ")

    run(tmp_path, scenario)


def test_starttls_then_auth(tmp_path):
    cert, key = self_signed_certificate(tmp_path, "tls")
    config = write_config(tmp_path, extra_smtp=f"  tls: {{cert: {cert}, key: {key}}}\n")

    async def scenario(ctx, listener):
        trust = ssl.create_default_context(cafile=str(cert))
        await in_thread(lambda: send(listener.port, mail(f"+4915112345678@{DOMAIN}", "over TLS"),
                                     login=("nagios", PASSWORD), starttls=trust))
        assert queued(ctx)["+4915112345678"][1] == "Alert: over TLS"

    run(tmp_path, scenario, config=config)


def test_refusals_552_451_421_and_an_unreadable_mail(tmp_path):
    config = write_config(tmp_path, max_size="2 KiB")

    async def scenario(ctx, listener):
        with pytest.raises(smtplib.SMTPException) as too_big:
            await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "x" * 5000))
        assert getattr(too_big.value, "smtp_code", None) == 552
        assert b"smtp.max_size" in too_big.value.smtp_error
        empty = EmailMessage()
        empty["Subject"] = ""
        with pytest.raises(smtplib.SMTPDataError) as unreadable:
            await in_thread(send, listener.port, empty, recipients=[f"+4915112345678@{DOMAIN}"])
        assert unreadable.value.smtp_code == 550 and b"5.6.0 the mail has no text" in unreadable.value.smtp_error
        # The spool cannot be written: outgoing/ is not a directory any more.
        outgoing = ctx.spool.path("outgoing")
        os.rename(outgoing, str(outgoing) + ".away")
        outgoing.write_text("in the way")
        with pytest.raises(smtplib.SMTPDataError) as unwritable:
            await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "x"))
        assert unwritable.value.smtp_code == 451 and b"nothing was queued" in unwritable.value.smtp_error
        outgoing.unlink()
        os.rename(str(outgoing) + ".away", outgoing)
        ctx.stopping.set()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert (await reader.readline()).startswith(b"421 4.3.2 gsmgw is stopping")
        assert await reader.read() == b""  # and it hangs up
        writer.close()
        assert queued(ctx) == {}
        metrics = generate_latest(ctx.metrics.registry).decode()
        assert 'gsmgw_mail_refused_total{code="552"} 1.0' in metrics
        assert 'gsmgw_mail_refused_total{code="451"} 1.0' in metrics
        assert "gsmgw_mail_accepted_total 0.0" in metrics

    run(tmp_path, scenario, config=config)


def test_limits_count_sms_parts_and_a_text_is_cut_at_the_clients_max_parts(tmp_path):
    """Regression: the mail door counted one per recipient, so `limits: {per_minute: 3}` let
    through three SMS of any length. Limits count SMS parts, as in every door (test_client_parts)."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(
        '    deny: ["+49900*"]\n', '    deny: ["+49900*"]\n    limits: {per_minute: 3}\n    max_parts: 2\n'))
    two_parts = "x" * 200  # "Alert: " and 200 GSM-7 characters: 2 parts

    async def scenario(ctx, listener):
        with pytest.raises(smtplib.SMTPDataError) as never:  # 2 recipients x 2 parts > 3
            await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}, +4917612345678@{DOMAIN}", two_parts))
        assert never.value.smtp_code == 552 and b"4 SMS parts for 2 recipient(s)" in never.value.smtp_error
        assert queued(ctx) == {}
        # A long text is cut to the client's max_parts (2), ending in the ellipsis.
        assert await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "word " * 400)) == {}
        [(headers, text, _)] = queued(ctx).values()
        assert text.endswith("…") and count_parts(text).parts == 2
        with pytest.raises(smtplib.SMTPDataError) as later:  # 2 parts taken, 2 more > 3
            await in_thread(send, listener.port, mail(f"+4917612345678@{DOMAIN}", two_parts))
        assert later.value.smtp_code == 451 and b"4.7.1 client 'nagios' is over its limits" in later.value.smtp_error
        assert set(queued(ctx)) == {"+4915112345678"}

    run(tmp_path, scenario, config=config)


# --- protocol abuse: each session is refused or timed out, and the others go on -------------------


def test_bare_lf_and_smuggling_are_refused(tmp_path):
    async def scenario(ctx, listener):
        session = await Raw.open(listener.port)
        await session.command("EHLO test")
        await session.command("MAIL FROM:<nagios@example.org>")
        await session.command(f"RCPT TO:<+4915112345678@{DOMAIN}>")
        assert (await session.command("DATA")).startswith("354")
        # The smuggled second mail hides behind "\n.\r\n", which some servers take as the end.
        session.writer.write(
            b"Subject: first\r\n\r\nhello\n.\r\nMAIL FROM:<nagios@example.org>\r\n"
            b"RCPT TO:<+4917612345678@" + DOMAIN.encode() + b">\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
        answer = await session.reply()
        assert answer.startswith("550 5.6.2 ") and "CRLF" in answer
        assert (await session.command("NOOP")).startswith("250")  # the session goes on, in step
        await session.close()
        assert queued(ctx) == {}

    run(tmp_path, scenario)


def test_a_pipelined_rcpt_flood_is_cut_off_and_other_sessions_go_on(tmp_path):
    async def scenario(ctx, listener):
        session = await Raw.open(listener.port)
        flood = b"EHLO test\r\nMAIL FROM:<nagios@example.org>\r\n" + (
            f"RCPT TO:<+4915112345678@{DOMAIN}>\r\n".encode() * 20000)
        session.writer.write(flood)
        other = in_thread(send, listener.port, mail(f"+4917612345678@{DOMAIN}", "meanwhile"))
        codes = []
        try:
            while line := await session.line(30):
                if line[3:4] == " ":
                    codes.append(line[:3])
        except ConnectionResetError:
            pass  # the server closed with the rest of the flood unread: TCP resets, as with any server
        # What the client still reads depends on when the reset comes; the server's count does not.
        assert codes.count("250") <= 2 + 100  # EHLO, MAIL, at most 100 recipients
        await other
        assert set(queued(ctx)) == {"+4917612345678"}
        metrics = generate_latest(ctx.metrics.registry).decode()
        assert 'gsmgw_mail_refused_total{code="452"} 20.0' in metrics  # then 421 and the end of the session
        await session.close()

    run(tmp_path, scenario)


def test_a_connection_sending_one_byte_a_second_times_out_and_other_sessions_go_on(tmp_path):
    async def scenario(ctx, listener):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        await reader.readline()
        started = time.monotonic()

        async def dribble():
            for byte in b"EHLO slow.example.org\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)

        dribbler = asyncio.ensure_future(dribble())
        await in_thread(send, listener.port, mail(f"+4915112345678@{DOMAIN}", "meanwhile"))
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        assert time.monotonic() - started < 6
        dribbler.cancel()
        writer.close()
        assert set(queued(ctx)) == {"+4915112345678"}

    run(tmp_path, scenario, limits=SessionLimits(timeout=2.0))


def test_too_many_wrong_passwords_end_the_session(tmp_path):
    async def scenario(ctx, listener):
        import base64

        session = await Raw.open(listener.port)
        await session.command("EHLO test")
        wrong = base64.b64encode(b"\0nagios\0wrong").decode()
        answers = [await session.command(f"AUTH PLAIN {wrong}") for _ in range(3)]
        assert all(answer.startswith("535 5.7.8 ") for answer in answers)
        assert await asyncio.wait_for(session.reader.read(), 5) == b""
        await session.close()

    run(tmp_path, scenario)


# --- any mail data gets an answer, and the listener goes on ---------------------------------------

class BackgroundListener:
    """One listener in a thread of its own, for many hypothesis examples."""

    def __init__(self, tmp_path):
        self.ctx = None
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.config = write_config(tmp_path)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()

        async def begin():
            self.ctx = Context(self.config)
            self.listener = await start(self.ctx)

        asyncio.run_coroutine_threadsafe(begin(), self.loop).result(30)
        return self

    def __exit__(self, *exc_info):
        asyncio.run_coroutine_threadsafe(self.listener.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def background(tmp_path_factory):
    with BackgroundListener(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


LINES = st.lists(st.binary(max_size=120).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=LINES, headers=st.booleans())
def test_any_mail_data_gets_an_answer_and_the_listener_goes_on(background, lines, headers):
    body = b"\r\n".join(lines)  # smtplib's data() adds the dot-stuffing (RFC 5321 4.5.2)
    data = (b"Subject: fuzz\r\n\r\n" if headers else b"") + body + b"\r\n"
    with smtplib.SMTP("127.0.0.1", background.listener.port, timeout=10) as smtp:
        smtp.ehlo("fuzz.example.org")
        smtp.mail("nagios@example.org")
        assert smtp.rcpt(f"+4915112345678@{DOMAIN}")[0] == 250
        code, text = smtp.data(data)
        assert code == 250 or (code in (550, 552, 554) and b"nothing was queued" in text), (code, text)
        assert smtp.noop()[0] == 250  # the session goes on


def test_a_group_of_the_web_console_is_an_address_too(tmp_path):
    from gsmgw.clients import ClientRegistry

    async def scenario(ctx, listener):
        ctx.clients = ClientRegistry.from_config(ctx.config)
        ctx.clients.console_groups = {"night": ("+4915112345678", "+4917699999999")}  # gsmgw.groups.GroupBook.console
        answer = await in_thread(send, listener.port, mail(f"night@{DOMAIN}", "backup failed"))
        assert answer == {}
        assert sorted(queued(ctx)) == ["+4915112345678", "+4917699999999"]

    run(tmp_path, scenario)


def test_sessions_over_the_connection_caps_get_421_and_the_others_go_on(tmp_path):
    config = write_config(tmp_path, extra_smtp="  max_connections_per_address: 2\n")

    async def scenario(ctx, listener):
        first, second = await Raw.open(listener.port), await Raw.open(listener.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert (await reader.readline()).startswith(b"421 4.7.0 too many sessions are open")
        assert await reader.read() == b""
        writer.close()
        assert (await first.command("NOOP")).startswith("250")
        await second.close()
        third = await Raw.open(listener.port)  # a closed session makes room
        assert (await third.command("NOOP")).startswith("250")
        await first.close()
        await third.close()

    run(tmp_path, scenario, config=config)
