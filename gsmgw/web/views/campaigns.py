"""`/campaigns` and `/campaigns/{id}`: broadcasts to groups, contacts or an uploaded CSV with
`{column}` placeholders, queued all or none; their live counts, chart, failures, retry and export.

How a campaign is queued (all or none, also across a crash):
  1. every recipient is read and checked (number, the client's rules, the filled-in text within
     max_parts); with a bad row nothing is queued, the page names row and column, and the person
     may start again skipping the bad rows (the upload is kept in the session);
  2. the campaign and its recipients are recorded in the index as `preparing`;
  3. one file per recipient, each with `Campaign: <id>`, is written by `Spool.submit_many`
     through the HTTP server's send path (limits, group commit): all of them or none;
  4. the files' names are recorded and the campaign is `queued`.
A crash in 3 leaves no file (the spool's recovery removes a batch whose writer died); a crash
between 3 and 4 leaves every file, and the next start finds them by the `Campaign:` header
(`settle_interrupted`). Opted-out recipients are queued too: the daemon moves their message to
failed/ with `opted out (STOP received …)`, so the campaign shows them as opted out.
"""

from __future__ import annotations

import asyncio
import builtins  # Campaigns.list shadows list in the class body
import csv
import io
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web

from gsmgw.http.validation import ApiError
from gsmgw.spool.format import SpoolFormatError
from gsmgw.spool.index import (
    CAMPAIGN_ABANDONED,
    CAMPAIGN_PREPARING,
    FINISHED_STATES,
    Campaign,
)
from gsmgw.http.validation import PreparedMessage
from gsmgw.web import charts, forms
from gsmgw.web.app import Refused, done
from gsmgw.web.sending import FormErrors, Options, Sender

STATE_ORDER = ("queued", "pending", "delivered", "failed", "opted_out")
SHOWN_FAILURES = 100
PAGE = 20  # campaigns per page of the list (each is counted: a page costs its campaigns' recipients)


