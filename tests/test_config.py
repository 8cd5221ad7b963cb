"""Config loading: every key understood, every error with its key path, line and fix."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gsmgw.config import (
    ConfigError,
    check_config,
    check_text,
    config_path,
    load_config,
    simulation_config,
)
from gsmgw.durations import MAX_SECONDS, DurationTooLong, parse_duration

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path, text, mode=0o600, name="gsmgw.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    os.chmod(path, mode)
    return path


def errors_of(tmp_path, text, mode=0o600):
    result = check_config(write(tmp_path, text, mode))
    return {(issue.path, issue.line): issue for issue in result.errors}, result


MINIMAL = """\
spool: /var/spool/gsmgw
modems:
  - name: gsm1
    port: /dev/gsmgw/gsm1
"""


def test_minimal_config_and_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.spool == Path("/var/spool/gsmgw") and config.state == Path("/var/lib/gsmgw")
    assert (config.defaults.report, config.defaults.validity, config.defaults.max_parts) == (True, 168, 6)
    assert config.modem("gsm1").binding == ("port", "/dev/gsmgw/gsm1")
    assert config.http is None and config.smpp is None and config.two_way.enabled is False
    assert config.inbound.reassembly_timeout == 12 * 3600
    assert config.inbound.report_window == 3 * 86400
    sending = config.sending  # today's retry backoff and resting
    assert (sending.retry_first, sending.retry_max, sending.attempts, sending.rest_after, sending.rest_for) == (
        15.0, 600.0, 8, 3, 60.0)


def test_sending_and_report_window_keys(tmp_path):
    config = load_config(write(tmp_path, MINIMAL + textwrap.dedent("""\
        sending: {retry_first: 5 s, retry_max: 2 min, attempts: 3, rest_after: 5, rest_for: 10 min}
        inbound: {report_window: 1 day}
    """)))
    assert (config.sending.retry_first, config.sending.retry_max, config.sending.attempts) == (5.0, 120.0, 3)
    assert (config.sending.rest_after, config.sending.rest_for, config.inbound.report_window) == (5, 600.0, 86400.0)
    errors, _ = errors_of(tmp_path, MINIMAL + "sending: {retry_first: 5 min, retry_max: 1 min, attempts: 0}\n")
    assert {path for path, _ in errors} == {"sending.retry_max", "sending.attempts"}
    assert "retry_first" in errors[next(k for k in errors if k[0] == "sending.retry_max")].message


def test_every_documented_key_loads(tmp_path):
    for name in ("zabbix.token", "zabbix.smpp", "gsm1.pin"):
        (tmp_path / name).write_text({"gsm1.pin": "0123\n"}.get(name, "s3cret\n"))
        os.chmod(tmp_path / name, 0o600)
    (tmp_path / "tls.crt").write_text("x")
    (tmp_path / "tls.key").write_text("x")
    os.chmod(tmp_path / "tls.key", 0o600)
    config = load_config(write(tmp_path, f"""\
        spool: /srv/spool
        state: /srv/state
        default_country: 49
        defaults: {{report: false, validity: "12 hours", max_parts: 3}}
        modems:
          - name: gsm1
            port: /dev/gsmgw/gsm1
            pin_file: {tmp_path}/gsm1.pin
            baudrate: 115200
            limits: {{per_minute: 6, per_day: 500}}
            prefixes: ["+4917", "+4915"]
            profile: Huawei
          - name: gsm2
            imsi: 262011234567890
            pin: 0042
          - {{name: gsm3, iccid: "8949020000001234567"}}
          - {{name: gsm4, imei: "867584032123456"}}
        probe_ports: ["/dev/ttyUSB*"]
        hooks: {{received: /bin/true}}
        hook_timeout: 10 s
        status_interval: 1 min
        log_level: DEBUG
        http:
          listen: "[::1]:8080"
          tls: {{cert: {tmp_path}/tls.crt, key: {tmp_path}/tls.key}}
          metrics: false
        clients:
          - name: zabbix
            token_file: {tmp_path}/zabbix.token
            smpp: {{system_id: zabbix, password_file: {tmp_path}/zabbix.smpp}}
            allow: ["+49*", "group:oncall"]
            deny: ["+49900*"]
            limits: {{per_minute: 60, per_hour: 600}}
        groups:
          oncall: ["+4915112345678", "0176 12345678"]
        webhooks: {{received: "https://app.example/in", report: "http://127.0.0.1:9/dlr", secret: x}}
        smpp: {{listen: 127.0.0.1:2775, window: 5}}
        alertmanager:
          receivers:
            oncall: {{to: ["group:oncall", "+4915100000000"], window: 2 min, max_per_hour: 10, max_parts: 2}}
        two_way:
          enabled: true
          allow_from: ["+4915112345678"]
          commands: {{uptime: [/usr/bin/uptime], restart: [/usr/bin/systemctl, restart, nginx]}}
          timeout: 20 s
        inbound: {{reassembly_timeout: 1 hour, sweep_interval: 10 s}}
        """))
    assert config.default_country == "49"
    assert (config.defaults.report, config.defaults.validity, config.defaults.max_parts) == (False, 143, 3)
    gsm1, gsm2, gsm3, gsm4 = config.modems
    assert (gsm1.pin, gsm1.profile, gsm1.limits.per_minute, gsm1.prefixes) == ("0123", "huawei", 6, ("+4917", "+4915"))
    assert gsm2.pin == "0042" and gsm2.binding == ("imsi", "262011234567890")  # not YAML octal
    assert gsm3.binding[0] == "iccid" and gsm4.binding[0] == "imei"
    assert (config.hook_timeout, config.status_interval, config.log_level) == (10, 60, "debug")
    assert (config.http.listen_host, config.http.listen_port, config.http.metrics) == ("::1", 8080, False)
    client = config.clients[0]
    assert (client.token, client.smpp.system_id, client.smpp.password) == ("s3cret", "zabbix", "s3cret")
    assert client.limits.per_hour == 600
    assert config.groups["oncall"] == ("+4915112345678", "+4917612345678")
    assert config.alertmanager.receivers["oncall"].window == 120
    assert config.two_way.commands["restart"] == ("/usr/bin/systemctl", "restart", "nginx")
    assert config.inbound.sweep_interval == 10 and config.smpp.window == 5


def test_unknown_key_names_path_line_and_suggestion(tmp_path):
    errors, _ = errors_of(tmp_path, """\
        spool: /var/spool/gsmgw
        modems:
          - name: gsm1
            port: /dev/gsmgw/gsm1
          - name: gsm2
            port: /dev/gsmgw/gsm2
            limits: {per_minut: 6}
        defautls: {report: true}
        """)
    issue = errors[("modems[1].limits.per_minut", 7)]
    assert "did you mean per_minute" in issue.fix
    assert "did you mean defaults" in errors[("defautls", 8)].fix


def test_all_errors_are_reported_at_once(tmp_path):
    errors, result = errors_of(tmp_path, """\
        spool: /var/spool/gsmgw
        default_country: "049"
        defaults: {validity: forever, max_parts: 0}
        modems:
          - name: gsm 1
            port: /dev/x
          - name: gsm2
          - name: gsm3
            port: /dev/y
            imsi: "123"
          - name: gsm3
            imei: "12"
            pin: "12"
            profile: nokia
        groups:
          oncall: ["not a number"]
        clients:
          - name: c
            token: t
            allow: ["group:oncal"]
        hook_timeout: soon
        two_way: {enabled: true}
        alertmanager: {receivers: {x: {to: ["+4915112345678"]}}}
        """)
    paths = {path for path, _ in errors}
    expected = {
        "default_country", "defaults.validity", "defaults.max_parts", "modems[0].name", "modems[1]",
        "modems[2].imsi", "modems[3].name", "modems[3].imei", "modems[3].pin", "modems[3].profile",
        "groups.oncall[0]", "clients[0].allow[0]", "hook_timeout", "two_way.allow_from", "alertmanager",
    }
    assert expected <= paths, expected - paths
    assert all(issue.line is not None and issue.fix for issue in result.errors)
    assert "did you mean group:oncall" in errors[("clients[0].allow[0]", 20)].fix


def test_yaml_syntax_error_has_a_line(tmp_path):
    _, result = errors_of(tmp_path, "spool: /x\nmodems:\n  - name: a\n   port: b\n")
    assert result.errors[0].line == 4 and "YAML" in result.errors[0].message


def test_duplicate_keys_are_errors(tmp_path):
    errors, _ = errors_of(tmp_path, MINIMAL + "spool: /other\n")
    assert ("spool", 5) in errors


def test_secrets_readable_by_others_are_warned_about(tmp_path):
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    os.chmod(pin_file, 0o644)
    path = write(tmp_path, f"""\
        modems:
          - {{name: gsm1, port: /dev/a, pin_file: {pin_file}}}
          - {{name: gsm2, port: /dev/b, pin: "1234"}}
        """, mode=0o644)
    result = check_config(path)
    assert not result.errors
    warned = {issue.path for issue in result.warnings}
    assert {"modems[0].pin_file", "modems[1].pin"} <= warned
    os.chmod(path, 0o600)
    os.chmod(pin_file, 0o600)
    assert not check_config(path).warnings


def test_missing_secret_file_is_an_error_but_send_need_not_read_it(tmp_path):
    path = write(tmp_path, MINIMAL + "    pin_file: /nonexistent/pin\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.errors[0].path == "modems[0].pin_file" and caught.value.errors[0].line == 5


def test_config_path_precedence(monkeypatch):
    monkeypatch.delenv("GSMGW_CONFIG", raising=False)
    assert config_path(None) == "/etc/gsmgw/gsmgw.yaml"
    monkeypatch.setenv("GSMGW_CONFIG", "/env.yaml")
    assert config_path(None) == "/env.yaml"
    assert config_path("/cli.yaml") == "/cli.yaml"


def test_simulation_config(tmp_path):
    config = simulation_config(tmp_path / "spool", [str(tmp_path / "modem0"), str(tmp_path / "modem1")])
    assert [m.name for m in config.modems] == ["modem0", "modem1"]
    assert config.state == tmp_path / "spool" / ".state"
    assert config.modems[1].port == str(tmp_path / "modem1")


@pytest.mark.parametrize("text,seconds", [
    ("30 s", 30), ("30s", 30), ("2 min", 120), ("12 hours", 43200), ("2 days", 172800), ("1 week", 604800),
    ("1 h 30 min", 5400), (45, 45), ("90", 90), ("1.5 h", 5400),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "1 30 min", "-5 s", True])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [
    "1000000 weeks", "522 weeks", "3651 days", "9" * 400, "9" * 400 + " s", 10**400, float("inf"), 3650 * 86400 + 1,
])
def test_durations_have_one_bound_of_ten_years(value):
    # "1000000 weeks" used to pass and then overflow datetime arithmetic in the daemon.
    with pytest.raises(DurationTooLong, match="longer than 3650 days"):
        parse_duration(value)
    assert parse_duration("3650 days") == MAX_SECONDS


def test_nan_is_not_a_duration():
    with pytest.raises(ValueError, match="not a number"):
        parse_duration(float("nan"))


def test_a_config_duration_over_the_bound_names_the_key():
    result = check_text("spool: /tmp/s\nhook_timeout: 1000000 weeks\n")
    assert any(issue.path == "hook_timeout" and "3650 days" in issue.message for issue in result.errors)


# --- the check-config command -----------------------------------------------------------------


def gsmgw(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "gsmgw", *args], capture_output=True, text=True, timeout=60,
                          **kwargs)


def test_check_config_command_exit_codes(tmp_path):
    good = gsmgw("check-config", str(REPO / "config.example.yaml"))
    assert good.returncode == 0 and good.stdout.strip().endswith("config.example.yaml: OK"), good.stdout
    bad_path = write(tmp_path, MINIMAL + "    limits: {per_minut: 6}\nlog_levl: info\n")
    bad = gsmgw("check-config", str(bad_path))
    assert bad.returncode == 1
    assert f"{bad_path}:5: modems[0].limits.per_minut: unknown key; did you mean per_minute?" in bad.stdout
    assert f"{bad_path}:6: log_levl" in bad.stdout and "2 errors" in bad.stdout
    missing = gsmgw("check-config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_check_config_uses_the_environment(tmp_path):
    path = write(tmp_path, MINIMAL)
    result = gsmgw("check-config", env={**os.environ, "GSMGW_CONFIG": str(path)})
    assert result.returncode == 0 and f"{path}: OK" in result.stdout


def test_secrets_never_appear_in_a_repr(tmp_path):
    # Regression: a logged config object (or a traceback showing it) printed the PIN and tokens.
    config = load_config(write(tmp_path, """\
        modems:
          - name: gsm1
            port: /dev/gsmgw/gsm1
            pin: "4711"
        clients:
          - name: app
            token: tok-ABCDEF-secret
            smpp: {system_id: app, password: pw-SECRET}
            allow: ["+49*"]
        webhooks:
          received: http://127.0.0.1:9/in
          secret: hook-SECRET
        """))
    text = repr(config)
    assert config.modem("gsm1").pin == "4711"
    for secret in ("4711", "tok-ABCDEF-secret", "pw-SECRET", "hook-SECRET"):
        assert secret not in text


@pytest.mark.parametrize("validity", ['"2 fortnights"', "300"])
def test_a_bad_default_validity_says_once_what_to_write(tmp_path, validity):
    text = MINIMAL.replace("modems:", f"defaults: {{validity: {validity}}}\nmodems:")
    _, result = errors_of(tmp_path, text)
    (issue,) = [issue for issue in result.errors if issue.path == "defaults.validity"]
    assert issue.fix.startswith("write") and issue.render().count("write") == 1, issue.render()


def test_two_way_secret_word(tmp_path):
    secret_file = tmp_path / "two-way.secret"
    secret_file.write_text("Blue-Heron-42\n")
    secret_file.chmod(0o600)
    base = MINIMAL + "two_way:\n  enabled: true\n  allow_from: ['+4915112345678']\n"
    assert load_config(write(tmp_path, base + f"  secret_file: {secret_file}\n")).two_way.secret == "Blue-Heron-42"
    assert "Blue-Heron-42" not in repr(load_config(write(tmp_path, base + "  secret: Blue-Heron-42\n")))
    assert load_config(write(tmp_path, base)).two_way.secret is None
    for value, path, words in (
        ("short", "two_way.secret", "at least 8"),
        ("'two words here'", "two_way.secret", "without spaces"),
    ):
        errors, result = errors_of(tmp_path, base + f"  secret: {value}\n")
        (issue,) = result.errors
        assert issue.path == path and words in issue.fix and issue.line == 8
        assert value.strip("'") not in issue.render()
    errors, result = errors_of(tmp_path, base + f"  secret: Blue-Heron-42\n  secret_file: {secret_file}\n")
    assert [issue.path for issue in result.errors] == ["two_way.secret_file"]


def test_rules_prefixes_and_alert_groups_are_stored_as_they_are_matched(tmp_path):
    # Regression: deny: ["0900*"] and "Group:prem" passed check-config but never matched, and an
    # Alertmanager `to: ["Group:oncall"]` passed check-config and failed at every notification.
    config = load_config(write(tmp_path, """\
        spool: /var/spool/gsmgw
        default_country: "49"
        modems:
          - {name: gsm1, port: /dev/gsmgw/gsm1, prefixes: ["+49 17", "015"]}
        http: {listen: 127.0.0.1:8025}
        groups: {prem: ["+49900123456"], oncall: ["+4915112345678"]}
        clients:
          - name: app
            token: t
            allow: ["+49 (0) 15*", "Modem: gsm1"]
            deny: ["0900*", "0049137*", "Group: prem"]
        alertmanager:
          receivers:
            oncall: {to: ["GROUP:oncall", "0151 12345678"]}
        """))
    assert config.modem("gsm1").prefixes == ("+4917", "+4915")
    (client,) = config.clients
    assert client.allow == ("+4915*", "modem:gsm1")
    assert client.deny == ("+49900*", "+49137*", "group:prem")
    assert config.alertmanager.receivers["oncall"].to == ("group:oncall", "+4915112345678")


def test_rules_that_match_nothing_are_errors_with_the_fix(tmp_path):
    errors, result = errors_of(tmp_path, """\
        spool: /var/spool/gsmgw
        modems: [{name: gsm1, port: /dev/gsmgw/gsm1}]
        http: {listen: 127.0.0.1:8025}
        clients:
          - name: app
            token: t
            allow: ["+49*", "modem:gsm9"]
            deny: ["0900*", "modem:gsm1", "+0*"]
        """)
    messages = {path: issue.render() for (path, _line), issue in errors.items()}
    assert "default_country" in messages["clients[0].deny[0]"]
    assert "move it to allow" in messages["clients[0].deny[1]"]
    assert "no country code" in messages["clients[0].deny[2]"]
    assert any(w.path == "clients[0].allow[1]" and "no configured modem" in w.message for w in result.warnings)


def test_national_languages_are_iso_codes_of_ts_23038(tmp_path):
    text = MINIMAL.replace("modems:", "defaults:\n  national_languages: [hi, TR, hi]\nmodems:")
    assert load_config(write(tmp_path, text)).defaults.national_languages == ("hi", "tr")
    assert load_config(write(tmp_path, MINIMAL)).defaults.national_languages == ()
    _, result = errors_of(tmp_path, MINIMAL.replace("modems:", "defaults:\n  national_languages: [hi, de]\nmodems:"))
    (issue,) = result.errors
    assert issue.path == "defaults.national_languages[1]" and "'de' is not a national language" in issue.message
    assert "hi (Hindi)" in issue.fix and "ur (Urdu)" in issue.fix and issue.line == 3


def test_webhooks_need_a_secret_of_their_own(tmp_path):
    base = MINIMAL + "webhooks:\n  received: https://app.example/in\n"
    _, result = errors_of(tmp_path, base)
    (issue,) = result.errors
    assert issue.path == "webhooks.secret_file" and "add secret_file:" in issue.fix
    assert load_config(write(tmp_path, base + "  secret: a-long-random-string\n")).webhooks.secret == "a-long-random-string"
    # The secret must not be a client's token: a receiver that holds it could then send SMS.
    _, result = errors_of(tmp_path, base + "  secret: tok-1234567\nclients:\n  - {name: app, token: tok-1234567, allow: ['+49*']}\n")
    assert [issue.path for issue in result.errors] == ["webhooks.secret"]
    assert "'app'" in result.errors[0].message and "tok-1234567" not in result.errors[0].render()


def test_client_callback_hosts_and_webhook_secret(tmp_path):
    secret = tmp_path / "app.webhook"
    secret.write_text("wh-0123456789\n")
    secret.chmod(0o600)
    client = "clients:\n  - name: app\n    token: tok-1\n    allow: ['+49*']\n"
    config = load_config(write(tmp_path, MINIMAL + client + "    callback_hosts: [App.Example., '*.hooks.example', '[::1]']\n"
                                f"    callback_private_addresses: true\n    webhook_secret_file: {secret}\n"))
    (app,) = config.clients
    assert app.callback_hosts == ("app.example", "*.hooks.example", "::1")
    assert app.callback_private_addresses is True and app.webhook_secret == "wh-0123456789"
    assert load_config(write(tmp_path, MINIMAL + client)).clients[0].callback_hosts == ()

    _, result = errors_of(tmp_path, MINIMAL + client + "    callback_hosts: [app.example]\n")
    (issue,) = result.errors
    assert issue.path == "clients[0].webhook_secret_file" and "add webhook_secret_file:" in issue.fix
    _, result = errors_of(tmp_path, MINIMAL + client + "    webhook_secret: tok-1\n")
    assert [issue.path for issue in result.errors] == ["clients[0].webhook_secret"]
    _, result = errors_of(tmp_path, MINIMAL + client + f"    webhook_secret_file: {secret}\n"
                          "    callback_hosts: ['https://app.example/x', 'app.example:8080', ok.example]\n")
    assert [issue.path for issue in result.errors] == ["clients[0].callback_hosts[0]", "clients[0].callback_hosts[1]"]
    assert all("no scheme, port or path" in issue.fix for issue in result.errors)


def test_national_languages_at_the_top_level_is_the_documented_key(tmp_path):
    """Issue 13 names `national_languages: [hi, tr]` at the top level; defaults.national_languages is its synonym."""
    top = load_config(write(tmp_path, MINIMAL.replace("modems:", "national_languages: [hi, TR]\nmodems:")))
    assert top.national_languages == top.defaults.national_languages == ("hi", "tr")
    _, result = errors_of(tmp_path, MINIMAL.replace("modems:", "national_languages: [xx]\nmodems:"))
    (issue,) = result.errors
    assert issue.path == "national_languages[0]" and "'xx' is not a national language" in issue.message


def test_national_languages_set_twice_is_refused(tmp_path):
    text = MINIMAL.replace("modems:", "national_languages: [hi]\ndefaults:\n  national_languages: [tr]\nmodems:")
    _, result = errors_of(tmp_path, text)
    (issue,) = result.errors
    assert issue.path == "defaults.national_languages" and "set twice" in issue.message
    assert "remove defaults.national_languages" in issue.fix


def test_connection_caps_of_the_listeners():
    modem = "modems:\n  - name: gsm1\n    port: /dev/ttyUSB0\n"
    result = check_text(
        "spool: /tmp/s\n" + modem + "http:\n  max_connections: 50\n  max_connections_per_address: 5\n"
        "  header_timeout: 3 s\nsmpp:\n  max_connections: 20\n  bind_timeout: 10 s\n"
    )
    assert not result.errors, result.errors
    http, smpp = result.config.http, result.config.smpp
    assert (http.max_connections, http.max_connections_per_address, http.header_timeout) == (50, 5, 3.0)
    # Without its own per-address cap, a listener allows up to 128 per address, never more than in all.
    assert (smpp.max_connections, smpp.max_connections_per_address, smpp.bind_timeout) == (20, 20, 10.0)
    result = check_text("spool: /tmp/s\n" + modem + "http:\n  max_connections: 5\n  max_connections_per_address: 9\n")
    assert [issue.path for issue in result.errors] == ["http.max_connections_per_address"]
    result = check_text("spool: /tmp/s\n" + modem + "smpp:\n  bind_timeout: 0\n")
    assert [issue.path for issue in result.errors] == ["smpp.bind_timeout"]
