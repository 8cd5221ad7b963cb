"""What the daemon shares with the network listeners (HTTP, SMPP, webhooks, two-way).

`gsmgw.http.server.start(ctx)` and `gsmgw.smpp.server.start(ctx)` get one `GatewayContext`. They
write messages into the spool (`ctx.spool.submit`), subscribe to `ctx.bus`, and read
`ctx.status_snapshot()` / `ctx.message_status(id)`; they never reach into the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.spool.journal import Journal
from gsmgw.spool.message_status import MessageStatus
from gsmgw.spool.store import Spool


@dataclass
class GatewayContext:
    config: Any  # gsmgw.config.Config (replaced on SIGHUP reload)
    spool: Spool
    journal: Journal
    bus: EventBus
    metrics: Metrics
    _snapshot: Callable[[], dict] = field(repr=False)
    _message_status: Callable[[str], MessageStatus | None] = field(repr=False)
    _wake: Callable[[], None] = field(repr=False, default=lambda: None)
    _cancel: Callable[[str, str], str | None] = field(repr=False, default=lambda message_id, reason: "not possible here")
    # Shared by HTTP and SMPP so client limits count both together (gsmgw.clients.ClientRegistry).
    clients: Any = None
    # Set by gsmgw.http.alertmanager.add_routes when alertmanager: is configured.
    alertmanager: Any = None
    # gsmgw.webhooks.WebhookService, started by app.py when webhooks: is configured.
    webhooks: Any = None
    # USSD on the daemon's modems (gsmgw.ussd.Ussd), None in a process that runs none:
    # `await ctx.ussd(modem, code)` -> UssdAnswer(modem, code, status, text);
    # `await ctx.balance(modem)` -> Balance(modem, code, text, amount, checked, status);
    # both raise UssdError(kind, message) (unknown_modem, not_ready, no_code, bad_code, timeout, modem).
    ussd: Any = None
    balance: Any = None
    balances: Any = None  # `await ctx.balances()` -> {modem: Balance | UssdError} of modems with a balance: code
    last_balance: Any = None  # `ctx.last_balance(modem)` -> the last Balance asked, or None (asks nothing)
    # gsmgw.spool.index.MessageIndex (the journal's message index) and the gsmgw.daemon.indexer
    # .Indexer that keeps it current (its `subscribe` tells listeners what it committed).
    index: Any = None
    indexer: Any = None
    # gsmgw.groups.GroupBook: the config's and the console's groups (`group:NAME` means either).
    groups: Any = None
    # gsmgw.daemon.optout.OptOutList: who sent STOP (campaign messages to them fail).
    optouts: Any = None
    # gsmgw.web.app.Console when the web console runs (set by the HTTP server; login_link()).
    console: Any = None
    # The simulated network of `gsmgw run --simulate` (gsmgw.sim.SimNetwork); None on real modems.
    simulator: Any = None
    # Set when the daemon stops taking new work (SIGTERM); listeners answer "try later" from then on.
    stopping: Any = None  # asyncio.Event

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