def new_campaign_id(now: datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Campaigns:
    def __init__(self, console):
        self.console = console
        self.sender = Sender(console)
        self._settled = False

    @property
    def index(self):
        return self.console.index

    async def settle_interrupted(self) -> None:
        """Campaigns left `preparing` by a stop: queued when their files exist, else not queued."""
        if self._settled:
            return
        self._settled = True
        indexer = getattr(self.console.ctx, "indexer", None)
        if indexer is not None:
            await indexer.flush()  # the start-up catch-up indexes files still in outgoing/
        for campaign in await self.console.read(self.index.campaigns_in_state, CAMPAIGN_PREPARING):
            found = await self.console.read(self.index.reconcile_campaign, campaign.id)
            state = "queued" if found else CAMPAIGN_ABANDONED
            await self.console.read(self.index.set_campaign_state, campaign.id, state)

    # -- pages ------------------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        await self.settle_interrupted()
        offset = _offset(request)
        if request.query.get("fragment"):
            return await self.console.live_part(request, (person.name, person.is_admin, offset), "campaigns_live.html",
                                                lambda: self.list_context(person, offset=offset))
        return self.console.render(request, "campaigns.html", topics=("campaigns",),
                                   **await self.list_context(person, offset=offset))

    async def list_context(self, person, *, offset: int = 0, **values) -> dict:
        campaigns = await self.console.read(self.index.campaigns, None if person.is_admin else person.name,
                                            limit=PAGE + 1, offset=offset)
        more, campaigns = len(campaigns) > PAGE, campaigns[:PAGE]
        rows = []
        for campaign in campaigns:
            rows.append((campaign, await self.console.read(self.index.campaign_counts, campaign.id)))
        defaults = {"name": "", "recipients": "", "text": "", "send_after": "", "errors": {}, "row_errors": [],
                    "upload": "", "upload_name": "", "valid": 0, "optouts": 0}
        defaults.update(values)
        return {"campaigns": rows, "offset": offset, "more": more, "page": PAGE,
                "max_parts": self.sender.max_parts(person), **defaults}

    def visible(self, person, campaign: Campaign | None) -> Campaign:
        if campaign is None or not (person.is_admin or campaign.client == person.name):
            raise Refused(404, "No such campaign", "There is no campaign with this id that you may see.",
                          back="/campaigns")
        return campaign

    async def page(self, request: web.Request) -> web.Response:
        person = self.console.person(request)
        await self.settle_interrupted()
        campaign = self.visible(person, await self.console.read(self.index.campaign, request.match_info["id"]))
        if request.query.get("fragment"):  # holds the retry form: per session
            return await self.console.live_part(request, (campaign.id, person.session.token), "campaign_live.html",
                                                lambda: self.detail_context(campaign))
        return self.console.render(request, "campaign.html", topics=(f"campaign:{campaign.id}",),
                                   **await self.detail_context(campaign))

    async def detail_context(self, campaign: Campaign) -> dict:
        counts = await self.console.read(self.index.campaign_counts, campaign.id)
        failures = await self.console.read(self.failures, campaign.id)
        chart = charts.states_chart({"queued": counts.queued, "pending": counts.pending,
                                     "delivered": counts.delivered, "failed": counts.failed,
                                     "opted_out": counts.opted_out}, STATE_ORDER)
        return {"campaign": campaign, "counts": counts, "failures": failures, "chart": chart,
                "retryable": sum(1 for f in failures if not f.fail_reason or not f.fail_reason.startswith("opted out"))
                if len(failures) < SHOWN_FAILURES else counts.failed}

    def failures(self, campaign_id: str) -> builtins.list:
        found = []
        for recipient in self.index.campaign_recipients(campaign_id):
            if recipient.state in FINISHED_STATES:
                found.append(recipient)
                if len(found) >= SHOWN_FAILURES:
                    break
        return found

    async def export(self, request: web.Request) -> web.StreamResponse:
        person = self.console.person(request)
        campaign = self.visible(person, await self.console.read(self.index.campaign, request.match_info["id"]))
        rows = await self.console.read(lambda: list(self.index.campaign_recipients(campaign.id)))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["number", "name", "state", "fail_reason", "message_id"])
        for r in rows:
            state = r.state or ("queued" if r.message_id else "not queued")
            if r.fail_reason and r.fail_reason.startswith("opted out"):
                state = "opted out"
            safe = forms.spreadsheet_safe
            writer.writerow([safe(r.number), safe(r.name), state, safe(r.fail_reason or ""), r.message_id or ""])
        filename = f"campaign-{campaign.id}.csv"
        return web.Response(body=out.getvalue().encode("utf-8-sig"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    # -- starting one -----------------------------------------------------------------------

    async def start(self, request: web.Request) -> web.Response:
        person, form = await self.console.form(request, max_size=forms.MAX_CSV_ROWS * 200)
        name = (form.get("name") or "").strip()[:100]
        text = form.get("message") or ""
        typed = (form.get("recipients") or "").strip()
        send_after = (form.get("send_after") or "").strip()
        upload_token = (form.get("upload") or "").strip()
        values: dict[str, Any] = {"name": name, "recipients": typed, "text": text, "send_after": send_after}
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "Give the campaign a name (it is shown in the list and in the export)."

        # Recipients: typed ones, and an uploaded CSV (or the one kept from the previous try).
        recipients, problems = await self.sender.resolve(typed) if typed else ([], [])
        if problems:
            errors["recipients"] = " ".join(problems)
        upload = None
        data = form.get("file")
        if isinstance(data, (bytes, bytearray)) and data:
            parsed = await asyncio.to_thread(forms.read_csv, bytes(data),
                                             default_country=getattr(self.console.config, "default_country", None))
            upload_token = secrets.token_urlsafe(12)
            upload = (form.get("file.filename") or "upload.csv", *parsed)
            person.session.keep(upload_token, upload)
        elif upload_token:
            upload = person.session.stash.get(upload_token)
            if upload is None:
                errors["file"] = "The uploaded file is no longer kept (you signed in again); choose it again."
                upload_token = ""
        columns: list[str] = []
        row_errors: list[forms.RowError] = []
        if upload is not None:
            filename, csv_recipients, columns, row_errors = upload
            values["upload_name"] = filename
            known = {r.number for r in recipients}
            recipients += [r for r in csv_recipients if r.number not in known]
        values["upload"] = upload_token
        if not recipients and not errors.get("recipients") and not errors.get("file") and not row_errors:
            errors["recipients"] = "Name the recipients (groups, contacts, numbers) or choose a CSV file."

        if not text.strip():
            errors["message"] = "Write the message."
        unknown = forms.unknown_placeholders(text, columns)
        if unknown:
            errors["message"] = (f"The message uses {', '.join('{' + u + '}' for u in unknown)}, but there is no such "
                                 f"column (columns: {', '.join(columns) or 'none: only {name} and {number}'}).")
        options = Options(report=self.console.config.defaults.report, send_after=send_after)
        if send_after:
            errors.update({"send_after": message for message in self.sender.check_options(
                Options(send_after=send_after), "+4915112345678").values()})

        # Each recipient: the rules of the client, then the filled-in text within max_parts.
        texts: dict[str, str] = {}
        if not errors.get("message"):
            registry = self.console.server.registry
            for recipient in recipients:
                verdict = registry.check_destination(person.client, recipient.number)
                if not verdict.allowed:
                    row_errors.append(forms.RowError(recipient.row, "number" if recipient.row else recipient.number,
                                                     verdict.reason, line=recipient.line))
                    continue
                filled, problem = forms.fill(text, recipient)
                if problem is None:
                    try:
                        self.sender.check_message(person, filled)
                    except ApiError as error:
                        problem = forms.RowError(recipient.row, "Message", error.message, line=recipient.line)
                if problem is not None:
                    row_errors.append(problem)
                    continue
                texts[recipient.number] = filled
        valid = [r for r in recipients if r.number in texts]
        skip = bool(form.get("skip_bad"))
        if row_errors and not skip:
            errors.setdefault("rows", f"{len(row_errors)} recipient(s) cannot be sent to; nothing was queued. "
                                      "Correct the file and choose it again, or start without them.")
        if row_errors and skip and not valid:
            errors["rows"] = "No recipient is left once the bad ones are skipped; nothing was queued."
        if errors:
            optouts = getattr(self.console.ctx, "optouts", None)
            opted = sum(1 for r in valid if optouts is not None and optouts.get(r.number)) if optouts else 0
            context = await self.list_context(person, errors=errors, row_errors=sorted(row_errors, key=_row_key)[:200],
                                              row_error_count=len(row_errors), valid=len(valid), optouts=opted, **values)
            return self.console.render(request, "campaigns.html", status=400, **context)
        campaign, not_queued = await self.queue(person, name, text, valid, texts, options, skipped=len(row_errors))
        if campaign is None:
            return self.console.render(request, "campaigns.html", status=503, **await self.list_context(
                person, errors={"form": not_queued}, **values))
        if upload_token:
            person.session.stash.pop(upload_token, None)
        raise web.HTTPSeeOther(f"/campaigns/{campaign.id}")

    async def queue(self, person, name, template, recipients, texts, options, *,
                    skipped: int) -> tuple[Campaign | None, str]:
        now = datetime.now().astimezone()
        send_after = forms.local_datetime(options.send_after) if options.send_after else None
        campaign = Campaign(new_campaign_id(now), name, person.name, template, now.timestamp(),
                            send_after.timestamp() if send_after is not None else None,
                            CAMPAIGN_PREPARING, len(recipients), skipped)
        await self.console.read(self.index.create_campaign, campaign, [(r.number, r.name) for r in recipients])
        headers = {"Campaign": campaign.id}

        def prepare() -> list[PreparedMessage]:
            return [self.sender.prepare_one(person, r.number, texts[r.number], options, headers, now) for r in recipients]

        try:
            prepared = await asyncio.to_thread(prepare)
            queued = await self.sender.queue(person, prepared, campaign=campaign.id)
        except (FormErrors, ApiError, SpoolFormatError) as error:
            message = error.errors.get("form") if isinstance(error, FormErrors) else str(error)
            await self.console.read(self.index.set_campaign_state, campaign.id, CAMPAIGN_ABANDONED)
            return None, f"Nothing of the campaign was queued: {message}"
        await self.console.read(self.index.campaign_queued, campaign.id, [m["id"] for m in queued])
        await self.console.audit(person, "started a campaign", f"{campaign.id} {name!r}: {len(queued)} recipient(s)"
                                 + (f", {skipped} bad row(s) skipped" if skipped else ""))
        return campaign, ""

    async def retry(self, request: web.Request) -> web.Response:
        person, _ = await self.console.form(request)
        campaign = self.visible(person, await self.console.read(self.index.campaign, request.match_info["id"]))
        recipients = await self.console.read(lambda: list(self.index.campaign_recipients(campaign.id)))
        failed = [r for r in recipients if r.state in FINISHED_STATES and r.message_id
                  and not (r.fail_reason or "").startswith("opted out")]
        if not failed:
            raise done(f"/campaigns/{campaign.id}", "Nothing to retry.")
        try:
            pairs = await self.sender.retry(person, [(r.message_id, r.number) for r in failed], campaign=campaign.id)
        except FormErrors as errors:
            raise Refused(409, "Cannot retry", errors.errors.get("form", ""), back=f"/campaigns/{campaign.id}") from None
        await self.console.read(self.index.campaign_retry, campaign.id, dict(pairs))
        await self.console.audit(person, "retried", f"{len(pairs)} failed message(s) of campaign {campaign.id}")
        raise done(f"/campaigns/{campaign.id}", f"Queued {len(pairs)} again.")


def _offset(request: web.Request) -> int:
    try:
        return max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return 0


def _row_key(error: forms.RowError):
    return (error.row is None, error.row or 0)


def routes(console) -> list[tuple]:
    view = Campaigns(console)
    console.campaigns = view
    return [
        ("GET", "/campaigns", view.list),
        ("POST", "/campaigns", view.start),
        ("GET", "/campaigns/{id}", view.page),
        ("POST", "/campaigns/{id}/retry", view.retry),
        ("GET", "/campaigns/{id}/export.csv", view.export),
    ]
