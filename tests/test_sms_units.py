"""Numbers, validity periods, part counting, status words and the Reassembler."""

from datetime import datetime, timedelta, timezone

import pytest

from gsmgw.sms import (
    AddressError,
    Reassembler,
    TooManyPartsError,
    count_parts,
    decode_pdu,
    encode_deliver,
    encode_submit,
    normalize_number,
    parse_validity,
    status_category,
    status_meaning,
    validity_seconds,
)
from gsmgw.sms.address import normalize_number_pattern
from gsmgw.sms.split import split_text

# --- normalize_number (SPOOL.md `To:`) ---------------------------------------

GOOD_NUMBERS = [
    ("+4915112345678", None, "+4915112345678"),
    ("4915112345678", None, "+4915112345678"),  # smstools3: international without +
    ("004915112345678", None, "+4915112345678"),
    ("+49 151 1234-5678", None, "+4915112345678"),
    ("+49.151.12345678", None, "+4915112345678"),
    ("+49 (151) 12345678", None, "+4915112345678"),
    ("+49 (0)151 12345678", None, "+4915112345678"),  # the bracketed trunk 0
    ("0049 (0)151 12345678", None, "+4915112345678"),
    ("49 (0)151 12345678", None, "+4915112345678"),  # "+" lost in an unencoded URL: still the trunk 0
    ("0151 12345678", "49", "+4915112345678"),
    ("0151 12345678", "+49", "+4915112345678"),
    ("(0151) 123-45678", "49", "+4915112345678"),
    ("0151/12345678", "49", "+4915112345678"),
    ("  +4915112345678\n", None, "+4915112345678"),
    ("+6834002", None, "+6834002"),  # Niue: 7 digits in all
    ("+123456789012345", None, "+123456789012345"),  # 15 digits, the E.164 maximum
    (4915112345678, None, "+4915112345678"),  # an unquoted YAML/JSON number
]


@pytest.mark.parametrize("text, country, expected", GOOD_NUMBERS)
def test_normalize_number(text, country, expected):
    assert normalize_number(text, country) == expected


BAD_NUMBERS = [
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("hello", None, "not a phone number"),
    ("+49 151 ABC", None, "not a phone number"),
    ("++4915112345678", None, "not a phone number"),
    ("0151 12345678", None, "default_country"),
    ("0151 12345678", "049", "default_country"),
    ("0151 12345678", "DE", "default_country"),
    ("+0151234567", None, "no country code"),
    ("+1234567890123456", None, "more than the 15"),
    ("+49151", None, "too short"),
    ("12345", None, "too short"),
    ("+49#151", None, "not a phone number"),
]


@pytest.mark.parametrize("text, country, words", BAD_NUMBERS)
def test_normalize_number_rejects_with_a_reason(text, country, words):
    with pytest.raises(AddressError, match=words) as caught:
        normalize_number(text, country)
    assert "+4915112345678" in str(caught.value) or "default_country" in str(caught.value)


GOOD_PATTERNS = [
    ("+49 900*", None, "+49900*"),
    ("0049900*", None, "+49900*"),
    ("49900*", None, "+49900*"),
    ("0900*", "49", "+49900*"),
    ("+49 (0) 900*", None, "+49900*"),
    ("+49 15? 1234*", None, "+4915?1234*"),
    ("+4915112345678", None, "+4915112345678"),  # a number is a pattern for itself
    ("*", None, "*"),
    ("* 900 *", None, "*900*"),
]


@pytest.mark.parametrize("text, country, expected", GOOD_PATTERNS)
def test_a_pattern_is_read_as_the_numbers_it_matches(text, country, expected):
    assert normalize_number_pattern(text, country) == expected


@pytest.mark.parametrize("text, words", [("0900*", "default_country"), ("+0*", "no country code"),
                                         ("+4912345678901234*", "matches nothing"), ("+49151", "matches no"),
                                         ("?49*", "starts with ?"), ("*49+*", "not a number pattern")])
def test_a_pattern_that_cannot_match_is_refused(text, words):
    with pytest.raises(AddressError, match=words):
        normalize_number_pattern(text)


# --- parse_validity (TS 23.040 §9.2.3.12.1) ------------------------------------

