"""The email door (EMAIL.md): mail in over SMTP becomes SMS, SMS become mail through a smarthost.

Pure modules (no I/O):
- `text`: HTML to text, signature and quote removal, the SMS text of a mail, cutting to max_parts;
- `parse`: the bytes of a mail to a `ParsedMail` (subject, body text, sender, Message-ID);
- `addresses`: recipient addresses (`+4915112345678@domain`, `oncall@domain`) to numbers, and
  which client a mail transaction belongs to.
"""
