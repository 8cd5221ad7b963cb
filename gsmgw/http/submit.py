"""What every door that writes for a client does: the client's limits, then the spool's group commit.

Limits count SMS parts (what the SIMs send), for a request as a whole: its room is taken before
the files are written and given back when the spool cannot make them durable. The files go to the
spool's one `GroupCommitter` (gsmgw.spool.commit), which HTTP, Kannel, the console, SMPP and mail
share, so a request is answered only once its files are durable in outgoing/.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from gsmgw.spool.commit import CommitError, GroupCommitter


class OverLimit(Exception):
    """The client's `limits` have no room for `parts` SMS parts: for `wait` seconds, or never
    (`wait` is math.inf: the parts are more than a limit itself). Nothing was taken or queued."""

    def __init__(self, client: Any, parts: int, recipients: int, wait: float):
        super().__init__(f"client {client.name!r} is over its limits")
        self.client, self.parts, self.recipients, self.wait = client, parts, recipients, wait

    def describe_limits(self) -> str:
        """"30 per minute, 500 per day" (the client's limits, which count SMS parts)."""
        return ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in self.client.limits.items())


async def queue_for_client(registry: Any, committer: GroupCommitter, client: Any, files: Sequence[Any]) -> list[str]:
    """Take room in `client`'s limits for the SMS parts of `files` (checked messages with `parts`
    and `data`, e.g. `validation.PreparedMessage`) and write them, all or none; their names.

    Every door that writes for a client ends here (HTTP, Kannel, the console, mail): limits count
    what the SIMs send, parts, not requests or recipients. The files go through the spool's group
    committer (`spool.committer`), so this returns only once they are durable. OverLimit when there
    is no room; CommitError (the room given back) when the spool cannot make them durable."""
    moment = time.monotonic()
    parts = sum(message.parts for message in files)
    wait = registry.acquire(client, parts, moment)
    if wait > 0:
        raise OverLimit(client, parts, len(files), wait)
    try:
        return await committer.queue([message.data for message in files])
    except CommitError:
        registry.release(client, parts, moment)
        raise
