"""The sans-IO AT parser, fed raw byte streams.

Each vector is named after the device whose output it holds (or the situation it shows). Every
vector is checked whole, byte by byte, and (hypothesis) at every kind of split.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.at.events import (
    CallerId,
    Final,
    IncomingDirect,
    IncomingStored,
    LateSubmitResult,
    Line,
    ModemBooted,
    ModemReady,
    Noise,
    PowerDown,
    Prompt,
    RegistrationChanged,
    ReportDirect,
    ReportStored,
    Ring,
    SignalReport,
    SimStatus,
    StorageFull,
    StrayFinal,
    StrayResponse,
    Urc,
    UssdResult,
)
from gsmgw.at.parser import AtParser, command_name, parse_final, split_fields

DELIVER_PDU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
REPORT_PDU = "07911326040000F006330B911346610089F6220190811002802201908110028000"

OK = Final("OK", "OK")


def kinds(events):
    """Events without their raw text, for short expectations."""
    out = []
    for e in events:
        if isinstance(e, Line):
            out.append(("line", e.text))
        elif isinstance(e, Final):
            out.append(("final", e.kind, e.code))
        elif isinstance(e, Prompt):
            out.append(("prompt",))
        else:
            out.append(e)
    return out


# (name, command in flight or None, (expects_prompt, payload), raw bytes, expected events)
VECTORS = [
    (
        "huawei_e173_cgmi_with_rssi_inside_the_response",
        "AT+CGMI", None,
        b"AT+CGMI\r\r\nhuawei\r\n\r\n^RSSI: 17\r\n\r\nOK\r\n",
        [("line", "huawei"), SignalReport("^RSSI: 17", -79), ("final", "OK", None)],
    ),
    (
        "huawei_e173_boot_without_space_is_noise",
        None, None,
        b"\r\n^BOOT:20952894,0,0,0,72\r\n\r\n^MODE: 5,4\r\n",
        [Noise("^BOOT:20952894,0,0,0,72"), Noise("^MODE: 5,4")],
    ),
    (
        "huawei_e173_smmemfull",
        None, None,
        b'\r\n^SMMEMFULL: "SM"\r\n',
        [StorageFull('^SMMEMFULL: "SM"', "SM")],
    ),
    (
        "huawei_hcsq_lte",
        None, None,
        b'\r\n^HCSQ: "LTE",44,36,126,19\r\n',
        [SignalReport('^HCSQ: "LTE",44,36,126,19', -77)],
    ),
    (
        "simcom_sim800l_bare_ccid",
        "AT+CCID", None,
        b"\r\n89490200001234567890\r\n\r\nOK\r\n",
        [("line", "89490200001234567890"), ("final", "OK", None)],
    ),
    (
        "simcom_sim800l_boot_banners",
        None, None,
        b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n",
        [ModemBooted("RDY"), ModemReady("+CFUN: 1"), SimStatus("+CPIN: READY", "READY"),
         ModemReady("Call Ready"), ModemReady("SMS Ready")],
    ),
    (
        "simcom_sim800l_power_down",
        None, None,
        b"\r\nNORMAL POWER DOWN\r\n",
        [PowerDown("NORMAL POWER DOWN")],
    ),
    (
        "quectel_ec25_urcs_right_after_ok_in_one_read",
        "AT", None,
        b"\r\nOK\r\n\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\n",
        [("final", "OK", None), ModemBooted("RDY"), SimStatus("+CPIN: READY", "READY"),
         ModemReady("+QIND: SMS DONE")],
    ),
    (
        "quectel_ec25_qind_csq",
        None, None,
        b'\r\n+QIND: "csq",20,99\r\n',
        [SignalReport('+QIND: "csq",20,99', -73)],
    ),
    (
        "quectel_ec25_qind_smsfull",
        None, None,
        b'\r\n+QIND: "smsfull","SM"\r\n',
        [StorageFull('+QIND: "smsfull","SM"', "SM")],
    ),
    (
        "cpin_read_is_a_response_not_a_urc",
        "AT+CPIN?", None,
        b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n",
        [("line", "+CPIN: SIM PIN"), ("final", "OK", None)],
    ),
    (
        "creg_read_then_creg_urc_after_ok",
        "AT+CREG?", None,
        b"\r\n+CREG: 2,1,\"00C3\",\"A1B2\",7\r\n\r\nOK\r\n\r\n+CREG: 5\r\n",
        [("line", '+CREG: 2,1,"00C3","A1B2",7'), ("final", "OK", None),
         RegistrationChanged("+CREG: 5", "CREG", 5)],
    ),
    (
        "creg_urc_while_another_command_runs",
        "AT+CSQ", None,
        b"\r\n+CREG: 1\r\n+CSQ: 20,99\r\n\r\nOK\r\n",
        [RegistrationChanged("+CREG: 1", "CREG", 1), ("line", "+CSQ: 20,99"), ("final", "OK", None)],
    ),
    (
        "cmti_in_the_middle_of_a_cmgl_listing",
        "AT+CMGL=4", None,
        (b"\r\n+CMGL: 1,1,,24\r\n" + DELIVER_PDU.encode() + b"\r\n+CMTI: \"SM\",2\r\n"
         b"+CMGL: 3,0,,24\r\n" + DELIVER_PDU.encode() + b"\r\n\r\nOK\r\n"),
        [("line", "+CMGL: 1,1,,24"), ("line", DELIVER_PDU), IncomingStored('+CMTI: "SM",2', "SM", 2),
         ("line", "+CMGL: 3,0,,24"), ("line", DELIVER_PDU), ("final", "OK", None)],
    ),
    (
        "cmt_two_line_urc_between_response_lines",
        "AT+CGSN", None,
        b"\r\n+CMT: ,24\r\n" + DELIVER_PDU.encode() + b"\r\n\r\n356938035643809\r\n\r\nOK\r\n",
        [IncomingDirect("+CMT: ,24\n" + DELIVER_PDU, DELIVER_PDU, 24),
         ("line", "356938035643809"), ("final", "OK", None)],
    ),
    (
        "cmt_with_quoted_empty_alpha",
        None, None,
        b'\r\n+CMT: "",24\r\n' + DELIVER_PDU.encode() + b"\r\n",
        [IncomingDirect('+CMT: "",24\n' + DELIVER_PDU, DELIVER_PDU, 24)],
    ),
    (
        "cds_two_line_report",
        None, None,
        b"\r\n+CDS: 25\r\n" + REPORT_PDU.encode() + b"\r\n",
        [ReportDirect("+CDS: 25\n" + REPORT_PDU, REPORT_PDU, 25)],
    ),
    (
        "cdsi_stored_report",
        None, None,
        b'\r\n+CDSI: "SR",4\r\n',
        [ReportStored('+CDSI: "SR",4', "SR", 4)],
    ),
    (
        "ring_and_clip",
        None, None,
        b'\r\nRING\r\n\r\n+CLIP: "+4915112345678",145,"",,"",0\r\n',
        [Ring("RING"), CallerId('+CLIP: "+4915112345678",145,"",,"",0', "+4915112345678", 145, 0)],
    ),
    (
        "echo_on_before_ate0_is_swallowed",
        "ATE0", None,
        b"ATE0\r\r\nOK\r\n",
        [("final", "OK", None)],
    ),
    (
        "huawei_e173_rssi_before_the_echo",
        "AT+CGMI", None,
        b"\r\n^RSSI: 17\r\nAT+CGMI\r\r\nhuawei\r\n\r\nOK\r\n",
        [SignalReport("^RSSI: 17", -79), ("line", "huawei"), ("final", "OK", None)],
    ),
    (
        "cms_error_numeric",
        "AT+CMGS=20", (True, "0011"),
        b"\r\n+CMS ERROR: 38\r\n",
        [("final", "CMS", 38)],
    ),
    (
        "cms_error_text_under_cmee2",
        "AT+CMGR=9", None,
        b"\r\n+CMS ERROR: Invalid memory index\r\n",
        [("final", "CMS", 321)],
    ),
    (
        "cme_error_text_under_cmee2",
        "AT+CIMI", None,
        b"\r\n+CME ERROR: SIM PIN required\r\n",
        [("final", "CME", 11)],
    ),
    (
        "malformed_final_without_code",
        "AT+CMGD=1", None,
        b"\r\n+CMS ERROR:\r\n",
        [("final", "CMS", None)],
    ),
    (
        "malformed_final_unknown_text",
        "AT+CPMS?", None,
        b"\r\n+CME ERROR: weird thing\r\n",
        [("final", "CME", None)],
    ),
    (
        "zte_mf_command_not_support",
        "AT+CPINR=\"SIM PIN\"", None,
        b"\r\nCOMMAND NOT SUPPORT\r\n",
        [("final", "COMMAND NOT SUPPORT", None)],
    ),
    (
        "cmgs_prompt_pdu_echo_and_result_simcom",
        "AT+CMGS=13", (True, "0001000B919471000000F10000"),
        b"AT+CMGS=13\r\r\n> 0001000B919471000000F10000\x1a\r\n+CMGS: 17\r\n\r\nOK\r\n",
        [("prompt",), ("line", "+CMGS: 17"), ("final", "OK", None)],
    ),
    (
        "cmgs_prompt_without_blank",
        "AT+CMGS=13", (True, "0001"),
        b"\r\n>\r\n+CMGS: 3\r\n\r\nOK\r\n",
        [("prompt",), ("line", "+CMGS: 3"), ("final", "OK", None)],
    ),
    (
        "noise_bytes_before_a_response",
        "AT+CGMI", None,
        bytes.fromhex("fffe800047415242414745c3280d0a") + b"\r\nhuawei\r\n\r\nOK\r\n",
        [Noise("\xff\xfe\x80\x00GARBAGE\xc3("), ("line", "huawei"), ("final", "OK", None)],
    ),
    (
        "latin1_operator_name",
        "AT+COPS?", None,
        b'\r\n+COPS: 0,0,"Telef\xf3nica",7\r\n\r\nOK\r\n',
        [("line", '+COPS: 0,0,"Telef\xf3nica",7'), ("final", "OK", None)],
    ),
    (
        "cusd_text_spanning_lines",
        None, None,
        b'\r\n+CUSD: 0,"Balance:\r\n10.00 EUR\r\nOK",15\r\n',
        [UssdResult('+CUSD: 0,"Balance:\n10.00 EUR\nOK",15', 0, "Balance:\n10.00 EUR\nOK", 15)],
    ),
    (
        "unknown_unsolicited_line_is_noise",
        None, None,
        b"\r\n+WHATEVER: 1\r\n\r\nDST: 1\r\n",
        [Noise("+WHATEVER: 1"), Noise("DST: 1")],
    ),
    (
        # SIM800 clones and smstools3 bug reports: the final glued to the last answer line.
        "ok_glued_to_an_answer_line",
        "AT+CSQ", None,
        b"\r\n+CSQ: 20,99OK\r\n",
        [("line", "+CSQ: 20,99"), ("final", "OK", None)],
    ),
    (
        "ok_glued_to_a_pdu_line",
        "AT+CMGR=1", None,
        b"\r\n+CMGR: 1,,24\r\n" + DELIVER_PDU.encode() + b"OK\r\n",
        [("line", "+CMGR: 1,,24"), ("line", DELIVER_PDU), ("final", "OK", None)],
    ),
    (
        "ok_glued_to_an_imei",
        "AT+CGSN", None,
        b"\r\n356938035643809OK\r\n",
        [("line", "356938035643809"), ("final", "OK", None)],
    ),
    (
        "ok_glued_to_the_pdu_line_of_a_cmt_in_flight",
        "AT+CSQ", None,
        b"\r\n+CMT: ,24\r\n" + DELIVER_PDU.encode() + b"OK\r\n",
        [IncomingDirect("+CMT: ,24\n" + DELIVER_PDU, DELIVER_PDU, 24), ("final", "OK", None)],
    ),
    (
        "text_ending_in_ok_is_not_split",
        "ATI", None,
        b"\r\nFACEBOOK\r\n+CGMI: NOKIA BOOK\r\nOK\r\n",
        [("line", "FACEBOOK"), ("line", "+CGMI: NOKIA BOOK"), ("final", "OK", None)],
    ),
    (
        "creg_urc_form_with_lac_ci_act_outside_a_query",
        None, None,
        b'\r\n+CREG: 1,"1A2B","00C3D4E5",7\r\n',
        [RegistrationChanged('+CREG: 1,"1A2B","00C3D4E5",7', "CREG", 1)],
    ),
    (
        "lines_ended_by_bare_cr_with_unquoted_storage",
        "AT+CPMS?", None,
        b"AT+CPMS?\r+CPMS: SM,1,30,SM,1,30,SM,1,30\rOK\r+CMTI: SM,2\r",
        [("line", "+CPMS: SM,1,30,SM,1,30,SM,1,30"), ("final", "OK", None),
         IncomingStored("+CMTI: SM,2", "SM", 2)],
    ),
    (
        "lines_ended_by_bare_lf",
        "AT+CSQ", None,
        b"\n+CSQ: 99,99\n\nOK\n",
        [("line", "+CSQ: 99,99"), ("final", "OK", None)],
    ),
    (
        "prompt_after_crlf_with_blank",
        "AT+CMGS=13", (True, "0001"),
        b"AT+CMGS=13\r\r\n> ",
        [("prompt",)],
    ),
    (
        "prompt_bare_gt_without_line_end",
        "AT+CMGS=13", (True, "0001"),
        b">",
        [("prompt",)],
    ),
    (
        "cme_error_sim_busy_as_text",
        "AT+CPMS=\"SM\"", None,
        b"\r\n+CME ERROR: SIM busy\r\n",
        [("final", "CME", 14)],
    ),
    (
        "cmti_with_a_field_after_the_index",
        None, None,
        b'\r\n+CMTI: "ME",12,"SM"\r\n',
        [IncomingStored('+CMTI: "ME",12,"SM"', "ME", 12)],
    ),
    (
        "pdu_echo_with_the_answer_glued_behind_ctrl_z",
        "AT+CMGS=13", (True, "0001000B919471000000F10000"),
        b"AT+CMGS=13\r\r\n> 0001000B919471000000F10000\x1a+CMGS: 17\r\n\r\nOK\r\n",
        [("prompt",), ("line", "+CMGS: 17"), ("final", "OK", None)],
    ),
    (
        "stray_ok_with_nothing_in_flight",
        None, None,
        b"\r\nOK\r\n",
        [StrayFinal("OK", OK)],
    ),
]


def parser_for(command, prompt):
    p = AtParser()
    if command is not None:
        if prompt:
            p.start_command(command, expects_prompt=prompt[0], payload=prompt[1])
        else:
            p.start_command(command)
    return p


def feed_chunks(command, prompt, chunks):
    p = parser_for(command, prompt)
    events = []
    for chunk in chunks:
        events += p.feed(chunk)
    return events


@pytest.mark.parametrize("name,command,prompt,data,expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_whole(name, command, prompt, data, expected):
    assert kinds(feed_chunks(command, prompt, [data])) == expected


@pytest.mark.parametrize("name,command,prompt,data,expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_byte_by_byte(name, command, prompt, data, expected):
    chunks = [data[i:i + 1] for i in range(len(data))]
    assert kinds(feed_chunks(command, prompt, chunks)) == expected


@pytest.mark.parametrize("name,command,prompt,data,expected", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_split_at_every_offset(name, command, prompt, data, expected):
    for cut in range(len(data) + 1):
        assert kinds(feed_chunks(command, prompt, [data[:cut], data[cut:]])) == expected, cut


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(VECTORS), st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_every_split_gives_the_same_events(vector, cuts):
    _, command, prompt, data, expected = vector
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert kinds(feed_chunks(command, prompt, chunks)) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, "AT+CSQ", "AT+CMGS=5"]))
def test_garbage_yields_events_never_an_exception(data, command):
    p = parser_for(command, (True, "00") if command == "AT+CMGS=5" else None)
    events = p.feed(data) + p.feed(b"\r\n")
    assert all(isinstance(e, (Line, Final, Prompt, Urc)) for e in events)
    # The bytes after the last line end are all that is held back.
    assert len(p._buf) == 0


def test_trailing_partial_line_waits_for_its_end():
    p = parser_for("AT+CSQ", None)
    assert kinds(p.feed(b"\r\n+CSQ: 20,99\r\n\r\nO")) == [("line", "+CSQ: 20,99")]
    assert kinds(p.feed(b"K\r\n")) == [("final", "OK", None)]


def test_pdu_urc_header_without_pdu_line_is_reported_not_lost():
    p = AtParser()
    events = p.feed(b"\r\n+CMT: ,24\r\n+CMTI: \"SM\",1\r\n")
    assert events == [Noise("+CMT: ,24"), IncomingStored('+CMTI: "SM",1', "SM", 1)]


def test_late_cmgs_after_timeout_is_reported_as_such_and_does_not_end_the_next_command():
    p = AtParser()
    p.start_command("AT+CMGS=13", expects_prompt=True, payload="0001")
    assert kinds(p.feed(b"\r\n> ")) == [("prompt",)]
    p.abandon_command()  # the session timed out waiting for +CMGS
    p.start_command("AT+CSQ")
    events = p.feed(b"\r\n+CMGS: 42\r\n\r\nOK\r\n\r\n+CSQ: 12,99\r\n\r\nOK\r\n")
    assert events == [
        LateSubmitResult("+CMGS: 42", 42),
        StrayFinal("OK", OK),
        Line("+CSQ: 12,99"),
        OK,
    ]
    assert p.command_in_flight is None


def test_late_answer_with_nothing_in_flight():
    p = AtParser()
    p.start_command("AT+CGSN")
    p.abandon_command()
    assert p.feed(b"\r\n356938035643809\r\n\r\nOK\r\n") == [
        StrayResponse("356938035643809", "AT+CGSN"),
        StrayFinal("OK", OK),
    ]


def test_late_prompt_between_commands_its_final_does_not_end_the_next_command():
    """Found by test_slow_prompt_is_cancelled_with_esc_and_nothing_is_sent (flaky under load):
    the late "> " came while nothing was in flight; the session answered ESC and started the
    next command before the modem's final for the cancelled AT+CMGS arrived."""
    p = AtParser()
    p.start_command("AT+CMGS=13", expects_prompt=True, payload="0001")
    p.abandon_command()
    assert [type(e).__name__ for e in p.feed(b"\r\n> ")] == ["LatePrompt"]
    p.start_command("AT")
    assert p.feed(b"\r\nOK\r\n") == [StrayFinal("OK", OK)]
    assert p.command_in_flight == "AT"
    assert p.feed(b"\r\nOK\r\n") == [OK]
    assert p.command_in_flight is None


