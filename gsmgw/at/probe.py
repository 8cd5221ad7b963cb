"""Find out what is on serial ports: used by `gsmgw probe` and by the daemon to find the port
that holds a SIM (config ``imsi:``/``iccid:``/``imei:``). `gsmgw doctor` probes through
`gsmgw.at.modem` itself and finds port holders from its own /proc facts.

Rules: a port another process holds is reported, never opened (writing AT commands into
someone else's session would corrupt it). No PIN is ever entered. Every port is probed in
parallel under one deadline, so a port that does not answer cannot make a probe hang.
"""

from __future__ import annotations

import asyncio
import glob
import os
from dataclasses import asdict, dataclass, fields

from gsmgw.at.errors import ModemError, ModemTimeout, PortBusy, PortGone
from gsmgw.at.modem import Modem

DEFAULT_PATTERNS = ("/dev/gsmgw/*", "/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")

MM_ADVICE = (
    "stop ModemManager (`systemctl stop ModemManager`) or add the udev rule "
    'ENV{ID_MM_DEVICE_IGNORE}="1" for this modem, see README'
)


@dataclass
class ProbeResult:
    """One port. The field names are the stable keys of `gsmgw probe --json`."""

    port: str
    ok: bool = False
    error: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    operator: str | None = None
    signal_dbm: int | None = None
    registered: bool | None = None
    registration: str | None = None
    profile: str | None = None
    pin_state: str | None = None
    held_by: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


JSON_KEYS = tuple(f.name for f in fields(ProbeResult))


def scan_ports(patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS) -> list[str]:
    """The serial device paths matching ``patterns``, one per device: a stable name
    (/dev/gsmgw/…, /dev/serial/by-id/…) is listed instead of the ttyUSB it points to."""
    seen: set[str] = set()
    ports = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real in seen or not os.path.exists(real) or os.path.isdir(real):
                continue
            seen.add(real)
            ports.append(path)
    return ports


