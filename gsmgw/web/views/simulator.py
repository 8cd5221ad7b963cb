"""`/simulator` (only under `gsmgw run --simulate`): the phones of the outside world. Text the
gateway's SIMs from any number, and see what each phone received from the gateway."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gsmgw.sim import SimError
from gsmgw.sms import AddressError, decode_pdu, join_parts, normalize_number
from gsmgw.web.app import Refused, done

SHOWN = 300


def received_by_phone(submissions: list[dict]) -> dict[str, list[dict]]:
    """{number: [{"time", "from", "text"}], newest first}: what reached each phone, multipart
    joined by (sender, recipient, reference) (pure)."""
    pieces: dict[tuple, list] = {}
    order: list[tuple] = []
    for record in submissions:
        try:
            sms = decode_pdu(record["pdu"])
        except ValueError:
            continue
        key = (record.get("from"), record["to"], sms.concat.ref if sms.concat else ("single", record["seq"]))
        if key not in pieces:
            order.append(key)
            pieces[key] = []
        pieces[key].append((record, sms))
    phones: dict[str, list[dict]] = {}
    for key in order:
        parts = sorted(pieces[key], key=lambda item: item[1].concat.seq if item[1].concat else 1)
        first = parts[0][0]
        total = parts[0][1].concat.total if parts[0][1].concat else 1
        text = join_parts([sms for _, sms in parts])
        phones.setdefault(first["to"], []).append({
            "time": first.get("time"), "from": first.get("from") or first.get("modem_name"),
            "text": text if len(parts) >= total else text + f" … ({len(parts)} of {total} parts so far)",
        })
    for messages in phones.values():
        messages.reverse()
    return phones


class Simulator:
    def __init__(self, console):
        self.console = console

    def network(self):
        network = self.console.simulator
        if network is None:
            raise Refused(404, "No simulator", "The simulator runs only with `gsmgw run --simulate`.", back="/")
        return network

    async def page(self, request: web.Request, *, errors=None, form=None, status: int = 200) -> web.Response:
        self.console.person(request)
        network = self.network()
        submissions = await asyncio.to_thread(lambda: network.submissions[-SHOWN * 3:])
        phones = received_by_phone(submissions)
        template = "simulator_live.html" if request.query.get("fragment") else "simulator.html"
        return self.console.render(request, template, status=status, topics=("simulator",), phones=phones, sims=network.modems,
                                   errors=errors or {}, form=form or {"sender": "+4915112345678", "sim": "0", "text": ""})

    async def send(self, request: web.Request) -> web.Response:
        person, fields = await self.console.form(request, role=None)
        network = self.network()
        form = {"sender": (fields.get("sender") or "").strip(), "sim": fields.get("sim") or "0",
                "text": fields.get("text") or ""}
        errors = {}
        try:
            sender = normalize_number(form["sender"], getattr(self.console.config, "default_country", None))
        except AddressError as error:
            errors["sender"] = str(error)
        try:
            sim = int(form["sim"])
            network.modems[sim]
        except (ValueError, IndexError):
            errors["sim"] = "Choose one of the gateway's SIMs."
        if not form["text"]:
            errors["text"] = "Write the message."
        if not errors:
            try:
                await asyncio.to_thread(network.inject_sms, sim, sender, form["text"])
            except (SimError, ValueError) as error:
                errors["text"] = f"The simulated network refused it: {error}"
        if errors:
            return await self.page(request, errors=errors, form=form, status=400)
        await self.console.audit(person, "simulated an inbound SMS", f"from {sender} to {network.modems[sim].name}")
        raise done("/simulator", f"Sent from {sender} to {network.modems[sim].name}.")


def routes(console) -> list[tuple]:
    view = Simulator(console)
    return [("GET", "/simulator", view.page), ("POST", "/simulator", view.send)]
