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


# ---------------------------------------------------------------------------
# Encoding with national tables: the choice, the part counts, the round trip.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gammu_peer import gammu_decode, needs_gammu  # noqa: E402
from gsmgw.sms import count_parts, encode_submit, join_parts  # noqa: E402
from gsmgw.sms.national import BY_ID  # noqa: E402

NUMBER = "+4915112345678"
HINDI = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6  # 204 characters, the danda । from the single shift table
PAIRS = [(locking, single) for locking in [0, *LOCKING_IDS] for single in [0, *SINGLE_IDS] if locking or single]


def _pair_chars(locking: int, single: int) -> list[str]:
    return sorted(_expected_codes(locking, single))


def _languages(locking: int, single: int) -> list[str]:
    return [BY_ID[i].code for i in {locking, single} if i]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"locking{l}-single{s}" for l, s in PAIRS])
@settings(max_examples=8, deadline=None, derandomize=True)
@given(data=st.data())
def test_round_trip_through_every_table_pair(pair, data):
    """Septets of each of the 181 pairs, with that pair's IEs in the header, decode to the same text."""
    locking, single = pair
    text = data.draw(st.text(alphabet=st.sampled_from(_pair_chars(locking, single)), max_size=60))
    udh = (bytes((0x25, 1, locking)) if locking else b"") + (bytes((0x24, 1, single)) if single else b"")
    septets = gsm7.encode_septets(text, locking, single)
    expected = _expected_codes(locking, single)
    assert septets == [code for char in text for code in expected[char]]
    assert decode_pdu(_deliver_hex(udh, septets)).text == text


@settings(max_examples=150, deadline=None, derandomize=True)
@given(pair=st.sampled_from(PAIRS), data=st.data())
def test_encode_submit_round_trip_and_part_boundaries(pair, data):
    """Whole messages: every part decodes on its own (no escape is split) and the parts join to the text."""
    locking, single = pair
    text = data.draw(st.text(alphabet=st.sampled_from(_pair_chars(locking, single)), min_size=1, max_size=500))
    languages = _languages(locking, single)
    parts = encode_submit(NUMBER, text, national_languages=languages, ref=7)
    decoded = [decode_pdu(part.pdu) for part in parts]
    assert "".join(sms.text for sms in decoded) == text
    assert join_parts(decoded) == text
    count = count_parts(text, national_languages=languages)
    assert (count.parts, count.alphabet) == (len(parts), parts[0].alphabet)
    assert count.parts <= count_parts(text).parts  # tables never cost a part
    for part, sms in zip(parts, decoded):
        assert len(part.tpdu) <= 140 + 15 and sms.national == part.national


def test_a_hindi_text_needs_half_the_parts_with_the_hindi_tables():
    without = count_parts(HINDI)
    with_tables = count_parts(HINDI, national_languages=["hi"])
    assert (without.parts, without.alphabet, without.units) == (4, "ucs2", 204)  # 67 UCS-2 units per part
    assert (with_tables.parts, with_tables.alphabet) == (2, "gsm7")
    assert with_tables.national == {"locking": "hi", "single": "hi"}
    # Header: UDHL + concatenation (5) + IE 25 (3) + IE 24 (3) = 12 octets = 14 septets; 160 - 14 = 146.
    assert with_tables.per_part == 146 and with_tables.units == 210  # 204 characters, 6 dandas escaped


@pytest.mark.parametrize(
    "text, parts, per_part",
    [
        ("ı" * 155, 1, 155),  # Turkish locking only: UDHL + 3 = 4 octets -> 5 septets, 160 - 5
        ("ı" * 156, 2, 149),  # with concatenation: 1 + 5 + 3 = 9 octets -> 11 septets
    ],
)
def test_one_table_costs_its_three_header_octets(text, parts, per_part):
    count = count_parts(text, national_languages=["tr"])
    assert (count.parts, count.per_part, count.national) == (parts, per_part, {"locking": "tr", "single": None})


def test_an_escape_is_never_split_across_parts():
    text = "क" * 145 + "।" + "क" * 10  # the danda (ESC 0x19) would straddle septets 146 and 147
    parts = encode_submit(NUMBER, text, national_languages=["hi"], ref=1)
    assert [part.text for part in parts] == ["क" * 145, "।" + "क" * 10]
    assert [decode_pdu(part.pdu).text for part in parts] == [part.text for part in parts]


def test_the_choice_prefers_fewer_parts_then_default_tables_then_ucs2():
    # A short Hindi text fits one part either way: UCS-2, which every phone reads, is kept.
    assert count_parts("नमस्ते", national_languages=["hi"]).alphabet == "ucs2"
    # Plain text stays in the default alphabet with no header.
    assert count_parts("hello", national_languages=["hi", "pt"]).encoding == count_parts("hello").encoding
    # 100 euro signs: 200 septets by the default extension table (2 parts), 100 by the
    # Portuguese locking table (0x18), which saves a part.
    euros = count_parts("€" * 100, national_languages=["pt"])
    assert (euros.parts, euros.national) == (1, {"locking": "pt", "single": None})
    assert count_parts("€" * 100).parts == 2


def test_an_unknown_language_code_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'xx' is not a national language.*hi \(Hindi\).*ur \(Urdu\)"):
        count_parts("hi", national_languages=["xx"])


