"""Faults a simulated modem can be told to show (pure state; no I/O).

Switch them per modem at run time with ``SimNetwork.set_fault(index, kind, **params)``
or the control socket ``{"cmd": "set_fault", "modem": 0, "kind": ..., ...}``;
``clear_fault(index, kind)`` (or kind "all") switches them off.

| kind              | params                                  | effect |
|-------------------|-----------------------------------------|--------|
| `cms_error`       | `codes=[38]`, `probability=1.0`, `count=None` | an AT+CMGS answers `+CMS ERROR: <code>` (codes drawn at random); `count` limits how many |
| `hang`            | `seconds`                               | the modem answers nothing and drops what it gets, for that long |
| `unplug`          | –                                       | the pty closes and the symlink vanishes |
| `replug`          | –                                       | a new pty behind the same symlink; the modem boots again (PIN asked again) |
| `reboot`          | `sim=None`                              | the modem restarts behind the same port (a USB power dip): its settings go back to power-up defaults (echo on, `+CMEE=0`, factory `+CNMI`, `+CSMS=0`), the SIM asks for its PIN again, and it prints its dialect's start-up lines; `sim=N`: it comes back with SIM N in it (the IMSI, ICCID and number of modem N's identity table row, which no other modem may hold) |
| `storage_full`    | `on=True`                               | every storage reports itself full: new SMS wait in the network, writes get `+CMS ERROR: 322` |
| `urc_in_response` | `lines=["RING"]`, `where="end"`, `probability=1.0`, `count=None` | unsolicited lines appear before a response's final result (`end`), or right after its first line (`first`: e.g. between a +CMGL header and its PDU) |
| `noise`           | `data` (hex, default has invalid UTF-8), `probability=1.0`, `count=None` | raw bytes appear before a response |
| `slow_prompt`     | `seconds`                               | the `> ` of AT+CMGS comes that much later |
| `late_cmgs`       | `seconds`                               | the next submit is answered that much later than its normal latency (once) |
| `report_time_zone`| `octet="A0"`                            | status reports for this modem's messages carry this TP-SCTS/TP-DT time-zone octet (A0, E1, C2: not BCD, as real networks sent) |
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DEFAULT_NOISE = bytes.fromhex("ff fe 80 00 47 41 52 42 41 47 45 c3 28 0d 0a".replace(" ", ""))

FAULT_KINDS = (
    "cms_error",
    "hang",
    "unplug",
    "replug",
    "reboot",
    "storage_full",
    "urc_in_response",
    "noise",
    "slow_prompt",
    "late_cmgs",
    "report_time_zone",
)

# Kinds that happen once to the device (the network carries them out) rather than switch on a
# state kept here; clear_fault does not take them.
DEVICE_EVENTS = ("unplug", "replug", "reboot")


class FaultError(ValueError):
    """A fault request with an unknown kind or bad parameters; the message says what to send."""


@dataclass
class Chance:
    """Something that happens with a probability, at most `count` times (None: no limit)."""

    probability: float = 1.0
    count: int | None = None

    def fire(self, rng: random.Random) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


@dataclass
class FaultState:
    cms_codes: list[int] = field(default_factory=list)
    cms_chance: Chance | None = None
    hang_until: float = 0.0
    storage_full: bool = False
    urc_lines: list[str] = field(default_factory=list)
    urc_where: str = "end"
    urc_chance: Chance | None = None
    noise_data: bytes = b""
    noise_chance: Chance | None = None
    slow_prompt: float = 0.0
    late_cmgs: float = 0.0
    report_tz_octet: int | None = None

    def set(self, kind: str, params: dict, now: float) -> None:
        """Switch on `kind` with `params`; `now` is the loop's monotonic time (for hangs)."""
        params = dict(params)
        if kind == "cms_error":
            codes = params.pop("codes", [38])
            if isinstance(codes, int):
                codes = [codes]
            if not codes or not all(isinstance(c, int) and 0 <= c <= 511 for c in codes):
                raise FaultError("cms_error needs codes=[...] with integers 0-511, e.g. codes=[38, 42]")
            self.cms_codes = list(codes)
            self.cms_chance = _chance(kind, params)
        elif kind == "hang":
            self.hang_until = now + _seconds(kind, params)
        elif kind == "storage_full":
            self.storage_full = bool(params.pop("on", True))
        elif kind == "urc_in_response":
            lines = params.pop("lines", ["RING"])
            if isinstance(lines, str):
                lines = [lines]
            if not lines or not all(isinstance(line, str) for line in lines):
                raise FaultError('urc_in_response needs lines=["RING", ...] (a list of strings)')
            where = params.pop("where", "end")
            if where not in ("end", "first"):
                raise FaultError('urc_in_response: where is "end" (before the final result) or "first" (after the first line)')
            self.urc_lines = list(lines)
            self.urc_where = where
            self.urc_chance = _chance(kind, params)
        elif kind == "noise":
            data = params.pop("data", None)
            try:
                self.noise_data = DEFAULT_NOISE if data is None else bytes.fromhex(data)
            except (TypeError, ValueError):
                raise FaultError("noise needs data as a hex string, e.g. data=\"ff00c328\"") from None
            self.noise_chance = _chance(kind, params)
        elif kind == "slow_prompt":
            self.slow_prompt = _seconds(kind, params)
        elif kind == "late_cmgs":
            self.late_cmgs = _seconds(kind, params)
        elif kind == "report_time_zone":
            octet = params.pop("octet", "A0")
            try:
                value = bytes.fromhex(octet) if isinstance(octet, str) else bytes([octet])
            except (TypeError, ValueError):
                value = b""
            if len(value) != 1:
                raise FaultError('report_time_zone needs octet as two hex digits, e.g. octet="A0"')
            self.report_tz_octet = value[0]
        else:
            raise FaultError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if params:
            raise FaultError(f"fault {kind!r} does not take {', '.join(sorted(params))}")

    def clear(self, kind: str) -> None:
        if kind == "all":
            self.__init__()  # type: ignore[misc]
            return
        defaults = FaultState()
        attributes = {
            "cms_error": ("cms_codes", "cms_chance"),
            "hang": ("hang_until",),
            "storage_full": ("storage_full",),
            "urc_in_response": ("urc_lines", "urc_chance", "urc_where"),
            "noise": ("noise_data", "noise_chance"),
            "slow_prompt": ("slow_prompt",),
            "late_cmgs": ("late_cmgs",),
            "report_time_zone": ("report_tz_octet",),
        }.get(kind)
        if attributes is None:
            raise FaultError(f"cannot clear {kind!r}; clear one of: {', '.join(FAULT_KINDS)} or 'all'")
        for name in attributes:
            setattr(self, name, getattr(defaults, name))

    def hanging(self, now: float) -> bool:
        return now < self.hang_until

    def take_late_cmgs(self) -> float:
        delay, self.late_cmgs = self.late_cmgs, 0.0
        return delay


def _chance(kind: str, params: dict) -> Chance:
    probability = params.pop("probability", 1.0)
    count = params.pop("count", None)
    if not isinstance(probability, (int, float)) or not 0.0 <= probability <= 1.0:
        raise FaultError(f"{kind}: probability must be a number from 0 to 1")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise FaultError(f"{kind}: count must be a whole number of times, or left out for no limit")
    return Chance(float(probability), count)


def _seconds(kind: str, params: dict) -> float:
    seconds = params.pop("seconds", None)
    if not isinstance(seconds, (int, float)) or seconds < 0:
        raise FaultError(f"{kind} needs seconds=<number of seconds, 0 or more>")
    return float(seconds)
