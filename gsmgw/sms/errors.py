"""The errors of the SMS codec. All are ValueErrors, so callers can catch each precisely."""

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
    """A text (or binary data) needs more parts than the caller allows (Max_parts), or than 255."""

    def __init__(self, needed: int, allowed: int, what: str = "text"):
        advice = "raise Max_parts" if allowed < 255 else "send it as several messages"
        super().__init__(
            f"the {what} needs {needed} SMS parts but at most {allowed} are allowed; shorten the {what} or {advice}"
        )
        self.needed = needed
        self.allowed = allowed


class UserDataError(ValueError):
    """Binary data or a user data header that cannot be sent; the message says what to write.

    `problem` names the kind, so that a door can answer with its own code:
    "not_hex", "odd_hex", "udh_length", "udh_concat", "udh_national", "no_room".
    """

    def __init__(self, problem: str, message: str):
        super().__init__(message)
        self.problem = problem
