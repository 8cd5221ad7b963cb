"""`/`: modems at a glance, the queue, and the charts; live (WEB.md "Pages")."""

from __future__ import annotations

from aiohttp import web

from gsmgw.web import charts


def signal_bars(dbm) -> int:
    """0-4 bars from dBm, as phones show them (TS 27.007 +CSQ maps -113..-51 dBm)."""
    if dbm is None:
        return 0
    for bars, floor in ((4, -73), (3, -83), (2, -93), (1, -109)):
        if dbm >= floor:
            return bars
    return 0


def registration_word(registered) -> str:
    return {True: "registered", False: "not registered"}.get(registered, "unknown")


class Dashboard:
    def __init__(self, console):
        self.console = console

    async def context(self) -> dict:
        console = self.console
        snapshot = await console.server.snapshot()
        now = console.clock()
        tallies = await console.read(console.index.tallies, charts.since_hour_for_daily(now))
        modems = []
        for modem in snapshot.get("modems") or []:
            modems.append({**modem, "bars": signal_bars(modem.get("signal_dbm")),
                           "registration": registration_word(modem.get("registered"))})
        return {
            "modems": modems,
            "queue": snapshot.get("queue") or {},
            "updated": snapshot.get("updated"),
            "hourly": charts.hourly(tallies, now),
            "daily": charts.daily(tallies, now),
        }

    async def page(self, request: web.Request) -> web.Response:
        self.console.person(request)
        if request.query.get("fragment"):  # the same for everybody: modems, queue, totals
            return await self.console.live_part(request, (), "dashboard_live.html", self.context)
        return self.console.render(request, "dashboard.html", topics=("dashboard",), **await self.context())


def routes(console) -> list[tuple]:
    view = Dashboard(console)
    return [("GET", "/", view.page)]
