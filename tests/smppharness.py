"""The SMPP server under test in a thread of its own, and the client helpers the SMPP tests share
(the fixture `smpp_gateway` in conftest.py starts one per test): a real Spool, the real
ClientRegistry, the daemon's EventBus, TCP on loopback; smpplib or raw sockets as clients."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from pathlib import Path

import smpplib.client

from gsmgw.clients import ClientRegistry
from gsmgw.daemon.events import EventBus
from gsmgw.smpp import pdu as P
from gsmgw.smpp.pdu import CommandId, Pdu
from gsmgw.smpp.server import SmppServer
from gsmgw.spool.store import Spool
from helpers import SEAL_KEY

CLIENTS = [
    {
        "name": "zabbix",
        "smpp": {"system_id": "zabbix", "password": "s3cret"},
        "allow": ["+49*", "modem:gsm1"],
        "deny": ["+49900*"],
    },
    {
        "name": "limited",
        "smpp": {"system_id": "limited", "password": "pw"},
        "allow": ["*"],
        "limits": {"per_minute": 2},
    },
    {"name": "httponly", "token": "t0ken", "allow": ["*"]},
]


class ServerThread:
    """The asyncio server in a background thread with a ready signal, so a blocking client
    (smpplib) can run in the test's thread."""

    def __init__(self, tmp_path: Path, **options):
        self.spool = Spool(tmp_path / "spool", seal_key=SEAL_KEY)
        self.spool.ensure_dirs()
        # As in the daemon, the registry knows the config's defaults (max_parts) too.
        self.registry = ClientRegistry.from_config({"clients": CLIENTS, "groups": {}, "defaults": options.get("defaults")})
        self.options = options
        self.loop = asyncio.new_event_loop()
        self.bus = EventBus(self.loop)
        self.server: SmppServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        self.server = self.call(self._start())
        return self

    async def _start(self) -> SmppServer:
        server = SmppServer(
            spool=self.spool, registry=self.registry, bus=self.bus,
            port=0, **self.options,
        )
        return await server.start()

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def publish(self, event) -> None:
        self.loop.call_soon_threadsafe(self.bus.publish, event)

    def __exit__(self, *exc) -> None:
        self.call(self.server.close(timeout=2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    @property
    def port(self) -> int:
        return self.server.port


def client_for(gateway, **kwargs) -> smpplib.client.Client:
    client = smpplib.client.Client("127.0.0.1", gateway.port, timeout=5, allow_unknown_opt_params=True, **kwargs)
    client.connect()
    return client


def bind(gateway, system_id="zabbix", password="s3cret", how="bind_transceiver"):
    client = client_for(gateway)
    getattr(client, how)(system_id=system_id, password=password)
    return client


def read_until(client, wanted: str, timeout: float = 10.0):
    """Read PDUs (answering deliver_sm and enquire_link as a client must) until `wanted`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pdu = client.read_pdu()
        if pdu.command == "deliver_sm":
            resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
        elif pdu.command == "enquire_link":
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
        if pdu.command == wanted:
            return pdu
    raise AssertionError(f"no {wanted} within {timeout} s")


def raw_connection(gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    return sock


def raw_send(sock, pdu: Pdu) -> None:
    sock.sendall(P.encode(pdu))


def raw_read(sock) -> Pdu:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            raise ConnectionError("closed")
        header += chunk
    length = struct.unpack(">I", header)[0]
    body = b""
    while len(body) < length - 4:
        chunk = sock.recv(length - 4 - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return P.decode(header + body)


def raw_bind(gateway, system_id="zabbix", password="s3cret") -> socket.socket:
    sock = raw_connection(gateway)
    raw_send(sock, Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, {"system_id": system_id, "password": password, "interface_version": 0x34}))
    resp = raw_read(sock)
    assert resp.command_id == CommandId.BIND_TRANSCEIVER_RESP and resp.status == 0
    return sock


def submit_pdu(sequence: int, to: str = "+4915112345678", text: bytes = b"hello", **params) -> Pdu:
    fields = {"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": to, "short_message": text}
    tlvs = params.pop("tlvs", {})
    fields.update(params)
    return Pdu(CommandId.SUBMIT_SM, sequence, 0, fields, tlvs)
