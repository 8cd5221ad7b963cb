"""gsmgw doctor: every finding reproduced, with the simulator over real ptys or a fixture tree.

/sys and /proc are fixture trees built here (the layout of a real
/sys/bus/usb/devices and /proc/<pid>/fd); the modems are simulated modems on
pseudo-terminals, asked over AT by the same driver the daemon uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gsmgw import doctor
from gsmgw.daemon.lock import DaemonLock
from gsmgw.doctor import Account, diagnose, gather
from gsmgw.sim.network import SimNetwork

PIN = "4711"
OUTSIDER = Account("gsmgw", 54321, frozenset({54321}))


def root_account() -> Account:
    return Account("root", 0, frozenset({0}))


def write_config(tmp_path: Path, ports: list[str], *, pin: str | None = None, mode: int = 0o600) -> Path:
    lines = [f"spool: {tmp_path / 'spool'}", f"state: {tmp_path / 'state'}", "modems:"]
    for i, port in enumerate(ports):
        lines += [f"  - name: gsm{i + 1}", f"    port: {port}"]
        if pin:
            lines.append(f'    pin: "{pin}"')
    config = tmp_path / "gsmgw.yaml"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(mode)
    return config


def make_spool(tmp_path: Path) -> Path:
    spool = tmp_path / "spool"
    for name in doctor.SPOOL_DIRS:
        (spool / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "state").mkdir(exist_ok=True)
    return spool


def empty_roots(tmp_path: Path) -> tuple[Path, Path]:
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    (sys_root / "bus/usb/devices").mkdir(parents=True)
    proc_root.mkdir()
    return sys_root, proc_root


def fake_process(proc_root: Path, pid: int, name: str, cmdline: list[str], open_files: list[str]) -> None:
    base = proc_root / str(pid)
    (base / "fd").mkdir(parents=True)
    (base / "comm").write_text(name + "\n")
    (base / "cmdline").write_bytes(b"\0".join(part.encode() for part in cmdline) + b"\0")
    for fd, target in enumerate(open_files, start=3):
        os.symlink(target, base / "fd" / str(fd))


@contextlib.contextmanager
def daemon_of_this_config(tmp_path: Path, proc_root: Path, open_files: list[str]):
    """This test process plays the config's daemon: it holds the state directory's lock (as
    `gsmgw run` does) and shows in the fixture /proc as `gsmgw run` with `open_files`."""
    fake_process(proc_root, os.getpid(), "gsmgw", ["/usr/bin/python3", "/usr/local/bin/gsmgw", "run", "-c", "x"],
                 open_files)
    lock = DaemonLock.acquire(tmp_path / "state", tmp_path / "spool")
    try:
        yield
    finally:
        lock.release()


def usb_device(sys_root: Path, name: str, vendor: str, product: str, interfaces: list[tuple[str, str | None]],
               product_name: str = "") -> None:
    """interfaces: (bInterfaceClass, tty or None) per interface number."""
    base = sys_root / "bus/usb/devices"
    (base / name).mkdir()
    (base / name / "idVendor").write_text(vendor + "\n")
    (base / name / "idProduct").write_text(product + "\n")
    if product_name:
        (base / name / "product").write_text(product_name + "\n")
    for number, (cls, tty) in enumerate(interfaces):
        interface = base / f"{name}:1.{number}"
        interface.mkdir()
        (interface / "bInterfaceClass").write_text(cls + "\n")
        (interface / "bInterfaceSubClass").write_text("ff\n")
        (interface / "bInterfaceProtocol").write_text("ff\n")
        if tty and tty.startswith("ttyACM"):
            (interface / "tty" / tty).mkdir(parents=True)
        elif tty:
            (interface / tty).mkdir()


def checks(findings) -> list[tuple[str, str]]:
    return sorted((f.check, f.severity) for f in findings)


@pytest.fixture
def network(tmp_path):
    with SimNetwork(tmp_path / "sim", modems=2) as net:
        yield net


def on_sim(net: SimNetwork, index: int, **attributes) -> None:
    """Change a simulated SIM's state on the simulator's own loop."""
    sim = net.modem(index)
    net._call(lambda: [setattr(sim, key, value) for key, value in attributes.items()])


def run_doctor(tmp_path, config, *, account=None, sys_root=None, proc_root=None, probe=doctor.probe_modem):
    if sys_root is None:
        sys_root, proc_root = empty_roots(tmp_path)
    facts, secrets = gather(str(config), sys_root=sys_root, proc_root=proc_root,
                            account=account or root_account(), probe=probe)
    return diagnose(facts), secrets


# --- modems over AT (simulator) --------------------------------------------------------------


def test_healthy_gateway_has_nothing_to_fix(tmp_path, network):
    make_spool(tmp_path)
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config)
    assert findings == []


def test_sim_pin_without_a_pin_in_the_config(tmp_path):
    make_spool(tmp_path)
    with SimNetwork(tmp_path / "sim", modems=1, pin=PIN) as net:
        config = write_config(tmp_path, [net.modems[0].path])
        findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("sim-pin", "error")]
    assert "gives none" in findings[0].problem and "pin_file" in findings[0].fix


def test_sim_pin_in_the_config_is_left_to_the_daemon_and_never_entered_or_printed(tmp_path):
    make_spool(tmp_path)
    with SimNetwork(tmp_path / "sim", modems=1, pin=PIN) as net:
        config = write_config(tmp_path, [net.modems[0].path], pin=PIN)
        findings, _ = run_doctor(tmp_path, config)
        assert findings == []
        # doctor did not unlock the SIM: it still asks for its PIN, with every attempt left.
        assert net._call(lambda: (net.modem(0).pin_state, net.modem(0).pin_attempts)) == ("SIM PIN", 3)


def test_last_pin_attempt_is_not_risked(tmp_path):
    make_spool(tmp_path)
    with SimNetwork(tmp_path / "sim", modems=1, pin=PIN) as net:
        on_sim(net, 0, pin_attempts=1)
        config = write_config(tmp_path, [net.modems[0].path], pin=PIN)
        findings, secrets = run_doctor(tmp_path, config)
    assert checks(findings) == [("sim-pin", "error")]
    assert "only 1 attempt left" in findings[0].problem
    assert PIN not in doctor.render_text(findings, secrets)


def test_sim_puk(tmp_path, network):
    make_spool(tmp_path)
    on_sim(network, 1, pin_state="SIM PUK", pin_attempts=0)
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("sim-puk", "error")]
    assert findings[0].subject.startswith("modem gsm2 ")
    assert "PUK" in findings[0].fix


def test_no_network_registration(tmp_path, network):
    make_spool(tmp_path)
    on_sim(network, 0, cfun=0)  # radio off: the modem is not registered
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("registration", "error")]
    assert findings[0].subject.startswith("modem gsm1 ")


def test_smsc_missing(tmp_path, network):
    make_spool(tmp_path)
    on_sim(network, 0, smsc="")
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("smsc", "error")]
    assert "AT+CSCA" in findings[0].fix


def test_sim_storage_full(tmp_path, network):
    make_spool(tmp_path)
    network.set_fault(0, "storage_full")
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("sim-storage", "error")]


def test_sim_storage_nearly_full_is_a_warning():
    modem = doctor.ModemFacts("gsm1", "/dev/gsmgw/x", "port", False,
                              probe=doctor.ModemProbe(pin_state="READY", registered=True, smsc="+4917",
                                                      smsc_known=True, storage=(("SM", 27, 30),)))
    findings = doctor.check_modems(doctor.Facts(modems=[modem]))
    assert checks(findings) == [("sim-storage", "warning")]


def test_a_port_that_does_not_answer(tmp_path, network):
    make_spool(tmp_path)
    network.set_fault(0, "hang", seconds=30)
    config = write_config(tmp_path, [network.modems[0].path])

    async def quick_probe(port, modem_config):
        return await doctor.probe_modem(port, modem_config, timeout=1.0)

    findings, _ = run_doctor(tmp_path, config, probe=quick_probe)
    assert checks(findings) == [("no-answer", "error")]


def test_port_missing(tmp_path):
    make_spool(tmp_path)
    config = write_config(tmp_path, [str(tmp_path / "dev/gsmgw/usb-1-1.4-if02")])
    findings, _ = run_doctor(tmp_path, config)
    assert checks(findings) == [("port-missing", "error")]
    assert "70-gsmgw.rules" in findings[0].fix


def test_port_permission_for_the_daemon_user(tmp_path, network):
    make_spool(tmp_path)
    for path in tmp_path.joinpath("spool").iterdir():
        path.chmod(0o777)
    config = write_config(tmp_path, [network.modems[0].path])
    # The pty belongs to root:tty 0620; a user outside those may not open it.
    findings, _ = run_doctor(tmp_path, config, account=OUTSIDER, probe=None)
    port_findings = [f for f in findings if f.check == "port-permission"]
    assert len(port_findings) == 1
    # Never "join the group root/tty": the port should belong to dialout.
    assert "chgrp dialout" in port_findings[0].fix and "usermod" not in port_findings[0].fix


def test_port_of_dialout_wants_the_user_in_dialout():
    import grp

    dialout = grp.getgrnam("dialout").gr_gid
    port = doctor.PathFacts("/dev/gsmgw/usb-1-1.4-if02", True, is_char_device=True, mode=0o660, uid=0,
                            gid=dialout, real_path="/dev/ttyUSB2")
    modem = doctor.ModemFacts("gsm1", port.path, "port", False, port)
    findings = doctor.check_ports(doctor.Facts(daemon=OUTSIDER, modems=[modem]))
    assert checks(findings) == [("port-permission", "error")]
    assert "crw-rw----" in findings[0].problem
    assert "usermod -aG dialout gsmgw" in findings[0].fix
    member = Account("gsmgw", 54321, frozenset({54321, dialout}))
    assert doctor.check_ports(doctor.Facts(daemon=member, modems=[modem])) == []


# --- processes (fixture /proc) ---------------------------------------------------------------


def test_modemmanager_holding_a_port(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    port = network.modems[0].path
    fake_process(proc_root, 812, "ModemManager", ["/usr/sbin/ModemManager"], [os.path.realpath(port)])
    config = write_config(tmp_path, [port, network.modems[1].path])
    findings, _ = run_doctor(tmp_path, config, sys_root=sys_root, proc_root=proc_root)
    assert checks(findings) == [("modemmanager", "error")]
    assert "PID 812" in findings[0].problem and "ID_MM_DEVICE_IGNORE" in findings[0].fix


def test_modemmanager_running_without_a_port_is_a_warning(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    fake_process(proc_root, 812, "ModemManager", ["/usr/sbin/ModemManager"], ["/dev/null"])
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config, sys_root=sys_root, proc_root=proc_root)
    assert checks(findings) == [("modemmanager", "warning")]


def test_another_sms_daemon_holding_a_port(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    port = network.modems[1].path
    fake_process(proc_root, 901, "smsd", ["/usr/sbin/smsd", "-t"], [os.path.realpath(port)])
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config, sys_root=sys_root, proc_root=proc_root)
    assert checks(findings) == [("port-busy", "error")]
    assert "smstools" in findings[0].fix and findings[0].subject.startswith("modem gsm2 ")


def test_the_running_gsmgw_daemon_is_not_a_problem(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    port = network.modems[0].path
    asked = []

    async def recording_probe(port, modem_config):
        asked.append(port)
        return await doctor.probe_modem(port, modem_config)

    config = write_config(tmp_path, [m.path for m in network.modems])
    with daemon_of_this_config(tmp_path, proc_root, [os.path.realpath(port)]):
        facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(),
                          probe=recording_probe)
    assert diagnose(facts) == []
    # While the daemon runs, doctor opens none of the configured ports (its status file speaks for them),
    # and says so.
    assert asked == []
    (note,) = doctor.notes(facts)
    assert f"PID {os.getpid()}" in note and str(tmp_path / "state") in note


def test_another_gsmgw_run_does_not_blind_doctor(tmp_path, network):
    # Any `gsmgw run` on the machine (a second gateway, a `run --simulate` demo) made doctor
    # probe none of this config's modems and say nothing about them.
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    fake_process(proc_root, 4711, "gsmgw", ["/usr/local/bin/gsmgw", "run", "--simulate", "2", "--spool", "/tmp/demo"], [])
    asked = []

    async def recording_probe(port, modem_config):
        asked.append(port)
        return await doctor.probe_modem(port, modem_config)

    on_sim(network, 1, cfun=0)  # radio off: what only asking the modem finds
    config = write_config(tmp_path, [m.path for m in network.modems])
    facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(), probe=recording_probe)
    assert sorted(asked) == sorted(m.path for m in network.modems)
    assert checks(diagnose(facts)) == [("registration", "error")]
    (note,) = doctor.notes(facts)
    assert "PID 4711" in note and "another state directory" in note


def test_a_gsmgw_of_another_config_holding_our_port_is_named(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    port = network.modems[0].path
    fake_process(proc_root, 4711, "gsmgw", ["/usr/local/bin/gsmgw", "run", "-c", "/etc/other.yaml"],
                 [os.path.realpath(port)])
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config, sys_root=sys_root, proc_root=proc_root)
    assert checks(findings) == [("port-busy", "error")]
    assert "PID 4711" in findings[0].problem and "kill 4711" in findings[0].fix


# --- USB (fixture /sys) ----------------------------------------------------------------------


def test_stick_in_mass_storage_mode(tmp_path):
    sys_root, proc_root = empty_roots(tmp_path)
    usb_device(sys_root, "1-1.4", "12d1", "1f01", [("08", None)], "HUAWEI_MOBILE")
    usb_device(sys_root, "1-1.3", "2c7c", "0125", [("ff", "ttyUSB0"), ("ff", "ttyUSB1"), ("ff", "ttyUSB2")])
    usb_device(sys_root, "1-1.2", "0781", "5567", [("08", None)], "Cruzer Blade")  # a USB key, not a modem
    usb_device(sys_root, "2-1", "1e0e", "9001", [("ff", "ttyUSB3"), ("02", "ttyACM0")])
    facts = doctor.Facts(usb=doctor.gather_usb(sys_root))
    findings = doctor.check_usb(facts)
    assert checks(findings) == [("mass-storage", "error")]
    assert "1-1.4" in findings[0].subject and "12d1:1f01" in findings[0].subject
    assert "usb_modeswitch -v 0x12d1 -p 0x1f01 -J" in findings[0].fix


def test_huawei_hilink_firmware(tmp_path):
    sys_root, _ = empty_roots(tmp_path)
    usb_device(sys_root, "1-2", "12d1", "14dc", [("02", None), ("0a", None)], "HUAWEI_MOBILE")
    findings = doctor.check_usb(doctor.Facts(usb=doctor.gather_usb(sys_root)))
    assert checks(findings) == [("hilink", "error")]


# --- files -----------------------------------------------------------------------------------


def test_config_with_a_pin_readable_by_everyone(tmp_path):
    make_spool(tmp_path)
    config = write_config(tmp_path, [str(tmp_path / "absent")], pin=PIN, mode=0o644)
    findings, secrets = run_doctor(tmp_path, config, probe=None)
    assert ("config-permission", "error") in checks(findings)
    assert "chmod 640" in [f for f in findings if f.check == "config-permission"][0].fix
    assert PIN not in doctor.render_text(findings, secrets)
    assert PIN not in json.dumps(doctor.render_json(findings, secrets))


def test_config_errors_are_reported_without_the_pin(tmp_path):
    config = tmp_path / "gsmgw.yaml"
    config.write_text(f'spool: {tmp_path}\nmodems:\n  - name: gsm1\n    port: /dev/x\n    pin: "{PIN}"\n    pinn: 1\n')
    config.chmod(0o600)
    findings, secrets = run_doctor(tmp_path, config, probe=None)
    assert ("config", "error") in checks(findings)
    assert PIN not in doctor.render_text(findings, secrets)


def test_spool_problems(tmp_path):
    spool = make_spool(tmp_path)
    (spool / "report").rmdir()
    (spool / "outgoing").chmod(0o777)
    (spool / "sent").chmod(0o755)
    dropped = spool / "outgoing" / "alert-1"
    dropped.write_text("To: +4915112345678\n\nhi\n")
    dropped.chmod(0o600)
    (tmp_path / "state").chmod(0o755)
    config = write_config(tmp_path, [str(tmp_path / "unplugged")])
    facts, _ = gather(str(config), sys_root=empty_roots(tmp_path)[0], proc_root=tmp_path / "proc",
                      account=OUTSIDER, probe=None)
    found = {(f.check, f.subject.rsplit("/", 1)[-1], f.severity) for f in diagnose(facts)}
    assert ("spool", "report", "warning") in found  # missing; the daemon creates it
    assert ("spool-permission", "outgoing", "warning") in found  # world-writable
    assert ("spool-permission", "sent", "error") in found  # the daemon user cannot write it
    assert ("spool-permission", "alert-1", "error") in found  # dropped with mode 600
    assert ("state", "state", "error") in found


def test_json_output_and_exit_codes_of_the_command(tmp_path, network):
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    config = write_config(tmp_path, [m.path for m in network.modems])
    command = [sys.executable, "-m", "gsmgw", "doctor", "-c", str(config), "--json",
               "--sys-root", str(sys_root), "--proc-root", str(proc_root), "--user", "root"]
    healthy = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert json.loads(healthy.stdout) == {"ok": True, "findings": [], "notes": []}

    usb_device(sys_root, "1-1.4", "12d1", "1f01", [("08", None)])
    broken = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["ok"] is False
    assert [f["check"] for f in report["findings"]] == ["mass-storage"]
    assert set(report["findings"][0]) == {"severity", "check", "subject", "problem", "fix"}


def test_the_process_behind_a_pty_is_the_device_not_a_competitor(tmp_path, network):
    """socat or the simulator hold the master side of the pty, maybe the slave too: not busy."""
    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    slave = os.path.realpath(network.modems[0].path)
    index = slave.rsplit("/", 1)[1]
    fake_process(proc_root, 4242, "socat", ["socat", "pty,link=/tmp/x", "tcp:10.0.0.1:4001"], ["/dev/ptmx", slave])
    (proc_root / "4242" / "fdinfo").mkdir()
    (proc_root / "4242" / "fdinfo" / "3").write_text(f"pos:\t0\nflags:\t02\ntty-index:\t{index}\n")
    config = write_config(tmp_path, [m.path for m in network.modems])
    findings, _ = run_doctor(tmp_path, config, sys_root=sys_root, proc_root=proc_root)
    assert findings == []


def test_what_the_running_daemon_reports_about_its_modems(tmp_path):
    """The daemon holds its ports, so doctor reads its status.json instead of asking the modems."""
    import time

    from gsmgw.daemon.status import ModemStatus, snapshot, write_status

    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    modems = [
        ModemStatus("gsm1", state="locked", last_error="SIM PIN: 1 attempt left, not entering it"),
        ModemStatus("gsm2", state="ready", registered=False),
        ModemStatus("gsm3", state="ready", registered=True),
    ]
    write_status(tmp_path / "state", snapshot(modems, {}, {}, 0, time.time()))
    config = write_config(tmp_path, [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")])
    with daemon_of_this_config(tmp_path, proc_root, []):
        facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(), probe=None)
        found = {(f.check, f.subject) for f in doctor.check_daemon(facts)}
        assert found == {("sim-pin", "modem gsm1"), ("registration", "modem gsm2")}

        write_status(tmp_path / "state", snapshot(modems[2:], {}, {}, 0, time.time() - 600))
        facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(), probe=None)
        (stale,) = doctor.check_daemon(facts)
        assert stale.check == "daemon" and "hangs" in stale.problem and f"PID {os.getpid()}" in stale.subject
    # A status file left by a daemon that has stopped speaks for nobody.
    facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(), probe=None)
    assert doctor.check_daemon(facts) == []


def test_hooks_and_two_way_commands_must_be_executable(tmp_path):
    make_spool(tmp_path)
    script = tmp_path / "on-sms"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    config = write_config(tmp_path, [str(tmp_path / "absent")])
    config.write_text(config.read_text() + (
        f"hooks:\n  received: {script}\n  failed: {tmp_path / 'missing-hook'}\n"
        f"two_way:\n  enabled: true\n  allow_from: ['+4915112345678']\n"
        f"  commands:\n    uptime: [/usr/bin/uptime]\n"
    ))
    facts, _ = gather(str(config), sys_root=empty_roots(tmp_path)[0], proc_root=tmp_path / "proc",
                      account=OUTSIDER, probe=None)
    found = {(f.subject.rsplit("/", 1)[-1], f.problem) for f in doctor.check_executables(facts)}
    assert found == {
        ("on-sms", "user gsmgw cannot run the received hook (mode -rw-r--r--)"),
        ("missing-hook", "the failed hook does not exist"),
    }


@pytest.mark.parametrize(
    "pin_state, check",
    [("NO SIM", "sim-missing"), ("SIM FAILURE", "sim-missing"), ("PH-NET PIN", "sim-locked"), ("SIM PUK", "sim-puk")],
)
def test_other_sim_states(pin_state, check):
    modem = doctor.ModemFacts("gsm1", "/dev/gsmgw/x", "port", True, probe=doctor.ModemProbe(pin_state=pin_state))
    assert checks(doctor.check_modems(doctor.Facts(modems=[modem]))) == [(check, "error")]


def test_a_token_file_readable_by_others(tmp_path):
    make_spool(tmp_path)
    token = tmp_path / "zabbix.token"
    token.write_text("s3cret-token\n")
    token.chmod(0o644)
    config = write_config(tmp_path, [str(tmp_path / "absent")])
    config.write_text(config.read_text() + (
        f"http:\n  listen: 127.0.0.1:8025\nclients:\n  - name: zabbix\n    token_file: {token}\n"
        "    allow: ['+49*']\n"))
    findings, _ = run_doctor(tmp_path, config, probe=None)
    (secret,) = [f for f in findings if f.check == "secret-permission"]
    assert secret.subject == str(token) and "chmod 600" in secret.fix
    assert "s3cret" not in doctor.render_text(findings)


def test_a_modem_the_daemon_reports_absent(tmp_path):
    import time

    from gsmgw.daemon.status import ModemStatus, snapshot, write_status

    make_spool(tmp_path)
    sys_root, proc_root = empty_roots(tmp_path)
    write_status(tmp_path / "state", snapshot(
        [ModemStatus("gsm1", state="absent", port="/dev/gsmgw/usb-1-1.4-if02", last_error="port gone")],
        {}, {}, 0, time.time()))
    config = write_config(tmp_path, [str(tmp_path / "absent")])
    with daemon_of_this_config(tmp_path, proc_root, []):
        facts, _ = gather(str(config), sys_root=sys_root, proc_root=proc_root, account=root_account(), probe=None)
    (down,) = doctor.check_daemon(facts)
    assert down.check == "modem-down" and down.subject == "modem gsm1 (/dev/gsmgw/usb-1-1.4-if02)"
    assert "port gone" in down.problem


def test_a_file_held_by_a_stale_lock_is_named_with_the_fix(tmp_path):
    spool = make_spool(tmp_path)
    outgoing = spool / "outgoing"
    for name in ("stuck", "being-written"):
        (outgoing / name).write_text("To: +4915112345678\n\nhi\n")
        (outgoing / f"{name}.LOCK").write_text("")
    os.utime(outgoing / "stuck.LOCK", (1, 1))  # made long ago: its writer is gone
    (outgoing / "orphan.LOCK").write_text("")  # a lock without its file holds nothing
    os.utime(outgoing / "orphan.LOCK", (1, 1))
    config = write_config(tmp_path, [str(tmp_path / "unplugged")])
    facts, _ = gather(str(config), sys_root=empty_roots(tmp_path)[0], proc_root=tmp_path / "proc",
                      account=root_account(), probe=None)
    locks = [f for f in diagnose(facts) if f.check == "spool-lock"]
    assert [(f.subject.rsplit("/", 1)[-1], f.severity) for f in locks] == [("stuck", "warning")]
    assert "stuck.LOCK" in locks[0].problem and f"rm {outgoing}/stuck.LOCK" in locks[0].fix
