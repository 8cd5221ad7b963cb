"""`gsmgw doctor`: find the usual reasons a gateway does not work, each with its fix.

Two halves, as everywhere in gsmgw:
- `gather_*` functions read the system: the config file, /proc (who holds which
  port), /sys (USB devices, mass-storage sticks), the spool's modes, and the
  modems themselves over AT (`probe_modem`). Their roots (`sys_root`,
  `proc_root`) and the modem probe are parameters, so every finding can be
  reproduced from a fixture tree or the simulator.
- `diagnose(facts)` is pure: facts in, `Finding`s out. Each finding names the
  modem or file it concerns, what is wrong, and the command that fixes it.

What doctor never does: enter a PIN (not even the configured one: the daemon
does that, at most once per start), print a PIN, change a modem's settings, or
open a port that another program holds (the daemon, ModemManager, smsd).
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import socket
import ssl
import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence

__all__ = [
    "Account",
    "CertificateFacts",
    "PortAnswer",
    "ConfigFacts",
    "Facts",
    "Finding",
    "JournalFacts",
    "ModemFacts",
    "ModemProbe",
    "PathFacts",
    "ProcessFacts",
    "UsbDevice",
    "UsbInterface",
    "diagnose",
    "gather",
    "probe_modem",
    "render_text",
]

SPOOL_DIRS = ("outgoing", "checked", "sent", "failed", "incoming", "report")
DAEMON_USER = "gsmgw"
# A writer holds NAME.LOCK for the seconds it takes to write NAME; ten minutes means nobody will.
STALE_LOCK_SECONDS = 600.0
# USB vendor IDs of GSM modem makers whose sticks first show up as a CD-ROM
# (usb_modeswitch's device database, usb-modeswitch-data).
MODEM_VENDORS = {
    "12d1": "Huawei",
    "19d2": "ZTE",
    "1e0e": "SIMCom",
    "2c7c": "Quectel",
    "05c6": "Qualcomm",
    "1bbb": "Alcatel/TCL",
    "2001": "D-Link",
    "0af0": "Option",
    "1c9e": "4G Systems/Longcheer",
    "2357": "TP-Link",
    "1199": "Sierra Wireless",
}
# Huawei E3372 HiLink firmware: a network card with a web UI, no AT port.
HILINK = {("12d1", "14dc")}
MASS_STORAGE_CLASS = "08"
# How gather_processes marks "holds the master side of pty N" in ProcessFacts.open_paths.
PTY_MASTER = "ptmx:"
STORAGE_WARN_RATIO = 0.8
# The daemon enters a configured PIN only with at least this many attempts left (docs/config.md `modems[].pin`).
MIN_PIN_ATTEMPTS = 2
# A status.json older than this while the daemon runs means its main loop hangs
# (it rewrites the file at least every few seconds: gsmgw.daemon.status).
STATUS_STALE_S = 60.0
# A TLS certificate that ends within this many days is renewed now, not after it broke the door.
CERT_WARN_DAYS = 14


# ------------------------------------------------------------------ facts


@dataclass(frozen=True)
class Finding:
    severity: str  # "error": the gateway cannot work so; "warning": it works, but not for long or not safely
    check: str  # which check: modemmanager, port-busy, mass-storage, port-missing, ...
    subject: str  # the modem, port, USB device or file it concerns
    problem: str
    fix: str


@dataclass(frozen=True)
class PathFacts:
    path: str
    exists: bool
    is_dir: bool = False
    is_char_device: bool = False
    mode: int = 0
    uid: int = -1
    gid: int = -1
    real_path: str | None = None

    @property
    def group_name(self) -> str:
        try:
            return grp.getgrgid(self.gid).gr_name
        except KeyError:
            return str(self.gid)


@dataclass(frozen=True)
class Account:
    """Who the daemon runs as: its uid and every group it has (with the unit's dialout)."""

    name: str
    uid: int
    gids: frozenset[int]

    def may(self, info: PathFacts, want: int) -> bool:
        """Mode-bit check like the kernel's (root passes; no ACLs)."""
        if self.uid == 0:
            return True
        if info.uid == self.uid:
            bits = (info.mode >> 6) & 7
        elif info.gid in self.gids:
            bits = (info.mode >> 3) & 7
        else:
            bits = info.mode & 7
        return bits & want == want


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    name: str
    cmdline: tuple[str, ...]
    open_paths: frozenset[str]

    @property
    def is_gsmgw_daemon(self) -> bool:
        words = [os.path.basename(part) for part in self.cmdline]
        return "run" in words and any(word.startswith("gsmgw") for word in words[:3])

    @property
    def label(self) -> str:
        return f"{self.name} (PID {self.pid})"


@dataclass(frozen=True)
class UsbInterface:
    name: str  # 1-1.4:1.2
    cls: str
    subclass: str
    protocol: str
    ttys: tuple[str, ...]


@dataclass(frozen=True)
class UsbDevice:
    name: str  # 1-1.4: bus 1, port path 1.4
    vendor: str
    product: str
    product_name: str | None
    interfaces: tuple[UsbInterface, ...]


@dataclass(frozen=True)
class ModemProbe:
    """What a modem said. `error` is set when it could not be asked."""

    pin_state: str | None = None
    pin_attempts: int | None = None
    registered: bool | None = None
    registration: str | None = None
    smsc: str | None = None
    smsc_known: bool = False  # False: the modem did not answer AT+CSCA?
    storage: tuple[tuple[str, int, int], ...] = ()  # (name, used, total)
    error: str | None = None


@dataclass(frozen=True)
class ModemFacts:
    name: str
    port: str | None  # None when bound by imsi:/iccid:/imei: and not found
    binding: str  # "port", "imsi", ...
    has_pin: bool
    port_facts: PathFacts | None = None
    probe: ModemProbe | None = None


@dataclass(frozen=True)
class ConfigFacts:
    path: str
    file: PathFacts | None
    readable: bool
    errors: tuple[str, ...] = ()
    inline_pin: bool = False  # a `pin:` written in the file itself
    secret_files: tuple[tuple[str, PathFacts], ...] = ()  # (what, file) for pin_file:, token_file:


@dataclass(frozen=True)
class JournalFacts:
    """A cluster's PostgreSQL journal (`journal:`), as this host sees it."""

    dsn: str  # without its password
    member: str
    error: str | None = None  # it could not be reached
    schema: int | None = None  # 0: no gsmgw journal in it yet
    expected: int = 1  # the schema this gsmgw needs
    skew: float | None = None  # this host's clock minus the database's, seconds
    lease: float = 30.0
    members: tuple[tuple[str, bool, float | None], ...] = ()  # (name, alive, its clock offset)
    modem_clashes: tuple[tuple[str, str], ...] = ()  # (modem name, the other member that has one of that name)


@dataclass
class Facts:
    config: ConfigFacts | None = None
    daemon: Account | None = None
    modems: list[ModemFacts] = field(default_factory=list)
    processes: list[ProcessFacts] = field(default_factory=list)
    usb: list[UsbDevice] = field(default_factory=list)
    spool_root: str | None = None
    spool_dirs: dict[str, PathFacts] = field(default_factory=dict)
    spool_unreadable: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dir -> files the daemon cannot read
    # outgoing/ names held by a `NAME.LOCK` (smstools3's lock) -> seconds since the lock was made
    outgoing_locks: dict[str, float] = field(default_factory=dict)
    state_dir: PathFacts | None = None
    # The daemon that runs with this config: the PID in the lock it holds on the config's state
    # directory (gsmgw.daemon.lock; 0 when held without a PID), None when no daemon holds it.
    # Only that daemon's modems are left to it; any other `gsmgw run` is another gateway.
    daemon_pid: int | None = None
    # The lock could not be read (not root, not in the gsmgw group): then whether a daemon uses
    # this state directory is guessed from the processes, as the note says.
    daemon_lock_unreadable: str | None = None
    # The running daemon's status.json (docs/spool.md `status.json`) and its age in seconds;
    # what doctor knows about modems whose ports the daemon holds.
    daemon_status: dict | None = None
    daemon_status_age: float | None = None
    executables: list[tuple[str, PathFacts]] = field(default_factory=list)  # (what, file): hooks, two-way commands
    journal: JournalFacts | None = None  # only with journal: (PostgreSQL)
    # The email door (EMAIL.md): what answers on smtp.listen, whether the smarthost answers, and
    # when the configured TLS certificates end.
    smtp_port: "PortAnswer | None" = None
    smarthost: "PortAnswer | None" = None
    certificates: list["CertificateFacts"] = field(default_factory=list)
    now: float = 0.0


@dataclass(frozen=True)
class PortAnswer:
    """What a TCP port said: `greeting` (its first line) or `error` (why there was none)."""

    key: str  # the config key naming it: smtp.listen, email_out.smarthost
    host: str
    port: int
    greeting: str | None = None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.key} {self.host}:{self.port}"


