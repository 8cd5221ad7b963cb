"""The simulated GSM network: modems on ptys, SMS between them, reports, a sink.

`SimNetwork` runs its own asyncio loop in a background thread, so a test (or
`gsmgw run --simulate N`) can use it in-process; `gsmgw simulate` runs it in a
process of its own with a control socket (`gsmgw.sim.control`).

What the network does with a submitted SMS-SUBMIT (TS 23.040 §9.2.2.2):
- records it (`submissions`, and one JSON line in DIR/network.jsonl);
- to the number of a simulated SIM: delivers it as SMS-DELIVER, routed by that
  modem's +CNMI (stored + +CMTI, or +CMT);  the parts of a concatenated message
  are delivered once all of them have arrived (the SMSC here joins and re-splits
  them with the same reference);
- to any other number: the sink (recorded only);
- when TP-SRR asked for it: an SMS-STATUS-REPORT (TS 23.040 §9.2.2.3) with the
  TP-MR that +CMGS answered, status 0x00 by default, or the statuses set with
  `set_report_outcome` (e.g. [0x20, 0x00]: pending, then delivered; [0x41]: failed,
  and then the message is not delivered).
A modem that cannot take a message now (unplugged, PIN not entered, storage
full, +CNMA missing) gets it later, as an SMSC retries.

Thread safety: the public methods may be called from any thread; they run on
the loop and wait for it (with a timeout).  Methods starting with `_op_` run on
the loop itself (the control server uses them).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from gsmgw.sim.faults import FaultError
from gsmgw.sim.identity import identity_for
from gsmgw.sim.modem import DEFAULT_ACK_TIMEOUT, USSD_DCS_GSM7, USSD_DCS_UCS2, Latency, SimModem
from gsmgw.sim.profiles import get_profile
from gsmgw.sim.pty import PtyPort
from gsmgw.sms import national
from gsmgw.sms import udh as udh_rules
from gsmgw.sms import (
    AddressError,
    DecodeError,
    Sms,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    join_parts,
    normalize_number,
)

log = logging.getLogger(__name__)

NETWORK_COUNTRY = "49"  # national numbers (TOA 0x81) are read as German ones
CALL_TIMEOUT = 10.0
# What the network answers to USSD codes: code -> (status, text, dcs) of +CUSD (TS 27.007 §7.15).
USSD_REPLIES = {"*100#": (0, "Guthaben: 12,34 EUR", USSD_DCS_GSM7), "#100#": (0, "Balance: 12.34 EUR", USSD_DCS_GSM7)}
# An incoming call rings every RING_INTERVAL seconds (real networks: 3-6 s) until it is hung up,
# or until the caller gives up after RING_TIMEOUT.
RING_INTERVAL = 3.0
RING_TIMEOUT = 30.0


@dataclass(frozen=True)
class ModemInfo:
    """What a client needs to know about a simulated modem; safe to read from any thread."""

    index: int
    name: str
    path: str
    number: str
    imsi: str
    imei: str
    iccid: str
    operator: str
    profile: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


class SimError(Exception):
    """A request to the simulator that cannot be done; the message says why and what to send."""


class SimNetwork:
    def __init__(
        self,
        directory: str | os.PathLike,
        modems: int = 2,
        profile: str | list[str] = "generic",
        latency: "float | str | Latency" = 0.0,
        *,
        pin: str | None = None,
        seed: int = 0,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        register_delay: float = 0.0,
        report_delay: float = 0.0,
        delivery_interval: float = 0.1,
        outside_reports: bool = True,
        control_socket: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        if modems < 1:
            raise ValueError("a simulated network needs at least 1 modem")
        self.directory = Path(directory)
        profiles = [profile] * modems if isinstance(profile, str) else list(profile)
        if len(profiles) != modems:
            raise ValueError(f"{len(profiles)} profiles given for {modems} modems; give one, or one per modem")
        self._profiles = [get_profile(p) for p in profiles]
        self._latency = Latency.parse(latency)
        self._pin = pin
        self._seed = seed
        self._ack_timeout = ack_timeout
        self._register_delay = register_delay
        self.report_delay = report_delay
        self.delivery_interval = delivery_interval
        self._offer_timers: dict[int, asyncio.TimerHandle] = {}
        self.outside_reports = outside_reports
        self._want_control = control_socket
        self._clock = clock
        self._count = modems
        self.modems: list[ModemInfo] = []
        self._sims: list[SimModem] = []
        self._ports: list[PtyPort | None] = []
        self._by_number: dict[str, int] = {}
        self._pending: dict[int, collections.deque] = {}
        self._concat: dict[tuple, dict[int, Sms]] = {}
        self._concat_reports: dict[tuple, list] = {}
        # (recipient, part seq or None for every part) -> (TP-ST values, interval)
        self._outcomes: dict[tuple[str, int | None], tuple[list[int], float]] = {}
        self._submissions: list[dict] = []
        self._reports: list[dict] = []
        self._calls: list[dict] = []
        self._ussd_log: list[dict] = []
        self._ussd: dict[tuple[int | None, str], tuple[int, str | None, int]] = dict(
            ((None, code), reply) for code, reply in USSD_REPLIES.items()
        )
        self._submitted = threading.Condition()
        self._submitted_async: asyncio.Event | None = None
        self._log_file: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._control: Any = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------- life cycle
    def __enter__(self) -> "SimNetwork":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = CALL_TIMEOUT) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="gsmgw-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SimError(f"the simulator did not start within {timeout} s")
        if self._start_error is not None:
            self._thread.join(timeout)
            raise SimError(f"the simulator could not start: {self._start_error}") from self._start_error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as error:  # reported to start() in the caller's thread
            self._start_error = error
            self._teardown()
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._teardown()
            # Commands still waiting (a latency, a prompt) and control connections end here,
            # inside the loop, so nothing is left half-run when the thread goes.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _setup(self) -> None:
        loop = asyncio.get_running_loop()
        self._submitted_async = asyncio.Event()
        # A new network starts a new log, so that it holds exactly what this run was sent.
        self._log_file = open(self.directory / "network.jsonl", "w", encoding="utf-8")
        for index in range(self._count):
            identity = identity_for(index)
            profile = self._profiles[index]
            modem = SimModem(
                identity,
                profile,
                self,
                loop,
                pin=self._pin,
                latency=self._latency,
                seed=self._seed,
                ack_timeout=self._ack_timeout,
                register_delay=self._register_delay,
            )
            self._sims.append(modem)
            self._ports.append(None)
            self._pending[index] = collections.deque()
            self._by_number[identity.number] = index
            path = str(self.directory / identity.name)
            self.modems.append(
                ModemInfo(
                    index=index,
                    name=identity.name,
                    path=path,
                    number=identity.number,
                    imsi=identity.imsi,
                    imei=identity.imei,
                    iccid=identity.iccid,
                    operator=identity.operator.long_name,
                    profile=profile.name,
                )
            )
            self._op_replug(index)
        if self._want_control:
            from gsmgw.sim.control import ControlServer

            self._control = ControlServer(self, str(self.directory / "control.sock"))
            await self._control.start()

    def _teardown(self) -> None:
        if self._control is not None:
            self._control.close()
        for index in range(len(self._ports)):
            self._op_unplug(index)
        if self._log_file is not None:
            self._log_file.close()

    def stop(self, timeout: float = CALL_TIMEOUT) -> None:
        """Unplug everything, remove the symlinks and the control socket, end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise SimError(f"the simulator thread did not stop within {timeout} s")

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """Run `function(*args, **kwargs)` on the simulator's loop and return its result.

        For tests that need to look at or change a modem's state directly,
        e.g. ``net.call(lambda: net.modem(0).pin_attempts)``.
        """
        return self._call(function, *args, timeout=timeout, **kwargs)

    def _call(self, function: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            raise SimError("the simulator is not running; use it inside `with SimNetwork(...)`")
        if threading.current_thread() is self._thread:
            return function(*args, **kwargs)

        async def run() -> Any:
            return function(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    # ------------------------------------------------------------- public API
    def modem(self, index: int) -> SimModem:
        """The live modem object (touch it only on the simulator's loop)."""
        return self._sims[self._check_index(index)]

    def clock(self) -> datetime:
        """The network's time (SCTS of what it delivers and acknowledges)."""
        return self._clock()

    def inject_sms(
        self,
        index: int,
        sender: str,
        text: str | None = None,
        *,
        data: bytes | None = None,
        pdu: str | None = None,
        flash: bool = False,
        ref: int | None = None,
        ref16: bool = False,
        ports: tuple[int, int] | None = None,
        alphabet: str | None = None,
        check: bool = True,
    ) -> list[str]:
        """An outside number (or alphanumeric sender) sends to modem `index`; returns the PDUs.

        `text` may need several parts (they are concatenated, `ref` as given or
        derived); `data` sends 8-bit data; `pdu` delivers that exact SMS-DELIVER
        PDU (hex with SMSC field) instead. `check=False` lets a `pdu` through that
        does not decode: a truncated or garbled one, as broken firmwares store them.
        """
        return self._call(
            self._op_inject_sms, index, sender, text, data=data, pdu=pdu, flash=flash, ref=ref,
            ref16=ref16, ports=ports, alphabet=alphabet, check=check,
        )

    def set_fault(self, index: int, kind: str, **params: Any) -> None:
        self._call(self._op_set_fault, index, kind, params)

    def clear_fault(self, index: int, kind: str = "all") -> None:
        self._call(self._op_clear_fault, index, kind)

    def unplug(self, index: int) -> None:
        self._call(self._op_unplug, self._check_index(index))

    def replug(self, index: int) -> None:
        self._call(self._op_replug, self._check_index(index))

    def reboot(self, index: int, sim: int | None = None) -> None:
        """The modem restarts behind its port (same as set_fault(index, "reboot", sim=...))."""
        self._call(self._op_set_fault, index, "reboot", {} if sim is None else {"sim": sim})

    def set_report_outcome(
        self, number: str, statuses: list[int], interval: float = 0.5, *, part: int | None = None
    ) -> None:
        """Status reports for messages to `number`: one per status, `interval` s apart.

        The last status decides delivery: below 0x40 the message is delivered
        (0x00-0x1F final, 0x20-0x3F still trying), from 0x40 on it is not.
        `part`: only for that part (concat seq, from 1) of multipart messages; it
        takes precedence over the number's outcome for every part.
        """
        self._call(self._op_set_report_outcome, number, statuses, interval, part)

    def set_latency(self, index: int, latency: "float | str") -> None:
        self._call(self._op_set_latency, index, latency)

    def set_signal(self, index: int, rssi: int) -> None:
        self._call(self._op_set_signal, index, rssi)

    def set_registration(self, index: int, stat: int, *, announce: bool = True) -> None:
        """The <stat> the modem reports while registered (TS 27.007 §7.2): 1 home, 5 roaming,
        6/7 SMS only, 9/10 CSFB not preferred (LTE modems). `announce`: it also sends
        `+CREG: <stat>` and `+CEREG: <stat>` URCs, as a modem with registration URCs on."""
        self._call(self._op_set_registration, index, stat, announce)

    def set_pin_attempts(self, index: int, pin: int | None = None, puk: int | None = None) -> None:
        """Set the SIM's PIN/PUK tries left (e.g. 1, to check that a client does not burn the last one)."""
        self._call(self._op_set_pin_attempts, index, pin, puk)

    def stored_messages(self, index: int, storage: str = "SM") -> list[dict]:
        return self._call(self._op_stored_messages, index, storage)

    def ring(self, index: int, caller: str, *, interval: float = RING_INTERVAL, timeout: float = RING_TIMEOUT) -> dict:
        """Call modem `index` from `caller` ("+49...", or "" for a withheld number). It rings every
        `interval` s until the TE hangs up or the caller gives up after `timeout` s. Returns the
        call's record (see `calls`)."""
        return self._call(self._op_ring, index, caller, interval, timeout)

    @property
    def ussd_requests(self) -> list[dict]:
        """Every USSD request the network answered: {"modem", "code", "time", "after_submissions"}."""
        with self._submitted:
            return [dict(entry) for entry in self._ussd_log]

    @property
    def calls(self) -> list[dict]:
        """Every call so far: {"id", "modem", "caller", "started", "rings", "ended", "outcome"}; outcome
        is "ringing", "hung up" (by the modem's TE), "caller gave up" or "modem unplugged"."""
        with self._submitted:
            return [dict(call) for call in self._calls]

    def wait_for_call(self, call_id: int, timeout: float = 10.0) -> dict:
        """The record of call `call_id` once it stopped ringing; TimeoutError otherwise."""
        with self._submitted:
            call = next((c for c in self._calls if c["id"] == call_id), None)
            if call is None:
                raise SimError(f"no call {call_id!r}; calls so far: {[c['id'] for c in self._calls]}")
            if not self._submitted.wait_for(lambda: call["outcome"] != "ringing", timeout):
                raise TimeoutError(f"call {call_id} is still ringing after {timeout} s ({call['rings']} rings)")
            return dict(call)

    async def async_wait_for_call(self, call_id: int, timeout: float) -> dict:
        """The same, on the simulator's loop (control socket)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            call = next((c for c in self._calls if c["id"] == call_id), None)
            if call is None:
                raise SimError(f"no call {call_id!r}")
            if call["outcome"] != "ringing":
                return dict(call)
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(f"call {call_id} is still ringing after {timeout} s ({call['rings']} rings)")
            await asyncio.sleep(0.05)

    def set_ussd_reply(self, code: str, text: str | None, *, dcs: int = USSD_DCS_GSM7, status: int = 0,
                       modem: int | None = None) -> None:
        """What the network answers to USSD `code` (on `modem` only, or on every modem): +CUSD
        <m> `status`, `text` in `dcs` (15 GSM 7-bit, 72 UCS2, TS 23.038 §5); text None answers
        `+CUSD: <status>` alone (e.g. 4: operation not supported)."""
        self._call(self._op_set_ussd_reply, code, text, dcs, status, modem)

    @property
    def submissions(self) -> list[dict]:
        with self._submitted:
            return [dict(s) for s in self._submissions]

    @property
    def reports(self) -> list[dict]:
        with self._submitted:
            return [dict(r) for r in self._reports]

    def wait_for_submissions(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Block until `count` messages (parts) were submitted in all; raises TimeoutError."""
        with self._submitted:
            if not self._submitted.wait_for(lambda: len(self._submissions) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._submissions)} of {count} expected submissions arrived within {timeout} s"
                )
            return [dict(s) for s in self._submissions]

    async def async_wait_for_submissions(self, count: int, timeout: float) -> list[dict]:
        """The same, on the simulator's loop (control socket)."""
        assert self._submitted_async is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self._submissions) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(self._submissions)} of {count} expected submissions arrived within {timeout} s"
                )
            self._submitted_async.clear()
            try:
                await asyncio.wait_for(self._submitted_async.wait(), remaining)
            except asyncio.TimeoutError:
                continue
        return self.submissions

    # --------------------------------------------------------- loop-side ops
    def _check_index(self, index: Any) -> int:
        if not isinstance(index, int) or not 0 <= index < self._count:
            raise SimError(f"no modem {index!r}; this network has modems 0 to {self._count - 1}")
        return index

    def _op_unplug(self, index: int) -> None:
        port = self._ports[index]
        if port is None:
            return
        self._sims[index].detach()
        port.close()
        self._ports[index] = None
        log.info("modem%d unplugged", index)

    def _op_replug(self, index: int) -> None:
        if self._ports[index] is not None:
            self._op_unplug(index)
        assert self._loop is not None
        modem = self._sims[index]
        port = PtyPort(self.modems[index].path, self._loop, modem.feed)
        self._ports[index] = port
        modem.attach(port.write)
        log.info("modem%d plugged in at %s -> %s", index, port.link, port.device)

    def _op_reboot(self, index: int, params: dict) -> None:
        sim = params.pop("sim", None)
        if params:
            raise SimError(f"fault 'reboot' does not take {', '.join(sorted(params))}; it takes sim=N")
        modem = self._sims[index]
        if not modem.plugged:
            raise SimError(f"modem {index} is unplugged; replug it (a modem without power cannot restart)")
        if sim is None:
            modem.reboot()
            log.info("modem%d restarted", index)
            return
        if not isinstance(sim, int) or not 0 <= sim < 1000:
            raise SimError("reboot: sim is the number of a SIM in the identity table, 0-999")
        card = identity_for(sim)
        holder = self._by_number.get(card.number)
        if holder is not None and holder != index:
            raise SimError(f"SIM {sim} ({card.number}) is in modem {holder}; choose a SIM no other modem holds")
        del self._by_number[modem.number]
        modem.reboot(card)
        self._by_number[modem.number] = index
        self.modems[index] = replace(
            self.modems[index], number=modem.number, imsi=modem.identity.imsi, iccid=modem.identity.iccid,
            operator=modem.identity.operator.long_name,
        )
        log.info("modem%d restarted with SIM %d (%s)", index, sim, modem.number)

    def _op_set_fault(self, index: int, kind: str, params: dict) -> None:
        index = self._check_index(index)
        if kind == "unplug":
            self._op_unplug(index)
        elif kind == "replug":
            self._op_replug(index)
        elif kind == "reboot":
            self._op_reboot(index, dict(params))
        else:
            assert self._loop is not None
            try:
                self._sims[index].faults.set(kind, params, self._loop.time())
            except FaultError as error:
                raise SimError(str(error)) from None
            if kind == "noise" and self._sims[index].plugged and not self._sims[index].busy:
                # Noise also comes by itself, not only before answers.
                self._sims[index].unsolicited_raw(self._sims[index].faults.noise_data)
            if kind == "storage_full" and not params.get("on", True):
                self.modem_ready(self._sims[index])

    def _op_clear_fault(self, index: int, kind: str) -> None:
        index = self._check_index(index)
        try:
            self._sims[index].faults.clear(kind)
        except FaultError as error:
            raise SimError(str(error)) from None
        self.modem_ready(self._sims[index])

    def _op_set_report_outcome(
        self, number: str, statuses: list[int], interval: float, part: int | None = None
    ) -> None:
        if not statuses or not all(isinstance(s, int) and 0 <= s <= 255 for s in statuses):
            raise SimError("statuses must be a non-empty list of TP-ST values 0-255, e.g. [32, 0]")
        if part is not None and (not isinstance(part, int) or not 1 <= part <= 255):
            raise SimError("part is the number of a part of a multipart message, 1-255")
        self._outcomes[(self._normalize(number), part)] = (list(statuses), float(interval))

    def _op_set_latency(self, index: int, latency: "float | str") -> None:
        try:
            self._sims[self._check_index(index)].latency = Latency.parse(latency)
        except ValueError as error:
            raise SimError(str(error)) from None

    def _op_ring(self, index: int, caller: str, interval: float, timeout: float) -> dict:
        modem = self._sims[self._check_index(index)]
        if caller and not caller.lstrip("+").isdigit():
            raise SimError(f"caller {caller!r} is not a number; give +49... or \"\" for a withheld number")
        if not (0 < interval <= 60 and 0 < timeout <= 600):
            raise SimError("interval must be 0-60 s and timeout 0-600 s")
        if not modem.registered:
            raise SimError(f"modem {index} is not registered (unplugged, no PIN, or searching): nobody can call it")
        if modem.call is not None:
            raise SimError(f"modem {index} is ringing already (call {modem.call.record['id']}); one call at a time")
        record = {"id": len(self._calls) + 1, "modem": index, "caller": caller, "started": self._clock().isoformat(),
                  "rings": 0, "ended": None, "outcome": "ringing"}
        with self._submitted:
            self._calls.append(record)
        modem.ring(caller, record, interval)
        assert self._loop is not None
        self._loop.call_later(timeout, self._give_up, modem, record)
        return dict(record)

    def _give_up(self, modem: SimModem, record: dict) -> None:
        if modem.call is not None and modem.call.record is record:
            modem.end_call("caller gave up")

    def call_ended(self, modem: SimModem, record: dict, outcome: str) -> None:
        with self._submitted:
            record["ended"] = self._clock().isoformat()
            record["outcome"] = outcome
            self._submitted.notify_all()
        log.info("call %d to modem%d from %s: %s after %d ring(s)", record["id"], modem.index,
                 record["caller"] or "a withheld number", outcome, record["rings"])

    def _op_set_ussd_reply(self, code: str, text: str | None, dcs: int, status: int, modem: int | None) -> None:
        if modem is not None:
            self._check_index(modem)
        if dcs not in (USSD_DCS_GSM7, USSD_DCS_UCS2):
            raise SimError(f"dcs {dcs} is not one the simulator speaks; use 15 (GSM 7-bit) or 72 (UCS2)")
        if not isinstance(status, int) or not 0 <= status <= 5:
            raise SimError("status is +CUSD's <m>: 0 done, 1 more expected, 2 ended, 4 not supported, 5 timed out")
        self._ussd[(modem, code)] = (status, text, dcs)

    def _op_set_signal(self, index: int, rssi: int) -> None:
        if not isinstance(rssi, int) or not (0 <= rssi <= 31 or rssi == 99):
            raise SimError("rssi must be 0-31 (or 99 for unknown), as +CSQ reports it")
        self._sims[self._check_index(index)].signal = rssi

    def _op_set_registration(self, index: int, stat: int, announce: bool) -> None:
        if stat not in (1, 5, 6, 7, 9, 10):
            raise SimError("stat must be a registered <stat> of TS 27.007 §7.2: 1, 5, 6, 7, 9 or 10")
        self._sims[self._check_index(index)].set_registered_stat(stat, announce=bool(announce))

    def _op_set_pin_attempts(self, index: int, pin: int | None, puk: int | None) -> None:
        modem = self._sims[self._check_index(index)]
        for name, value, limit in (("pin_attempts", pin, 3), ("puk_attempts", puk, 10)):
            if value is None:
                continue
            if not isinstance(value, int) or not 0 <= value <= limit:
                raise SimError(f"{name} must be 0 to {limit}")
            setattr(modem, name, value)
        if modem.pin_attempts == 0 and modem.pin_state == "SIM PIN":
            modem.pin_state = "SIM PUK"

    def _op_stored_messages(self, index: int, storage: str) -> list[dict]:
        stores = self._sims[self._check_index(index)].stores
        if storage not in stores:
            raise SimError(f"no storage {storage!r}; choose one of {', '.join(stores)}")
        return [
            {"index": m.index, "stat": m.stat, "length": m.length, "pdu": m.pdu}
            for _, m in sorted(stores[storage].messages.items())
        ]

    def _op_inject_sms(
        self,
        index: int,
        sender: str,
        text: str | None,
        *,
        data: bytes | None = None,
        pdu: str | None = None,
        flash: bool = False,
        ref: int | None = None,
        ref16: bool = False,
        ports: tuple[int, int] | None = None,
        alphabet: str | None = None,
        check: bool = True,
    ) -> list[str]:
        index = self._check_index(index)
        modem = self._sims[index]
        if pdu is not None:
            if text is not None or data is not None:
                raise SimError("give either pdu, or text/data, not both")
            if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", pdu) or int(pdu[:2], 16) * 2 + 2 > len(pdu):
                raise SimError("the injected PDU must be hex octets that start with the SMSC field")
            try:
                message_class = decode_pdu(pdu, smsc_included=True).msg_class
            except DecodeError as error:
                if check:
                    raise SimError(
                        f"the injected PDU does not decode: {error}; pass check=False to deliver it anyway"
                    ) from None
                message_class = None
            pdus = [pdu.upper()]
        else:
            if (text is None) == (data is None):
                raise SimError("give the message as text or as data (bytes)")
            try:
                pdus = encode_deliver(
                    sender, text, timestamp=self._clock(), smsc=modem.identity.operator.smsc, ref=ref,
                    ref16=ref16, flash=flash, data=data, ports=ports, alphabet=alphabet,
                )
            except (ValueError, AddressError) as error:
                raise SimError(f"cannot build that SMS: {error}") from None
            message_class = 0 if flash else None
        for each in pdus:
            self._queue(index, ("deliver", each, message_class, None))
        self._offer(index)
        return pdus

    # ------------------------------------------------ called by the modems
    def decode_submit(self, pdu: str) -> Sms | None:
        try:
            sms = decode_pdu(pdu, smsc_included=True)
        except DecodeError as error:
            log.info("rejected a PDU that does not decode: %s", error)
            return None
        return sms if sms.type == "submit" else None

    def submit(self, modem: SimModem, pdu: str, sms: Sms, mr: int) -> None:
        now = self._clock()
        destination = self._normalize(sms.number or "")
        target = self._by_number.get(destination)
        record = {
            "seq": len(self._submissions) + 1,
            "time": now.isoformat(),
            "modem": modem.index,
            "modem_name": modem.identity.name,
            "from": modem.number,
            "to": destination,
            "text": sms.text,
            "alphabet": sms.alphabet,
            "udh": sms.user_udh.hex().upper() or None,  # the sender's header without concatenation
            "class": sms.msg_class,
            "concat": (
                {"ref": sms.concat.ref, "total": sms.concat.total, "seq": sms.concat.seq, "bits": sms.concat.bits}
                if sms.concat
                else None
            ),
            "report": bool(sms.report_requested),
            "mr": mr,
            "pdu": pdu,
            "length": sms.tpdu_length,
            "outside": target is None,
        }
        self._record(record)
        seq = sms.concat.seq if sms.concat is not None else None
        statuses, interval = (
            self._outcomes.get((destination, seq)) or self._outcomes.get((destination, None)) or ([0x00], 0.5)
        )
        delivered = statuses[-1] < 0x40
        want_report = bool(sms.report_requested) and (target is not None or self.outside_reports)
        report = (lambda: self._send_reports(modem.index, mr, destination, now, statuses, interval)) if want_report else None
        if target is None or not delivered:
            if report is not None:
                self._later(self.report_delay, report)
            return
        self._collect_part(modem, target, sms, report)

    def modem_ready(self, modem: SimModem) -> None:
        """The modem may take messages now (plugged, registered, room in storage)."""
        self._offer(modem.index)

    def redeliver(self, modem: SimModem, kind: str, pdu: str) -> None:
        """A routed message that the TE did not acknowledge goes back to the SMSC to retry."""
        self._pending[modem.index].appendleft((kind, pdu, None, None))
        if self._loop is not None:
            self._loop.call_soon(self._offer, modem.index)

    def ussd_reply(self, modem: SimModem, code: str) -> tuple[int, str | None, int]:
        """(status, text, dcs) of the network's +CUSD answer to `code` on `modem`."""
        with self._submitted:
            # Where it fell among the submissions: a client that runs USSD between messages
            # never has it between two parts of one message.
            self._ussd_log.append({"modem": modem.index, "code": code, "time": self._clock().isoformat(),
                                   "after_submissions": len(self._submissions)})
        reply = self._ussd.get((modem.index, code)) or self._ussd.get((None, code))
        return reply or (0, f"Unknown service code {code}", USSD_DCS_GSM7)

    # ------------------------------------------------------------ internals
    def _normalize(self, number: str) -> str:
        try:
            return normalize_number(number, NETWORK_COUNTRY)
        except AddressError:
            return number

    def _record(self, record: dict) -> None:
        # One write() of one line on an append-only file: a reader never sees half a record.
        if self._log_file is not None:
            self._log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._log_file.flush()
        with self._submitted:
            self._submissions.append(record)
            self._submitted.notify_all()
        if self._submitted_async is not None:
            self._submitted_async.set()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        if delay > 0:
            self._loop.call_later(delay, callback)
        else:
            self._loop.call_soon(callback)

    def _collect_part(self, sender: SimModem, target: int, sms: Sms, report: Callable[[], None] | None) -> None:
        if sms.concat is None or sms.concat.total <= 1:
            self._deliver_whole(sender, target, [sms], [report])
            return
        key = (sender.index, target, sms.concat.ref, sms.concat.total, sms.concat.bits)
        parts = self._concat.setdefault(key, {})
        if sms.concat.seq in parts:
            log.info("duplicate part %d of ref %d from %s", sms.concat.seq, sms.concat.ref, sender.number)
        parts.setdefault(sms.concat.seq, sms)
        reports = self._concat_reports.setdefault(key, [])
        reports.append(report)
        if len(parts) == sms.concat.total:
            del self._concat[key]
            ordered = [parts[seq] for seq in sorted(parts)]
            self._deliver_whole(sender, target, ordered, self._concat_reports.pop(key))

    def _deliver_whole(
        self, sender: SimModem, target: int, parts: list[Sms], reports: list[Callable[[], None] | None]
    ) -> None:
        first = parts[0]
        receiver = self._sims[target]
        kwargs: dict[str, Any] = dict(
            timestamp=self._clock(),
            smsc=sender.identity.operator.smsc,
            flash=first.msg_class == 0,
        )
        if first.concat is not None:
            kwargs.update(ref=first.concat.ref, ref16=first.concat.bits == 16)
        if first.is_binary:
            # The sender's own header (ports, WAP push, special indications) reaches the recipient as
            # sent; concatenation is the network's to renumber, national shifts the text's encoding.
            kept = tuple(ie for ie in first.udh if ie[0] not in udh_rules.NATIONAL_IEIS)
            kwargs["udh"] = udh_rules.without_concatenation(kept) or None
        try:
            if first.alphabet == "8bit":
                pdus = encode_deliver(sender.number, data=b"".join(p.data or b"" for p in parts), **kwargs)
            else:
                # A text in national tables is delivered in the tables the sender chose (an SMSC
                # passes the user data on as it came); without them it would not fit GSM-7.
                tables = [national.BY_ID[i].code for i in dict.fromkeys(first.national) if i]
                pdus = encode_deliver(sender.number, join_parts(parts), alphabet=first.alphabet,
                                      national_languages=tables, **kwargs)
        except (ValueError, AddressError) as error:
            log.error("cannot deliver a message from %s to %s: %s", sender.number, receiver.number, error)
            return
        callbacks = [r for r in reports if r is not None]
        for position, pdu in enumerate(pdus):
            done = (lambda: [callback() for callback in callbacks]) if position == len(pdus) - 1 else None
            self._queue(target, ("deliver", pdu, first.msg_class, done))
        self._offer(target)

    def _send_reports(
        self, sender_index: int, mr: int, recipient: str, submitted: datetime, statuses: list[int], interval: float
    ) -> None:
        sender = self._sims[sender_index]
        for position, status in enumerate(statuses):

            def send(status: int = status) -> None:
                discharge = self._clock()
                pdu = encode_status_report(
                    mr=mr, recipient=recipient, scts=submitted, discharge=discharge, status=status,
                    smsc=sender.identity.operator.smsc,
                )
                if sender.faults.report_tz_octet is not None:
                    pdu = _with_time_zone_octet(pdu, sender.faults.report_tz_octet)
                with self._submitted:
                    self._reports.append(
                        {"modem": sender_index, "mr": mr, "recipient": recipient, "status": status, "pdu": pdu,
                         "time": discharge.isoformat()}
                    )
                self._queue(sender_index, ("report", pdu, None, None))
                self._offer(sender_index)

            self._later(self.report_delay + position * interval, send)

    def _queue(self, index: int, item: tuple) -> None:
        self._pending[index].append(item)

    def _offer(self, index: int) -> None:
        """Hand waiting messages to the modem, in order, until it cannot take more.

        An SMSC delivers each message (and each part) in its own transfer, so
        they reach a modem some time apart (`delivery_interval`), never in one
        burst.  Clients rely on that: python-gsmmodem handles only the first
        +CMTI of lines that arrive together.
        """
        if index in self._offer_timers:
            return  # the next delivery to this modem is already scheduled
        modem = self._sims[index]
        pending = self._pending[index]
        while pending:
            kind, pdu, message_class, on_delivered = pending[0]
            if kind == "deliver":
                accepted = modem.deliver(pdu, message_class)
            else:
                accepted = modem.deliver_report(pdu)
            if not accepted:
                return
            pending.popleft()
            if on_delivered is not None:
                on_delivered()
            if self.delivery_interval > 0:
                assert self._loop is not None
                self._offer_timers[index] = self._loop.call_later(self.delivery_interval, self._offer_later, index)
                return

    def _offer_later(self, index: int) -> None:
        del self._offer_timers[index]
        self._offer(index)


def _with_time_zone_octet(pdu: str, octet: int) -> str:
    """A status report (hex, with its SMSC field) whose TP-SCTS and TP-DT end in `octet`, as
    some networks send them (TS 23.040 §9.2.2.3: SMSC | FO MR | RA length, TOA, digits |
    SCTS(7) | DT(7) | ST)."""
    data = bytearray(bytes.fromhex(pdu))
    scts = data[0] + 1 + 2 + 2 + (data[data[0] + 3] + 1) // 2
    data[scts + 6] = data[scts + 13] = octet
    return data.hex().upper()
