"""GSM 7-bit default alphabet and its extension table, the national shift tables, and septet packing.

Pure code: no I/O. Spec: 3GPP TS 23.038 §6.2.1 (default alphabet), §6.2.1.1
(extension table), §6.2.1.2.4 and Annex A (national language tables, as data
in gsmgw.sms.national), §6.1.2.1 (packing of 7-bit characters in SMS).

A text is turned into *septets* (integers 0..127) first; characters from the
extension table become two septets, ESC (0x1B) and the code. Packing septets
into octets is a separate step because the user data header shifts the first
septet to a septet boundary with fill bits (TS 23.040 §9.2.3.24).
"""

from __future__ import annotations

from functools import cache

from gsmgw.sms import national

ESC = 0x1B

# TS 23.038 §6.2.1, in code order 0x00..0x7F. 0x1B is the escape to the
# extension table; it is never a character of its own.
BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC_TABLE) == 128

# TS 23.038 §6.2.1.1: the characters reached by ESC + code. 0x0A is FORM FEED.
# 0x0D (CR2) and 0x1B (a further extension) are control codes with no
# character; a receiver shows a space for ESC ESC (§6.2.1.1 note).
EXTENSION_TABLE = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# National language tables (TS 23.038 §6.2.1.2.4, Annex A), selected per
# message by the user data header IEs 0x25 (locking shift) and 0x24 (single
# shift), TS 23.040 §9.2.3.24.15/16. Identifier 0 is the default pair.
LOCKING_SHIFT_TABLES = {0: BASIC_TABLE, **national.LOCKING}
SINGLE_SHIFT_TABLES = {0: EXTENSION_TABLE, **national.SINGLE}


@cache
def _codes(locking: int, single: int) -> tuple[dict[str, int], dict[str, int]]:
    """Character -> code in the locking table, and in the single shift table for what the locking one lacks.

    Where a table holds a character twice (the Indic single shift tables have
    '*' at 0x0B and 0x18, '¡' at 0x13 and 0x15), the lower code is written.
    """
    basic: dict[str, int] = {}
    for code, char in enumerate(LOCKING_SHIFT_TABLES[locking]):
        if code != ESC and char != national.UNDEFINED:
            basic.setdefault(char, code)
    shifted: dict[str, int] = {}
    for code, char in sorted(SINGLE_SHIFT_TABLES[single].items()):
        if char not in basic:
            shifted.setdefault(char, code)
    return basic, shifted


def is_gsm7(text: str, locking: int = 0, single: int = 0) -> bool:
    """True when every character of `text` is in the locking table or the single shift table (TS 23.038 §6.2.1,
    §6.2.1.1, §6.2.1.2.4); identifier 0 is the default alphabet and its extension table."""
    basic, shifted = _codes(locking, single)
    return all(char in basic or char in shifted for char in text)


def char_septets(char: str, locking: int = 0, single: int = 0) -> int:
    """Septets one character takes: 1 (locking table), 2 (ESC + single shift code; TS 23.038 §6.2.1.1)."""
    basic, shifted = _codes(locking, single)
    if char in basic:
        return 1
    if char in shifted:
        return 2
    raise ValueError(f"character {char!r} is not in the GSM 7-bit alphabet{_tables_named(locking, single)}")


def encode_septets(text: str, locking: int = 0, single: int = 0) -> list[int]:
    """Text -> septet values (TS 23.038 §6.2.1, §6.2.1.1, §6.2.1.2.4). ValueError if a character has no code."""
    basic, shifted = _codes(locking, single)
    septets: list[int] = []
    for char in text:
        code = basic.get(char)
        if code is not None:
            septets.append(code)
            continue
        code = shifted.get(char)
        if code is None:
            raise ValueError(f"character {char!r} is not in the GSM 7-bit alphabet{_tables_named(locking, single)}")
        septets.extend((ESC, code))
    return septets


def _tables_named(locking: int, single: int) -> str:
    if not locking and not single:
        return " (default alphabet)"
    names = [f"{national.BY_ID[i].name} {kind}" for i, kind in ((locking, "locking"), (single, "single shift")) if i]
    return f" ({' and '.join(names)} tables)"


def decode_septets(septets: bytes | list[int], locking: int = 0, single: int = 0) -> str:
    """Septet values -> text (TS 23.038 §6.2.1, §6.2.1.1).

    `locking` / `single` are national language identifiers from the user
    data header (TS 23.038 §6.2.1.2.4); unknown ones (14..255, and locking 2:
    Spanish has no locking table) fall back to the default tables. An escape
    to a code the shift table does not define shows the (locking) table's
    character for that code, as §6.2.1.1 requires of a receiver. A code the
    locking table leaves empty shows U+FFFD. ESC ESC (reserved for a further extension table) shows a space
    (§6.2.1.1 note). An ESC as the very last septet has nothing to escape and
    is dropped.
    """
    basic = LOCKING_SHIFT_TABLES.get(locking, BASIC_TABLE)
    extension = SINGLE_SHIFT_TABLES.get(single, EXTENSION_TABLE)
    chars: list[str] = []
    index = 0
    count = len(septets)
    while index < count:
        code = septets[index] & 0x7F
        index += 1
        if code != ESC:
            chars.append(basic[code])
            continue
        if index == count:
            break
        escaped = septets[index] & 0x7F
        index += 1
        if escaped == ESC:
            chars.append(" ")
        elif escaped in extension:
            chars.append(extension[escaped])
        else:
            chars.append(basic[escaped])
    return "".join(chars)


def packed_length(septet_total: int) -> int:
    """Octets that `septet_total` septets fill: ceil(7n/8), e.g. 160 septets -> 140 octets (TS 23.038 §6.1.2.1.1)."""
    return (septet_total * 7 + 7) // 8


def pack_septets(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first into octets (TS 23.038 §6.1.2.1.1).

    `fill_bits` zero bits come first, so that after a user data header of
    (UDHL+1) octets the first character starts on a septet boundary
    (TS 23.040 §9.2.3.24). Example: "hellohello" (10 septets, 70 bits) packs
    into 9 octets E8329BFD4697D9EC37; the last octet carries 2 spare bits.
    The spare bits of the last octet stay zero: TP-UDL counts septets, so a
    receiver never reads them as a trailing '@'.
    """
    accumulator = 0
    bit_count = fill_bits
    out = bytearray()
    for septet in septets:
        accumulator |= (septet & 0x7F) << bit_count
        bit_count += 7
        while bit_count >= 8:
            out.append(accumulator & 0xFF)
            accumulator >>= 8
            bit_count -= 8
    if bit_count > 0:
        out.append(accumulator & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, septet_total: int, fill_bits: int = 0) -> bytes:
    """Unpack exactly `septet_total` septets after `fill_bits` bits (TS 23.038 §6.1.2.1.1).

    Reading exactly the count that TP-UDL gives is what keeps a real trailing
    '@' (septet 0) and drops the zero or CR padding of the last octet.
    The caller checks that `data` is long enough.
    """
    septets = bytearray()
    for position in range(septet_total):
        bit = fill_bits + position * 7
        octet_index, shift = divmod(bit, 8)
        value = data[octet_index] >> shift
        if shift > 1:
            value |= data[octet_index + 1] << (8 - shift)
        septets.append(value & 0x7F)
    return bytes(septets)
