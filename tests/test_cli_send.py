"""`gsmgw send`: checked files in outgoing/, clear refusals with exit code 2."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from gsmgw.cli import main
from gsmgw.spool.format import parse_outgoing, read_spool_file
from gsmgw.spool.store import Spool

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)


@pytest.fixture
def spool_dir(tmp_path):
    return tmp_path / "spool"


@pytest.fixture
def config_file(tmp_path, spool_dir):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {spool_dir}
        default_country: "49"
        defaults: {{report: false, max_parts: 2}}
        modems:
          - {{name: gsm1, port: /dev/gsmgw/gsm1, pin_file: /root-only/pin}}
        groups:
          oncall: ["0151 12345678", "+4917612345678"]
        """))
    return path


def send(*args, input=None, env=None):
    environment = {"GSMGW_CONFIG": ""}
    environment.update(env or {})
    return CliRunner().invoke(main, ["send", *args], input=input, env=environment)


def outgoing(spool_dir):
    spool = Spool(spool_dir)
    return {name: spool.read("outgoing", name) for name in spool.list("outgoing")}


def test_send_writes_one_checked_file_per_recipient(spool_dir):
    result = send("--spool", str(spool_dir), "--to", "+49 151 1234 5678", "--to", "4917612345678,+4915100000000",
                  "Grüße €")
    assert result.exit_code == 0, result.output
    names = result.output.split()
    files = outgoing(spool_dir)
    assert sorted(files) == sorted(names) and len(names) == 3
    recipients = [parse_outgoing(files[name], now=NOW).recipients for name in names]
    assert recipients == [("+4915112345678",), ("+4917612345678",), ("+4915100000000",)]
    assert all(parse_outgoing(data, now=NOW).text == "Grüße €" for data in files.values())


def test_every_option_becomes_a_header(spool_dir):
    result = send("--spool", str(spool_dir), "--to", "+4915112345678", "--no-report", "--flash",
                  "--validity", "12 hours", "--priority", "high", "--modem", "gsm2", "--expires", "30 min",
                  "--send-after", "2026-11-24T12:00:00+01:00", "--max-parts", "3", "hello")
    assert result.exit_code == 0, result.output
    (data,) = outgoing(spool_dir).values()
    message = parse_outgoing(data, now=NOW)
    assert (message.report, message.flash, message.validity, message.priority, message.modem) == (
        False, True, 143, "high", "gsm2")
    assert message.max_parts == 3 and message.send_after is not None
    assert read_spool_file(data).headers.get("Expires") == "30 min"


def test_text_from_stdin(spool_dir):
    result = send("--spool", str(spool_dir), "--to", "+4915112345678", "-", input="line 1\nline 2\n")
    assert result.exit_code == 0, result.output
    (data,) = outgoing(spool_dir).values()
    assert parse_outgoing(data, now=NOW).text == "line 1\nline 2"


def test_group_and_config_defaults(config_file, spool_dir):
    # The config names a PIN file this user cannot read: send does not need it.
    result = send("-c", str(config_file), "--group", "oncall", "--to", "0151 99999999", "alarm")
    assert result.exit_code == 0, result.output
    files = outgoing(spool_dir)
    headers = sorted(read_spool_file(data).headers.get("To") for data in files.values())
    assert headers == ["+4915199999999", "group:oncall"]


def test_config_from_the_environment(config_file, spool_dir):
    result = send("--to", "+4915112345678", "hi", env={"GSMGW_CONFIG": str(config_file)})
    assert result.exit_code == 0, result.output
    assert len(outgoing(spool_dir)) == 1


