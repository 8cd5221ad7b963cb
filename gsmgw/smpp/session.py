"""One SMPP connection as a state machine, sans-IO: PDUs and the time in, actions out.

The server (`gsmgw.smpp.server`) owns the socket and the spool. It feeds received bytes with
`data_received`, calls `tick` now and then, carries out the actions it gets back (`Send`,
`Close`, `Bound`, `Submit`, `Query`, `Queue`, `Delivered`), and reports their results back
(`submit_done`, `submit_failed`, `query_done`). Nothing here touches a socket, a file or the clock.

States (SMPP 3.4 §2.3): OPEN (connected, not bound) → BOUND as transmitter, receiver or
transceiver → UNBINDING (unbind seen or sent) → CLOSED. What each state accepts:

    OPEN        bind_*, enquire_link; any other request gets ESME_RINVBNDSTS
    BOUND       submit_sm and query_sm (transmitter, transceiver), deliver_sm_resp (receiver,
                transceiver), enquire_link, unbind; another bind gets ESME_RALYBND
    UNBINDING   responses only; new requests get ESME_RINVBNDSTS

Flow control: at most `window` requests from the client may wait for their response at once
(`smpp.window`, docs/config.md). One more gets
ESME_RMSGQFUL at once, without being queued. Towards the client the same window limits the
deliver_sm that wait for deliver_sm_resp.

A long message (UDH, sar_* or message_payload) is accepted when its last segment's
submit_sm_resp comes: that one is sent after the whole message is durable in outgoing/. Earlier
segments are answered at once, all with the id the message will have.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Protocol

from gsmgw.sms import UserDataError, count_data_parts, count_parts
from gsmgw.spool.format import DEFAULT_MAX_PARTS, priority_of_level

from . import message as M
from . import pdu as P
from .pdu import CommandId, Pdu, Status, Tag

log = logging.getLogger("gsmgw.smpp")

SERVER_SYSTEM_ID = "gsmgw"
INTERFACE_VERSION_34 = 0x34


class Mode(enum.Enum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def receives(self) -> bool:
        return self is not Mode.TRANSMITTER

    @property
    def transmits(self) -> bool:
        return self is not Mode.RECEIVER


class State(enum.Enum):
    OPEN = "open"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


_BIND_MODES = {
    CommandId.BIND_TRANSMITTER: Mode.TRANSMITTER,
    CommandId.BIND_RECEIVER: Mode.RECEIVER,
    CommandId.BIND_TRANSCEIVER: Mode.TRANSCEIVER,
}


class ClientPolicy(Protocol):
    """What the session asks of `gsmgw.clients.ClientRegistry` (pure calls)."""

    def authenticate_smpp(self, system_id: str | None, password: str | None) -> Any: ...

    def check_destination(self, client: Any, number: str) -> Any: ...

    def acquire(self, client: Any, count: int, now: float) -> float: ...

    def release(self, client: Any, count: int, now: float) -> None: ...

    def max_parts_for(self, client: Any) -> int: ...


# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    data: bytes
    what: str  # for the log: "submit_sm_resp seq=5 status=0"


@dataclass(frozen=True)
class Close:
    reason: str


@dataclass(frozen=True)
class Bound:
    client: Any
    mode: Mode


@dataclass(frozen=True)
class Submission:
    """A complete message to make durable in outgoing/; answer with submit_done/submit_failed."""

    token: int
    client: Any
    to: str
    text: str  # "" for 8-bit data
    flash: bool
    registered_delivery: int
    source_addr: str
    validity_until: datetime | None
    send_after: datetime | None
    priority: str | None
    message_id: str | None  # chosen already for a long message whose first segments were answered
    parts_key: tuple | None = None  # set for long messages: (key, Concat) in the reassembly
    acquired_at: float | None = None  # when the client's limits counted it (to give it back)
    text_coding: int | None = None  # the alphabet the client wrote the text in (M.text_coding): its receipt's
    data: bytes | None = None  # 8-bit data (data_coding 2, 4, 0xF4..0xF7) instead of text
    udh: bytes = b""  # the client's own header without concatenation, UDHL first (ports, ...)
    message_class: int | None = None  # from data_coding 0xF0..0xF7 (bits 1..0)
    parts: int = 1  # SMS parts the text needs: what the limits counted
    max_parts: int = DEFAULT_MAX_PARTS  # the client's max_parts, written into the file as Max_parts:


@dataclass(frozen=True)
class Submit:
    submission: Submission


@dataclass(frozen=True)
class Query:
    sequence: int
    message_id: str
    client: Any


@dataclass
class Delivery:
    """One deliver_sm to send to a receiver of `client_name` (inbound SMS segment or receipt)."""

    client_name: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    short_message: bytes
    tlvs: dict[int, bytes] = field(default_factory=dict)
    attempts: int = 0
    what: str = ""
    row_id: int | None = None  # its record in the server's persistent outbox, if any


@dataclass(frozen=True)
class Queue:
    """Hand a delivery to the server's per-client queue (e.g. a receipt made here)."""

    delivery: Delivery


