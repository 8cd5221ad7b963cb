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

National language tables (TS 23.038 §6.2.1.2.4) cost 3 header octets each
(IE 0x25 locking shift, IE 0x24 single shift; TS 23.040 §9.2.3.24.15/16) in
every part: with both and a concatenation IE the header is 1+6+5 = 12 octets,
96 bits -> 14 septets, leaving 146 septets per part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from gsmgw.sms import gsm7, national
from gsmgw.sms.errors import TooManyPartsError, UserDataError
from gsmgw.sms.udh import IEI_NATIONAL_LOCKING_SHIFT, IEI_NATIONAL_SINGLE_SHIFT, check_user_header

GSM7 = "gsm7"
UCS2 = "ucs2"
EIGHT_BIT = "8bit"

USER_DATA_OCTETS = 140
UDH_CONCAT8_OCTETS = 6  # UDHL, IEI 00, IEDL 03, ref, total, seq
UDH_CONCAT16_OCTETS = 7  # UDHL, IEI 08, IEDL 04, ref hi, ref lo, total, seq
MAX_PARTS = 255  # TP "maximum number of short messages" is one octet (TS 23.040 §9.2.3.24.1)


@dataclass(frozen=True)
class Encoding:
    """How a text goes on the wire: the alphabet and, for GSM-7, the national language
    identifiers of its locking and single shift tables (0: the default alphabet / extension table)."""

    alphabet: str
    locking: int = 0
    single: int = 0

    def header_elements(self) -> bytes:
        """The IEs 0x25 and 0x24 that select the tables (TS 23.040 §9.2.3.24.15/16); none for the defaults."""
        elements = b""
        if self.locking:
            elements += bytes((IEI_NATIONAL_LOCKING_SHIFT, 1, self.locking))
        if self.single:
            elements += bytes((IEI_NATIONAL_SINGLE_SHIFT, 1, self.single))
        return elements

    @property
    def national(self) -> dict[str, str | None] | None:
        """{"locking": "hi", "single": "hi"} (ISO 639-1 codes, None for a default table); None without national tables."""
        if not self.locking and not self.single:
            return None
        return {
            "locking": national.BY_ID[self.locking].code if self.locking else None,
            "single": national.BY_ID[self.single].code if self.single else None,
        }

    def describe(self) -> str:
        """For people: "GSM-7", "UCS-2", "8-bit", "GSM-7 with the Hindi locking and single shift tables"."""
        name = {GSM7: "GSM-7", UCS2: "UCS-2", EIGHT_BIT: "8-bit"}[self.alphabet]
        if self.locking and self.locking == self.single:
            return f"{name} with the {national.BY_ID[self.locking].name} locking and single shift tables"
        tables = [f"{national.BY_ID[i].name} {kind}" for i, kind in ((self.locking, "locking"), (self.single, "single shift")) if i]
        if not tables:
            return name
        return f"{name} with the {' and '.join(tables)} table{'s' if len(tables) > 1 else ''}"


DEFAULT_GSM7 = Encoding(GSM7)
UCS2_ENCODING = Encoding(UCS2)


def clean_text(text: str) -> str:
    """Join surrogate halves that Python holds as two characters; lone halves become U+FFFD.

    A str from a broken decoder may hold lone surrogates; they cannot be sent
    and would make any later `.encode("utf-8")` raise.
    """
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def choose_alphabet(text: str) -> str:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    return GSM7 if gsm7.is_gsm7(text) else UCS2


def _as_encoding(encoding: Encoding | str) -> Encoding:
    return encoding if isinstance(encoding, Encoding) else Encoding(encoding)


def char_units(char: str, encoding: Encoding | str) -> int:
    """Units one character takes: septets for GSM-7 (in its tables), UTF-16 code units for UCS-2."""
    encoding = _as_encoding(encoding)
    if encoding.alphabet == GSM7:
        return gsm7.char_septets(char, encoding.locking, encoding.single)
    return 2 if ord(char) > 0xFFFF else 1


