"""Two-way SMS: an allowed number acknowledges an alert or runs a configured command.

What it reads: `MessageReceived` events from the daemon's bus and the config's
`two_way:` section (`enabled`, `allow_from`, `commands`, `timeout`).
What it writes: reply SMS, through `Spool.submit` like any other message.
What it runs: only the argv configured for a command word, with
`create_subprocess_exec` (never a shell), no stdin, a small fixed
environment, in its own session so that a timeout kills the whole process
group. The sender cannot add arguments: what runs is exactly the allowlist.
Trust: off by default. Messages from numbers outside `allow_from` are logged
and never answered (an answer costs money and confirms the number works).
A sender gets at most `MAX_REPLIES_PER_HOUR` replies, so two gateways, or a
gateway and an auto-responder, cannot talk to each other forever.

The words a sender can use (case-insensitive, the whole message):
- `ack`: acknowledge the alerts last sent to this number (gsmgw.http.alertmanager);
- `help`: list the words;
- any word under `two_way.commands`: run it and reply with its exit status
  and output, cut to the reply's max_parts.

Wiring (gsmgw/daemon/app.py, see docs/DEVELOPING.md):

    twoway = TwoWay(config, spool, alerts=lambda: http_server.alertmanager if http_server else None)
    bus.subscribe(twoway.handle)
    ...
    await twoway.close()     # at shutdown: stops commands still running
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import deque
from typing import Any, Callable

from gsmgw.daemon.events import MessageReceived

log = logging.getLogger("gsmgw.twoway")

__all__ = ["TwoWay", "parse_request", "format_reply"]

MAX_REPLIES_PER_HOUR = 20
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
        self._replies: dict[str, deque[float]] = {}
        self._running: dict[str, asyncio.Task] = {}  # sender -> its command
        self._processes: set[asyncio.subprocess.Process] = set()

    def __repr__(self) -> str:
        return f"<TwoWay enabled={self.settings.enabled} allowed={len(self.allowed)} running={len(self._running)}>"

    def _normalize(self, sender: str) -> str | None:
        from gsmgw.sms.address import normalize_number

        try:
            return normalize_number(sender, self.default_country)
        except ValueError:
            return None  # an alphanumeric sender (a network's own message) can never be allowed

    async def handle(self, event: Any) -> None:
        if not isinstance(event, MessageReceived) or not self.settings.enabled:
            return
        sender = self._normalize(event.sender)
        if sender is None or sender not in self.allowed:
            log.info("two-way: ignoring %s from %s: not in two_way.allow_from", event.id, event.sender)
            return
        if event.incomplete:
            log.warning("two-way: ignoring %s from %s: parts are missing, the command may be cut", event.id, sender)
            return
        word, arguments = parse_request(event.text)
        log.info("two-way: %s from %s asks for %r", event.id, sender, word)
        if word == "ack" and not arguments:
            await self._reply(sender, self._acknowledge(sender), event.id)
        elif word == "help" and not arguments:
            await self._reply(sender, self._help(), event.id)
        elif word in self.settings.commands:
            if arguments:
                await self._reply(sender, f"{word}: takes no arguments; send just \"{word}\"", event.id)
            elif sender in self._running and not self._running[sender].done():
                await self._reply(sender, f"{word}: your previous command is still running", event.id)
            else:
                task = asyncio.ensure_future(self._run(sender, word, event.id))
                self._running[sender] = task
                await task
        else:
            await self._reply(sender, f"unknown command {word!r}. {self._help()}", event.id)

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

        async def read_all() -> None:
            size = 0
            while chunk := await process.stdout.read(4096):
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
        now = self.clock()
        sent = self._replies.setdefault(sender, deque())
        while sent and sent[0] <= now - 3600:
            sent.popleft()
        if len(sent) >= MAX_REPLIES_PER_HOUR:
            log.warning("two-way: not answering %s from %s: %d replies in the last hour already",
                        message_id, sender, len(sent))
            return
        sent.append(now)
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
