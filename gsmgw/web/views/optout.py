"""`/optout`: the opt-out list (who sent STOP and when); add and remove by hand."""

from __future__ import annotations

from aiohttp import web

from gsmgw.sms import AddressError, normalize_number
from gsmgw.web.app import Refused, done


class OptOut:
    def __init__(self, console):
        self.console = console

    async def page(self, request: web.Request, *, errors=None, number: str = "", status: int = 200) -> web.Response:
        self.console.person(request)
        entries = await self.console.read(self.console.index.optouts)
        rows = sorted(entries.items(), key=lambda item: item[1][0], reverse=True)
        names = await self.console.read(self.console.index.contact_names, [n for n, _ in rows])
        settings = self.console.config.optout
        return self.console.render(request, "optout.html", status=status, rows=rows, names=names,
                                   errors=errors or {}, number=number, keywords=settings.keywords,
                                   start_keywords=settings.start_keywords)

    async def add(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        typed = (fields.get("number") or "").strip()
        try:
            number = normalize_number(typed, getattr(self.console.config, "default_country", None))
        except AddressError as error:
            return await self.page(request, errors={"number": str(error)},
                                   number=typed, status=400)
        now = self.console.clock()
        await self.console.read(self.console.index.opt_out, number, now, "added in the console")
        self.console.ctx.optouts.add(number, now, "added in the console")
        await self.console.audit(person, "opt-out added", number)
        raise done("/optout", f"{number} is on the opt-out list.")

    async def remove(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        number = (fields.get("number") or "").strip()
        if not await self.console.read(self.console.index.opt_in, number):
            raise Refused(404, "Not on the list", f"{number} is not on the opt-out list; nothing was changed.",
                          back="/optout")
        self.console.ctx.optouts.remove(number)
        await self.console.audit(person, "opt-out removed", number)
        raise done("/optout", f"{number} is off the opt-out list.")


def routes(console) -> list[tuple]:
    view = OptOut(console)
    return [
        ("GET", "/optout", view.page),
        ("POST", "/optout", view.add),
        ("POST", "/optout/remove", view.remove),
    ]
