"""What the HTTP API reads from the spool besides a message's status: the ids a multi-recipient
file became, and the inbox (`GET /api/v1/inbox`).

Reads only; never writes. A message's status comes from `gsmgw.spool.message_status`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from gsmgw.spool.format import SpoolFormatError, read_incoming
from gsmgw.spool.message_status import SPOOL_DIRECTORIES, valid_name

log = logging.getLogger("gsmgw.http")


def find_outgoing(spool: Any, name: str) -> tuple[str, bytes] | None:
    """(directory, content) of the outgoing message `name` where its file is now (most advanced
    state first), or None."""
    if not valid_name(name):
        return None
    for dirname in SPOOL_DIRECTORIES:
        try:
            return dirname, spool.read(dirname, name)
        except (OSError, ValueError):
            continue
    return None


def client_from_spool(spool: Any, name: str) -> str | None:
    """The `Client:` header of the outgoing message `name`; None when it has none, is not there,
    or is not sealed (a hand-written file's `Client:` is nobody's: gsmgw.spool.format)."""
    found = find_outgoing(spool, name)
    if found is None:
        return None
    try:
        return spool.verified(found[1]).headers.get("Client")
    except SpoolFormatError:
        return None


def recipient_ids(spool: Any, name: str) -> list[str]:
    """The ids `<name>.1`, `<name>.2`, ... that a file with several recipients became (docs/api.md)."""
    if not valid_name(name):
        return []
    found = []
    for n in range(1, 10001):
        candidate = f"{name}.{n}"
        if not valid_name(candidate) or not any(
            spool.exists(dirname, candidate) for dirname in ("sent", "failed", "checked")
        ):
            break
        found.append(candidate)
    return found


@dataclass(frozen=True)
class InboxEntry:
    received: datetime | None
    message: dict[str, Any]


def parse_time(value: str | None) -> datetime | None:
    """An ISO-8601 time from a spool header; aware (local zone if it had no offset)."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        # A naive time is local; at the ends of the calendar (0001-01-01) the local zone
        # does not fit, which makes it as unreadable as any other bad value.
        return moment if moment.tzinfo else moment.astimezone()
    except (ValueError, OverflowError):
        return None


def parse_since(value: str) -> datetime | None:
    """The inbox's `since`: ISO-8601 (aware; local if no offset) or Unix seconds.

    A `+` of an offset that was not URL-encoded arrives as a space ("10:15:00 01:00"); it is
    read as the `+` it was meant to be.
    """
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        try:
            return datetime.fromtimestamp(float(text)).astimezone()
        except (OverflowError, OSError, ValueError):
            return None
    moment = parse_time(text)
    if moment is None:
        moment = parse_time(re.sub(r" (\d\d(:?\d\d)?)$", r"+\1", text))
    return moment


def inbox_entry(name: str, data: bytes) -> InboxEntry:
    """docs/api.md's inbox object from an incoming/ file (pure): the keys of the `received` webhook."""
    from gsmgw.webhooks import binary_fields

    incoming = read_incoming(data)
    headers = incoming.headers
    decode_error = headers.get("Decode_error")
    received = headers.get("Received")
    parts = (headers.get("Parts") or "").strip()
    return InboxEntry(
        parse_time(received),
        {
            "id": name,
            "from": headers.get("From"),
            "text": incoming.text,
            "modem": headers.get("Modem"),
            "sent": headers.get("Sent"),
            "received": received,
            "parts": int(parts) if parts.isdigit() and int(parts) > 0 else 1,
            "incomplete": (headers.get("Incomplete") or "").strip().lower() == "yes",
            "decode_error": decode_error,
            **binary_fields(incoming.data, incoming.udh, incoming.ports),
        },
    )


class Inbox:
    """incoming/ as a list, oldest first; parsed files are cached by (mtime, size)."""

    def __init__(self, spool: Any):
        self.spool = spool
        self._cache: dict[str, tuple[tuple[int, int], InboxEntry]] = {}

    def entries(self) -> list[InboxEntry]:
        directory = str(self.spool.path("incoming"))
        seen: dict[str, tuple[tuple[int, int], InboxEntry]] = {}
        try:
            scan = list(os.scandir(directory))
        except FileNotFoundError:
            return []
        for entry in scan:
            if not valid_name(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            key = (info.st_mtime_ns, info.st_size)
            cached = self._cache.get(entry.name)
            if cached is None or cached[0] != key:
                try:
                    parsed = inbox_entry(entry.name, self.spool.read("incoming", entry.name))
                except (OSError, ValueError) as exc:
                    log.warning("inbox: skipping incoming/%s: %s", entry.name, exc)
                    continue
                cached = (key, parsed)
            seen[entry.name] = cached
        self._cache = seen
        far_past = datetime.min.replace(tzinfo=datetime.now().astimezone().tzinfo)
        return sorted((entry for _, entry in seen.values()), key=lambda e: (e.received or far_past, e.message["id"]))

    def query(self, since: datetime | None, limit: int,
              sees_modem: Callable[[str | None], bool] = lambda modem: True) -> list[dict[str, Any]]:
        """Messages received at or after `since` (all without it) on modems `sees_modem` accepts,
        oldest first, at most `limit`."""
        out = []
        for entry in self.entries():
            if since is not None and (entry.received is None or entry.received < since):
                continue
            if not sees_modem(entry.message["modem"]):
                continue
            out.append(entry.message)
            if len(out) >= limit:
                break
        return out