def _sample(language: int) -> str:
    """A text that needs the language's tables: every character its locking and single shift tables add."""
    locking = language if language in LOCKING else 0
    # Each one between plain letters (a Spanish text is not all accents): long enough that UCS-2
    # costs more parts than the tables, so that they are chosen.
    chars = "".join(c + "ab" for c in _pair_chars(locking, language) if not gsm7.is_gsm7(c))
    return (chars * (300 // len(chars) + 1))[: max(300, len(chars))]


@needs_gammu
def test_gammu_reads_the_national_messages_gsmgw_sends():
    """gammu has no national tables, so it shows the septets through the default ones; mapped back, its
    septets, septet count (TP-UDL) and header must be exactly what the transcribed tables say."""
    batches = {}
    for language in SINGLE_IDS:
        parts = encode_submit(NUMBER, _sample(language), national_languages=[BY_ID[language].code], ref=language)
        assert parts[0].alphabet == "gsm7" and language in parts[0].national
        batches[language] = parts
    answers = iter(gammu_decode([part.pdu for parts in batches.values() for part in parts]))
    extension_code = {char: code for code, char in gsm7.EXTENSION_TABLE.items()}
    basic_code = {char: code for code, char in enumerate(BASIC_TABLE) if code != ESC}
    for language, parts in batches.items():
        expected_codes = _expected_codes(*parts[0].national)
        for part in parts:
            answer = next(answers)
            assert (answer["type"], answer["number"], answer["coding"]) == ("Submit", NUMBER, "Default_No_Compression")
            assert answer["udh"] == part.udh.hex().upper()
            septets = []
            for char in answer["text"]:
                if char == "¹":  # gammu's stand-in for an ESC whose code has no default extension character
                    septets.append(ESC)
                elif char in basic_code:
                    septets.append(basic_code[char])
                else:
                    septets.extend((ESC, extension_code[char]))
            septets = septets[: answer["length"]]
            assert septets == [code for char in part.text for code in expected_codes[char]], BY_ID[language].name


def test_with_every_language_enabled_a_language_keeps_its_own_pair():
    """The danda is also in the Gujarati single shift table; Hindi text still gets Hindi + Hindi."""
    from gsmgw.sms.national import CODES

    assert count_parts(HINDI, national_languages=CODES).national == {"locking": "hi", "single": "hi"}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    languages=st.lists(st.sampled_from([lang.code for lang in BY_ID.values()]), min_size=1, max_size=4, unique=True),
    text=st.text(alphabet=st.sampled_from(sorted({c for l, s in PAIRS for c in _pair_chars(l, s)})), max_size=400),
)
def test_the_pruned_choice_equals_trying_every_candidate(languages, text):
    """choose_encoding splits only candidates whose lower bound can win; trying them all gives the same."""
    from gsmgw.sms.split import Encoding, _candidates, _count
    from gsmgw.sms.national import language_ids

    def key(count):
        encoding = count.encoding
        preference = 0 if encoding == Encoding("gsm7") else 1 if encoding.alphabet == "ucs2" else 2
        mixed = bool(encoding.locking and encoding.single and encoding.locking != encoding.single)
        return (count.parts, preference, len(encoding.header_elements()), mixed, -count.remaining)

    every = [_count(text, e, False) for e in _candidates(text, language_ids(languages), None)]
    assert key(count_parts(text, national_languages=languages)) == min(map(key, every))


# A third transcription of Annex A, made by someone else from TS 23.038 V18.0.0: gsmcodecs 1.0.0
# (PyPI; its lut/*.csv, compiled into gsmcodecs.charmaps). Every cell of the 25 national tables is
# compared with gsmgw's, as gsmgw's decoder reads it. The cells where they differ, and why:
GSMCODECS_DIFFERENCES = {
    # A.3.7 Kannada 0x24: gsmcodecs keeps the drawing's PA (U+0CAA, also at 0x3D); gsmgw and
    # Android's GsmAlphabet read DDA (U+0CA1), as at 0x24 of every other Indic table.
    ("locking", 7, 0x24): ("\u0ca1", "\u0caa"),
    # 0x2C of the ten Indic locking tables (A.3.4-A.3.13): gsmcodecs has an apostrophe; the comma
    # is what Android's GsmAlphabet and CyberChef's transcription of V16.0.0 have, and where the
    # default alphabet has it.
    **{("locking", language, 0x2C): (",", "'") for language in range(4, 14)},
    # A.2.12 Telugu 0x65: the euro sign every single shift table has there (Android too); gsmcodecs
    # leaves the cell empty.
    ("single", 12, 0x65): ("€", None),
}


def test_a_third_transcription_agrees_cell_by_cell_but_where_noted():
    from gsmcodecs.charmaps import GSMCHARMAPS as charmaps  # a test dependency (setup.cfg)

    differences = {}
    for language in range(1, 14):
        tables = charmaps[language]
        for kind, theirs in (("locking", tables.get("locking")), ("single", tables.get("singleShift"))):
            if theirs is None:
                assert (kind, language) == ("locking", 2), "only Spanish has no locking shift table"
                continue
            for code in range(128):
                if code == ESC:
                    continue  # the escape (locking) and the reserved SS2 (single): no character in either
                if kind == "locking":
                    ours = gsm7.decode_septets([code], language, 0)
                    ours = None if ours == "\ufffd" else ours
                else:
                    ours = gsm7.SINGLE_SHIFT_TABLES[language].get(code)
                    if ours is not None:
                        assert gsm7.decode_septets([ESC, code], 0, language) == ours
                their = theirs["decode"].get(code)
                their = chr(their) if their is not None else None
                if ours != their:
                    differences[(kind, language, code)] = (ours, their)
    assert differences == GSMCODECS_DIFFERENCES
