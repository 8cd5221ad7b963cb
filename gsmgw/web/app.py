"""The web console (WEB.md): one more door on the spool and the journal, served by the daemon's
HTTP listener (gsmgw.http.server) at `/`.

What it reads: the journal's message index (gsmgw.spool.index; never a directory listing per
request), the daemon's status snapshot, the client registry. What it writes: outgoing files,
only through the HTTP server's send path (`HttpServer.queue_prepared`: the same client rules,
limits and group commit as the REST API), and its own records in the index (contacts, groups,
campaigns, opt-out list, audit log).

Trust: every page needs a signed-in person (gsmgw.web.auth); what a person sees follows the
visibility rule of gsmgw.clients; what they may do follows their role. Every form POST carries
the session's CSRF token and is refused, with a page saying so, without it. Every text from
outside is escaped by the templates (autoescape), and the pages carry a CSP without inline
script. Index reads run in threads of the console's own, so a slow query never holds the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, ParamSpec, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from aiohttp import BodyPartReader, web

from gsmgw.clients import ADMIN, OPERATOR, Client, visibility
from gsmgw.spool.index import IN, OUT, Scope
from gsmgw.web import auth
from gsmgw.web.sse import Connection, Hub

if TYPE_CHECKING:  # the daemon hands it over; this module does not import the daemon
    from gsmgw.daemon.context import GatewayContext
    from gsmgw.http.server import HttpServer

log = logging.getLogger("gsmgw.web")
Params = ParamSpec("Params")
Result = TypeVar("Result")

HERE = Path(__file__).parent
API_PREFIXES = ("/api/", "/cgi-bin/", "/metrics", "/healthz")
CSP = ("default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
SAMPLE_EVERY = 300.0
CACHE_ENTRIES = 64


class Refused(Exception):
    """A request the console answers with a page saying what happened (and that nothing was done)."""

    def __init__(self, status: int, title: str, message: str, *, back: str | None = None):
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.back = back


@dataclass
class Person:
    """The signed-in person of one request: their client entry (read again from the registry on
    every request, so a config reload applies at once) and their session."""

    client: Client
    session: auth.Session

    @property
    def name(self) -> str:
        return self.client.name

    @property
    def role(self) -> str:
        return self.client.role

    @property
    def is_admin(self) -> bool:
        return self.client.is_admin

    @property
    def may_send(self) -> bool:
        return self.client.may_send

    @property
    def visibility(self):
        return visibility(self.client)

    def scope(self, modem_names) -> Scope:
        seen = self.visibility
        if seen.everything:
            return Scope.all()
        return Scope(client=self.client.name, modems=seen.inbound_modems(modem_names))

    def sees(self, direction: str, owner: str | None) -> bool:
        seen = self.visibility
        return seen.sees_outbound(owner) if direction == OUT else seen.sees_inbound(owner)


def local(moment: float | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment).astimezone().strftime(pattern)


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = local
    env.filters["clock"] = lambda moment: local(moment, "%H:%M:%S")
    env.filters["day"] = lambda moment: local(moment, "%Y-%m-%d")
    env.filters["path"] = lambda text: quote(str(text), safe="+")
    env.filters["query"] = lambda mapping: urlencode({k: v for k, v in mapping.items() if v not in (None, "")})
    return env


def text_field(fields: Mapping[str, str | bytes], name: str) -> str:
    """A text field of a form; "" when it is missing or a file came in its place."""
    value = fields.get(name)
    return value if isinstance(value, str) else ""


async def text_fields(request: web.Request) -> dict[str, str]:
    """The text fields of a posted form, the first of each name. A file sent where a text field
    belongs is not one: the field reads as missing, never as text."""
    posted = await request.post()
    fields: dict[str, str] = {}
    for name, value in posted.items():
        if isinstance(value, str):
            fields.setdefault(name, value)
    return fields


class Console:
    def __init__(self, server: HttpServer, ctx: GatewayContext):
        self.server = server
        self.ctx = ctx
        self.sessions = auth.Sessions()
        self.throttle = auth.Throttle()
        self.links = auth.OneTimeLinks()
        self.templates = make_templates()
        self.secure_cookies = getattr(getattr(server, "http_config", None), "tls", None) is not None
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gsmgw-web")
        self.hub = Hub(server.snapshot)
        self._unsubscribe: Callable[[], None] = lambda: None
        self._sampler: asyncio.Task | None = None
        self._cache: dict[tuple, asyncio.Future] = {}
        self._cache_version = -1
        self.clock = time.time

    # -- wiring -------------------------------------------------------------------------------

    @property
    def index(self):
        return self.ctx.index

    @property
    def config(self):
        return self.ctx.config

    @property
    def simulator(self):
        return getattr(self.ctx, "simulator", None)

    def install(self, app: web.Application) -> None:
        from gsmgw.web.views import all_routes

        app.middlewares.append(self._middleware)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_get("/logout", self.logout_page)
        app.router.add_post("/logout", self.logout)
        app.router.add_get("/events", self.events)
        app.router.add_static("/static", str(HERE / "static"), append_version=False)
        for route in all_routes(self):
            app.router.add_route(*route)
        indexer = getattr(self.ctx, "indexer", None)
        if indexer is not None:
            self._unsubscribe = indexer.subscribe(self.hub.on_changes)
        app.on_startup.append(self._start_sampler)
        app.on_shutdown.append(self.hub.close)
        app.on_cleanup.append(self._cleanup)
        self.ctx.console = self

    async def _start_sampler(self, app) -> None:
        self._sampler = asyncio.ensure_future(self._sample_signals())

    async def _sample_signals(self) -> None:
        """The modems' signal every SAMPLE_EVERY seconds, for the modem page's history."""
        while True:
            try:
                snapshot = await self.server.snapshot()
                now = self.clock()
                samples = [(m.get("name"), now, m.get("signal_dbm")) for m in snapshot.get("modems") or []]
                await self.read(self.index.record_signal, samples)
                await self.read(self.index.prune, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("console: recording the signal history failed; trying again later")
            await asyncio.sleep(SAMPLE_EVERY)

    async def _cleanup(self, app) -> None:
        self._unsubscribe()
        if self._sampler is not None:
            self._sampler.cancel()
        self._executor.shutdown(wait=False)

    def modem_names(self) -> list[str]:
        return [modem.name for modem in (getattr(self.config, "modems", ()) or ())]

    async def cached(self, key: tuple, produce: Callable) -> Any:
        """The value of `await produce()` for `key` at the hub's current version: the live parts
        many pages fetch after the same notice are made once (bounded; a new version empties it)."""
        if self._cache_version != self.hub.version:
            self._cache.clear()
            self._cache_version = self.hub.version
        if key not in self._cache:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = asyncio.ensure_future(produce())
        return await asyncio.shield(self._cache[key])

    async def read(self, function: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
        """Run an index query in one of the console's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    def login_link(self, user: str) -> str:
        """A one-time sign-in link for `user` (WEB.md: 10 minutes, one use)."""
        token = self.links.issue(user, self.clock())
        return f"{self.server.url}/login?{urlencode({'token': token})}"

    async def audit(self, person: Person | str, action: str, detail: str = "") -> None:
        user = person if isinstance(person, str) else person.name
        await self.read(self.index.audit, self.clock(), user, action, detail)

    # -- rendering ----------------------------------------------------------------------------

    def render(self, request: web.Request, template: str, *, status: int = 200, topics: tuple[str, ...] = (),
               **context: Any) -> web.Response:
        """A page (or, for a live part, a fragment); `topics` are the live updates the page follows."""
        body = self.render_text(request, template, topics=topics, **context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    async def live_part(self, request: web.Request, key: tuple, template: str, produce: Callable) -> web.Response:
        """A live part of a page (what a notice makes the page fetch), rendered once per hub
        version and `key`; `key` must hold everything the part depends on (the person's scope,
        and the session when the part holds a form)."""
        async def render() -> str:
            return self.render_text(request, template, **await produce())

        body = await self.cached((template, *key), render)
        return web.Response(text=body, content_type="text/html", charset="utf-8")

    def render_text(self, request: web.Request, template: str, *, topics: tuple[str, ...] = (), **context: Any) -> str:
        person: Person | None = request.get("person")
        if not isinstance(person, Person):
            person = None
        return self.templates.get_template(template).render(
            person=person,
            topics=list(topics),
            csrf=person.session.csrf if person else "",
            simulated=self.simulator is not None,
            path=request.path,
            notice=request.query.get("notice", ""),
            **context,
        )

    def refused_page(self, request: web.Request, refused: Refused) -> web.Response:
        return self.render(request, "refused.html", status=refused.status, title=refused.title,
                           message=refused.message, back=refused.back)

    # -- middleware: security headers, sessions, error pages ------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIXES):
            return await handler(request)
        request["person"] = self._person(request)
        try:
            response = await handler(request)
        except web.HTTPMove as redirect:
            # A view's "go there" (after a POST, or to sign in); answered here so that the HTTP
            # server's JSON error handler never sees it.
            response = see_other(str(redirect.location), status=redirect.status)
            for name, morsel in redirect.cookies.items():
                response.cookies[name] = morsel
        except Refused as refused:
            response = self.refused_page(request, refused)
        except web.HTTPNotFound:
            response = self.refused_page(request, Refused(404, "Not found", f"There is no page {request.path}.",
                                                          back="/"))
        except web.HTTPMethodNotAllowed:
            response = self.refused_page(request, Refused(405, "Not possible here",
                                                          f"{request.method} is not possible on {request.path}.",
                                                          back=request.path))
        except web.HTTPException as exc:
            response = self.refused_page(request, Refused(exc.status, exc.reason or "Error", exc.text or exc.reason))
        if not response.prepared:
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            if not request.path.startswith("/static/"):
                response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _person(self, request: web.Request) -> Person | str | None:
        found = self.sessions.get(request.cookies.get(auth.SESSION_COOKIE), self.clock())
        if not isinstance(found, auth.Session):
            return found
        client = self.server.registry.by_name(found.user)
        if client is None:
            self.sessions.end(found.token)
            return auth.EXPIRED
        return Person(client, found)

    # -- access rules (used by every view) ------------------------------------------------------

    def person(self, request: web.Request) -> Person:
        """The signed-in person of a page request; a redirect to the sign-in page otherwise."""
        person = request.get("person")
        if isinstance(person, Person):
            return person
        target = request.path_qs
        raise web.HTTPSeeOther("/login?" + urlencode({"next": target, **({"expired": "1"} if person == auth.EXPIRED else {})}))

    async def form(
        self, request: web.Request, *, role: str | None = OPERATOR, max_size: int = 1024 * 1024
    ) -> tuple[Person, Mapping[str, str | bytes]]:
        """The person and form fields of a POST, after the checks every POST gets: a live session,
        the session's CSRF token, a same-origin request, and the role."""
        person = request.get("person")
        if not isinstance(person, Person):
            raise Refused(401, "Your session has ended",
                          "You were signed out (8 hours without activity, or the gateway restarted), so "
                          "nothing was sent or changed. Sign in again and repeat what you did.", back="/login")
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc not in self._own_hosts(request):
            raise Refused(403, "Refused: the form came from another site",
                          "This request was sent by a page of another site, so nothing was sent or changed.",
                          back="/")
        fields: Mapping[str, str | bytes]
        if request.content_type.startswith("multipart/"):
            fields = await self._multipart(request, max_size)
        else:
            if request.content_length is not None and request.content_length > max_size:
                raise Refused(413, "Too large", f"The form is over {max_size // 1024} KiB; nothing was sent.")
            fields = await text_fields(request)
        csrf = fields.get("csrf")
        if not auth.csrf_matches(person.session.csrf,
                                 csrf if isinstance(csrf, str) and csrf else request.headers.get("X-CSRF-Token")):
            raise Refused(403, "Refused: the form's security token is missing or wrong",
                          "This form was not sent from a page of this console (its CSRF token is missing or "
                          "does not match your session), so nothing was sent or changed. Go back, reload the "
                          "page and try again.", back=request.headers.get("Referer") and "/" or "/")
        self.require(person, role)
        return person, fields

    def require(self, person: Person, role: str | None) -> None:
        if role == ADMIN and not person.is_admin:
            raise Refused(403, "Only for admins", "Your account is not an admin; nothing was changed.", back="/")
        if role == OPERATOR and not person.may_send:
            raise Refused(403, "Your account may only read",
                          f"{person.name} is a viewer: it may read but not send or change anything, so nothing "
                          "was sent. Ask the gateway's admin for the role operator.", back="/")

    @staticmethod
    def _own_hosts(request: web.Request) -> set[str]:
        """The host[:port] this console is reached at: the Host header, or a reverse proxy's
        X-Forwarded-Host (a proxy that terminates TLS changes the scheme, not the host)."""
        hosts = {request.host}
        forwarded = request.headers.get("X-Forwarded-Host")
        if forwarded:
            hosts.add(forwarded.split(",")[0].strip())
        return hosts

    async def _multipart(self, request: web.Request, limit: int) -> dict[str, str | bytes]:
        """Text fields as str; a file's content as bytes under its field's name, and its file
        name under `<name>.filename`."""
        reader = await request.multipart()
        fields: dict[str, str | bytes] = {}
        total = 0
        while True:
            part = await reader.next()
            if part is None:
                return fields
            if not isinstance(part, BodyPartReader) or part.name is None:
                raise Refused(400, "The form cannot be read",
                              "The form holds a part without a field name (or a nested multipart); nothing was "
                              "sent. Send it from the console's page.")
            chunks = []
            while True:
                chunk = await part.read_chunk(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise Refused(413, "The upload is too large",
                                  f"The form with its file is over {limit // (1024 * 1024)} MiB; nothing was sent. "
                                  "Split the file.")
                chunks.append(chunk)
            data = b"".join(chunks)
            if part.filename is not None:
                fields[part.name] = data
                fields[f"{part.name}.filename"] = part.filename
            else:
                fields[part.name] = data.decode("utf-8", "replace")

    # -- sign-in and sign-out ---------------------------------------------------------------------

    def _cookie(self, response: web.Response, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=self.secure_cookies, path="/",
                            max_age=max_age)

    async def login_page(self, request: web.Request) -> web.Response:
        token = request.query.get("token")
        if token is not None:
            user = self.links.redeem(token, self.clock())
            client = self.server.registry.by_name(user) if user else None
            if client is None:
                return self._login_form(request, status=403, error=(
                    "This sign-in link does not work any more: each link works once, for 10 minutes. Sign in "
                    "with your password, or start the gateway again for a new link."))
            return await self._signed_in(request, client, "link", "/")
        error = ""
        if request.query.get("expired"):
            error = "Your session has ended (8 hours without activity, or the gateway restarted). Sign in again."
        return self._login_form(request, error=error)

    def _login_form(self, request: web.Request, *, status: int = 200, error: str = "", user: str = "",
                    target: str | None = None) -> web.Response:
        login_token = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_token()
        response = self.render(request, "login.html", status=status, error=error, user=user,
                               login_token=login_token, next=_safe_next(target or request.query.get("next")))
        self._cookie(response, auth.LOGIN_COOKIE, login_token)
        return response

    async def login(self, request: web.Request) -> web.Response:
        fields = await text_fields(request)
        user = (fields.get("user") or "").strip()
        password = fields.get("password") or ""
        target = _safe_next(fields.get("next"))
        if not auth.csrf_matches(request.cookies.get(auth.LOGIN_COOKIE), fields.get("csrf")):
            raise Refused(403, "Refused: the sign-in form's security token is missing or wrong",
                          "This sign-in was not sent from the console's sign-in page, so nobody was signed in. "
                          "Open the sign-in page and try again.", back="/login")
        now = self.clock()
        wait = self.throttle.wait(user, now)
        if wait > 0:
            return self._login_form(request, status=429, user=user, target=target, error=(
                f"Too many wrong passwords for this user in a row. Wait {wait:.0f} s before the next try."))
        client = await self.read(self.server.registry.authenticate_web, user, password)
        if client is None:
            self.throttle.failed(user, self.clock())
            await self.audit(user or "(empty)", "sign-in refused", "wrong user name or password")
            return self._login_form(request, status=401, user=user, target=target,
                                    error="The user name or the password is wrong.")
        self.throttle.succeeded(user)
        return await self._signed_in(request, client, "password", target)

    async def _signed_in(self, request: web.Request, client: Client, via: str, target: str) -> web.Response:
        old = request.cookies.get(auth.SESSION_COOKIE)
        self.sessions.end(old)  # a new session token at every sign-in (no fixation)
        session = self.sessions.create(client.name, via, self.clock())
        await self.audit(client.name, "signed in", "with a one-time link" if via == "link" else "with a password")
        response = see_other(target)
        self._cookie(response, auth.SESSION_COOKIE, session.token)
        response.del_cookie(auth.LOGIN_COOKIE, path="/")
        return response

    async def logout_page(self, request: web.Request) -> web.Response:
        self.person(request)
        return self.render(request, "logout.html")

    async def logout(self, request: web.Request) -> web.Response:
        person = request.get("person")
        if isinstance(person, Person):
            fields = await text_fields(request)
            if not auth.csrf_matches(person.session.csrf, fields.get("csrf")):
                raise Refused(403, "Refused: the form's security token is missing or wrong",
                              "This sign-out did not come from a page of this console; you are still signed in.",
                              back="/")
            self.sessions.end(person.session.token)
            await self.audit(person, "signed out")
        response = see_other("/login")
        response.del_cookie(auth.SESSION_COOKIE, path="/")
        return response

    # -- live updates -----------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        person = request.get("person")
        if not isinstance(person, Person):
            raise Refused(401, "Your session has ended", "Sign in again for live updates.", back="/login")
        topics = set(sorted(set(request.query.getall("topic", [])))[:8])
        token = person.session.token

        def alive() -> bool:
            return self.sessions.peek(token, self.clock())

        def sees(direction: str, owner: str | None) -> bool:
            current = self.server.registry.by_name(person.name)
            return current is not None and Person(current, person.session).sees(direction, owner)

        connection = Connection(person.name, sees, topics, alive)
        return await self.hub.stream(request, connection)


def done(location: str, notice: str) -> web.HTTPSeeOther:
    """Where a successful POST sends the browser, with a line that says what was done."""
    joiner = "&" if "?" in location else "?"
    return web.HTTPSeeOther(location + joiner + urlencode({"notice": notice}))


def see_other(location: str, *, status: int = 303) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never `//other.example` or a scheme) is followed after sign-in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def direction_word(direction: str) -> str:
    return "received" if direction == IN else "sent"