@dataclass(frozen=True)
class CertificateFacts:
    key: str  # smtp.tls.cert, http.tls.cert, smpp.tls.cert
    path: str
    not_after: float | None = None  # Unix time
    error: str | None = None


# ------------------------------------------------------------------ pure checks


def _mode_text(info: PathFacts) -> str:
    """`crw-rw----`, as ls shows it."""
    kind = stat.S_IFCHR if info.is_char_device else stat.S_IFDIR if info.is_dir else stat.S_IFREG
    return stat.filemode(kind | info.mode)


def _holders(port: PathFacts | None, processes: Iterable[ProcessFacts]) -> list[ProcessFacts]:
    """Processes with the port open. For a pty, the process that holds its master side is the
    device itself (the simulator, socat), not a competitor, as in gsmgw.at.probe.port_holders."""
    if port is None or not port.exists:
        return []
    target = port.real_path or port.path
    head, _, index = target.rpartition("/")
    master = f"{PTY_MASTER}{index}" if head == "/dev/pts" and index.isdigit() else None
    return [
        p for p in processes
        if (target in p.open_paths or port.path in p.open_paths) and (master is None or master not in p.open_paths)
    ]


def _modem_subject(modem: ModemFacts) -> str:
    return f"modem {modem.name} ({modem.port})" if modem.port else f"modem {modem.name}"


MM_FIX = (
    "install udev/70-gsmgw.rules (it sets ID_MM_DEVICE_IGNORE) and run `udevadm control --reload && "
    "udevadm trigger`, then `systemctl restart ModemManager`; or, if nothing else needs it, "
    "`systemctl disable --now ModemManager`"
)


def check_processes(facts: Facts) -> list[Finding]:
    """ModemManager, smsd, gammu-smsd or a terminal holding a modem's port."""
    findings = []
    modem_manager = [p for p in facts.processes if p.name == "ModemManager"]
    held_by_mm = False
    for modem in facts.modems:
        for holder in _holders(modem.port_facts, facts.processes):
            if _is_our_daemon(facts, holder):
                continue
            if holder.is_gsmgw_daemon:
                findings.append(Finding(
                    "error", "port-busy", _modem_subject(modem),
                    f"another gsmgw daemon, {holder.label}, has the port open; it runs with another state "
                    f"directory, so with another config: {' '.join(holder.cmdline)[:120]}",
                    f"give each modem to one gateway: stop that one (`kill {holder.pid}`) or remove the modem "
                    "from one of the two configs"))
                continue
            if holder.name == "ModemManager":
                held_by_mm = True
                findings.append(Finding(
                    "error", "modemmanager", _modem_subject(modem),
                    f"ModemManager (PID {holder.pid}) holds the port; it answers AT commands and "
                    "reads and deletes SMS from the SIM", MM_FIX))
            else:
                findings.append(Finding(
                    "error", "port-busy", _modem_subject(modem),
                    f"{holder.label} has the port open: {' '.join(holder.cmdline)[:120]}",
                    f"stop it (smstools3: `systemctl disable --now smstools`; Gammu: `systemctl disable "
                    f"--now gammu-smsd`; a terminal: close minicom/screen), or `kill {holder.pid}`"))
    if modem_manager and not held_by_mm:
        findings.append(Finding(
            "warning", "modemmanager", f"process {modem_manager[0].label}",
            "ModemManager is running; it takes any modem that udev does not mark as ignored, "
            "also the next time a stick is plugged in", MM_FIX))
    return findings


def _modeswitch_fix(device: UsbDevice) -> str:
    return (
        "install usb_modeswitch and its device database (`apt-get install usb-modeswitch "
        "usb-modeswitch-data`) and plug the stick in again; it switches the stick to modem mode "
        f"by itself. To try by hand: `usb_modeswitch -v 0x{device.vendor} -p 0x{device.product} "
        f"{'-J' if device.vendor == '12d1' else '-K'}`, then check `lsusb` for the new product ID"
    )


