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
        self._marked: dict[tuple[str, str], float] = {}

    async def thread_context_shared(self, scope, number: str) -> dict:
        """The thread's live part: the same for everybody with this scope."""
        index = self.console.index
        messages = await self.console.read(index.thread, scope, number, limit=THREAD)
        return {"number": number, "messages": messages, "contact": None, "limit": THREAD}

    async def list(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        search = request.query.get("q", "").strip()[:100]
        try:
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            offset = 0
        scope = person.scope(self.console.modem_names())

        async def produce() -> dict:
            rows = await self.console.read(self.console.index.conversations, scope, user=person.name,
                                           search=search or None, limit=PAGE + 1, offset=offset)
            return {"rows": rows[:PAGE], "search": search, "offset": offset, "more": len(rows) > PAGE, "page": PAGE}

        if request.query.get("fragment"):
            return await self.console.live_part(request, (scope, person.name, search, offset), "conversations_live.html",
                                                produce)
        return self.console.render(request, "conversations.html", topics=("conversations",), **await produce())

    async def thread_context(self, person, number: str) -> dict:
        index = self.console.index
        messages = await self.console.read(index.thread, person.scope(self.console.modem_names()), number,
                                           limit=THREAD)
        contact = await self.console.read(index.contact, number)
        await self.mark_read(person, number, messages)
        return {"number": number, "messages": messages, "contact": contact, "limit": THREAD}

    async def mark_read(self, person, number: str, messages) -> None:
        """The person has seen the inbound messages of this thread (written only when newer
        ones are shown than the last mark this process wrote)."""
        inbound = [m.at for m in messages if m.direction == IN]
        if inbound and max(inbound) > self._marked.get((person.name, number), 0.0):
            await self.console.read(self.console.index.mark_read, person.name, number, max(inbound))
            self._marked[(person.name, number)] = max(inbound)

    async def thread(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        number = request.match_info["number"]
        if request.query.get("fragment"):
            scope = person.scope(self.console.modem_names())
            response = await self.console.live_part(
                request, (scope, number), "thread_live.html",
                lambda: self.thread_context_shared(scope, number))
            await self.mark_read(person, number, await self.console.read(
                self.console.index.thread, scope, number, limit=20))
            return response
        context = await self.thread_context(person, number)
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