def test_prompt_only_when_a_command_expects_one():
    p = AtParser()
    p.start_command("AT+CSQ")
    assert kinds(p.feed(b"\r\n> text\r\nOK\r\n")) == [("line", "> text"), ("final", "OK", None)]


def test_start_command_twice_is_a_bug_and_says_so():
    p = AtParser()
    p.start_command("AT")
    with pytest.raises(RuntimeError, match="in flight"):
        p.start_command("AT+CSQ")


def test_needs_ack_is_carried_by_direct_events():
    p = AtParser()
    p.needs_ack = True
    (event,) = p.feed(b"\r\n+CMT: ,24\r\n" + DELIVER_PDU.encode() + b"\r\n")
    assert isinstance(event, IncomingDirect) and event.needs_ack


@pytest.mark.parametrize(
    "command,name",
    [("AT+CREG?", "+CREG"), ("AT^CPIN?", "^CPIN"), ('AT+QPINC="SC"', "+QPINC"), ("ATI", "I"),
     ("AT", ""), ("ate0", "E"), ("AT+CMGS=25", "+CMGS"), ("AT$QCSIMSTAT?", "$QCSIMSTAT")],
)
def test_command_name(command, name):
    assert command_name(command) == name


def test_split_fields_keeps_commas_inside_quotes():
    assert split_fields('"SM",3') == ["SM", "3"]
    assert split_fields(',24') == ["", "24"]
    assert split_fields('0,"a,b",15') == ["0", "a,b", "15"]


