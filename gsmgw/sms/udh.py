"""Binary user data as users write it: hex, and a user data header of their own (TS 23.040 §9.2.3.24).

Pure code: no I/O. smstools3 (`UDH-DATA:`, `Hex: yes`), Kannel (`udh=`) and SMPP
(`esm_class` UDHI) all hand over the header with its length octet first
(UDHL), e.g. WAP push: 06 05 04 0B 84 23 F0 = UDHL 6, IE 05 (16-bit
application ports, §9.2.3.24.4) of 4 octets: destination 0x0B84 = 2948,
origin 0x23F0 = 9200. gsmgw checks such a header whole before it queues the
message, and adds the concatenation IE itself when the message needs parts.

Every refusal is a `UserDataError` whose `.problem` names the kind (for
doors that answer with codes, e.g. SMPP's command_status) and whose message
says what to write instead.
"""

from __future__ import annotations

from gsmgw.sms.errors import UserDataError

IEI_CONCAT_8 = 0x00
IEI_SPECIAL_SMS = 0x01
IEI_PORTS_8 = 0x04
IEI_PORTS_16 = 0x05
IEI_CONCAT_16 = 0x08
IEI_NATIONAL_SINGLE_SHIFT = 0x24
IEI_NATIONAL_LOCKING_SHIFT = 0x25
CONCAT_IEIS = (IEI_CONCAT_8, IEI_CONCAT_16)
NATIONAL_IEIS = (IEI_NATIONAL_SINGLE_SHIFT, IEI_NATIONAL_LOCKING_SHIFT)

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def parse_hex(text: str, *, what: str = "the data") -> bytes:
    """Hex digits, with or without spaces between octets ("06 05 04 0B 84 23 F0") -> bytes.

    UserDataError for a character that is not a hex digit (problem "not_hex")
    or an odd number of digits ("odd_hex").
    """
    compact = "".join(text.split())
    for position, char in enumerate(compact):
        if char not in _HEX_DIGITS:
            raise UserDataError(
                "not_hex",
                f"{what} is not hex: {char!r} at digit {position + 1}; write two hex digits per octet "
                f"(0-9, A-F), e.g. 0B84",
            )
    if len(compact) % 2:
        raise UserDataError(
            "odd_hex",
            f"{what} has an odd number of hex digits ({len(compact)}); write two digits per octet, "
            f"e.g. 05 not 5",
        )
    return bytes.fromhex(compact)


def parse_elements(body: bytes) -> tuple[tuple[int, bytes], ...]:
    """The information elements of a header body (without UDHL); UserDataError when they do not fit exactly."""
    elements = []
    index = 0
    while index < len(body):
        if index + 2 > len(body):
            raise UserDataError(
                "udh_length",
                f"the UDH ends inside an information element at octet {index + 2} (after the length octet); "
                f"each element is IEI, length, then that many octets",
            )
        iei, length = body[index], body[index + 1]
        if index + 2 + length > len(body):
            raise UserDataError(
                "udh_length",
                f"information element {iei:02X} says {length} octets but only {len(body) - index - 2} follow; "
                f"correct its length octet or its data",
            )
        elements.append((iei, bytes(body[index + 2 : index + 2 + length])))
        index += 2 + length
    return tuple(elements)


def check_user_header(udh: bytes) -> bytes:
    """A sender's user data header (UDHL first) -> its IE octets (without UDHL), checked.

    Refused: a length octet that disagrees with what follows ("udh_length"),
    elements that do not add up, a concatenation IE ("udh_concat": gsmgw
    splits and numbers the parts itself), national language shift IEs
    ("udh_national": the text encoder chooses those, see national_languages).
    """
    if not udh:
        raise UserDataError("udh_length", "the UDH is empty; leave it out, or write its length octet first, e.g. 06 05 04 0B 84 23 F0")
    udhl, body = udh[0], bytes(udh[1:])
    if udhl != len(body):
        raise UserDataError(
            "udh_length",
            f"the UDH's length octet says {udhl} octets ({udhl:02X}) but {len(body)} follow; "
            f"write {len(body):02X} as its first octet, or correct the header",
        )
    if not body:
        raise UserDataError("udh_length", "the UDH has no information elements; leave it out")
    for iei, _value in parse_elements(body):
        if iei in CONCAT_IEIS:
            raise UserDataError(
                "udh_concat",
                f"the UDH claims concatenation itself (IE {iei:02X}); leave that element out: gsmgw splits a long "
                f"message and numbers its parts",
            )
        if iei in NATIONAL_IEIS:
            raise UserDataError(
                "udh_national",
                f"the UDH selects a national language table (IE {iei:02X}); leave it out and list the language "
                f"under national_languages: in the config",
            )
    return body


def without_concatenation(elements: tuple[tuple[int, bytes], ...]) -> bytes:
    """A header (UDHL first) of `elements` less concatenation: what the sender put there; b"" if nothing is left."""
    body = b"".join(bytes((iei, len(value))) + value for iei, value in elements if iei not in CONCAT_IEIS)
    return bytes((len(body),)) + body if body else b""
