"""Binary SMS and user data headers in the codec (TS 23.040 §9.2.3.24): encode, split, refuse, decode.

Named vectors from other projects' test suites:
  MM  ModemManager src/tests/test-sms-part-3gpp.c: test_pdu3_8bit, test_pdu_dcsf_8bit
  GM  gammu tests/at-sms/33.dump, 40.dump (WAP push MMS notifications, ports 2948 <- 9200),
      41.dump (a port-addressed SUBMIT that gammu itself calls corrupted: it is truncated)
libosmocore's tests/sms/sms_test.c carries 7-bit vectors only (in test_sms_vectors.py).
"""

import pytest

from gammu_peer import gammu_decode, needs_gammu
from gsmgw.sms import (
    DecodeError,
    Reassembler,
    TooManyPartsError,
    UserDataError,
    count_data_parts,
    count_parts,
    decode_pdu,
    encode_submit,
    parse_hex,
)
from gsmgw.sms.udh import check_user_header

NUMBER = "+4915112345678"
WAP_UDH = bytes.fromhex("0605040B8423F0")  # UDHL 6, IE 05 (16-bit ports): to 2948 (WAP push), from 9200
# A WAP push Service Indication body (WSP push header + WBXML), as Kannel and smstools3 users send it.
SI_BODY = bytes.fromhex(
    "25060403AE81EA01056A0045C60C03752E736D73702E67722F643565676E6200080103436F6D6520696E746F206F7572"
    "2073746F726520746F20676574206120667265652070697A7A61212121000101"
)

VECTORS = [
    (
        "MM test_pdu3_8bit: DCS 04, 10 octets of data",
        "07912143658709F1040B918100551512F20004111010214365000AE8329BFD4697D9EC37DE",
        dict(number="+18005551212", alphabet="8bit", data="E8329BFD4697D9EC37DE", ports=None, udh="",
             msg_class=None, binary=True),
    ),
    (
        "MM test_pdu_dcsf_8bit: DCS F4 (group 1111, 8-bit, class 0)",
        "07912143658709F1040B918100551512F200F4111010214365000AE8329BFD4697D9EC37DE",
        dict(number="+18005551212", alphabet="8bit", data="E8329BFD4697D9EC37DE", ports=None, udh="",
             msg_class=0, binary=True),
    ),
    (
        "GM at-sms/33: WAP push MMS notification, DCS 06, ports 2948 <- 9200",
        "07913307005630F0440BA13307570230F00006017010900412806A0605040B8423F0040603BEAF848C82983132373739"
        "3730303539008D92891980160433333730373532303033302F545950453D504C4D4E009679424F008A808E0122880481"
        "020BB883687474703A2F2F6D6D73632E6C61626D6374656C2E66723A393039302F6D333300",
        dict(number="33707520030", alphabet="8bit", ports=(2948, 9200, 16), udh="0605040B8423F0",
             data_start="040603BEAF848C8298", data_len=99, msg_class=None, binary=True),
    ),
    (
        "GM at-sms/40: WAP push MMS notification, DCS F5 (8-bit, class 1)",
        "07912374151616F6440B911174164210F000F571309290346280860605040B8423F04F06226170706C69636174696F6E"
        "2F766E642E7761702E6D6D732D6D65737361676500AF848C82983831343630343934406D6D7331008D928918802B3333"
        "3333333439333231312F545950453D504C4D4E0096008F8186818A808E03017A598805810303F48083687474703A2F2F"
        "6D74732F3F69643D383134363034393400",
        dict(number="+11476124010", alphabet="8bit", ports=(2948, 9200, 16), udh="0605040B8423F0",
             data_start="4F0622", data_len=127, msg_class=1, binary=True),
    ),
]


