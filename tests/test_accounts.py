"""Accounts (WEB.md): password hashes, `gsmgw passwd`, roles, and the visibility rule, which the
HTTP API obeys as the console does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import aiohttp
import pytest

from gsmgw.clients import ClientRegistry, client_from_config, visibility
from gsmgw.config import check_config, load_config
from gsmgw.http.server import start
from gsmgw.passwords import PasswordHashError, check_hash, hash_password, verify_password
from gsmgw.spool.format import build_incoming, build_sent, update_headers
from helpers import free_port
from test_http_api import Context

FAST = {"ln": 8}  # tests keep hashes cheap; the parameters travel in the string


def test_hash_carries_its_parameters_and_verifies():
    line = hash_password("correct horse", **FAST)
    assert line.startswith("$scrypt$ln=8,r=8,p=1$")
    assert verify_password("correct horse", line)
    assert not verify_password("correct hors", line)
    assert hash_password("correct horse", **FAST) != line  # salted
    assert check_hash(line)[:3] == (8, 8, 1)


@pytest.mark.parametrize("bad", ["plain", "$scrypt$ln=40,r=8,p=1$AAAA$AAAA", "$2b$12$abc", ""])
def test_malformed_or_absurd_hashes_never_verify(bad):
    assert not verify_password("x", bad)
    with pytest.raises(PasswordHashError, match="gsmgw passwd"):
        check_hash(bad)


def test_passwd_reads_a_pipe_and_prints_one_line():
    result = subprocess.run([sys.executable, "-m", "gsmgw", "passwd", "anna", "--cost", "8"],
                            input="s3cret-enough\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and verify_password("s3cret-enough", lines[0])
    assert "s3cret" not in result.stdout + result.stderr


def test_passwd_refuses_a_short_password():
    result = subprocess.run([sys.executable, "-m", "gsmgw", "passwd"], input="short\n",
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "at least 8" in result.stderr and not result.stdout


def write_config(tmp_path, clients: str, extra: str = ""):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        default_country: "49"
        modems:
          - name: gsm1
            port: {tmp_path}/modem0
          - name: gsm2
            port: {tmp_path}/modem1
        http:
          listen: 127.0.0.1:{free_port()}
        groups:
          oncall: ["+4915112345678"]
        """) + textwrap.dedent(clients) + textwrap.dedent(extra))
    os.chmod(path, 0o600)
    return path