def text_units(text: str, encoding: Encoding | str) -> int:
    return sum(char_units(char, encoding) * count for char, count in Counter(text).items())


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
    text: str, alphabet: Encoding | str | None = None, *, ref16: bool = False, other_ie_octets: int = 0
) -> list[str]:
    """Cut `text` into the texts of its parts (at least one part, maybe empty).

    `other_ie_octets` are header octets besides concatenation; an Encoding
    with national tables adds its own 3 or 6.
    """
    text = clean_text(text)
    encoding = _as_encoding(alphabet or choose_alphabet(text))
    alphabet = encoding.alphabet
    other_ie_octets += len(encoding.header_elements())
    if text_units(text, encoding) <= capacity(alphabet, multipart=False, other_ie_octets=other_ie_octets):
        return [text]
    limit = capacity(alphabet, multipart=True, ref16=ref16, other_ie_octets=other_ie_octets)
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        units = char_units(char, encoding)
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
    is how many units still fit into the last part. `encoding` also names
    the national tables used (`national`: {"locking", "single"} ISO codes).
    """

    parts: int
    alphabet: str
    units: int
    per_part: int
    remaining: int
    encoding: Encoding = DEFAULT_GSM7

    @property
    def national(self) -> dict[str, str | None] | None:
        return self.encoding.national


def _count(text: str, encoding: Encoding, ref16: bool, other_ie_octets: int = 0) -> PartCount:
    pieces = split_text(text, encoding, ref16=ref16, other_ie_octets=other_ie_octets)
    other = other_ie_octets + len(encoding.header_elements())
    per_part = capacity(encoding.alphabet, multipart=len(pieces) > 1, ref16=ref16, other_ie_octets=other)
    return PartCount(
        parts=len(pieces), alphabet=encoding.alphabet, units=text_units(text, encoding), per_part=per_part,
        remaining=per_part - text_units(pieces[-1], encoding), encoding=encoding,
    )  # fmt: skip


def _candidates(text: str, languages: Sequence[int], alphabet: str | None) -> list[Encoding]:
    """Every encoding that can carry `text`, in order of preference when parts tie: the default
    GSM-7 tables (no header, every phone), UCS-2 (every phone), then national table pairs."""
    chars = set(text)
    candidates = []
    if alphabet in (None, GSM7) and gsm7.is_gsm7("".join(chars)):
        candidates.append(DEFAULT_GSM7)
    if alphabet in (None, UCS2):
        candidates.append(UCS2_ENCODING)
    if alphabet in (None, GSM7) and languages:
        lockings = [0] + [i for i in languages if i in national.LOCKING]
        singles = [0, *languages]
        for locking in lockings:
            for single in singles:
                if (locking or single) and gsm7.is_gsm7("".join(chars), locking, single):
                    candidates.append(Encoding(GSM7, locking, single))
    return candidates


def gsm7_can_carry(text: str, national_languages: Sequence[str] = ()) -> bool:
    """Can the default GSM-7 tables, or a pair of the national tables allowed here, carry `text`?
    (A text that no GSM-7 encoding carries must go as UCS-2.)"""
    return any(candidate.alphabet == GSM7
               for candidate in _candidates(clean_text(text), national.language_ids(tuple(national_languages)), None))


def choose_encoding(
    text: str,
    national_languages: Sequence[str] = (),
    *,
    ref16: bool = False,
    alphabet: str | None = None,
    other_ie_octets: int = 0,
) -> PartCount:
    """The encoding of `text` with the fewest parts, and its count.

    `national_languages` are ISO 639-1 codes ("hi", "tr") whose tables
    (TS 23.038 Annex A) may be used, in any locking/single combination, as
    Android does with its enabled tables. On equal parts the default GSM-7
    tables win, then UCS-2 (both read by every phone), then the pair with the
    shorter header, then one language's own pair before a mixed one, then the
    one that leaves more room in the last part: a national table is only used
    where it saves a part. `alphabet` "gsm7" or
    "ucs2" restricts the choice; `other_ie_octets` are the sender's own
    header octets. ValueError for an unknown language code, or a text that
    the forced alphabet cannot carry.
    """
    text = clean_text(text)
    languages = national.language_ids(tuple(national_languages))
    if alphabet not in (None, GSM7, UCS2):
        raise ValueError(f"alphabet {alphabet!r} is not gsm7 or ucs2")
    candidates = _candidates(text, languages, alphabet)
    if not candidates:
        tables = " or the national tables " + ", ".join(national.BY_ID[i].code for i in languages) if languages else ""
        raise ValueError(f"the text has characters outside the GSM 7-bit alphabet{tables}; use ucs2")

    tally = Counter(text)

    def rank(encoding: Encoding) -> tuple[int, int, bool]:
        preference = 0 if encoding == DEFAULT_GSM7 else 1 if encoding.alphabet == UCS2 else 2
        mixed = bool(encoding.locking and encoding.single and encoding.locking != encoding.single)
        return preference, len(encoding.header_elements()), mixed  # Hindi + Hindi before Hindi + Gujarati

    # Splitting is exact but costs a pass over the text per candidate; units / capacity is a
    # lower bound on the parts (a boundary can only push an escape to the next part), so only
    # candidates whose bound can still win are split: plain text with 13 languages enabled
    # is otherwise 181 splits.
    def lower_bound(encoding: Encoding) -> int:
        units = sum(char_units(char, encoding) * count for char, count in tally.items())
        other = other_ie_octets + len(encoding.header_elements())
        if units <= capacity(encoding.alphabet, multipart=False, other_ie_octets=other):
            return 1
        return -(-units // capacity(encoding.alphabet, multipart=True, ref16=ref16, other_ie_octets=other))

    best: PartCount | None = None
    for bound, encoding in sorted(((lower_bound(e), e) for e in candidates), key=lambda pair: (pair[0], rank(pair[1]))):
        if best is not None and (bound, *rank(encoding)) > (best.parts, *rank(best.encoding)):
            break
        count = _count(text, encoding, ref16, other_ie_octets)
        if best is None or (count.parts, *rank(encoding), -count.remaining) < (
            best.parts, *rank(best.encoding), -best.remaining
        ):
            best = count
    assert best is not None
    return best


def count_parts(
    text: str, *, ref16: bool = False, national_languages: Sequence[str] = (), udh: bytes | None = None
) -> PartCount:
    """How many parts and which encoding `text` needs (same choice and split as encode_submit);
    `udh` is the sender's own header (UDHL first), which every part carries."""
    other = len(check_user_header(udh)) if udh else 0
    return choose_encoding(text, national_languages, ref16=ref16, other_ie_octets=other)


