"""`/conversations` (one row per number) and `/conversations/{number}` (the thread, with live
delivery states and a reply box)."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from gsmgw.spool.index import IN
from gsmgw.web.app import done
from gsmgw.web.sending import FormErrors, Options, Sender

PAGE = 50
THREAD = 500


class Conversations:
    def __init__(self, console):
        self.console = console
        self.sender = Sender(console)

    async def list(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        search = request.query.get("q", "").strip()[:100]
        try:
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            offset = 0
        rows = await self.console.read(self.console.index.conversations, person.scope(self.console.modem_names()),
                                       user=person.name, search=search or None, limit=PAGE + 1, offset=offset)
        template = "conversations_live.html" if request.query.get("fragment") else "conversations.html"
        return self.console.render(request, template, topics=("conversations",), rows=rows[:PAGE], search=search, offset=offset,
                                   more=len(rows) > PAGE, page=PAGE)

    async def thread_context(self, person, number: str) -> dict:
        index = self.console.index
        messages = await self.console.read(index.thread, person.scope(self.console.modem_names()), number,
                                           limit=THREAD)
        contact = await self.console.read(index.contact, number)
        inbound = [m.at for m in messages if m.direction == IN]
        if inbound:
            await self.console.read(index.mark_read, person.name, number, max(inbound))
        return {"number": number, "messages": messages, "contact": contact, "limit": THREAD}

    async def thread(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        number = request.match_info["number"]
        context = await self.thread_context(person, number)
        if request.query.get("fragment"):
            return self.console.render(request, "thread_live.html", **context)
        return self.console.render(request, "thread.html", topics=(f"thread:{number}",), errors={}, text="",
                                   **context)

    async def reply(self, request: web.Request) -> web.Response:
        person, form = await self.console.form(request)
        number = request.match_info["number"]
        text = form.get("message") or ""
        try:
            await self.sender.send(person, [number], text, Options(report=self.console.config.defaults.report))
        except FormErrors as errors:
            context = await self.thread_context(person, number)
            problems = dict(errors.errors)
            if "to" in problems:
                problems["message"] = problems.pop("to")
            return self.console.render(request, "thread.html", status=400, topics=(f"thread:{number}",),
                                       errors=problems, text=text, **context)
        await self.console.audit(person, "sent", f"reply to {number}")
        raise done(f"/conversations/{quote(number, safe='+')}", "Queued.")


def routes(console) -> list[tuple]:
    view = Conversations(console)
    return [
        ("GET", "/conversations", view.list),
        ("GET", "/conversations/{number}", view.thread),
        ("POST", "/conversations/{number}", view.reply),
    ]
