"""The README's email examples work as written: `demo-mail.yaml` under `gsmgw run --simulate 2`,
the swaks line, the smtplib program and the Nagios command (its macros filled in as Nagios
would), with a real SMTP server standing in for the smarthost. Only the ports change, to free
ones."""

from __future__ import annotations

import json
import re
import shlex
import smtplib
import subprocess
import sys
import time

import pytest

from helpers import debian_tool, free_port, stop_process, wait_for_text
from smarthost import Smarthost
from test_readme_examples import readme_example

pytestmark = pytest.mark.slow


def with_ports(text: str, smtp_port: int, smarthost_port: int) -> str:
    return text.replace("2525", str(smtp_port)).replace("2526", str(smarthost_port))


def network_texts(directory, recipient):
    path = directory / "demo-spool" / ".sim" / "network.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [record["text"] for record in records if record["to"] == recipient]


def wait_network(directory, recipient, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        texts = network_texts(directory, recipient)
        if len(texts) >= count:
            return texts
        time.sleep(0.1)
    raise AssertionError(f"{recipient} got {network_texts(directory, recipient)} within {timeout} s")


@pytest.fixture
def gateway(tmp_path):
    smtp_port = free_port()
    smarthost = Smarthost().start()
    config = tmp_path / "demo-mail.yaml"
    config.write_text(with_ports(readme_example("demo-mail.yaml"), smtp_port, smarthost.port))
    log_path = tmp_path / "run.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "-m", "gsmgw", "run", "--simulate", "2", "-c", str(config)],
                               cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_text(log_path, "SMTP listening on", 30)
        yield tmp_path, smtp_port, smarthost
    finally:
        stop_process(process, 30)
        log.close()
        smarthost.stop()


def test_readme_swaks_smtplib_and_nagios_examples(gateway):
    debian_tool("swaks")
    directory, smtp_port, smarthost = gateway
    swaks = with_ports(readme_example("swaks"), smtp_port, smarthost.port).replace("\\\n", " ")
    result = subprocess.run(["bash", "-c", swaks], cwd=directory, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"<-  250 2\.0\.0 queued 1 SMS as \d{8}-\d{6}-", result.stdout), result.stdout
    assert wait_network(directory, "+4917000000001", 1) == ["PROBLEM web1: HTTP CRITICAL"]

    # +4917000000001 is the second simulated SIM: the SMS comes in there and is mailed to the office.
    [mail] = smarthost.wait_for(1)
    assert mail.rcpt_tos == ["office@example.org"]
    assert mail.message["Subject"] == "SMS from +4917000000000"
    assert mail.message["Reply-To"] == "+4917000000000@sms.example.org"
    # ... and the office's answer goes back as an SMS.
    answer = f"Subject: Re: SMS from +4917000000000\r\nIn-Reply-To: {mail.message['Message-ID']}\r\n\r\nseen\r\n> PROBLEM\r\n"
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.sendmail("office@example.org", [mail.message["Reply-To"]], answer)
    assert wait_network(directory, "+4917000000000", 1) == ["seen"]

    program = directory / "mail_example.py"
    program.write_text(with_ports(readme_example("smtplib"), smtp_port, smarthost.port))
    result = subprocess.run([sys.executable, str(program)], cwd=directory, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert wait_network(directory, "+4915112345678", 1) == ["DB down: primary lost, failover running"]

    # The Nagios command as Nagios runs it: macros filled in, then split into words (no shell).
    definition = with_ports(readme_example("nagios-command"), smtp_port, smarthost.port)
    command_line = re.search(r"command_line\s+(.*)", definition).group(1)
    macros = {"$CONTACTPAGER$": "4915112345678", "$NOTIFICATIONTYPE$": "PROBLEM", "$HOSTALIAS$": "web1",
              "$SERVICEDESC$": "HTTP", "$SERVICESTATE$": "CRITICAL", "$SERVICEOUTPUT$": "HTTP CRITICAL - 503"}
    for macro, value in macros.items():
        command_line = command_line.replace(macro, value)
    argv = shlex.split(command_line)
    argv[0] = debian_tool("swaks")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_network(directory, "+4915112345678", 2)[1] == "PROBLEM web1/HTTP is CRITICAL: HTTP CRITICAL - 503"
