"""`/messages`: every message the person may see, filtered by state, modem, number and time;
cancel a queued one, retry a failed one (one's own; an admin anyone's)."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from gsmgw.spool.index import FINISHED_STATES, OUT, QUEUED, RECEIVED
from gsmgw.web import forms
from gsmgw.web.app import Refused, done
from gsmgw.web.sending import FormErrors, Sender

PAGE = 100
STATES = ("queued", "retrying", "sent", "delivered", "failed", "expired", "received")


class Messages:
    def __init__(self, console):
        self.console = console
        self.sender = Sender(console)

    async def page(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        query = request.query
        state = query.get("state", "")
        modem = query.get("modem", "")
        number = query.get("number", "").strip()
        since_text, until_text = query.get("since", ""), query.get("until", "")
        errors = {}
        try:
            since = forms.local_datetime(since_text)
        except ValueError:
            since, errors["since"] = None, "Write a date and time."
        try:
            until = forms.local_datetime(until_text)
        except ValueError:
            until, errors["until"] = None, "Write a date and time."
        before = None
        if query.get("before_at") and query.get("before_id"):
            try:
                before = (float(query["before_at"]), query["before_id"])
            except ValueError:
                before = None
        retrying: dict[str, tuple[int, str | None]] = {}
        for message_id, attempts, error in self.console.ctx.retrying(5000):
            retrying[message_id] = (attempts, error)
        states = []
        if state == "retrying":
            states = [QUEUED]
        elif state == "received":
            states = [RECEIVED]
        elif state in STATES:
            states = [state]
        scope = person.scope(self.console.modem_names())
        rows = await self.console.read(
            self.console.index.messages, scope, states=states, modem=modem or None, number=number or None,
            since=since.timestamp() if since else None, until=until.timestamp() if until else None,
            limit=PAGE + 1 if state != "retrying" else 5000, before=before)
        if state == "retrying":
            rows = [row for row in rows if row.direction == OUT and row.id in retrying][:PAGE + 1]
        filters = {"state": state, "modem": modem, "number": number, "since": since_text, "until": until_text}
        more = None
        if len(rows) > PAGE:
            last = rows[PAGE - 1]
            more = urlencode({**{k: v for k, v in filters.items() if v}, "before_at": repr(last.at), "before_id": last.id})
            rows = rows[:PAGE]
        return self.console.render(request, "messages.html", rows=rows, filters=filters, states=STATES,
                                   modems=self.console.modem_names(), retrying=retrying, more=more, errors=errors,
                                   finished=FINISHED_STATES)

    async def _own(self, person, message_id: str):
        row = await self.console.read(self.console.index.message, OUT, message_id)
        if row is None or not person.visibility.sees_outbound(row.client):
            raise Refused(404, "No such message", f"There is no message {message_id} that you may see; nothing was done.",
                          back="/messages")
        return row

    async def cancel(self, request: web.Request) -> web.Response:
        person, _ = await self.console.form(request)
        message_id = request.match_info["id"]
        await self._own(person, message_id)
        problem = self.console.ctx.cancel(message_id, f"cancelled by {person.name} in the web console")
        if problem:
            raise Refused(409, "Cannot cancel", f"{message_id} cannot be cancelled: {problem}.", back="/messages")
        await self.console.audit(person, "cancelled", message_id)
        raise done("/messages", f"Cancelled {message_id}.")

    async def retry(self, request: web.Request) -> web.Response:
        person, _ = await self.console.form(request)
        message_id = request.match_info["id"]
        row = await self._own(person, message_id)
        if row.state not in FINISHED_STATES:
            raise Refused(409, "Cannot retry", f"{message_id} has not failed; nothing was queued.", back="/messages")
        try:
            [(_, new_id)] = await self.sender.retry(person, [(message_id, row.number)])
        except FormErrors as errors:
            raise Refused(409, "Cannot retry", errors.errors.get("form", ""), back="/messages") from None
        await self.console.audit(person, "retried", f"{message_id} as {new_id}")
        raise done("/messages", f"Queued {message_id} again as {new_id}.")


def routes(console) -> list[tuple]:
    view = Messages(console)
    return [
        ("GET", "/messages", view.page),
        ("POST", "/messages/{id}/cancel", view.cancel),
        ("POST", "/messages/{id}/retry", view.retry),
    ]