@pytest.mark.parametrize(
    "line,kind,code",
    [("OK", "OK", None), ("ERROR", "ERROR", None), ("NO CARRIER", "NO CARRIER", None),
     ("BUSY", "BUSY", None), ("NO ANSWER", "NO ANSWER", None), ("NO DIALTONE", "NO DIALTONE", None),
     ("+CMS ERROR: 500", "CMS", 500), ("+CME ERROR: 10", "CME", 10), ("+CMS ERROR:304", "CMS", 304),
     ("+CME ERROR: incorrect password", "CME", 16), ("+CMS ERROR: memory full", "CMS", 322)],
)
def test_parse_final(line, kind, code):
    final = parse_final(line)
    assert final is not None and (final.kind, final.code) == (kind, code)


def test_not_a_final():
    assert parse_final("OKAY") is None
    assert parse_final("+CMGS: 3") is None


URC_SAMPLES = [
    b'+CMTI: "SM",7', b"RING", b"^RSSI: 12", b"+CREG: 1", b'+CDSI: "SR",2', b"^MODE: 5,4",
    b"+CMT: ,24\r\n" + DELIVER_PDU.encode(), b'+QIND: "csq",20,99', b"SMS Ready", b"+CPIN: READY",
]
CMGL_LINES = [b"+CMGL: 1,1,,24", DELIVER_PDU.encode(), b"+CMGL: 2,0,,24", DELIVER_PDU.encode()]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=len(CMGL_LINES)), st.sampled_from(URC_SAMPLES)),
             max_size=6),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_urcs_anywhere_in_a_response_are_separated_and_never_lost(insertions, cuts):
    # Build "+CMGL..." response with URCs between its lines (never between a +CMGL header and
    # its PDU line, which no modem splits), then feed it in random chunks.
    slots: dict[int, list[bytes]] = {}
    for position, urc in insertions:
        position -= position % 2  # only before a header or at the end
        slots.setdefault(position, []).append(urc)
    stream = b"AT+CMGL=4\r"
    expected_urcs = []
    for i in range(len(CMGL_LINES) + 1):
        for urc in slots.get(i, []):
            stream += b"\r\n" + urc + b"\r\n"
            expected_urcs.append(urc.decode().replace("\r\n", "\n"))
        if i < len(CMGL_LINES):
            stream += b"\r\n" + CMGL_LINES[i] + b"\r\n"
    stream += b"\r\nOK\r\n"
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    events = feed_chunks("AT+CMGL=4", None, chunks)
    assert [e.text for e in events if isinstance(e, Line)] == [x.decode() for x in CMGL_LINES]
    assert [e.raw for e in events if isinstance(e, Urc)] == expected_urcs
    assert isinstance(events[-1], Final) and events[-1].ok


