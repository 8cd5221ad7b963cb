"""The web console's pure parts: sessions, CSRF, throttling, one-time links, what people type and
upload (recipients, CSV, placeholders), the compose counter, look-alikes, charts, groups, opt-out."""

from __future__ import annotations

import pytest

import asyncio
from types import SimpleNamespace

from gsmgw.events import MessageReceived
from gsmgw.daemon.optout import START, STOP, OptOutHandler, OptOutList, keyword_of, opted_out_reason
from gsmgw.spool.index import MessageIndex
from gsmgw.spool.store import Spool
from gsmgw.groups import GroupBook
from gsmgw.sms.lookalike import forcing_ucs2, replace_lookalikes
from gsmgw.web import auth, charts, forms
from gsmgw.web.views.compose import describe


def test_sessions_end_after_idle_time_and_say_so():
    sessions = auth.Sessions(idle_timeout=100)
    session = sessions.create("anna", "password", now=0)
    assert sessions.get(session.token, 50) is session  # activity restarts the idle time
    assert sessions.peek(session.token, 149) and sessions.get(session.token, 149) is session
    assert not sessions.peek(session.token, 250)  # peeking is not activity
    assert sessions.get(session.token, 250) == auth.EXPIRED
    assert sessions.get("made-up", 0) == auth.EXPIRED and sessions.get(None, 0) is None
    other = sessions.create("anna", "link", now=0)
    assert other.token != session.token and other.csrf != session.csrf


def test_csrf_tokens_must_match_exactly():
    assert auth.csrf_matches("abc", "abc")
    assert not auth.csrf_matches("abc", "abd") and not auth.csrf_matches("abc", None) and not auth.csrf_matches("", "")


def test_throttle_doubles_after_five_wrong_passwords_per_user_whatever_the_case():
    throttle = auth.Throttle()
    for attempt in range(5):
        assert throttle.wait("anna", 100.0) == 0.0
        throttle.failed("Anna", 100.0)
    assert throttle.wait("anna", 100.0) == 1.0  # after the 5th failure: 1 s
    throttle.failed("anna", 101.0)
    assert throttle.wait("ANNA", 101.0) == 2.0
    throttle.failed("anna", 103.0)
    assert throttle.wait("anna", 103.0) == 4.0
    assert throttle.wait("bob", 103.0) == 0.0  # another user is not slowed down
    throttle.succeeded("anna")
    assert throttle.wait("anna", 103.0) == 0.0
    for _ in range(60):
        throttle.failed("mallory", 0.0)
    assert throttle.wait("mallory", 0.0) == auth.MAX_DELAY


def test_one_time_links_work_once_and_for_ten_minutes():
    links = auth.OneTimeLinks()
    token = links.issue("admin", now=0)
    assert links.redeem(token, 10) == "admin"
    assert links.redeem(token, 11) is None  # used
    late = links.issue("admin", now=0)
    assert links.redeem(late, auth.LINK_LIFETIME + 1) is None
    assert links.redeem("guess", 0) is None and links.redeem(None, 0) is None


def test_session_keeps_only_a_few_uploads():
    session = auth.Sessions().create("anna", "password", 0)
    for n in range(10):
        session.keep(f"u{n}", n)
    assert list(session.stash) == [f"u{n}" for n in range(10 - auth.MAX_STASH, 10)]


def resolve(text, contacts=()):
    groups = {"team": ("+4915111111111", "+4915122222222")}

    def expand(name):
        if name not in groups:
            raise ValueError(f"unknown group {name!r}")
        return groups[name]

    return forms.resolve_recipients(
        text, default_country="49", expand_group=expand,
        contacts_named=lambda name: [c for c in contacts if c[1].lower() == name.lower()])


def test_recipients_numbers_groups_contacts_and_completion_entries():
    found, problems = resolve("0151 12345678, group:team; Anna\nCarl <+4917612345678>, +4915111111111",
                              contacts=[("+4930123456", "Anna")])
    assert problems == []
    assert [r.number for r in found] == ["+4915112345678", "+4915111111111", "+4915122222222", "+4930123456",
                                         "+4917612345678"]
    assert found[3].name == "Anna" and found[4].name == "Carl"


def test_recipient_problems_say_what_to_write():
    found, problems = resolve("+, group:nope, Nobody, 12ab", contacts=[("+491", "Twin"), ("+492", "Twin")])
    assert found == []
    assert "not a phone number" in problems[0]
    assert "unknown group 'nope'" in problems[1]
    assert "'Nobody' is neither a phone number, a contact nor group:NAME" in problems[2]
    assert "'12ab' is neither" in problems[3]
    _, twins = resolve("Twin", contacts=[("+491", "Twin"), ("+492", "Twin")])
    assert "2 contacts are called 'Twin'" in twins[0]