@dataclass(frozen=True)
class Delivered:
    """The client answered a deliver_sm (or the session ended before it did: status None)."""

    delivery: Delivery
    status: int | None


@dataclass(frozen=True)
class Park:
    """A delivery no deliver_sm can carry (its address cannot be encoded): keep it aside, do
    not send it again, and let the ones behind it go."""

    delivery: Delivery
    reason: str


Action = Send | Close | Bound | Submit | Query | Queue | Delivered | Park


@dataclass
class Timers:
    """Seconds. enquire_link after `idle` without traffic; the session is dead when nothing
    at all came for `dead`; a connection that has not bound after `bind` is closed."""

    idle: float = 30.0
    dead: float = 90.0
    bind: float = 30.0
    response: float = 30.0  # a deliver_sm unanswered this long is given back to the queue


class Session:
    def __init__(
        self,
        policy: ClientPolicy,
        *,
        now: float,
        wall_clock: Callable[[], datetime],
        new_id: Callable[[], str],
        window: int = 10,
        default_country: str | None = None,
        national_languages: tuple[str, ...] = (),
        reassembly_timeout: float = 120.0,
        timers: Timers | None = None,
        peer: str = "",
        pending_octets: M.PendingOctets | None = None,
    ):
        self.policy = policy
        self.window = window
        self.default_country = default_country
        self.national_languages = national_languages  # counted as the daemon will encode (config defaults)
        self.timers = timers or Timers()
        self.peer = peer
        self._wall_clock = wall_clock
        self._new_id = new_id
        self.state = State.OPEN
        self.mode: Mode | None = None
        self.client: Any = None
        self.system_id = ""
        self._reader = P.PduReader()
        # Its owner (the client) is set at the bind: the octets count towards that client.
        self._reassembly = M.Reassembly(reassembly_timeout, budget=pending_octets)
        self._opened = now
        self._last_heard = now
        self._enquire_sequence: int | None = None
        self._next_sequence = 1
        self._next_token = 1
        self._failed_binds = 0
        # Requests of the client still waiting for our answer: token -> sequence number.
        self._open_requests: dict[int, int] = {}
        self._unbind_sequence: int | None = None
        self._unbind_reason: str | None = None  # set when we asked the client to unbind
        self._unbind_asked: float | None = None  # when a tick first saw our unbind waiting
        # deliver_sm we sent: sequence -> (delivery, time sent)
        self._outstanding: dict[int, tuple[Delivery, float]] = {}

    def __repr__(self) -> str:
        who = f"{self.system_id}/{self.mode.value}" if self.mode else "unbound"
        return f"<smpp.Session {self.peer} {who} {self.state.value} open={len(self._open_requests)}>"

    # ---- input ----------------------------------------------------------------------------

    def data_received(self, data: bytes, now: float) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        self._last_heard = now
        self._reader.feed(data)
        actions: list[Action] = []
        while True:
            try:
                event = self._reader.next_event()
            except P.FramingError as exc:
                actions.extend(self._close(f"unusable PDU framing: {exc}"))
                return actions
            if event is P.NEED_DATA:
                return actions
            if isinstance(event, P.MalformedPdu):
                log.info("%r: malformed PDU 0x%08x: %s", self, event.command_id, event.reason)
                if event.command_id & P.RESPONSE_BIT:
                    # A response is never answered (SMPP 3.4 §2.8 pairs requests with responses);
                    # a garbled deliver_sm_resp still tells us its sequence and status.
                    entry = self._outstanding.pop(event.sequence, None)
                    if entry is not None and event.command_id == CommandId.DELIVER_SM_RESP:
                        actions.append(Delivered(entry[0], event.header_status))
                    elif entry is not None:
                        self._outstanding[event.sequence] = entry
                    continue
                actions.append(self._send(P.generic_nack(event.sequence, event.status)))
                continue
            assert isinstance(event, Pdu)
            actions.extend(self._handle(event, now))
            if self.state is State.CLOSED:
                return actions

    def _handle(self, pdu: Pdu, now: float) -> list[Action]:
        cid = pdu.command_id
        if cid.is_response:
            return self._handle_response(pdu, now)
        if cid == CommandId.ENQUIRE_LINK:
            return [self._send(P.response_to(pdu))]
        if cid in _BIND_MODES:
            return self._bind(pdu)
        if self.state is not State.BOUND:
            return [self._send(_error_response(pdu, Status.ESME_RINVBNDSTS))]
        if cid == CommandId.UNBIND:
            self.state = State.UNBINDING
            self._unbind_sequence = pdu.sequence
            return self._maybe_finish_unbind()
        if cid == CommandId.SUBMIT_SM:
            if not self.mode.transmits:  # type: ignore[union-attr]
                return [self._send(_error_response(pdu, Status.ESME_RINVBNDSTS))]
            return self._submit(pdu, now)
        if cid == CommandId.QUERY_SM:
            if not self.mode.transmits:  # type: ignore[union-attr]
                return [self._send(_error_response(pdu, Status.ESME_RINVBNDSTS))]
            return self._query(pdu)
        if cid == CommandId.DELIVER_SM:
            # An ESME does not deliver to the SMSC: SMPP 3.4 §4.6 is SMSC → ESME only.
            return [self._send(_error_response(pdu, Status.ESME_RINVCMDID))]
        return [self._send(P.generic_nack(pdu.sequence, Status.ESME_RINVCMDID))]

    def _handle_response(self, pdu: Pdu, now: float) -> list[Action]:
        cid = pdu.command_id
        if cid == CommandId.ENQUIRE_LINK_RESP:
            if pdu.sequence == self._enquire_sequence:
                self._enquire_sequence = None
            return []
        if cid in (CommandId.DELIVER_SM_RESP, CommandId.GENERIC_NACK):
            entry = self._outstanding.pop(pdu.sequence, None)
            if entry is None:
                if cid == CommandId.GENERIC_NACK:
                    log.info("%r: generic_nack 0x%x for seq=%d", self, pdu.status, pdu.sequence)
                return []
            return [Delivered(entry[0], pdu.status)]
        if cid == CommandId.UNBIND_RESP:
            if self.state is State.UNBINDING:
                return self._close("unbound")
            return []
        # A response to something we never sent: nothing to answer (a response is never answered).
        log.info("%r: unexpected %s seq=%d ignored", self, pdu.name, pdu.sequence)
        return []

    # ---- bind -----------------------------------------------------------------------------

    def _bind(self, pdu: Pdu) -> list[Action]:
        if self.state is not State.OPEN:
            status = Status.ESME_RALYBND if self.state is State.BOUND else Status.ESME_RINVBNDSTS
            return [self._send(_error_response(pdu, status))]
        system_id = str(pdu.params["system_id"])
        password = str(pdu.params["password"])
        client = self.policy.authenticate_smpp(system_id, password)
        if client is None:
            # One answer for an unknown system_id and a wrong password (docs/api.md names
            # ESME_RINVPASWD), so a bind does not tell which system_ids exist.
            self._failed_binds += 1
            log.warning("%r: bind as %r refused: unknown system_id or wrong password", self, system_id)
            actions: list[Action] = [self._send(_error_response(pdu, Status.ESME_RINVPASWD))]
            if self._failed_binds >= 3:
                actions.extend(self._close("three failed binds"))
            return actions
        self.state = State.BOUND
        self.mode = _BIND_MODES[pdu.command_id]
        self.client = client
        self.system_id = system_id
        self._reassembly.owner = getattr(client, "name", system_id)
        response = P.response_to(pdu, 0, system_id=SERVER_SYSTEM_ID)
        if int(pdu.params.get("interface_version", 0)) >= INTERFACE_VERSION_34:
            response.tlvs[Tag.SC_INTERFACE_VERSION] = P.tlv_u8(INTERFACE_VERSION_34)
        log.info("%r: bound", self)
        return [self._send(response), Bound(client, self.mode)]

    # ---- submit_sm ------------------------------------------------------------------------

    def _submit(self, pdu: Pdu, now: float) -> list[Action]:
        if len(self._open_requests) >= self.window:
            return [self._send(_error_response(pdu, Status.ESME_RMSGQFUL))]
        try:
            return self._submit_checked(pdu, now)
        except M.MessageError as exc:
            log.info("%r: submit_sm seq=%d refused: %s", self, pdu.sequence, exc)
            return [self._send(_error_response(pdu, exc.status))]

    def _submit_checked(self, pdu: Pdu, now: float) -> list[Action]:
        params = pdu.params
        to = M.destination_number(int(params["dest_addr_ton"]), str(params["destination_addr"]), self.default_country)
        verdict = self.policy.check_destination(self.client, to)
        if not verdict.allowed:
            raise M.MessageError(verdict.reason, Status.ESME_RINVDSTADR)
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in str(params["source_addr"])):
            raise M.MessageError("source_addr holds control characters", Status.ESME_RINVSRCADR)
        esm_class = int(params["esm_class"])
        data_coding = int(params["data_coding"])
        short_message = pdu.octets("short_message")
        payload = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD)
        if payload is not None and short_message:
            # SMPP 3.4 §5.3.2.32: message_payload and a non-empty short_message are exclusive.
            raise M.MessageError("both short_message and message_payload are set; send one", Status.ESME_RINVMSGLEN)
        raw = payload if payload is not None else short_message
        concat = None
        header = b""
        if esm_class & P.ESM_UDHI:
            concat, header, raw = M.split_udh(raw)
        if concat is None and pdu.tlvs.get(Tag.SAR_MSG_REF_NUM) is not None:
            concat = _sar_concat(pdu)
        wall = self._wall_clock()
        validity_until = M.parse_smpp_time(str(params["validity_period"]), wall, Status.ESME_RINVEXPIRY)
        send_after = M.parse_smpp_time(str(params["schedule_delivery_time"]), wall, Status.ESME_RINVSCHED)
        if validity_until is not None and validity_until <= wall:
            raise M.MessageError("validity_period is already over", Status.ESME_RINVEXPIRY)
        registered = int(params["registered_delivery"]) & 0x03
        if registered == 3:
            raise M.MessageError("registered_delivery 3 is reserved (SMPP 3.4 §5.2.17)", Status.ESME_RINVREGDLVFLG)

        token = self._next_token
        self._next_token += 1
        message_id = None
        parts_key = None
        acquired_at = None
        if concat is not None and concat.total > 1:
            key = (str(params["source_addr"]), to)
            if self._reassembly.is_new(key, concat):
                # Everything that can refuse the message is checked at its first segment, before
                # anything is held: its size, the data_coding, the client's limits.
                max_parts = self.policy.max_parts_for(self.client)
                if concat.total > max_parts:
                    raise M.MessageError(
                        f"the message has {concat.total} segments, more than max_parts {max_parts}",
                        Status.ESME_RINVMSGLEN,
                    )
                M.decode_text(data_coding, b"")
                acquired_at = self._acquire(now, concat.total)  # its parts, as the client split it
            try:
                message_id, joined = self._reassembly.add(
                    key, concat, data_coding, raw, now, self._new_id(), registered_delivery=registered,
                    header=header, acquired_at=acquired_at,
                )
            except M.MessageError:
                self._release(acquired_at, concat.total)
                raise
            if joined is None:
                # Not the last segment: the text is checked when the message is whole.
                return [self._send(P.response_to(pdu, 0, message_id=message_id))]
            raw = joined
            parts_key = (key, concat)
            registered = self._reassembly.registered_delivery(key, concat)
            header = self._reassembly.header(key, concat)
            acquired_at = self._reassembly.acquired_at(key, concat)
        try:
            national, header = M.take_national_shifts(header)
            header = _with_port_tlvs(pdu, header)
            data = raw if M.is_binary_coding(data_coding) else None
            text, flash = M.decode_text(data_coding, raw, national)
            if data is not None:
                coding = None  # data, not text: its receipt is made as for an older message
            else:
                coding = M.DC_DEFAULT if national != (0, 0) else M.text_coding(data_coding, raw)
            max_parts = self.policy.max_parts_for(self.client)
            parts = self._parts(text, data, header)
            if parts > max_parts:
                # ESME_RINVMSGLEN, "Message Length is invalid" (SMPP 3.4 §5.1.3): also past 255 parts.
                what = "data" if data is not None else "text"
                raise M.MessageError(f"the {what} needs {parts} SMS parts, more than max_parts {max_parts}",
                                     Status.ESME_RINVMSGLEN)
            if parts_key is None:
                acquired_at = self._acquire(now, parts)
            elif acquired_at is not None and parts > parts_key[1].total:
                # Its segments were counted at the first one; the SIMs send more parts than that.
                self._acquire(now, parts - parts_key[1].total)
            elif acquired_at is not None and parts < parts_key[1].total:
                self._release(acquired_at, parts_key[1].total - parts)
        except M.MessageError:
            if parts_key is not None:
                self._reassembly.done(*parts_key)
                self._release(acquired_at, parts_key[1].total)  # refused for good: it does not count
            raise
        priority = priority_of_level(int(params["priority_flag"]))
        submission = Submission(
            token=token,
            client=self.client,
            to=to,
            text=text,
            flash=flash,
            data=data,
            udh=header,
            message_class=M.coding_class(data_coding),
            registered_delivery=registered,
            source_addr=str(params["source_addr"]),
            validity_until=validity_until,
            send_after=send_after,
            priority=priority,
            message_id=message_id,
            parts_key=parts_key,
            acquired_at=acquired_at,
            text_coding=coding,
            parts=parts,
            max_parts=max_parts,
        )
        self._open_requests[token] = pdu.sequence
        return [Submit(submission)]

    def _acquire(self, now: float, parts: int) -> float | None:
        """Count `parts` SMS parts against the client's limits (when it has any): the time they
        were counted, to give them back with `_release`; ESME_RTHROTTLED when over a limit."""
        if not getattr(self.client, "limits", None):
            return None
        wait = self.policy.acquire(self.client, parts, now)
        if wait > 0:
            raise M.MessageError(
                f"over the limits of client {self.client.name!r}; retry in {wait:.0f} s", Status.ESME_RTHROTTLED
            )
        return now

    def _release(self, acquired_at: float | None, parts: int) -> None:
        if acquired_at is not None:
            self.policy.release(self.client, parts, acquired_at)

    def _parts(self, text: str, data: bytes | None, header: bytes) -> int:
        """The SMS parts the message needs, as the daemon will split it (its header in every part)."""
        udh = header or None
        try:
            if data is not None:
                return count_data_parts(data, udh=udh).parts
            return count_parts(text, national_languages=self.national_languages, udh=udh).parts
        except UserDataError as exc:
            raise M.MessageError(str(exc), M.user_data_status(exc)) from None

    def submit_done(self, submission: Submission, message_id: str) -> list[Action]:
        """The message is durable in outgoing/ as `message_id`: answer the client."""
        if submission.parts_key is not None:
            self._reassembly.done(*submission.parts_key)
        sequence = self._open_requests.pop(submission.token, None)
        if sequence is None or self.state is State.CLOSED:
            return []
        resp = Pdu(CommandId.SUBMIT_SM_RESP, sequence, 0, {"message_id": message_id})
        return [self._send(resp), *self._maybe_finish_unbind()]

    def submit_failed(self, submission: Submission, status: int, reason: str) -> list[Action]:
        """The message could not be queued (spool not writable, parse_outgoing refused it)."""
        log.warning("%r: submit to %s failed: %s", self, submission.to, reason)
        if submission.parts_key is not None:
            self._reassembly.done(*submission.parts_key)
        sequence = self._open_requests.pop(submission.token, None)
        if sequence is None or self.state is State.CLOSED:
            return []
        return [self._send(Pdu(CommandId.SUBMIT_SM_RESP, sequence, status)), *self._maybe_finish_unbind()]

    # ---- query_sm -------------------------------------------------------------------------

    def _query(self, pdu: Pdu) -> list[Action]:
        if len(self._open_requests) >= self.window:
            return [self._send(_error_response(pdu, Status.ESME_RMSGQFUL))]
        token = self._next_token
        self._next_token += 1
        self._open_requests[token] = pdu.sequence
        return [Query(token, str(pdu.params["message_id"]), self.client)]

    def query_done(
        self, token: int, message_id: str, state: int | None, final_date: datetime | None, error_code: int = 0
    ) -> list[Action]:
        """Answer a query_sm; `state` None means no such message of this client."""
        sequence = self._open_requests.pop(token, None)
        if sequence is None or self.state is State.CLOSED:
            return []
        if state is None:
            resp = Pdu(CommandId.QUERY_SM_RESP, sequence, Status.ESME_RQUERYFAIL)
        else:
            resp = Pdu(
                CommandId.QUERY_SM_RESP,
                sequence,
                0,
                {
                    "message_id": message_id,
                    "final_date": M.smpp_absolute_time(final_date) if final_date else "",
                    "message_state": state,
                    "error_code": error_code & 0xFF,
                },
            )
        return [self._send(resp), *self._maybe_finish_unbind()]

    # ---- deliver_sm -----------------------------------------------------------------------

    @property
    def can_deliver(self) -> bool:
        return (
            self.state is State.BOUND
            and self.mode is not None
            and self.mode.receives
            and len(self._outstanding) < self.window
        )

    def deliver(self, delivery: Delivery, now: float) -> list[Action]:
        """Send one deliver_sm, or Park it when no deliver_sm can carry it. The caller checks
        `can_deliver` first."""
        try:
            source = M.deliver_address(delivery.source_addr)
            # A receipt goes to the ESME's own source_addr, given back as it sent it.
            destination = M.deliver_address(
                delivery.destination_addr, verbatim=delivery.esm_class & P.ESM_DELIVERY_RECEIPT != 0
            )
            pdu = Pdu(
                CommandId.DELIVER_SM,
                self._next_sequence,
                0,
                {
                    "source_addr_ton": source[0], "source_addr_npi": source[1], "source_addr": source[2],
                    "dest_addr_ton": destination[0], "dest_addr_npi": destination[1],
                    "destination_addr": destination[2],
                    "esm_class": delivery.esm_class,
                    "data_coding": delivery.data_coding,
                    "short_message": delivery.short_message,
                },
                dict(delivery.tlvs),
            )
            data = P.encode(pdu)
        except ValueError as exc:  # AddressNotEncodable, or a field P.encode refuses
            return [Park(delivery, str(exc))]
        sequence = self._take_sequence()
        delivery.attempts += 1
        self._outstanding[sequence] = (delivery, now)
        return [Send(data, f"{pdu.name} seq={sequence} status=0x0")]

    # ---- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Timers: bind timeout, enquire_link, dead peer, unanswered deliver_sm, stale segments."""
        if self.state is State.CLOSED:
            return []
        if self.state is State.OPEN and now - self._opened >= self.timers.bind:
            return self._close(f"no bind within {self.timers.bind:.0f} s")
        if now - self._last_heard >= self.timers.dead:
            return self._close(f"nothing heard for {now - self._last_heard:.0f} s (no enquire_link_resp)")
        if self.state is State.UNBINDING and self._unbind_reason is not None:
            if self._unbind_asked is None:
                self._unbind_asked = now
            elif now - self._unbind_asked >= self.timers.response:
                return self._close(f"{self._unbind_reason}, and no unbind_resp came")
        actions: list[Action] = []
        if (
            self.state is State.BOUND
            and self._enquire_sequence is None
            and now - self._last_heard >= self.timers.idle
        ):
            self._enquire_sequence = self._take_sequence()
            actions.append(self._send(Pdu(CommandId.ENQUIRE_LINK, self._enquire_sequence)))
        for sequence, (delivery, sent) in list(self._outstanding.items()):
            if now - sent >= self.timers.response:
                del self._outstanding[sequence]
                actions.append(Delivered(delivery, None))
        for key, message_id, got, total, registered, acquired_at in self._reassembly.expire(now):
            log.warning("%r: long message %s to %s dropped: %d of %d segments came", self, message_id, key[1], got, total)
            self._release(acquired_at, total)
            if registered in (M.RECEIPT_ALWAYS, M.RECEIPT_ON_FAILURE):
                actions.extend(self._incomplete_receipt(key, message_id, got, total))
        return actions

    def _incomplete_receipt(self, key: tuple, message_id: str, got: int, total: int) -> list[Action]:
        # Its first segments were answered with ESME_ROK, so a client that asked for receipts
        # must hear that the message went nowhere: a REJECTD receipt.
        source_addr, to = key
        if self.client is None:
            return []
        wall = self._wall_clock()
        text = M.receipt_text(
            message_id=message_id, stat="REJECTD", submitted=wall, done=wall, err=0,
            text=f"{got} of {total} parts",
        )
        data_coding, short_message = M.receipt_short_message(text, None)
        return [
            Queue(
                Delivery(
                    client_name=self.client.name,
                    source_addr=to,
                    destination_addr=source_addr,
                    data_coding=data_coding,
                    esm_class=P.ESM_DELIVERY_RECEIPT,
                    short_message=short_message,
                    tlvs={
                        Tag.RECEIPTED_MESSAGE_ID: P.tlv_cstring(message_id),
                        Tag.MESSAGE_STATE: P.tlv_u8(P.MessageState.REJECTED),
                    },
                    what=f"receipt REJECTD {message_id}",
                )
            )
        ]

    def start_unbind(self, reason: str = "server stopping") -> list[Action]:
        """Ask the client to unbind (SMPP 3.4 §4.2): the server is stopping, or the client's
        login is no longer valid. Nothing new is accepted meanwhile (ESME_RINVBNDSTS); a client
        that does not answer within `timers.response` is disconnected."""
        if self.state is not State.BOUND:
            return self._close(reason)
        self.state = State.UNBINDING
        self._unbind_reason = reason
        return [self._send(Pdu(CommandId.UNBIND, self._take_sequence()))]

    def client_changed(self, client: Any, still_valid: bool) -> list[Action]:
        """The config was reloaded. `client` is the new entry of the bound client's name (None if
        it is gone); `still_valid` says whether it accepts the login this session bound with.
        A session whose login is no longer valid is unbound; otherwise it takes the new entry
        (rules, limits, max_parts) at once."""
        if self.state is not State.BOUND or self.client is None:
            return []
        if client is None or not still_valid:
            why = "is no longer in the config" if client is None else "has a new system_id or password"
            log.warning("%r: client %s %s; unbinding", self, self.client.name, why)
            return self.start_unbind(f"client {self.client.name} {why}")
        self.client = client
        return []

    def connection_lost(self) -> list[Action]:
        """The socket is gone: deliveries without an answer go back to the queue; unfinished
        long messages are dropped (their memory and their count in the limits given back)."""
        actions: list[Action] = [Delivered(d, None) for d, _ in self._outstanding.values()]
        self._outstanding.clear()
        self.state = State.CLOSED
        self._drop_unfinished()
        return actions

    # ---- helpers --------------------------------------------------------------------------

    def _maybe_finish_unbind(self) -> list[Action]:
        if self.state is not State.UNBINDING or self._unbind_sequence is None or self._open_requests:
            return []
        resp = Pdu(CommandId.UNBIND_RESP, self._unbind_sequence)
        self._unbind_sequence = None
        return [self._send(resp), *self._close("client unbound")]

    def _close(self, reason: str) -> list[Action]:
        actions: list[Action] = [Delivered(d, None) for d, _ in self._outstanding.values()]
        self._outstanding.clear()
        self.state = State.CLOSED
        self._drop_unfinished()
        actions.append(Close(reason))
        return actions

    def _drop_unfinished(self) -> None:
        for acquired_at, total in self._reassembly.clear():
            self._release(acquired_at, total)

    def _take_sequence(self) -> int:
        # SMPP 3.4 §5.1.4: 0x00000001..0x7FFFFFFF, then wrap.
        sequence = self._next_sequence
        self._next_sequence = 1 if sequence >= 0x7FFFFFFF else sequence + 1
        return sequence

    def _send(self, pdu: Pdu) -> Send:
        return Send(P.encode(pdu), f"{pdu.name} seq={pdu.sequence} status=0x{pdu.status:x}")


