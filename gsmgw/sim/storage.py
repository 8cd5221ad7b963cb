"""Message storage of a simulated SIM/ME (pure state; no I/O).

3GPP TS 27.005 §3.1: <stat> 0 "REC UNREAD", 1 "REC READ", 2 "STO UNSENT",
3 "STO SENT", 4 "ALL"; §3.5.4 +CMGD <delflag>.  Storages: SM (SIM), ME
(modem memory) and SR (status reports).
"""

from __future__ import annotations

from dataclasses import dataclass

REC_UNREAD, REC_READ, STO_UNSENT, STO_SENT, ALL = 0, 1, 2, 3, 4


@dataclass
class StoredMessage:
    index: int
    stat: int
    pdu: str       # hex with the SMSC field, as +CMGR prints it
    length: int    # TPDU octets (the PDU without its SMSC field), 27.005 §3.1 <length>


class MessageStore:
    """One storage (SM, ME or SR) with a fixed number of slots."""

    def __init__(self, name: str, capacity: int, first_index: int) -> None:
        self.name = name
        self.capacity = capacity
        self.first_index = first_index
        self.messages: dict[int, StoredMessage] = {}

    @property
    def used(self) -> int:
        return len(self.messages)

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    def valid_index(self, index: int) -> bool:
        return self.first_index <= index < self.first_index + self.capacity

    def store(self, pdu: str, stat: int) -> int | None:
        """Index of the new message, or None when every slot is taken."""
        for index in range(self.first_index, self.first_index + self.capacity):
            if index not in self.messages:
                self.messages[index] = StoredMessage(index, stat, pdu.upper(), tpdu_length(pdu))
                return index
        return None

    def read(self, index: int) -> StoredMessage | None:
        """The message as it was, then marked read as 27.005 §3.4.3 says (REC UNREAD -> REC READ)."""
        message = self.messages.get(index)
        if message is None:
            return None
        shown = StoredMessage(message.index, message.stat, message.pdu, message.length)
        if message.stat == REC_UNREAD:
            message.stat = REC_READ
        return shown

    def list(self, stat: int) -> list[StoredMessage]:
        """Messages with <stat> (or all for 4), marking received ones read (§3.4.2)."""
        chosen = [m for _, m in sorted(self.messages.items()) if stat == ALL or m.stat == stat]
        listed = [StoredMessage(m.index, m.stat, m.pdu, m.length) for m in chosen]
        for message in chosen:
            if message.stat == REC_UNREAD:
                message.stat = REC_READ
        return listed

    def delete(self, index: int, delflag: int) -> None:
        """27.005 §3.5.4: delflag 0 one index; 1 read; 2 read+sent; 3 read+sent+unsent; 4 all."""
        if delflag == 0:
            self.messages.pop(index, None)
            return
        doomed = {
            1: {REC_READ},
            2: {REC_READ, STO_SENT},
            3: {REC_READ, STO_SENT, STO_UNSENT},
            4: {REC_UNREAD, REC_READ, STO_SENT, STO_UNSENT},
        }[delflag]
        for slot in [i for i, m in self.messages.items() if m.stat in doomed]:
            del self.messages[slot]


def tpdu_length(pdu_hex: str) -> int:
    """Octets after the SMSC field: its first octet counts the octets that follow (TS 27.005 §3.1 <length>)."""
    octets = len(pdu_hex) // 2
    smsc_octets = int(pdu_hex[:2], 16) + 1
    return octets - smsc_octets
