"""`/compose`: To (numbers, contacts, groups, with completion), Message with the live counter of
characters, parts and alphabet, the options, and Send. The counter is the codec's own
(`gsmgw.sms.count_parts`), asked over `POST /compose/count`, so the page never counts by a
second rule."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from collections.abc import Sequence

from gsmgw.sms import count_parts
from gsmgw.sms.national import BY_CODE
from gsmgw.sms.lookalike import forcing_ucs2, lookalike, replace_lookalikes
from gsmgw.web.app import done, text_field
from gsmgw.web.sending import FormErrors, Options, Sender

ALPHABET_WORDS = {"gsm7": "GSM-7", "ucs2": "UCS-2"}
NAMES = {code: language.name for code, language in BY_CODE.items()}
MAX_COUNT_TEXT = 40_000


def describe(text: str, national_languages: Sequence[str] = ()) -> dict:
    """What the counter shows for `text` (pure): the codec's count with the config's national
    tables, as the daemon will encode it."""
    count = count_parts(text, national_languages=national_languages)
    forcing = forcing_ucs2(text, national_languages) if count.alphabet == "ucs2" else []
    replaceable = {char: lookalike(char) for char in forcing if lookalike(char) is not None}
    tables = count.national or {}
    return {
        "characters": len(text),
        "parts": count.parts,
        "alphabet": ALPHABET_WORDS.get(count.alphabet, count.alphabet),
        "national": {key: NAMES.get(code, code) for key, code in tables.items() if code},
        "units": count.units,
        "per_part": count.per_part,
        "remaining": count.remaining,
        "forcing": forcing,
        "replacements": replaceable,
    }


class Compose:
    def __init__(self, console):
        self.console = console
        self.sender = Sender(console)

    def context(self, person, **values) -> dict:
        config = self.console.config
        defaults = {
            "to": "", "text": "", "errors": {}, "report": config.defaults.report, "flash": False,
            "priority": "normal", "send_after": "", "expires": "", "modem": "",
        }
        defaults.update(values)
        return {**defaults, "modems": self.console.modem_names(), "max_parts": self.sender.max_parts(person)}

    async def page(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        return self.console.render(request, "compose.html", **self.context(person, to=request.query.get("to", "")))

    async def send(self, request: web.Request) -> web.Response:
        person, form = await self.console.form(request)
        options = Options.from_form(form, self.console.config.defaults.report)
        to, text = text_field(form, "to"), text_field(form, "message")
        typed = dict(to=to, text=text, report=bool(options.report),
                     flash=options.flash, priority=options.priority or "normal", send_after=options.send_after,
                     expires=options.expires, modem=options.modem)
        recipients, problems = await self.sender.resolve(to)
        try:
            if problems:
                raise FormErrors({"to": " ".join(problems)})
            queued = await self.sender.send(person, [r.number for r in recipients], text, options)
        except FormErrors as errors:
            return self.console.render(request, "compose.html", status=400,
                                       **self.context(person, errors=errors.errors, **typed))
        await self.console.audit(person, "sent", f"{len(queued)} message(s) to "
                                 + ", ".join(m["to"] for m in queued[:5]) + (" ..." if len(queued) > 5 else ""))
        notice = f"Queued {len(queued)} message(s)."
        if len(queued) == 1:
            raise done(f"/conversations/{quote(queued[0]['to'], safe='+')}", notice)
        raise done("/messages", notice)

    async def count(self, request: web.Request) -> web.Response:
        # The checks of every POST (session, same origin, CSRF token), though the text is neither
        # stored nor sent; any role may count (a viewer's reply box shows the counter too).
        _, form = await self.console.form(request, role=None, max_size=MAX_COUNT_TEXT * 12)
        text = text_field(form, "text")[:MAX_COUNT_TEXT]
        return web.json_response(describe(text, self.national_languages()))

    async def replace(self, request: web.Request) -> web.Response:
        _, form = await self.console.form(request, role=None, max_size=MAX_COUNT_TEXT * 12)
        text = text_field(form, "text")[:MAX_COUNT_TEXT]
        replaced = replace_lookalikes(text)
        return web.json_response({"text": replaced, **describe(replaced, self.national_languages())})

    def national_languages(self) -> tuple[str, ...]:
        return tuple(getattr(self.console.config.defaults, "national_languages", ()) or ())

    async def complete(self, request: web.Request) -> web.Response:
        """Suggestions for the To field: contacts and groups matching what was typed."""
        self.console.person(request)
        typed = request.query.get("q", "").strip()[:60]
        suggestions = []
        groups = getattr(self.console.ctx, "groups", None) or getattr(self.console.config, "groups", {})
        for name in groups:
            if not typed or typed.lower() in f"group:{name}".lower():
                suggestions.append(f"group:{name}")
        if typed:
            for contact in await self.console.read(self.console.index.contacts, search=typed, limit=20):
                suggestions.append(f"{contact.name} <{contact.number}>")
        return web.json_response({"suggestions": suggestions[:30]})


def routes(console) -> list[tuple]:
    view = Compose(console)
    return [
        ("GET", "/compose", view.page),
        ("POST", "/compose", view.send),
        ("POST", "/compose/count", view.count),
        ("POST", "/compose/replace", view.replace),
        ("GET", "/compose/complete", view.complete),
    ]