@pytest.mark.parametrize("args,message", [
    (["--to", "call me", "hi"], "not a phone number"),
    (["--to", "0151 12345678", "hi"], "default_country"),
    (["hi"], "no recipient"),
    (["--to", "+4915112345678", "--max-parts", "1", "x" * 200], "needs 2 SMS parts"),
    (["--to", "+4915112345678", "--validity", "forever", "hi"], "Validity"),
    (["--to", "+4915112345678", "--expires", "tomorrow", "hi"], "Expires"),
    (["--group", "oncall", "hi"], "group 'oncall'"),
])
def test_bad_input_exits_2_and_writes_nothing(spool_dir, args, message):
    result = send("--spool", str(spool_dir), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert outgoing(spool_dir) == {}


@pytest.mark.parametrize("args,message", [
    (["--group", "nobody", "hi"], "group 'nobody' is not in the config (oncall)"),
    (["--to", "+4915112345678", "--modem", "gsm9", "hi"], "no modem named 'gsm9'"),
    (["--to", "+4915112345678", "x" * 400], "needs 3 SMS parts"),  # the config's max_parts: 2
])
def test_config_rules_are_checked(config_file, spool_dir, args, message):
    result = send("-c", str(config_file), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_broken_config_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("modems: [{name: a}]\nspoool: /x\n")
    result = send("-c", str(path), "--to", "+4915112345678", "hi")
    assert result.exit_code == 2 and "spoool" in result.output and "check-config" in result.output


def test_unwritable_spool_exits_1(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "outgoing").write_text("a file where the directory should be")
    result = send("--spool", str(spool_dir), "--to", "+4915112345678", "hi")
    assert result.exit_code == 1 and "cannot write" in result.output
    assert os.listdir(spool_dir) == ["outgoing"]


def test_spool_option_overrides_the_config_spool(config_file, tmp_path):
    other = tmp_path / "other-spool"
    result = send("-c", str(config_file), "--spool", str(other), "--group", "oncall", "hi")
    assert result.exit_code == 0, result.output
    assert len(outgoing(other)) == 1



HINDI = "नमस्ते, आप कैसे हैं? मैं ठीक हूँ। " * 6  # 204 characters: 4 parts in UCS-2, 2 with the Hindi tables


def test_national_tables_from_the_config_count_and_are_told_at_a_terminal(tmp_path, config_file, spool_dir):
    refused = send("-c", str(config_file), "--to", "+4915112345678", HINDI)
    assert refused.exit_code == 2 and "needs 4 SMS parts" in refused.output  # max_parts: 2
    config_file.write_text(config_file.read_text().replace("max_parts: 2}", "max_parts: 2, national_languages: [hi]}"))
    main_fd, terminal_fd = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gsmgw", "send", "-c", str(config_file), "--to", "+4915112345678", HINDI],
            stdout=subprocess.PIPE, stderr=terminal_fd, timeout=60,
        )
        os.close(terminal_fd)
        told = os.read(main_fd, 4096).decode()
    finally:
        os.close(main_fd)
    (name,) = outgoing(spool_dir)
    assert done.returncode == 0 and done.stdout.decode().strip() == name  # stdout: the file names only
    assert "2 SMS parts each, GSM-7 with the Hindi locking and single shift tables" in told


def test_dry_run_prints_each_recipients_parts_and_encoding_and_queues_nothing(config_file, spool_dir):
    """The figures a person compares: the Hindi text with and without the config's national tables."""
    config_file.write_text(config_file.read_text().replace("max_parts: 2}", "max_parts: 5}"))
    without = send("-c", str(config_file), "--dry-run", "--to", "+4915112345678", "--group", "oncall", HINDI)
    assert without.exit_code == 0, without.output
    assert without.output == "+4915112345678: 4 SMS parts, UCS-2\ngroup:oncall: 4 SMS parts, UCS-2\n"
    config_file.write_text(config_file.read_text().replace("max_parts: 5}", "max_parts: 5, national_languages: [hi]}"))
    with_tables = send("-c", str(config_file), "--dry-run", "--to", "+4915112345678", HINDI)
    assert with_tables.output == "+4915112345678: 2 SMS parts, GSM-7 with the Hindi locking and single shift tables\n"
    refused = send("-c", str(config_file), "--dry-run", "--max-parts", "1", "--to", "+4915112345678", HINDI)
    assert refused.exit_code == 2 and "needs 2 SMS parts" in refused.output
    assert not spool_dir.exists() or outgoing(spool_dir) == {}


@pytest.mark.parametrize("text, stdin", [("", None), ("-", ""), ("-", "\n")])
def test_an_empty_text_is_refused_with_what_to_do(spool_dir, text, stdin):
    # `gsmgw send --to N "$MSG"` with an empty $MSG used to queue an empty SMS (HTTP says 400).
    result = send("--spool", str(spool_dir), "--to", "+4915112345678", text, input=stdin)
    assert result.exit_code == 2, result.output
    assert "would be empty" in result.output and "--allow-empty" in result.output
    assert not outgoing(spool_dir)


def test_allow_empty_sends_an_empty_sms_on_purpose(spool_dir):
    result = send("--spool", str(spool_dir), "--to", "+4915112345678", "--allow-empty", "")
    assert result.exit_code == 0, result.output
    (data,) = outgoing(spool_dir).values()
    assert parse_outgoing(data, now=NOW).text == ""
