"""A real SMTP server standing in for the smarthost of mail out: aiosmtpd in a thread on loopback.

    with Smarthost() as smarthost:           # started; stopped at the end
        ... email_out: {smarthost: 127.0.0.1:<smarthost.port>, ...}
        [mail] = smarthost.wait_for(1)       # Received(mail_from, rcpt_tos, data, message)
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from helpers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _Handler:
    def __init__(self, smarthost: "Smarthost"):
        self.smarthost = smarthost

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = self.smarthost.answers.pop(0) if self.smarthost.answers else None
        if answer is not None:
            return answer
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        with self.smarthost.condition:
            self.smarthost.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                                    envelope.original_content, session.ssl is not None, login))
            self.smarthost.condition.notify_all()
        return "250 2.0.0 Ok: queued"


class Smarthost:
    def __init__(self, port: int | None = None, *, tls_context: Any = None, require_starttls: bool = False,
                 users: dict[str, str] | None = None, answers: list[str] | None = None):
        self.port = port or free_port()
        self.received: list[Received] = []
        self.answers = list(answers or [])  # DATA answers to give before accepting (e.g. "451 4.3.0 busy")
        self.condition = threading.Condition()
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=require_starttls)
        if users is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = isinstance(auth_data, LoginPassword) and users.get(auth_data.login.decode()) == auth_data.password.decode()
                return AuthResult(success=ok, auth_data=auth_data if ok else None)

            options.update(authenticator=authenticator, auth_require_tls=tls_context is not None)
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)

    def start(self) -> "Smarthost":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> "Smarthost":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the smarthost got {len(self.received)} mails, not {count}, in {timeout} s")
                self.condition.wait(left)
            return list(self.received)
