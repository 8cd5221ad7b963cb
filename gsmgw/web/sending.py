"""Sending from the console: the same checks and the same path as the HTTP API.

Recipients are read by gsmgw.web.forms; destinations, roles and limits are gsmgw.clients'
(`check_destinations`, `acquire`); fields are checked by gsmgw.http.validation, as a JSON
request's are; files are written by `HttpServer.queue_prepared` (all or none, group commit).
Errors come back per form field, with words a person can act on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gsmgw.clients import UnknownGroup
from gsmgw.http.validation import (
    ApiError,
    PreparedMessage,
    SendRequest,
    check_destinations,
    check_text,
    parse_send_request,
    prepare_messages,
)
from gsmgw.daemon.indexer import MessageChange
from gsmgw.spool.format import SpoolFormatError, iso, message_text, parse_outgoing, read_spool_file, update_headers
from gsmgw.spool.index import OUT, QUEUED, IndexedMessage
from gsmgw.web import forms

OPTION_FIELDS = ("report", "flash", "priority", "send_after", "expires", "modem")


class FormErrors(Exception):
    """Problems per field (`to`, `message`, an option, or `form` for the whole form)."""

    def __init__(self, errors: Mapping[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass
class Options:
    """The compose options as typed; `fields()` turns them into the API's JSON fields."""

    report: bool | None = None
    flash: bool = False
    priority: str = ""
    send_after: str = ""
    expires: str = ""
    modem: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_form(cls, form: Mapping[str, Any], default_report: bool) -> "Options":
        return cls(
            report=bool(form.get("report")) if form.get("options") else default_report,
            flash=bool(form.get("flash")),
            priority=(form.get("priority") or "").strip(),
            send_after=(form.get("send_after") or "").strip(),
            expires=(form.get("expires") or "").strip(),
            modem=(form.get("modem") or "").strip(),
        )

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"report": self.report, "flash": self.flash}
        if self.priority and self.priority != "normal":
            out["priority"] = self.priority
        if self.send_after:
            try:
                moment = forms.local_datetime(self.send_after)
            except ValueError:
                moment = None
            out["send_after"] = iso(moment) if moment else self.send_after
        if self.expires:
            try:
                moment = forms.local_datetime(self.expires)
                out["expires"] = iso(moment) if moment else self.expires
            except ValueError:
                out["expires"] = self.expires  # a duration ("2 hours"): the API reads it
        if self.modem:
            out["modem"] = self.modem
        return {key: value for key, value in out.items() if value is not None}


SENT_HEADERS = ("IMSI", "Sent", "Parts", "Message_id", "Status", "Delivered", "Modem")


def retry_file(
    original: bytes, *, now: datetime, old_id: str, sent: bool = False, seal_key: bytes | None = None
) -> bytes:
    """A failed message's file, ready to be queued again (pure): the failure headers (and, for a
    file from sent/ that a report failed, what sending added) go; `Retry_of:` names the old id.
    Trusted headers (`Client:`, `Callback:`...) stay only if the original's seal verifies with
    `seal_key`: the retry is queued, and sealed, by the console, so a hand-written file's would
    otherwise become real."""
    changes: dict[str, str | None] = {"Failed": None, "Fail_reason": None, "Attempts": None,
                                      "Queued": iso(now), "Retry_of": old_id}
    if sent:
        changes.update({name: None for name in SENT_HEADERS})
    try:
        ignored = read_spool_file(original, seal_key=seal_key).ignored
    except SpoolFormatError:
        ignored = ()  # update_headers below says what is wrong with the file
    changes.update({name: None for name in ignored})
    return update_headers(original, changes)


