"""USSD on a running gateway: what a user asks for (`gsmgw ussd`, POST /api/v1/modems/{name}/ussd,
the console's "Check balance", `gsmgw status --balance`, /metrics?balance=1) and what comes back.
A neutral module: the daemon, the HTTP server and the command line use it; it imports none of them.

The daemon holds each modem's port, so a USSD exchange runs in that modem's worker, between two
messages (`Worker.ussd`): its sending pauses for the exchange only. `Ussd` (the gateway's one
instance) finds the worker, and keeps each modem's last balance (a modem's `balance:` code) for
`BALANCE_MAX_AGE`, so that a dashboard asking often costs the SIM one USSD request, not one per
look.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

USSD_TIMEOUT = 30.0  # seconds the network has to answer (TS 24.090 leaves it to the network)
BALANCE_MAX_AGE = 300.0  # a balance asked again within this many seconds is answered from memory
_CODE = re.compile(r"[0-9*#+]{2,40}")
CODE_EXAMPLE = '"*100#"'


class UssdError(Exception):
    """A USSD request that cannot be done; `kind` says which (for HTTP statuses), the message
    what to do: unknown_modem, not_ready, no_code, bad_code, timeout, modem."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class UssdAnswer:
    """The network's answer (TS 27.007 §7.15 +CUSD): `status` 0 done, 1 more input expected, 2
    ended by the network, 4 not supported, 5 timed out; `text` decoded (GSM 7-bit or UCS2)."""

    modem: str
    code: str
    status: int
    text: str | None

    def to_json(self) -> dict:
        return {"modem": self.modem, "code": self.code, "status": self.status, "text": self.text}


@dataclass(frozen=True)
class Balance:
    """A modem's balance as its `balance:` code answered."""

    modem: str
    code: str
    text: str | None
    amount: float | None  # the first amount in the text (balance_amount), for /metrics
    checked: float  # time.time() of the answer
    status: int = 0

    def to_json(self) -> dict:
        from datetime import datetime

        return {"modem": self.modem, "code": self.code, "text": self.text, "amount": self.amount,
                "checked": datetime.fromtimestamp(self.checked).astimezone().isoformat(timespec="seconds"),
                "status": self.status}


def check_code(code: Any) -> str:
    """A USSD code as users write it ("*100#", "*#06#"): digits, * , # and +; UssdError bad_code."""
    if not isinstance(code, str) or not _CODE.fullmatch(code.strip()):
        raise UssdError("bad_code", f"{str(code)[:40]!r} is not a USSD code; write digits, * and # as your operator "
                                    f"gives them, e.g. {CODE_EXAMPLE}")
    return code.strip()


# An amount in an operator's words: "12,34 EUR", "1.234,56", "1,234.56", "-3.20", "Rs 150".
_AMOUNT = re.compile(r"-?\d[\d.,]*")


def balance_amount(text: str | None) -> float | None:
    """The first amount in a balance answer; a separator followed by 3 digits and more groups, or
    by exactly 3 digits, groups thousands, one followed by 1-2 digits is the decimal mark."""
    if not text:
        return None
    match = _AMOUNT.search(text)
    if match is None:
        return None
    token = match.group(0).rstrip(".,")
    sign = -1.0 if token.startswith("-") else 1.0
    token = token.lstrip("-")
    decimal = re.search(r"[.,](\d{1,2})$", token)
    whole, fraction = (token[: decimal.start()], decimal.group(1)) if decimal else (token, "")
    whole = re.sub(r"[.,]", "", whole)
    if not whole.isdigit():
        return None
    return sign * float(f"{whole}.{fraction or '0'}")


class Ussd:
    """USSD for the whole gateway: `ask(modem, code)`, `balance(modem)`, `balances()`."""

    def __init__(self, workers: Mapping[str, Any], config: Callable[[], Any], metrics: Any = None,
                 clock: Callable[[], float] = time.time):
        self.workers = workers
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._balances: dict[str, Balance] = {}
        self._pending: dict[str, asyncio.Future] = {}

    async def ask(self, modem: str, code: str, timeout: float = USSD_TIMEOUT) -> UssdAnswer:
        code = check_code(code)
        worker = self.workers.get(modem)
        if worker is None:
            names = ", ".join(sorted(self.workers)) or "none"
            raise UssdError("unknown_modem", f"no modem {modem!r} is configured (configured: {names})")
        reply = await worker.ussd(code, timeout)
        return UssdAnswer(modem, code, reply.status, reply.text)

    def last_balance(self, modem: str) -> Balance | None:
        return self._balances.get(modem)

    async def balance(self, modem: str, *, max_age: float = BALANCE_MAX_AGE) -> Balance:
        """The modem's balance, asked with its `balance:` code (or remembered, if younger than `max_age`)."""
        modem_config = self.config().modem(modem)
        if modem_config is None:
            names = ", ".join(m.name for m in self.config().modems) or "none"
            raise UssdError("unknown_modem", f"no modem {modem!r} is configured (configured: {names})")
        code = getattr(modem_config, "balance", None)
        if not code:
            raise UssdError("no_code", f"no balance code is configured for {modem}; add e.g. balance: {CODE_EXAMPLE} "
                                       f"(your operator's code) to the modem in the config")
        known = self._balances.get(modem)
        if known is not None and known.code == code and self.clock() - known.checked < max_age:
            return known
        pending = self._pending.get(modem)
        if pending is None:  # one request per modem at a time; others wait for its answer
            pending = self._pending[modem] = asyncio.ensure_future(self._ask_balance(modem, code))
            pending.add_done_callback(lambda _done: self._pending.pop(modem, None))
        return await asyncio.shield(pending)

    async def _ask_balance(self, modem: str, code: str) -> Balance:
        answer = await self.ask(modem, code)
        balance = Balance(modem, code, answer.text, balance_amount(answer.text), self.clock(), answer.status)
        self._balances[modem] = balance
        if self.metrics is not None:
            self.metrics.set_balance(modem, balance.amount, balance.checked)
        return balance

    async def balances(self, *, max_age: float = BALANCE_MAX_AGE) -> dict[str, Balance | UssdError]:
        """Every modem with a balance code: its balance, or the error that kept it from answering."""
        names = [m.name for m in self.config().modems if getattr(m, "balance", None)]
        results = await asyncio.gather(*(self.balance(name, max_age=max_age) for name in names), return_exceptions=True)
        answers: dict[str, Balance | UssdError] = {}
        for name, result in zip(names, results):
            if isinstance(result, (Balance, UssdError)):
                answers[name] = result
            elif isinstance(result, Exception):
                answers[name] = UssdError("modem", str(result))
            else:
                raise result
        return answers