VALIDITY = [
    ("0", 0), ("255", 255), (" 143 ", 143), (167, 167),
    ("5 min", 0), ("30 min", 5), ("1 hour", 11), ("12 hours", 143),
    ("12.5 hours", 144), ("13 hours", 145), ("24 hours", 167), ("1 day", 167),
    ("2 days", 168), ("3 days", 169), ("1 week", 173), ("30 days", 196),
    ("31 days", 197), ("5 weeks", 197), ("63 weeks", 255), ("1 min", 0), ("1d", 167),
    ("6 minutes", 1),
]  # fmt: skip


@pytest.mark.parametrize("text, vp", VALIDITY)
def test_parse_validity(text, vp):
    assert parse_validity(text) == vp


@pytest.mark.parametrize("text", ["256", "64 weeks", "two days", "2 fortnights", "", "-1 day", "1.5"])
def test_parse_validity_rejects(text):
    with pytest.raises(ValueError, match="validity"):
        parse_validity(text)


def test_encode_submit_takes_a_validity_text_too():
    (part,) = encode_submit("+4915112345678", "x", validity="2 days")
    assert decode_pdu(part.pdu).validity == 168


def test_every_vp_branch_has_its_duration():
    assert [validity_seconds(vp) // 60 for vp in (0, 143, 144, 167, 168, 196, 197, 255)] == [
        5, 720, 750, 1440, 2 * 1440, 30 * 1440, 5 * 7 * 1440, 63 * 7 * 1440,
    ]  # fmt: skip
    for vp in range(256):  # the rounding up never loses a step
        assert parse_validity(f"{validity_seconds(vp)} s") == vp


# --- count_parts / split ---------------------------------------------------------

COUNTS = [
    ("", 1, "gsm7", 0, 160),
    ("a" * 160, 1, "gsm7", 160, 0),
    ("a" * 161, 2, "gsm7", 161, 153 * 2 - 161),
    ("€" * 80, 1, "gsm7", 160, 0),
    ("a" * 159 + "€", 2, "gsm7", 161, 153 - 8),  # the escape never splits: 153 | 8
    ("a" * 152 + "€" + "b" * 7, 2, "gsm7", 161, 153 - 9),  # '€' does not fit after 152: moves whole
    ("é" * 70, 1, "gsm7", 70, 90),  # é is in the default alphabet
    ("ж" * 70, 1, "ucs2", 70, 0),
    ("ж" * 71, 2, "ucs2", 71, 67 * 2 - 71),
    ("😀" * 35, 1, "ucs2", 70, 0),
    ("ж" * 66 + "😀" + "ж" * 3, 2, "ucs2", 71, 67 - 5),  # the pair never splits: 66 | 2 + 3
    ("a" * 153 * 3, 3, "gsm7", 459, 0),
]


@pytest.mark.parametrize("text, parts, alphabet, units, remaining", COUNTS)
def test_count_parts(text, parts, alphabet, units, remaining):
    counted = count_parts(text)
    assert (counted.parts, counted.alphabet, counted.units, counted.remaining) == (parts, alphabet, units, remaining)
    assert len(encode_submit("+4915112345678", text, ref=1)) == parts


def test_16bit_references_take_one_unit_more_per_part():
    assert count_parts("a" * 306).parts == 2 and count_parts("a" * 306, ref16=True).parts == 3
    assert count_parts("ж" * 134).parts == 2 and count_parts("ж" * 134, ref16=True).parts == 3


def test_split_never_cuts_an_escape_or_a_pair():
    assert split_text("a" * 152 + "€" * 5) == ["a" * 152, "€" * 5]
    assert split_text("ж" * 66 + "😀" * 3) == ["ж" * 66, "😀" * 3]


def test_lone_surrogate_in_input_is_sent_as_replacement_char():
    (part,) = encode_submit("+4915112345678", "a\ud800b")
    assert decode_pdu(part.pdu).text == "a\ufffdb"
    (part,) = encode_submit("+4915112345678", "\ud83d\ude00")  # a pair held as two str characters
    assert decode_pdu(part.pdu).text == "😀"