def check_usb(facts: Facts) -> list[Finding]:
    """Sticks of known modem makers in mass-storage mode, and HiLink firmware."""
    findings = []
    for device in facts.usb:
        maker = MODEM_VENDORS.get(device.vendor)
        if maker is None:
            continue
        subject = (
            f"USB device {device.name} ({device.vendor}:{device.product} {maker}"
            f"{' ' + device.product_name if device.product_name else ''})"
        )
        has_tty = any(interface.ttys for interface in device.interfaces)
        if has_tty:
            continue
        if (device.vendor, device.product) in HILINK and not any(
            i.cls == MASS_STORAGE_CLASS for i in device.interfaces
        ):
            findings.append(Finding(
                "error", "hilink", subject,
                "this Huawei stick runs HiLink firmware: a network card with a web page, without any "
                "AT port, so no gateway can use it",
                "use a stick with \"stick\" (serial) firmware, e.g. an E3372h-153 that shows up as "
                "12d1:1506 after usb_modeswitch, or flash the stick firmware"))
        elif any(i.cls == MASS_STORAGE_CLASS for i in device.interfaces):
            findings.append(Finding(
                "error", "mass-storage", subject,
                "the stick is in mass-storage (virtual CD-ROM) mode, so it has no serial port yet",
                _modeswitch_fix(device)))
    return findings


def check_ports(facts: Facts) -> list[Finding]:
    """Every configured port exists, is a character device, and the daemon may open it."""
    findings = []
    for modem in facts.modems:
        info = modem.port_facts
        if modem.port is None:
            findings.append(Finding(
                "error", "port-missing", _modem_subject(modem),
                f"no port answers with this {modem.binding}",
                "plug the stick in and run `gsmgw probe` to see which SIM is where; check the "
                f"{modem.binding}: value in the config against its output"))
            continue
        if info is None or not info.exists:
            findings.append(Finding(
                "error", "port-missing", _modem_subject(modem), f"{modem.port} does not exist",
                "plug the modem in; check `ls -l /dev/gsmgw/ /dev/serial/by-id/`; if /dev/gsmgw/ is "
                "empty install udev/70-gsmgw.rules (docs/install.md) or bind the modem by imsi: "
                "instead of port:; `gsmgw probe` lists the ports that answer AT"))
            continue
        if not info.is_char_device:
            findings.append(Finding(
                "error", "port-missing", _modem_subject(modem),
                f"{modem.port} is not a serial device", "point port: at the modem's tty"))
            continue
        if facts.daemon is not None and not facts.daemon.may(info, 6):
            device = info.real_path or info.path
            if info.group_name == "dialout" and info.mode & 0o060 == 0o060:
                fix = (f"`usermod -aG dialout {facts.daemon.name}` (the systemd unit adds dialout by "
                       "itself; this is for `gsmgw run` started by hand)")
            else:
                # Never advise joining root or tty: give the port to dialout instead.
                fix = ("install udev/70-gsmgw.rules (or a line in 71-gsmgw-local.rules) so that udev gives "
                       f"the port to dialout with mode 0660; to try it now: `chgrp dialout {device} && "
                       f"chmod 660 {device}`")
            findings.append(Finding(
                "error", "port-permission", _modem_subject(modem),
                f"user {facts.daemon.name} may not read and write {device} "
                f"(mode {_mode_text(info)}, group {info.group_name})", fix))
    return findings


def check_modems(facts: Facts) -> list[Finding]:
    """SIM PIN/PUK, registration, SMSC and storage as the modem reports them."""
    findings = []
    for modem in facts.modems:
        probe = modem.probe
        if probe is None:
            continue
        subject = _modem_subject(modem)
        if probe.error:
            findings.append(Finding(
                "error", "no-answer", subject, probe.error,
                "make sure this is the modem's AT interface: `gsmgw probe` tries every port, "
                "`udevadm info -q property -n PORT` shows its ID_USB_INTERFACE_NUM; replug the stick"))
            continue
        state = (probe.pin_state or "").upper()
        attempts = f" ({probe.pin_attempts} attempts left)" if probe.pin_attempts is not None else ""
        if state == "SIM PIN":
            if not modem.has_pin:
                findings.append(Finding(
                    "error", "sim-pin", subject, f"the SIM asks for its PIN{attempts} and the config gives none",
                    f"put the PIN in a file readable only by gsmgw (`install -m 600 -o gsmgw /dev/null "
                    f"/etc/gsmgw/{modem.name}.pin`, then write it there) and set pin_file: for modem "
                    f"{modem.name}; or remove the PIN from the SIM in a phone"))
            elif probe.pin_attempts is not None and probe.pin_attempts < MIN_PIN_ATTEMPTS:
                findings.append(Finding(
                    "error", "sim-pin", subject,
                    f"the SIM asks for its PIN with only {probe.pin_attempts} attempt left; the daemon "
                    "will not risk the last one",
                    "check the PIN in the config against the SIM's papers, then enter it once by hand "
                    "(AT+CPIN=\"<pin>\" in a terminal) or in a phone"))
        elif state.startswith("SIM PUK") or state == "PH-SIM PUK":
            findings.append(Finding(
                "error", "sim-puk", subject, f"the SIM is blocked and asks for its PUK{attempts}",
                "put the SIM in a phone and enter the PUK from the SIM card's holder, then set a PIN; "
                "gsmgw never enters a PUK"))
        elif state in ("NO SIM", "SIM FAILURE", "SIM NOT INSERTED"):
            findings.append(Finding(
                "error", "sim-missing", subject, f"the modem reports {probe.pin_state}",
                "power off, reseat the SIM (contacts down, the right way round), plug the stick in again"))
        elif state and state != "READY":
            findings.append(Finding(
                "error", "sim-locked", subject, f"the SIM reports {probe.pin_state}",
                "the modem or SIM is locked to an operator or needs a code gsmgw does not enter; "
                "unlock it in a phone"))
        if state != "READY":
            continue
        if probe.registered is False:
            findings.append(Finding(
                "error", "registration", subject,
                f"not registered with a network: {probe.registration or 'unknown'}",
                "check the antenna and signal (`gsmgw probe` shows dBm), that the SIM is active and "
                "has credit, and that roaming is allowed if the operator is foreign"))
        if probe.smsc_known and not probe.smsc:
            findings.append(Finding(
                "error", "smsc", subject,
                "no SMS service centre (SMSC) is set, so every send fails with +CMS ERROR 330",
                "ask the operator for the SMSC number and store it on the SIM: "
                "AT+CSCA=\"+<number>\",145 then AT+CSAS"))
        for name, used, total in probe.storage:
            if total <= 0:
                continue
            if used >= total:
                severity, what = "error", "full: the network cannot deliver new SMS"
            elif used / total >= STORAGE_WARN_RATIO:
                severity, what = "warning", "nearly full"
            else:
                continue
            findings.append(Finding(
                severity, "sim-storage", subject, f"message storage {name} is {what} ({used}/{total})",
                "run the daemon: it saves each message to incoming/ and then deletes it from the SIM. "
                "Messages the daemon did not take are listed by `gsmgw probe --json`"))
            break
    return findings


