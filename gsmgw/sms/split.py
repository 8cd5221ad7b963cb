"""Choosing the alphabet, counting and splitting a text into SMS parts.

Pure code: no I/O.

Capacities (TS 23.040 §9.2.3.16 TP-UDL, §9.2.3.24.1 concatenation):
the user data holds 140 octets, i.e. 160 GSM-7 septets or 70 UCS-2 units.
A multipart message spends 6 octets on its header (UDHL + IEI 00, 8-bit
reference) or 7 (IEI 08, 16-bit reference), leaving 134 or 133 octets:
153 or 152 septets (133*8/7 = 152.0), 67 or 66 UCS-2 units.

A part boundary never falls inside an ESC sequence (an extension character
is 2 septets) nor inside a UTF-16 surrogate pair (an emoji is 2 units),
because receivers decode each part on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from gsmgw.sms import gsm7
from gsmgw.sms.errors import TooManyPartsError

GSM7 = "gsm7"
UCS2 = "ucs2"
EIGHT_BIT = "8bit"

USER_DATA_OCTETS = 140
UDH_CONCAT8_OCTETS = 6  # UDHL, IEI 00, IEDL 03, ref, total, seq
UDH_CONCAT16_OCTETS = 7  # UDHL, IEI 08, IEDL 04, ref hi, ref lo, total, seq
MAX_PARTS = 255  # TP "maximum number of short messages" is one octet (TS 23.040 §9.2.3.24.1)


def clean_text(text: str) -> str:
    """Join surrogate halves that Python holds as two characters; lone halves become U+FFFD.

    A str from a broken decoder may hold lone surrogates; they cannot be sent
    and would make any later `.encode("utf-8")` raise.
    """
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def choose_alphabet(text: str) -> str:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    return GSM7 if gsm7.is_gsm7(text) else UCS2


def char_units(char: str, alphabet: str) -> int:
    """Units one character takes: septets for GSM-7, UTF-16 code units for UCS-2."""
    if alphabet == GSM7:
        return gsm7.char_septets(char)
    return 2 if ord(char) > 0xFFFF else 1


def text_units(text: str, alphabet: str) -> int:
    return sum(char_units(char, alphabet) for char in text)


def header_octets(*, multipart: bool, ref16: bool = False, other_ie_octets: int = 0) -> int:
    """Octets of the user data header (with its UDHL octet); 0 when there is none."""
    ie_octets = other_ie_octets
    if multipart:
        ie_octets += UDH_CONCAT16_OCTETS - 1 if ref16 else UDH_CONCAT8_OCTETS - 1
    return ie_octets + 1 if ie_octets else 0


def capacity(alphabet: str, *, multipart: bool, ref16: bool = False, other_ie_octets: int = 0) -> int:
    """Units per part: 160/153/152 septets, 70/67/66 UCS-2 units, 140/134/133 octets of data
    (TS 23.040 §9.2.3.16 TP-UDL, §9.2.3.24 header; §9.2.3.24.1/.8 concatenation IE of 5 or 6 octets).

    `other_ie_octets` are header bytes besides concatenation (e.g. 6 for a
    16-bit port addressing IE).
    """
    header = header_octets(multipart=multipart, ref16=ref16, other_ie_octets=other_ie_octets)
    if alphabet == GSM7:
        # The header is padded to a septet boundary: 6 octets = 48 bits -> 7 septets (49 bits).
        return 160 - (header * 8 + 6) // 7
    if alphabet == UCS2:
        return (USER_DATA_OCTETS - header) // 2
    return USER_DATA_OCTETS - header


def split_text(
    text: str, alphabet: str | None = None, *, ref16: bool = False, other_ie_octets: int = 0
) -> list[str]:
    """Cut `text` into the texts of its parts (at least one part, maybe empty)."""
    text = clean_text(text)
    alphabet = alphabet or choose_alphabet(text)
    if text_units(text, alphabet) <= capacity(alphabet, multipart=False, other_ie_octets=other_ie_octets):
        return [text]
    limit = capacity(alphabet, multipart=True, ref16=ref16, other_ie_octets=other_ie_octets)
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        units = char_units(char, alphabet)
        if used + units > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += units
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class PartCount:
    """What a text costs: `parts` SMS in `alphabet`.

    `units` are septets (GSM-7) or UTF-16 code units (UCS-2) of the whole
    text; `per_part` is the capacity of one part at this length; `remaining`
    is how many units still fit into the last part.
    """

    parts: int
    alphabet: str
    units: int
    per_part: int
    remaining: int


def count_parts(text: str, *, ref16: bool = False) -> PartCount:
    """How many parts and which alphabet `text` needs (same split as encode_submit)."""
    text = clean_text(text)
    alphabet = choose_alphabet(text)
    units = text_units(text, alphabet)
    pieces = split_text(text, alphabet, ref16=ref16)
    per_part = capacity(alphabet, multipart=len(pieces) > 1, ref16=ref16)
    remaining = per_part - text_units(pieces[-1], alphabet)
    return PartCount(parts=len(pieces), alphabet=alphabet, units=units, per_part=per_part, remaining=remaining)


def check_part_limit(needed: int, max_parts: int | None) -> None:
    """TooManyPartsError when `needed` exceeds the caller's limit or the 255 a reference allows."""
    if max_parts is not None and needed > max_parts:
        raise TooManyPartsError(needed, max_parts)
    if needed > MAX_PARTS:
        raise TooManyPartsError(needed, MAX_PARTS)
