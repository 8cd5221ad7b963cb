"""Reassembly of concatenated SMS (TS 23.040 §9.2.3.24.1, §9.2.3.24.8) as a pure state object.

No I/O and no clock: the caller passes the time a part was received, keeps
the parts on disk itself, and after a restart feeds them back in with their
original times. A message is keyed by (scope, sender, reference, total,
reference width): `scope` lets one object serve several modems (a sender's
reference only means something per recipient SIM).

Parts are joined before decoding where the alphabet allows it: GSM-7 parts
by their septets and UCS-2 parts by their octets, so a broken sender that
splits an escape sequence or a surrogate pair across parts still reads right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

from gsmgw.sms import gsm7
from gsmgw.sms.pdu import Ports, Sms
from gsmgw.sms.split import EIGHT_BIT, GSM7, UCS2

PartKey = tuple[Hashable, str, int, int, int]


@dataclass(frozen=True)
class Message:
    """A whole message, or what arrived of it when `complete` is False (reassembly timeout)."""

    sender: str
    text: str
    alphabet: str | None
    total: int
    parts: tuple[Sms, ...]  # the received parts, in sequence order
    tokens: tuple  # the caller's token for every part fed in, duplicates included
    missing: tuple[int, ...]  # sequence numbers that never arrived
    first_received: float
    scope: Hashable = None

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def first(self) -> Sms:
        """The lowest-numbered part received: its timestamp and SMSC stand for the message."""
        return self.parts[0]

    @property
    def is_binary(self) -> bool:
        """8-bit data or a header beyond concatenation (Sms.is_binary of the first part)."""
        return self.first.is_binary

    @property
    def data(self) -> bytes:
        """The user data of the parts received, joined (for 8-bit data: the message's octets)."""
        return b"".join(part.data or b"" for part in self.parts)

    @property
    def user_udh(self) -> bytes:
        """The sender's header without concatenation, UDHL first (Sms.user_udh of the first part)."""
        return self.first.user_udh

    @property
    def ports(self) -> Ports | None:
        """Application port addressing (TS 23.040 §9.2.3.24.3/.4) of the first part."""
        return self.first.ports


@dataclass
class _Pending:
    total: int
    first_received: float
    parts: dict[int, Sms] = field(default_factory=dict)
    tokens: list = field(default_factory=list)


@dataclass(frozen=True)
class PendingInfo:
    """A message still waiting for parts, for listing and for persistence checks."""

    key: PartKey
    received: tuple[int, ...]
    total: int
    first_received: float
    tokens: tuple


def join_parts(parts: list[Sms] | tuple[Sms, ...]) -> str:
    """The text of parts in sequence order, joined before decoding where the alphabet allows it."""
    alphabets = {part.alphabet for part in parts}
    datas = [part.data for part in parts]
    if len(alphabets) == 1 and all(data is not None for data in datas) and not any(p.compressed for p in parts):
        alphabet = next(iter(alphabets))
        joined = b"".join(datas)  # type: ignore[arg-type]
        if alphabet == GSM7:
            return gsm7.decode_septets(joined, *parts[0].national)
        if alphabet == UCS2:
            return joined.decode("utf-16-be", "replace")
        if alphabet == EIGHT_BIT:
            return joined.hex().upper()
    return "".join(part.text or "" for part in parts)


class Reassembler:
    """Collects the parts of concatenated messages until each message is whole.

    add() returns the Message when the last missing part arrives (at once for
    a message that has no concatenation header). A part whose sequence number
    was already received is a duplicate: the first copy is kept, its token is
    remembered so that the caller can delete both. A network that repeats a
    part after the message was complete (its acknowledgement got lost) sends
    the same user data again: for `forget_after` seconds such a part is
    dropped too, and take_duplicates() hands its token back. A part with the
    same reference but other data is a new message (8-bit references wrap
    after 256 messages). expire() hands out what arrived of messages whose
    first part is older than a timeout.
    """

    def __init__(self, *, forget_after: float = 3600.0) -> None:
        self._pending: dict[PartKey, _Pending] = {}
        self._forget_after = forget_after
        # key -> (completed at, {seq: user data}) of recently completed messages
        self._completed: dict[PartKey, tuple[float, dict[int, bytes | None]]] = {}
        self._late_duplicates: list = []

    def __len__(self) -> int:
        return len(self._pending)

    def __repr__(self) -> str:
        return f"<Reassembler {len(self._pending)} incomplete messages>"

    @staticmethod
    def key_of(sms: Sms, scope: Hashable = None) -> PartKey | None:
        if sms.concat is None:
            return None
        return (scope, sms.number or "", sms.concat.ref, sms.concat.total, sms.concat.bits)

    def add(self, sms: Sms, *, received_at: float, token: object = None, scope: Hashable = None) -> Message | None:
        """Feed one received part; the whole Message when this part completes it, else None."""
        if sms.text is None:
            raise ValueError(f"an SMS of type {sms.type} without user data cannot be reassembled")
        key = self.key_of(sms, scope)
        concat = sms.concat
        if key is None or concat is None:
            return Message(
                sender=sms.number or "", text=sms.text, alphabet=sms.alphabet, total=1, parts=(sms,),
                tokens=(token,), missing=(), first_received=received_at, scope=scope,
            )  # fmt: skip
        self._forget(received_at)
        completed = self._completed.get(key)
        if completed is not None and concat.seq in completed[1] and completed[1][concat.seq] == sms.data:
            self._late_duplicates.append(token)
            return None
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(total=concat.total, first_received=received_at)
        pending.first_received = min(pending.first_received, received_at)
        pending.tokens.append(token)
        if concat.seq in pending.parts:
            return None
        pending.parts[concat.seq] = sms
        if len(pending.parts) < pending.total:
            return None
        del self._pending[key]
        self._completed[key] = (received_at, {seq: part.data for seq, part in pending.parts.items()})
        return self._message(key, pending)

    def take_duplicates(self) -> list:
        """Tokens of parts dropped as repeats of an already completed message (then forgotten here)."""
        tokens, self._late_duplicates = self._late_duplicates, []
        return tokens

    def _forget(self, now: float) -> None:
        for key in [k for k, (at, _) in self._completed.items() if now - at > self._forget_after]:
            del self._completed[key]

    def pending(self) -> list[PendingInfo]:
        """Every incomplete message, oldest first."""
        infos = [
            PendingInfo(
                key=key, received=tuple(sorted(p.parts)), total=p.total,
                first_received=p.first_received, tokens=tuple(p.tokens),
            )  # fmt: skip
            for key, p in self._pending.items()
        ]
        return sorted(infos, key=lambda info: info.first_received)

    def stale(self, now: float, timeout: float) -> list[PendingInfo]:
        """Incomplete messages whose first part arrived `timeout` seconds or more before `now`."""
        return [info for info in self.pending() if now - info.first_received >= timeout]

    def expire(self, now: float, timeout: float) -> list[Message]:
        """Remove and return the stale messages, joined from the parts that did arrive."""
        self._forget(now)
        expired = []
        for info in self.stale(now, timeout):
            expired.append(self._message(info.key, self._pending.pop(info.key)))
        return expired

    @staticmethod
    def _message(key: PartKey, pending: _Pending) -> Message:
        scope, sender = key[0], key[1]
        ordered = tuple(pending.parts[seq] for seq in sorted(pending.parts))
        alphabets = {part.alphabet for part in ordered}
        return Message(
            sender=sender,
            text=join_parts(ordered),
            alphabet=alphabets.pop() if len(alphabets) == 1 else None,
            total=pending.total,
            parts=ordered,
            tokens=tuple(pending.tokens),
            missing=tuple(seq for seq in range(1, pending.total + 1) if seq not in pending.parts),
            first_received=pending.first_received,
            scope=scope,
        )