def _process_name(pid: str) -> str:
    """The process's name; ModemManager is recognised by its comm or by argv[0]."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            name = f.read().strip()
    except OSError:
        return "?"
    if name != "ModemManager":
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0].decode("utf-8", "replace")
            if os.path.basename(argv0) == "ModemManager":
                return "ModemManager"
        except OSError:
            pass  # the process has gone or is not ours to read: keep the name from comm
    return name


def _pty_index(real: str) -> str | None:
    """N for /dev/pts/N, else None."""
    head, _, tail = real.rpartition("/")
    return tail if head == "/dev/pts" and tail.isdigit() else None


def _holds_master(fd_dir: str, fd: str, index: str) -> bool:
    """True if ``fd`` is the master (/dev/ptmx) of pty ``index``: Linux shows ``tty-index`` in
    /proc/PID/fdinfo for ptmx fds."""
    try:
        with open(fd_dir.replace("/fd", "/fdinfo") + f"/{fd}", encoding="ascii", errors="replace") as f:
            return any(line.split() == ["tty-index:", index] for line in f)
    except OSError:
        return False


def port_holders(path: str) -> list[tuple[int, str]]:
    """(pid, process name) of every process with ``path`` open, from /proc/*/fd. Processes of
    other users are invisible without root; the open() then tells (EBUSY/flock).

    For a pty the process holding its master side is the device itself (the simulator, socat),
    not a competing user, even if it also keeps the slave open; it is not listed.
    """
    real = os.path.realpath(path)
    index = _pty_index(real)
    holders = []
    own = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == own:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            entries = os.listdir(fd_dir)
        except OSError:
            continue
        holds_slave = holds_master = False
        for fd in entries:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target == real:
                holds_slave = True
            elif index is not None and target == "/dev/ptmx" and _holds_master(fd_dir, fd, index):
                holds_master = True
        if holds_slave and not holds_master:
            holders.append((int(pid), _process_name(pid)))
    return holders


def modemmanager_running() -> bool:
    """True if a ModemManager process runs: it opens new modem ports and sends its own AT."""
    for pid in os.listdir("/proc"):
        if pid.isdigit() and _process_name(pid) == "ModemManager":
            return True
    return False


async def probe_port(path: str, *, timeout: float = 5.0, profile: str | None = None) -> ProbeResult:
    """Identify the modem on ``path`` within ``timeout`` seconds; never raises."""
    result = ProbeResult(path)
    if not os.path.exists(path):
        result.error = f"{path} does not exist; is the modem plugged in?"
        return result
    holders = port_holders(path)
    if holders:
        names = ", ".join(f"{name} (pid {pid})" for pid, name in holders)
        result.held_by = names
        if any(name == "ModemManager" for _, name in holders):
            result.error = f"held by ModemManager; {MM_ADVICE}"
        else:
            result.error = f"busy: open in {names}; stop that program or probe another port"
        return result
    if modemmanager_running():
        # It is not holding this port now, but may open it at any moment (it probes every new
        # tty unless udev marks it ID_MM_DEVICE_IGNORE). The text output adds the advice.
        result.held_by = "ModemManager (running; not holding this port now)"
    command_timeout = max(0.5, min(2.0, timeout / 3))
    modem = Modem(path, profile=profile, command_timeout=command_timeout)
    try:
        await asyncio.wait_for(_identify(modem, result), timeout)
        result.ok = True
    except TimeoutError:
        result.error = (
            f"no answer within {timeout:g} s: not a modem's AT port (sticks have several), "
            "or the modem hangs"
        )
    except PortBusy as exc:
        result.held_by = "another process"
        result.error = str(exc)
    except PortGone as exc:
        result.error = str(exc)
    except ModemError as exc:
        result.error = f"no usable answer: {exc}"
    finally:
        await modem.close()
    return result


async def _identify(modem: Modem, result: ProbeResult) -> None:
    """Fill ``result`` step by step, so that a timeout still leaves what was learnt."""
    await modem.open()
    try:
        info = await modem.identify()
    except ModemTimeout as exc:
        raise ModemError(f"the port stopped answering ({exc})") from None
    result.profile = modem.profile.name
    for name in ("manufacturer", "model", "revision", "imei", "imsi", "iccid", "pin_state"):
        setattr(result, name, getattr(info, name))
    if info.pin_state not in ("READY", None):
        result.registered = False
        result.registration = f"SIM not ready ({info.pin_state})"
        return
    try:
        registration = await modem.registration()
        result.registered = registration.registered
        result.registration = registration.status_text
        result.operator = registration.operator
        result.signal_dbm = await modem.signal_dbm()
    except ModemError as exc:
        result.registration = result.registration or f"unknown ({exc})"


async def probe_ports(
    paths: list[str] | None = None,
    *,
    timeout: float = 5.0,
    patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS,
    profile: str | None = None,
) -> list[ProbeResult]:
    """Probe ``paths`` (or every port found by ``patterns``) in parallel."""
    ports = list(paths) if paths else scan_ports(patterns)
    return list(await asyncio.gather(*(probe_port(p, timeout=timeout, profile=profile) for p in ports)))


async def find_port(
    *,
    imsi: str | None = None,
    iccid: str | None = None,
    imei: str | None = None,
    paths: list[str] | None = None,
    patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS,
    timeout: float = 5.0,
) -> str | None:
    """The port whose modem has this IMSI / ICCID / IMEI, or None. Ports held by another
    process are skipped (a running gsmgw worker holds the ones it already uses)."""
    if not (imsi or iccid or imei):
        raise ValueError("find_port needs imsi=, iccid= or imei=")
    for result in await probe_ports(paths, timeout=timeout, patterns=patterns):
        if not result.ok:
            continue
        if (imsi and result.imsi == imsi) or (iccid and result.iccid == iccid) or (
            imei and result.imei == imei
        ):
            return result.port
    return None


def describe(result: ProbeResult) -> list[str]:
    """Human-readable lines for one result (the text form of `gsmgw probe`)."""
    if not result.ok:
        lines = [f"{result.port}: {result.error}"]
        if result.manufacturer or result.imei:
            lines.append(f"  partly identified: {result.manufacturer} {result.model} IMEI {result.imei}")
        return lines
    name = " ".join(x for x in (result.manufacturer, result.model) if x) or "unknown modem"
    lines = [f"{result.port}: {name} (profile {result.profile})"]
    lines.append(f"  revision {result.revision or '-'}, IMEI {result.imei or '-'}")
    lines.append(f"  IMSI {result.imsi or '-'}, ICCID {result.iccid or '-'}, SIM {result.pin_state or '-'}")
    signal = f"{result.signal_dbm} dBm" if result.signal_dbm is not None else "unknown"
    lines.append(
        f"  operator {result.operator or '-'}, {result.registration or 'registration unknown'}, "
        f"signal {signal}"
    )
    return lines


__all__ = [
    "DEFAULT_PATTERNS", "JSON_KEYS", "ProbeResult", "describe", "find_port", "modemmanager_running",
    "port_holders", "probe_port", "probe_ports", "scan_ports",
]
