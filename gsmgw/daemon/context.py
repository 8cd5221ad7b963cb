"""What the daemon shares with the network listeners (HTTP, SMPP, webhooks, two-way).

`gsmgw.http.server.start(ctx)` and `gsmgw.smpp.server.start(ctx)` get one `GatewayContext`. They
write messages into the spool (`ctx.spool.submit`), subscribe to `ctx.bus`, and read
`ctx.status_snapshot()` / `ctx.message_status(id)`; they never reach into the workers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.spool.journal import Journal
from gsmgw.spool.message_status import MessageStatus
from gsmgw.spool.store import Spool

if TYPE_CHECKING:  # types only: the listeners and services import the context, not the reverse
    from gsmgw.clients import ClientRegistry
    from gsmgw.config import Config
    from gsmgw.daemon.indexer import Indexer
    from gsmgw.daemon.optout import OptOutList
    from gsmgw.groups import GroupBook
    from gsmgw.http.alertmanager import AlertmanagerService
    from gsmgw.sim import SimNetwork
    from gsmgw.spool.index import MessageIndex
    from gsmgw.ussd import Balance, UssdAnswer, UssdError
    from gsmgw.web.app import Console
    from gsmgw.webhooks import WebhookService


class AskUssd(Protocol):
    """`await ctx.ussd(modem, code)`: gsmgw.ussd.Ussd.ask."""

    def __call__(self, modem: str, code: str, timeout: float = ...) -> Awaitable[UssdAnswer]: ...


class AskBalance(Protocol):
    """`await ctx.balance(modem)`: gsmgw.ussd.Ussd.balance."""

    def __call__(self, modem: str, *, max_age: float = ...) -> Awaitable[Balance]: ...


class AskBalances(Protocol):
    """`await ctx.balances()`: gsmgw.ussd.Ussd.balances, {modem: Balance | UssdError} of the modems
    with a balance: code."""

    def __call__(self, *, max_age: float = ...) -> Awaitable[dict[str, Balance | UssdError]]: ...


@dataclass
class GatewayContext:
    config: Config  # replaced on SIGHUP reload
    spool: Spool
    journal: Journal
    bus: EventBus
    metrics: Metrics
    _snapshot: Callable[[], dict] = field(repr=False)
    _message_status: Callable[[str], MessageStatus | None] = field(repr=False)
    _wake: Callable[[], None] = field(repr=False, default=lambda: None)
    _cancel: Callable[[str, str], str | None] = field(repr=False, default=lambda message_id, reason: "not possible here")
    # Shared by HTTP, SMPP and SMTP so client limits count them together; None when no door runs.
    clients: ClientRegistry | None = None
    # Set by gsmgw.http.alertmanager.add_routes when alertmanager: is configured.
    alertmanager: AlertmanagerService | None = None
    # Started by app.py when webhooks: is configured (or by the HTTP server).
    webhooks: WebhookService | None = None
    # USSD on the daemon's modems, None in a process that runs none. They raise
    # UssdError(kind, message) (unknown_modem, not_ready, no_code, bad_code, timeout, modem).
    ussd: AskUssd | None = None
    balance: AskBalance | None = None
    balances: AskBalances | None = None
    # `ctx.last_balance(modem)`: the last Balance asked, or None (asks nothing).
    last_balance: Callable[[str], Balance | None] | None = None
    # The journal's message index and the Indexer that keeps it current (its `subscribe` tells
    # listeners what it committed).
    index: MessageIndex | None = None
    indexer: Indexer | None = None
    # The config's and the console's groups (`group:NAME` means either).
    groups: GroupBook | None = None
    # Who sent STOP (campaign messages to them fail).
    optouts: OptOutList | None = None
    # The web console when it runs (set by the HTTP server; login_link()).
    console: Console | None = None
    # The simulated network of `gsmgw run --simulate`; None on real modems.
    simulator: SimNetwork | None = None
    # Set when the daemon stops taking new work (SIGTERM); listeners answer "try later" from then on.
    stopping: asyncio.Event | None = None

    def status_snapshot(self) -> dict:
        """The same dict as `gsmgw status --json` (docs/spool.md), current as of this call."""
        return self._snapshot()

    def message_status(self, message_id: str) -> MessageStatus | None:
        """What became of a message (`gsmgw.spool.message_status.lookup` on this daemon's journal
        and spool); None if unknown. `.to_api()` is docs/api.md's `GET /api/v1/messages/{id}` object."""
        return self._message_status(message_id)

    def cancel(self, message_id: str, reason: str) -> str | None:
        """Cancel a queued message (to failed/ with `reason`); None, or why it cannot be."""
        return self._cancel(message_id, reason)

    def retrying(self, limit: int = 1000) -> list[tuple[str, int, str | None]]:
        """Queued messages tried before: (id, attempts, last error)."""
        return self.journal.retrying(limit)

    def modems_ready(self) -> int:
        return sum(1 for m in self.status_snapshot()["modems"] if m["state"] in ("ready", "busy"))

    def wake(self) -> None:
        """A hint that outgoing/ has new files (the watcher notices them anyway)."""
        self._wake()
