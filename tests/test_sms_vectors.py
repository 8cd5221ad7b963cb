"""Named PDU vectors: decode, encode and round trip, with their sources.

Sources (each vector names one):
  OSMO libosmocore tests/sms/sms_test.c (septet packing, concatenated user data)
  DF   dreamfabric SMS PDU tutorial, http://www.dreamfabric.com/sms/ ("hellohello")
  MM   ModemManager src/tests/test-sms-part-3gpp.c (real network PDUs: T-Mobile US,
       Beeline RU "InternetSMS", SFR FR, KPN NL, a ZTE-stored SUBMIT, a status report)
  GM   python-gsmmodem test/test_pdu.py (Vodacom ZA, Diafaan, a ZTE status report)
  SPEC hand-built from 3GPP TS 23.040 / TS 23.038; the comment shows the layout
"""

from datetime import datetime, timedelta, timezone

import pytest

from gsmgw.sms import DecodeError, decode_pdu, encode_deliver, encode_status_report, encode_submit
from gsmgw.sms.pdu import decode_dcs


def tz(hours: float) -> timezone:
    return timezone(timedelta(minutes=round(hours * 60)))


# (name, hex, expected fields). Only the named fields are checked.
DECODE_VECTORS = [
    (
        "DF hellohello deliver, subscriber TOA C8, 1999",
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        dict(type="deliver", smsc="+27381000015", number="27838890001", text="hellohello",
             timestamp=datetime(1999, 3, 29, 15, 16, 59, tzinfo=tz(2))),
    ),
    (
        "MM pdu1 T-Mobile US: extension chars, £ ΩΠΨ §¿, TZ -05:00 (octet 0A)",
        "07912104442961F4040B916171957291F800001120821105050A"
        "6AC8B2BC7C9A83C220F6DB7D2ECB41EDF27C1E3E97411BDE06754FD3D1A0F9BB5D0695F1F4B29B5C2683C6E8B03C3CA6"
        "97E5F34D6AE303D1D1F2F7DD0D4ABB59A0797D8C0685E7A00028EC26832A960B28EC2683BE6050780EBA97D96C17",
        dict(type="deliver", smsc="+12404492164", number="+16175927198",
             timestamp=datetime(2011, 2, 28, 11, 50, 50, tzinfo=tz(-5)),
             text="Here's a longer message [{with some extended characters}] "
                  "thrown in, such as £ and ΩΠΨ and §¿ as well."),
    ),
    (
        "MM pdu2 Beeline: alphanumeric sender InternetSMS, UCS-2",
        "07919730071111F10414D04937BD2C7797E9D3E6140008113092910240610804420435044104 42",
        dict(number="InternetSMS", number_toa=0xD0, text="тест", alphabet="ucs2",
             timestamp=datetime(2011, 3, 29, 19, 20, 4, tzinfo=tz(4))),
    ),
    (
        "MM pdu3 8-bit data (DCS 04): text is the hex",
        "07912143658709F1040B918100551512F20004111010214365000AE8329BFD4697D9EC37DE",
        dict(alphabet="8bit", text="E8329BFD4697D9EC37DE", data=bytes.fromhex("E8329BFD4697D9EC37DE")),
    ),
    (
        "MM pdu3 national TOA 81: no plus",
        "07912143658709F1040B818100551512F20000111010214365000AE8329BFD4697D9EC37",
        dict(number="18005551212", text="hellohello"),
    ),
    (
        "MM pdu3 non-zero PID FF",
        "07912143658709F1040B918100551512F2FF00111010214365000AE8329BFD4697D9EC37",
        dict(pid=0xFF, text="hellohello"),
    ),
    (
        "MM dcsf1 SFR: DCS F1 (GSM-7, class 1), 160 septets",
        "07913306091093F00404858100" "00F1" "11604231805180" "A0"
        "49B7F90D9A1AA5A01668F8769BD3E4B29B9E2EB359A03FC85D06A9C3ED707A0EA2CBC3EE79BB4CA7CBCBA05643617DA7"
        "C76990FD4D979741EE77DD5E0ED741ED371D442E83E0E1F9BC0CD281E677D9B84C06C1DF7539E85C9097E520FB9B2E2F"
        "83C6EF369C5E064D8D52D0BC2E07DDEF77D7DC2C7799E5A0771D040FCB41F402BB0047BFDD6550B80ECAD966",
        dict(number="1800", msg_class=1, alphabet="gsm7",
             timestamp=datetime(2011, 6, 24, 13, 8, 15, tzinfo=tz(2)),
             text="Info SFR - Confidentiel, à ne jamais transmettre -\r\n"
                  "Voici votre nouveau mot de passe : sw2ced pour gérer "
                  "votre compte SFR sur www.sfr.fr ou par téléphone au 963"),
    ),
    (
        "MM dcsf 8-bit: DCS F4",
        "07912143658709F1040B918100551512F200F4111010214365000AE8329BFD4697D9EC37DE",
        dict(alphabet="8bit", msg_class=0, text="E8329BFD4697D9EC37DE"),
    ),
    (
        "MM udhi KPN NL welcome: 8-bit concat ref 16 part 1/2, fill bit after UDH",
        "07911356131313F64004850120390011609232239180A006080400100201D7327BFD6EB340E232"
        "1BF46E83EA7790F59D1E97DBE1341B442F83C465763D3DA797E56537C81D0ECB41AB59CC1693C1"
        "6031D96C064241E5656838AF03A96230982A269BCD462917C8FA4E8FCBED709A0D7ABBE9F6B0FB"
        "5C7683D27350984D4FABC9A0B33C4C4FCF5D20EBFB2D079DCB62793DBD06D9C36E50FB2D4E97D9"
        "A0B49B5E96BBCB",
        dict(number="1002", concat=(16, 2, 1, 16),
             text="Welkom, bel om uw Voicemail te beluisteren naar +31612001233"
                  " (PrePay: *100*1233#). Voicemail ontvangen is altijd gratis."
                  " Voor gebruik van mobiel interne"),
    ),
    (
        "MM multipart 1/2 T-Mobile US, 8-bit ref 0x4C",
        "07912160130320F5440B916171056429F5000021405291650569A00500034C0201A9E8F41C949E"
        "83C2207B599E07B1DFEE33885E9ED341E4F23C7D7697C920FA1B54C697E5E3F4BC0C6AD7D9F434"
        "081E96D341E3303C2C4EB3D3F4BC0B94A483E6E8779D4D06CDD1EF3BA80E0785E7A0B7BB0C6A97"
        "E7F3F0B9CC02B9DF7450780EA2DFDF2C50780EA2A3CBA0BA9B5C96B3F369F71954768FDFE4B4FB"
        "0C9297E1F2F2BCECA6CF41",
        dict(concat=(0x4C, 2, 1, 8), timestamp=datetime(2012, 4, 25, 19, 56, 50, tzinfo=tz(-4)),
             text="This is a very long test designed to exercise multi part capability. It should "
                  "show up as one message, not as two, as the underlying encoding represents "),
    ),
    (
        "MM multipart 2/2",
        "07912160130320F6440B916171056429F5000021405291651569320500034C0202E9E8301D4447"
        "9741F0B09C3E0785E56590BCCC0ED3CB6410FD0D7ABBCBA0B0FB4D4797E52E10",
        dict(concat=(0x4C, 2, 2, 8), smsc="+12063130026", text="that the parts are related to one another. "),
    ),
    (
        "MM stored-by-us: SMS-SUBMIT, UCS-2, TOA 81, SRR",
        "002100098136397339F70008224F60597D4F60597D4F60597D4F60597D4F60597D4F60597D4F60597D4F60597D4F60",
        dict(type="submit", smsc=None, number="639337937", text="你好你好你好你好你好你好你好你好你",
             report_requested=True, mr=0),
    ),
    (
        "MM not-stored: SMS-STATUS-REPORT, TP-ST 0x30 (SC-specific, still trying)",
        "07914356060013F1065A098136397339F7219011700463802190117004638030",
        dict(type="status-report", smsc="+34656000311", number="639337937", mr=0x5A, status=0x30,
             timestamp=datetime(2012, 9, 11, 7, 40, 36, tzinfo=tz(2)),
             discharge=datetime(2012, 9, 11, 7, 40, 36, tzinfo=tz(2)), text=None, alphabet=None),
    ),
    (
        "GM Vodacom ZA Test2",
        "06917228195339040B917228214365F700003130805120618005D4F29C2E03",
        dict(smsc="+2782913593", number="+27821234567", text="Test2",
             timestamp=datetime(2013, 3, 8, 15, 2, 16, tzinfo=tz(2))),
    ),
    (
        "GM HK +08:00",
        "07915892000000F0040B915892214365F700007040213252242331493A283D0795C3F33C88FE06C9CB6132885EC6D341"
        "EDF27C1E3E97E7207B3A0C0A5241E377BB1D7693E72E",
        dict(timestamp=datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8)),
             text="It is easy to read text messages via AT commands."),
    ),
    (
        "GM '@' first and escapes",
        "06917228195339040B917228214365F70000313062315352800A800D8A5E98D337A910",
        dict(text="@{tést}!"),
    ),
    (
        "GM Diafaan SUBMIT with relative validity A9 (3 days) and SRR",
        "07911326040000F0310D0B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701",
        dict(type="submit", smsc="+31624000000", number="+31628870634", validity=0xA9, mr=13,
             report_requested=True, text="www.diafaan.com"),
    ),
    (
        "GM Diafaan status report, MR 214",
        "0006D60B911326880736F4111011719551401110117195714000",
        dict(type="status-report", number="+31628870634", mr=214, status=0,
             timestamp=datetime(2011, 1, 11, 17, 59, 15, tzinfo=tz(1)),
             discharge=datetime(2011, 1, 11, 17, 59, 17, tzinfo=tz(1))),
    ),
    (
        "GM airtime ZA: concat IE with total 1",
        "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB06"
        "0319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B"
        "068BCD5C20",
        dict(number="2781188", smsc="+2781191", concat=(0xC3, 1, 1, 8),
             text="Hello!You have R 19.50 FREE airtime available. R 19.50 will expire on 01/07/2013. "),
    ),
    (
        "GM SUBMIT UCS-2 Japanese",
        "07914346466554F601000B914316565811F9000806304253F68449",
        dict(type="submit", number="+34616585119", smsc="+34646456456", text="あ叶葉"),
    ),
    (
        "GM SUBMIT absolute validity (VPF 11)",
        "0019000B917228001011F100003170013193008017D474BB3CA787DB70903DCC4E93D3F43C885E9ED301",
        dict(text="Timestamp validity test", validity=datetime(2013, 7, 10, 13, 39, tzinfo=tz(2))),
    ),
    (
        "GM ZTE status report with a '#' digit in TP-RA",
        "0297F1061C0F910B487228297020F5317062419272803170624192138000",
        dict(type="status-report", mr=28, number="+#08427829207025",
             timestamp=datetime(2013, 7, 26, 14, 29, 27, tzinfo=tz(2))),
    ),
    (
        "SPEC status report with TP-PI 07: PID 00, DCS 08, UDL 04 'ok' in UCS-2 (TS 23.040 §9.2.2.3)",
        # SMSC 00 | 06 | MR 07 | RA +49179081655 | SCTS | DT | ST 00 | PI 07 | PID 00 | DCS 08 | UDL 04 | UD
        "0006070B919471091856F5" "62114201513000" "62114201519000" "00" "07" "00" "08" "04" "006F006B",
        dict(type="status-report", mr=7, number="+49179081655", status=0, pid=0, dcs=8,
             alphabet="ucs2", text="ok"),
    ),
    (
        "SPEC status report with TP-PI 00 (nothing follows it)",
        "0006070B919471091856F5" "62114201513000" "62114201519000" "40" "00",
        dict(type="status-report", status=0x40, text=None),
    ),
    (
        "SPEC status report TP-PI 04 without DCS: default alphabet (§9.2.3.27)",
        "0006070B919471091856F5" "62114201513000" "62114201519000" "00" "04" "02" "C834",
        dict(type="status-report", alphabet="gsm7", text="Hi"),
    ),
    (
        "SPEC 16-bit concat ref 0x1234, part 2/3: IEI 08, 7 header octets = 56 bits = 8 septets, no fill bit",
        # UDL 0A = 8 header septets + 2 text septets; text "Hi" C8 34 packed after 0 fill bits.
        "0044" "0B919471091856F5" "0000" "62114201513000" "0A" "06080412340302" "C834",
        dict(concat=(0x1234, 3, 2, 16), text="Hi"),
    ),
    (
        "SPEC ports IE 05 (WAP push 2948 <- 9200), 8-bit",
        "0044" "0B919471091856F5" "0004" "62114201513000" "09" "060504" "0B84" "23F0" "C834",
        dict(ports=(2948, 9200, 16), alphabet="8bit", text="C834"),
    ),
    (
        "SPEC TZ quarter hours: +05:45 (Nepal, 23 quarters = octet 32)",
        "0004" "0B919471091856F5" "0000" "62114201513032" "01" "41",
        dict(text="A", timestamp=datetime(2026, 11, 24, 10, 15, 3, tzinfo=tz(5.75))),
    ),
    (
        "SPEC TZ negative quarter hours: -03:30 (Newfoundland, 14 quarters = octet 49)",
        "0004" "0B919471091856F5" "0000" "62114201513049" "01" "41",
        dict(timestamp=datetime(2026, 11, 24, 10, 15, 3, tzinfo=tz(-3.5))),
    ),
    (
        "SPEC trailing '@' survives: 8 septets 'abcdefg@' fill 7 octets exactly",
        "0004" "0B919471091856F5" "0000" "62114201513000" "08" "61F1985C369F01",
        dict(text="abcdefg@"),
    ),
    (
        "SPEC CR padding is not text: 7 septets 'abcdefg' + CR in the spare bits (TS 23.038 §6.1.2.3.1)",
        "0004" "0B919471091856F5" "0000" "62114201513000" "07" "61F1985C369F1B",
        dict(text="abcdefg"),
    ),
    (
        "SPEC '§' at 0x5F and '@' at 0x00, escaped form feed",
        "0004" "0B919471091856F5" "0000" "62114201513000" "04" "5FC04601",
        dict(text="§@\f"),
    ),
    (
        "SPEC unknown escape 1B 41 shows the basic 'A' (TS 23.038 §6.2.1.1)",
        "0004" "0B919471091856F5" "0000" "62114201513000" "02" "9B20",
        dict(text="A"),
    ),
    (
        "SPEC UCS-2 emoji via surrogate pair",
        "0004" "0B919471091856F5" "0008" "62114201513000" "04" "D83DDE00",
        dict(text="😀", alphabet="ucs2"),
    ),
    (
        "SPEC UCS-2 lone high surrogate from a broken sender -> U+FFFD",
        "0004" "0B919471091856F5" "0008" "62114201513000" "04" "D83D0041",
        dict(text="\ufffdA"),
    ),
    (
        "SPEC class 0 flash (DCS 10)",
        "0004" "0B919471091856F5" "0010" "62114201513000" "01" "41",
        dict(msg_class=0, text="A"),
    ),
    (
        "SPEC DCS 48 (automatic deletion group, UCS-2)",
        "0004" "0B919471091856F5" "0048" "62114201513000" "02" "00E9",
        dict(alphabet="ucs2", text="é", msg_class=None),
    ),
    (
        "SPEC reserved DCS 80 decodes as GSM-7 (TS 23.038 §4)",
        "0004" "0B919471091856F5" "0080" "62114201513000" "01" "41",
        dict(alphabet="gsm7", text="A"),
    ),
    (
        "SPEC DCS E0: MWI store, UCS-2",
        "0004" "0B919471091856F5" "00E0" "62114201513000" "02" "00E9",
        dict(alphabet="ucs2", text="é", waiting=(True, False, 0)),
    ),
    (
        "SPEC compressed flag (DCS 20) -> raw 8-bit hex, marked compressed",
        "0004" "0B919471091856F5" "0020" "62114201513000" "02" "ABCD",
        dict(alphabet="8bit", text="ABCD", compressed=True),
    ),
    (
        "SPEC alphanumeric sender with '@' and extension: 'a[]{}€' (GM address vector)",
        "0004" "14D0E10D6FE3DBA036A94D19" "0000" "62114201513000" "01" "41",
        dict(number="a[]{}€", number_toa=0xD0),
    ),
    (
        "SPEC Turkish locking + single shift (IEs 25 01, 24 01; TS 23.038 A.3.1/A.2.1): 'Şİış'",
        # 7 header octets = 8 septets; then 1C (Ş) 40 (İ) 07 (ı) 1B 73 (ş) packed.
        "0044" "0B919471091856F5" "0000" "62114201513000" "0D" "06250101240101" "1CE0613307",
        dict(text="Şİış", national=(1, 1)),
    ),
    (
        "SPEC Spanish single shift (IE 24 02, TS 23.038 A.2.2): ESC 61 is 'á', 3 fill bits",
        "0044" "0B919471091856F5" "0000" "62114201513000" "07" "03240102" "D88401",
        dict(text="á", national=(0, 2)),
    ),
    (
        "SPEC an unknown national language (IE 25 0E) reads with the default tables",
        "0044" "0B919471091856F5" "0000" "62114201513000" "06" "0325010E" "0802",
        dict(national=(14, 0), text="A"),
    ),
    # A status report's mandatory fields are whole before TP-PI; what follows TP-ST and does
    # not read as TP-PI + parameters is kept as trailing octets, never a lost report.
    (
        "SPEC status report whose TP-PI announces a TP-UDL that is missing",
        "0006070B919471091856F5621142015130006211420151900000" "04",
        dict(type="status-report", mr=7, status=0, trailing=1, text=None),
    ),
    (
        "SPEC status report padded with FF after TP-ST (a SIM record read whole)",
        "0006070B919471091856F5621142015130006211420151900000" "FFFFFF",
        dict(type="status-report", mr=7, status=0, trailing=3, pid=None),
    ),
    (
        "SPEC status report with TP-PI 01 and no TP-PID",
        "0006070B919471091856F5621142015130006211420151900046" "01",
        dict(type="status-report", status=0x46, trailing=1),
    ),
    (
        "SPEC status report with TP-PI 07: TP-PID 00, TP-DCS 00, TP-UDL 05 'Hello'",
        "0006070B919471091856F5621142015130006211420151900000" "07" "0000" "05C8329BFD06",
        dict(type="status-report", status=0, pid=0, dcs=0, text="Hello", trailing=0),
    ),
    (
        "SPEC status report with TP-PI 00 only",
        "0006070B919471091856F5621142015130006211420151900000" "00",
        dict(type="status-report", status=0, trailing=0, pid=None, dcs=None),
    ),
    (
        # UDH 04 01 02 80 03: IE 01 (TS 23.040 §9.2.3.24.2), store + voice, 3 waiting; 5 header
        # octets = 40 bits + 2 fill bits = 6 septets, then "VM" (56 4D): UDL 8, UD ...589B.
        "SPEC voicemail waiting by UDH IE 01 (store, 3 messages), GSM-7 'VM'",
        "0044" "0B919471091856F5" "0000" "62114201513000" "08" "0401028003" "589B",
        dict(waiting=(True, True, 0), text="VM", udh=((1, bytes([0x80, 0x03])),)),
    ),
    (
        "SPEC voicemail cleared by UDH IE 01 count 0 (discard), 8-bit empty text",
        "0044" "0B919471091856F5" "0004" "62114201513000" "05" "0401020000",
        dict(waiting=(False, False, 0), text=""),
    ),
    (
        "SPEC DCS C8: MWI discard group, voicemail active, UDL 0",
        "0004" "0B919471091856F5" "00C8" "62114201513000" "00",
        dict(waiting=(False, True, 0), text="", alphabet="gsm7"),
    ),
    (
        "SPEC DCS E9: MWI store group in UCS-2, fax active, 'AB'",
        "0004" "0B919471091856F5" "00E9" "62114201513000" "0400410042",
        dict(waiting=(True, True, 1), text="AB", alphabet="ucs2"),
    ),
    (
        "SPEC 8-bit with two IEs: concat 8-bit ref 2A 2/1 and ports 2948 -> 9200 (WAP push)",
        "0044" "0B919471091856F5" "0004" "62114201513000" "0E" "0B0003" "2A0201" "05040B8423F0" "4142",
        dict(concat=(0x2A, 2, 1, 8), ports=(2948, 9200, 16), text="4142"),
    ),
    (
        "SPEC SMSC field of 8 octets (TOA 91 + 14 digits) before the TPDU",
        "08" "91" "94710600403400" "04" "0B919471091856F5" "0000" "62114201513000" "0141",
        dict(smsc="+49176000044300", text="A"),
    ),
    (
        # 7 characters = 49 bits: TS 23.040 §9.1.2.5 wants 13 useful semi-octets (0D); SMSCs
        # that count 2 x 7 octets (0E) leave 7 fill bits that would read as a stray '@'.
        "SPEC alphanumeric sender 'Telekom' with length 0D (useful semi-octets)",
        "0004" "0DD0" "D432BBBC7EB701" "0000" "62114201513000" "0141",
        dict(number="Telekom", number_toa=0xD0),
    ),
    (
        "SPEC alphanumeric sender 'Telekom' with length 0E (every semi-octet counted)",
        "0004" "0ED0" "D432BBBC7EB701" "0000" "62114201513000" "0141",
        dict(number="Telekom", number_toa=0xD0),
    ),
    (
        "SPEC empty SMS (UDL 0) in GSM-7, class 0 (DCS 10), SMSC field 07",
        "07919471060040F0" "04" "0B919471091856F5" "0010" "62114201513000" "00",
        dict(text="", alphabet="gsm7", msg_class=0, data=b"", smsc="+49176000040"),
    ),
    (
        "SPEC empty SMS (UDL 0) in UCS-2, class 3 (DCS 1B)",
        "00" "04" "0B919471091856F5" "001B" "62114201513000" "00",
        dict(text="", alphabet="ucs2", msg_class=3, smsc=None),
    ),
    (
        "SPEC empty SMS (UDL 0) in 8-bit, class 2 (DCS F6)",
        "00" "04" "0B919471091856F5" "00F6" "62114201513000" "00",
        dict(text="", alphabet="8bit", msg_class=2),
    ),
    (
        # Modems that print +CDS without the SMSC field (TS 27.005 §3.4.1 puts it first): read
        # with an SMSC field, 06 would be its length and the TP-RA would claim 86 digits.
        "SPEC status report printed without the SMSC field",
        "06070B919471091856F56211420151300062114201519000" "00",
        dict(type="status-report", smsc=None, mr=7, number="+49179081655", status=0, trailing=0),
    ),
    (
        "SPEC SMS-DELIVER printed without the SMSC field",
        "040B919471091856F50000621142015130000141",
        dict(type="deliver", smsc=None, number="+49179081655", text="A"),
    ),
    (
        "SPEC lowercase hex with spaces and newline, as a terminal copy gives it",
        "00 04 0b 91 94 71 09 18 56 f5 00 00 62 11 42 01 51 30 00 01 41\n",
        dict(text="A", number="+49179081655"),
    ),
]


