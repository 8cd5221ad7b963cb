"""The mails gsmgw sends (EMAIL.md "Mail out"). Pure: values in, the bytes of a mail out.

- An inbound SMS: `Subject: SMS from <number>` (`SMS from <contact name> (<number>)` when the
  web console has a contact for it), the text as `text/plain; charset=utf-8`,
  `X-Gsmgw-Modem`, `X-Gsmgw-Id` (the incoming/ file), and `Reply-To: <number>@<first smtp
  domain>`, so that answering the mail sends an SMS back.
- A failed SMS (`email_out.failed`) and a delivery report (`email_out.report`, to the sender of
  the mail the SMS came from): `Subject: SMS to <number> failed|delivered`, the reason or time
  and the text; when the SMS came by mail they answer that mail (`In-Reply-To`).

Every mail has a Message-ID derived from what it announces, ending in `.gsmgw@<domain>`, so a
reply to it is recognised (`gsmgw.email.parse`) and a mail sent twice is recognisably one;
`Auto-Submitted: auto-generated` (RFC 3834) keeps vacation responders from answering it.
Texts from outside (SMS text, numbers, reasons) are data: they never become a header of their
own, and the email package encodes what is not ASCII (RFC 2047 headers, quoted-printable body).
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage

from gsmgw.email.parse import GATEWAY_HEADER, GATEWAY_ID_MARK

# SMTP needs CRLF; lines longer than 78 characters are folded (RFC 5322 §2.1.1).
_POLICY = email.policy.SMTP


@dataclass(frozen=True)
class OutgoingMail:
    sender: str  # envelope sender (the address of email_out.from)
    recipients: tuple[str, ...]
    data: bytes  # the whole mail, CRLF line ends, ASCII
    subject: str


def message_id(kind: str, spool_id: str, domain: str) -> str:
    """`<received-gsm1-20261125-101500-ab.gsmgw@sms.example.org>`: the same for the same SMS."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", spool_id)
    return f"<{kind}-{safe}{GATEWAY_ID_MARK}{domain}>"


def envelope_sender(from_header: str) -> str:
    """The address of `email_out.from` ("SMS gateway <sms@example.org>" -> "sms@example.org")."""
    return email.utils.parseaddr(from_header)[1]


def _one_line(text: object) -> str:
    # A value from outside never starts a header of its own: line breaks become spaces.
    return " ".join(str(text).split())


def _base(from_header: str, recipients: tuple[str, ...], subject: str, msg_id: str, date: datetime) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["From"] = from_header
    message["To"] = ", ".join(recipients)
    message["Subject"] = _one_line(subject)
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    return message


def _finish(message: EmailMessage, text: str, from_header: str, recipients: tuple[str, ...], subject: str) -> OutgoingMail:
    # Lone surrogates (a broken UCS-2 SMS) cannot be mailed; U+FFFD shows where they were.
    text = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    return OutgoingMail(envelope_sender(from_header), recipients, message.as_bytes(), _one_line(subject))


def received_mail(
    *,
    spool_id: str,
    sender: str,
    text: str,
    modem: str,
    received: datetime,
    incomplete: bool,
    from_header: str,
    recipients: tuple[str, ...],
    reply_to: str | None,
    domain: str,
    kind: str | None = None,
    sender_name: str | None = None,
) -> OutgoingMail:
    """The mail of one inbound SMS (the incoming/ file `spool_id`); `kind` ("binary",
    "undecodable") goes into the subject beside "incomplete". `sender_name`: the contact's name
    for the sender's number, if the web console has one ("SMS from Anna Meier (+49…)")."""
    remarks = [word for word in (kind, "incomplete" if incomplete else None) if word]
    who = _one_line(sender) or "an unknown sender"
    name = _one_line(sender_name or "")
    if name and name != who:
        who = f"{name} ({who})"
    subject = f"SMS from {who}" + (f" ({', '.join(remarks)})" if remarks else "")
    message = _base(from_header, recipients, subject, message_id("received", spool_id, domain), received)
    if reply_to:
        message["Reply-To"] = reply_to
    message["X-Gsmgw-Modem"] = _one_line(modem)
    message[GATEWAY_HEADER] = _one_line(spool_id)
    return _finish(message, text, from_header, recipients, subject)


def outcome_mail(
    *,
    kind: str,
    spool_id: str,
    to: str,
    outcome: str,
    detail: str,
    text: str | None,
    modem: str | None,
    answers: str | None,
    date: datetime,
    from_header: str,
    recipients: tuple[str, ...],
    domain: str,
) -> OutgoingMail:
    """The mail about a sent SMS: `kind` "failed" or "report", `outcome` e.g. "failed", "delivered".
    `answers` is the Message-ID of the mail the SMS came from, if it came by mail."""
    subject = f"SMS to {_one_line(to) or 'an unknown number'} {outcome}"
    message = _base(from_header, recipients, subject, message_id(kind, spool_id, domain), date)
    if answers:
        message["In-Reply-To"] = answers
        message["References"] = answers
    if modem:
        message["X-Gsmgw-Modem"] = _one_line(modem)
    message[GATEWAY_HEADER] = _one_line(spool_id)
    body = f"{detail}\n"
    if text:
        body += f"\nThe SMS:\n{text}\n"
    return _finish(message, body, from_header, recipients, subject)


def domain_of(from_header: str) -> str:
    """The domain for Message-IDs when gsmgw has no smtp.domains: that of email_out.from."""
    address = envelope_sender(from_header)
    try:
        return Address(addr_spec=address).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"
