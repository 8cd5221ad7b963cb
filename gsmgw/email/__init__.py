"""The email door (EMAIL.md): mail in over SMTP becomes SMS, SMS become mail through a smarthost.

Pure modules (no I/O):
- `text`: HTML to text, signature and quote removal, the SMS text of a mail, cutting to max_parts;
- `parse`: the bytes of a mail to a `ParsedMail` (subject, body text, sender, Message-ID);
- `addresses`: recipient addresses (`+4915112345678@domain`, `oncall@domain`) to numbers, and
  which client a mail transaction belongs to;
- `compose`: the mails gsmgw sends for inbound SMS, failures and delivery reports.

I/O modules:
- `listener`: the SMTP listener (aiosmtpd) that writes SMS into the spool;
- `mailout`: the durable queue of mails to the smarthost, fed by the daemon's event bus.
"""

# Headers the listener writes into the outgoing files of mails (README "Mail to SMS"); mail out
# reads them back from sent/ and failed/ to answer that mail.
H_EMAIL_FROM = "Email_from"  # the envelope sender
H_EMAIL_MESSAGE_ID = "Email_message_id"
