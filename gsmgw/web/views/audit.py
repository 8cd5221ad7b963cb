"""`/audit` (admins): who did what in the console and when."""

from __future__ import annotations

from aiohttp import web

from gsmgw.clients import ADMIN

PAGE = 200


class Audit:
    def __init__(self, console):
        self.console = console

    async def page(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        self.console.require(person, ADMIN)
        try:
            before = int(request.query["before"]) if request.query.get("before") else None
        except ValueError:
            before = None
        entries = await self.console.read(self.console.index.audit_log, limit=PAGE + 1, before=before)
        more = entries[PAGE - 1].seq if len(entries) > PAGE else None
        return self.console.render(request, "audit.html", entries=entries[:PAGE], more=more)


def routes(console) -> list[tuple]:
    return [("GET", "/audit", Audit(console).page)]
