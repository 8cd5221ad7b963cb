"""One simulated modem: the AT command engine behind a pty.

The engine gets bytes (`feed`) and answers through a write callback that the
pty layer gives it (`attach`); it never touches a file descriptor itself.  It
runs on the simulator's asyncio loop, which gives it time (latency, hangs,
+CNMA timeouts) and lets a command wait for the `> ` prompt's text.

What it follows:
- ITU-T V.250: echo (E), verbose (V), the "AT" prefix, `\\r\\n` framing, basic
  commands written back to back and extended ones joined with `;`.
- TS 27.007: identity, PIN/PUK (+CPIN, +CPINR), registration, +CMEE.
- TS 27.005 (PDU mode): +CSMS, +CPMS, +CNMI routing, +CNMA, +CMGS/+CMGW with
  the `> ` prompt (Ctrl-Z sends, ESC cancels), +CMGL/+CMGR/+CMGD.
Vendor differences are data in `profiles.py`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Awaitable, Callable

from gsmgw.sim import errors
from gsmgw.sim.atline import Command, LineSyntaxError, find_prefix, split_arguments, split_line
from gsmgw.sim.errors import AtError, cme, cms
from gsmgw.sim.faults import FaultState
from gsmgw.sim.identity import Identity
from gsmgw.sim.profiles import Profile
from gsmgw.sim.storage import REC_UNREAD, STO_UNSENT, MessageStore, tpdu_length

if TYPE_CHECKING:
    from gsmgw.sim.network import SimNetwork

log = logging.getLogger(__name__)

CTRL_Z = 0x1A
ESC = 0x1B
MAX_LINE = 2048
PIN_ATTEMPTS = 3
PUK_ATTEMPTS = 10
DEFAULT_PUK = "12345678"
# A +CMT/+CDS routed to the TE with +CSMS service 1 must be acknowledged with
# +CNMA "within required time (network timeout)" (TS 27.005 §3.4.4); TS 24.011
# timer TR2M is 12-20 s, so 15 s is a fair middle.
DEFAULT_ACK_TIMEOUT = 15.0
# TS 23.038 §5 (CBS data coding): 15 is the GSM 7-bit default alphabet, language unspecified;
# 72 (0x48, group 01xx with bits 3..2 = 10) is UCS2.
USSD_DCS_GSM7 = 15
USSD_DCS_UCS2 = 72


@dataclass(frozen=True)
class Latency:
    """Submit latency: fixed (`low == high`) or uniform in [low, high] seconds."""

    low: float
    high: float

    @classmethod
    def parse(cls, value: "str | float | int | Latency") -> "Latency":
        if isinstance(value, Latency):
            return value
        if isinstance(value, (int, float)):
            low = high = float(value)
        else:
            text = str(value).strip()
            try:
                if "-" in text.lstrip("-"):
                    first, second = text.split("-", 1)
                    low, high = float(first), float(second)
                else:
                    low = high = float(text)
            except ValueError:
                raise ValueError(
                    f"latency {value!r} is not a number of seconds; write e.g. 0.5 or a range 1-5"
                ) from None
        if low < 0 or high < low:
            raise ValueError(f"latency {value!r}: need 0 <= low <= high, e.g. 1-5")
        return cls(low, high)

    def draw(self, rng: random.Random) -> float:
        return self.low if self.low == self.high else rng.uniform(self.low, self.high)


@dataclass
class Call:
    """An incoming voice call ringing at a modem (the network's record of it is `record`)."""

    caller: str  # "+49..." or "" when the caller withholds the number
    interval: float
    record: dict
    timer: asyncio.TimerHandle | None = None


# What a command's handler answers: the lines before the final result (a coroutine for the
# commands that wait, such as AT+CMGS for the network).
_Handler = Callable[[Command], "list[str] | Awaitable[list[str]]"]


class SimModem:
    """The modem and its SIM.  SIM state (messages, PIN counters, TP-MR) survives a replug."""

    def __init__(
        self,
        identity: Identity,
        profile: Profile,
        network: "SimNetwork",
        loop: asyncio.AbstractEventLoop,
        *,
        pin: str | None = None,
        latency: Latency = Latency(0.0, 0.0),
        seed: int = 0,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        register_delay: float = 0.0,
    ) -> None:
        self.identity = identity
        self.profile = profile
        self.network = network
        self.loop = loop
        self.latency = latency
        self.ack_timeout = ack_timeout
        # Seconds a modem searches (+CREG stat 2) before it is registered, after power-up,
        # the PIN or AT+CFUN=1; real ones take a few seconds.
        self.register_delay = register_delay
        self.rng = random.Random(seed * 7919 + identity.index)
        self.faults = FaultState()
        # The SIM.
        self.pin = pin
        self.puk = DEFAULT_PUK
        self.pin_attempts = PIN_ATTEMPTS
        self.puk_attempts = PUK_ATTEMPTS
        self.smsc = identity.operator.smsc
        self.last_mr = 0  # EF_SMSS "last used TP-MR" (TS 31.102 §4.2.28) lives on the SIM
        self.signal = 20 + identity.index % 8
        first = profile.first_index
        self.stores = {
            name: MessageStore(name, capacity, first) for name, capacity in profile.capacities.items()
        }
        self._write: Callable[[bytes], None] | None = None
        self._handlers = self._build_handlers()
        self._reset_power_state()

    # ------------------------------------------------------------------ state
    def _reset_power_state(self) -> None:
        """What a power cycle (plug, AT+CFUN=1,1) resets; the SIM's content stays."""
        self.pin_state = "SIM PUK" if self.pin_attempts == 0 else ("SIM PIN" if self.pin else "READY")
        self.cfun = 1
        self._registration_due = 0.0
        self._reset_settings()
        self._line = bytearray()
        self._pending = bytearray()
        self._task: asyncio.Task | None = None
        self._prompt: bytearray | None = None
        self._prompt_done: asyncio.Future | None = None
        self._deferred: list[list[str]] = []
        self._ta_buffer: list[list[str]] = []
        # A routed +CMT/+CDS waiting for +CNMA, and those queued behind it: (kind, pdu).
        self._awaiting_ack: tuple[str, str] | None = None
        self._ack_queue: list[tuple[str, str]] = []
        self._ack_timer: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._unknown_command = False  # the command line failed on a command we do not know
        self._sim_ready_at = 0.0  # loop time until which the SIM is still starting up
        self._last_line_open = False  # an answer line was written without its CR LF (glued_ok)
        self.call: Call | None = None  # an incoming call ringing now

    def _reset_settings(self) -> None:
        """ATZ / AT&F: the settings a profile restores (V.250 §6.1.1, §6.1.2)."""
        self.echo = True
        self.verbose = True
        self.cmee = 0
        self.cmgf = 0
        self.csms = 0
        # SIM800's factory setting; many modems ship the same (TS 27.005 leaves it open).
        self.cnmi = [2, 1, 0, 0, 0]
        self.cpms = ["SM", "SM", "SM"]
        self.creg_n = 0
        self.cgreg_n = 0
        # The <stat> it reports while registered (TS 27.007 §7.2): 1 home, 5 roaming, and on LTE
        # 6/7 (SMS only) or 9/10 (CSFB not preferred). SimNetwork.set_registration changes it.
        self.registered_stat = 1
        self.cops_format = 0
        self.cscs = self.profile.default_charset
        self.clip = 0
        self.crc = 0
        self.curc = True
        # V.250 §6.2.1-6.2.3: line end CR (13), response formatting LF (10), backspace (8).
        self.s_registers = {"S3": 13, "S4": 10, "S5": 8}

    @property
    def index(self) -> int:
        return self.identity.index

    @property
    def number(self) -> str:
        return self.identity.number

    @property
    def plugged(self) -> bool:
        return self._write is not None

    @property
    def searching(self) -> bool:
        """Radio on and SIM ready, but the network search is not over yet."""
        return self.plugged and self.cfun == 1 and self.pin_state == "READY" and self.loop.time() < self._registration_due

    @property
    def registered(self) -> bool:
        return self.plugged and self.cfun == 1 and self.pin_state == "READY" and not self.searching

    def _start_search(self) -> None:
        if self.register_delay <= 0:
            return
        self._registration_due = self.loop.time() + self.register_delay
        self._schedule(self.register_delay, lambda: self._registration_changed(False))

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def __repr__(self) -> str:
        state = "plugged" if self.plugged else "unplugged"
        return f"<SimModem {self.identity.name} {self.number} {self.profile.name} {state} {self.pin_state}>"

    # ---------------------------------------------------------------- plug
    def attach(self, write: Callable[[bytes], None]) -> None:
        """Power on behind a (new) port: boot lines, noise, and deliveries that waited."""
        self._reset_power_state()
        self._write = write
        self._sim_ready_at = self.loop.time() + self.profile.sim_boot_delay
        self._start_search()
        cpin = self.pin_state
        boot = [line.format(cpin=cpin) for line in self.profile.boot_urcs]
        if boot:
            self.unsolicited(boot)
        if self.profile.noise_interval > 0:
            self._schedule(self.profile.noise_interval, self._noise_tick)
        self.network.modem_ready(self)

    def detach(self) -> None:
        """Power off (unplug): whatever was running stops, nothing more is written."""
        self._write = None
        self.end_call("modem unplugged")
        if self._task is not None:
            self._task.cancel()
        for timer in self._timers:
            timer.cancel()
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        # Routed messages that were never acknowledged stay with the network.
        self._return_unacknowledged()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        now = self.loop.time()
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > now]
        self._timers.append(self.loop.call_later(delay, callback))

    def _noise_tick(self) -> None:
        if not self.plugged:
            return
        if self.curc:
            self.unsolicited([line.format(rssi=self.signal) for line in self.profile.noise_urcs])
        self._schedule(self.profile.noise_interval, self._noise_tick)

    # -------------------------------------------------------------- output
    def _emit(self, data: bytes) -> None:
        if self._write is None or self.faults.hanging(self.loop.time()):
            return
        self._write(data)

    def _emit_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.verbose:
            text = "\r\n" + "\r\n".join(lines) + "\r\n"
        else:
            text = "\r\n".join(lines) + "\r\n"
        self._emit(text.encode("latin-1", "replace"))

    def _emit_answer(self, lines: list[str]) -> None:
        """The lines of a command's answer; a glued_ok dialect leaves the last one open for OK
        when it is data."""
        # Only data is glued (a PDU, numbers, a quoted field): after free text the OK could not
        # be told from the text's own end ("...BOOK"), by us or by any client.
        if not (lines and self.verbose and self.profile.glued_ok
                and re.search(r'[0-9"]$|^[0-9A-Fa-f]+$', lines[-1])):
            self._emit_lines(lines)
            return
        self._emit(("\r\n" + "\r\n".join(lines)).encode("latin-1", "replace"))
        self._last_line_open = True

    def _emit_final(self, text: str) -> None:
        if text == "ERROR" and self._unknown_command:
            text = self.profile.unknown_final
        if self.verbose and text == "OK" and self.profile.glued_ok and self._last_line_open:
            self._emit(b"OK\r\n")
        elif self.verbose:
            self._emit(f"\r\n{text}\r\n".encode("latin-1"))
        else:
            code = {"OK": "0", "ERROR": "4"}.get(text, text)
            self._emit(f"{code}\r".encode("latin-1"))

    def unsolicited(self, lines: list[str]) -> None:
        """A URC not governed by +CNMI (RING, ^RSSI, +CUSD...): held back while a command runs."""
        if self.busy:
            self._deferred.append(lines)
        else:
            self._emit_lines(lines)

    def unsolicited_raw(self, data: bytes) -> None:
        """Bytes that are not even a line (noise); dropped while a command runs."""
        if not self.busy and self._prompt is None:
            self._emit(data)

    def _cnmi_unsolicited(self, lines: list[str]) -> None:
        """+CMTI/+CMT/+CDS/+CDSI: buffered in the TA in <mode> 0, else held while a command runs (27.005 §3.4.1)."""
        if self.cnmi[0] == 0:
            self._ta_buffer.append(lines)
        else:
            self.unsolicited(lines)

    def _flush_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        for lines in deferred:
            self._emit_lines(lines)

    # --------------------------------------------------------------- input
    def feed(self, data: bytes) -> None:
        if self.faults.hanging(self.loop.time()):
            return  # a hung modem loses what it is sent
        if self._prompt is not None:
            self._feed_prompt(data)
        elif self.busy:
            self._pending.extend(data)
        else:
            self._feed_command(data)

    def _feed_command(self, data: bytes) -> None:
        for position, byte in enumerate(data):
            if self.echo:
                self._emit(bytes([byte]))
            if byte == 0x0D:
                line = self._line.decode("latin-1")
                self._line = bytearray()
                if self._start_line(line):
                    self._pending.extend(data[position + 1 :])
                    return
            elif byte == 0x0A or byte in (CTRL_Z, ESC):
                continue
            elif byte in (0x08, 0x7F):
                del self._line[-1:]
            elif len(self._line) < MAX_LINE:
                self._line.append(byte)

    def _feed_prompt(self, data: bytes) -> None:
        assert self._prompt is not None and self._prompt_done is not None
        for position, byte in enumerate(data):
            if byte in (CTRL_Z, ESC):
                text = self._prompt.decode("latin-1")
                self._prompt = None
                self._pending.extend(data[position + 1 :])
                if not self._prompt_done.done():
                    self._prompt_done.set_result(text if byte == CTRL_Z else None)
                return
            if self.echo:
                self._emit(bytes([byte]))
            if byte in (0x0D, 0x0A):
                continue
            if byte in (0x08, 0x7F):
                del self._prompt[-1:]
            elif len(self._prompt) < 4 * MAX_LINE:
                self._prompt.append(byte)

    def _start_line(self, line: str) -> bool:
        """Run a command line; True when it runs on (its answer comes later)."""
        start = find_prefix(line)
        if start < 0:
            return False  # V.250 §5.2.1: no "AT", no command; nothing is answered
        try:
            commands = split_line(line[start:])
        except LineSyntaxError:
            self._emit_final("ERROR")
            return False
        self._task = self.loop.create_task(self._run_line(commands))
        self._task.add_done_callback(self._line_finished)
        return True

    def _line_finished(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("%s: command line failed inside the simulator: %r", self.identity.name, error)
            self._emit_final("ERROR")
        self._flush_deferred()
        if self._pending and self.plugged:
            pending = bytes(self._pending)
            self._pending = bytearray()
            self.feed(pending)

    async def _run_line(self, commands: list[Command]) -> None:
        faults = self.faults
        if faults.noise_chance is not None and faults.noise_chance.fire(self.rng):
            self._emit(faults.noise_data)
        # Unsolicited lines to slip into this answer (the urc_in_response fault), if any.
        intrusion = list(faults.urc_lines) if faults.urc_chance is not None and faults.urc_chance.fire(self.rng) else []
        final = "OK"
        self._unknown_command = False
        self._last_line_open = False
        for command in commands:
            try:
                result = self._dispatch(command)
                answer = (await result) if isinstance(result, Awaitable) else result
            except AtError as error:
                final = errors.error_line(error, self.cmee)
                break
            lines = answer or []
            if intrusion and lines and faults.urc_where == "first":
                self._emit_lines(lines[:1])
                self._emit_lines(intrusion)
                intrusion = []
                lines = lines[1:]
            if self._last_line_open:
                self._emit(b"\r\n")
                self._last_line_open = False
            if command is commands[-1] and final == "OK" and not intrusion:
                self._emit_answer(lines)
            else:
                self._emit_lines(lines)
        self._emit_lines(intrusion)
        self._emit_final(final)

    def _dispatch(self, command: Command) -> "list[str] | Awaitable[list[str]]":
        handler = self._handlers.get(command.name)
        if handler is None:
            if re.fullmatch(r"S\d+", command.name):
                return self._cmd_s_register(command)
            self._unknown_command = True
            raise errors.plain()
        return handler(command)

    def _cmd_s_register(self, command: Command) -> list[str]:
        # V.250 §6.2: S-registers hold 0-255; read answers three digits.
        if command.form == "read":
            return [f"{self.s_registers.get(command.name, 0):03d}"]
        self.s_registers[command.name] = _int_in(command.arg or "0", range(256), errors.plain())
        return []

    # ------------------------------------------------------------ commands
    def _build_handlers(self) -> dict[str, _Handler]:
        handlers: dict[str, _Handler] = {
            "E": self._cmd_echo,
            "V": self._cmd_verbose,
            "Z": self._cmd_reset,
            "&F": self._cmd_reset,
            "I": self._cmd_ati,
            "H": self._cmd_hang_up,
            "+CHUP": self._cmd_hang_up,
            "Q": self._cmd_ok,
            "X": self._cmd_ok,
            "&C": self._cmd_ok,
            "&D": self._cmd_ok,
            "&W": self._cmd_ok,
            "+CMEE": self._cmd_cmee,
            "+CFUN": self._cmd_cfun,
            "+CPIN": self._cmd_cpin,
            "+CPINR": self._cmd_cpinr,
            "+CGMI": self._info(lambda: self.profile.manufacturer),
            "+GMI": self._info(lambda: self.profile.manufacturer),
            "+CGMM": self._info(lambda: self.profile.model),
            "+GMM": self._info(lambda: self.profile.model),
            "+CGMR": self._info(lambda: self.profile.revision),
            "+GMR": self._info(lambda: self.profile.revision),
            "+CGSN": self._info(lambda: self.identity.imei),
            "+GSN": self._info(lambda: self.identity.imei),
            "+CIMI": self._cmd_cimi,
            "+CCID": self._cmd_ccid,
            "+CNUM": self._cmd_cnum,
            "+CSQ": self._cmd_csq,
            "+CREG": self._cmd_creg,
            "+CGREG": self._cmd_creg,
            "+CEREG": self._cmd_creg,
            "+COPS": self._cmd_cops,
            "+CGATT": self._cmd_cgatt,
            "+CMGF": self._cmd_cmgf,
            "+CSCA": self._cmd_csca,
            "+CSMS": self._cmd_csms,
            "+CSMP": self._cmd_csmp,
            "+CPMS": self._cmd_cpms,
            "+CNMI": self._cmd_cnmi,
            "+CNMA": self._cmd_cnma,
            "+CMGS": self._cmd_cmgs,
            "+CMGW": self._cmd_cmgw,
            "+CMGL": self._cmd_cmgl,
            "+CMGR": self._cmd_cmgr,
            "+CMGD": self._cmd_cmgd,
            "+CUSD": self._cmd_cusd,
            "+CLIP": self._cmd_flag("clip", "+CLIP", "{},1"),
            "+CRC": self._cmd_flag("crc", "+CRC", "{}"),
            "+CVHU": self._cmd_cvhu,
            "+CSCS": self._cmd_cscs,
            "+CLAC": self._cmd_clac,
            "+GCAP": self._info(lambda: self.profile.gcap),
            "+CPAS": self._info(lambda: "+CPAS: 0"),
            # TS 27.007 §8.4: powered by the battery (0), full (100); gammu's monitor asks.
            "+CBC": self._info(lambda: "+CBC: 0,100"),
        }
        vendor: dict[str, _Handler] = {
            "^ICCID": self._cmd_huawei_iccid,
            "^CPIN": self._cmd_huawei_cpin,
            "^CURC": self._cmd_huawei_curc,
            "^SYSINFO": self._cmd_huawei_sysinfo,
            "^HWVER": self._info(lambda: '^HWVER:"CD1E173M"'),
            "+SPIC": self._cmd_simcom_spic,
            "+CSPN": self._info(lambda: f'+CSPN: "{self.identity.operator.long_name}",0'),
            "+QPINC": self._cmd_quectel_qpinc,
            "+QCCID": self._info(lambda: f"+QCCID: {self.identity.iccid}"),
            "+QSPN": self._info(
                lambda: f'+QSPN: "{self.identity.operator.long_name}","{self.identity.operator.short_name}","",0,"{self.identity.operator.mcc_mnc}"'
            ),
        }
        for name in self.profile.vendor_commands:
            handlers[name] = vendor[name]
        return handlers

    def _info(self, text: Callable[[], str]) -> Callable[[Command], list[str]]:
        def handler(command: Command) -> list[str]:
            if command.form == "test":
                return []
            if command.form != "action":
                raise errors.plain()
            return [text()]

        return handler

    def _cmd_ok(self, command: Command) -> list[str]:
        return []

    def _cmd_echo(self, command: Command) -> list[str]:
        self.echo = _flag(command.arg) or self.profile.echo_locked
        return []

    def _cmd_verbose(self, command: Command) -> list[str]:
        self.verbose = _flag(command.arg)
        return []

    def _cmd_reset(self, command: Command) -> list[str]:
        self._reset_settings()
        return []

    def _cmd_ati(self, command: Command) -> list[str]:
        p = self.profile
        fields = dict(manufacturer=p.manufacturer, model=p.model, revision=p.revision, imei=self.identity.imei)
        return [line.format(**fields) for line in p.ati_lines]

    def _cmd_cmee(self, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CMEE: {self.cmee}"]
        if command.form == "test":
            return ["+CMEE: (0-2)"]
        self.cmee = _int_in(command.arg or "0", range(3), cme(50))
        return []

    def _cmd_cfun(self, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CFUN: {self.cfun}"]
        if command.form == "test":
            return ["+CFUN: (0,1,4),(0-1)"]
        args = split_arguments(command.arg)
        fun = _int_in(args[0], (0, 1, 4), cme(50))
        reset = len(args) > 1 and _int_in(args[1], (0, 1), cme(50)) == 1
        if reset and self._write is not None:
            # TS 27.007 §8.2 <rst>=1: the MT resets before taking the new level; the
            # answer OK comes first, then the boot lines of the restarted modem.
            write = self._write
            self.loop.call_soon(self._reboot, write)
            return []
        was_registered = self.registered
        if fun == 1 and self.cfun != 1:
            self._start_search()
        self.cfun = fun
        self._registration_changed(was_registered)
        return []

    def _reboot(self, write: Callable[[bytes], None]) -> None:
        if self._write is write:
            self.detach()
            self.attach(write)

    def reboot(self, sim: Identity | None = None) -> None:
        """Restart behind the same port, as a USB stick does on a power dip: power-up settings,
        the PIN asked again, the dialect's start-up lines. `sim`: the SIM it comes back with
        (its IMSI, ICCID, number and operator; the modem keeps its IMEI)."""
        if self._write is None:
            raise RuntimeError(f"{self.identity.name} is unplugged; a modem without power cannot restart")
        if sim is not None:
            self._insert_sim(sim)
        self._reboot(self._write)

    def _insert_sim(self, sim: Identity) -> None:
        """Another SIM card: its identity, and the state a SIM holds (its SM storage, PIN and
        PUK counters, TP-MR, SMSC) starts fresh; the modem's own storage (ME, SR) stays."""
        self.identity = replace(sim, index=self.identity.index, imei=self.identity.imei)
        self.smsc = sim.operator.smsc
        self.last_mr = 0
        self.pin_attempts = PIN_ATTEMPTS
        self.puk_attempts = PUK_ATTEMPTS
        old = self.stores["SM"]
        self.stores["SM"] = MessageStore("SM", old.capacity, old.first_index)

    # PIN handling: TS 27.007 §8.3 (+CPIN), §8.65 (+CPINR); 3 PIN tries, then PUK.
    def _cmd_cpin(self, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CPIN: {'NOT READY' if self._sim_starting() else self.pin_state}"]
        if command.form == "test":
            return []
        if command.form != "set":
            raise errors.plain()
        args = [self._from_charset(a) for a in split_arguments(command.arg)]
        was_registered = self.registered
        if self.pin_state == "READY":
            raise cme(3)
        if self.pin_state == "SIM PIN":
            if args[0] != self.pin:
                self.pin_attempts -= 1
                if self.pin_attempts == 0:
                    self.pin_state = "SIM PUK"
                raise cme(16)
            self.pin_attempts = PIN_ATTEMPTS
        else:  # SIM PUK: AT+CPIN=<puk>,<new pin>
            if self.puk_attempts == 0:
                raise cme(13)  # a SIM whose PUK is used up is dead (TS 31.101)
            if len(args) < 2 or not args[1]:
                raise cme(50)
            if args[0] != self.puk:
                self.puk_attempts -= 1
                raise cme(16)
            self.pin = args[1]
            self.pin_attempts = PIN_ATTEMPTS
            self.puk_attempts = PUK_ATTEMPTS
        if self.profile.pin_ready_delay > 0:
            # The SIM still reads as locked for a while; +CPIN: READY comes as a URC.
            self._schedule(self.profile.pin_ready_delay, self._sim_unlocked)
            return []
        self.pin_state = "READY"
        self._start_search()
        self._registration_changed(was_registered)
        return []

    def _sim_unlocked(self) -> None:
        if not self.plugged or self.pin_state == "READY":
            return
        was_registered = self.registered
        self.pin_state = "READY"
        self._start_search()
        self.unsolicited(["+CPIN: READY"])
        self._registration_changed(was_registered)

    def _cmd_cpinr(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        pattern = split_arguments(command.arg)[0] if command.form == "set" else "*"
        regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
        rows = [
            ("SIM PIN", self.pin_attempts, PIN_ATTEMPTS),
            ("SIM PUK", self.puk_attempts, PUK_ATTEMPTS),
            ("SIM PIN2", PIN_ATTEMPTS, PIN_ATTEMPTS),
            ("SIM PUK2", PUK_ATTEMPTS, PUK_ATTEMPTS),
        ]
        return [f"+CPINR: {code},{left},{default}" for code, left, default in rows if regex.match(code)]

    def _cmd_huawei_cpin(self, command: Command) -> list[str]:
        # Huawei AT spec: ^CPIN: <code>,[<times>],<puk_times>,<pin_times>,<puk2_times>,<pin2_times>
        if command.form != "read":
            raise errors.plain()
        times = {"SIM PIN": str(self.pin_attempts), "SIM PUK": str(self.puk_attempts)}.get(self.pin_state, "")
        return [
            f"^CPIN: {self.pin_state},{times},{self.puk_attempts},{self.pin_attempts},{PUK_ATTEMPTS},{PIN_ATTEMPTS}"
        ]

    def _cmd_simcom_spic(self, command: Command) -> list[str]:
        # SIM800 manual: +SPIC: <chv1>,<chv2>,<puk1>,<puk2>
        if command.form != "action":
            raise errors.plain()
        return [f"+SPIC: {self.pin_attempts},{PIN_ATTEMPTS},{self.puk_attempts},{PUK_ATTEMPTS}"]

    def _cmd_quectel_qpinc(self, command: Command) -> list[str]:
        # Quectel EC2x manual: +QPINC: <facility>,<pincounter>,<pukcounter>
        rows = {"SC": (self.pin_attempts, self.puk_attempts), "P2": (PIN_ATTEMPTS, PUK_ATTEMPTS)}
        if command.form == "test":
            return ['+QPINC: ("SC","P2")']
        if command.form == "set":
            facility = split_arguments(command.arg)[0].upper()
            if facility not in rows:
                raise cme(50)
            chosen = [facility]
        elif command.form == "read":
            chosen = ["SC", "P2"]
        else:
            raise errors.plain()
        return [f'+QPINC: "{f}",{rows[f][0]},{rows[f][1]}' for f in chosen]

    def _sim_starting(self) -> bool:
        return self.loop.time() < self._sim_ready_at

    def _require_sim(self, *, sms: bool) -> None:
        if self._sim_starting():
            raise cms(314) if sms else cme(14)  # SIM busy (27.005 §3.2.5, 27.007 §9.2.1)
        if self.pin_state == "SIM PIN":
            raise cms(311) if sms else cme(11)
        if self.pin_state == "SIM PUK":
            raise cms(316) if sms else cme(12)

    def _cmd_cimi(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        self._require_sim(sms=False)
        return [self.identity.imsi]

    def _cmd_ccid(self, command: Command) -> list[str]:
        # The ICCID is readable without the PIN (EF_ICCID is "always" readable, TS 31.102 §4.1.1).
        if command.form == "test":
            return []
        return [f"{self.profile.ccid_prefix}{self.identity.iccid}"]

    def _cmd_huawei_iccid(self, command: Command) -> list[str]:
        if command.form != "read":
            raise errors.plain()
        return [f"^ICCID: {_swap_nibbles(self.identity.iccid)}"]

    def _cmd_cnum(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        self._require_sim(sms=False)
        return [f'+CNUM: "","{self._to_charset(self.number)}",145']

    def _cmd_csq(self, command: Command) -> list[str]:
        if command.form == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi = self.signal if self.registered else 99
        return [f"+CSQ: {rssi},99"]

    def _registration_stat(self) -> int:
        # TS 27.007 §7.2 <stat>: 0 not registered, not searching; 2 searching; registered:
        # registered_stat (1 home unless set otherwise).
        if self.registered:
            return self.registered_stat
        return 2 if self.searching else 0

    def set_registered_stat(self, stat: int, *, announce: bool) -> None:
        """Registered with `stat` from now on. `announce`: the modem sends +CREG:/+CEREG: URCs
        for it, as modems whose registration URCs are on (AT+CREG=1 saved in their profile)."""
        self.registered_stat = stat
        if announce and self.registered:
            self.unsolicited([f"+CREG: {stat}", f"+CEREG: {stat}"])

    def _cmd_creg(self, command: Command) -> list[str]:
        name = command.name
        attribute = "creg_n" if name == "+CREG" else "cgreg_n"
        if command.form == "test":
            return [f"{name}: (0-2)"]
        if command.form == "read":
            n = getattr(self, attribute)
            location = ',"1A2B","00C3D4E5"' if n == 2 and self.registered else ""
            return [f"{name}: {n},{self._registration_stat()}{location}"]
        setattr(self, attribute, _int_in(command.arg or "0", range(3), cme(50)))
        return []

    def _registration_changed(self, was_registered: bool) -> None:
        if self.registered == was_registered:
            return
        if self.creg_n:
            self.unsolicited([f"+CREG: {self._registration_stat()}"])
        if self.registered:
            self.network.modem_ready(self)

    def _cmd_cgatt(self, command: Command) -> list[str]:
        # TS 27.007 §10.1.9 PS attach: attached while registered (gammu's networkinfo asks).
        if command.form == "test":
            return ["+CGATT: (0,1)"]
        if command.form == "read":
            return [f"+CGATT: {1 if self.registered else 0}"]
        _int_in(command.arg or "", range(2), cme(50))
        return []

    def _cmd_cops(self, command: Command) -> list[str]:
        op = self.identity.operator
        names = [op.long_name, op.short_name, op.mcc_mnc]
        if command.form == "test":
            return [f'+COPS: (2,"{op.long_name}","{op.short_name}","{op.mcc_mnc}",2),,(0-4),(0-2)']
        if command.form == "read":
            if not self.registered:
                return ["+COPS: 0"]
            return [f'+COPS: 0,{self.cops_format},"{names[self.cops_format]}",2']
        args = split_arguments(command.arg)
        mode = _int_in(args[0] or "0", range(5), cme(50))
        if len(args) > 1 and args[1] != "":
            self.cops_format = _int_in(args[1], range(3), cme(50))
        if mode == 1 and len(args) > 2 and args[2] not in names:
            raise cme(30)
        return []

    def _cmd_cmgf(self, command: Command) -> list[str]:
        if command.form == "read":
            return [f"+CMGF: {self.cmgf}"]
        if command.form == "test":
            return ["+CMGF: (0)"]
        # Only PDU mode is simulated; text mode answers "operation not supported".
        if (command.arg or "0") != "0":
            raise cms(303)
        return []

    def _cmd_csca(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        self._require_sim(sms=True)
        if command.form == "read":
            toa = 145 if self.smsc.startswith("+") else 129
            return [f'+CSCA: "{self._to_charset(self.smsc)}",{toa}']
        number = self._from_charset(split_arguments(command.arg)[0])
        if not re.fullmatch(r"\+?[0-9]{3,20}", number):
            raise cms(304)
        self.smsc = number
        return []

    def _cmd_csms(self, command: Command) -> list[str]:
        if command.form == "test":
            return ["+CSMS: (0,1)"]
        if command.form == "read":
            return [f"+CSMS: {self.csms},1,1,1"]
        self.csms = _int_in(command.arg, (0, 1), cms(303))
        return ["+CSMS: 1,1,1"]

    def _cmd_csmp(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        if command.form == "read":
            return ["+CSMP: 17,167,0,0"]
        return []

    # Storage: TS 27.005 §3.2.2 (+CPMS): mem1 read/delete, mem2 write/send, mem3 receive.
    def _store_used(self, name: str) -> tuple[int, int]:
        store = self.stores[name]
        used = store.capacity if self.faults.storage_full else store.used
        return used, store.capacity

    def _cmd_cpms(self, command: Command) -> list[str]:
        readable = [n for n in ("SM", "ME", "SR") if n in self.stores]
        writable = [n for n in ("SM", "ME") if n in self.stores]
        if command.form == "test":
            quote = lambda names: "(" + ",".join(f'"{n}"' for n in names) + ")"  # noqa: E731
            return [f"+CPMS: {quote(readable)},{quote(writable)},{quote(writable)}"]
        self._require_sim(sms=True)
        if command.form == "read":
            parts = []
            for name in self.cpms:
                used, total = self._store_used(name)
                parts.append(f'"{name}",{used},{total}')
            return ["+CPMS: " + ",".join(parts)]
        args = [a.upper() for a in split_arguments(command.arg)]
        if not 1 <= len(args) <= 3 or args[0] not in readable or any(a not in writable for a in args[1:]):
            raise cms(302)
        self.cpms[: len(args)] = args
        counts = []
        for name in self.cpms:
            used, total = self._store_used(name)
            counts.append(f"{used},{total}")
        return ["+CPMS: " + ",".join(counts)]

    def _cmd_cnmi(self, command: Command) -> list[str]:
        if command.form == "test":
            return ["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"]
        if command.form == "read":
            return ["+CNMI: " + ",".join(str(v) for v in self.cnmi)]
        args = split_arguments(command.arg)
        limits = (range(4), range(4), range(4), range(3), range(2))
        values = list(self.cnmi)
        if len(args) > 5:
            raise cms(303)
        for position, text in enumerate(args):
            if text != "":
                values[position] = _int_in(text, limits[position], cms(303))
        old_mode = self.cnmi[0]
        self.cnmi = values
        if old_mode == 0 and values[0] != 0:
            # 27.005 §3.4.1 <bfr>: 0 flushes the TA's buffer to the TE, 1 clears it.
            buffered, self._ta_buffer = self._ta_buffer, []
            if values[4] == 0:
                self._deferred.extend(buffered)
        return []

    def _cmd_cnma(self, command: Command) -> list[str]:
        # 27.005 §3.4.4: only a routed +CMT/+CDS under +CSMS service 1 waits for this.
        if command.form == "test":
            return ["+CNMA: (0-2)"]
        reply = _int_in(split_arguments(command.arg)[0] or "0", range(3), cms(303)) if command.form == "set" else 0
        if self._awaiting_ack is None:
            raise cms(340)
        kind, pdu = self._awaiting_ack
        self._awaiting_ack = None
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        if reply == 2:
            # RP-ERROR: the SMSC keeps the message and tries again later.
            self.loop.call_soon(self.network.redeliver, self, kind, pdu)
        self.loop.call_soon(self._send_next_routed)
        return []

    # ---------------------------------------------------------- +CMGS / +CMGW
    async def _read_prompt(self) -> str | None:
        """Show `> ` and collect the PDU until Ctrl-Z (text) or ESC (None), 27.005 §3.5.1."""
        if self.faults.slow_prompt:
            await asyncio.sleep(self.faults.slow_prompt)
        # What the TE sent before the prompt was not for the editor; most modems drop it.
        self._pending = bytearray()
        self._emit(self.profile.prompt)
        self._prompt = bytearray()
        self._prompt_done = self.loop.create_future()
        try:
            return await self._prompt_done
        finally:
            self._prompt = None
            self._prompt_done = None

    def _check_pdu(self, text: str, length: int) -> str:
        pdu = re.sub(r"\s", "", text).upper()
        if not pdu or not re.fullmatch(r"([0-9A-F]{2})+", pdu):
            raise cms(304)
        if int(pdu[:2], 16) * 2 + 2 > len(pdu) or tpdu_length(pdu) != length:
            raise cms(304)
        return pdu

    async def _cmd_cmgs(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        if command.form != "set":
            raise errors.plain()
        self._require_sim(sms=True)
        length = _int_in(split_arguments(command.arg)[0], range(7, 165), cms(304))
        text = await self._read_prompt()
        if text is None:
            return []
        pdu = self._check_pdu(text, length)
        sms = self.network.decode_submit(pdu)
        if sms is None:
            raise cms(304)
        if not self.registered:
            raise cms(331)
        delay = self.latency.draw(self.rng) + self.faults.take_late_cmgs()
        if delay:
            await asyncio.sleep(delay)
        chance = self.faults.cms_chance
        if chance is not None and chance.fire(self.rng):
            raise cms(self.rng.choice(self.faults.cms_codes))
        self.last_mr = (self.last_mr + 1) % 256
        mr = self.last_mr
        self.network.submit(self, pdu, sms, mr)
        if self.profile.cmgs_scts:
            scts = self.network.clock()
            quarters = int((scts.utcoffset() or timedelta()).total_seconds() // 900)
            return [f'+CMGS: {mr},"{scts:%y/%m/%d,%H:%M:%S}{quarters:+03d}"']
        return [f"+CMGS: {mr}"]

    async def _cmd_cmgw(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        if command.form != "set":
            raise errors.plain()
        self._require_sim(sms=True)
        args = split_arguments(command.arg)
        length = _int_in(args[0], range(7, 165), cms(304))
        stat = _int_in(args[1], range(4), cms(304)) if len(args) > 1 and args[1] else STO_UNSENT
        text = await self._read_prompt()
        if text is None:
            return []
        pdu = self._check_pdu(text, length)
        store = self.stores[self.cpms[1]]
        index = None if self.faults.storage_full else store.store(pdu, stat)
        if index is None:
            raise cms(322)
        return [f"+CMGW: {index}"]

    # --------------------------------------------------------- read/list/del
    def _list_alpha(self) -> str:
        return self.profile.list_alpha

    def _stat(self, stat: int) -> str:
        if self.profile.stat_words:
            return '"' + ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")[stat] + '"'
        return str(stat)

    def _cmd_cmgl(self, command: Command) -> list[str]:
        if command.form == "test":
            return ["+CMGL: (0-4)"]
        self._require_sim(sms=True)
        if command.form == "action":
            stat = REC_UNREAD  # 27.005 §3.4.2: the default <stat> is "received unread"
        else:
            stat = _int_in(command.arg.strip() or "0", range(5), cms(304))  # PDU mode takes numbers only
        lines: list[str] = []
        for message in self.stores[self.cpms[0]].list(stat):
            lines.append(f"+CMGL: {message.index},{self._stat(message.stat)},{self._list_alpha()},{message.length}")
            lines.append(message.pdu)
        return lines

    def _cmd_cmgr(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        if command.form != "set":
            raise errors.plain()
        self._require_sim(sms=True)
        store = self.stores[self.cpms[0]]
        index = _int_in(command.arg.strip(), range(1000), cms(321))
        if not store.valid_index(index):
            raise cms(321)
        message = store.read(index)
        if message is None:
            return []  # an empty slot reads as nothing, then OK (SIM800, EC25 do so)
        return [f"+CMGR: {self._stat(message.stat)},{self._list_alpha()},{message.length}", message.pdu]

    def _cmd_cmgd(self, command: Command) -> list[str]:
        store = self.stores[self.cpms[0]]
        if command.form == "test":
            indices = ",".join(str(i) for i in sorted(store.messages))
            return [f"+CMGD: ({indices}),(0-4)"]
        if command.form != "set":
            raise errors.plain()
        self._require_sim(sms=True)
        args = split_arguments(command.arg)
        delflag = _int_in(args[1], range(5), cms(304)) if len(args) > 1 and args[1] else 0
        index = _int_in(args[0] or str(store.first_index), range(1000), cms(321))
        if delflag == 0 and not store.valid_index(index):
            raise cms(321)
        store.delete(index, delflag)
        self.loop.call_soon(self.network.modem_ready, self)  # room again for waiting messages
        return []

    # ------------------------------------------------------------ incoming calls
    def ring(self, caller: str, record: dict, interval: float) -> None:
        """A call comes in: it rings now and every `interval` seconds until the TE hangs up
        (ATH, AT+CHUP) or the network ends it (`end_call`)."""
        self.call = Call(caller, interval, record)
        self._ring_once()

    def _ring_once(self) -> None:
        call = self.call
        if call is None or not self.plugged:
            return
        call.record["rings"] += 1
        lines = []
        # TS 27.007 §6.11: with +CRC=1 the ring is "+CRING: <type>"; §7.6: +CLIP=1 adds the caller.
        ring = "+CRING: VOICE" if self.crc else self.profile.ring_urc
        if ring:
            lines.append(ring)
        if self.clip:
            if call.caller:
                toa = 145 if call.caller.startswith("+") else 129
                lines.append(f'+CLIP: "{self._to_charset(call.caller)}",{toa},"",,"",0')
            else:
                lines.append('+CLIP: "",128,"",,"",1')  # CLI validity 1: withheld by the caller
        if lines:
            self.unsolicited(lines)
        call.timer = self.loop.call_later(call.interval, self._ring_once)

    def end_call(self, outcome: str) -> None:
        """The call stops ringing: hung up here, given up by the caller, or the modem is gone."""
        call, self.call = self.call, None
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        self.network.call_ended(self, call.record, outcome)

    def _cmd_hang_up(self, command: Command) -> list[str]:
        # V.250 §6.3.6 (H) and TS 27.007 §6.5 (+CHUP); both answer OK without a call too.
        if command.form == "test" and command.name == "+CHUP":
            return []
        self.end_call("hung up")
        return []

    # ------------------------------------------------------------ USSD, misc
    def _cmd_cusd(self, command: Command) -> list[str]:
        # TS 27.007 §7.15: OK at once, the network's answer comes later as +CUSD.
        if command.form == "test":
            return ["+CUSD: (0-2)"]
        if command.form == "read":
            return ["+CUSD: 1"]
        args = split_arguments(command.arg)
        n = _int_in(args[0] or "0", range(3), cme(50))
        if n == 2 or len(args) < 2:
            return []
        if not self.registered:
            raise cme(30)
        status, reply, dcs = self.network.ussd_reply(self, self._from_charset(args[1]))
        if reply is None:
            line = f"+CUSD: {status}"
        elif dcs == USSD_DCS_UCS2:
            # TS 27.007 §7.15: UCS2 data comes as the hex of its octets, whatever +CSCS says.
            line = f'+CUSD: {status},"{reply.encode("utf-16-be").hex().upper()}",{dcs}'
        else:
            line = f'+CUSD: {status},"{self._to_charset(reply)}",{dcs}'
        self.loop.call_later(0.05, self.unsolicited, [line])
        return []

    def _cmd_flag(self, attribute: str, name: str, read_format: str) -> Callable[[Command], list[str]]:
        def handler(command: Command) -> list[str]:
            if command.form == "test":
                return [f"{name}: (0,1)"]
            if command.form == "read":
                return [f"{name}: " + read_format.format(getattr(self, attribute))]
            setattr(self, attribute, _int_in(command.arg or "0", (0, 1), cme(50)))
            return []

        return handler

    def _cmd_cvhu(self, command: Command) -> list[str]:
        if command.form == "test":
            return ["+CVHU: (0-2)"]
        if command.form == "read":
            return ["+CVHU: 0"]
        _int_in(command.arg or "0", range(3), cme(50))
        return []

    # TS 27.007 §5.5: string parameters and answers are in the +CSCS character set; under
    # "UCS2" each character is four hex digits ("1234" is "0031003200330034").
    def _to_charset(self, text: str) -> str:
        return text.encode("utf-16-be").hex().upper() if self.cscs == "UCS2" else text

    def _from_charset(self, text: str) -> str:
        if self.cscs != "UCS2":
            return text
        try:
            return bytes.fromhex(text).decode("utf-16-be")
        except ValueError:
            return "\ufffd"  # not UCS2 hex: matches no PIN or number, as on the modem

    def _cmd_cscs(self, command: Command) -> list[str]:
        charsets = self.profile.charsets
        if command.form == "test":
            return ["+CSCS: (" + ",".join(f'"{c}"' for c in charsets) + ")"]
        if command.form == "read":
            return [f'+CSCS: "{self.cscs}"']
        charset = split_arguments(command.arg)[0].upper()
        if charset not in charsets:
            raise cme(4)
        self.cscs = charset
        return []

    def _cmd_clac(self, command: Command) -> list[str]:
        if command.form == "test":
            return []
        if command.form != "action":
            raise errors.plain()
        return ["AT" + name for name in sorted(self._handlers)]

    def _cmd_huawei_curc(self, command: Command) -> list[str]:
        if command.form == "read":
            return [f"^CURC: {int(self.curc)}"]
        if command.form == "test":
            return ["^CURC: (0-1)"]
        self.curc = _int_in(command.arg or "0", (0, 1), cme(50)) == 1
        return []

    def _cmd_huawei_sysinfo(self, command: Command) -> list[str]:
        # ^SYSINFO: <srv_status>,<srv_domain>,<roam_status>,<sys_mode>,<sim_state>
        if command.form != "action":
            raise errors.plain()
        service = 2 if self.registered else 0
        sim = 1 if self.pin_state == "READY" else 255
        return [f"^SYSINFO: {service},{3 if service else 0},0,5,{sim},,4"]

    # ------------------------------------------------ messages from the network
    def deliver(self, pdu: str, message_class: int | None) -> bool:
        """An SMS-DELIVER arrives; False when it cannot be taken now (the network retries)."""
        if not self.registered:
            return False
        mt = self.cnmi[1]
        routed = (mt == 2 and message_class != 2) or (mt == 3 and message_class == 3)
        if routed:
            self._route("deliver", pdu)
            return True
        store_name = self.cpms[2]
        store = self.stores[store_name]
        index = None if self.faults.storage_full else store.store(pdu, REC_UNREAD)
        if index is None:
            if self.profile.memory_full_urc:
                self.unsolicited([self.profile.memory_full_urc])
            return False
        if mt in (1, 2, 3):
            self._cnmi_unsolicited([f'+CMTI: "{store_name}",{index}'])
        return True

    def deliver_report(self, pdu: str) -> bool:
        """An SMS-STATUS-REPORT arrives, routed per +CNMI <ds> (27.005 §3.4.1)."""
        if not self.registered:
            return False
        ds = self.cnmi[3]
        if ds == 1:
            self._route("report", pdu)
        elif ds == 2:
            name = "SR" if "SR" in self.stores else self.cpms[2]
            index = None if self.faults.storage_full else self.stores[name].store(pdu, REC_UNREAD)
            if index is None:
                return False
            self._cnmi_unsolicited([f'+CDSI: "{name}",{index}'])
        # <ds> 0: "no SMS-STATUS-REPORTs are routed to the TE"; the report is dropped.
        return True

    def _route(self, kind: str, pdu: str) -> None:
        """+CMT/+CDS straight to the TE; with +CSMS 1 one at a time, each acknowledged by +CNMA."""
        if self.csms == 1 and (self._awaiting_ack is not None or self._ack_queue):
            self._ack_queue.append((kind, pdu))
            return
        self._send_routed(kind, pdu)

    def _send_routed(self, kind: str, pdu: str) -> None:
        # 27.005 §3.4.1: +CMT: [<alpha>],<length><CR><LF><pdu> and +CDS: <length><CR><LF><pdu>
        header = f"+CMT: ,{tpdu_length(pdu)}" if kind == "deliver" else f"+CDS: {tpdu_length(pdu)}"
        self._cnmi_unsolicited([header, pdu])
        if self.csms == 1:
            self._awaiting_ack = (kind, pdu)
            self._ack_timer = self.loop.call_later(self.ack_timeout, self._ack_timed_out)

    def _send_next_routed(self) -> None:
        if self._awaiting_ack is None and self._ack_queue and self.plugged:
            kind, pdu = self._ack_queue.pop(0)
            self._send_routed(kind, pdu)

    def _ack_timed_out(self) -> None:
        # 27.005 §3.4.4: no +CNMA in time -> the ME sets <mt> and <ds> to 0 and the
        # network keeps the message; it comes again and is then stored without a URC.
        log.warning("%s: +CMT/+CDS not acknowledged with +CNMA; routing switched off", self.identity.name)
        self.cnmi[1] = 0
        self.cnmi[3] = 0
        self._return_unacknowledged()

    def _return_unacknowledged(self) -> None:
        unacked = ([self._awaiting_ack] if self._awaiting_ack else []) + self._ack_queue
        self._awaiting_ack = None
        self._ack_queue = []
        for kind, pdu in unacked:
            self.network.redeliver(self, kind, pdu)


def _flag(arg: str) -> bool:
    if arg not in ("", "0", "1"):
        raise errors.plain()
    return arg == "1"


def _int_in(text: str, allowed, error: AtError) -> int:
    try:
        value = int(text.strip())
    except (ValueError, AttributeError):
        raise error from None
    if value not in allowed:
        raise error
    return value


def _swap_nibbles(digits: str) -> str:
    padded = digits if len(digits) % 2 == 0 else digits + "F"
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))
