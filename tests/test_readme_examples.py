"""The README's "Integrating" examples work as written.

The config, the curl lines and the smpplib program are taken from README.md (the code
blocks after `<!-- example: NAME -->`), run against `gsmgw run --simulate 2 -c demo-api.yaml`
as a user would, and their output is checked. Only the two listening ports are changed, to
free ones, so the test can run beside anything else on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port, stop_process

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"


def readme_example(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```", text, re.S)
    assert match, f"README.md has no code block marked <!-- example: {name} -->"
    return match.group(1)


def with_ports(text: str, http_port: int, smpp_port: int) -> str:
    return text.replace("8025", str(http_port)).replace("2775", str(smpp_port))


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "gsmgw run exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer 200 within {timeout} s")


@pytest.fixture
def gateway(tmp_path):
    http_port, smpp_port = free_port(), free_port()
    config = tmp_path / "demo-api.yaml"
    config.write_text(with_ports(readme_example("demo-api.yaml"), http_port, smpp_port))
    config.chmod(0o600)
    log = open(tmp_path / "run.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gsmgw", "run", "--simulate", "2", "-c", str(config)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}/healthz", process)
        yield tmp_path, http_port, smpp_port
    finally:
        stop_process(process, 30)
        log.close()


def test_check_config_accepts_the_readme_demo_config_and_says_only_simulate_runs_it(tmp_path):
    config = tmp_path / "demo-api.yaml"
    config.write_text(readme_example("demo-api.yaml"))
    config.chmod(0o600)
    checked = subprocess.run([sys.executable, "-m", "gsmgw", "check-config", str(config)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"warning: {config}" in checked.stdout and "no modem is configured" in checked.stdout
    assert f"gsmgw run --simulate 2 -c {config}" in checked.stdout
    assert checked.stdout.rstrip().endswith(f"{config}: OK")

    # Without --simulate there is nothing to send with: a clear refusal, before anything starts.
    run = subprocess.run([sys.executable, "-m", "gsmgw", "run", "-c", str(config)],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no modem is configured" in run.stderr and f"gsmgw run --simulate 2 -c {config}" in run.stderr
    assert not (tmp_path / "var").exists() and "gsmgw started" not in run.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples(gateway):
    directory, http_port, smpp_port = gateway
    lines = with_ports(readme_example("curl"), http_port, smpp_port).replace("\\\n", " ").splitlines()
    outputs = [subprocess.run(["bash", "-c", line], cwd=directory, capture_output=True, text=True, timeout=30)
               for line in lines]
    assert all(result.returncode == 0 for result in outputs), [result.stderr for result in outputs]
    queued = json.loads(outputs[0].stdout)["messages"]
    assert [m["to"] for m in queued] == ["+4917000000001", "+4915112345678"]
    assert {m["status"] for m in queued} == {"queued"} and {m["alphabet"] for m in queued} == {"ucs2"}
    assert outputs[1].stdout.strip() == "0: Accepted for delivery"
    modems = json.loads(outputs[2].stdout)
    assert set(modems) >= {"updated", "modems", "queue"} and len(modems["modems"]) == 2

    # The message ids are spool file names: each one ends in sent/ with its report.
    deadline = time.monotonic() + 30
    sent = directory / "demo-spool" / "sent"
    while time.monotonic() < deadline:
        done = [m for m in queued if (sent / m["id"]).exists()
                and "Status: delivered" in (sent / m["id"]).read_text(encoding="utf-8")]
        if len(done) == len(queued):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"not all of {[m['id'] for m in queued]} were delivered in 30 s")


def test_readme_smpplib_example(gateway):
    directory, http_port, smpp_port = gateway
    program = directory / "smpp_example.py"
    program.write_text(with_ports(readme_example("smpplib"), http_port, smpp_port))
    result = subprocess.run([sys.executable, str(program)], cwd=directory, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    accepted, receipt = result.stdout.splitlines()[:2]
    message_id = accepted.removeprefix("accepted as ")
    assert receipt.startswith(f"id:{message_id} sub:001 dlvrd:001 ")
    assert "stat:DELIVRD err:000" in receipt
    network = [json.loads(line) for line in
               (directory / "demo-spool" / ".sim" / "network.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = [record["text"] for record in network if record["to"] == "+4917000000001"]
    assert "".join(texts) == "Grüße aus Köln 😀 " * 5


def test_readme_webhook_verification_example(tmp_path):
    """The receiver code of README "Security" accepts what gsmgw sends, and refuses a changed
    body, another secret and a stale (replayed) request."""
    import asyncio

    from gsmgw.webhooks import Route, WebhookQueue
    from test_webhooks import Receiver

    namespace: dict = {}
    exec(compile(readme_example("verify-webhook"), "README.md (verify-webhook)", "exec"), namespace)
    verify = namespace["verify_gsmgw_webhook"]

    async def scenario(late: float):
        """What a receiver gets from gsmgw; `late`: how long ago gsmgw sent it (a replay)."""
        async with Receiver() as app:
            queue = WebhookQueue(tmp_path / f"wh{late:g}", clock=lambda: time.time() - late,
                                 route=lambda delivery: Route(key="s3cret-for-webhooks", trusted=True))
            await queue.start()
            try:
                await queue.enqueue(app.url, "received", {"id": "gsm1-x", "text": "Grüße"})
                body = await app.next()
            finally:
                await queue.close()
            return app.requests[0][1], body

    headers, body = asyncio.run(scenario(0))
    assert verify(b"s3cret-for-webhooks", headers, body)
    assert not verify(b"s3cret-for-webhooks", headers, body.replace(b"gsm1-x", b"gsm1-y"))
    assert not verify(b"another-secret", headers, body)
    assert not verify(b"s3cret-for-webhooks", {k: v for k, v in headers.items() if k != "X-Gsmgw-Timestamp"}, body)
    old_headers, old_body = asyncio.run(scenario(400))
    assert not verify(b"s3cret-for-webhooks", old_headers, old_body), "signed correctly, but 400 s old"
    assert verify(b"s3cret-for-webhooks", old_headers, old_body, max_age=500)
