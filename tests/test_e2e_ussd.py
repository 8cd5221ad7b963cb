"""USSD on a running gateway (issue 13): the daemon runs it in the modem's worker between two
messages; `gsmgw ussd` and `gsmgw status --balance` ask over STATE/control.sock, the HTTP API
over POST /api/v1/modems/{name}/ussd (admin clients) and /balance; /metrics?balance=1 shows the
amount. Simulated modems over real ptys; the simulator answers as configured (GSM 7-bit, UCS2)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import aiohttp
import pytest

from gsmgw.config import load_config
from gsmgw.daemon.app import Gateway
from gsmgw.events import MessageSent
from gsmgw.sim import SimNetwork
from gsmgw.ussd import balance_amount
from test_http_api import free_port

pytestmark = pytest.mark.slow

ADMIN, OPERATOR, VIEWER = "ussd-admin-token-0123", "ussd-operator-token-01", "ussd-viewer-token-0123"
FAST_SUPERVISOR = {"backoff_initial": 0.1, "backoff_max": 1.0, "health_timeout": 2.0}


def write_config(tmp_path, network):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        modems:
          - {{name: gsm1, port: {network.modems[0].path}, balance: "*100#"}}
          - {{name: gsm2, port: {network.modems[1].path}, balance: "*101#"}}
        http: {{listen: "127.0.0.1:{free_port()}"}}
        clients:
          - {{name: root, token: {ADMIN}, role: admin, allow: ["+49*"]}}
          - {{name: app, token: {OPERATOR}, allow: ["+49*"]}}
          - {{name: looker, token: {VIEWER}, role: viewer}}
        """))
    return path


def gsmgw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gsmgw", *args], capture_output=True, text=True, timeout=timeout)


def run(tmp_path, scenario):
    network = SimNetwork(tmp_path / "sim", modems=2, latency=0.05)
    network.start()

    async def main():
        config = load_config(write_config(tmp_path, network))
        gateway = Gateway(config, watch_poll_interval=0.5, supervisor_options=FAST_SUPERVISOR)
        await gateway.start()
        try:
            while any(worker.state != "ready" for worker in gateway.workers.values()):
                await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{config.http.listen_port}"
            async with aiohttp.ClientSession() as session:
                await asyncio.wait_for(scenario(gateway, network, session, base), 90)
        finally:
            await gateway.close()

    try:
        asyncio.run(main())
    finally:
        network.stop()


def test_gsmgw_ussd_and_status_balance_ask_the_running_daemon(tmp_path):
    async def scenario(gateway, network, session, base):
        network.set_ussd_reply("*101#", "Баланс: 100,50 ₽", dcs=72)  # UCS2, as some networks answer
        state = str(tmp_path / "state")
        assert oct(os.stat(tmp_path / "state" / "control.sock").st_mode & 0o777) == "0o660"

        done = await asyncio.to_thread(gsmgw, "ussd", "--state", state, "gsm1", "*100#")
        assert (done.returncode, done.stdout) == (0, "Guthaben: 12,34 EUR\n"), done.stderr
        done = await asyncio.to_thread(gsmgw, "ussd", "--state", state, "--json", "gsm2", "*101#")
        assert json.loads(done.stdout) == {"modem": "gsm2", "code": "*101#", "status": 0, "text": "Баланс: 100,50 ₽"}

        done = await asyncio.to_thread(gsmgw, "ussd", "--state", state, "gsm9", "*100#")
        assert done.returncode == 2 and "no modem 'gsm9' is configured (configured: gsm1, gsm2)" in done.stderr
        done = await asyncio.to_thread(gsmgw, "ussd", "--state", state, "gsm1", "*1OO#")
        assert done.returncode == 2 and "is not a USSD code" in done.stderr
        done = await asyncio.to_thread(gsmgw, "ussd", "--state", str(tmp_path / "nowhere"), "gsm1", "*100#")
        assert done.returncode == 1 and "no gateway answers on" in done.stderr

        done = await asyncio.to_thread(gsmgw, "status", "--state", state, "--json", "--balance")
        assert done.returncode == 0, done.stderr
        balances = {m["name"]: m["balance"] for m in json.loads(done.stdout)["modems"]}
        assert balances["gsm1"]["text"] == "Guthaben: 12,34 EUR" and balances["gsm1"]["amount"] == 12.34
        assert balances["gsm2"]["amount"] == 100.5 and balances["gsm2"]["code"] == "*101#"
        done = await asyncio.to_thread(gsmgw, "status", "--state", state, "--balance")
        assert "gsm1: Guthaben: 12,34 EUR  (*100#," in done.stdout
        # The balances are remembered: the status above asked the network once per modem.
        assert [entry["code"] for entry in network.ussd_requests].count("*100#") == 2

    run(tmp_path, scenario)


