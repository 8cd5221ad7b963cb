"""`/contacts`: contacts (name, number, note) and groups, with CSV import and export.

Groups of the config are shown read-only; console groups are edited here, and a console group
cannot take a config group's name. `group:NAME` means either kind in every door
(gsmgw.groups.GroupBook): an edit here applies to the next file, request or console send."""

from __future__ import annotations

import asyncio
import csv
import io
import re

from aiohttp import web

from gsmgw.sms import AddressError, normalize_number
from gsmgw.spool.index import Contact
from gsmgw.web import forms
from gsmgw.web.app import Refused, done

GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")  # as the config's group names
CSV_COLUMNS = ("number", "name", "note", "groups")
PAGE = 200  # contacts per page of the list


class Contacts:
    def __init__(self, console):
        self.console = console

    @property
    def index(self):
        return self.console.index

    @property
    def book(self):
        return self.console.ctx.groups

    def default_country(self):
        return getattr(self.console.config, "default_country", None)

    async def context(self, request, **values) -> dict:
        search = request.query.get("q", "").strip()[:100]
        try:
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            offset = 0
        contacts = await self.console.read(self.index.contacts, search=search or None, limit=PAGE + 1, offset=offset)
        more, contacts = len(contacts) > PAGE, contacts[:PAGE]
        console_groups = await self.console.read(self.index.console_groups)
        member_of: dict[str, list[str]] = {}
        for name, members in console_groups.items():
            for number in members:
                member_of.setdefault(number, []).append(name)
        config_groups = dict(getattr(self.console.config, "groups", {}) or {})
        edit = request.query.get("edit")
        editing = await self.console.read(self.index.contact, edit) if edit else None
        names = await self.console.read(self.index.contact_names,
                                        [n for members in console_groups.values() for n in members])
        defaults = {
            "search": search, "contacts": contacts, "offset": offset, "more": more, "page": PAGE,
            "member_of": member_of, "config_groups": config_groups,
            "console_groups": console_groups, "names": names, "errors": {}, "row_errors": [],
            "form": {"number": editing.number if editing else request.query.get("number", ""),
                     "name": editing.name if editing else "", "note": editing.note if editing else "",
                     "groups": ", ".join(member_of.get(edit, [])) if editing else "",
                     "original": editing.number if editing else ""},
            "group_form": {"name": "", "members": ""}, "group_errors": {},
        }
        defaults.update(values)
        return defaults

    async def page(self, request: web.Request) -> web.Response:
        self.console.person(request)
        return self.console.render(request, "contacts.html", **await self.context(request))

    # -- contacts ---------------------------------------------------------------------------

    async def save(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        form = {key: (fields.get(key) or "").strip() for key in ("number", "name", "note", "groups", "original")}
        errors = {}
        try:
            number = normalize_number(form["number"], self.default_country())
        except AddressError as error:
            errors["number"] = str(error)
            number = ""
        if not form["name"]:
            errors["name"] = "Write the contact's name."
        groups = [g.strip() for g in forms.split_entries(form["groups"])]
        for group in groups:
            problem = self.group_name_problem(group, existing_ok=True)
            if problem:
                errors["groups"] = problem
        if errors:
            return self.console.render(request, "contacts.html", status=400,
                                       **await self.context(request, errors=errors, form=form))
        contact = Contact(number, form["name"][:100], form["note"][:500])
        original = form["original"] or None
        await self.console.read(self.index.save_contacts, [contact], self.console.clock(),
                                replace_number=original if original and original != number else None)
        await self.set_membership(number, groups, original)
        await self.console.audit(person, "saved a contact", f"{contact.name} {number}")
        raise done("/contacts", "Saved.")

    async def set_membership(self, number: str, groups: list[str], original: str | None) -> None:
        current = await self.console.read(self.index.console_groups)
        changed = {}
        for name, members in current.items():
            kept = [m for m in members if m not in (number, original)]
            if name in groups:
                kept.append(number)
            if kept != list(members):
                changed[name] = kept
        for name in groups:
            if name not in current:
                changed[name] = [number]
        for name, members in changed.items():
            await self.console.read(self.index.save_group, name, members, self.console.clock())
            self.book.set_console_group(name, tuple(dict.fromkeys(members)))

    async def delete(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        number = (fields.get("number") or "").strip()
        if not await self.console.read(self.index.delete_contact, number):
            raise Refused(404, "No such contact", f"There is no contact {number}; nothing was deleted.", back="/contacts")
        await self.console.audit(person, "deleted a contact", number)
        raise done("/contacts", "Deleted.")

    async def import_csv(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request, max_size=forms.MAX_CSV_ROWS * 200)
        data = fields.get("file")
        if not isinstance(data, (bytes, bytearray)) or not data:
            return self.console.render(request, "contacts.html", status=400, **await self.context(
                request, errors={"file": "Choose a CSV file with the columns number, name (and note, groups)."}))
        recipients, columns, problems = await asyncio.to_thread(forms.read_csv, bytes(data),
                                                                default_country=self.default_country())
        lowered = {c.lower(): c for c in columns}
        rows = []
        for r in recipients:
            if not r.name:
                problems.append(forms.RowError(r.row, lowered.get("name", "name"), "the name is empty", line=r.line))
                continue
            groups = forms.split_entries(r.fields.get(lowered.get("groups", ""), "") or "")
            bad = next((p for g in groups if (p := self.group_name_problem(g, existing_ok=True))), None)
            if bad:
                problems.append(forms.RowError(r.row, lowered.get("groups", "groups"), bad, line=r.line))
                continue
            rows.append((Contact(r.number, r.name[:100], (r.fields.get(lowered.get("note", ""), "") or "")[:500]), groups))
        if problems and not fields.get("skip_bad"):
            problems.sort(key=lambda e: (e.row is None, e.row or 0))
            return self.console.render(request, "contacts.html", status=400, **await self.context(
                request, row_errors=problems[:200], row_error_count=len(problems), good_rows=len(rows),
                errors={"file": f"{len(problems)} row(s) cannot be imported, so nothing was imported."}))
        await self.console.read(self.index.save_contacts, [c for c, _ in rows], self.console.clock())
        additions: dict[str, list[str]] = {}
        for contact, groups in rows:
            for group in groups:
                additions.setdefault(group, []).append(contact.number)
        if additions:
            current = await self.console.read(self.index.console_groups)
            for name, numbers in additions.items():
                members = tuple(dict.fromkeys([*current.get(name, ()), *numbers]))
                await self.console.read(self.index.save_group, name, members, self.console.clock())
                self.book.set_console_group(name, members)
        await self.console.audit(person, "imported contacts", f"{len(rows)} from {fields.get('file.filename') or 'a file'}"
                                 + (f", {len(problems)} bad row(s) skipped" if problems else ""))
        raise done("/contacts", f"Imported {len(rows)} contact(s).")

    async def export_csv(self, request: web.Request) -> web.Response:
        self.console.person(request)
        contacts = await self.console.read(self.index.contacts, limit=1_000_000)
        groups = await self.console.read(self.index.console_groups)
        member_of: dict[str, list[str]] = {}
        for name, members in groups.items():
            for number in members:
                member_of.setdefault(number, []).append(name)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for c in contacts:
            writer.writerow([c.number, forms.spreadsheet_safe(c.name), forms.spreadsheet_safe(c.note),
                             " ".join(member_of.get(c.number, []))])
        return web.Response(body=out.getvalue().encode("utf-8-sig"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="contacts.csv"'})

    # -- groups -----------------------------------------------------------------------------

    def group_name_problem(self, name: str, *, existing_ok: bool) -> str | None:
        if not GROUP_NAME.match(name):
            return f"{name!r} cannot be a group name; use letters, digits, '-', '_' and '.'"
        if self.book.is_config_group(name):
            return f"{name!r} is a group of the config; it is changed in the config file, not here"
        if not existing_ok and name in self.book.console:
            return f"there is already a group {name!r}"
        return None

    async def save_group(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        name = (fields.get("name") or "").strip()
        members_text = fields.get("members") or ""
        errors = {}
        problem = self.group_name_problem(name, existing_ok=True)
        if problem:
            errors["name"] = problem
        numbers, bad = [], []
        for entry in forms.split_entries(members_text):
            entry = re.sub(r"\s*\([^()]*\)\s*\Z", "", entry)  # "+49… (Anna)", as the list shows members
            match = forms.NAME_AND_NUMBER.match(entry)
            try:
                numbers.append(normalize_number(match.group(2) if match else entry, self.default_country()))
            except AddressError:
                bad.append(entry)
        if bad:
            errors["members"] = f"not phone numbers: {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}"
        if errors:
            return self.console.render(request, "contacts.html", status=400, **await self.context(
                request, group_errors=errors, group_form={"name": name, "members": members_text}))
        members = tuple(dict.fromkeys(numbers))
        await self.console.read(self.index.save_group, name, members, self.console.clock())
        self.book.set_console_group(name, members)
        await self.console.audit(person, "saved a group", f"{name}: {len(members)} member(s)")
        raise done("/contacts", f"Group {name} saved.")

    async def delete_group(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request)
        name = (fields.get("name") or "").strip()
        if self.book.is_config_group(name) or not await self.console.read(self.index.delete_group, name):
            raise Refused(404, "No such group", f"There is no console group {name!r}; nothing was deleted.",
                          back="/contacts")
        self.book.set_console_group(name, None)
        await self.console.audit(person, "deleted a group", name)
        raise done("/contacts", f"Group {name} deleted.")


def routes(console) -> list[tuple]:
    view = Contacts(console)
    return [
        ("GET", "/contacts", view.page),
        ("POST", "/contacts", view.save),
        ("POST", "/contacts/delete", view.delete),
        ("POST", "/contacts/import", view.import_csv),
        ("GET", "/contacts/export.csv", view.export_csv),
        ("POST", "/contacts/groups", view.save_group),
        ("POST", "/contacts/groups/delete", view.delete_group),
    ]