def _daemon_processes(facts: Facts) -> list[ProcessFacts]:
    return [p for p in facts.processes if p.is_gsmgw_daemon]


def defers_to_daemon(facts: Facts) -> bool:
    """Does a daemon run with this config (its state directory's lock is held)? Then doctor
    opens none of its ports and reads its status file. When the lock cannot be read, any
    `gsmgw run` on the machine is taken for it (the notes say so)."""
    if facts.daemon_pid is not None:
        return True
    return facts.daemon_lock_unreadable is not None and bool(_daemon_processes(facts))


def _is_our_daemon(facts: Facts, process: ProcessFacts) -> bool:
    if facts.daemon_pid:
        return process.pid == facts.daemon_pid
    return defers_to_daemon(facts) and process.is_gsmgw_daemon


def _daemon_label(facts: Facts) -> str:
    if facts.daemon_pid:
        return f"gsmgw daemon (PID {facts.daemon_pid})"
    daemons = _daemon_processes(facts)
    return f"gsmgw daemon (PID {daemons[0].pid})" if daemons else "gsmgw daemon"


def notes(facts: Facts) -> list[str]:
    """What doctor did not check itself, and why (no findings: nothing to fix). Pure."""
    out = []
    state = facts.state_dir.path if facts.state_dir is not None else "the state directory"
    if facts.daemon_pid is not None:
        out.append(
            f"the {_daemon_label(facts)} runs with this config's state directory {state}: doctor left its "
            "modems alone and reports what the daemon says about them"
        )
    elif facts.daemon_lock_unreadable is not None:
        guess = (
            f"it takes {_daemon_label(facts)} for it and leaves the modems alone"
            if _daemon_processes(facts) else "no gsmgw daemon is running, so it asked the modems itself"
        )
        out.append(
            f"cannot tell which daemon uses {state} ({facts.daemon_lock_unreadable}); {guess}. Run doctor as "
            "root or as the gsmgw user to know"
        )
    for process in _daemon_processes(facts):
        if facts.daemon_pid is not None and process.pid == facts.daemon_pid:
            continue
        if facts.daemon_pid is None and facts.daemon_lock_unreadable is not None:
            continue
        out.append(
            f"another gsmgw, {process.label}, runs with another state directory (`{' '.join(process.cmdline)[:80]}`); "
            "it is not this config's daemon, so doctor checked this config's modems itself"
        )
    return out


def check_daemon(facts: Facts) -> list[Finding]:
    """What the running daemon says about the modems it holds (doctor does not open those ports)."""
    if not defers_to_daemon(facts):
        return []
    if facts.daemon_status is None or facts.daemon_status_age is None:
        return []
    findings = []
    if facts.daemon_status_age > STATUS_STALE_S:
        findings.append(Finding(
            "error", "daemon", _daemon_label(facts),
            f"the daemon runs but has not updated its status for {facts.daemon_status_age:.0f} s: it hangs",
            "`systemctl restart gsmgw` (the watchdog should do this by itself; check WatchdogSec= in the "
            "unit) and send `journalctl -u gsmgw` with the bug report"))
        return findings
    for row in facts.daemon_status.get("modems", []):
        name, state = row.get("name"), row.get("state")
        subject = f"modem {name} ({row.get('port')})" if row.get("port") else f"modem {name}"
        detail = f": {row['last_error']}" if row.get("last_error") else ""
        if state == "locked":
            findings.append(Finding(
                "error", "sim-pin", subject, f"the daemon reports the SIM locked{detail}",
                "check pin_file: for this modem; if the SIM wants its PUK, enter it in a phone. "
                "Then `systemctl restart gsmgw`"))
        elif state in ("absent", "failed"):
            findings.append(Finding(
                "error", "modem-down", subject, f"the daemon reports the modem {state}{detail}",
                "check the stick and its port (`ls -l /dev/gsmgw/`); `journalctl -u gsmgw` says why"))
        elif state in ("ready", "busy") and row.get("registered") is False:
            findings.append(Finding(
                "error", "registration", subject, "the daemon reports no network registration",
                "check the antenna, the signal and that the SIM is active"))
    return findings


def check_executables(facts: Facts) -> list[Finding]:
    """Hooks and two-way commands: the daemon execs them as its user, without a shell or PATH."""
    findings = []
    daemon = facts.daemon
    for what, info in facts.executables:
        if not info.exists:
            findings.append(Finding("error", "executable", info.path, f"the {what} does not exist",
                                    "install it or correct the path in the config (absolute, no shell)"))
        elif info.is_dir or (daemon is not None and not daemon.may(info, 5)):
            findings.append(Finding(
                "error", "executable", info.path,
                f"user {daemon.name if daemon else 'gsmgw'} cannot run the {what} (mode {_mode_text(info)})",
                f"`chmod 755 {info.path}`"))
    return findings


def check_spool(facts: Facts) -> list[Finding]:
    findings: list[Finding] = []
    daemon = facts.daemon
    root = facts.spool_root
    if root is None:
        return findings
    for name in SPOOL_DIRS:
        info = facts.spool_dirs.get(name)
        subject = f"{root}/{name}"
        if info is None or not info.exists:
            findings.append(Finding(
                "warning" if name != "outgoing" else "error", "spool", subject, "the directory is missing",
                "`systemd-tmpfiles --create gsmgw.conf` (systemd/gsmgw-tmpfiles.conf) creates the spool "
                "with the right owners and modes"))
            continue
        if daemon is not None and not daemon.may(info, 7):
            findings.append(Finding(
                "error", "spool-permission", subject,
                f"user {daemon.name} cannot write here (mode {_mode_text(info)})",
                f"`chown {daemon.name}:{daemon.name} {subject}` or recreate it with systemd-tmpfiles"))
        if info.mode & stat.S_IWOTH:
            findings.append(Finding(
                "warning", "spool-permission", subject,
                "anyone on this machine may write here, and so send SMS",
                f"`chmod o-w {subject}`; give senders the gsmgw group (`usermod -aG gsmgw NAME`)"))
        if name == "outgoing" and info.mode & stat.S_IWGRP and not info.mode & stat.S_ISGID:
            findings.append(Finding(
                "warning", "spool-permission", subject,
                "group-writable without the setgid bit: files dropped by group members get the "
                "dropper's group, and the daemon may not be able to read them",
                f"`chmod g+s {subject}` (tmpfiles creates it as 3770)"))
    for name, files in facts.spool_unreadable.items():
        for file_name in files:
            findings.append(Finding(
                "error", "spool-permission", f"{root}/{name}/{file_name}",
                f"user {daemon.name if daemon else 'gsmgw'} cannot read this message file",
                "write files with group read permission (`umask 027`, or `chmod g+r FILE`), or use "
                "`gsmgw send`"))
    for file_name, age in sorted(facts.outgoing_locks.items()):
        if age >= STALE_LOCK_SECONDS:
            findings.append(Finding(
                "warning", "spool-lock", f"{root}/outgoing/{file_name}",
                f"held by {file_name}.LOCK for {age / 60:.0f} min, so it is never sent (a writer that "
                "died, or a lock never removed)",
                f"if nothing writes it any more, `rm {root}/outgoing/{file_name}.LOCK` to send it, or "
                "remove both to drop it"))
    if facts.state_dir is not None and daemon is not None:
        if not facts.state_dir.exists:
            findings.append(Finding(
                "warning", "state", facts.state_dir.path, "the state directory is missing",
                "the unit's StateDirectory= creates it; by hand: `install -d -o gsmgw -g gsmgw -m 750 "
                f"{facts.state_dir.path}`"))
        elif not daemon.may(facts.state_dir, 7):
            findings.append(Finding(
                "error", "state", facts.state_dir.path, f"user {daemon.name} cannot write the state directory",
                f"`chown -R {daemon.name}:{daemon.name} {facts.state_dir.path}`"))
    return findings