def split_data(data: bytes, *, ref16: bool = False, other_ie_octets: int = 0) -> list[bytes]:
    """Cut 8-bit user data into parts: 140 octets less the header each (TS 23.040 §9.2.3.24).

    With a 7-octet WAP push header (06 05 04 0B 84 23 F0) one part holds 133
    octets; with concatenation added, 1+6+5 = 12 header octets leave 128.
    UserDataError when the sender's header leaves no room for data.
    """
    single = capacity(EIGHT_BIT, multipart=False, other_ie_octets=other_ie_octets)
    if single < 1:
        raise UserDataError(
            "no_room", f"the UDH takes {other_ie_octets + 1} of the 140 octets and leaves no room for data; shorten it"
        )
    if len(data) <= single:
        return [bytes(data)]
    per_part = capacity(EIGHT_BIT, multipart=True, ref16=ref16, other_ie_octets=other_ie_octets)
    if per_part < 1:
        raise UserDataError(
            "no_room",
            f"with the concatenation IE the UDH takes {140 - per_part} of the 140 octets and leaves no room for "
            f"data; shorten the UDH or the data ({len(data)} octets) to fit one part of {single}",
        )
    return [bytes(data[i : i + per_part]) for i in range(0, len(data), per_part)]


def count_data_parts(data: bytes, *, udh: bytes | None = None, ref16: bool = False) -> PartCount:
    """How many parts 8-bit `data` needs with the sender's header `udh` (UDHL first, or None); units are octets."""
    other = len(check_user_header(udh)) if udh else 0
    pieces = split_data(data, ref16=ref16, other_ie_octets=other)
    per_part = capacity(EIGHT_BIT, multipart=len(pieces) > 1, ref16=ref16, other_ie_octets=other)
    return PartCount(
        parts=len(pieces), alphabet=EIGHT_BIT, units=len(data), per_part=per_part,
        remaining=per_part - len(pieces[-1]), encoding=Encoding(EIGHT_BIT),
    )  # fmt: skip


def check_part_limit(needed: int, max_parts: int | None, what: str = "text") -> None:
    """TooManyPartsError when `needed` exceeds the caller's limit or the 255 a reference allows."""
    if max_parts is not None and needed > max_parts:
        raise TooManyPartsError(needed, max_parts, what)
    if needed > MAX_PARTS:
        raise TooManyPartsError(needed, MAX_PARTS, what)
