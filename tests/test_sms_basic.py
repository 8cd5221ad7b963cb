"""First tests of the public gsmgw.sms API: each function once, round trips, errors."""

from datetime import datetime, timedelta, timezone

import pytest

from gsmgw.sms import (
    AddressError,
    DecodeError,
    Reassembler,
    count_parts,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    encode_submit,
    normalize_number,
    parse_validity,
)

UTC = timezone.utc


def test_hellohello_deliver_from_dreamfabric_tutorial():
    # Source: http://www.dreamfabric.com/sms/deliver_fo.html ("hellohello" example).
    sms = decode_pdu("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37")
    assert sms.type == "deliver"
    assert sms.smsc == "+27381000015"
    assert sms.number == "27838890001"
    assert sms.text == "hellohello"
    assert sms.timestamp == datetime(1999, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2)))


def test_submit_round_trip_with_report_flash_validity():
    (part,) = encode_submit("+4915112345678", "hi @", report=True, flash=True, validity=167, mr=9)
    assert part.pdu.startswith("00")
    assert part.length == len(part.pdu) // 2 - 1
    sms = decode_pdu(part.pdu)
    assert (sms.type, sms.number, sms.text, sms.msg_class, sms.mr, sms.report_requested, sms.validity) == (
        "submit", "+4915112345678", "hi @", 0, 9, True, 167,
    )


def test_multipart_ucs2_emoji_round_trip_and_reassembly():
    text = "😀" * 40
    parts = encode_submit("+4915112345678", text, ref=300, ref16=True)
    assert len(parts) == 2
    reassembler = Reassembler()
    results = [reassembler.add(decode_pdu(p.pdu), received_at=0.0) for p in reversed(parts)]
    assert results[0] is None
    assert results[1].text == text


def test_deliver_and_status_report_encoders_decode_back():
    moment = datetime(2026, 11, 24, 10, 15, 3, tzinfo=timezone(timedelta(hours=-3, minutes=-45)))
    (pdu,) = encode_deliver("Vodafone", "Hi", timestamp=moment)
    sms = decode_pdu(pdu)
    assert (sms.number, sms.text, sms.timestamp) == ("Vodafone", "Hi", moment)
    report = decode_pdu(
        encode_status_report(mr=5, recipient="+4915112345678", scts=moment, discharge=moment, status=0)
    )
    assert (report.type, report.mr, report.status, report.discharge) == ("status-report", 5, 0, moment)


def test_count_parts_and_validity_and_numbers():
    assert count_parts("a" * 160).parts == 1
    assert count_parts("a" * 161).parts == 2
    assert count_parts("€" * 80).parts == 1
    assert count_parts("€" * 81).parts == 2
    assert parse_validity("2 days") == 168
    assert normalize_number("0151 1234-5678", "49") == "+4915112345678"
    with pytest.raises(AddressError):
        normalize_number("hello")


def test_bad_hex_is_one_decode_error():
    with pytest.raises(DecodeError):
        decode_pdu("0791")
