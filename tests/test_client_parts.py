"""A client's max_parts caps every message it sends, and its limits count SMS parts, through
every door (HTTP JSON, Kannel URL, SMPP)."""

from __future__ import annotations

import asyncio
import textwrap
import urllib.parse
from datetime import datetime, timezone

import aiohttp

from gsmgw.clients import ClientRegistry
from gsmgw.config import load_config
from gsmgw.http.server import start
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu, Status
from gsmgw.smpp.session import Send, Session, Submit
from gsmgw.spool.format import parse_outgoing
from helpers import free_port
from test_http_api import Context

WALL = datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc)
ONE_PART = "x" * 160
TWO_PARTS = "x" * 300
SEVEN_PARTS = "x" * 153 * 7
NINE_PARTS = "x" * 153 * 9


def write_config(tmp_path):
    path = tmp_path / "gsmgw.yaml"
    path.write_text(textwrap.dedent(f"""\
        spool: {tmp_path}/spool
        state: {tmp_path}/state
        defaults: {{max_parts: 6}}
        modems: [{{name: gsm1, port: {tmp_path}/modem0}}]
        http: {{listen: "127.0.0.1:{free_port()}"}}
        clients:
          - name: plain
            token: tok-plain-0123456789
            smpp: {{system_id: plain, password: pw}}
            allow: ["*"]
            limits: {{per_minute: 4}}
          - name: open
            smpp: {{system_id: open, password: pw}}
            allow: ["*"]
          - name: bulk
            token: tok-bulk-0123456789
            smpp: {{system_id: bulk, password: pw}}
            allow: ["*"]
            max_parts: 8
        """))
    return path


def test_http_caps_max_parts_at_the_clients_and_limits_count_parts(tmp_path):
    """Regression (issue 11): "max_parts": 255 was accepted from any client, and a limit of 4
    per minute let through four messages of any length."""
    ctx = Context(write_config(tmp_path))

    async def main():
        server = await start(ctx)
        try:
            async with aiohttp.ClientSession() as session:
                async def post(token, body):
                    async with session.post(server.url + "/api/v1/messages", json=body,
                                            headers={"Authorization": f"Bearer {token}"}) as response:
                        return response.status, await response.json(), response.headers

                status, answer, _ = await post("tok-plain-0123456789", {"to": "+4915112345678", "text": SEVEN_PARTS,
                                                                        "max_parts": 255})
                assert status == 400 and "at most 6" in answer["error"] and "max_parts" in answer["error"]
                status, answer, _ = await post("tok-bulk-0123456789", {"to": "+4915112345678", "text": SEVEN_PARTS})
                assert status == 202, answer
                status, answer, _ = await post("tok-bulk-0123456789", {"to": "+4915112345678", "text": NINE_PARTS,
                                                                       "max_parts": 200})
                assert status == 400 and "at most 8" in answer["error"]
                # per_minute: 4 parts: two 2-part messages fit, a third does not.
                for _ in range(2):
                    status, _, _ = await post("tok-plain-0123456789", {"to": "+4915112345678", "text": TWO_PARTS})
                    assert status == 202
                status, answer, headers = await post("tok-plain-0123456789", {"to": "+4915112345678", "text": ONE_PART})
                assert status == 429 and "Retry-After" in headers
                status, answer, _ = await post("tok-bulk-0123456789", {"to": ["+4915112345678"] * 1 + ["+4917612345678"],
                                                                       "text": TWO_PARTS})
                assert status == 202  # no limits: 4 parts are fine
                # Kannel: the client's own max_parts too.
                query = urllib.parse.urlencode({"username": "bulk", "password": "tok-bulk-0123456789",
                                                "to": "+4915112345678", "text": SEVEN_PARTS})
                async with session.get(server.url + "/cgi-bin/sendsms?" + query) as response:
                    assert response.status == 202
                query = urllib.parse.urlencode({"username": "plain", "password": "tok-plain-0123456789",
                                                "to": "+4915112345678", "text": SEVEN_PARTS})
                async with session.get(server.url + "/cgi-bin/sendsms?" + query) as response:
                    assert response.status == 400 and "at most 6" in await response.text()
        finally:
            await server.close()

    asyncio.run(main())
    # What the bulk client queued, the daemon (defaults.max_parts 6) sends: the file says 8.
    for name in ctx.spool.list("outgoing"):
        message = parse_outgoing(ctx.spool.read("outgoing", name), now=WALL, defaults=ctx.config.defaults)
        assert message.parts <= message.max_parts <= 8


def smpp_session(registry) -> Session:
    ids = iter(f"id-{n}" for n in range(1, 1000))
    return Session(registry, now=0.0, wall_clock=lambda: WALL, new_id=lambda: next(ids), window=20)


def submit(session, sequence, text, now=1.0):
    pdu = Pdu(CommandId.SUBMIT_SM, sequence, 0, {"dest_addr_ton": 1, "destination_addr": "4915112345678",
                                                 "short_message": b"", }, {P.Tag.MESSAGE_PAYLOAD: text.encode()})
    actions = session.data_received(P.encode(pdu), now)
    submits = [a for a in actions if isinstance(a, Submit)]
    answers = [P.decode(a.data) for a in actions if isinstance(a, Send)]
    return (submits[0].submission if submits else None), (answers[0].status if answers else None)


def test_smpp_caps_at_the_clients_max_parts_and_limits_count_parts(tmp_path):
    registry = ClientRegistry.from_config(load_config(write_config(tmp_path)))
    for system_id, allowed in (("open", 6), ("bulk", 8)):
        session = smpp_session(registry)
        session.data_received(P.encode(Pdu(CommandId.BIND_TRANSMITTER, 1, 0,
                                           {"system_id": system_id, "password": "pw"})), 0.0)
        submission, _ = submit(session, 2, "x" * 153 * allowed)
        assert submission is not None and submission.max_parts == allowed and submission.parts == allowed
        session.submit_done(submission, "x")
        submission, status = submit(session, 3, "x" * (153 * allowed + 1))
        assert submission is None and status == Status.ESME_RINVMSGLEN
    registry = ClientRegistry.from_config(load_config(write_config(tmp_path)))  # fresh limits
    session = smpp_session(registry)
    session.data_received(P.encode(Pdu(CommandId.BIND_TRANSMITTER, 1, 0, {"system_id": "plain", "password": "pw"})), 0.0)
    for sequence in (2, 3):
        submission, _ = submit(session, sequence, TWO_PARTS)
        assert submission is not None and submission.parts == 2
        session.submit_done(submission, "x")
    assert submit(session, 4, ONE_PART) == (None, Status.ESME_RTHROTTLED)
