"""The opt-out list: people who texted STOP get no more campaign messages (WEB.md "Opt-out").

An inbound SMS whose whole text is one of `optout.keywords` (case and spaces ignored; default
STOP, STOPP, UNSUBSCRIBE, END, QUIT, CANCEL) puts its sender on the list; one of
`optout.start_keywords` (START) takes it off. `optout.confirm` / `optout.confirm_start`, when
set, are sent back through the modem that received the word. Only campaign messages (files with
a `Campaign:` header, which the console writes) are held back: the daemon moves such a message to
failed/ with `Fail_reason: opted out (STOP received <time>)` when it takes the file. Alerts, API,
SMPP and files are never suppressed.

The list lives in the message index (gsmgw.spool.index) and, for the daemon's check when it
takes a file, in memory (`OptOutList`), which every change updates in the same step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from gsmgw.config import OptOutConfig
from gsmgw.daemon.twoway import SenderLimits
from gsmgw.events import MessageReceived
from gsmgw.sms.address import normalize_number, sender_number, ton_name
from gsmgw.sms.errors import AddressError
from gsmgw.spool.format import iso, make_outgoing

log = logging.getLogger("gsmgw.optout")

STOP, START = "stop", "start"
# Confirmations one number gets in an hour: a sender's number can be forged, so without a cap
# anyone could have the gateway text a number once for every STOP/START sent in its name.
MAX_CONFIRMATIONS_PER_HOUR = 3
SENT_BY_OPTOUT = "Optout_reply"  # header of the confirmation files (so they are told apart)


def keyword_of(text: str, keywords, start_keywords) -> tuple[str, str] | None:
    """(STOP|START, the word) when the whole text is one of the words, else None (pure)."""
    word = "".join(text.split()).upper()
    if not word:
        return None
    if word in keywords:
        return STOP, word
    if word in start_keywords:
        return START, word
    return None


def subscriber(sender: str, toa: int | None, default_country: str | None) -> str | None:
    """The E.164 number campaigns go to, of an inbound SMS's sender; None for a name (pure).

    The list is matched against the `To:` of campaign files, which are E.164, so a sender in
    national form ("01511234567", type national) must be read with `default_country`, as
    `gsmgw.sms.sender_number` reads it. Digits of unknown type are read as a `To:` is. An
    alphanumeric sender is a name nobody sends campaigns to."""
    number = sender_number(sender, toa, default_country)
    if number is not None:
        return number
    if toa is not None and (toa >> 4) & 0x07 != 0:
        return None  # alphanumeric, abbreviated, ..., or national without default_country
    try:
        return normalize_number(sender, default_country)
    except AddressError:
        return None


def opted_out_reason(at: float) -> str:
    """The Fail_reason of a campaign message to an opted-out number."""
    return f"opted out (STOP received {iso(datetime.fromtimestamp(at).astimezone())})"


class OptOutList:
    """number -> (when, the word): the daemon's copy of the index's list."""

    def __init__(self, entries: Mapping[str, tuple[float, str]] | None = None):
        self._entries: dict[str, tuple[float, str]] = dict(entries or {})

    def get(self, number: str) -> tuple[float, str] | None:
        return self._entries.get(number)

    def add(self, number: str, at: float, keyword: str) -> None:
        self._entries.setdefault(number, (at, keyword))

    def remove(self, number: str) -> None:
        self._entries.pop(number, None)

    def items(self) -> list[tuple[str, tuple[float, str]]]:
        return sorted(self._entries.items(), key=lambda item: item[1][0], reverse=True)

    def __len__(self) -> int:
        return len(self._entries)


class OptOutHandler:
    """Bus subscriber: STOP/START in inbound SMS update the list, the index, and answer."""

    def __init__(self, settings: Callable[[], OptOutConfig], spool, index, optouts: OptOutList, *,
                 clock: Callable[[], float] = time.time, run_in_thread: Callable | None = None,
                 default_country: Callable[[], str | None] = lambda: None):
        self.settings = settings  # -> the current config's `optout` (a reload changes it)
        self.default_country = default_country  # -> the current config's default_country
        self.limits = SenderLimits()
        self.spool = spool
        self.index = index
        self.optouts = optouts
        self.clock = clock
        self._run = run_in_thread or asyncio.to_thread

    async def handle(self, event) -> None:
        if not isinstance(event, MessageReceived) or not event.sender:
            return
        settings = self.settings()
        found = keyword_of(event.text or "", settings.keywords, settings.start_keywords)
        if found is None:
            return
        kind, word = found
        toa = getattr(event, "sender_toa", None)
        number = subscriber(event.sender, toa, self.default_country())
        if number is None:
            kind_of = f"its address is of type {ton_name(toa)}" if toa is not None else "it is not a phone number"
            log.info("%s: %s sent %s, but %s, so it names no number campaigns go to (a national one needs "
                     "default_country); nothing changed", event.id, event.sender, word, kind_of)
            return
        now = self.clock()
        if kind == STOP:
            self.optouts.add(number, now, word)
            await self._run(self.index.opt_out, number, now, word)
            await self._run(self.index.audit, now, number, "opt-out", f"{word} received on {event.modem}")
            log.info("%s: %s sent %s; no more campaign messages to it", event.id, number, word)
            reply = settings.confirm
        else:
            self.optouts.remove(number)
            removed = await self._run(self.index.opt_in, number)
            await self._run(self.index.audit, now, number, "opt-in", f"{word} received on {event.modem}")
            log.info("%s: %s sent %s; %s", event.id, number, word,
                     "off the opt-out list" if removed else "was not on the opt-out list")
            reply = settings.confirm_start
        if reply and (count := self.limits.take("confirm", number, MAX_CONFIRMATIONS_PER_HOUR, now)) is not None:
            log.warning("%s: no %s confirmation to %s: it got %d in the last hour already", event.id, word, number, count)
            reply = None
        if reply:
            data = make_outgoing(to=number, text=reply, modem=event.modem,
                                 extra={SENT_BY_OPTOUT: kind, "Queued": iso(datetime.fromtimestamp(now).astimezone())})
            try:
                await self._run(self.spool.submit, data)
            except OSError as error:
                log.error("%s: the %s confirmation to %s could not be queued: %s", event.id, word, event.sender, error)
