"""The errors of the SMS codec. Both are ValueErrors, so callers can catch either precisely."""

from __future__ import annotations


class DecodeError(ValueError):
    """A PDU is malformed or truncated.

    The message names the field and the octet offset in the PDU as given
    (counting the SMSC field when it is included), so a user can find the
    bad octet in the hex. `field` and `offset` carry the same for programs.
    """

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None):
        where = []
        if field is not None:
            where.append(field)
        if offset is not None:
            where.append(f"octet {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.field = field
        self.offset = offset


class AddressError(ValueError):
    """A phone number or sender cannot be used; the message says why and what to write."""


class TooManyPartsError(ValueError):
    """A text needs more parts than the caller allows (Max_parts)."""

    def __init__(self, needed: int, allowed: int):
        super().__init__(
            f"the text needs {needed} SMS parts but at most {allowed} are allowed; "
            f"shorten the text or raise Max_parts"
        )
        self.needed = needed
        self.allowed = allowed