def secret(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    return path


def test_config_reads_web_login_role_optout_and_balance(tmp_path):
    secret(tmp_path, "anna.pw", hash_password("anna-password", **FAST))
    path = write_config(tmp_path, f"""\
        clients:
          - name: anna
            web: {{password_file: {tmp_path}/anna.pw}}
            role: admin
            allow: ["+49*", "group:*", "modem:*"]
        web: {{enabled: true}}
        optout:
          keywords: [stop, " Halt "]
          confirm: "You will get no more messages."
        """)
    config = load_config(path)
    anna = config.clients[0]
    assert anna.role == "admin" and anna.web.password_hash.startswith("$scrypt$")
    assert config.web.enabled is True
    assert config.optout.keywords == ("STOP", "HALT") and config.optout.confirm.startswith("You will")
    assert config.optout.start_keywords == ("START",)
    registry = ClientRegistry.from_config(config)
    assert registry.authenticate_web("anna", "anna-password").name == "anna"
    assert registry.authenticate_web("anna", "wrong") is None
    assert registry.authenticate_web("nobody", "anna-password") is None
    assert registry.check_destination(registry.by_name("anna"), "+4915112345678").allowed


def test_config_errors_name_the_key_and_the_fix(tmp_path):
    secret(tmp_path, "bad.pw", "my clear password")
    path = write_config(tmp_path, f"""\
        clients:
          - name: anna
            web: {{password_file: {tmp_path}/bad.pw}}
            role: boss
        """)
    result = check_config(path)
    messages = {issue.path: issue.message + " " + issue.fix for issue in result.errors}
    assert "gsmgw passwd" in messages["clients[0].web.password_file"]
    assert "admin, operator, viewer" in messages["clients[0].role"]


def test_web_console_needs_the_http_listener(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"spool: {tmp_path}/s\nmodems: [{{name: gsm1, port: /dev/null}}]\nweb: {{enabled: true}}\n")
    result = check_config(path)
    assert any(issue.path == "web" and "http" in issue.fix for issue in result.errors)


def test_visibility_rule():
    anna = client_from_config({"name": "anna", "token": "t", "allow": ["+49*", "modem:gsm1"]})
    boss = client_from_config({"name": "boss", "token": "u", "role": "admin"})
    star = client_from_config({"name": "star", "token": "v", "allow": ["*"]})
    assert visibility(anna).sees_outbound("anna") and not visibility(anna).sees_outbound("bob")
    assert not visibility(anna).sees_outbound(None)  # a dropped file has no Client:
    assert visibility(anna).sees_inbound("gsm1") and not visibility(anna).sees_inbound("gsm2")
    assert visibility(anna).inbound_modems(["gsm1", "gsm2"]) == ("gsm1",)
    assert visibility(boss).sees_outbound("bob") and visibility(boss).sees_inbound("gsm2")
    assert visibility(star).inbound_modems(["gsm1"]) is None


def test_a_viewer_may_send_to_nobody():
    viewer = client_from_config({"name": "v", "token": "t", "allow": ["*"], "role": "viewer"})
    verdict = ClientRegistry([viewer]).check_destination(viewer, "+4915112345678")
    assert not verdict.allowed and "viewer" in verdict.reason and "role: operator" in verdict.reason


def test_modem_rules_are_not_destinations():
    anna = client_from_config({"name": "anna", "token": "t", "allow": ["modem:*"]})
    assert not ClientRegistry([anna]).check_destination(anna, "+4915112345678").allowed


API_CLIENTS = """\
    clients:
      - name: anna
        token: anna-token-0123456789
        allow: ["+49*", "modem:gsm1"]
      - name: bob
        token: bob-token-0123456789
        allow: ["+49*"]
      - name: boss
        token: boss-token-0123456789
        role: admin
      - name: vic
        token: vic-token-0123456789
        role: viewer
        allow: ["+49*"]
    """


def api_run(tmp_path, scenario):
    async def main():
        ctx = Context(write_config(tmp_path, API_CLIENTS))
        server = await start(ctx)
        try:
            async with aiohttp.ClientSession() as session:
                async def call(method, path, token, body=None):
                    headers = {"Authorization": f"Bearer {token}-token-0123456789"}
                    async with session.request(method, server.url + path, json=body, headers=headers) as response:
                        return response.status, await response.json()

                await scenario(ctx, call)
        finally:
            await server.close()

    asyncio.run(main())


def test_api_clients_see_only_their_own_messages(tmp_path):
    async def scenario(ctx, call):
        status, answer = await call("POST", "/api/v1/messages", "anna", {"to": "+4915112345678", "text": "hi"})
        assert status == 202
        anna_id = answer["messages"][0]["id"]
        assert (await call("GET", f"/api/v1/messages/{anna_id}", "anna"))[0] == 200
        status, answer = await call("GET", f"/api/v1/messages/{anna_id}", "bob")
        assert status == 404 and "no message" in answer["error"]  # as if it did not exist
        assert (await call("GET", f"/api/v1/messages/{anna_id}", "boss"))[0] == 200
        # A file dropped by hand has no Client:, so only an admin sees it.
        sent = build_sent(b"To: +4915112345678\n\nfrom a file\n", modem="gsm1", imsi=None,
                          sent=datetime.now().astimezone(), parts=1, message_ids=[1])
        ctx.spool.write_atomic("sent", "dropped", sent)
        assert (await call("GET", "/api/v1/messages/dropped", "anna"))[0] == 404
        assert (await call("GET", "/api/v1/messages/dropped", "boss"))[0] == 200
        # Nor does writing `Client: anna` into a file make it hers (issue 11's trusted headers).
        ctx.spool.write_atomic("sent", "forged", update_headers(sent, {"Client": "anna"}))
        assert (await call("GET", "/api/v1/messages/forged", "anna"))[0] == 404

    api_run(tmp_path, scenario)


def test_api_inbox_shows_the_inbound_of_the_modems_a_client_names(tmp_path):
    async def scenario(ctx, call):
        now = datetime.now().astimezone()
        for modem in ("gsm1", "gsm2"):
            data = build_incoming(sender="+4915112345678", sender_toa=0x91, smsc=None, sent=now - timedelta(seconds=1),
                                  received=now, modem=modem, imsi=None, alphabet="gsm7", parts=1, text=f"to {modem}")
            ctx.spool.write_atomic("incoming", f"{modem}-x", data)
        texts = {who: [m["text"] for m in (await call("GET", "/api/v1/inbox", who))[1]["messages"]]
                 for who in ("anna", "bob", "boss")}
        assert texts == {"anna": ["to gsm1"], "bob": [], "boss": ["to gsm1", "to gsm2"]}

    api_run(tmp_path, scenario)


def test_a_viewer_cannot_send_over_http(tmp_path):
    async def scenario(ctx, call):
        status, answer = await call("POST", "/api/v1/messages", "vic", {"to": "+4915112345678", "text": "hi"})
        assert status == 403 and "viewer" in answer["error"]
        assert ctx.spool.list("outgoing") == []

    api_run(tmp_path, scenario)
