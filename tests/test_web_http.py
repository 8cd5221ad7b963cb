"""The web console's rules that hold for every request, checked over HTTPS against a real gateway
in this process (gsmgw.daemon.app.Gateway on simulated modems, its HTTP listener under TLS):

- every form POST of the console (each route the console installs, found in the router) is
  refused, with nothing done, without the session's CSRF token, from another site's page, without
  a session, and, for the routes that act, from a viewer;
- the session cookie is HttpOnly, SameSite=Strict and, under TLS, Secure; a sign-in needs the
  sign-in page's own token;
- no page lists a spool directory of the history (sent/, failed/, incoming/, report/): pages read
  the message index, so they cost the same with 100,000 messages as with 10 (Python's audit
  events os.listdir/os.scandir are raised by every directory listing, whoever makes it).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
import textwrap
from pathlib import Path

import aiohttp

from gsmgw.config import load_config
from gsmgw.daemon.app import Gateway
from gsmgw.passwords import hash_password
from gsmgw.sim import SimNetwork
from gsmgw.spool.index import Campaign, Contact, Scope
from helpers import free_port, self_signed_certificate

PASSWORDS = {"boss": "boss-password", "anna": "anna-password", "viola": "viola-password"}
ANNA_TOKEN = "anna-token-0123456789"
FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}
NUMBER = "+4915112345678"
HISTORY = ("sent", "failed", "incoming", "report")

# What each POST would do if its checks let it through (fields as the console's forms name them).
FORMS = {
    "/compose": {"to": NUMBER, "message": "forged"},
    "/compose/count": {"text": "forged"},
    "/compose/replace": {"text": "forged"},
    "/campaigns": {"name": "forged", "recipients": NUMBER, "message": "forged"},
    "/contacts": {"name": "Forged", "number": NUMBER},
    "/contacts/delete": {"number": NUMBER},
    "/contacts/import": {"file": "number,name\n+4915112345679,Forged\n"},
    "/contacts/groups": {"name": "forged", "members": NUMBER},
    "/contacts/groups/delete": {"name": "forged"},
    "/optout": {"number": NUMBER},
    "/optout/remove": {"number": NUMBER},
    "/modems/{name}/test": {"to": NUMBER},
    "/conversations/{number}": {"message": "forged"},
    "/simulator": {"sender": NUMBER, "sim": "0", "text": "forged"},
}
# POSTs any signed-in person may make: pure computations for the compose counter, and the
# simulator's outside phones (which the gateway does not send from).
ANY_ROLE = {"/compose/count", "/compose/replace", "/simulator"}


def write_config(tmp_path: Path, network: SimNetwork, cert: Path, key: Path) -> Path:
    for user, password in PASSWORDS.items():
        (tmp_path / f"{user}.pw").write_text(hash_password(password, ln=8) + "\n")
        (tmp_path / f"{user}.pw").chmod(0o600)
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - {{name: gsm1, port: {network.modems[0].path}, balance: "*100#"}}
        http: {{listen: "127.0.0.1:{free_port()}", tls: {{cert: {cert}, key: {key}}}}}
        web: {{enabled: true}}
        groups: {{oncall: ["+4915100000001"]}}
        clients:
          - {{name: boss, role: admin, web: {{password_file: {tmp_path}/boss.pw}}, allow: ["*", "modem:*"]}}
          - {{name: anna, token: {ANNA_TOKEN}, web: {{password_file: {tmp_path}/anna.pw}}, allow: ["+49*", "modem:*"]}}
          - {{name: viola, role: viewer, web: {{password_file: {tmp_path}/viola.pw}}, allow: ["modem:*"]}}
        """))
    path.chmod(0o600)
    return path


class Browser:
    """One person's cookies over HTTPS (aiohttp; the browser tests are in test_web_console.py)."""

    def __init__(self, base: str, trust: ssl.SSLContext):
        self.base = base
        self.trust = trust
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.set_cookies: list[str] = []

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, ssl=self.trust, allow_redirects=False) as response:
            return response.status, await response.text()

    async def post(self, path: str, fields: dict, headers: dict | None = None) -> tuple[int, str]:
        async with self.session.post(self.base + path, data=fields, ssl=self.trust, headers=headers or {},
                                     allow_redirects=False) as response:
            return response.status, await response.text()

    async def sign_in(self, user: str) -> str:
        """Signs in with the password; returns the session's CSRF token."""
        _, page = await self.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        async with self.session.post(self.base + "/login", ssl=self.trust, allow_redirects=False,
                                     data={"user": user, "password": PASSWORDS[user], "csrf": token}) as response:
            assert response.status == 303, await response.text()
            self.set_cookies = response.headers.getall("Set-Cookie", [])
        _, page = await self.get("/compose")
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    async def close(self) -> None:
        await self.session.close()