def test_max_parts_and_the_255_limit():
    with pytest.raises(TooManyPartsError, match="needs 3 SMS parts but at most 2"):
        encode_submit("+4915112345678", "a" * 400, max_parts=2)
    assert len(encode_submit("+4915112345678", "a" * 400, max_parts=3)) == 3
    with pytest.raises(TooManyPartsError):
        encode_submit("+4915112345678", "a" * (153 * 255 + 1))


def test_encode_rejects_bad_arguments():
    with pytest.raises(AddressError):
        encode_submit("this is far too long for a sender", "x")
    with pytest.raises(AddressError, match="only digits"):
        encode_submit("+49abc", "x")
    with pytest.raises(ValueError, match="TP-MR"):
        encode_submit("+4915112345678", "x", mr=256)
    with pytest.raises(ValueError, match="TP-VP"):
        encode_submit("+4915112345678", "x", validity=300)
    with pytest.raises(ValueError, match="reference"):
        encode_submit("+4915112345678", "x" * 200, ref=256)
    with pytest.raises(ValueError, match="aware"):
        encode_deliver("+4915112345678", "x", timestamp=datetime(2026, 1, 1))


# --- status words (TS 23.040 §9.2.3.15) --------------------------------------------


@pytest.mark.parametrize(
    "status, category, words",
    [
        (0x00, "delivered", "received by the SME"),
        (0x02, "delivered", "replaced"),
        (0x10, "delivered", "SC-specific"),
        (0x21, "pending", "SME busy"),
        (0x30, "pending", "SC-specific"),
        (0x46, "failed", "validity period expired"),
        (0x62, "failed", "no response"),
        (0x80, "failed", "reserved"),
    ],
)
def test_status_words(status, category, words):
    assert status_category(status) == category
    assert words in status_meaning(status)


# --- Reassembler ---------------------------------------------------------------

MOMENT = datetime(2026, 11, 24, 10, 15, 3, tzinfo=timezone(timedelta(hours=1)))


def _parts(text, sender="+4915112345678", ref=42, ref16=False):
    return [decode_pdu(p) for p in encode_deliver(sender, text, timestamp=MOMENT, ref=ref, ref16=ref16)]


def test_reassembler_out_of_order_with_duplicate():
    first, second, third = _parts("x" * 400)
    reassembler = Reassembler()
    assert reassembler.add(third, received_at=1.0, token="c") is None
    assert reassembler.add(first, received_at=2.0, token="a") is None
    assert reassembler.add(first, received_at=3.0, token="a2") is None  # duplicate
    message = reassembler.add(second, received_at=4.0, token="b")
    assert message.complete and message.text == "x" * 400
    assert message.tokens == ("c", "a", "a2", "b")
    assert message.first_received == 1.0 and message.sender == "+4915112345678"
    assert len(reassembler) == 0


def test_reassembler_drops_a_part_repeated_after_completion_but_not_a_reused_reference():
    first, second = _parts("z" * 200)
    reassembler = Reassembler(forget_after=600.0)
    reassembler.add(first, received_at=0.0, token="a")
    assert reassembler.add(second, received_at=1.0, token="b").text == "z" * 200
    assert reassembler.add(first, received_at=60.0, token="a-again") is None
    assert len(reassembler) == 0 and reassembler.take_duplicates() == ["a-again"]
    assert reassembler.take_duplicates() == []
    # The same reference with other text is a new message (8-bit references wrap).
    other_first, other_second = _parts("w" * 200)
    assert reassembler.add(other_first, received_at=70.0) is None
    assert reassembler.add(other_second, received_at=71.0).text == "w" * 200
    # After forget_after the repeat opens a new message again.
    assert reassembler.add(first, received_at=2000.0, token="late") is None
    assert len(reassembler) == 1


