"""Pure response parsers and vendor profiles, on answers real devices print."""

from __future__ import annotations

import pytest

from gsmgw.at.modem import (
    _decode_ussd,
    _pack_ussd,
    check_pdu_length,
    parse_cmgs,
    parse_cnum,
    parse_cops,
    parse_cpin,
    parse_cpms,
    parse_creg,
    parse_csca,
    parse_digits,
    parse_stored,
    parse_text_value,
)
from gsmgw.at.errors import ResponseError
from gsmgw.at.profiles import HUAWEI, QUECTEL, SIMCOM, GENERIC, detect_profile, get_profile, normalise_iccid


@pytest.mark.parametrize(
    "lines,expected",
    [(["huawei"], "huawei"), (["+CGMI: Quectel"], "Quectel"), (["Manufacturer: huawei"], "huawei"),
     (['+CGMI: "SIMCOM_Ltd"'], "SIMCOM_Ltd")],
)
def test_text_value(lines, expected):
    assert parse_text_value(lines, "Manufacturer") == expected


@pytest.mark.parametrize(
    "text,profile",
    [("huawei", HUAWEI), ("HUAWEI", HUAWEI), ("SIMCOM_Ltd", SIMCOM), ("SIMCOM INCORPORATED", SIMCOM),
     ("SIM800 R14.18", SIMCOM), ("Quectel", QUECTEL), ("Telit", GENERIC), ("", GENERIC)],
)
def test_detect_profile(text, profile):
    assert detect_profile(text) is profile


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="generic, huawei, quectel, simcom"):
        get_profile("nokia")


@pytest.mark.parametrize(
    "profile,lines,left",
    [(GENERIC, ["+CPINR: SIM PIN,1,3"], 1),
     (HUAWEI, ["^CPIN: SIM PIN,2,10,2,10,3"], 2),
     (SIMCOM, ["+SPIC: 1,3,10,10"], 1),
     (QUECTEL, ['+QPINC: "SC",3,10'], 3)],
)
def test_pin_attempt_parsers(profile, lines, left):
    _, parse = profile.pin_attempt_queries[0]
    assert parse(lines) == left


@pytest.mark.parametrize(
    "text,iccid",
    [("+CCID: 89490200001234567890", "89490200001234567890"),
     ("89314404000012345678F", "89314404000012345678"),  # F-padded 19+1
     # Huawei E173 ^ICCID? / AT+CRSM: EF_ICCID as stored, nibble-swapped
     ("^ICCID: 98941020000021436587", "89490102000012345678"),
     ('+CRSM: 144,0,"98941020000021436587"', "89490102000012345678"),
     ("no iccid here", None)],
)
def test_normalise_iccid(text, iccid):
    assert normalise_iccid(text) == iccid


def test_digits():
    assert parse_digits(["356938035643809"], 14, 17) == "356938035643809"
    assert parse_digits(["+CGSN: 356938035643809"], 14, 17) == "356938035643809"
    assert parse_digits(["IMEI: 356938035643809"], 14, 17) == "356938035643809"
    assert parse_digits(["262011234567890"], 6, 15) == "262011234567890"
    assert parse_digits(["OK"], 6, 15) is None


def test_cpin_cpms_creg_cops():
    assert parse_cpin(["+CPIN: SIM PIN"]) == "SIM PIN"
    status = parse_cpms(['+CPMS: "SM",3,30,"SM",3,30,"ME",0,100'])
    assert (status.read.name, status.read.used, status.read.total) == ("SM", 3, 30)
    assert status.receive.name == "ME" and not status.receive.full
    assert parse_cpms(['+CPMS: "SM",30,30']).read.full
    with pytest.raises(ResponseError):
        parse_cpms(["garbage"])
    assert parse_creg(['+CREG: 2,5,"00C3","A1B2",7'], "+CREG") == 5
    assert parse_creg(["+CREG: 0,2"], "+CREG") == 2
    assert parse_cops(['+COPS: 0,0,"Vodafone.de",7']) == ("Vodafone.de", "E-UTRAN")
    assert parse_cops(["+COPS: 0"]) == (None, None)


def test_csca_and_cnum():
    assert parse_csca(['+CSCA: "+491710760000",145']) == "+491710760000"
    assert parse_csca(['+CSCA: "491710760000",145']) == "+491710760000"
    assert parse_csca(['+CSCA: "002B0034003900310037",145']) == "+4917"  # CSCS=UCS2
    assert parse_csca(['+CSCA: "",129']) is None
    assert parse_cnum(['+CNUM: "","+4917000000001",145']) == "+4917000000001"
    assert parse_cnum(['+CNUM: "Own","4917000000001",145']) == "+4917000000001"


def test_cmgs_and_stored():
    assert parse_cmgs(["+CMGS: 17"]) == 17
    assert parse_cmgs(['+CMGS: 200,"26/11/25,10:00:00+04"']) == 200
    with pytest.raises(ResponseError, match="no message reference"):
        parse_cmgs([])
    pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    listed = parse_stored(["+CMGL: 0,1,,24", pdu, '+CMGL: 4,0,"",24', pdu], "SM", "+CMGL")
    assert [(m.index, m.stat, m.length) for m in listed] == [(0, 1, 24), (4, 0, 24)]
    (read,) = parse_stored(['+CMGR: 0,"",24', pdu], "ME", "+CMGR", 7)
    assert (read.storage, read.index, read.pdu) == ("ME", 7, pdu)
    assert parse_stored(["+CMGR: 0,,0"], "SM", "+CMGR", 1) == []