def _fields(sms):
    return {
        **sms.__dict__,
        "concat": (sms.concat.ref, sms.concat.total, sms.concat.seq, sms.concat.bits) if sms.concat else None,
        "ports": (sms.ports.destination, sms.ports.origin, sms.ports.bits) if sms.ports else None,
    }


@pytest.mark.parametrize("name, pdu, expected", DECODE_VECTORS, ids=[v[0] for v in DECODE_VECTORS])
def test_decode_vector(name, pdu, expected):
    got = _fields(decode_pdu(pdu))
    for key, value in expected.items():
        assert got[key] == value, f"{key}: {got[key]!r} != {value!r}"


def test_timestamps_keep_their_offset_exactly():
    sms = decode_pdu("0004" "0B919471091856F5" "0000" "6211420151307A" "01" "41")
    assert sms.timestamp.utcoffset() == -timedelta(hours=6, minutes=45)
    assert sms.to_json()["timestamp"] == "2026-11-24T10:15:03-06:45"


# Encoder vectors: (name, kwargs for encode_submit, expected hex of the first part)
SUBMIT_VECTORS = [
    ("DF hellohello submit, VP AA (4 days)",
     dict(to="+46708251358", text="hellohello", validity=0xAA),
     "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"),
    ("GM Hello World! no validity",
     dict(to="+27820001111", text="Hello World!"),
     "0001000B917228001011F100000CC8329BFD065DDF72363904"),
    ("GM UCS-2 with SMSC +44000000000, VP F4 (52 weeks)",
     dict(to="+123456789", text="世界您好！", validity=0xF4, smsc="+44000000000"),
     "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01"),
    ("MM UCS-2 with SMSC, VP 0 (5 minutes)",
     dict(to="+15555551234", text="Да здравствует король, детка!", validity=0, smsc="+19037029920"),
     "07919130079229F011000B915155551532F40008003A041404300020043704340440043004320441044204320443043504420020043A043E0440043E043B044C002C0020043404350442043A04300021"),
    ("MM GSM-7 with SMSC, Δ and a 54-septet text",
     dict(to="+15555551234", text="Hi there...Tue 17th Jan 2012 05:30.18 pm (GMT+1) ΔΔΔΔΔ",
          validity=0, smsc="+19037029920"),
     "07919130079229F011000B915155551532F400000036C834888E2ECBCB2E978B5A2F8362373A1AA40CBB4132584C0682D57433982B8603C1DB20D4B1495DC552200804028100"),
    ("MM GSM-3: 25 septets, the last one alone in its octet",
     dict(to="+15556661234", text="This is really cool ΔΔΔΔΔ", validity=0),
     "0011000B915155661632F40000001954747A0E4ACF41F27298CDCE83C6EF371B0481402010"),
    ("MM GSM no validity",
     dict(to="+15556661234", text="This is really cool ΔΔΔΔΔ"),
     "0001000B915155661632F400001954747A0E4ACF41F27298CDCE83C6EF371B0481402010"),
    ("SPEC report + flash + TP-MR 0x2A: first octet 31, DCS 10",
     dict(to="+4915112345678", text="A", report=True, flash=True, validity=167, mr=0x2A),
     "00312A0D91945111325476F80010A70141"),
    ("SPEC short code TOA 81",
     dict(to="22222", text="A"),
     "00010005812222F200000141"),
    ("SPEC alphanumeric destination TOA D0 ('abc')",
     dict(to="abc", text="A"),
     "00010006D061F11800000141"),
]


