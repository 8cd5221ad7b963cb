"""Two-way SMS: an allowed number acknowledges an alert or runs a configured command.

What it reads: `MessageReceived` events from the daemon's bus and the config's
`two_way:` section (`enabled`, `allow_from`, `secret`, `commands`, `timeout`).
What it writes: reply SMS, through `Spool.submit` like any other message.
What it runs: only the argv configured for a command word, with
`create_subprocess_exec` (never a shell), no stdin, a small fixed
environment, in its own session so that a timeout kills the whole process
group. The sender cannot add arguments: what runs is exactly the allowlist.
Trust: off by default. Only a sender whose address is an international or
national number (`gsmgw.sms.sender_number`) can be in `allow_from`: an
alphanumeric sender "0301234567" is a name anybody can send, not the number
+49301234567. Messages from other senders are logged and never answered (an
answer costs money and confirms the number works). Sender numbers can be
spoofed, so `two_way.secret` may require a secret word as the first word of
every request; it is compared in constant time and never logged or echoed.
A sender gets at most `MAX_REPLIES_PER_HOUR` replies and `MAX_RUNS_PER_HOUR`
command runs, so two gateways, or a gateway and an auto-responder, cannot
talk to each other forever, and a spoofed number cannot run a command in a loop.

The words a sender can use (case-insensitive, after the secret word if one is set):
- `ack`: acknowledge the alerts last sent to this number (gsmgw.http.alertmanager);
- `help`: list the words;
- any word under `two_way.commands`: run it and reply with its exit status
  and output, cut to the reply's max_parts.

Wiring (gsmgw/daemon/app.py, see docs/DEVELOPING.md):

    twoway = TwoWay(config, spool, alerts=lambda: http_server.alertmanager if http_server else None,
                    limits=previous.limits if previous else None)   # counts survive a reload
    bus.subscribe(twoway.handle)
    ...
    await twoway.close()     # at shutdown: stops commands still running
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import signal
import time
from collections import deque
from typing import Any, Callable

from gsmgw.events import CallReceived, MessageReceived
from gsmgw.sms.address import sender_number, ton_name

log = logging.getLogger("gsmgw.twoway")

__all__ = ["SenderLimits", "TwoWay", "parse_request", "format_reply", "secret_matches"]

MAX_REPLIES_PER_HOUR = 20
MAX_RUNS_PER_HOUR = 10
# Output beyond this is not read: a reply is a few SMS, and a chatty command
# must not fill the daemon's memory.
MAX_OUTPUT_BYTES = 64 * 1024
DEFAULT_REPLY_PARTS = 3
# The environment a command sees: enough to run, nothing of the daemon's secrets.
BASE_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def parse_request(text: str) -> tuple[str, list[str]]:
    """The command word (lower case) and any further words of an SMS."""
    words = text.split()
    if not words:
        return "", []
    return words[0].lower(), words[1:]


def secret_matches(presented: str, secret: str) -> bool:
    """Is `presented` the secret word? Constant time, also in the length; case is ignored,
    because phones capitalise the first word of a message."""
    presented_digest = hashlib.sha256(presented.casefold().encode("utf-8", "surrogatepass")).digest()
    secret_digest = hashlib.sha256(secret.casefold().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(presented_digest, secret_digest)


class SenderLimits:
    """Per-sender counts of replies and command runs in the last hour (sliding windows).

    Kept apart from TwoWay so that a config reload, which builds a new TwoWay, keeps them.
    """

    def __init__(self) -> None:
        self._times: dict[tuple[str, str], deque[float]] = {}

    def take(self, kind: str, sender: str, limit: int, now: float) -> int | None:
        """Count one `kind` ("reply", "run") for `sender`; None if it fits, else how many the
        last hour had already (nothing is counted then)."""
        for key in [key for key, times in self._times.items() if not times or times[-1] <= now - 3600]:
            del self._times[key]  # nothing in the last hour: forget the sender (bounds the memory)
        times = self._times.setdefault((kind, sender), deque())
        while times and times[0] <= now - 3600:
            times.popleft()
        if len(times) >= limit:
            return len(times)
        times.append(now)
        return None


def format_reply(word: str, returncode: int | None, output: str, max_parts: int, *, timeout: float) -> str:
    """`uptime: ok` + output, or `backup: failed (exit 3)` + output, cut to max_parts."""
    from gsmgw.sms.split import count_parts

    if returncode is None:
        head = f"{word}: timed out after {timeout:g} s, stopped"
    elif returncode == 0:
        head = f"{word}: ok"
    elif returncode < 0:
        head = f"{word}: failed (signal {-returncode})"
    else:
        head = f"{word}: failed (exit {returncode})"
    body = "\n".join(line.rstrip() for line in output.strip().splitlines() if line.strip())
    text = f"{head}\n{body}" if body else head
    if count_parts(text).parts <= max_parts:
        return text
    # Binary search for the longest prefix that still fits with the marker.
    low, high = 0, len(body)
    while low < high:
        mid = (low + high + 1) // 2
        if count_parts(f"{head}\n{body[:mid].rstrip()}...").parts <= max_parts:
            low = mid
        else:
            high = mid - 1
    return f"{head}\n{body[:low].rstrip()}..." if low else head


class TwoWay:
    """Answers allowed senders. `handle(event)` is the bus subscriber; it never raises."""

    def __init__(
        self,
        config: Any,
        spool: Any,
        *,
        alerts: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_parts: int | None = None,
        limits: SenderLimits | None = None,
    ):
        self.settings = config.two_way
        self.spool = spool
        self.alerts = alerts or (lambda: None)
        self.clock = clock
        defaults = getattr(config, "defaults", None)
        self.max_parts = max_parts or min(getattr(defaults, "max_parts", None) or DEFAULT_REPLY_PARTS,
                                          DEFAULT_REPLY_PARTS)
        self.default_country = getattr(config, "default_country", None)
        self.allowed = frozenset(self.settings.allow_from)
        self.call_ack = bool(getattr(getattr(config, "calls", None), "ack", False))
        self.limits = limits or SenderLimits()
        self._running: dict[str, asyncio.Task] = {}  # sender -> its command
        self._processes: set[asyncio.subprocess.Process] = set()

    def __repr__(self) -> str:
        return f"<TwoWay enabled={self.settings.enabled} allowed={len(self.allowed)} running={len(self._running)}>"

    async def handle(self, event: Any) -> None:
        if isinstance(event, CallReceived) and self.settings.enabled:
            await self._call(event)
            return
        if not isinstance(event, MessageReceived) or not self.settings.enabled:
            return
        sender = sender_number(event.sender, event.sender_toa, self.default_country)
        if sender is None or sender not in self.allowed:
            if sender is None and event.sender_toa is not None:
                why = f"its address is {ton_name(event.sender_toa)}, and only an international or national number can be in"
            else:
                why = "not in"
            log.info("two-way: ignoring %s from %s: %s two_way.allow_from", event.id, event.sender, why)
            return
        if event.incomplete:
            log.warning("two-way: ignoring %s from %s: parts are missing, the command may be cut", event.id, sender)
            return
        if event.binary:
            log.info("two-way: ignoring %s from %s: binary data is not a command", event.id, sender)
            return
        words = event.text.split()
        secret = self.settings.secret
        if secret is not None:
            if not words or not secret_matches(words[0], secret):
                # Neither the text nor the word is logged or echoed: it may be a near miss of the secret.
                log.warning("two-way: not acting on %s from %s: it does not start with two_way.secret", event.id, sender)
                await self._reply(sender, "not done: start the message with the secret word, then the command", event.id)
                return
            words = words[1:]
        word, arguments = parse_request(" ".join(words))
        log.info("two-way: %s from %s asks for %r", event.id, sender, word)
        if word == "ack" and not arguments:
            await self._reply(sender, self._acknowledge(sender), event.id)
        elif (word == "help" and not arguments) or not word:
            await self._reply(sender, self._help(), event.id)
        elif word in self.settings.commands:
            if arguments:
                await self._reply(sender, f"{word}: takes no arguments; send just \"{word}\"", event.id)
            elif sender in self._running and not self._running[sender].done():
                await self._reply(sender, f"{word}: your previous command is still running", event.id)
            elif (count := self.limits.take("run", sender, MAX_RUNS_PER_HOUR, self.clock())) is not None:
                log.warning("two-way: not running %s for %s (%s): %d commands in the last hour already",
                            word, sender, event.id, count)
                await self._reply(sender, f"{word}: not run, {count} commands in the last hour already; "
                                          "try again later", event.id)
            else:
                task = asyncio.ensure_future(self._run(sender, word, event.id))
                self._running[sender] = task
                await task
        else:
            await self._reply(sender, f"unknown command {word!r}. {self._help()}", event.id)

    async def _call(self, event: CallReceived) -> None:
        """calls.ack: a call from an allow_from number acknowledges the alerts sent to it, as an
        SMS "ack" does; the caller's number is trusted by the same rule as an SMS sender's."""
        if not self.call_ack:
            return
        caller = sender_number(event.caller or "", event.caller_toa, self.default_country)
        if caller is None or caller not in self.allowed:
            why = "withheld" if event.withheld else ("no number" if not event.caller else "not in two_way.allow_from")
            if caller is None and event.caller and event.caller_toa is not None:
                why = f"its address is {ton_name(event.caller_toa)}, and only an international or national number can be in"
            log.info("two-way: call %s from %s acknowledges nothing: %s", event.id, event.caller or "?", why)
            return
        log.info("two-way: call %s from %s acknowledges its alerts", event.id, caller)
        await self._reply(caller, self._acknowledge(caller), event.id)

    def _help(self) -> str:
        words = ["ack", *sorted(self.settings.commands)]
        return "commands: " + ", ".join(words)

    def _acknowledge(self, sender: str) -> str:
        service = self.alerts()
        if service is None:
            return "ack: no alerts come through this gateway (alertmanager: is not configured)"
        groups = service.acknowledge(sender)
        if not groups:
            return "ack: no firing alert was sent to you in the last 24 hours"
        return f"ack: {', '.join(groups)} acknowledged; repeats stay quiet until resolved"

    async def _run(self, sender: str, word: str, message_id: str) -> None:
        argv = self.settings.commands[word]
        timeout = self.settings.timeout
        environment = dict(BASE_ENVIRONMENT, GSMGW_FROM=sender, GSMGW_MESSAGE_ID=message_id)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=environment, start_new_session=True, cwd="/",
            )
        except OSError as error:
            log.error("two-way: cannot start %s (%s): %s; check two_way.commands.%s", word, argv[0], error, word)
            await self._reply(sender, f"{word}: cannot start: {error.strerror or error}", message_id)
            return
        self._processes.add(process)
        try:
            output, returncode = await self._collect(process, timeout)
        finally:
            self._processes.discard(process)
        log.info("two-way: %s for %s ended with %s", word, sender, "timeout" if returncode is None else returncode)
        text = output.decode("utf-8", "replace")
        await self._reply(sender, format_reply(word, returncode, text, self.max_parts, timeout=timeout), message_id)

    async def _collect(self, process: asyncio.subprocess.Process, timeout: float) -> tuple[bytes, int | None]:
        """Output (at most MAX_OUTPUT_BYTES) and exit code; None and a killed group on timeout."""
        assert process.stdout is not None
        chunks: list[bytes] = []

        stdout = process.stdout

        async def read_all() -> None:
            size = 0
            while chunk := await stdout.read(4096):
                if size < MAX_OUTPUT_BYTES:
                    chunks.append(chunk[: MAX_OUTPUT_BYTES - size])
                size += len(chunk)
            await process.wait()

        try:
            await asyncio.wait_for(read_all(), timeout)
        except asyncio.TimeoutError:
            self._kill(process)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                log.error("two-way: PID %s does not die after SIGKILL", process.pid)
            return b"".join(chunks), None
        return b"".join(chunks), process.returncode

    @staticmethod
    def _kill(process: asyncio.subprocess.Process) -> None:
        # The command may have started children (a shell script's pipeline): kill its group.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group has exited already

    async def _reply(self, sender: str, text: str, message_id: str) -> None:
        count = self.limits.take("reply", sender, MAX_REPLIES_PER_HOUR, self.clock())
        if count is not None:
            log.warning("two-way: not answering %s from %s: %d replies in the last hour already",
                        message_id, sender, count)
            return
        from gsmgw.spool.format import make_outgoing

        data = make_outgoing(to=sender, text=text, max_parts=self.max_parts, expires="1 hour",
                             extra={"In_reply_to": message_id})
        try:
            name = await asyncio.get_running_loop().run_in_executor(None, self.spool.submit, data)
        except OSError as error:
            log.error("two-way: cannot queue the reply to %s: %s", sender, error)
            return
        log.info("two-way: reply %s to %s queued", name, sender)

    async def close(self) -> None:
        """At shutdown: stop running commands; their senders get no reply."""
        for process in list(self._processes):
            self._kill(process)
        tasks = [task for task in self._running.values() if not task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
