"""The control socket of a running `gsmgw simulate`, and a client for it.

A Unix stream socket `DIR/control.sock` that speaks JSON lines: one request
object per line, one answer per line, in order.

    {"cmd": "inject_sms", "modem": 0, "sender": "+4915112345678", "text": "hi"}
    {"ok": true, "result": ["07911...", ...]}
    {"cmd": "set_fault", "modem": 1, "kind": "hang", "seconds": 5}
    {"ok": false, "error": "no modem 7; this network has modems 0 to 1"}

Commands: `ping`, `modems`, `inject_sms` (modem, sender, and text | data (hex) |
pdu; flash, ref, ref16, ports [dest, origin], alphabet, check), `set_fault` (modem,
kind, parameters of the kind, see faults.py), `clear_fault` (modem, kind),
`unplug` / `replug` (modem), `set_report_outcome` (number, statuses, interval, part),
`set_latency` (modem, latency), `set_signal` (modem, rssi), `set_registration` (modem,
stat, announce), `set_pin_attempts` (modem, pin, puk), `submissions` (since: how many to
skip), `wait_for_submissions` (count, timeout), `reports`, `stored_messages` (modem, storage),
`ring` (modem, caller: "+49..." or "" withheld, interval, timeout), `calls`, `wait_for_call`
(call, timeout), `set_ussd_reply` (code, text, dcs 15|72, status, modem).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from gsmgw.listen import serve_json_lines
from gsmgw.sim.modem import USSD_DCS_GSM7
from gsmgw.sim.network import RING_INTERVAL, RING_TIMEOUT, SimError

if TYPE_CHECKING:
    from gsmgw.sim.network import SimNetwork

log = logging.getLogger(__name__)

MAX_REQUEST = 1 << 20


class ControlServer:
    def __init__(self, network: "SimNetwork", path: str) -> None:
        self.network = network
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_REQUEST)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        too_long = _answer_error(f"a request is over {MAX_REQUEST} bytes")
        await serve_json_lines(reader, writer, self._handle_line, too_long)

    async def _handle_line(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise SimError('a request is one JSON object per line with a "cmd" key, e.g. {"cmd": "modems"}')
            result = await self.handle(request)
        except json.JSONDecodeError as error:
            return _answer_error(f"the request is not JSON ({error}); send one JSON object per line")
        except (SimError, TimeoutError) as error:
            return _answer_error(str(error))
        except (TypeError, ValueError, KeyError) as error:
            return _answer_error(f"bad parameters: {error}")
        return (json.dumps({"ok": True, "result": result}, ensure_ascii=False) + "\n").encode()

    async def handle(self, request: dict) -> Any:
        net = self.network
        args = dict(request)
        command = args.pop("cmd")
        if command == "ping":
            return "pong"
        if command == "modems":
            return [m.to_json() for m in net.modems]
        if command == "inject_sms":
            data = args.pop("data", None)
            ports = args.pop("ports", None)
            return net._op_inject_sms(
                args.pop("modem"),
                args.pop("sender", ""),
                args.pop("text", None),
                data=bytes.fromhex(data) if data is not None else None,
                ports=tuple(ports) if ports is not None else None,
                **_only(args, "pdu", "flash", "ref", "ref16", "alphabet", "check"),
            )
        if command == "set_fault":
            net._op_set_fault(args.pop("modem"), args.pop("kind"), args)
            return None
        if command == "clear_fault":
            net._op_clear_fault(args["modem"], args.get("kind", "all"))
            return None
        if command == "unplug":
            net._op_unplug(net._check_index(args["modem"]))
            return None
        if command == "replug":
            net._op_replug(net._check_index(args["modem"]))
            return None
        if command == "set_report_outcome":
            net._op_set_report_outcome(args["number"], args["statuses"], args.get("interval", 0.5), args.get("part"))
            return None
        if command == "set_latency":
            net._op_set_latency(args["modem"], args["latency"])
            return None
        if command == "set_signal":
            net._op_set_signal(args["modem"], args["rssi"])
            return None
        if command == "set_registration":
            net._op_set_registration(args["modem"], args["stat"], args.get("announce", True))
            return None
        if command == "submissions":
            return net.submissions[int(args.get("since", 0)) :]
        if command == "wait_for_submissions":
            return await net.async_wait_for_submissions(int(args["count"]), float(args.get("timeout", 10.0)))
        if command == "reports":
            return net.reports
        if command == "set_pin_attempts":
            net._op_set_pin_attempts(args["modem"], args.get("pin"), args.get("puk"))
            return None
        if command == "stored_messages":
            return net._op_stored_messages(args["modem"], args.get("storage", "SM"))
        if command == "ring":
            return net._op_ring(args.pop("modem"), args.pop("caller", ""),
                                float(args.pop("interval", RING_INTERVAL)), float(args.pop("timeout", RING_TIMEOUT)))
        if command == "calls":
            return net.calls
        if command == "wait_for_call":
            return await net.async_wait_for_call(int(args["call"]), float(args.get("timeout", 10.0)))
        if command == "set_ussd_reply":
            net._op_set_ussd_reply(args.pop("code"), args.pop("text", None), int(args.pop("dcs", USSD_DCS_GSM7)),
                                   int(args.pop("status", 0)), args.pop("modem", None))
            return None
        raise SimError(f"unknown command {command!r}; see the list in gsmgw/sim/control.py")


def _only(args: dict, *names: str) -> dict:
    unknown = set(args) - set(names)
    if unknown:
        raise SimError(f"unknown parameters {', '.join(sorted(unknown))}")
    return args


def _answer_error(message: str) -> bytes:
    return (json.dumps({"ok": False, "error": message}, ensure_ascii=False) + "\n").encode()


class ControlClient:
    """Talks to `DIR/control.sock` of a running `gsmgw simulate` (blocking; one request at a time)."""

    def __init__(self, path: str | os.PathLike, timeout: float = 15.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def request(self, cmd: str, **params: Any) -> Any:
        """Send one request; the result, or SimError with the simulator's message."""
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except OSError as error:
                sock.close()
                raise SimError(
                    f"cannot reach the simulator at {self.path} ({error}); is `gsmgw simulate --dir ...` running?"
                ) from None
            self._socket = sock
            self._buffer = b""
        timeout = max(self.timeout, float(params.get("timeout", 0)) + 5.0)
        self._socket.settimeout(timeout)
        try:
            self._socket.sendall((json.dumps({"cmd": cmd, **params}) + "\n").encode())
            while b"\n" not in self._buffer:
                chunk = self._socket.recv(65536)
                if not chunk:
                    raise SimError("the simulator closed the control connection")
                self._buffer += chunk
        except OSError as error:
            self.close()
            raise SimError(f"control request {cmd!r} failed: {error}") from None
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not answer.get("ok"):
            raise SimError(answer.get("error", "the simulator refused the request"))
        return answer.get("result")

    # Named helpers, the same as SimNetwork's methods.
    def ping(self) -> str:
        return self.request("ping")

    def modems(self) -> list[dict]:
        return self.request("modems")

    def inject_sms(self, modem: int, sender: str, text: str | None = None, **params: Any) -> list[str]:
        if isinstance(params.get("data"), (bytes, bytearray)):
            params["data"] = bytes(params["data"]).hex()
        return self.request("inject_sms", modem=modem, sender=sender, text=text, **params)

    def set_fault(self, modem: int, kind: str, **params: Any) -> None:
        self.request("set_fault", modem=modem, kind=kind, **params)

    def clear_fault(self, modem: int, kind: str = "all") -> None:
        self.request("clear_fault", modem=modem, kind=kind)

    def unplug(self, modem: int) -> None:
        self.request("unplug", modem=modem)

    def replug(self, modem: int) -> None:
        self.request("replug", modem=modem)

    def reboot(self, modem: int, sim: int | None = None) -> None:
        """The modem restarts behind its port (the `reboot` fault; faults.py)."""
        params = {} if sim is None else {"sim": sim}
        self.request("set_fault", modem=modem, kind="reboot", **params)

    def set_report_outcome(
        self, number: str, statuses: list[int], interval: float = 0.5, *, part: int | None = None
    ) -> None:
        self.request("set_report_outcome", number=number, statuses=statuses, interval=interval, part=part)

    def set_latency(self, modem: int, latency: float | str) -> None:
        self.request("set_latency", modem=modem, latency=latency)

    def set_signal(self, modem: int, rssi: int) -> None:
        self.request("set_signal", modem=modem, rssi=rssi)

    def set_registration(self, modem: int, stat: int, announce: bool = True) -> None:
        self.request("set_registration", modem=modem, stat=stat, announce=announce)

    def submissions(self, since: int = 0) -> list[dict]:
        return self.request("submissions", since=since)

    def wait_for_submissions(self, count: int, timeout: float = 10.0) -> list[dict]:
        return self.request("wait_for_submissions", count=count, timeout=timeout)

    def reports(self) -> list[dict]:
        return self.request("reports")

    def ring(self, modem: int, caller: str, *, interval: float | None = None, timeout: float | None = None) -> dict:
        """Call a simulated SIM (SimNetwork.ring); the call's record."""
        params = {key: value for key, value in (("interval", interval), ("timeout", timeout)) if value is not None}
        return self.request("ring", modem=modem, caller=caller, **params)

    def calls(self) -> list[dict]:
        return self.request("calls")

    def wait_for_call(self, call_id: int, timeout: float = 10.0) -> dict:
        return self.request("wait_for_call", call=call_id, timeout=timeout)

    def set_ussd_reply(self, code: str, text: str | None, *, dcs: int = 15, status: int = 0, modem: int | None = None) -> None:
        self.request("set_ussd_reply", code=code, text=text, dcs=dcs, status=status, modem=modem)

    def set_pin_attempts(self, modem: int, pin: int | None = None, puk: int | None = None) -> None:
        self.request("set_pin_attempts", modem=modem, pin=pin, puk=puk)

    def stored_messages(self, modem: int, storage: str = "SM") -> list[dict]:
        return self.request("stored_messages", modem=modem, storage=storage)