def run(tmp_path, scenario):
    cert, key = self_signed_certificate(tmp_path)  # openssl: fails, never skips, without it
    network = SimNetwork(tmp_path / "sim", modems=1, latency=0.01)
    network.start()

    async def main():
        config = load_config(write_config(tmp_path, network, cert, key))
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        trust = ssl.create_default_context(cafile=str(cert))
        browsers = []

        def browser() -> Browser:
            browsers.append(Browser(f"https://127.0.0.1:{config.http.listen_port}", trust))
            return browsers[-1]

        try:
            while any(worker.state != "ready" for worker in gateway.workers.values()):
                await asyncio.sleep(0.05)
            await asyncio.wait_for(scenario(gateway, network, browser), 90)
        finally:
            for b in browsers:
                await b.close()
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def console_posts(gateway) -> list[str]:
    """Every POST path the console installed (the API's own routes answer to tokens, not cookies)."""
    router = gateway.ctx.console.server._runner.app.router
    paths = set()
    for route in router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "POST" and path and not path.startswith(("/api/", "/cgi-bin/", "/login", "/logout")):
            paths.add(path)
    return sorted(paths)


def concrete(path: str) -> str:
    return path.replace("{name}", "gsm1").replace("{number}", NUMBER).replace("{id}", "no-such-id")


def test_every_console_post_is_refused_without_token_origin_session_or_role(tmp_path):
    async def scenario(gateway, network, browser):
        anna, viola, nobody = browser(), browser(), browser()
        anna_csrf = await anna.sign_in("anna")
        viola_csrf = await viola.sign_in("viola")
        [session] = [c for c in anna.set_cookies if c.startswith("gsmgw_session=")]
        flags = {part.strip().split("=")[0].lower() for part in session.split(";")[1:]}
        assert {"httponly", "secure", "samesite", "path"} <= flags and "samesite=strict" in session.lower()
        assert "max-age" not in flags and "expires" not in flags  # ends with the browser, or after 8 h idle
        # A sign-in without the sign-in page's token (a login CSRF) signs nobody in.
        status, page = await nobody.post("/login", {"user": "anna", "password": PASSWORDS["anna"]})
        assert status == 403 and "nobody was signed in" in page
        assert all(cookie.key != "gsmgw_session" for cookie in nobody.session.cookie_jar)

        posts = console_posts(gateway)
        # Every POST of the console is here (a new one must say here what it would do).
        assert set(posts) == set(FORMS) | {"/campaigns/{id}/retry", "/messages/{id}/cancel", "/messages/{id}/retry",
                                           "/modems/{name}/balance"}, posts
        for path in posts:
            url, fields = concrete(path), FORMS.get(path, {})
            status, page = await anna.post(url, fields)
            assert status == 403 and "security token is missing or wrong" in page, (path, status, page[:300])
            status, page = await anna.post(url, {**fields, "csrf": "forged"})
            assert status == 403 and "security token is missing or wrong" in page, (path, status)
            status, page = await anna.post(url, {**fields, "csrf": anna_csrf}, {"Origin": "https://evil.example"})
            assert status == 403 and "came from another site" in page, (path, status)
            status, page = await nobody.post(url, {**fields, "csrf": anna_csrf})
            assert status == 401 and "nothing was sent or changed" in page, (path, status)
            status, page = await viola.post(url, {**fields, "csrf": viola_csrf})
            if path not in ANY_ROLE:
                assert status == 403 and "may read but not send" in page, (path, status)
        # Nothing of it happened: no file, no contact, group, campaign or opt-out, no USSD.
        ctx = gateway.ctx
        assert [name for d in ("outgoing", "checked", "sent", "failed") for name in ctx.spool.list(d)] == []
        assert ctx.index.contacts() == [] and ctx.index.console_groups() == {} and ctx.index.optouts() == {}
        assert ctx.index.campaigns(None) == []
        actions = {entry.action for entry in ctx.index.audit_log()}
        assert actions == {"signed in"}, actions
        # The same person, with the token and from the console's own origin, gets through.
        origin = anna.base
        status, _ = await anna.post("/contacts", {**FORMS["/contacts"], "csrf": anna_csrf}, {"Origin": origin})
        assert status == 303 and [c.name for c in ctx.index.contacts()] == ["Forged"]
        status, _ = await viola.post("/compose/count", {"text": "hi", "csrf": viola_csrf})
        assert status == 200

    run(tmp_path, scenario)