def test_csv_rows_with_problems_name_row_and_column():
    data = ("Number;Name;City\n+4915111111111;Anna;Köln\n\nnot a number;Bob;Bonn\n"
            "+4915111111111;Anna again;Köln\n0151 22222222;Carl;\n").encode("cp1252")
    recipients, columns, problems = forms.read_csv(data, default_country="49")
    assert columns == ["Number", "Name", "City"]
    assert [(r.number, r.name, r.row) for r in recipients] == [("+4915111111111", "Anna", 2), ("+4915122222222", "Carl", 6)]
    assert recipients[0].fields["City"] == "Köln"
    assert [(p.row, p.column) for p in problems] == [(4, "Number"), (5, "Number")]
    assert "already in row 2" in problems[1].message
    assert str(problems[0]).startswith("row 4, column Number: ")


def read(text: str, encoding: str = "utf-8"):
    recipients, columns, problems = forms.read_csv(text.encode(encoding), default_country="49")
    return [(r.number, r.name, r.row) for r in recipients], columns, [(p.place, p.column) for p in problems]


def test_csv_with_a_byte_order_mark_and_windows_line_ends():
    assert read("\ufeffnumber,name\r\n+4915112345601,Eva\r\n\r\n", "utf-8") == (
        [("+4915112345601", "Eva", 2)], ["number", "name"], [])


def test_csv_separator_is_what_the_header_row_uses():
    # Commas inside the cells of a semicolon file (and the other way round) stay in their cell.
    semicolons = "number;name;note\n+4915112345601;Müller, Hans;a, b, c\n+4915112345602;Eva;x, y\n"
    assert read(semicolons)[0] == [("+4915112345601", "Müller, Hans", 2), ("+4915112345602", "Eva", 3)]
    commas = "number,name\n+4915112345601,Hans; Eva\n+4915112345602,Ute; Jan\n"
    assert read(commas)[0] == [("+4915112345601", "Hans; Eva", 2), ("+4915112345602", "Ute; Jan", 3)]
    assert read("number\tname\n+4915112345601\tEva\n")[0] == [("+4915112345601", "Eva", 2)]
    assert read("number\n+4915112345601\n0151 12345602\n")[0] == [("+4915112345601", "", 2), ("+4915112345602", "", 3)]
    # Excel's own "sep=;" line names the separator; the header is the row after it.
    assert read("sep=;\nnumber;name\n+4915112345601;O'Brien, Pat\n") == (
        [("+4915112345601", "O'Brien, Pat", 2)], ["number", "name"], [])


def test_csv_quoted_cells_hold_separators_quotes_and_line_breaks():
    data = ('number,name,note\n"+49 151 12345601","Doe, John","He said ""hi"""\n'
            '+4915112345602,Eva,"line one\nline two"\nnot-a-number,Finn,\n')
    recipients, columns, problems = forms.read_csv(data.encode(), default_country="49")
    assert [(r.name, r.fields["note"]) for r in recipients] == [("Doe, John", 'He said "hi"'), ("Eva", "line one\nline two")]
    # Row 4 as a spreadsheet counts, line 5 of the file: the message says both.
    [problem] = problems
    assert (problem.row, problem.line, problem.column) == (4, 5, "number")
    assert str(problem).startswith("row 4 (line 5), column number: 'not-a-number' is not a phone number")


def test_csv_bad_rows_duplicates_and_spreadsheet_numbers_are_named_by_row():
    data = ("number,name\n+4915112345601,Eva\n015112345601,Eva again\n4.91511E+12,Finn\n"
            "+4915112345603,Gil,extra\n,Hal\n")
    recipients, places, problems = read(data)
    assert recipients == [("+4915112345601", "Eva", 2)]
    assert problems == [("3", "number"), ("4", "number"), ("5", "name"), ("6", "number")]
    _, _, found = forms.read_csv(data.encode(), default_country="49")
    assert "+4915112345601 is already in row 2" in found[0].message
    assert "scientific notation" in found[1].message and "format the column as text" in found[1].message
    assert "3 cells but the header names 2 columns" in found[2].message and "quotes" in found[2].message
    assert "the number is empty" in found[3].message


def test_csv_without_a_number_column_is_refused_with_the_fix():
    _, _, problems = forms.read_csv(b"phone_no,name\n+491,a\n", default_country=None)
    assert problems[0].row == 1 and "name the column of phone numbers 'number'" in problems[0].message
    _, _, empty = forms.read_csv(b"", default_country=None)
    assert "empty" in empty[0].message