def _error_response(request: Pdu, status: int) -> Pdu:
    """The response PDU to `request` carrying an error (body left out, SMPP 3.4 §4.1.2/§4.4.2)."""
    return Pdu(CommandId(int(request.command_id) | P.RESPONSE_BIT), request.sequence, status)


def _with_port_tlvs(pdu: Pdu, header: bytes) -> bytes:
    """destination_port/source_port (SMPP 3.4 §5.3.2.20-21) become the 16-bit port IE of the
    header, unless the client's header addresses ports itself."""
    destination = pdu.tlv_int(Tag.DESTINATION_PORT)
    if destination is None:
        return header
    if header and any(iei in (0x04, 0x05) for iei, _ in M.udh_rules.parse_elements(header[1:])):
        return header
    ports = M.ports_header(destination, pdu.tlv_int(Tag.SOURCE_PORT))
    return bytes((ports[0] + len(header) - 1,)) + ports[1:] + header[1:] if header else ports


def _sar_concat(pdu: Pdu) -> M.Concat | None:
    """SMPP 3.4 §5.3.2.22-24: the three sar_* TLVs go together."""
    ref = pdu.tlv_int(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlv_int(Tag.SAR_TOTAL_SEGMENTS)
    seq = pdu.tlv_int(Tag.SAR_SEGMENT_SEQNUM)
    if ref is None or total is None or seq is None:
        raise M.MessageError("sar_msg_ref_num needs sar_total_segments and sar_segment_seqnum", Status.ESME_RMISSINGOPTPARAM)
    if total == 0 or seq == 0 or seq > total:
        raise M.MessageError(f"sar segment {seq} of {total} is impossible", Status.ESME_RINVOPTPARAMVAL)
    return M.Concat(ref, total, seq)