def test_pdu_length_is_checked_before_it_reaches_the_modem():
    check_pdu_length("0001000B919471000000F10000", 12)
    with pytest.raises(ValueError, match="does not match"):
        check_pdu_length("0001000B919471000000F10000", 13)
    with pytest.raises(ValueError, match="hex"):
        check_pdu_length("0001Z", 2)


def test_ussd_coding():
    # TS 23.038 §6.1.2.3.1: "*100#" packed (Huawei E1550 style)
    assert _pack_ussd("*100#") == "AA180C3602"
    assert _decode_ussd("AA180C3602", 15, True) == "*100#"
    assert _decode_ussd("0042006106420061006E00630065", 72, False) == "Ba\u0642ance"
    assert _decode_ussd("Balance: 1 EUR", 15, False) == "Balance: 1 EUR"


@pytest.mark.parametrize(
    "dcs, alphabet",
    [(0x0F, "gsm7"), (0x00, "gsm7"), (0x10, "gsm7"), (0x11, "ucs2"), (0x2F, "gsm7"), (0x44, "8bit"),
     (0x48, "ucs2"), (0x4C, "gsm7"), (0x98, "ucs2"), (0xF4, "8bit"), (0xF0, "gsm7"), (0x80, "gsm7")],
)
def test_cbs_data_coding_of_ussd_answers(dcs, alphabet):
    """TS 23.038 §5 (CBS data coding scheme, used by USSD): groups 0000-0011 language, 01xx
    general coding, 1001 with a header, 1111 message class; reserved codings are GSM 7-bit."""
    from gsmgw.sms.cbs import cbs_alphabet

    assert cbs_alphabet(dcs) == alphabet


def test_ussd_ucs2_forms():
    text = "Остаток 5 руб"
    assert _decode_ussd(text.encode("utf-16-be").hex(), "72", False) == text
    assert _decode_ussd("6465" + text.encode("utf-16-be").hex(), 0x11, False) == text  # "de" language first
    assert _decode_ussd("0041D8", 72, False) == "0041D8"  # not UCS2 after all: kept as printed


# ---------------------------------------------------------------- dialects seen in the field

PDU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def test_cmgl_with_text_mode_stat_words_in_pdu_mode():
    # Broken firmwares (ZTE MF-series, some Longcheer sticks; smstools3's "check_memory_method"
    # notes) print the text-mode <stat> words even with AT+CMGF=0 (TS 27.005 §3.1 <stat>).
    listed = parse_stored(['+CMGL: 1,"REC READ",,24', PDU, '+CMGL: 2,"REC UNREAD","",24', PDU,
                           '+CMGL: 3,"STO SENT",,24', PDU], "SM", "+CMGL")
    assert [(m.index, m.stat) for m in listed] == [(1, 1), (2, 0), (3, 3)]
    (read,) = parse_stored(['+CMGR: "REC UNREAD",,24', PDU], "SM", "+CMGR", 5)
    assert (read.index, read.stat) == (5, 0)


def test_cmgl_with_an_alpha_that_holds_a_comma():
    (listed,) = parse_stored(['+CMGL: 7,1,"Smith, J",24', PDU], "SM", "+CMGL")
    assert (listed.index, listed.length) == (7, 24)


def test_creg_read_form_with_n_2_and_the_urc_form_answering_a_query():
    assert parse_creg(['+CREG: 2,1,"1A2B","00C3D4E5",7'], "+CREG") == 1
    # A URC (stat first) that arrives while AT+CREG? runs is taken as part of the answer; the
    # read form that follows is the answer.
    assert parse_creg(['+CREG: 5,"1A2B","00C3D4E5",7', '+CREG: 2,1,"1A2B","00C3D4E5",7'], "+CREG") == 1
    # Some firmwares answer the query in the URC form (stat, lac, ci) without <n>.
    assert parse_creg(['+CREG: 5,"0012","00C3D4E5"'], "+CREG") == 5
    assert parse_creg(["+CREG: 1"], "+CREG") == 1


def test_cpms_answers_without_storage_names():
    # Answer of a set command (TS 27.005 §3.2.2: used1,total1,used2,total2,used3,total3) given
    # to the query by some firmwares; the names are the ones we selected.
    status = parse_cpms(["+CPMS: 3,30,3,30,0,100"], ("SM", "SM", "ME"))
    assert (status.read.name, status.read.used, status.read.total) == ("SM", 3, 30)
    assert (status.receive.name, status.receive.total) == ("ME", 100)
    unnamed = parse_cpms(["+CPMS: 3,30,3,30,0,100"])
    assert (unnamed.read.name, unnamed.read.used, unnamed.read.total, unnamed.receive.total) == ("", 3, 30, 100)
    # The full read form: three storages, nine fields.
    status = parse_cpms(['+CPMS: "SM",3,30,"SM",3,30,"SM",3,30'])
    assert status.write.name == "SM" and status.receive.used == 3
    # Unquoted names.
    assert parse_cpms(["+CPMS: ME,1,50,ME,1,50,ME,1,50"]).read == parse_cpms(['+CPMS: "ME",1,50']).read


def test_cnum_in_ucs2_when_cscs_is_ucs2():
    assert parse_cnum(['+CNUM: "","002B0034003900310037",145']) == "+4917"