@pytest.mark.parametrize("name, pdu, expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_binary_vectors_from_other_projects(name, pdu, expected):
    sms = decode_pdu(pdu)
    assert sms.number == expected["number"] and sms.alphabet == expected["alphabet"]
    assert sms.msg_class == expected["msg_class"]
    assert sms.is_binary is expected["binary"]
    assert sms.user_udh.hex().upper() == expected["udh"]
    assert (None if sms.ports is None else (sms.ports.destination, sms.ports.origin, sms.ports.bits)) == expected["ports"]
    assert sms.text == sms.data.hex().upper()
    if "data" in expected:
        assert sms.data.hex().upper() == expected["data"]
    else:
        assert sms.data.hex().upper().startswith(expected["data_start"]) and len(sms.data) == expected["data_len"]


@needs_gammu
def test_gammu_reads_the_vectors_the_same_way():
    answers = gammu_decode([pdu for _, pdu, _ in VECTORS])
    for (name, pdu, _), answer in zip(VECTORS, answers):
        sms = decode_pdu(pdu)
        assert answer["coding"] == "8bit", name
        assert answer["udh"] == sms.user_udh.hex().upper(), name
        assert answer["text"] == sms.data.hex().upper(), name


def test_gammus_truncated_port_addressed_submit_is_refused_naming_the_field():
    """GM at-sms/41: TP-UDL promises 93 septets (82 octets), 79 follow; gammu says ERR_CORRUPTED."""
    pdu = (
        "0041000b817777777777f700005d060504157800004de1135b851283d4e2afdd8bd576f3b2dc5e96f7dc617a788e2ebb"
        "d761173c2ca7e777f0b79cdecbe5663bf8bdc74e57cdcfbcf5b97387dbe59e1be00ed3c37374d9bd0ebbe06139"
    )
    with pytest.raises(DecodeError, match=r"TP-UDL says 93 septets \(82 octets\).*only 79"):
        decode_pdu(pdu)


def test_a_port_addressed_text_is_binary_and_keeps_its_text():
    parts = encode_submit(NUMBER, "vcard follows", udh=bytes.fromhex("0605040B8423F0"))
    sms = decode_pdu(parts[0].pdu)
    assert (sms.text, sms.alphabet, sms.is_binary, sms.ports.destination) == ("vcard follows", "gsm7", True, 2948)


def test_a_wap_push_fits_one_sms_with_its_header():
    (part,) = encode_submit(NUMBER, data=SI_BODY, udh=WAP_UDH)
    assert part.alphabet == "8bit" and part.udh == WAP_UDH and part.text == SI_BODY.hex().upper()
    assert part.tpdu[-len(SI_BODY) - len(WAP_UDH) - 1 :] == bytes((len(WAP_UDH) + len(SI_BODY),)) + WAP_UDH + SI_BODY
    sms = decode_pdu(part.pdu)
    assert (sms.data, sms.user_udh, sms.concat, sms.dcs) == (SI_BODY, WAP_UDH, None, 0x04)


def test_long_binary_data_is_split_with_concatenation_merged_into_the_senders_header():
    data = bytes(range(256)) * 2  # 512 octets
    parts = encode_submit(NUMBER, data=data, udh=WAP_UDH, ref=0x42)
    # 140 - (UDHL 1 + ports 6 + concatenation 5) = 128 octets per part
    assert [len(bytes.fromhex(p.text)) for p in parts] == [128, 128, 128, 128]
    for seq, part in enumerate(parts, start=1):
        assert part.udh == bytes.fromhex(f"0B05040B8423F0000342040{seq}")
        assert len(part.tpdu) - part.tpdu.index(part.udh) <= 140  # the user data: header + data
    decoded = [decode_pdu(p.pdu) for p in parts]
    assert all(s.user_udh == WAP_UDH and s.ports.destination == 2948 for s in decoded)
    reassembler = Reassembler()
    message = None
    for sms in reversed(decoded):
        message = reassembler.add(sms, received_at=0.0) or message
    assert message is not None and message.data == data and message.user_udh == WAP_UDH and message.is_binary
    assert count_data_parts(data, udh=WAP_UDH).parts == 4
    assert encode_submit(NUMBER, data=data[:133], udh=WAP_UDH)[0].total == 1  # 140 - 7
    assert encode_submit(NUMBER, data=data[:134], udh=WAP_UDH)[0].total == 2


def test_sixteen_bit_references_leave_one_octet_less():
    parts = encode_submit(NUMBER, data=bytes(300), ref=0x1234, ref16=True)
    assert [len(bytes.fromhex(p.text)) for p in parts] == [133, 133, 34]  # 140 - (1 + 6)


def test_more_than_255_parts_is_refused():
    with pytest.raises(TooManyPartsError, match="the data needs 257 SMS parts but at most 255"):
        encode_submit(NUMBER, data=bytes(134 * 256 + 1))
    with pytest.raises(TooManyPartsError, match="shorten the data or raise Max_parts"):
        encode_submit(NUMBER, data=bytes(300), max_parts=2)


@pytest.mark.parametrize(
    "hex_text, problem, words",
    [
        ("0605040B8423F", "odd_hex", "odd number of hex digits (13); write two digits per octet"),
        ("06 05 04 0B 84 23 FG", "not_hex", "'G' at digit 14; write two hex digits per octet"),
    ],
)
def test_bad_hex_says_what_to_write(hex_text, problem, words):
    with pytest.raises(UserDataError) as caught:
        parse_hex(hex_text, what="UDH-DATA")
    assert caught.value.problem == problem and words in str(caught.value) and str(caught.value).startswith("UDH-DATA")


@pytest.mark.parametrize(
    "udh, problem, words",
    [
        ("0705040B8423F0", "udh_length", "says 7 octets (07) but 6 follow; write 06 as its first octet"),
        ("0605050B8423F0", "udh_length", "element 05 says 5 octets but only 4 follow"),
        ("050003420201", "udh_concat", "claims concatenation itself (IE 00); leave that element out"),
        ("0605040B8423F0", None, None),
        ("0C080412340201" + "05040B8423F0", "udh_concat", "IE 08"),
        ("03250106", "udh_national", "national_languages"),
        ("00", "udh_length", "no information elements"),
    ],
)
def test_a_bad_user_header_is_refused_with_what_to_write(udh, problem, words):
    if problem is None:
        assert check_user_header(bytes.fromhex(udh)) == bytes.fromhex(udh)[1:]
        return
    with pytest.raises(UserDataError) as caught:
        encode_submit(NUMBER, data=b"\x01", udh=bytes.fromhex(udh))
    assert caught.value.problem == problem and words in str(caught.value)


def test_a_header_that_leaves_no_room_is_refused():
    huge = bytes((139, 0x70, 137)) + bytes(137)  # UDHL 139: the header alone is 140 octets
    with pytest.raises(UserDataError, match="leaves no room for data"):
        encode_submit(NUMBER, data=b"\x01", udh=huge)


def test_text_and_data_exclude_each_other():
    with pytest.raises(ValueError, match="either text or data"):
        encode_submit(NUMBER, "text", data=b"\x01")


def test_message_class_and_flash_set_the_dcs():
    assert decode_pdu(encode_submit(NUMBER, data=b"\x01", message_class=1)[0].pdu).dcs == 0x15
    assert decode_pdu(encode_submit(NUMBER, data=b"\x01", flash=True)[0].pdu).dcs == 0x14
    assert decode_pdu(encode_submit(NUMBER, "hi", message_class=2)[0].pdu).dcs == 0x12


def test_a_text_with_a_senders_header_counts_its_octets():
    """A 7-octet header costs 8 septets (56 bits) of the 160: 152 characters in one SMS."""
    assert count_parts("x" * 152, udh=WAP_UDH).parts == 1
    assert count_parts("x" * 153, udh=WAP_UDH).parts == 2
    assert len(encode_submit(NUMBER, "x" * 153, udh=WAP_UDH)) == 2


@needs_gammu
def test_gammu_reads_binary_messages_gsmgw_sends():
    single = encode_submit(NUMBER, data=SI_BODY, udh=WAP_UDH, message_class=1)
    long = encode_submit(NUMBER, data=bytes(range(200)), udh=WAP_UDH, ref=9)
    answers = gammu_decode([p.pdu for p in single + long])
    for part, answer in zip(single + long, answers):
        assert (answer["type"], answer["number"], answer["coding"]) == ("Submit", NUMBER, "8bit")
        assert answer["udh"] == part.udh.hex().upper()
        assert answer["text"] == part.text
    assert answers[0]["class"] == 1
