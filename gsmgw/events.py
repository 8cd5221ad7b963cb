"""What happened to messages, calls and modems: the events one package hands another.

The daemon's workers, inbound and call handling publish them on its bus (gsmgw.daemon.events
.EventBus); the doors and the services that follow the daemon subscribe: webhooks, the SMPP
server (deliver_sm), mail out, hooks, two-way commands, the message index, metrics. This module
is neutral ground: every one of them imports the events from here, so no subscriber imports the
daemon, and it imports nothing but the pure spool format.

- Events are frozen dataclasses; `id` is always the spool file's name, so it names the same thing
  as `sent/<id>`, `failed/<id>`, `incoming/<id>` and the HTTP API.
- `headers` are the spool file's `Headers` (names case-insensitive, docs/spool.md): the trusted
  ones (Client:, Callback:) only when the file's seal verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Union

from gsmgw.spool.format import Headers


@dataclass(frozen=True)
class MessageQueued:
    id: str
    to: str
    parts: int
    headers: Headers = field(default_factory=Headers)  # incl. Client:, Callback: if given


@dataclass(frozen=True)
class MessageSent:
    id: str
    to: str
    modem: str
    imsi: str | None
    message_ids: tuple[int, ...]  # the TP-MR of each part
    path: str  # the file in sent/
    headers: Headers = field(default_factory=Headers)


@dataclass(frozen=True)
class MessageFailed:
    id: str
    to: str | None  # None when the file was too broken to name a recipient
    reason: str
    path: str  # the file in failed/
    headers: Headers = field(default_factory=Headers)
    expired: bool = False


@dataclass(frozen=True)
class MessageReceived:
    id: str  # the file's name in incoming/
    path: str
    sender: str  # "" when the PDU could not be decoded
    text: str  # for 8-bit data, and for a PDU that could not be decoded, the hex (as the file's body)
    modem: str
    sent: str | None  # service-centre time stamp, ISO-8601 with offset
    received: str  # ISO-8601
    parts: int
    incomplete: bool
    decode_error: str | None = None  # the file's Decode_error: what is wrong with the PDU
    # The TOA octet of the sender's address (TS 23.040 §9.1.2.5), None when unknown: only an
    # international or national number may be trusted as one (gsmgw.sms.sender_number).
    sender_toa: int | None = None
    # A binary message (8-bit data: WAP push, OTA settings, ...): its octets, parts joined; `text`
    # is then their hex. None for a text.
    data: bytes | None = None
    # The sender's user data header without concatenation, UDHL first (b"" when none); for text
    # and data alike (e.g. application ports).
    udh: bytes = b""
    ports: tuple[int, int] | None = None  # application port addressing: (destination, origin)

    @property
    def binary(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class ReportReceived:
    id: str  # the sent file's name
    to: str
    status: str  # 'delivered' / 'pending' / 'failed'
    delivered: bool  # the whole message (every part) is delivered
    message_ids: tuple[int, ...]
    report_path: str
    modem: str
    discharge: str | None
    tp_status: int
    headers: Headers = field(default_factory=Headers)  # of the sent file (Client:, Callback:)


@dataclass(frozen=True)
class CallReceived:
    """An incoming call was recorded in calls/ (and hung up, unless calls.hangup is off)."""

    id: str  # the file's name in calls/
    path: str
    caller: str | None  # "+49..." as the network gave it; None when withheld or not available
    caller_toa: int | None  # the TOA octet of +CLIP's <type> (TS 24.008 §10.5.4.7), None if not given
    withheld: bool  # the caller withheld the number (CLI validity 1)
    modem: str
    received: str  # ISO-8601: the first ring
    rings: int
    hung_up: bool


@dataclass(frozen=True)
class ModemStateChanged:
    modem: str
    state: str
    previous: str
    reason: str | None = None


Event = Union[
    MessageQueued, MessageSent, MessageFailed, MessageReceived, ReportReceived, CallReceived, ModemStateChanged
]
Subscriber = Callable[[Any], Union[None, Awaitable[None]]]