def test_the_http_api_runs_ussd_for_admins_and_shows_the_balance_in_metrics(tmp_path):
    async def scenario(gateway, network, session, base):
        async def post(path, token, body=None):
            async with session.post(base + path, json=body or {}, headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status, await response.json()

        network.set_ussd_reply("*101#", "Credit 7.50 EUR")
        status, answer = await post("/api/v1/modems/gsm1/ussd", ADMIN, {"code": "*100#"})
        assert (status, answer) == (200, {"modem": "gsm1", "code": "*100#", "status": 0, "text": "Guthaben: 12,34 EUR"})
        status, answer = await post("/api/v1/modems/gsm1/ussd", OPERATOR, {"code": "*100#"})
        assert status == 403 and "role: admin" in answer["error"]
        status, answer = await post("/api/v1/modems/gsm1/ussd", ADMIN, {"code": "*1OO#"})
        assert status == 400 and "is not a USSD code" in answer["error"]
        status, answer = await post("/api/v1/modems/nope/ussd", ADMIN, {"code": "*100#"})
        assert status == 404

        status, answer = await post("/api/v1/modems/gsm1/balance", OPERATOR)
        assert status == 200 and answer["amount"] == 12.34 and answer["text"] == "Guthaben: 12,34 EUR"
        status, answer = await post("/api/v1/modems/gsm1/balance", VIEWER)
        assert status == 403

        async with session.get(base + "/metrics?balance=1") as response:
            text = await response.text()
        assert 'gsmgw_modem_balance{modem="gsm1"} 12.34' in text
        assert 'gsmgw_modem_balance{modem="gsm2"} 7.5' in text

        await asyncio.to_thread(network.unplug, 1)
        while gateway.workers["gsm2"].state == "ready":
            await asyncio.sleep(0.05)
        status, answer = await post("/api/v1/modems/gsm2/ussd", ADMIN, {"code": "*100#"})
        assert status == 409 and "cannot run USSD now" in answer["error"]

    run(tmp_path, scenario)


def test_ussd_runs_between_messages_never_between_the_parts_of_one(tmp_path):
    async def scenario(gateway, network, session, base):
        outgoing = tmp_path / "spool" / "outgoing"
        for n in range(4):
            (outgoing / f".m{n}").write_text(f"To: +4915100000{n:03d}\nModem: gsm1\n\n" + "long text " * 40)
            os.rename(outgoing / f".m{n}", outgoing / f"m{n}")
        await asyncio.to_thread(network.wait_for_submissions, 2, 20)
        answers = await asyncio.gather(*(gateway.ussd.ask("gsm1", "*100#") for _ in range(2)))
        assert [answer.text for answer in answers] == ["Guthaben: 12,34 EUR"] * 2
        await asyncio.to_thread(network.wait_for_submissions, 12, 30)
        records = network.submissions
        boundaries = {0} | {i + 1 for i, r in enumerate(records) if r["concat"] and r["concat"]["seq"] == r["concat"]["total"]}
        for request in network.ussd_requests:
            assert request["after_submissions"] in boundaries, (request, boundaries)

    run(tmp_path, scenario)


def test_balance_amounts_in_operators_words():
    assert [balance_amount(text) for text in (
        "Guthaben: 12,34 EUR", "Balance: 1,234.56 USD", "Saldo 1.234,50", "Your credit is -3.2", "Rs 150 left",
        "1,234 points", "no number", None,
    )] == [12.34, 1234.56, 1234.5, -3.2, 150.0, 1234.0, None, None]