def test_reassembler_keeps_senders_references_and_scopes_apart():
    reassembler = Reassembler()
    a1, a2 = _parts("a" * 200, sender="+4915100000001")
    b1, b2 = _parts("b" * 200, sender="+4915100000002")
    c1, c2 = _parts("c" * 200, sender="+4915100000001", ref=43)
    d1, d2 = _parts("d" * 200, sender="+4915100000001", ref=42, ref16=True)
    for part in (a1, b1, c1, d1):
        assert reassembler.add(part, received_at=0.0) is None
    assert reassembler.add(a1, received_at=0.0, scope="gsm2") is None  # another modem
    assert len(reassembler) == 5
    assert reassembler.add(d2, received_at=1.0).text == "d" * 200
    assert reassembler.add(c2, received_at=1.0).text == "c" * 200
    assert reassembler.add(b2, received_at=1.0).text == "b" * 200
    assert reassembler.add(a2, received_at=1.0).text == "a" * 200
    assert reassembler.add(a2, received_at=1.0, scope="gsm2").scope == "gsm2"


def test_reassembler_single_part_comes_out_at_once():
    (single,) = _parts("hello")
    message = Reassembler().add(single, received_at=5.0, token=1)
    assert (message.text, message.total, message.complete, message.tokens) == ("hello", 1, True, (1,))


def test_reassembler_stale_and_expire_give_what_arrived():
    first, _second, third = _parts("y" * 400)
    reassembler = Reassembler()
    reassembler.add(first, received_at=100.0, token="a")
    reassembler.add(third, received_at=150.0, token="c")
    assert reassembler.stale(now=199.0, timeout=100.0) == []
    (info,) = reassembler.stale(now=200.0, timeout=100.0)
    assert (info.received, info.total, info.tokens) == ((1, 3), 3, ("a", "c"))
    assert reassembler.expire(now=199.0, timeout=100.0) == []
    (message,) = reassembler.expire(now=200.0, timeout=100.0)
    assert not message.complete and message.missing == (2,)
    assert message.text == "y" * 153 + "y" * (400 - 306)
    assert len(reassembler) == 0


def test_reassembler_joins_a_pair_split_by_a_broken_sender():
    # Hand-built: a sender that cut 😀 (D83D DE00) between two UCS-2 parts.
    head = "0044" "0B919471091856F5" "0008" "62114201513000" "08" "050003070201" "D83D"
    tail = "0044" "0B919471091856F5" "0008" "62114201513000" "08" "050003070202" "DE00"
    parts = [decode_pdu(head), decode_pdu(tail)]
    assert [p.text for p in parts] == ["\ufffd", "\ufffd"]
    reassembler = Reassembler()
    reassembler.add(parts[0], received_at=0.0)
    assert reassembler.add(parts[1], received_at=0.0).text == "😀"


def test_reassembler_joins_an_escape_split_by_a_broken_sender():
    # Part 1 ends with ESC, part 2 starts with 0x65: together '€' (TS 23.038 §6.2.1.1).
    # 8-bit concat header (6 octets) + 1 fill bit = 7 septets; 1 text septet each.
    head = "0044" "0B919471091856F5" "0000" "62114201513000" "08" "050003090201" "36"  # ESC <<1 = 0x36
    tail = "0044" "0B919471091856F5" "0000" "62114201513000" "08" "050003090202" "CA"  # 0x65 <<1 = 0xCA
    parts = [decode_pdu(head), decode_pdu(tail)]
    assert [p.data for p in parts] == [b"\x1b", b"\x65"]
    reassembler = Reassembler()
    reassembler.add(parts[0], received_at=0.0)
    assert reassembler.add(parts[1], received_at=0.0).text == "€"


def test_reassembler_refuses_a_report():
    report = decode_pdu("0006D60B911326880736F4111011719551401110117195714000")
    with pytest.raises(ValueError, match="status-report"):
        Reassembler().add(report, received_at=0.0)


def test_reassembler_keeps_the_national_language_tables():
    # UDHL 0B: concat (00 03 05 02 seq), locking 25 01 01, single 24 01 01 = 12 octets = 96 bits,
    # 14 septets with 2 fill bits; one Turkish septet per part, 1C (Ş) and 07 (ı), at bits 98..104.
    head = "0044" "0B919471091856F5" "0000" "62114201513000" "0F" "0B0003050201250101240101" "7000"
    tail = "0044" "0B919471091856F5" "0000" "62114201513000" "0F" "0B0003050202250101240101" "1C00"
    reassembler = Reassembler()
    reassembler.add(decode_pdu(head), received_at=0.0)
    assert reassembler.add(decode_pdu(tail), received_at=0.0).text == "Şı"
