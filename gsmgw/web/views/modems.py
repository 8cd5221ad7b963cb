"""`/modems/{name}`: one modem: identity, signal history, counters, last errors, its balance
(the last answer to `modems[].balance`, whoever asked: this page, `gsmgw status --balance`,
/metrics?balance=1) with **Check balance**, and **Send test SMS**.

The balance check runs in the daemon, which holds the modem (`ctx.balance`, gsmgw.ussd): the
modem's sending pauses for the USSD exchange only, and the answer is remembered for the others."""

from __future__ import annotations

import asyncio
from datetime import datetime
from urllib.parse import quote

from aiohttp import web

from gsmgw.web import charts
from gsmgw.web.app import Refused, done
from gsmgw.web.sending import FormErrors, Options, Sender
from gsmgw.web.views.dashboard import registration_word, signal_bars

SIGNAL_DAYS = 7
USSD_TIMEOUT = 30.0


class Modems:
    def __init__(self, console):
        self.console = console
        self.sender = Sender(console)

    async def context(self, name: str, **values) -> dict:
        console = self.console
        snapshot = await console.server.snapshot()
        status = next((m for m in snapshot.get("modems") or [] if m.get("name") == name), None)
        config = console.config.modem(name) if hasattr(console.config, "modem") else None
        if status is None and config is None:
            raise Refused(404, "No such modem", f"There is no modem {name!r} in the config.", back="/")
        now = console.clock()
        samples = await console.read(console.index.signal_history, name, now - SIGNAL_DAYS * 86400)
        events = await console.read(console.index.modem_events, name, limit=20)
        tallies = await console.read(console.index.tallies, charts.since_hour_for_daily(now), name)
        last_balance = getattr(console.ctx, "last_balance", None)
        defaults: dict[str, object] = {"balance": last_balance(name) if last_balance is not None else None, "balance_error": "",
                                       "test_to": "", "errors": {}}
        defaults.update(values)
        return {
            "name": name, "modem": status or {"name": name, "state": "absent"}, "config": config,
            "bars": signal_bars((status or {}).get("signal_dbm")),
            "registration": registration_word((status or {}).get("registered")),
            "signal": charts.signal_chart(samples), "events": events, "daily": charts.daily(tallies, now),
            "balance_code": getattr(config, "balance", None),
            "ussd_available": getattr(console.ctx, "balance", None) is not None,
            **defaults,
        }

    async def page(self, request: web.Request) -> web.Response:
        self.console.person(request)
        return self.console.render(request, "modem.html", **await self.context(request.match_info["name"]))

    async def balance(self, request: web.Request) -> web.Response:
        person, _ = await self.console.form(request)
        name = request.match_info["name"]
        context = await self.context(name)
        code = context["balance_code"]
        ask = getattr(self.console.ctx, "balance", None)
        if not code:
            error = (f"No balance code is configured for {name}; add e.g. balance: \"*100#\" (your operator's "
                     f"code) to the modem in the config.")
        elif ask is None:
            error = ("No gateway runs the modems in this process, so the balance cannot be asked for from "
                     "here; nothing was sent to the network.")
        else:
            try:
                # Asked now (max_age 0): a person who presses the button wants today's figure.
                balance = await asyncio.wait_for(ask(name, max_age=0), USSD_TIMEOUT)
            except asyncio.TimeoutError:
                error = f"The network did not answer {code} within {USSD_TIMEOUT:.0f} s."
            except Exception as exc:  # UssdError and the driver's errors say what happened (CME, modem gone, ...)
                error = f"{code} failed: {exc}"
            else:
                await self.console.audit(person, "checked the balance", f"{name} {code}")
                return self.console.render(request, "modem.html", **{**context, "balance": balance})
        return self.console.render(request, "modem.html", status=409, **{**context, "balance_error": error})

    async def test_sms(self, request: web.Request) -> web.Response:
        person, form = await self.console.form(request)
        name = request.match_info["name"]
        typed = (form.get("to") or "").strip()
        recipients, problems = await self.sender.resolve(typed)
        text = f"gsmgw test SMS via {name}, {datetime.now().astimezone():%Y-%m-%d %H:%M}"
        try:
            if problems or len(recipients) != 1:
                raise FormErrors({"to": " ".join(problems) or "Write one number."})
            queued = await self.sender.send(person, [recipients[0].number], text,
                                            Options(report=True, modem=name))
        except FormErrors as errors:
            context = await self.context(name, test_to=typed, errors=errors.errors)
            return self.console.render(request, "modem.html", status=400, **context)
        await self.console.audit(person, "sent a test SMS", f"via {name} to {queued[0]['to']}")
        raise done(f"/conversations/{quote(queued[0]['to'], safe='+')}", f"Test SMS queued via {name}.")


def routes(console) -> list[tuple]:
    view = Modems(console)
    return [
        ("GET", "/modems/{name}", view.page),
        ("POST", "/modems/{name}/balance", view.balance),
        ("POST", "/modems/{name}/test", view.test_sms),
    ]