def test_placeholders_are_filled_and_an_empty_value_is_a_problem_of_its_row():
    recipient = forms.Recipient("+491", "Anna", {"number": "+491", "name": "Anna", "City": "Köln"}, row=2)
    assert forms.fill("Hi {name} in {city}! {braces} stay", recipient)[0] == "Hi Anna in Köln! {braces} stay"
    empty = forms.Recipient("+492", "", {"number": "+492", "name": "", "City": ""}, row=3)
    text, problem = forms.fill("Hi {name}", empty)
    assert text == "" and (problem.row, problem.column) == (3, "name")
    assert forms.unknown_placeholders("Hi {name} {vip}", ["number", "name"]) == ["vip"]


def test_spreadsheet_cells_never_become_formulas():
    assert forms.spreadsheet_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert forms.spreadsheet_safe("+4915112345678") == "+4915112345678"
    assert forms.spreadsheet_safe("+1 (555)") == "'+1 (555)"
    assert forms.spreadsheet_safe("@cmd") == "'@cmd" and forms.spreadsheet_safe("Anna") == "Anna"


def test_the_counter_is_the_codecs_and_names_what_forces_ucs2():
    info = describe("It’s 5 € – “ok” 😀")
    assert (info["alphabet"], info["parts"]) == ("UCS-2", 1)
    assert info["forcing"] == ["’", "–", "“", "”", "😀"]
    assert info["replacements"] == {"’": "'", "–": "-", "“": '"', "”": '"'}
    long_gsm = describe("x" * 161)
    assert (long_gsm["alphabet"], long_gsm["parts"], long_gsm["per_part"]) == ("GSM-7", 2, 153)
    assert describe("{[]}")["units"] == 8  # extension characters take two septets


def test_lookalikes_make_word_processor_text_gsm7():
    text = "It’s “quoted” … – a\u00a0b café naïve"
    assert replace_lookalikes(text) == 'It\'s "quoted" ... - a b café naive'
    assert forcing_ucs2(replace_lookalikes(text)) == []
    assert forcing_ucs2("Привет") == ["П", "р", "и", "в", "е", "т"]
    assert replace_lookalikes("Привет 😀") == "Привет 😀"  # no look-alike: stays


