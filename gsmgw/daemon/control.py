"""The daemon's control socket: `STATE/control.sock`, for commands that need a running gateway.

The daemon holds the modems' ports, so `gsmgw ussd` and `gsmgw status --balance` ask it here
instead of opening a port. A Unix stream socket, mode 0660: the user gsmgw runs as and its group
may ask (give an admin that group to let them); it works without `http:`. JSON lines, one
request and one answer per line, in order:

    {"cmd": "ussd", "modem": "gsm1", "code": "*100#"}
    {"ok": true, "result": {"modem": "gsm1", "code": "*100#", "status": 0, "text": "Balance: 12.34 EUR"}}
    {"cmd": "balance"}                     (every modem with a balance: code; or "modem": "gsm1")
    {"ok": true, "result": {"gsm1": {"modem": "gsm1", "code": "*100#", "text": ..., "amount": 12.34, ...}}}
    {"ok": false, "error": "gsm2 is absent (port gone): it cannot run USSD now; ...", "kind": "not_ready"}

`ControlClient(state_dir)` is the blocking client the command line uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from gsmgw.listen import serve_json_lines
from gsmgw.ussd import USSD_TIMEOUT, Balance, Ussd, UssdError, check_code

log = logging.getLogger("gsmgw.control")

SOCKET_NAME = "control.sock"
MAX_REQUEST = 4096


class ControlError(Exception):
    """What the daemon answered with ok: false (or that it could not be reached); `kind` as
    UssdError's, or "unreachable"."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ControlServer:
    def __init__(self, state: Path | str, ussd: Ussd):
        self.path = Path(state) / SOCKET_NAME
        self.ussd = ussd
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> "ControlServer":
        try:
            self.path.unlink()  # a socket a killed daemon left; the state dir's lock says we own it
        except FileNotFoundError:
            pass
        # Created with the right mode from the start: no moment in which others may connect.
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        log.info("control socket %s", self.path)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        too_long = _error("bad_request", f"a request is over {MAX_REQUEST} bytes")
        await serve_json_lines(reader, writer, self._answer, too_long)

    async def _answer(self, line: bytes) -> bytes:
        try:
            request = json.loads(line)
        except ValueError:
            return _error("bad_request", 'send one JSON object per line, e.g. {"cmd": "ussd", "modem": "gsm1", "code": "*100#"}')
        if not isinstance(request, dict):
            return _error("bad_request", "the request must be a JSON object with a \"cmd\"")
        command = request.get("cmd")
        try:
            if command == "ping":
                result: Any = "pong"
            elif command == "ussd":
                timeout = float(request.get("timeout") or USSD_TIMEOUT)
                code = check_code(request.get("code"))  # as ask() does, before it names the modem
                answer = await self.ussd.ask(str(request.get("modem")), code, min(max(timeout, 1.0), 180.0))
                result = answer.to_json()
            elif command == "balance":
                max_age = float(request.get("max_age", 300.0))
                if request.get("modem") is not None:
                    result = {str(request["modem"]): (await self.ussd.balance(str(request["modem"]), max_age=max_age)).to_json()}
                else:
                    result = {name: _json(value) for name, value in (await self.ussd.balances(max_age=max_age)).items()}
            else:
                return _error("bad_request", f"unknown command {command!r}; the commands are ping, ussd, balance")
        except UssdError as error:
            return _error(error.kind, str(error))
        except (TypeError, ValueError) as error:
            return _error("bad_request", f"bad parameters: {error}")
        return (json.dumps({"ok": True, "result": result}, ensure_ascii=False) + "\n").encode()


def _json(value: Balance | UssdError) -> dict:
    if isinstance(value, UssdError):
        return {"error": str(value), "kind": value.kind}
    return value.to_json()


def _error(kind: str, message: str) -> bytes:
    return (json.dumps({"ok": False, "error": message, "kind": kind}, ensure_ascii=False) + "\n").encode()


class ControlClient:
    """Asks the running daemon over STATE/control.sock (blocking; one request at a time)."""

    def __init__(self, state: Path | str, timeout: float = 10.0):
        self.path = Path(state) / SOCKET_NAME
        self.timeout = timeout

    def request(self, cmd: str, *, wait: float = 0.0, **params: Any) -> Any:
        """The result, or ControlError. `wait`: seconds the daemon may need beyond `timeout`."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout + wait)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise ControlError("unreachable", f"no gateway answers on {self.path}: is gsmgw running with this state "
                                                  f"directory? (systemctl status gsmgw; or give -c CONFIG / --state DIR)") from None
            except PermissionError:
                raise ControlError("unreachable", f"no permission to use {self.path}: run as the user gsmgw runs as, or "
                                                  f"as a member of its group (the socket is 0660)") from None
            buffer = b""
            try:
                sock.sendall((json.dumps({"cmd": cmd, **params}) + "\n").encode())
                while b"\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ControlError("unreachable", "the gateway closed the control connection without an answer")
                    buffer += chunk
            except socket.timeout:
                raise ControlError("timeout", f"the gateway did not answer within {self.timeout + wait:.0f} s") from None
            except OSError as error:
                raise ControlError("unreachable", f"talking to {self.path} failed: {error}") from None
        finally:
            sock.close()
        answer = json.loads(buffer.split(b"\n", 1)[0])
        if not answer.get("ok"):
            raise ControlError(answer.get("kind", "error"), answer.get("error", "the gateway refused the request"))
        return answer.get("result")
