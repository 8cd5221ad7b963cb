"""udev rules: checked by udev itself where it can, and by a lint of every rule line.

`udevadm verify` (systemd >= 253) checks a rules file directly. Debian 12's
udevadm 252 has no verify, but `udevadm test` reads every rules file and names
each line it cannot parse; the fallback uses that through /run/udev/rules.d
when no udevd is running (so no live system is touched) and we are root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

UDEV = Path(__file__).resolve().parent.parent / "udev"
RULES = UDEV / "70-gsmgw.rules"
LOCAL_EXAMPLE = UDEV / "71-gsmgw-local.rules.example"

MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
              "DRIVERS", "ATTR", "ATTRS", "ENV", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT", "NAME",
              "SYMLINK"}
ASSIGN_KEYS = {"NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "ENV", "TAG", "RUN", "IMPORT",
               "GOTO", "LABEL", "OPTIONS", "ATTR"}
TOKEN = re.compile(r'([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"')
# udevadm verify's style rule (systemd >= 254): tokens are separated by exactly ", ".
SEPARATOR = re.compile(r", (?=\S)")


def parse_rule(line: str) -> list[tuple[str, str | None, str, str]]:
    """(key, attribute, operator, value) for each token; AssertionError names what is wrong."""
    tokens, position = [], 0
    while True:
        match = TOKEN.match(line, position)
        assert match, f"cannot parse {line[position:]!r}"
        key, attribute, operator, value = match.groups()
        tokens.append((key, attribute, operator, value))
        position = match.end()
        if position == len(line):
            return tokens
        separator = SEPARATOR.match(line, position)
        assert separator, f"after {key}: tokens must be separated by a comma and one space"
        position = separator.end()


def rule_lines(text: str) -> list[tuple[int, str]]:
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lines.append((number, stripped))
    return lines


def lint(text: str) -> list[str]:
    problems, gotos, labels = [], set(), set()
    for number, line in rule_lines(text):
        try:
            tokens = parse_rule(line)
        except AssertionError as error:
            problems.append(f"line {number}: {error}")
            continue
        for key, attribute, operator, value in tokens:
            if operator in ("==", "!="):
                if key not in MATCH_KEYS:
                    problems.append(f"line {number}: {key} cannot be matched")
            elif key not in ASSIGN_KEYS:
                problems.append(f"line {number}: {key} cannot be assigned")
            if key in ("ENV", "ATTR", "ATTRS", "IMPORT") and not attribute:
                problems.append(f"line {number}: {key} needs {{...}}")
            if key in ("ATTRS", "SUBSYSTEMS", "KERNELS", "DRIVERS") and operator not in ("==", "!="):
                problems.append(f"line {number}: {key} can only be matched")
            if key == "GOTO":
                gotos.add(value)
            if key == "LABEL":
                labels.add(value)
            if key == "SYMLINK" and operator != "==":
                if not value.startswith("gsmgw/"):
                    problems.append(f"line {number}: links belong under /dev/gsmgw/")
            if key == "GROUP" and value != "dialout":
                problems.append(f"line {number}: the ports belong to dialout")
            if key == "MODE" and value != "0660":
                problems.append(f"line {number}: mode must be 0660 (no access for others)")
    problems += [f"GOTO {label!r} has no LABEL" for label in gotos - labels]
    problems += [f"LABEL {label!r} is unused" for label in labels - gotos]
    return problems


def uncommented_example() -> str:
    """The local example with its commented-out rules switched on."""
    return re.sub(r"^#(ENV\{)", r"\1", LOCAL_EXAMPLE.read_text(), flags=re.M)


def test_lint_knows_a_broken_rule():
    assert lint('SUBSYSTEM=="tty" GROUP="dialout"\n')
    assert lint('ATTRS{idVendor}="12d1"\n')
    assert lint('GOTO="nowhere"\n')
    assert lint('SUBSYSTEM=="tty", SYMLINK+="ttyGSM"\n')
    assert lint('SUBSYSTEM=="tty", MODE="0666"\n')
    assert lint('SUBSYSTEM=="tty", FOO="1"\n')
    assert lint('SUBSYSTEM=="tty",GROUP="dialout"\n')
    assert lint('SUBSYSTEM=="tty" , GROUP="dialout"\n')
    assert lint('LABEL="nobody_jumps_here"\n')


@pytest.mark.parametrize("text", [RULES.read_text(), uncommented_example()], ids=["shipped", "example"])
def test_rules_pass_the_lint(text):
    assert lint(text) == []


def known_modems() -> dict[str, set[str]]:
    """Section of 70-gsmgw.rules -> the vendor:product pairs it names."""
    sections: dict[str, set[str]] = {"usb_device": set(), "tty": set()}
    section = None
    for _, line in rule_lines(RULES.read_text()):
        tokens = parse_rule(line)
        values = {(key, attribute): value for key, attribute, op, value in tokens}
        if ("LABEL", None) in values:
            section = {"gsmgw_usb_device": "usb_device", "gsmgw_tty": "tty"}.get(values[("LABEL", None)])
        vendor = values.get(("ATTR", "idVendor")) or values.get(("ENV", "ID_VENDOR_ID"))
        product = values.get(("ATTR", "idProduct")) or values.get(("ENV", "ID_MODEL_ID"))
        if section and vendor and product:
            sections[section] |= {f"{vendor}:{p}" for p in product.split("|")}
    return sections


def test_every_known_modem_is_hidden_from_modemmanager_and_linked():
    sections = known_modems()
    # The models the README promises.
    assert {"12d1:1506", "12d1:1436", "1e0e:9001", "2c7c:0125"} <= sections["tty"]
    assert sections["tty"] == sections["usb_device"]


def test_tty_rules_name_by_usb_path_and_interface_and_tag_for_systemd():
    text = RULES.read_text()
    assert 'SYMLINK+="gsmgw/usb-$env{GSMGW_USB_PORT}-if$env{ID_USB_INTERFACE_NUM}"' in text
    assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in text
    assert 'TAG+="systemd"' in text
    # No rule may rely on ttyUSB numbering or a serial number (cheap sticks share one).
    assert "ttyUSB" not in "".join(line for _, line in rule_lines(text))
    assert "ID_SERIAL" not in text


def udevadm() -> str | None:
    return shutil.which("udevadm")


def has_verify() -> bool:
    result = subprocess.run([udevadm(), "verify", "--help"], capture_output=True, timeout=30)
    return result.returncode == 0


@pytest.mark.skipif(udevadm() is None, reason="udevadm is not installed (apt-get install udev)")
@pytest.mark.parametrize("text", [RULES.read_text(), uncommented_example()], ids=["shipped", "example"])
def test_udev_itself_accepts_the_rules(text, tmp_path):
    if has_verify():
        rules = tmp_path / "70-gsmgw.rules"
        rules.write_text(text)
        result = subprocess.run([udevadm(), "verify", str(rules)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return
    if os.geteuid() != 0:
        pytest.skip("udevadm < 253 has no verify; the `udevadm test` fallback needs root")
    if Path("/run/udev/control").exists():
        pytest.skip("udevadm < 253 has no verify, and a running udevd must not see test rules")
    runtime_rules = Path("/run/udev/rules.d")
    runtime_rules.mkdir(parents=True, exist_ok=True)
    rules = runtime_rules / f"70-gsmgw-test-{uuid.uuid4().hex}.rules"
    rules.write_text(text)
    try:
        result = subprocess.run([udevadm(), "test", "--action=add", "/sys/class/tty/tty0"],
                                capture_output=True, text=True, timeout=60)
    finally:
        rules.unlink()
    output = result.stdout + result.stderr
    assert f"Reading rules file: {rules}" in output
    # udev names each line it rejects as "<file>:<line> <reason>" before any device is processed.
    rejected = [line for line in output.splitlines() if line.startswith(f"{rules}:")]
    assert rejected == []