def test_pages_read_the_index_never_a_history_directory(tmp_path):
    async def scenario(gateway, network, browser):
        boss = browser()
        boss_csrf = await boss.sign_in("boss")
        ctx = gateway.ctx
        async with boss.session.post(boss.base + "/api/v1/messages", ssl=boss.trust,
                                     json={"to": [NUMBER, "+4915112345679"], "text": "history"},
                                     headers={"Authorization": f"Bearer {ANNA_TOKEN}"}) as response:
            assert response.status == 202
            message_id = (await response.json())["messages"][0]["id"]
        await asyncio.to_thread(network.inject_sms, 0, NUMBER, "an answer")
        deadline = asyncio.get_running_loop().time() + 30
        while sorted(m.state for m in ctx.index.thread(Scope.all(), NUMBER)) not in (
                ["received", "sent"], ["delivered", "received"]):
            assert asyncio.get_running_loop().time() < deadline, \
                f"the index did not follow: {ctx.index.thread(Scope.all(), NUMBER)}"
            await asyncio.sleep(0.1)
        ctx.index.save_contacts([Contact(f"+49151000{n:05d}", f"Contact {n:03d}", "") for n in range(201)], 0.0)
        for n in range(21):
            ctx.index.create_campaign(Campaign(f"c{n:02d}", f"Campaign {n:02d}", "anna", "hi", 1000.0 + n, None,
                                               "queued", 1), [(NUMBER, "")])
        history = {os.path.realpath(ctx.spool.path(d)) for d in HISTORY}
        listed: list[str] = []
        watching = [False]

        def audit(event: str, args) -> None:
            if watching[0] and event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
                path = os.path.realpath(os.fsdecode(args[0]))
                if path in history:
                    listed.append(path)

        sys.addaudithook(audit)  # stays for this process; it only records while `watching`
        pages = ["/", "/?fragment=1", "/conversations", "/conversations?fragment=1", "/conversations?q=hist",
                 f"/conversations/{NUMBER}", f"/conversations/{NUMBER}?fragment=1", "/messages",
                 "/messages?state=delivered", "/messages?state=retrying", f"/messages?number=%2B{NUMBER[1:]}",
                 "/campaigns", "/campaigns?offset=20", "/campaigns?fragment=1", "/campaigns/c00",
                 "/campaigns/c00?fragment=1", "/campaigns/c00/export.csv", "/contacts", "/contacts?offset=200", "/contacts/export.csv", "/optout", "/modems/gsm1", "/audit",
                 "/compose", "/compose/complete?q=gr"]
        watching[0] = True
        try:
            for path in pages:
                status, _ = await boss.get(path)
                assert status == 200, path
        finally:
            watching[0] = False
        assert listed == [], f"pages listed {sorted(set(listed))}"
        # A console group cannot take a config group's name; the config's group is shown, read-only.
        status, page = await boss.post("/contacts/groups", {"name": "oncall", "members": NUMBER, "csrf": boss_csrf})
        assert status == 400 and "is a group of the config; it is changed in the config file" in page
        assert ctx.index.console_groups() == {} and ctx.groups["oncall"] == ("+4915100000001",)
        # The campaign list comes in pages of 20 (each campaign on it is counted), newest first.
        _, first = await boss.get("/campaigns")
        _, second = await boss.get("/campaigns?offset=20")
        assert first.count(">Campaign ") == 20 and ">Campaign 20<" in first and ">Older</a>" in first
        assert second.count(">Campaign ") == 1 and ">Campaign 00<" in second and ">Newer</a>" in second
        # The contact list comes in pages of 200.
        _, first = await boss.get("/contacts")
        _, second = await boss.get("/contacts?offset=200")
        assert first.count('aria-label="Delete Contact ') == 200 and ">Next</a>" in first and ">Previous<" not in first
        assert second.count('aria-label="Delete Contact ') == 1 and ">Previous</a>" in second and ">Next<" not in second
        assert ctx.index.message("out", message_id) is not None

    run(tmp_path, scenario)

