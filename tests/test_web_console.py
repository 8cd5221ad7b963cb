"""The web console in a real browser (Playwright with Debian's chromium) against a real
`gsmgw run --simulate 2`: the simulated network on ptys, the daemon, the HTTP listener.

One daemon and one browser serve every test of this module (they share the worker through
`xdist_group`); each person has their own browser context (cookies). Waits are Playwright's
auto-waiting assertions with timeouts; nothing sleeps.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gsmgw.passwords import hash_password
from gsmgw.sim.control import ControlClient
from gsmgw.spool.format import read_spool_file
from helpers import free_port, stop_process, wait_for_text

# A test dependency (setup.cfg's test extra) like pytest itself: missing, the module fails to
# import and the run fails; it never skips (nor does a missing /usr/bin/chromium, below).
import playwright.sync_api as playwright_api  # noqa: E402
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # generous: the machine may be busy; only a failure waits this long

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORDS = {"boss": "boss-password", "anna": "anna-password", "viola": "viola-password", "mia": "mia-password"}
BOB_TOKEN = "bob-token-0123456789"
ANNA_TOKEN = "anna-token-0123456789"
WAIT = 30_000  # ms
CLUB = [f"+49151700000{n:02d}" for n in range(50)]


class Console:
    def __init__(self, root: Path, base: str, link: str, process, browser):
        self.root = root
        self.spool = root / "spool"
        self.base = base
        self.link = link
        self.process = process
        self.browser = browser
        self.control = ControlClient(self.spool / ".sim" / "control.sock")
        self._pages: dict[str, object] = {}

    def page(self, user: str):
        """A signed-in page of `user` (signed in with the password once, then reused)."""
        if user not in self._pages:
            context = self.browser.new_context(viewport={"width": 1200, "height": 900})
            context.set_default_timeout(WAIT)
            page = context.new_page()
            page.goto(self.base + "/login")
            page.get_by_label("User").fill(user)
            page.get_by_label("Password").fill(PASSWORDS[user])
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            self._pages[user] = page
        return self._pages[user]

    def fresh_page(self):
        context = self.browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(WAIT)
        return context.new_page()

    def spool_files(self, directory: str) -> list[bytes]:
        path = self.spool / directory
        return [p.read_bytes() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]

    def outgoing_texts(self) -> list[bytes]:
        return [data for directory in ("outgoing", "checked", "sent", "failed") for data in self.spool_files(directory)]


def write_config(root: Path, port: int) -> Path:
    for user, password in PASSWORDS.items():
        path = root / f"{user}.pw"
        path.write_text(hash_password(password, ln=8) + "\n")
        os.chmod(path, 0o600)
    config = root / "gsmgw.yaml"
    config.write_text(textwrap.dedent(f"""\
        default_country: "49"
        defaults: {{max_parts: 3}}
        http: {{listen: "127.0.0.1:{port}"}}
        clients:
          - name: boss
            role: admin
            web: {{password_file: {root}/boss.pw}}
            allow: ["*", "modem:*"]
          - name: anna
            web: {{password_file: {root}/anna.pw}}
            token: {ANNA_TOKEN}
            allow: ["+49*", "group:*", "modem:*"]
          - name: bob
            token: {BOB_TOKEN}
            allow: ["+49*"]
          - name: viola
            role: viewer
            web: {{password_file: {root}/viola.pw}}
            allow: ["modem:*"]
          - name: mia
            web: {{password_file: {root}/mia.pw}}
            max_parts: 1
            allow: ["+49*"]
        optout:
          confirm: "You will get no more messages from us. Send START to undo."
        """))
    os.chmod(config, 0o600)
    return config


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; .ci/run does)")
    root = tmp_path_factory.mktemp("console")
    port = free_port()
    config = write_config(root, port)
    log = root / "daemon.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gsmgw", "run", "--simulate", "2", "--spool", str(root / "spool"), "-c", str(config),
             "--latency", "0.005"], stdout=out, stderr=subprocess.STDOUT)
    playwright = browser = None
    try:
        text = wait_for_text(log, r"login\?token=\S+", 30)
        link = re.search(r"(http://127\.0\.0\.1:\d+/login\?token=\S+)", text).group(1)
        wait_for_text(log, r"modem1: starting -> ready", 30)
        playwright = playwright_api.sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield Console(root, f"http://127.0.0.1:{port}", link, process, browser)
    finally:
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()
        stop_process(process, 30)


def test_sign_in_with_the_one_time_link_once(console):
    page = console.fresh_page()
    page.goto(console.link)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("boss")
    expect(page.locator("article.modem h2")).to_have_text(["modem0", "modem1"])
    other = console.fresh_page()
    other.goto(console.link)  # used: a second click does not sign anybody in
    expect(other.get_by_role("alert")).to_contain_text("each link works once")
    expect(other.get_by_role("button", name="Sign in")).to_be_visible()
    page.context.close()
    other.context.close()


def test_sign_in_with_a_password_and_a_wrong_one(console):
    page = console.fresh_page()
    page.goto(console.base + "/compose")  # not signed in: to the sign-in page, and back after it
    page.get_by_label("User").fill("anna")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The user name or the password is wrong.")
    expect(page.get_by_label("User")).to_have_value("anna")
    page.get_by_label("Password").fill(PASSWORDS["anna"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Compose")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "gsmgw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    response = page.request.get(console.base + "/compose")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"
    page.context.close()


def test_send_and_watch_queued_sent_delivered_live(console):
    page = console.page("anna")
    number = "+4915112340001"
    for modem in (0, 1):
        console.control.set_latency(modem, 1.0)  # long enough to see `queued`
    console.control.set_report_outcome(number, [0x20, 0x00], interval=1.0)  # pending, then delivered
    try:
        page.goto(console.base + "/compose")
        page.get_by_label("To").fill(number)
        page.get_by_label("Message").fill("Watch me go")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("heading")).to_contain_text(number)
        navigations = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
        state = page.locator(".bubble.out").filter(has_text="Watch me go").locator(".state")
        expect(state).to_have_text("queued")
        expect(state).to_have_text("sent")
        expect(state).to_have_text("delivered")
        assert navigations == [], "the states came without a reload"
    finally:
        for modem in (0, 1):
            console.control.set_latency(modem, 0.005)


def test_an_inbound_reply_appears_live_and_a_reply_goes_out(console):
    page = console.page("anna")
    number = "+4915112340002"
    page.goto(console.base + f"/conversations/{number}")
    expect(page.locator("body")).to_have_attribute("data-stream", "open")
    console.control.inject_sms(1, number, "Yes, see you at 5")
    expect(page.locator(".bubble.in")).to_have_text(re.compile("Yes, see you at 5"))
    page.get_by_label("Message").fill("Great, thanks")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".bubble.out").filter(has_text="Great, thanks").locator(".state")).to_have_text("delivered")
    page.goto(console.base + "/conversations")
    expect(page.locator(".conversation").filter(has_text=number)).to_contain_text("You: Great, thanks")


def test_form_errors_sit_beside_their_field_and_keep_what_was_typed(console):
    page = console.page("anna")
    page.goto(console.base + "/compose")
    page.get_by_label("To").fill("+4915112340003, 12ab, group:nosuch")
    page.get_by_label("Message").fill("Kept text")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#to-error")).to_contain_text("'12ab' is neither a phone number")
    expect(page.locator("#to-error")).to_contain_text("unknown group 'nosuch'")
    expect(page.get_by_label("To")).to_have_value("+4915112340003, 12ab, group:nosuch")
    expect(page.get_by_label("Message")).to_have_value("Kept text")
    page.get_by_label("To").fill("+4915112340003")
    page.get_by_label("Message").fill("x" * 500)  # 4 parts; this config allows 3
    expect(page.locator("#counter")).to_contain_text("4 parts")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#message-error")).to_contain_text("needs 4 SMS parts")
    assert not any(b"+4915112340003" in data for data in console.outgoing_texts())


def test_compose_counter_names_ucs2_characters_and_replaces_them(console):
    page = console.page("anna")
    page.goto(console.base + "/compose")
    page.get_by_label("Message").fill("It’s “done” – 100 €")
    expect(page.locator("#counter .count")).to_have_text("19 characters · 1 part · UCS-2 · 51 left in this part")
    expect(page.locator("#counter .forcing")).to_contain_text("’ “ ” –")
    page.get_by_role("button", name=re.compile("GSM-7 look-alikes")).click()
    expect(page.get_by_label("Message")).to_have_value('It\'s "done" - 100 €')
    expect(page.locator("#counter .count")).to_have_text("19 characters · 1 part · GSM-7 · 140 left in this part")


def test_import_contacts_from_csv(console):
    page = console.page("anna")
    page.goto(console.base + "/contacts")
    bad = "number,name,note,groups\n+4915188800001,Clara,met at fair,fair\nnot-a-number,Dora,,\n"
    choose_csv(page, "CSV file", bad)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".row-errors")).to_contain_text("3")  # row 3
    expect(page.locator(".row-errors td").nth(1)).to_have_text("number")
    expect(page.locator("table.list")).not_to_contain_text("Clara")  # nothing imported
    good = "number;name;note;groups\n+4915188800001;Clara;met at fair;fair\n0151 88800002;Dora;;fair\n"
    choose_csv(page, "CSV file", good)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".notice")).to_have_text("Imported 2 contact(s).")
    expect(page.locator("table.list")).to_contain_text("Clara")
    expect(page.locator("table.list")).to_contain_text("+4915188800002")
    expect(page.locator("details.group summary").filter(has_text="group:fair")).to_contain_text("(2)")
    export = page.request.get(console.base + "/contacts/export.csv")
    assert "+4915188800001,Clara,met at fair,fair" in export.text()


def choose_csv(page, label: str, text: str) -> None:
    page.get_by_label(label).set_input_files(files=[{"name": "upload.csv", "mimeType": "text/csv", "buffer": text.encode()}])


def make_club(page, base):
    page.goto(base + "/contacts")
    page.get_by_label("Group name").fill("club")
    page.get_by_label("Members", exact=True).fill("\n".join(CLUB))
    page.get_by_role("button", name="Save group").click()
    expect(page.locator(".notice")).to_have_text("Group club saved.")


def start_campaign(page, base, name, recipients, text):
    page.goto(base + "/campaigns")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Recipients").fill(recipients)
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def test_a_50_recipient_campaign_then_stop_and_the_next_campaign_skips_it(console):
    page = console.page("anna")
    make_club(page, console.base)
    start_campaign(page, console.base, "Club news", "group:club", "Hello {number}, the club opens at 6.")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    expect(page.locator("#count-recipients")).to_have_text("50")
    expect(page.locator("#count-delivered")).to_have_text("50", timeout=60_000)
    expect(page.locator("#count-failed")).to_have_text("0")
    expect(page.locator("#campaign-progress")).to_have_attribute("value", "50")
    expect(page.locator(".progress")).to_have_text("finished")
    assert navigations == [], "the counts and the progress came live, without a reload"

    stopper = CLUB[7]
    console.control.inject_sms(0, stopper, " stop ")
    optout = console.page("boss")
    optout.goto(console.base + "/optout")
    expect(optout.locator("table.list")).to_contain_text(stopper, timeout=WAIT)
    optout.reload()
    expect(optout.locator("table.list")).to_contain_text("STOP")

    start_campaign(page, console.base, "Club news 2", "group:club", "Second news for {number}.")
    expect(page.locator("#count-delivered")).to_have_text("49", timeout=60_000)
    expect(page.locator("#count-opted-out")).to_have_text("1")
    expect(page.locator("#count-failed")).to_have_text("0")
    failed = [read_spool_file(data).headers for data in console.spool_files("failed")
              if b"Second news" in data and stopper.encode() in data]
    assert len(failed) == 1 and failed[0].get("Fail_reason").startswith("opted out (STOP received ")
    export = page.request.get(page.url + "/export.csv").text()
    assert export.count("\n") == 51 and f"{stopper},,opted out," in export
    # The confirmation went back to the sender; other (non-campaign) messages still reach them.
    expect(console.page("boss").locator("body")).to_be_visible()
    thread = console.page("boss")
    thread.goto(console.base + f"/conversations/{stopper}")
    expect(thread.locator(".bubble.out").filter(has_text="no more messages")).to_have_count(1)


def test_a_campaign_csv_with_a_bad_row_queues_nothing_until_it_is_skipped(console):
    page = console.page("anna")
    page.goto(console.base + "/campaigns")
    csv = "number,name,city\n+4915177700001,Eva,Köln\n+4915177700002,,Bonn\n+4915177700003,Finn,Aachen\n"
    page.get_by_label("Name").fill("Cities")
    page.get_by_label("Message").fill("Hi {name}, news from {city}")
    choose_csv(page, "File", csv)
    page.get_by_role("button", name="Start").click()
    errors = page.locator(".row-errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("3")
    expect(errors.first).to_contain_text("name")
    assert not any(b"news from" in data for data in console.outgoing_texts())
    expect(page.get_by_label("Name")).to_have_value("Cities")
    page.get_by_label(re.compile("Skip the 1 bad row")).check()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name="Cities")).to_be_visible()
    expect(page.locator("#count-recipients")).to_have_text("2")
    expect(page.locator("#count-delivered")).to_have_text("2")
    texts = sorted(data.split(b"\n\n", 1)[1].strip() for data in console.outgoing_texts() if b"news from" in data)
    assert texts == ["Hi Eva, news from Köln".encode(), b"Hi Finn, news from Aachen"]


class AttackerSite:
    """A page on another origin whose form posts to the console (a cross-site request)."""

    def __init__(self, target: str):
        page = textwrap.dedent(f"""\
            <!doctype html><title>Win a prize</title>
            <form method="post" action="{target}/compose">
              <input name="to" value="+4915199999999"><input name="message" value="cross-site">
              <button type="submit">Claim</button>
            </form>""").encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass  # quiet

        self.server = http.server.HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_cross_site_post_is_refused_and_sends_nothing(console):
    page = console.page("anna")
    site = AttackerSite(console.base)
    try:
        page.goto(site.url)
        page.get_by_role("button", name="Claim").click()
        expect(page.get_by_role("heading")).to_have_text("Refused: the form came from another site")
        expect(page.get_by_role("alert")).to_contain_text("nothing was sent")
    finally:
        site.close()
    forged = page.request.post(console.base + "/compose", form={"csrf": "forged", "to": "+4915199999999",
                                                                "message": "cross-site"})
    assert forged.status == 403 and "security token is missing or wrong" in forged.text()
    assert not any(b"cross-site" in data for data in console.outgoing_texts())


def test_an_ended_session_sends_nothing_and_says_so(console):
    page = console.fresh_page()
    page.goto(console.base + "/login")
    page.get_by_label("User").fill("anna")
    page.get_by_label("Password").fill(PASSWORDS["anna"])
    page.get_by_role("button", name="Sign in").click()
    page.goto(console.base + "/compose")
    other = page.context.new_page()
    other.goto(console.base + "/logout")
    other.get_by_role("main").get_by_role("button", name="Sign out").click()
    page.get_by_label("To").fill("+4915112340009")
    page.get_by_label("Message").fill("after sign-out")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading")).to_have_text("Your session has ended")
    expect(page.get_by_role("alert")).to_contain_text("nothing was sent")
    assert not any(b"after sign-out" in data for data in console.outgoing_texts())
    page.context.close()


def test_a_viewer_cannot_send(console):
    page = console.page("viola")
    page.goto(console.base + "/compose")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    response = page.request.post(console.base + "/compose", form={"csrf": csrf, "to": "+4915112340010",
                                                                  "message": "viewer tries"})
    assert response.status == 403 and "may read but not send" in response.text()
    page.goto(console.base + "/campaigns")
    expect(page.get_by_role("button", name="Start")).to_be_disabled()
    assert not any(b"viewer tries" in data for data in console.outgoing_texts())


def test_the_console_caps_a_message_at_the_clients_max_parts(console):
    # Issue 11: every door obeys the client's max_parts. The console checked texts against
    # defaults.max_parts (3 here), so mia, whose client allows 1 part, sent 3-part messages.
    page = console.page("mia")
    page.goto(console.base + "/compose")
    expect(page.locator("#counter")).to_have_attribute("data-max-parts", "1")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    two_parts = "mia " * 50  # 200 GSM-7 characters
    response = page.request.post(console.base + "/compose", form={"csrf": csrf, "to": "+4915112340011",
                                                                  "message": two_parts})
    assert response.status == 400 and "at most 1 are" in response.text()
    response = page.request.post(console.base + "/campaigns", form={"csrf": csrf, "name": "mia's", "recipients":
                                                                    "+4915112340011", "message": two_parts})
    assert response.status == 400 and "at most 1 are" in response.text()
    assert not any(b"mia mia" in data for data in console.outgoing_texts())


def api_send(console, token: str, number: str, text: str) -> None:
    """Queue a message over the HTTP API, as an application does."""
    request = urllib.request.Request(
        console.base + "/api/v1/messages", data=json.dumps({"to": number, "text": text}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def test_an_operator_sees_no_other_clients_messages(console):
    number = "+4915155500001"
    api_send(console, BOB_TOKEN, number, "bob's secret")
    boss = console.page("boss")
    boss.goto(console.base + f"/conversations/{number}")
    expect(boss.locator(".bubble.out")).to_contain_text("bob's secret")  # an admin sees it
    anna = console.page("anna")
    anna.goto(console.base + f"/conversations/{number}")
    expect(anna.locator(".thread")).to_contain_text("No messages with this number that you may see.")
    anna.goto(console.base + "/conversations?q=secret")
    expect(anna.locator(".conversations")).not_to_contain_text("bob's secret")
    anna.goto(console.base + f"/messages?number={number}")
    expect(anna.locator("table.messages")).to_contain_text("No messages match.")


def test_what_a_person_sent_over_the_api_is_theirs_in_the_console_too(console):
    number = "+4915155500002"
    api_send(console, ANNA_TOKEN, number, "anna's script")
    anna = console.page("anna")
    anna.goto(console.base + f"/conversations/{number}")
    expect(anna.locator(".bubble.out")).to_contain_text("anna's script")
    expect(anna.locator(".bubble.out .state")).to_have_text("delivered")


def test_an_inbound_script_is_shown_as_text_and_never_runs(console):
    page = console.page("anna")
    number = "+4915166600001"
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> \u202eevil ' + "😀" * 1000
    page.goto(console.base + f"/conversations/{number}")
    expect(page.locator("body")).to_have_attribute("data-stream", "open")
    console.control.inject_sms(0, number, hostile)
    bubble = page.locator(".bubble.in .text")
    expect(bubble).to_contain_text('<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">')
    page.reload()
    expect(bubble).to_contain_text("<script>")
    assert page.evaluate("window.pwned === undefined")
    assert page.locator(".bubble.in img").count() == 0 and page.locator(".bubble.in script").count() == 0
    # 1,000 emoji wrap inside the page. Measured in one step of the page's own script: the live
    # part may be swapped in (innerHTML) between finding the bubble and measuring it, and a
    # detached bubble has no box (this failed under load).
    box = page.evaluate("""() => {
        const r = document.querySelector(".bubble.in").getBoundingClientRect();
        return {left: r.left, right: r.right, width: document.documentElement.scrollWidth};
    }""")
    assert box["left"] >= 0 and box["right"] <= 1200 and box["width"] <= 1200, box
    page.goto(console.base + "/conversations")
    assert page.evaluate("window.pwned === undefined")


# Outside text that would run if any page put it into HTML unescaped: as an element, as an
# attribute breaking out of a quoted value, and as an event handler inside a tag.
XSS_SCRIPT = "<script>window.pwned='script'</script>"
XSS_IMG = '"><img src=x onerror="window.pwned=\'img\'">'
XSS_ATTR = "\" onerror=\"window.pwned='attr'\" x=\"' onfocus='window.pwned=1' autofocus x='"
XSS_SVG = "<svg onload=window.pwned='svg'>"
WATCH_SCRIPT = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def watched_page(console, user):
    """The signed-in page of `user`, recording every Content-Security-Policy violation from its
    next navigation on: an escaped text causes none, so a violation means some text reached the
    HTML as markup (and only the CSP stopped it)."""
    page = console.page(user)
    if not getattr(page, "watched", False):
        page.add_init_script(WATCH_SCRIPT)
        page.watched = True
    return page


def assert_inert(page, where):
    assert page.evaluate("window.pwned") is None, where
    assert page.evaluate("window.__violations") == [], where
    injected = page.locator("img[src='x'], svg[onload], [onerror], [onfocus], [onload], script:not([src])")
    assert injected.count() == 0, where


def test_outside_text_from_sms_csv_and_form_fields_is_shown_and_never_runs(console):
    page = watched_page(console, "anna")
    sms_from, csv_number = "+4915166600031", "+4915166600021"

    # An SMS: the thread, the conversation list, the message browser.
    console.control.inject_sms(0, sms_from, XSS_IMG + XSS_ATTR)
    page.goto(console.base + f"/conversations/{sms_from}")
    expect(page.locator(".bubble.in .text")).to_have_text(XSS_IMG + XSS_ATTR)
    assert_inert(page, "thread")
    for path in ("/conversations", f"/messages?number=%2B{sms_from[1:]}"):
        page.goto(console.base + path)
        expect(page.get_by_role("main")).to_contain_text('"><img src=x onerror=')
        assert_inert(page, path)

    # A contacts CSV: a bad row echoes its number in the error table, then names and notes are listed.
    page.goto(console.base + "/contacts")
    bad = f"number,name\n{XSS_SVG},Eve\n"
    choose_csv(page, "CSV file", bad)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".row-errors")).to_contain_text(XSS_SVG)
    assert_inert(page, "contacts import errors")
    quoted = lambda text: '"' + text.replace('"', '""') + '"'  # noqa: E731
    good = f"number,name,note,groups\n{csv_number},{quoted(XSS_SCRIPT)},{quoted(XSS_IMG)},xss\n"
    choose_csv(page, "CSV file", good)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".notice")).to_have_text("Imported 1 contact(s).")
    expect(page.locator("table.list")).to_contain_text(XSS_SCRIPT)
    assert_inert(page, "contacts")

    # A campaign CSV with a bad row: the form keeps the typed name (an attribute) beside the errors.
    page.goto(console.base + "/campaigns")
    page.get_by_label("Name").fill(XSS_ATTR)
    page.get_by_label("Message").fill("Hi {name} from {city}")
    rows = f"number,name,city\n{csv_number},{quoted(XSS_SCRIPT)},{quoted(XSS_IMG)}\n{quoted(XSS_IMG)},Eve,Bonn\n"
    choose_csv(page, "File", rows)
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".row-errors")).to_contain_text("onerror=")
    expect(page.get_by_label("Name")).to_have_value(XSS_ATTR)
    assert_inert(page, "campaign form with errors")
    page.get_by_label(re.compile("Skip the 1 bad row")).check()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS_ATTR)
    expect(page.locator("#count-recipients")).to_have_text("1")
    assert_inert(page, "campaign page")
    page.goto(console.base + "/campaigns")
    expect(page.get_by_role("main")).to_contain_text("window.pwned='attr'")
    assert_inert(page, "campaign list")
    page.goto(console.base + f"/conversations/{csv_number}")
    expect(page.locator(".bubble.out .text")).to_have_text(f"Hi {XSS_SCRIPT} from {XSS_IMG}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS_SCRIPT)  # the contact's name
    assert_inert(page, "thread of the campaign's message")

    # Form fields and the address bar: an error echoes the To field; a number in the path.
    page.goto(console.base + "/compose")
    page.get_by_label("To").fill(XSS_IMG)
    page.get_by_label("Message").fill(XSS_SVG)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#to-error")).to_contain_text("onerror=")
    expect(page.get_by_label("To")).to_have_value(XSS_IMG)
    expect(page.get_by_label("Message")).to_have_value(XSS_SVG)
    assert_inert(page, "compose with errors")
    page.goto(console.base + "/conversations/" + urllib.parse.quote(XSS_IMG, safe=""))
    expect(page.get_by_role("heading", level=1)).to_have_text(XSS_IMG)
    assert_inert(page, "a thread whose number is markup")

    # The admin's audit log repeats names and details of all of it.
    boss = watched_page(console, "boss")
    boss.goto(console.base + "/audit")
    expect(boss.locator("table.list")).to_contain_text("started a campaign")
    expect(boss.locator("table.list")).to_contain_text("onfocus=")
    assert_inert(boss, "audit log")


def test_the_dashboard_follows_a_modem_unplugged_and_back(console):
    page = console.page("boss")
    page.goto(console.base + "/")
    card = page.locator("article.modem", has_text="modem1")
    expect(card.locator(".state-word")).to_have_text("ready")
    console.control.unplug(1)
    try:
        expect(card.locator(".state-word")).to_have_text("absent")
    finally:
        console.control.replug(1)
    expect(card.locator(".state-word")).to_have_text("ready", timeout=30_000)
    expect(page.locator("figure.chart").first).to_contain_text("Last 24 hours")


def test_the_simulator_page_texts_the_gateway_and_shows_what_phones_got(console):
    page = console.page("boss")
    page.goto(console.base + "/simulator")
    page.get_by_label("From").fill("+4915144400001")
    page.get_by_label("To SIM").select_option(label="modem1 (+4917000000001)")
    page.get_by_label("Text").fill("Hello gateway")
    page.get_by_role("button", name="Send from this phone").click()
    expect(page.locator(".notice")).to_contain_text("Sent from +4915144400001 to modem1")
    thread = console.page("boss")
    thread.goto(console.base + "/conversations/+4915144400001")
    expect(thread.locator(".bubble.in")).to_contain_text("Hello gateway")
    thread.get_by_label("Message").fill("Hello phone")
    thread.get_by_role("button", name="Send").click()
    expect(thread.locator(".bubble.out .state")).to_have_text("delivered")
    thread.goto(console.base + "/simulator")
    expect(thread.locator("article.phone", has_text="+4915144400001")).to_contain_text("Hello phone")


def test_simulate_inject_reaches_a_run_simulate(console):
    result = subprocess.run([sys.executable, "-m", "gsmgw", "simulate", "inject", "--spool", str(console.spool),
                             "--modem", "modem0", "--from", "+4915133300001", "via the command line"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "sent from +4915133300001 to modem0" in result.stdout
    page = console.page("boss")
    page.goto(console.base + "/conversations/+4915133300001")
    expect(page.locator(".bubble.in")).to_contain_text("via the command line")
    thread = subprocess.run([sys.executable, "-m", "gsmgw", "thread", "+4915133300001", "--spool", str(console.spool)],
                            capture_output=True, text=True, timeout=30)
    assert "<- received   via the command line  [modem0]" in thread.stdout


def test_cancel_a_queued_message_and_retry_a_failed_one(console):
    page = console.page("anna")
    page.goto(console.base + "/compose")
    page.get_by_label("To").fill("+4915112340020")
    page.get_by_label("Message").fill("Later, please")
    later = datetime.now() + timedelta(days=400)
    page.get_by_label("Send after").fill(later.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".bubble.out .state")).to_have_text("queued")
    page.goto(console.base + "/messages?state=queued&number=%2B4915112340020")
    row = page.locator("tr", has_text="Later, please")
    expect(row.get_by_role("button", name=re.compile("Cancel"))).to_be_visible()
    row.get_by_role("button", name=re.compile("Cancel")).click()
    expect(page.locator(".notice")).to_contain_text("Cancelled")
    page.goto(console.base + "/messages?number=%2B4915112340020")
    failed = page.locator("tr", has_text="Later, please")
    expect(failed.locator(".state")).to_have_text("failed")
    expect(failed).to_contain_text("cancelled by anna in the web console")
    failed.get_by_role("button", name=re.compile("Retry")).click()
    expect(page.locator(".notice")).to_contain_text("Queued")
    page.goto(console.base + "/conversations/+4915112340020")
    expect(page.locator(".bubble.out .state").last).to_have_text("queued")  # its Send_after is kept


def test_admin_reads_the_audit_log_others_may_not(console):
    anna = console.page("anna")
    anna.goto(console.base + "/contacts")
    anna.get_by_label("Name", exact=True).fill("Audited Contact")
    anna.get_by_label("Number", exact=True).fill("+4915199900042")
    anna.get_by_role("button", name="Save", exact=True).click()
    expect(anna.locator(".notice")).to_have_text("Saved.")
    boss = console.page("boss")
    boss.goto(console.base + "/audit")
    expect(boss.locator("table.list")).to_contain_text("signed in")
    expect(boss.locator("table.list")).to_contain_text("saved a contactAudited Contact +4915199900042")
    anna.goto(console.base + "/audit")
    expect(anna.get_by_role("heading")).to_have_text("Only for admins")


def test_wrong_passwords_slow_that_user_down(console):
    page = console.fresh_page()
    page.goto(console.base + "/login")
    token = page.locator("input[name=csrf]").get_attribute("value")
    answers = []
    for _ in range(6):
        response = page.request.post(console.base + "/login", form={"csrf": token, "user": "mallory",
                                                                    "password": "guess"})
        answers.append(response.status)
    assert answers == [401] * 5 + [429]
    assert "Too many wrong passwords for this user" in response.text()
    other = page.request.post(console.base + "/login", form={"csrf": token, "user": "viola", "password": "guess"})
    assert other.status == 401  # another user is not slowed down
    page.context.close()


def test_the_modem_page_shows_the_balance_and_sends_a_test_sms(console):
    page = console.page("anna")
    page.goto(console.base + "/modems/modem1")
    expect(page.get_by_role("heading", name="Modem modem1")).to_be_visible()
    expect(page.locator(".card").first).to_contain_text("262")  # the IMSI
    # run --simulate gives each modem balance: "*100#"; the daemon asks the simulated network.
    page.get_by_role("button", name="Check balance").click()
    expect(page.locator(".balance")).to_have_text("Guthaben: 12,34 EUR")
    expect(page.get_by_text("Asked with *100# at")).to_be_visible()
    page.goto(console.base + "/modems/modem1")  # the last answer stays on the page; looking asks nothing
    expect(page.locator(".balance")).to_have_text("Guthaben: 12,34 EUR")
    metrics = urllib.request.urlopen(console.base + "/metrics").read().decode()
    assert 'gsmgw_modem_balance{modem="modem1"} 12.34' in metrics  # the console's answer is the daemon's
    page.get_by_label("To").fill("+4915112340030")
    page.get_by_role("button", name="Send test SMS").click()
    bubble = page.locator(".bubble.out").filter(has_text="gsmgw test SMS via modem1")
    expect(bubble.locator(".state")).to_have_text("delivered")
    expect(bubble).to_contain_text("modem1")