def check_config(facts: Facts) -> list[Finding]:
    config = facts.config
    if config is None:
        return []
    findings = []
    if config.file is None or not config.file.exists:
        return [Finding("error", "config", config.path, "the config file does not exist",
                        "create it (docs/install.md has a first config) or pass -c FILE")]
    if not config.readable:
        return [Finding("error", "config", config.path, "doctor cannot read the config file",
                        "run doctor as root or as the gsmgw user: `sudo -u gsmgw gsmgw doctor`")]
    for error in config.errors:
        findings.append(Finding("error", "config", config.path, error,
                                "fix it as the message says; `gsmgw check-config FILE` checks again"))
    others = stat.S_IROTH | stat.S_IWOTH
    if config.inline_pin and config.file.mode & others:
        findings.append(Finding(
            "error", "config-permission", config.path,
            f"the file holds a SIM PIN and everyone on this machine may read it "
            f"(mode {_mode_text(config.file)})",
            f"`chmod 640 {config.path} && chgrp gsmgw {config.path}`, or move the PIN into a pin_file: "
            "readable only by gsmgw"))
    for what, info in config.secret_files:
        if info.exists and info.mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWOTH):
            findings.append(Finding(
                "warning", "secret-permission", info.path,
                f"the {what} is readable by others (mode {_mode_text(info)})",
                f"`chmod 600 {info.path} && chown gsmgw {info.path}`"))
    return findings


# Clocks further apart than this make Send_after:, Expires: and the limit windows of one host
# wrong on another (the leases themselves run on the database's clock).
CLOCK_WARN_S = 2.0


def check_journal(facts: Facts) -> list[Finding]:
    """The cluster's database: reachable, schema, clocks, modem names unique across members."""
    journal = facts.journal
    if journal is None:
        return []
    subject = f"journal {journal.dsn}"
    if journal.error is not None:
        return [Finding(
            "error", "journal", subject, f"cannot connect: {journal.error}",
            "start PostgreSQL, or correct journal: (hosts, database, user) and the gsmgw user's ~/.pgpass; "
            f"`psql '{journal.dsn}'` run as the gsmgw user must connect")]
    findings = []
    if journal.schema == 0:
        findings.append(Finding("warning", "journal-schema", subject, "holds no gsmgw journal yet",
                                "run `gsmgw journal migrate` (or start gsmgw: the first member creates it)"))
    elif journal.schema is not None and journal.schema < journal.expected:
        findings.append(Finding("error", "journal-schema", subject,
                                f"has schema {journal.schema}; this gsmgw needs {journal.expected}",
                                "run `gsmgw journal migrate` once, from one host"))
    elif journal.schema is not None and journal.schema > journal.expected:
        findings.append(Finding("error", "journal-schema", subject,
                                f"has schema {journal.schema}, newer than this gsmgw ({journal.expected})",
                                "upgrade gsmgw on this host to the version the other members run"))
    clock_fix = "keep every host's clock synchronised: `timedatectl set-ntp true` (or chrony)"
    if journal.skew is not None and abs(journal.skew) > CLOCK_WARN_S:
        findings.append(Finding("error" if abs(journal.skew) > journal.lease / 2 else "warning", "clock",
                                f"member {journal.member}",
                                f"this host's clock is {journal.skew:+.1f} s off the database's", clock_fix))
    for name, alive, offset in journal.members:
        if name != journal.member and alive and offset is not None and abs(offset) > CLOCK_WARN_S:
            findings.append(Finding("warning", "clock", f"member {name}",
                                    f"its clock is {offset:+.1f} s off the database's", clock_fix))
    for modem, other in journal.modem_clashes:
        findings.append(Finding("warning", "modem-name", f"modem {modem}",
                                f"member {other} also has a modem named {modem}; Modem: pins and the status "
                                "cannot tell them apart", "give every modem in the cluster its own name"))
    return findings


