"""Bar charts as SVG geometry (pure): the templates draw the rectangles this computes.

No chart library and no script: the console must work without internet and under a CSP without
inline script, and an SVG of rectangles with titles is readable by screen readers and tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gsmgw.spool.index import KINDS, hour_of

KIND_LABELS = {"sent": "sent", "delivered": "delivered", "failed": "failed", "received": "received"}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    rects: tuple[Rect, ...]
    labels: tuple[tuple[float, str], ...]  # (x, text) under the bars
    top: int  # the value of the highest gridline
    totals: Mapping[str, int]


def _chart(title: str, buckets: Sequence[tuple[str, str, Mapping[str, int]]], kinds: Sequence[str],
           *, width: int = 1000, height: int = 200, label_every: int = 1) -> Chart:
    """`buckets`: (axis label, long label, {kind: n}) oldest first; grouped bars per bucket."""
    plot_height = height - 24
    top = max([1] + [counts.get(kind, 0) for _, _, counts in buckets for kind in kinds])
    slot = width / max(1, len(buckets))
    bar = max(1.0, (slot - 2) / len(kinds))
    rects, labels = [], []
    totals = {kind: 0 for kind in kinds}
    for position, (short, long, counts) in enumerate(buckets):
        x0 = position * slot + 1
        for k, kind in enumerate(kinds):
            value = counts.get(kind, 0)
            totals[kind] += value
            h = plot_height * value / top
            rects.append(Rect(round(x0 + k * bar, 2), round(plot_height - h, 2), round(bar, 2), round(h, 2), kind,
                              f"{long}: {value} {KIND_LABELS.get(kind, kind)}"))
        if position % label_every == 0:
            labels.append((round(x0 + slot / 2, 2), short))
    return Chart(title, width, height, tuple(rects), tuple(labels), top, totals)


def hourly(tallies: Mapping[tuple[int, str], int], now: float, kinds: Sequence[str] = KINDS) -> Chart:
    """The last 24 hours, one group of bars per hour."""
    current = hour_of(now)
    buckets = []
    for hour in range(current - 23, current + 1):
        start = datetime.fromtimestamp(hour * 3600).astimezone()
        counts = {kind: tallies.get((hour, kind), 0) for kind in kinds}
        buckets.append((start.strftime("%H"), start.strftime("%Y-%m-%d %H:00"), counts))
    return _chart("Last 24 hours, per hour", buckets, kinds, label_every=3)


def daily(tallies: Mapping[tuple[int, str], int], now: float, kinds: Sequence[str] = KINDS, days: int = 30) -> Chart:
    """The last `days` local days, one group of bars per day."""
    today = datetime.fromtimestamp(now).astimezone().date()
    first = today - timedelta(days=days - 1)
    per_day: dict = {}
    for (hour, kind), n in tallies.items():
        day = datetime.fromtimestamp(hour * 3600).astimezone().date()
        if day >= first:
            per_day.setdefault(day, {}).setdefault(kind, 0)
            per_day[day][kind] += n
    buckets = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        counts = {kind: per_day.get(day, {}).get(kind, 0) for kind in kinds}
        buckets.append((day.strftime("%d.%m"), day.isoformat(), counts))
    return _chart(f"Last {days} days, per day", buckets, kinds, label_every=5)


def since_hour_for_daily(now: float, days: int = 30) -> int:
    return hour_of(now) - days * 24 - 24


def states_chart(counts: Mapping[str, int], order: Sequence[str], *, width: int = 1000, height: int = 180) -> Chart:
    """One bar per state (a campaign's recipients by where they are)."""
    top = max([1] + [counts.get(state, 0) for state in order])
    plot_height = height - 24
    slot = width / max(1, len(order))
    rects, labels = [], []
    for position, state in enumerate(order):
        value = counts.get(state, 0)
        h = plot_height * value / top
        x = position * slot + slot * 0.15
        words = state.replace("_", " ")
        rects.append(Rect(round(x, 2), round(plot_height - h, 2), round(slot * 0.7, 2), round(h, 2), state,
                          f"{value} {words}"))
        labels.append((round(position * slot + slot / 2, 2), f"{words} {value}"))
    return Chart("Recipients by state", width, height, tuple(rects), tuple(labels), top,
                 {state: counts.get(state, 0) for state in order})


def signal_chart(samples: Sequence[tuple[float, int | None]], *, width: int = 1000, height: int = 160) -> Chart:
    """Signal strength samples (dBm, -113 .. -51) as thin bars, oldest first."""
    rects, labels = [], []
    usable = [(at, dbm) for at, dbm in samples if dbm is not None]
    plot_height = height - 24
    if usable:
        slot = width / len(usable)
        for position, (at, dbm) in enumerate(usable):
            level = max(0.0, min(1.0, (dbm + 113) / 62))
            h = plot_height * level
            rects.append(Rect(round(position * slot, 2), round(plot_height - h, 2), round(max(slot - 0.5, 0.5), 2),
                              round(h, 2), "signal", f"{datetime.fromtimestamp(at).astimezone():%Y-%m-%d %H:%M}: {dbm} dBm"))
        for position in range(0, len(usable), max(1, len(usable) // 6)):
            at = usable[position][0]
            labels.append((round(position * slot + slot / 2, 2), f"{datetime.fromtimestamp(at).astimezone():%d.%m %H:%M}"))
    return Chart("Signal, last 7 days", width, height, tuple(rects), tuple(labels), -51, {})
