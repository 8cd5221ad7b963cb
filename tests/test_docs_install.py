"""docs/install.md works as written: its config, PIN file, documentation and Nagios steps."""

from __future__ import annotations

import getpass
import json
import re
import stat
import subprocess
import sys
from pathlib import Path

from gsmgw.config import check_text

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "docs" / "install.md"
UNIT = REPO / "systemd" / "gsmgw.service"


def example(name: str) -> str:
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```", INSTALL.read_text(), re.S)
    assert match, f"docs/install.md has no code block marked <!-- example: {name} -->"
    return match.group(1)


def test_the_config_of_a_sim_without_pin_passes_check_config():
    # The config used to name a pin_file in every case, which check-config refuses when the file
    # does not exist, i.e. exactly when the SIM has no PIN and the step was skipped.
    result = check_text(example("config"), filename="/etc/gsmgw/gsmgw.yaml")
    assert not result.errors, [issue.render("/etc/gsmgw/gsmgw.yaml") for issue in result.errors]
    assert result.config.modems[0].pin is None


def test_the_pin_step_writes_the_pin_into_a_file_only_gsmgw_reads(tmp_path):
    etc = tmp_path / "etc-gsmgw"
    etc.mkdir()
    # As root on a server, with the user gsmgw; here as whoever runs the tests.
    script = example("pin-file").replace("/etc/gsmgw", str(etc)).replace("-o gsmgw", f"-o {getpass.getuser()}")
    subprocess.run(["bash", "-c", script], input="0123\n", text=True, check=True, timeout=30)
    pin_file = etc / "gsm1.pin"
    assert pin_file.read_text() == "0123\n"
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600

    config = example("config").split("modems:")[0] + example("config-with-pin").replace("/etc/gsmgw", str(etc))
    result = check_text(config, filename="gsmgw.yaml")
    assert not result.errors, [issue.render("gsmgw.yaml") for issue in result.errors]
    assert result.config.modems[0].pin == "0123"


def test_the_documentation_the_unit_names_is_put_there_by_the_install_steps(tmp_path):
    documented = re.search(r"^Documentation=(.*)$", UNIT.read_text(), re.M).group(1).split()
    paths = [Path(url.removeprefix("file://")) for url in documented]
    assert paths and all(url.startswith("file://") for url in documented)
    doc_dir = paths[0].parent
    commands = [line for line in INSTALL.read_text().splitlines() if str(doc_dir) in line and line.startswith("install ")]
    assert commands, f"docs/install.md installs nothing into {doc_dir}"
    scratch = tmp_path / "doc"
    for command in commands:
        subprocess.run(["sh", "-c", command.replace(str(doc_dir), str(scratch))], cwd=REPO, check=True, timeout=30)
    for path in paths:
        assert (scratch / path.relative_to(doc_dir)).is_file(), f"{path} is named by the unit but not installed"


def _nagios_command_lines() -> list[str]:
    return re.findall(r"^\s*command_line\s+(.*)$", INSTALL.read_text(), re.M)


def test_nagios_command_lines_pass_every_macro_as_one_argument(tmp_path):
    # Nagios substitutes the macros, then runs the line with /bin/sh. An unquoted $CONTACTPAGER$
    # split a pager written with blanks into several arguments.
    stub = tmp_path / "gsmgw"
    stub.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    stub.chmod(0o755)
    values = {
        "CONTACTPAGER": "0151 1234 5678",
        "NOTIFICATIONTYPE": "PROBLEM",
        "HOSTNAME": "db1",
        "HOSTSTATE": "DOWN",
        "HOSTOUTPUT": "CRITICAL - 100% packet loss; rta nan",
        "SERVICEDESC": "Disk /var",
        "SERVICESTATE": "CRITICAL",
        "SERVICEOUTPUT": "DISK CRITICAL - free space: /var 12 MB (1%)",
    }
    lines = _nagios_command_lines()
    assert len(lines) == 2
    for line in lines:
        macros = set(re.findall(r"\$([A-Z]+)\$", line))
        assert macros <= set(values), macros - set(values)
        command = line.replace("/usr/local/bin/gsmgw", str(stub))
        for name, value in values.items():
            command = command.replace(f"${name}$", value)
        argv = json.loads(subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True,
                                         timeout=30).stdout)
        assert argv[:5] == ["send", "--to", "0151 1234 5678", "--expires", "2 hours"], argv
        assert len(argv) == 6 and argv[5].startswith("PROBLEM db1"), argv