@pytest.mark.parametrize("name, kwargs, expected", SUBMIT_VECTORS, ids=[v[0] for v in SUBMIT_VECTORS])
def test_submit_vector(name, kwargs, expected):
    parts = encode_submit(**kwargs)
    assert parts[0].pdu == expected
    smsc_octets = int(expected[:2], 16) + 1
    assert parts[0].length == len(expected) // 2 - smsc_octets
    assert decode_pdu(parts[0].pdu).text == kwargs["text"]


def test_gm_concatenated_lorem_ipsum_matches_byte_for_byte_except_rd():
    # GM test_encodeSmsSubmit_concatenated: 3 parts, ref 0, with TP-RD (0x45); gsmgw never sets TP-RD.
    text = (
        "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt ut labore "
        "et dolore magna aliqua.Ut enim ad minim veniam, quinostrud exercitation ullamco laboris nisi ut aliquip "
        "ex ea commodo consequat.Duis aute irure dolor in reprehenderit in voluptate velit esse cillum doloe eu "
        "fugiat nulla pariatur.Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia "
        "deserunt mollit anim id est laborum"
    )
    expected_starts = [
        "0045000B915121551532F40000A0050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB7416",
        "0045000B915121551532F40000A0050003000302DE73BABC4E0695F165F9384D0FD3D36F37A8CE6687DBE337",
        "0045000B915121551532F400008C050003000303EA2073FD9C0ED341EE3A9B1D06C1C3F274985E97BB8AF871",
    ]
    parts = encode_submit("+15125551234", text, ref=0)
    assert [p.pdu[: len(e)] for p, e in zip(parts, expected_starts)] == [
        e.replace("0045", "0041", 1) for e in expected_starts
    ]
    assert len(parts) == 3
    assert [p.length for p in parts] == [len(p.pdu) // 2 - 1 for p in parts]


def test_concat_ie_bytes_8_and_16_bit_and_fill_bits():
    # 8-bit: UDHL 05, IE 00 03 ref total seq; 6 header octets = 48 bits -> 1 fill bit, 153 septets.
    parts = encode_submit("+4915112345678", "a" * 161, ref=0x17)
    # 'a' = 0x61 shifted left by the one fill bit: C2. Without a fill bit (16-bit case) E1.
    assert parts[0].tpdu.hex().upper().startswith("41000D91945111325476F80000A0050003170201C2")
    assert [decode_pdu(p.pdu).text for p in parts] == ["a" * 153, "a" * 8]
    # 16-bit: UDHL 06, IE 08 04 ref_hi ref_lo total seq; 7 octets = 56 bits = 8 septets, 0 fill bits.
    parts = encode_submit("+4915112345678", "a" * 161, ref=0x0180, ref16=True)
    assert parts[0].tpdu.hex().upper().startswith("41000D91945111325476F80000A006080401800201E1")
    assert [len(decode_pdu(p.pdu).text) for p in parts] == [152, 9]


def test_encode_deliver_and_status_report_bytes():
    moment = datetime(2026, 11, 24, 10, 15, 3, tzinfo=tz(1))
    (pdu,) = encode_deliver("+4915112345678", "A", timestamp=moment, smsc="+491710760000")
    assert pdu == "0791947101670000" "04" "0D91945111325476F8" "0000" "62114201513040" "0141"
    report = encode_status_report(mr=0xD6, recipient="+31628870634", scts=moment, discharge=moment, status=0x46)
    assert report == "0006D60B911326880736F4" "62114201513040" "62114201513040" "46"


def test_ports_deliver_round_trip_8bit_multipart():
    moment = datetime(2026, 11, 24, 10, 15, 3, tzinfo=tz(0))
    data = bytes(range(256))
    pdus = encode_deliver("+4915112345678", data=data, ports=(2948, 9200), timestamp=moment, ref=5)
    decoded = [decode_pdu(p) for p in pdus]
    assert all(s.ports.destination == 2948 and s.ports.origin == 9200 for s in decoded)
    assert b"".join(s.data for s in decoded) == data
    # TPDU: first octet, OA (9), PID, DCS, SCTS (7), UDL = 20 octets, then at most 140 of user data.
    assert all(len(bytes.fromhex(p)) - 1 - 20 <= 140 for p in pdus)
    assert len(pdus) == 2


DCS_TABLE = [
    # dcs, alphabet, class (TS 23.038 §4)
    (0x00, "gsm7", None), (0x04, "8bit", None), (0x08, "ucs2", None), (0x0C, "gsm7", None),
    (0x10, "gsm7", 0), (0x11, "gsm7", 1), (0x1A, "ucs2", 2), (0x1B, "ucs2", 3), (0x16, "8bit", 2), (0x15, "8bit", 1),
    (0x40, "gsm7", None), (0x48, "ucs2", None), (0x54, "8bit", 0), (0x7F, "gsm7", 3),
    (0x80, "gsm7", None), (0xB5, "gsm7", None), (0xC0, "gsm7", None), (0xD8, "gsm7", None),
    (0xE0, "ucs2", None), (0xEB, "ucs2", None), (0xF0, "gsm7", 0), (0xF1, "gsm7", 1),
    (0xF2, "gsm7", 2), (0xF3, "gsm7", 3), (0xF4, "8bit", 0), (0xF5, "8bit", 1), (0xF7, "8bit", 3),
    (0xFF, "8bit", 3),
]


@pytest.mark.parametrize("dcs, alphabet, msg_class", DCS_TABLE)
def test_every_dcs_group(dcs, alphabet, msg_class):
    coding = decode_dcs(dcs)
    assert (coding.alphabet, coding.msg_class) == (alphabet, msg_class)


def test_every_dcs_value_decodes_a_pdu():
    for dcs in range(256):
        hex_pdu = f"0004" "0B919471091856F5" f"00{dcs:02X}" "62114201513000" "02" "C834"
        sms = decode_pdu(hex_pdu)
        assert sms.dcs == dcs
        assert isinstance(sms.text, str)


# Bad input: (name, hex, words the message must contain, field)
BAD_VECTORS = [
    ("empty", "", "empty", "hex"),
    ("odd hex", "0", "odd number", "hex"),
    ("non-hex", "00zz", "not a hex digit", "hex"),
    ("SMSC longer than the PDU", "0791728301", "SMSC address", "SMSC address"),
    ("ends after the first octet", "0004", "TP-OA length", "TP-OA length"),
    ("TP-MTI 3", "0003", "reserved", "TP-MTI"),
    ("truncated timestamp", "00040B919471091856F500006211", "TP-SCTS", "TP-SCTS"),
    ("MM insufficient data: UDL 0B septets, 9 octets", "07912143658709F1040B918100551512F20000111010214365000B"
     "E8329BFD4697D9EC37", "only 9 octets follow", "TP-UD"),
    ("GM UCS-2 with UDL too long", "0041010C910661345542F60008A0050003000301306F3044", "more than 140", "TP-UDL"),
    ("UDL 8-bit beyond data", "00040B919471091856F50004621142015130000501020304", "only 4 octets", "TP-UD"),
    ("UDHL beyond user data", "00440B919471091856F50004621142015130000308AABB", "header length", "TP-UDHL"),
    ("IE beyond UDHL", "00440B919471091856F500046211420151300004030005AA", "information element", "UDH"),
    ("UDL shorter than the header (GSM-7)", "00440B919471091856F50000621142015130000100", "shorter", "TP-UDL"),
    ("address longer than 20 digits", "00041591" + "11" * 11 + "0000621142015130000141", "at most 20", "TP-OA"),
    ("status report without TP-ST", "0006070B919471091856F56211420151300062114201519000", "TP-ST", "TP-ST"),
    ("SUBMIT with VPF relative but no TP-VP", "0011000B916407281553F80000", "TP-VP", "TP-VP"),
]


@pytest.mark.parametrize("name, pdu, words, field", BAD_VECTORS, ids=[v[0] for v in BAD_VECTORS])
def test_bad_input_raises_one_decode_error_naming_field_and_offset(name, pdu, words, field):
    with pytest.raises(DecodeError) as caught:
        decode_pdu(pdu)
    assert words in str(caught.value)
    assert caught.value.field == field
    if field != "hex":
        assert caught.value.offset is not None and f"octet {caught.value.offset}" in str(caught.value)


def test_no_smsc_mode_and_auto_detection():
    tpdu = "040B919471091856F50000621142015130000141"
    with pytest.raises(DecodeError):
        # read with an SMSC field, 04 claims 4 octets that are not an SMSC
        decode_pdu(tpdu, smsc_included=True)
    # The default reads it bare, as it fails with an SMSC field and fits bare exactly.
    assert decode_pdu(tpdu).smsc is None and decode_pdu(tpdu).text == "A"
    with pytest.raises(DecodeError, match="TP-DA"):
        decode_pdu(tpdu + "FF")  # bare it would leave a trailing octet: the SMSC reading's error
    assert decode_pdu(tpdu, smsc_included=False).text == "A"
    assert decode_pdu(tpdu, smsc_included=None).text == "A"
    assert decode_pdu("00" + tpdu, smsc_included=None).text == "A"
    assert decode_pdu("0791947101670000" + tpdu, tpdu_length=len(tpdu) // 2).smsc == "+491710760000"
    assert decode_pdu(tpdu, tpdu_length=len(tpdu) // 2).smsc is None
    padded = decode_pdu("00" + tpdu + "FFFF")  # some modems pad; the padding is not text
    assert (padded.text, padded.trailing) == ("A", 2)
    with pytest.raises(DecodeError, match="SMSC field says"):
        decode_pdu("0791947101670000" + tpdu, tpdu_length=len(tpdu) // 2 + 1)


def test_offsets_count_octets_of_the_pdu_as_given():
    # 00 | 04 | 0B 91 947109 1856F5 | 00 | 00 | SCTS at octet 12, cut after 3 of its 7 octets
    with pytest.raises(DecodeError) as caught:
        decode_pdu("00040B919471091856F50000621142")
    assert (caught.value.field, caught.value.offset) == ("TP-SCTS", 12)
    # The same TPDU behind a 7-octet SMSC field: everything moves by 7.
    with pytest.raises(DecodeError) as caught:
        decode_pdu("0791947101670000" "040B919471091856F50000621142")
    assert caught.value.offset == 19
    # Without an SMSC field the first octet of the TPDU is octet 0.
    with pytest.raises(DecodeError) as caught:
        decode_pdu("040B919471091856F50000621142", smsc_included=False)
    assert caught.value.offset == 11


# Time stamps a network got wrong: the PDU is read anyway (a refused status report is never
# matched, and its message stays pending for ever). (name, hex, TP-SCTS fields, TP-DT fields,
# timestamp, discharge); a field is None where its semi-octets are not decimal.
LENIENT_TIMES = [
    # oFono unit/test-sms.c, test_sr_assembly, sr_pdu3 (a bare status report): TZ octet A0.
    ("oFono sr_pdu3, TZ A0", "0606098121436587F9019012413064A0019012413045A000",
     (2010, 9, 21, 14, 3, 46, None), (2010, 9, 21, 14, 3, 54, None),
     "2010-09-21T14:03:46", "2010-09-21T14:03:54"),
    # python-gsmmodem test/test_modem.py,
    # test_receiveSmsPduMode_zeroLengthSmscAndNonBCDTimeZoneValue (from a bug report): SCTS TZ C2.
    ("python-gsmmodem non-BCD TZ C2", "0006230E9126983575169498610103409544C26101034095448200",
     (2016, 10, 30, 4, 59, 44, None), None,
     "2016-10-30T04:59:44", "2016-10-30T04:59:44+07:00"),
    ("SPEC TZ E1 in TP-DT", "0006070B919471091856F5" "62114201513040" "621142015190E1" "00",
     None, (2026, 11, 24, 10, 15, 9, None),
     "2026-11-24T10:15:03+01:00", "2026-11-24T10:15:09"),
    ("SPEC month 13 in a DELIVER", "00040B919471091856F5000062314201513000" "0141",
     (2026, 13, 24, 10, 15, 3, "+00:00"), None, None, None),
    ("SPEC non-decimal year in a DELIVER", "00040B919471091856F500006A114201513000" "0141",
     (None, 11, 24, 10, 15, 3, "+00:00"), None, None, None),
]


def _time_fields(time):
    if time is None:
        return None
    return dict(zip(("year", "month", "day", "hour", "minute", "second", "utc_offset"), time))


@pytest.mark.parametrize("name, pdu, scts, dt, timestamp, discharge", LENIENT_TIMES, ids=[v[0] for v in LENIENT_TIMES])
def test_time_stamps_are_read_leniently(name, pdu, scts, dt, timestamp, discharge):
    sms = decode_pdu(pdu)
    as_json = sms.to_json()
    assert (as_json["timestamp"], as_json["discharge"]) == (timestamp, discharge)
    for key, expected in (("timestamp_fields", scts), ("discharge_fields", dt)):
        got = as_json.get(key)
        if expected is None:
            assert got is None  # whole: no fields key
        else:
            assert {k: v for k, v in got.items() if k != "raw"} == _time_fields(expected)
    assert sms.times_complete is False


def test_whole_time_stamps_add_no_fields_keys():
    as_json = decode_pdu("0006070B919471091856F56211420151300062114201519000" "00").to_json()
    assert "timestamp_fields" not in as_json and "discharge_fields" not in as_json


# libosmocore tests/sms/sms_test.c: 7-bit packing, extension characters counted twice,
# '@@' inside the text, and the user data of a two-part message (8-bit ref 0x6F).
OSMO_PACKING = [
    ("test text", 9, "f4f29c0ea297f174"),
    ("!$ a more#^- complicated test@@?_%! case", 41,
     "2101280c6abfe5e5d186d2028ddf6d383b3d0ed3cb6410bd3ca70300bf4829041a87e765"),
    ("enhanced ^ {][} test |+~ ^ test", 39,
     "65373aec1e97c9a00d05b4416d7c1bde2605a297e774d006b8daf4401b0a885e9ed301"),
    ("enhanced ^ {][} test |+~ ^ tests", 40,
     "65373aec1e97c9a00d05b4416d7c1bde2605a297e774d006b8daf4401b0a885e9ed3e7"),
]  # fmt: skip


@pytest.mark.parametrize("text, septet_total, packed", OSMO_PACKING)
def test_libosmocore_packing(text, septet_total, packed):
    from gsmgw.sms import gsm7

    septets = gsm7.encode_septets(text)
    assert len(septets) == septet_total
    assert gsm7.pack_septets(septets).hex() == packed
    assert gsm7.decode_septets(gsm7.unpack_septets(bytes.fromhex(packed), septet_total)) == text


def test_libosmocore_concatenated_user_data():
    text = (
        "this is a testmessage. this is a testmessage. this is a testmessage. this is a testmessage. "
        "this is a testmessage. this is a testmessage. cut here .....: this is a second testmessage. end here."
    )
    part1 = (
        "050003 6f0201 e8e8f41c949e83c2207a794e6f97e7f3f0b9ec02d1d1e939283d078541f4f29cde2ecfe7e173d905"
        "a2a3d373507a0e0a83e8e539bd5d9ecfc3e7b20b4447a7e7a0f41c1406d1cb737abb3c9f87cf6517888e4ecf41e939"
        "280ca297e7f476793e0f9fcb2e101d9d9e83d27350184 42fcfe9edf27c1e3e975da0719d0e4297e56590cbe572b974"
    ).replace(" ", "")
    part2 = "0500036f0202 4074747a0e4acf4161d0bc3c7ebbc9207a794e6f97e7f3f0b9ec0295dd6410ba2c2fbb00".replace(" ", "")
    parts = encode_submit("+4915112345678", text, ref=0x6F)
    # TPDU: first, MR, DA (9 octets), PID, DCS, UDL = 14 octets before the user data.
    assert [p.tpdu[14:].hex() for p in parts] == [part1, part2]
    assert [p.tpdu[13] for p in parts] == [160, 47]  # TP-UDL in septets, header included
