"""Hooks: run the user's programs on `received`, `sent`, `failed`, `report` and `call` events.

A hook is executed directly, never through a shell: argv is `[program, event, path]` where event
is the hook's name and path the spool file it concerns (incoming/, sent/, failed/, report/ or
calls/), so a file name can never be read as shell syntax. The environment also carries `GSMGW_EVENT`,
`GSMGW_FILE` and `GSMGW_ID` (that file's name), for scripts written for that style; the `report`
hook also gets `GSMGW_SENT_ID`, the name in sent/ of the message the report is about.

How it fails: a hook that cannot be started, exits non-zero or runs past its timeout is logged
with the program, the file and what happened; a slow hook is killed at the timeout. Hooks run as
tasks of their own, at most `MAX_RUNNING` at a time (others wait in line), so a slow or failing
hook never holds up sending or receiving.

What it trusts: the hook paths come from the config, which root wrote.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Mapping

from gsmgw.events import CallReceived, MessageFailed, MessageReceived, MessageSent, ReportReceived

log = logging.getLogger("gsmgw.hooks")

MAX_RUNNING = 4
# systemd's notify socket and watchdog belong to the daemon: a hook must not speak for it.
_DAEMON_ONLY = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
HOOK_EVENTS = ("received", "sent", "failed", "report", "call")


class Hooks:
    def __init__(self, programs: Mapping[str, str | None], timeout: float = 30.0):
        self.programs = {name: path for name, path in programs.items() if path}
        self.timeout = timeout
        self._slots = asyncio.Semaphore(MAX_RUNNING)
        self._tasks: set[asyncio.Task] = set()

    @classmethod
    def from_config(cls, config) -> "Hooks":
        hooks = config.hooks
        programs = {name: getattr(hooks, name, None) for name in HOOK_EVENTS}
        return cls(programs, timeout=float(getattr(config, "hook_timeout", 30.0)))

    def on_event(self, event) -> None:
        """Event-bus subscriber: start the matching hook and return at once."""
        if isinstance(event, MessageReceived):
            self.start("received", event.path, event.id)
        elif isinstance(event, MessageSent):
            self.start("sent", event.path, event.id)
        elif isinstance(event, MessageFailed):
            self.start("failed", event.path, event.id)
        elif isinstance(event, ReportReceived):
            self.start("report", event.report_path, os.path.basename(event.report_path),
                       extra_env={"GSMGW_SENT_ID": event.id})
        elif isinstance(event, CallReceived):
            self.start("call", event.path, event.id)

    def start(self, name: str, path: str, ident: str, *, extra_env: Mapping[str, str] | None = None
              ) -> asyncio.Task | None:
        program = self.programs.get(name)
        if program is None:
            return None
        task = asyncio.ensure_future(self.run(name, program, path, ident, extra_env=extra_env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, name: str, program: str, path: str, ident: str, *,
                  extra_env: Mapping[str, str] | None = None) -> int | None:
        """Run one hook to its end or its timeout; returns the exit status (None: did not run)."""
        env = {key: value for key, value in os.environ.items() if key not in _DAEMON_ONLY}
        env.update(GSMGW_EVENT=name, GSMGW_FILE=path, GSMGW_ID=ident)
        env.update(extra_env or {})
        async with self._slots:
            try:
                process = await asyncio.create_subprocess_exec(
                    program,
                    name,
                    path,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            except OSError as error:
                log.error(
                    "hook %s: cannot run %s for %s: %s; check that the file exists and is executable",
                    name, program, os.path.basename(path), error.strerror or error,
                )
                return None
            try:
                output, _ = await asyncio.wait_for(process.communicate(), self.timeout)
            except asyncio.TimeoutError:
                _kill_group(process)
                await process.wait()
                log.error(
                    "hook %s: %s for %s ran longer than %.0f s and was killed; make it return "
                    "sooner (start long work in the background) or raise hook_timeout",
                    name, program, os.path.basename(path), self.timeout,
                )
                return process.returncode
            except asyncio.CancelledError:
                _kill_group(process)
                raise
            tail = output.decode("utf-8", "replace").strip()[-500:]
            if process.returncode != 0:
                log.warning(
                    "hook %s: %s for %s exited with %s%s",
                    name, program, os.path.basename(path), process.returncode,
                    f": {tail}" if tail else "",
                )
            else:
                log.info("hook %s: %s for %s done", name, program, os.path.basename(path))
            return process.returncode

    async def close(self, timeout: float = 5.0) -> None:
        """At shutdown: give running hooks a moment, then stop them."""
        if not self._tasks:
            return
        done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """The hook runs in its own session: kill its whole process group, children included."""
    try:
        os.killpg(process.pid, 9)
    except ProcessLookupError:
        pass  # the group has exited already