def test_hourly_and_daily_charts_count_into_their_buckets():
    now = 1_790_000_000.0
    hour = int(now // 3600)
    tallies = {(hour, "sent"): 5, (hour, "delivered"): 4, (hour - 23, "received"): 2, (hour - 24, "sent"): 99}
    day = charts.hourly(tallies, now)
    assert day.totals == {"sent": 5, "delivered": 4, "failed": 0, "received": 2}
    assert len(day.rects) == 24 * 4
    tallest = max(day.rects, key=lambda r: r.height)
    assert tallest.kind == "sent" and tallest.title.endswith("5 sent")
    month = charts.daily(tallies, now)
    assert month.totals["sent"] == 104 and len(month.rects) == 30 * 4


def test_group_book_joins_config_and_console_groups_config_first():
    book = GroupBook({"oncall": ("+491",)}, {"club": ("+492",)})
    assert book["oncall"] == ("+491",) and book["club"] == ("+492",) and "club" in book
    book.set_console_group("oncall", ("+499",))  # a console group never shadows a config one
    assert book["oncall"] == ("+491",)
    book.set_console_group("club", None)
    assert "club" not in book and list(book) == ["oncall"] and len(book) == 1


@pytest.mark.parametrize("text, expected", [
    ("STOP", (STOP, "STOP")), (" s t o p \n", (STOP, "STOP")), ("Unsubscribe", (STOP, "UNSUBSCRIBE")),
    ("start", (START, "START")), ("stop it", None), ("please STOP", None), ("", None),
])
def test_stop_and_start_are_the_whole_text_case_and_spaces_ignored(text, expected):
    assert keyword_of(text, ("STOP", "UNSUBSCRIBE"), ("START",)) == expected


def test_opt_out_list_keeps_the_first_stop_and_says_when_in_the_reason():
    optouts = OptOutList()
    optouts.add("+491", 1_790_000_000.0, "STOP")
    optouts.add("+491", 1_790_000_100.0, "END")
    assert optouts.get("+491") == (1_790_000_000.0, "STOP")
    assert opted_out_reason(1_790_000_000.0).startswith("opted out (STOP received 20")
    optouts.remove("+491")
    assert optouts.get("+491") is None


def test_stop_is_kept_under_the_number_campaigns_go_to_whatever_form_the_sender_came_in(tmp_path):
    # Issue 11's "the sender's type of address is dropped", for opt-out: a STOP whose sender came
    # in national form ("01511234567", type national) was kept under those digits, while campaign
    # files are addressed +491511234567, so the person kept getting the campaign. An alphanumeric
    # sender that reads like a number is a name, not that number.
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    index = MessageIndex(tmp_path / "index.sqlite")
    optouts = OptOutList()
    settings = SimpleNamespace(keywords=("STOP",), start_keywords=("START",), confirm="Stopped.", confirm_start=None)
    handler = OptOutHandler(lambda: settings, spool, index, optouts, run_in_thread=lambda f, *a: _now(f, *a),
                            default_country=lambda: "49")

    def received(sender, toa, text, name):
        return MessageReceived(id=name, path="", sender=sender, text=text, modem="gsm1", sent=None,
                               received="2026-12-06T18:00:00+00:00", parts=1, incomplete=False, sender_toa=toa)

    asyncio.run(handler.handle(received("01511234567", 0xA1, "STOP", "in-1")))
    asyncio.run(handler.handle(received("4917612345678", 0x81, "stop", "in-2")))
    asyncio.run(handler.handle(received("0301234567", 0xD0, "STOP", "in-3")))
    assert sorted(number for number, _ in optouts.items()) == ["+491511234567", "+4917612345678"]
    assert sorted(index.optouts()) == ["+491511234567", "+4917612345678"]
    confirmations = [spool.read("outgoing", name) for name in spool.list("outgoing")]
    assert sorted(data.split(b"\n", 1)[0] for data in confirmations) == [b"To: +491511234567", b"To: +4917612345678"]
    asyncio.run(handler.handle(received("1511234567", 0xA1, "START", "in-4")))
    assert [number for number, _ in optouts.items()] == ["+4917612345678"]
    index.close()


def test_a_number_gets_few_opt_out_confirmations_however_often_its_words_are_sent(tmp_path):
    # Like two-way replies: senders can be forged, so STOP/START sent in a number's name must not
    # make the gateway text that number once per word. The list itself follows every word.
    spool = Spool(tmp_path / "spool")
    spool.ensure_dirs()
    index = MessageIndex(tmp_path / "index.sqlite")
    optouts = OptOutList()
    settings = SimpleNamespace(keywords=("STOP",), start_keywords=("START",), confirm="Stopped.", confirm_start="Back.")
    handler = OptOutHandler(lambda: settings, spool, index, optouts, run_in_thread=_now, clock=lambda: 1_790_000_000.0)
    for n in range(8):
        word = "STOP" if n % 2 == 0 else "START"
        asyncio.run(handler.handle(MessageReceived(
            id=f"in-{n}", path="", sender="+4915112345678", text=word, modem="gsm1", sent=None,
            received="2026-12-06T18:00:00+00:00", parts=1, incomplete=False, sender_toa=0x91)))
    assert len(spool.list("outgoing")) == 3
    assert optouts.get("+4915112345678") is None  # the last word was START
    index.close()


async def _now(function, *args):
    return function(*args)


def test_the_counter_uses_the_configs_national_tables_as_the_daemon_does():
    text = "Teşekkürler, görüşürüz! " * 4  # 96 characters: two UCS-2 parts, one with the Turkish tables
    plain = describe(text)
    assert (plain["alphabet"], plain["parts"], plain["national"]) == ("UCS-2", 2, {})
    assert plain["forcing"] == ["ş"]
    turkish = describe(text, ("tr",))
    assert (turkish["alphabet"], turkish["parts"], turkish["forcing"]) == ("GSM-7", 1, [])
    assert "Turkish" in turkish["national"].values()


def test_a_retry_keeps_trusted_headers_only_from_a_sealed_file():
    """The console queues (and so seals) a retry: a hand-written failed file's `Client:` and
    `Callback:` must not become real on the way (issue 11's trusted headers)."""
    from datetime import datetime, timezone

    from gsmgw.spool.format import build_failed, make_outgoing, read_spool_file, seal
    from gsmgw.web.sending import retry_file
    from helpers import SEAL_KEY

    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    door = make_outgoing(to="+4915112345678", text="x", extra={"Client": "app", "Callback": "https://a.example/"})
    for original, kept in ((seal(door, SEAL_KEY), True), (door, False)):
        failed = build_failed(original, failed=now, reason="expired", attempts=1)
        retried = retry_file(failed, now=now, old_id="old", seal_key=SEAL_KEY)
        assert (b"Client: app" in retried) is kept and (b"Callback: https://a.example/" in retried) is kept
        headers = read_spool_file(retried).headers
        assert headers.get("Retry_of") == "old" and headers.get("Failed") is None


def test_notices_to_a_page_space_out_as_more_pages_are_open_but_stay_within_a_second():
    from gsmgw.web.sse import MAX_GAP, MIN_GAP, Hub

    hub = Hub(snapshot=None)
    gaps = []
    for pages in (1, 25, 50, 100, 1000):
        hub.connections = {object() for _ in range(pages)}
        gaps.append(hub.gap())
    assert gaps == [MIN_GAP, MIN_GAP, 0.5, MAX_GAP, MAX_GAP] and MAX_GAP < 1.0