class Sender:
    def __init__(self, console):
        self.console = console

    @property
    def server(self):
        return self.console.server

    async def resolve(self, text: str) -> tuple[list[forms.Recipient], list[str]]:
        """Recipients of a To field: numbers, group:NAME (config or console), contact names."""
        registry = self.server.registry
        index = self.console.index
        default_country = getattr(self.console.config, "default_country", None)
        entries = forms.split_entries(text)
        names = [entry for entry in entries if not forms.NUMBER_LIKE.match(entry) and ":" not in entry
                 and "<" not in entry]
        named: dict[str, list[tuple[str, str]]] = {}
        for name in names:
            named[name] = [(c.number, c.name) for c in await self.console.read(index.contacts_named, name)]

        def expand(group: str):
            try:
                return registry.expand(f"group:{group}")
            except UnknownGroup as error:
                raise ValueError(str(error)) from None

        recipients, problems = forms.resolve_recipients(
            text, default_country=default_country, expand_group=expand,
            contacts_named=lambda name: named.get(name, []))
        if recipients:
            known = await self.console.read(index.contact_names, [r.number for r in recipients])
            recipients = [forms.Recipient(r.number, r.name or known.get(r.number, ""), r.fields, r.row)
                          for r in recipients]
        return recipients, problems

    def check_options(self, options: Options, sample: str) -> dict[str, str]:
        """Each option checked on its own by the API's validator, so an error sits by its field."""
        errors = {}
        policy, registry, now = self.server.policy, self.server.registry, datetime.now().astimezone()
        for name, value in options.fields().items():
            try:
                parse_send_request({"to": sample, "text": "x", name: value}, registry=registry, policy=policy, now=now)
            except ApiError as error:
                # The API's words name its JSON field ("send_after": ...); beside the field it is clear.
                errors[name] = error.message.removeprefix(f'"{name}": ')
        return errors

    def max_parts(self, person) -> int:
        """The most parts one message of the person's client may have, as every door caps it."""
        return self.server.registry.max_parts_for(person.client)

    def check_message(self, person, text: str) -> tuple[int, str]:
        defaults = self.server.policy.defaults
        return check_text(text, self.max_parts(person), field="Message",
                          national_languages=getattr(defaults, "national_languages", ()) or ())

    async def retry(self, person, failed: Sequence[tuple[str, str]], *, campaign: str | None = None) -> list[tuple[str, str]]:
        """Queue failed messages [(id, number)] again, all or none, under the person's client
        rules; returns [(old id, new id)]. Each keeps its `Client:` (an admin may retry another
        client's). FormErrors says why nothing was queued."""
        registry = self.server.registry
        reasons = [v.reason for v in (registry.check_destination(person.client, number) for _, number in failed)
                   if not v.allowed]
        if reasons:
            raise FormErrors({"form": f"nothing was queued: {reasons[0]}"})
        now = datetime.now().astimezone()
        spool = self.console.ctx.spool

        def prepare() -> list[PreparedMessage]:
            out = []
            for message_id, number in failed:
                for directory in ("failed", "sent"):  # a report may have failed a message in sent/
                    try:
                        original = spool.read(directory, message_id)
                        break
                    except FileNotFoundError:
                        continue
                else:
                    raise FormErrors({"form": f"the file of {message_id} is gone from failed/ and sent/; "
                                              "nothing was queued"})
                out.append(self.prepared_from_file(number, retry_file(original, now=now, old_id=message_id,
                                                                      sent=directory == "sent",
                                                                      seal_key=spool.seal_key)))
            return out

        try:
            prepared = await asyncio.to_thread(prepare)
        except (OSError, ValueError, ApiError) as error:
            raise FormErrors({"form": f"nothing was queued: {getattr(error, 'message', error)}"}) from None
        rows = [await self.console.read(self.console.index.message, OUT, message_id) for message_id, _ in failed]
        queued = await self.queue(person, prepared, owners=[row.client if row else None for row in rows],
                                  campaign=campaign)
        return [(old, answer["id"]) for (old, _), answer in zip(failed, queued)]

    def prepared_from_file(self, number: str, data: bytes) -> PreparedMessage:
        """A message file made here (a retry) as the daemon's reader sees it; ApiError if it
        cannot be sent as it is."""
        policy = self.server.policy
        try:
            message = parse_outgoing(data, now=datetime.now().astimezone(), default_country=policy.default_country,
                                     defaults=policy.defaults)
        except SpoolFormatError as error:
            raise ApiError(400, f"the message cannot be queued again: {error.reason}") from None
        return PreparedMessage(number, message.parts, message.alphabet, data, message.national)

    async def send(self, person, recipients: Sequence[str], text: str, options: Options,
                   *, headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Queue one message per recipient for `person`, all or none; FormErrors otherwise."""
        errors: dict[str, str] = {}
        if not recipients:
            errors["to"] = "Write at least one number, contact or group:NAME."
        try:
            self.check_message(person, text)
        except ApiError as error:
            errors["message"] = error.message
        if recipients:
            errors.update(self.check_options(options, recipients[0]))
        if errors:
            raise FormErrors(errors)
        now = datetime.now().astimezone()
        try:
            request = parse_send_request({"to": list(recipients), "text": text, **options.fields()},
                                         registry=self.server.registry, policy=self.server.policy, now=now,
                                         max_parts_cap=self.max_parts(person))
        except ApiError as error:
            raise FormErrors({"form": error.message}) from None
        try:
            check_destinations(self.server.registry, person.client, request.recipients)
        except ApiError as error:
            raise FormErrors({"to": error.message}) from None
        prepared = await asyncio.to_thread(prepare_messages, request, client_name=person.name,
                                           policy=self.server.policy, now=now, headers=headers)
        return await self.queue(person, prepared)

    async def queue(self, person, prepared: list[PreparedMessage], *, owners: Sequence[str | None] | None = None,
                    campaign: str | None = None) -> list[dict[str, Any]]:
        """Write the files (all or none), then put them into the index at once, so the page the
        person lands on shows them `queued` before the daemon has even taken them. `owners`: each
        file's `Client:` when it is not the person's (a retry keeps the original's)."""
        try:
            queued = await self.server.queue_prepared(person.client, prepared)
        except ApiError as error:
            raise FormErrors({"form": error.message}) from None
        now = time.time()

        def rows() -> list[IndexedMessage]:
            out = []
            for position, (answer, message) in enumerate(zip(queued, prepared)):
                owner = owners[position] if owners is not None else person.name
                out.append(IndexedMessage(OUT, answer["id"], message.to, QUEUED, now, client=owner, campaign=campaign,
                                          text=message_text(message.data), parts=message.parts))
            return self.console.index.record_new(out)

        inserted = await self.console.read(rows)
        self.console.hub.on_changes([MessageChange(row, now) for row in inserted])
        return queued

    def prepare_one(self, person, number: str, text: str, options: Options, headers: Mapping[str, str],
                    now: datetime) -> PreparedMessage:
        """One recipient's file with its own text (campaign placeholders); ApiError if it cannot be."""
        parts, alphabet = self.check_message(person, text)
        cap = self.max_parts(person)
        request = SendRequest(recipients=(number,), text=text, parts=parts, alphabet=alphabet,
                              report=options.report, flash=options.flash,
                              send_after=options.fields().get("send_after"),
                              max_parts=cap if cap != self.server.policy.default_max_parts else None)
        return prepare_messages(request, client_name=person.name, policy=self.server.policy, now=now,
                                headers=headers)[0]
