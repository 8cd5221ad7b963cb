"""The status file: what the daemon is doing, for `gsmgw status`, the HTTP API and monitoring.

The daemon keeps `status.json` in the state directory current: it rewrites it (temporary name,
fsync, rename, fsync of the directory) when a modem changes state and at least every
`WRITE_INTERVAL` seconds. A reader that finds `updated` older than `STALE_AFTER` knows the daemon
is not running (or hangs). The JSON is exactly docs/spool.md's `status.json` object.

`snapshot()` and `format_table()` are pure; `write_status`/`read_status` do the file I/O.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from gsmgw.spool.store import write_file_atomic

STATUS_FILE = "status.json"
WRITE_INTERVAL = 5.0
STALE_AFTER = 30.0

MODEM_KEYS = (
    "name", "state", "port", "imsi", "iccid", "imei", "operator", "signal_dbm", "registered",
    "sent_today", "failed_today", "received_today", "last_error",
)
QUEUE_KEYS = ("outgoing", "checked", "retrying", "sent_today", "failed_today")


class StatusUnavailable(Exception):
    """There is no readable status file; the message says why and what to do."""


@dataclass
class ModemStatus:
    """One modem as the worker last saw it (mutable: the worker updates its own)."""

    name: str
    state: str = "starting"
    port: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    imei: str | None = None
    operator: str | None = None
    signal_dbm: int | None = None
    registered: bool | None = None
    last_error: str | None = None


def iso(timestamp: float) -> str:
    """ISO-8601 local time with its offset, to the second."""
    return _dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def snapshot(
    modems: Iterable[ModemStatus],
    counters: Mapping[tuple[str, str], int],
    depths: Mapping[str, int],
    retrying: int,
    now: float,
) -> dict[str, Any]:
    """docs/spool.md's `status.json` object. `counters` is {(modem, kind): n} for today; modem ''
    holds failures of files that never reached a modem."""
    rows = []
    for modem in modems:
        rows.append(
            {
                "name": modem.name,
                "state": modem.state,
                "port": modem.port,
                "imsi": modem.imsi,
                "iccid": modem.iccid,
                "imei": modem.imei,
                "operator": modem.operator,
                "signal_dbm": modem.signal_dbm,
                "registered": modem.registered,
                "sent_today": counters.get((modem.name, "sent"), 0),
                "failed_today": counters.get((modem.name, "failed"), 0),
                "received_today": counters.get((modem.name, "received"), 0),
                "last_error": modem.last_error,
            }
        )
    return {
        "updated": iso(now),
        "modems": rows,
        "queue": {
            "outgoing": depths.get("outgoing", 0),
            "checked": depths.get("checked", 0),
            "retrying": retrying,
            "sent_today": sum(n for (_, kind), n in counters.items() if kind == "sent"),
            "failed_today": sum(n for (_, kind), n in counters.items() if kind == "failed"),
        },
    }


def write_status(state_dir: Path, status: Mapping[str, Any]) -> None:
    # 0o644: `gsmgw status` may run as another user than the daemon.
    write_file_atomic(Path(state_dir) / STATUS_FILE, (json.dumps(status, indent=1) + "\n").encode(), mode=0o644)


def read_status(state_dir: Path) -> dict[str, Any]:
    path = Path(state_dir) / STATUS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StatusUnavailable(
            f"no status file at {path}: the daemon has not run with this state directory; "
            f"start it with `gsmgw run -c CONFIG` (or check that -c names the daemon's config)"
        ) from None
    except OSError as error:
        raise StatusUnavailable(f"cannot read {path}: {error.strerror}; run as the gsmgw user or root") from None
    try:
        status = json.loads(data)
        _dt.datetime.fromisoformat(status["updated"])
        return status
    except (ValueError, KeyError, TypeError) as error:
        raise StatusUnavailable(f"{path} is not a gsmgw status file ({error}); the daemon rewrites it within seconds") from None


def age_of(status: Mapping[str, Any], now: float) -> float:
    """Seconds since the daemon last wrote the status."""
    updated = _dt.datetime.fromisoformat(status["updated"])
    return now - updated.timestamp()


def is_stale(status: Mapping[str, Any], now: float) -> bool:
    return age_of(status, now) > STALE_AFTER


def format_table(
    status: Mapping[str, Any], now: float, recent_failures: Sequence[tuple[str, str]] = ()
) -> str:
    """Human output of `gsmgw status`: a warning when stale, a modem table, queue, failures."""
    lines = []
    age = age_of(status, now)
    if age > STALE_AFTER:
        lines.append(
            f"WARNING: this status is {_human_age(age)} old: the daemon is not running (or hangs). "
            f"Start it with `gsmgw run -c CONFIG` or `systemctl start gsmgw`."
        )
        lines.append("")
    lines.append(f"Updated {status['updated']} ({_human_age(age)} ago)")
    lines.append("")
    headers = ("MODEM", "STATE", "SIGNAL", "REG", "OPERATOR", "IMSI", "PORT", "SENT", "FAILED", "RECV", "LAST ERROR")
    rows = []
    for modem in status.get("modems", []):
        signal = modem.get("signal_dbm")
        registered = modem.get("registered")
        rows.append(
            (
                modem.get("name") or "",
                modem.get("state") or "",
                "-" if signal is None else f"{signal} dBm",
                "-" if registered is None else ("yes" if registered else "no"),
                modem.get("operator") or "-",
                modem.get("imsi") or "-",
                modem.get("port") or "-",
                str(modem.get("sent_today", 0)),
                str(modem.get("failed_today", 0)),
                str(modem.get("received_today", 0)),
                modem.get("last_error") or "",
            )
        )
    lines.extend(_table(headers, rows) or ["No modems configured."])
    lines.extend(_cluster_lines(status))
    queue = status.get("queue", {})
    lines.append("")
    lines.append(
        "Queue: {outgoing} in outgoing/, {checked} waiting in checked/ ({retrying} retrying); "
        "today {sent_today} sent, {failed_today} failed".format(**{k: queue.get(k, 0) for k in QUEUE_KEYS})
    )
    if recent_failures:
        lines.append("")
        lines.append("Recent failures:")
        for name, reason in recent_failures:
            lines.append(f"  {name}: {reason}")
    return "\n".join(lines) + "\n"


def _cluster_lines(status: Mapping[str, Any]) -> list[str]:
    """A cluster member's status (CLUSTER.md): the journal's state, every member and its modems."""
    journal = status.get("journal")
    if not journal:
        return []
    lines = [""]
    state = journal.get("state") or "?"
    if state == "ok":
        lines.append(f"Journal: PostgreSQL, this host is member {journal.get('member')}")
    else:
        lines.append(f"Journal: {state.upper()} ({journal.get('reason')}); sending is paused, the spool keeps "
                     f"accepting, inbound SMS stay on the SIM")
    headers = ("MEMBER", "HOST", "LEASE", "MODEM", "STATE", "SIGNAL", "IMSI", "LAST ERROR")
    rows = []
    for member in status.get("members") or []:
        name = member.get("name", "") + (" (this host)" if member.get("self") else "")
        lease = f"{member.get('lease_left', 0):.0f} s" if member.get("state") == "up" else "down"
        modems = member.get("modems") or [{}]
        for index, modem in enumerate(modems):
            signal = modem.get("signal_dbm")
            rows.append((
                name if index == 0 else "",
                (member.get("host") or "") if index == 0 else "",
                lease if index == 0 else "",
                modem.get("name") or "-",
                modem.get("state") or "-",
                "-" if signal is None else f"{signal} dBm",
                modem.get("imsi") or "-",
                modem.get("last_error") or "",
            ))
    return lines + _table(headers, rows)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart; no lines without rows."""
    if not rows:
        return []
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in (headers, *rows)]


def _human_age(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