def check_email(facts: Facts) -> list[Finding]:
    """The SMTP listener's port, the smarthost, and TLS certificates near their end."""
    findings = []
    daemon_runs = bool(_daemon_processes(facts))
    listener = facts.smtp_port
    if listener is not None:
        gsmgw_answers = bool(listener.greeting and "gsmgw" in listener.greeting)
        if daemon_runs and listener.greeting is None:
            findings.append(Finding(
                "error", "smtp-listener", listener.where,
                f"gsmgw runs but nothing answers there ({listener.error}), so no mail becomes an SMS",
                "`journalctl -u gsmgw` says why the listener did not start (port taken, TLS files)"))
        elif listener.greeting is not None and not gsmgw_answers:
            findings.append(Finding(
                "error", "smtp-listener", listener.where,
                f"another mail server answers there: {listener.greeting[:80]!r}, so gsmgw cannot listen",
                "stop that server, or set smtp.listen to a free port (2525) and point the devices there"))
        if listener.port < 1024 and not (facts.daemon and facts.daemon.uid == 0):
            findings.append(Finding(
                "warning", "smtp-listener", listener.where,
                "ports below 1024 need privileges the gsmgw user does not have",
                "use smtp.listen with port 2525, or add AmbientCapabilities=CAP_NET_BIND_SERVICE to the unit"))
    smarthost = facts.smarthost
    if smarthost is not None:
        if smarthost.greeting is None:
            findings.append(Finding(
                "error", "smarthost", smarthost.where,
                f"the smarthost cannot be reached ({smarthost.error}); mails of SMS wait in the queue (2 days)",
                "check the host name and port, the firewall, and `swaks --server HOST:PORT --quit-after EHLO`"))
        elif not smarthost.greeting.startswith("220"):
            findings.append(Finding(
                "error", "smarthost", smarthost.where, f"the smarthost refuses connections: {smarthost.greeting[:80]!r}",
                "ask its admin to let this machine relay, or use another smarthost"))
    for certificate in facts.certificates:
        subject = f"{certificate.key} {certificate.path}"
        if certificate.not_after is None:
            findings.append(Finding("error", "certificate", subject, f"cannot read the certificate: {certificate.error}",
                                    "give a PEM certificate file that gsmgw may read"))
            continue
        days = (certificate.not_after - facts.now) / 86400
        ends = datetime.fromtimestamp(certificate.not_after, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if days <= 0:
            findings.append(Finding("error", "certificate", subject, f"the certificate expired on {ends}",
                                    "renew it and restart gsmgw (`systemctl restart gsmgw`)"))
        elif days <= CERT_WARN_DAYS:
            findings.append(Finding("warning", "certificate", subject,
                                    f"the certificate expires in {days:.0f} day(s), on {ends}",
                                    "renew it now and restart gsmgw (`systemctl restart gsmgw`)"))
    return findings


CHECKS: tuple[Callable[[Facts], list[Finding]], ...] = (
    check_config, check_processes, check_daemon, check_usb, check_ports, check_modems, check_spool,
    check_executables, check_journal, check_email,
)


def diagnose(facts: Facts) -> list[Finding]:
    """Every finding, errors first. Pure."""
    findings = [finding for check in CHECKS for finding in check(facts)]
    return sorted(findings, key=lambda f: f.severity != "error")


# ------------------------------------------------------------------ gathering (I/O)


def path_facts(path: str | os.PathLike) -> PathFacts:
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except OSError:
        return PathFacts(path, exists=False)
    return PathFacts(
        path, exists=True, is_dir=stat.S_ISDIR(info.st_mode), is_char_device=stat.S_ISCHR(info.st_mode),
        mode=stat.S_IMODE(info.st_mode) | (info.st_mode & (stat.S_ISGID | stat.S_ISUID | stat.S_ISVTX)),
        uid=info.st_uid, gid=info.st_gid, real_path=os.path.realpath(path),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _pty_master_index(fdinfo: Path) -> str | None:
    text = _read(fdinfo) or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "tty-index":
            return value.strip()
    return None


def gather_processes(proc_root: str | os.PathLike = "/proc") -> list[ProcessFacts]:
    """Processes and the files they hold open (only those we may look at)."""
    processes: list[ProcessFacts] = []
    root = Path(proc_root)
    try:
        entries = [entry for entry in os.listdir(root) if entry.isdigit()]
    except OSError:
        return processes
    for entry in entries:
        base = root / entry
        name = _read(base / "comm")
        if name is None:
            continue  # the process ended while we looked
        try:
            raw = (base / "cmdline").read_bytes()
        except OSError:
            raw = b""
        cmdline = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
        open_paths = set()
        try:
            for fd in os.listdir(base / "fd"):
                try:
                    target = os.readlink(base / "fd" / fd)
                except OSError:
                    continue
                open_paths.add(target)
                if target == "/dev/ptmx":
                    # The master side of a pty: Linux names its slave in fdinfo ("tty-index: N").
                    index = _pty_master_index(base / "fdinfo" / fd)
                    if index is not None:
                        open_paths.add(f"{PTY_MASTER}{index}")
        except OSError:
            pass  # another user's process without root: we see its name, not its files
        processes.append(ProcessFacts(int(entry), name, cmdline, frozenset(open_paths)))
    return processes


def gather_usb(sys_root: str | os.PathLike = "/sys") -> list[UsbDevice]:
    """USB devices with their interfaces and ttys, from /sys/bus/usb/devices."""
    base = Path(sys_root) / "bus/usb/devices"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    devices = []
    for name in names:
        if ":" in name:
            continue
        vendor = _read(base / name / "idVendor")
        product = _read(base / name / "idProduct")
        if vendor is None or product is None:
            continue
        interfaces = []
        for interface_name in names:
            if not interface_name.startswith(name + ":"):
                continue
            directory = base / interface_name
            ttys = []
            try:
                children = os.listdir(directory)
            except OSError:
                children = []
            for child in children:
                if child.startswith("ttyUSB"):  # usb-serial drivers (option, qcserial, cp210x, ch341)
                    ttys.append(child)
                elif child == "tty":  # cdc_acm puts its ttyACMn one level down
                    try:
                        ttys += os.listdir(directory / "tty")
                    except OSError:
                        pass  # the interface went away while we looked; it has no tty to report
            interfaces.append(UsbInterface(
                interface_name,
                (_read(directory / "bInterfaceClass") or "").lower(),
                (_read(directory / "bInterfaceSubClass") or "").lower(),
                (_read(directory / "bInterfaceProtocol") or "").lower(),
                tuple(sorted(ttys)),
            ))
        devices.append(UsbDevice(name, vendor.lower(), product.lower(), _read(base / name / "product"),
                                 tuple(interfaces)))
    return devices


def daemon_account(user: str = DAEMON_USER) -> Account:
    """The gsmgw system user if it exists (with dialout, as the unit gives it), else whoever runs doctor."""
    try:
        entry = pwd.getpwnam(user)
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
        try:
            gids.add(grp.getgrnam("dialout").gr_gid)
        except KeyError:
            pass  # no dialout group here: the unit's SupplementaryGroups=dialout adds nothing
        return Account(user, entry.pw_uid, frozenset(gids))
    except KeyError:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return Account(name, uid, frozenset(os.getgroups()) | {os.getgid()})


def _outgoing_locks(directory: str, now: float) -> dict[str, float]:
    """Names in outgoing/ whose `NAME.LOCK` exists -> the lock's age in seconds."""
    locks = {}
    try:
        entries = set(os.listdir(directory))
    except OSError:
        return {}
    for entry in entries:
        name = entry[: -len(".LOCK")]
        if not entry.endswith(".LOCK") or name not in entries:
            continue
        try:
            locks[name] = max(0.0, now - os.lstat(os.path.join(directory, entry)).st_mtime)
        except OSError:
            continue
    return locks


def _unreadable_files(directory: str, account: Account) -> tuple[str, ...]:
    names = []
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return ()
    for entry in entries:
        if entry.startswith(".") or entry.endswith((".tmp", ".LOCK")):
            continue
        info = path_facts(os.path.join(directory, entry))
        if info.exists and not info.is_dir and not account.may(info, 4):
            names.append(entry)
    return tuple(names)


def _raw_pins(text: str) -> tuple[bool, list[str]]:
    """Whether the YAML writes a `pin:` inline, and those values (to keep them out of messages)."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return False, []
    pins = []
    modems = document.get("modems") if isinstance(document, dict) else None
    for modem in modems if isinstance(modems, list) else []:
        if isinstance(modem, dict) and modem.get("pin") not in (None, ""):
            pins.append(str(modem["pin"]))
    return bool(pins), pins


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    return text


def gather_config(path: str) -> tuple[ConfigFacts, Any, list[str]]:
    """The config file's facts, the loaded Config (or None) and the PINs to scrub."""
    file = path_facts(path)
    if not file.exists:
        return ConfigFacts(path, None, False), None, []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ConfigFacts(path, file, False), None, []
    inline_pin, pins = _raw_pins(text)
    from gsmgw.config import ConfigError, check_config

    try:
        result = check_config(path)
    except ConfigError as error:
        return ConfigFacts(path, file, False, tuple(_scrub(str(error), pins) for _ in [0])), None, pins
    errors = tuple(
        _scrub(f"{issue.path}{f' (line {issue.line})' if issue.line else ''}: {issue.message}"
               f"{'; ' + issue.fix if getattr(issue, 'fix', None) else ''}", pins)
        for issue in result.errors
    )
    config = result.config
    secrets: list[tuple[str, PathFacts]] = []
    if config is not None:
        for modem in config.modems:
            if modem.pin_file:
                secrets.append((f"PIN file of modem {modem.name}", path_facts(modem.pin_file)))
            if modem.pin:
                pins.append(modem.pin)
        for client in config.clients:
            token_file = getattr(client, "token_file", None)
            if token_file:
                secrets.append((f"token file of client {client.name}", path_facts(token_file)))
    return ConfigFacts(path, file, True, errors, inline_pin, tuple(secrets)), config, pins


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `offset` (X.690 §8.1)."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + length


def certificate_not_after(pem: str) -> float:
    """When the first certificate of a PEM file ends (RFC 5280 §4.1.2.5 Validity.notAfter), as
    Unix time. Pure; ValueError when it is no certificate."""
    begin = pem.find("-----BEGIN CERTIFICATE-----")
    end = pem.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        raise ValueError("no PEM certificate in the file")
    der = ssl.PEM_cert_to_DER_cert(pem[begin:end + len("-----END CERTIFICATE-----")])
    _, certificate, _ = _der_element(der, 0)
    _, position, tbs_end = _der_element(der, certificate)  # TBSCertificate
    fields: list[tuple[int, int, int]] = []
    while position < tbs_end and len(fields) < 5:
        tag, content, after = _der_element(der, position)
        fields.append((tag, content, after))
        position = after
    if fields and fields[0][0] == 0xA0:  # [0] version, present from v2 on
        fields = fields[1:]
    _, validity, validity_end = fields[3]  # serialNumber, signature, issuer, validity
    _, not_before_end = _der_element(der, validity)[1:]
    tag, content, after = _der_element(der, not_before_end)
    text = der[content:after].decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ; YY < 50 is 20YY (RFC 5280 §4.1.2.5.1)
        year = int(text[:2])
        text = f"{2000 + year if year < 50 else 1900 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("the validity holds no time")
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).timestamp()


def port_answer(key: str, host: str, port: int, timeout: float = 5.0) -> PortAnswer:
    """Connect to host:port and read the first line (an SMTP greeting)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            line = connection.makefile("rb").readline(512)
    except OSError as exc:
        return PortAnswer(key, host, port, error=exc.strerror or str(exc) or type(exc).__name__)
    if not line:
        return PortAnswer(key, host, port, error="it closed the connection without a word")
    return PortAnswer(key, host, port, greeting=line.decode("ascii", "replace").strip())


def gather_email(config: Any, facts: Facts, *, smarthost: bool = True) -> None:
    smtp = getattr(config, "smtp", None)
    if smtp is not None:
        host = "127.0.0.1" if smtp.listen_host in ("0.0.0.0", "") else "::1" if smtp.listen_host == "::" else smtp.listen_host
        facts.smtp_port = port_answer("smtp.listen", host, smtp.listen_port, timeout=2.0)
    out = getattr(config, "email_out", None)
    if out is not None and smarthost:
        facts.smarthost = port_answer("email_out.smarthost", out.smarthost_host, out.smarthost_port)
    for key in ("smtp", "http", "smpp"):
        tls = getattr(getattr(config, key, None), "tls", None)
        if tls is None:
            continue
        try:
            not_after = certificate_not_after(Path(tls.cert).read_text(encoding="ascii", errors="replace"))
            facts.certificates.append(CertificateFacts(f"{key}.tls.cert", str(tls.cert), not_after))
        except (OSError, ValueError, IndexError) as exc:
            facts.certificates.append(CertificateFacts(f"{key}.tls.cert", str(tls.cert), error=str(exc)))
    facts.now = time.time()


ProbeFunction = Callable[[str, Any], Awaitable[ModemProbe]]


async def probe_modem(port: str, modem_config: Any = None, *, timeout: float = 5.0) -> ModemProbe:
    """Ask one modem about its SIM, network, SMSC and storage. Never enters a PIN.

    Uses the driver (gsmgw.at.modem), so the vendor dialects and the parsing of
    each answer are the daemon's own.
    """
    from gsmgw.at.errors import AtCommandError, ModemError
    from gsmgw.at.modem import Modem, parse_csca

    modem = Modem(
        port,
        baudrate=getattr(modem_config, "baudrate", None) or 115200,
        profile=getattr(modem_config, "profile", None),
        command_timeout=timeout,
    )
    try:
        await asyncio.wait_for(modem.open(), timeout)
    except (ModemError, OSError, asyncio.TimeoutError) as error:
        return ModemProbe(error=f"cannot open {port}: {error}")
    try:
        try:
            await asyncio.wait_for(modem.sync(), timeout * 2)
        except (ModemError, asyncio.TimeoutError) as error:
            return ModemProbe(error=f"no answer to AT on {port}: {error or 'timeout'}")
        pin_state = await modem.pin_state()
        attempts = None
        if pin_state and pin_state != "READY":
            attempts = await modem.pin_attempts_left()
            return ModemProbe(pin_state=pin_state, pin_attempts=attempts)
        registration = await modem.registration()
        try:
            smsc = parse_csca((await modem.command("AT+CSCA?")).lines)
            smsc_known = True
        except AtCommandError:
            smsc, smsc_known = None, False
        try:
            storage_status = await modem.storage_status()
            uses = [u for u in (storage_status.read, storage_status.write, storage_status.receive) if u]
            storage = tuple(dict.fromkeys((u.name, u.used, u.total) for u in uses))
        except ModemError:
            storage = ()
        return ModemProbe(
            pin_state=pin_state, pin_attempts=attempts, registered=registration.registered,
            registration=registration.status_text, smsc=smsc, smsc_known=smsc_known,
            storage=storage,
        )
    except (ModemError, OSError, asyncio.TimeoutError) as error:
        return ModemProbe(error=f"{port}: {error}")
    finally:
        try:
            await modem.close()
        except (ModemError, OSError):
            pass  # the probe's result (or its error) is already in hand; a failed close adds nothing


def gather(
    config_path: str | None,
    *,
    sys_root: str | os.PathLike = "/sys",
    proc_root: str | os.PathLike = "/proc",
    account: Account | None = None,
    probe: ProbeFunction | None = probe_modem,
) -> tuple[Facts, list[str]]:
    """Everything diagnose() needs, and the secrets to keep out of the report."""
    facts = Facts(daemon=account or daemon_account())
    facts.processes = gather_processes(proc_root)
    facts.usb = gather_usb(sys_root)
    secrets: list[str] = []
    config = None
    if config_path is not None:
        facts.config, config, secrets = gather_config(config_path)
    if config is None:
        return facts, secrets
    facts.spool_root = str(config.spool)
    facts.spool_dirs = {name: path_facts(Path(config.spool) / name) for name in SPOOL_DIRS}
    if facts.daemon is not None:
        facts.spool_unreadable = {
            "outgoing": _unreadable_files(str(Path(config.spool) / "outgoing"), facts.daemon)
        }
    facts.outgoing_locks = _outgoing_locks(str(Path(config.spool) / "outgoing"), time.time())
    facts.state_dir = path_facts(config.state)
    facts.daemon_pid, facts.daemon_lock_unreadable = _state_holder(config)
    facts.daemon_status, facts.daemon_status_age = _daemon_status(config)
    hooks = getattr(config, "hooks", None)
    for event in ("received", "sent", "failed", "report"):
        program = getattr(hooks, event, None)
        if program:
            facts.executables.append((f"{event} hook", path_facts(program)))
    if getattr(config, "journal", None) is not None:
        facts.journal = gather_journal(config)
    two_way = getattr(config, "two_way", None)
    if two_way is not None and two_way.enabled:
        for word, argv in two_way.commands.items():
            facts.executables.append((f"two-way command {word!r}", path_facts(argv[0])))
    for modem in config.modems:
        binding, value = modem.binding
        port = modem.port
        if port is None:
            port = _port_from_status(config, modem.name)
        port_facts = path_facts(port) if port else None
        facts.modems.append(ModemFacts(modem.name, port, binding, bool(modem.pin), port_facts))
    gather_email(config, facts)
    if probe is not None:
        facts.modems = asyncio.run(_probe_all(facts, config, probe))
    return facts, secrets


def gather_journal(config: Any) -> JournalFacts:
    from gsmgw.spool.journal import JournalError
    from gsmgw.spool.journal.postgresql import SCHEMA_VERSION, inspect_database, masked_dsn

    member, lease = config.cluster.member, config.cluster.lease
    base = {"dsn": masked_dsn(config.journal), "member": member, "expected": SCHEMA_VERSION, "lease": lease}
    try:
        found = inspect_database(config.journal)
    except JournalError as error:
        return JournalFacts(error=str(error).split(": ", 1)[-1], **base)
    mine = {modem.name for modem in config.modems}
    clashes = tuple(sorted(
        (modem, row["name"]) for row in found["members"] if row["name"] != member for modem in row["modems"]
        if modem in mine
    ))
    return JournalFacts(
        schema=found["schema"], skew=found["skew"], modem_clashes=clashes,
        members=tuple((row["name"], row["alive"], row["clock_offset"]) for row in found["members"]), **base,
    )


def _state_holder(config: Any) -> tuple[int | None, str | None]:
    """(PID of the daemon holding the config's state directory, None) or (None, why the lock
    file could not be read)."""
    from gsmgw.daemon.lock import holder

    try:
        return holder(config.state), None
    except OSError as error:
        return None, error.strerror or str(error)


def _daemon_status(config: Any) -> tuple[dict | None, float | None]:
    from gsmgw.daemon.status import StatusUnavailable, age_of, read_status

    try:
        status = read_status(Path(config.state))
    except StatusUnavailable:
        return None, None
    return status, age_of(status, time.time())


def _port_from_status(config: Any, name: str) -> str | None:
    """Where the running daemon found a modem bound by imsi:/iccid:/imei:."""
    try:
        from gsmgw.daemon.status import read_status

        status = read_status(Path(config.state))
    except Exception:  # no daemon, no status file: the port is simply unknown
        return None
    for modem in status.get("modems", []):
        if modem.get("name") == name:
            return modem.get("port")
    return None


async def _probe_all(facts: Facts, config: Any, probe: ProbeFunction) -> list[ModemFacts]:
    if defers_to_daemon(facts):
        # This config's daemon holds its ports (a non-root doctor cannot see that in /proc); what
        # it knows about them is in its status file (check_daemon).
        return facts.modems

    async def one(modem: ModemFacts) -> ModemFacts:
        info = modem.port_facts
        if modem.port is None or info is None or not info.exists or not info.is_char_device:
            return modem  # check_ports reports it
        if _holders(info, facts.processes):
            return modem  # never open a port someone else holds; check_processes reports it
        if not os.access(info.path, os.R_OK | os.W_OK):
            return modem  # check_ports reports the permission
        result = await probe(modem.port, config.modem(modem.name))
        return ModemFacts(modem.name, modem.port, modem.binding, modem.has_pin, info, result)

    return list(await asyncio.gather(*(one(modem) for modem in facts.modems)))


# ------------------------------------------------------------------ output


def render_text(findings: Sequence[Finding], secrets: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    head = [f"note: {note}" for note in notes]
    if not findings:
        return _scrub("\n".join([*head, "gsmgw doctor: nothing to fix."]) + "\n", secrets)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    lines = [*head, f"gsmgw doctor: {errors} error(s), {warnings} warning(s)", ""]
    for finding in findings:
        lines.append(f"{finding.severity.upper():7} {finding.subject}: {finding.problem}")
        lines.append(f"        fix: {finding.fix}")
        lines.append("")
    return _scrub("\n".join(lines), secrets)


def render_json(findings: Sequence[Finding], secrets: Sequence[str] = (), notes: Sequence[str] = ()) -> dict:
    return {
        "ok": not findings,
        "findings": [
            {key: _scrub(str(value), secrets) for key, value in asdict(finding).items()} for finding in findings
        ],
        "notes": [_scrub(note, secrets) for note in notes],
    }
