"""National language shift tables (TS 23.038 §6.2.1.2.4, Annex A), character by character.

The expected characters come from tests/national_tables.py, a transcription of the standard's
tables in their own row/column layout, independent of gsmgw/sms/national.py.
"""

import pytest

from gsmgw.sms import decode_pdu, gsm7
from gsmgw.sms.gsm7 import BASIC_TABLE, ESC
from national_tables import LOCKING, SINGLE, cells, table

LOCKING_IDS = sorted(LOCKING)
SINGLE_IDS = sorted(SINGLE)


def _deliver_hex(udh: bytes, septets: list[int]) -> str:
    """An SMS-DELIVER from +4915112345678 with this UDH (IEs, without UDHL) and these septets."""
    header = bytes((len(udh),)) + udh
    header_septets = (len(header) * 8 + 6) // 7
    fill = header_septets * 7 - len(header) * 8
    user_data = header + gsm7.pack_septets(septets, fill)
    tpdu = bytes.fromhex("440D91945111325476F80000") + bytes.fromhex("42101021000000")
    return "00" + (tpdu + bytes((header_septets + len(septets),)) + user_data).hex().upper()


def test_every_language_has_both_tables_except_spanish_locking():
    """A.3.2 (Spanish locking shift) is void in the standard; every other language has both."""
    assert set(SINGLE) == set(range(1, 14))
    assert set(LOCKING) == set(range(1, 14)) - {2}
    assert set(gsm7.LOCKING_SHIFT_TABLES) == set(LOCKING) | {0}
    assert set(gsm7.SINGLE_SHIFT_TABLES) == set(SINGLE) | {0}


@pytest.mark.parametrize("language", LOCKING_IDS, ids=[LOCKING[i][0] for i in LOCKING_IDS])
def test_locking_shift_table_reads_as_the_standard(language):
    section, layout = LOCKING[language]
    assert cells(layout)[ESC] == "ESC", section
    for code, expected in table(layout).items():
        if code == ESC:
            continue
        got = gsm7.decode_septets(bytes((code,)), locking=language)
        assert got == (expected if expected is not None else "\ufffd"), f"{section} code {code:#04x}"


@pytest.mark.parametrize("language", SINGLE_IDS, ids=[SINGLE[i][0] for i in SINGLE_IDS])
def test_single_shift_table_reads_as_the_standard(language):
    """ESC + code; a code the table leaves empty shows the locking table's character (§6.2.1.1)."""
    section, layout = SINGLE[language]
    assert cells(layout)[ESC] == "SS2", section
    for code, expected in table(layout).items():
        got = gsm7.decode_septets(bytes((ESC, code)), single=language)
        if code == ESC:
            assert got == " ", section  # ESC ESC: a space (§6.2.1.1 note 1)
        elif expected is None:
            assert got == BASIC_TABLE[code], f"{section} code {code:#04x} falls back"
        else:
            assert got == expected, f"{section} code {code:#04x}"


def _expected_codes(locking: int, single: int) -> dict[str, list[int]]:
    """What each character encodes to under a table pair, from the transcription alone."""
    basic = table(LOCKING[locking][1]) if locking else {c: ch for c, ch in enumerate(BASIC_TABLE) if c != ESC}
    shifted = table(SINGLE[single][1]) if single else dict(gsm7.EXTENSION_TABLE)
    codes: dict[str, list[int]] = {}
    for code, char in sorted(shifted.items(), reverse=True):
        if char is not None:
            codes[char] = [ESC, code]
    for code, char in sorted(basic.items(), reverse=True):
        if char is not None:
            codes[char] = [code]  # the locking table wins, and the lower code of a repeated character
    return codes


@pytest.mark.parametrize("language", SINGLE_IDS, ids=[SINGLE[i][0] for i in SINGLE_IDS])
def test_encoding_writes_the_standards_codes(language):
    locking = language if language in LOCKING else 0
    for char, septets in _expected_codes(locking, language).items():
        assert gsm7.encode_septets(char, locking, language) == septets, f"{char!r} ({ord(char):04X})"
        assert gsm7.char_septets(char, locking, language) == len(septets)
    assert gsm7.is_gsm7("".join(_expected_codes(locking, language)), locking, language)


def test_a_character_outside_the_pair_is_refused_naming_the_tables():
    with pytest.raises(ValueError, match=r"'ş' is not in the GSM 7-bit alphabet \(Hindi locking and Hindi single"):
        gsm7.encode_septets("नमस्ते ş", 6, 6)
    assert not gsm7.is_gsm7("ş", 6, 6)


@pytest.mark.parametrize("language", LOCKING_IDS, ids=[LOCKING[i][0] for i in LOCKING_IDS])
def test_a_pdu_with_locking_and_single_shift_ies_reads_every_cell(language):
    """IE 0x25 (locking) and 0x24 (single shift), TS 23.040 §9.2.3.24.15/16, in both orders."""
    locking, single = table(LOCKING[language][1]), table(SINGLE[language][1])
    septets, expected = [], []
    for code, char in locking.items():
        if char is not None:
            septets.append(code)
            expected.append(char)
    for code, char in single.items():
        if char is not None:
            septets.extend((ESC, code))
            expected.append(char)
    chunks, start = [], 0
    while start < len(septets):  # parts of at most 140 septets, never ending on an ESC
        end = min(start + 140, len(septets))
        if septets[end - 1] == ESC and end < len(septets):
            end -= 1
        chunks.append(septets[start:end])
        start = end
    for udh in (bytes((0x25, 1, language, 0x24, 1, language)), bytes((0x24, 1, language, 0x25, 1, language))):
        decoded = [decode_pdu(_deliver_hex(udh, chunk)) for chunk in chunks]
        assert all(sms.national == (language, language) for sms in decoded)
        joined = "".join(sms.text for sms in decoded)
        assert joined == "".join(expected)


def test_locking_only_single_only_and_mixed_languages():
    """Each IE alone, and a locking table of one language with the single shift table of another."""
    hindi_ka = 0x15  # A.3.6: 0915 DEVANAGARI LETTER KA
    urdu_shift_comma = 0x26  # A.2.13: 060C ARABIC COMMA
    assert decode_pdu(_deliver_hex(bytes((0x25, 1, 6)), [hindi_ka, ESC, 0x65])).text == "क€"
    assert decode_pdu(_deliver_hex(bytes((0x24, 1, 13)), [0x41, ESC, urdu_shift_comma])).text == "A،"
    mixed = decode_pdu(_deliver_hex(bytes((0x25, 1, 6, 0x24, 1, 13)), [hindi_ka, ESC, urdu_shift_comma]))
    assert (mixed.national, mixed.text) == ((6, 13), "क،")
    # Concatenation and the shift IEs in one header.
    concat = decode_pdu(_deliver_hex(bytes((0x00, 3, 7, 2, 1, 0x25, 1, 6)), [hindi_ka]))
    assert (concat.concat.total, concat.concat.seq, concat.text) == (2, 1, "क")


def test_unknown_identifiers_and_spanish_locking_read_with_the_default_tables():
    """Identifiers 14..255 are reserved, and Spanish (2) has no locking table: default tables, no error."""
    for udh in (bytes((0x25, 1, 14, 0x24, 1, 200)), bytes((0x25, 1, 2))):
        assert decode_pdu(_deliver_hex(udh, [0x00, ESC, 0x65])).text == "@€"
