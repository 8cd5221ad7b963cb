"""The systemd unit, sysusers and tmpfiles snippets, checked by systemd's own tools.

systemd-analyze, systemd-sysusers and systemd-tmpfiles work offline (no running
systemd needed), so these tests run in containers and CI. Each one skips with
the reason when its tool is missing.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "gsmgw.service"
SYSUSERS = REPO / "systemd" / "gsmgw-sysusers.conf"
TMPFILES = REPO / "systemd" / "gsmgw-tmpfiles.conf"
SPOOL_DIRS = ("outgoing", "checked", "sent", "failed", "incoming", "report")
# The worst case a stop must wait for: one AT+CMGS timeout per part of the
# largest message (SPOOL.md's default max_parts).
CMGS_TIMEOUT_S = 60
DEFAULT_MAX_PARTS = 6


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Section.Key -> values in order. systemd allows repeated keys (DeviceAllow=)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", text)
    assert match, f"unexpected time span {text!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing to a binary that exists here.

    systemd-analyze verify fails when the ExecStart binary is missing, and the
    shipped /usr/local/bin/gsmgw only exists after `pip install` on a server.
    The gsmgw of the test's own virtualenv is the same program.
    """
    gsmgw_binary = Path(sys.executable).with_name("gsmgw")
    if not gsmgw_binary.exists():
        gsmgw_binary = Path(shutil.which("true") or "/bin/true")
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/gsmgw ", f"ExecStart={gsmgw_binary} ")
    assert str(gsmgw_binary) in text
    copy = tmp_path / "gsmgw.service"
    copy.write_text(text)
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = verifiable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in result.stderr.splitlines() if "gsmgw" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_hardening_exposure_is_low(tmp_path):
    unit = verifiable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline security check (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    # 2.x is systemd's "OK"; anything above 3 means a hardening line got lost.
    assert float(match.group(1)) <= 3.0


def test_unit_has_the_settings_the_gateway_relies_on():
    unit = unit_settings(UNIT)
    assert unit["Service.Type"] == ["notify"]
    assert unit["Service.NotifyAccess"] == ["main"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert seconds(unit["Service.WatchdogSec"][0]) >= 10
    assert unit["Service.User"] == ["gsmgw"]
    assert "dialout" in unit["Service.SupplementaryGroups"][0].split()
    assert unit["Service.StateDirectory"] == ["gsmgw"]
    assert unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.NoNewPrivileges"] == ["yes"]
    assert unit["Service.DevicePolicy"] == ["closed"]
    assert {"char-ttyUSB rw", "char-ttyACM rw"} <= set(unit["Service.DeviceAllow"])
    # PrivateDevices= would hide every modem from the daemon.
    assert "Service.PrivateDevices" not in unit
    assert unit["Service.ExecStart"][0].split()[1:] == ["run", "-c", "/etc/gsmgw/gsmgw.yaml"]
    assert seconds(unit["Service.TimeoutStopSec"][0]) >= CMGS_TIMEOUT_S * DEFAULT_MAX_PARTS
    assert unit["Install.WantedBy"] == ["multi-user.target"]


def test_the_descriptor_limit_leaves_room_beyond_the_connection_caps():
    # At systemd's default soft limit (1,024) a flood of connections made spool writes fail
    # with EMFILE: the two listeners alone may hold more by default.
    from gsmgw.config import HttpConfig, SmppConfig

    unit = unit_settings(UNIT)
    (limit,) = unit["Service.LimitNOFILE"]
    caps = HttpConfig().max_connections + SmppConfig().max_connections
    assert int(limit.split(":")[0]) >= 4 * caps


def tmpfiles_lines() -> list[list[str]]:
    lines = []
    for raw in TMPFILES.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            lines.append(raw.split())
    return lines


def test_unit_may_write_exactly_the_spool_that_tmpfiles_creates():
    unit = unit_settings(UNIT)
    spool_root = "/var/spool/gsmgw"
    assert unit["Service.ReadWritePaths"] == [spool_root]
    created = {fields[1] for fields in tmpfiles_lines() if fields[0] == "d"}
    assert {f"{spool_root}/{name}" for name in SPOOL_DIRS} <= created


def test_outgoing_is_group_writable_setgid_and_the_rest_is_not():
    modes = {fields[1]: int(fields[2], 8) for fields in tmpfiles_lines() if fields[0] == "d"}
    outgoing = modes["/var/spool/gsmgw/outgoing"]
    assert outgoing & stat.S_ISGID and outgoing & stat.S_IWGRP
    assert not outgoing & stat.S_IRWXO
    for name in SPOOL_DIRS:
        if name != "outgoing":
            mode = modes[f"/var/spool/gsmgw/{name}"]
            assert not mode & stat.S_IWGRP, name
            assert not mode & stat.S_IRWXO, name


def read_ids(path: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines() if line}


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)
@pytest.mark.skipif(sys.platform != "linux" or __import__("os").geteuid() != 0,
                    reason="creating files owned by another user needs root")
def test_sysusers_then_tmpfiles_build_the_spool_in_a_scratch_root(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
                   check=True, capture_output=True, timeout=60)
    users, groups = read_ids(etc / "passwd"), read_ids(etc / "group")
    assert "gsmgw" in users and "gsmgw" in groups
    assert "gsmgw" in groups["dialout"][3].split(",")
    uid, gid = int(users["gsmgw"][2]), int(groups["gsmgw"][2])

    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(TMPFILES)],
                   check=True, capture_output=True, timeout=60)
    for name in SPOOL_DIRS:
        info = (tmp_path / "var/spool/gsmgw" / name).stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), name
    outgoing = (tmp_path / "var/spool/gsmgw/outgoing").stat()
    assert stat.S_IMODE(outgoing.st_mode) == 0o3770
    assert stat.S_IMODE((tmp_path / "var/lib/gsmgw").stat().st_mode) == 0o750