def test_vendor_urcs_come_from_the_profiles_and_name_their_device():
    from gsmgw.at.parser import URC_PREFIXES
    from gsmgw.at.profiles import PROFILE_FIELDS, PROFILES, VENDOR_URCS
    from gsmgw.at import profiles

    assert not any(prefix.startswith(("^", "*", "+Q", "+Z")) for prefix in URC_PREFIXES)  # 3GPP only
    for profile in PROFILES.values():
        for urc in profile.urcs:
            assert urc.device.strip() and urc.line == urc.line.upper(), urc
            assert VENDOR_URCS[(urc.line, urc.bare)].decode is urc.decode
        for quirk in profile.quirks:
            assert quirk.handled_by is None or quirk.handled_by in PROFILE_FIELDS or callable(
                getattr(profiles, quirk.handled_by, None)), quirk


def test_the_parser_asks_its_vendor_table_for_lines_it_does_not_know():
    from gsmgw.at.profiles import VendorUrc

    def decode(rest, fields, raw):
        return SignalReport(raw, -int(fields[0]))

    table = {("^TESTRSSI", False): VendorUrc("^TESTRSSI", "a test device", decode),
             ("HELLO THERE", True): VendorUrc("HELLO THERE", "a test device", bare=True)}
    events = AtParser(vendor_urcs=table).feed(b"\r\n^TESTRSSI: 70\r\n\r\nHello there\r\n\r\n^RSSI: 20\r\n")
    assert events == [SignalReport("^TESTRSSI: 70", -70), Noise("Hello there"), Noise("^RSSI: 20")]
    assert AtParser().feed(b"\r\n^RSSI: 20\r\n") == [SignalReport("^RSSI: 20", -73)]  # the profiles' table
