"""Inbound SMS and delivery reports: from a PDU read off a modem to a file on disk.

What it reads: PDUs (hex, with the SMSC field) that a worker read from a modem (`+CMT`, `+CMGR`
after `+CMTI`, the periodic `+CMGL` sweep, `+CDS`). What it writes: incoming/ and report/ files,
sent/ files updated with `Status:`/`Delivered:`, the journal's inbound parts store.

The order that makes it safe (docs/spool.md): `accept_pdu` returns only after the message's file, or
for one part of a multipart message its row in the parts store, is on disk and fsynced. The
worker deletes the SIM copy only after that. A part stored twice (read again by a sweep before
its deletion went through) is kept once.

Multipart messages (TS 23.040 §9.2.3.24.1 and §9.2.3.24.8) are joined from the parts store, keyed
by (SIM, sender, reference, total, reference width), so parts survive a restart. A message whose
parts are still missing after `reassembly_timeout` is written with what arrived and
`Incomplete: yes`, and `Parts:` giving the number of parts that did arrive.

A PDU that cannot be decoded is still written to incoming/, never dropped: headers `Modem:`,
`IMSI:`, `Received:`, `Decode_error:` (what is wrong) and `PDU:`, and the hex as the body.

Delivery reports (TS 23.040 §9.2.2.3 SMS-STATUS-REPORT) are matched to a sent part by (SIM,
TP-MR, recipient) through the journal: the most recent such part within `report_window`. The MR
is one octet and wraps, so the window and the recipient keep an old part from being matched.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from gsmgw.config import InboundConfig
from gsmgw.daemon.events import EventBus
from gsmgw.daemon.metrics import Metrics
from gsmgw.events import MessageReceived, ReportReceived
from gsmgw.sms import DecodeError, Sms, decode_pdu, join_parts
from gsmgw.spool.format import (
    Headers,
    build_incoming,
    build_report,
    incoming_name,
    iso,
    report_status,
    update_headers,
)
from gsmgw.spool.journal import ForwardedReport, InboundGroup, Journal, ReportMatch
from gsmgw.spool.message_status import REPORT_DELIVERED, Delivery, delivery
from gsmgw.spool.store import Spool

log = logging.getLogger("gsmgw.inbound")

DEFAULT_REASSEMBLY_TIMEOUT = InboundConfig.reassembly_timeout
# A report later than inbound.report_window (3 days: the default validity is 2 days, and the MR
# of a busy SIM wraps every 256 parts) is not matched.
REPORT_WINDOW = InboundConfig.report_window


@dataclass(frozen=True)
class Accepted:
    """What became of one PDU; `durable` is True when the SIM copy may be deleted."""

    kind: str  # "message", "part", "report", "undecodable", "ignored", "duplicate"
    durable: bool
    name: str | None = None  # the file written, if any


def _local(now: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(now).astimezone()


class Inbound:
    def __init__(
        self,
        spool: Spool,
        journal: Journal,
        bus: EventBus | None,
        metrics: Metrics | None = None,
        *,
        reassembly_timeout: float = DEFAULT_REASSEMBLY_TIMEOUT,
        report_window: float = REPORT_WINDOW,
        clock: Callable[[], float] = time.time,
    ):
        self.spool = spool
        self.journal = journal
        self.bus = bus
        self.metrics = metrics
        self.reassembly_timeout = reassembly_timeout
        self.report_window = report_window  # the running config's (a reload changes it)
        self.clock = clock

    # -- entry point ------------------------------------------------------------------------

    def accept_pdu(self, pdu_hex: str, *, modem: str, imsi: str | None) -> Accepted:
        """Decode and store one PDU from `modem`; see the module docstring for the rules."""
        now = self.clock()
        try:
            sms = decode_pdu(pdu_hex)
        except (DecodeError, ValueError) as error:
            return self._write_undecodable(pdu_hex, str(error), modem, imsi, now)
        if sms.type == "status-report":
            return self.accept_report(sms, modem=modem, imsi=imsi)
        if sms.type != "deliver":
            # An SMS-SUBMIT in the inbox is our own outgoing copy some modems store: not inbound.
            log.info("%s: ignoring a stored %s PDU (not an incoming message)", modem, sms.type)
            return Accepted("ignored", durable=True)
        if sms.concat is None or sms.concat.total <= 1:
            return self._accept_single(sms, pdu_hex, modem, imsi, now)
        if self.journal.inbound_part_done(_part_key(imsi or modem, pdu_hex)):
            log.info(
                "%s: part %d/%d from %s came again after its message was written; not kept twice",
                modem, sms.concat.seq, sms.concat.total, sms.number,
            )
            return Accepted("duplicate", durable=True)
        key = self._group_key(sms, imsi or modem)
        group = self.journal.store_inbound_part(
            key, sms.concat.seq, sms.concat.total, _clean_hex(pdu_hex), modem, imsi, now
        )
        log.info(
            "%s: part %d/%d from %s stored (%d of %d here)",
            modem, sms.concat.seq, sms.concat.total, sms.number, len(group.pdus), group.total,
        )
        if len(group.pdus) >= group.total:
            name = self._write_group(group, now, incomplete=False)
            return Accepted("message", durable=True, name=name)
        return Accepted("part", durable=True)

    def _accept_single(self, sms: Sms, pdu_hex: str, modem: str, imsi: str | None, now: float) -> Accepted:
        """Write a single SMS once, even when its SIM copy is read again after a crash that fell
        between the file and the deletion: the journal records (SIM, PDU) -> file name before the
        file is written."""
        key = _part_key(imsi or modem, pdu_hex)
        known = self.journal.inbound_file_for(key)
        if known is not None:
            name, written = known
            if written or self.spool.exists("incoming", name):
                log.info("%s: an SMS from %s read again after it was written to incoming/%s; not kept twice",
                         modem, sms.number, name)
                if not written:
                    self.journal.inbound_file_written(key)
                return Accepted("duplicate", durable=True, name=name)
        else:
            name = incoming_name(modem, _local(now), secrets.token_hex(4))
            self.journal.record_inbound_file(key, name, now)
        name = self._write_message([sms], modem, imsi, now, incomplete=False, total=1, name=name)
        self.journal.inbound_file_written(key)
        return Accepted("message", durable=True, name=name)

    # -- multipart --------------------------------------------------------------------------

    @staticmethod
    def _group_key(sms: Sms, sim: str) -> str:
        concat = sms.concat
        if concat is None:
            raise ValueError("a single SMS has no multipart group")
        return f"{sim}|{sms.number or ''}|{concat.ref}|{concat.total}|{concat.bits}"

    def flush(self) -> list[str]:
        """Write out groups that are complete (a crash fell between the last part and its file)
        and groups older than the reassembly timeout (with `Incomplete: yes`). Returns names."""
        now = self.clock()
        written = []
        for group in self.journal.complete_inbound_groups():
            written.append(self._write_group(group, now, incomplete=False))
        for group in self.journal.inbound_groups_older_than(now - self.reassembly_timeout):
            missing = sorted(set(range(1, group.total + 1)) - set(group.pdus))
            log.warning(
                "%s: multipart message gave up waiting for parts %s after %.0f h; writing what arrived",
                group.modem, ",".join(map(str, missing)), self.reassembly_timeout / 3600,
            )
            written.append(self._write_group(group, now, incomplete=True))
        return written

    def _write_group(self, group: InboundGroup, now: float, *, incomplete: bool) -> str:
        parts = [decode_pdu(group.pdus[seq]) for seq in sorted(group.pdus)]
        name = self._write_message(
            parts, group.modem, group.imsi, now, incomplete=incomplete, total=len(parts)
        )
        sim = group.imsi or group.modem
        self.journal.drop_inbound_group(
            group.key, done=[_part_key(sim, pdu) for pdu in group.pdus.values()], now=now
        )
        return name

    # -- writing ----------------------------------------------------------------------------

    def _write_message(
        self, parts: list[Sms], modem: str, imsi: str | None, now: float, *, incomplete: bool, total: int,
        name: str | None = None,
    ) -> str:
        first = parts[0]
        received = _local(now)
        alphabet = first.alphabet if first.alphabet in ("gsm7", "ucs2", "8bit") else "8bit"
        text = join_parts(parts)
        data = b"".join(p.data or b"" for p in parts) if alphabet == "8bit" else None
        # The sender's header is kept when it carries more than concatenation and national shifts
        # (ports of a WAP push or vCard, OTA, special indications): smstools3's UDH-DATA. The
        # shifts of a national text are applied in its decoding already.
        udh = first.user_udh if first.is_binary else b""
        ports = (first.ports.destination, first.ports.origin) if first.ports is not None else None
        content = build_incoming(
            sender=first.number or "",
            sender_toa=first.number_toa if first.number_toa is not None else 0x81,
            smsc=first.smsc,
            sent=first.timestamp,
            received=received,
            modem=modem,
            imsi=imsi,
            alphabet=alphabet,
            parts=total,
            flash=first.msg_class == 0,
            incomplete=incomplete,
            text=text,
            data=data,
            udh=udh,
            ports=ports,
        )
        name = self.spool.write_new(
            "incoming", content, name=name or incoming_name(modem, received, secrets.token_hex(4))
        )
        self.journal.count(now, modem, "received")
        if self.metrics:
            self.metrics.received.labels(modem).inc()
        log.info(
            "%s: received %s from %s (%d part%s%s)",
            name, "binary SMS" if data is not None else "SMS", first.number, total, "" if total == 1 else "s",
            ", incomplete" if incomplete else "",
        )
        if self.bus:
            self.bus.publish(
                MessageReceived(
                    id=name,
                    path=str(self.spool.path("incoming", name)),
                    sender=first.number or "",
                    sender_toa=first.number_toa,
                    text=text if alphabet != "8bit" else (data or b"").hex().upper(),
                    modem=modem,
                    sent=iso(first.timestamp) if first.timestamp else None,
                    received=iso(received),
                    parts=total,
                    incomplete=incomplete,
                    data=data,
                    udh=udh,
                    ports=ports,
                )
            )
        return name

    def _write_undecodable(
        self, pdu_hex: str, reason: str, modem: str, imsi: str | None, now: float
    ) -> Accepted:
        received = _local(now)
        clean = _clean_hex(pdu_hex)
        lines = [f"Modem: {modem}"]
        if imsi:
            lines.append(f"IMSI: {imsi}")
        lines.append(f"Received: {iso(received)}")
        error_text = " ".join(reason.split())
        lines.append(f"Decode_error: {error_text}")
        lines.append(f"PDU: {clean}")
        content = ("\n".join(lines) + "\n\n" + clean + "\n").encode("utf-8")
        name = self.spool.write_new(
            "incoming", content, name=incoming_name(modem, received, secrets.token_hex(4))
        )
        self.journal.count(now, modem, "received")
        if self.metrics:
            self.metrics.received.labels(modem).inc()
        log.warning("%s: could not decode a PDU from %s (%s); saved with its hex", name, modem, reason)
        if self.bus:
            # Announced like any SMS (hooks, webhooks, SMPP), so someone learns it came.
            self.bus.publish(
                MessageReceived(
                    id=name,
                    path=str(self.spool.path("incoming", name)),
                    sender="",
                    text=clean,
                    modem=modem,
                    sent=None,
                    received=iso(received),
                    parts=1,
                    incomplete=False,
                    decode_error=error_text,
                )
            )
        return Accepted("undecodable", durable=True, name=name)

    # -- delivery reports -------------------------------------------------------------------

    def accept_report(self, sms: Sms, *, modem: str, imsi: str | None) -> Accepted:
        now = self.clock()
        tp_status = sms.status if sms.status is not None else 0
        verdict = report_status(tp_status)
        mr = sms.mr if sms.mr is not None else -1
        match = self.journal.match_report(
            imsi=imsi,
            modem=modem,
            mr=mr,
            recipient=sms.number,
            tp_status=tp_status,
            report_state=verdict.word,
            discharge=iso(sms.discharge) if sms.discharge else None,
            now=now,
            window=self.report_window,
        )
        if match is not None and self.metrics:
            part = next(p for p in match.parts if p.seq == match.seq)
            self.metrics.reports.labels(verdict.word).inc()
            if part.submitted and verdict.word == "delivered":
                self.metrics.report_latency.observe(max(now - part.submitted, 0.0))
        if match is not None and match.forwarded:
            # Another member's spool holds the message: the journal keeps the report for it, and
            # that member writes report/ and updates sent/ (at once, or when it is back).
            log.info("%s: report for part %d of %s: %s; kept for its origin %s", modem, match.seq,
                     match.message.id, verdict.text(tp_status), match.message.origin)
            return Accepted("report", durable=True)
        name = self._file_report(match, recipient=sms.number, modem=modem, mr=mr, tp_status=tp_status,
                                 discharge=sms.discharge)
        return Accepted("report", durable=True, name=name)

    def file_forwarded_report(self, report: ForwardedReport) -> str:
        """On the message's origin: write the report/ file of a report another member's modem
        received, update sent/, announce it. The file's name comes from the journal's record, so
        doing it again after a crash rewrites the same file."""
        row = self.journal.message(report.message)
        parts = tuple(self.journal.parts(report.message))
        match = None
        if row is not None and parts:
            match = ReportMatch(message=row, seq=report.part, parts=parts, all_final=False, delivered=False)
        discharge = _dt.datetime.fromisoformat(report.discharge) if report.discharge else None
        received = _local(report.received).strftime("%Y%m%d-%H%M%S")
        return self._file_report(match, recipient=report.recipient, modem=report.modem, mr=report.mr,
                                 tp_status=report.tp_status, discharge=discharge,
                                 name=f"{report.modem}-{received}-r{report.seq}")

    def _file_report(self, match: ReportMatch | None, *, recipient: str | None, modem: str, mr: int,
                     tp_status: int, discharge: _dt.datetime | None, name: str | None = None) -> str:
        """report/ file, sent/ file's Status:, ReportReceived: the origin's side of a report."""
        verdict = report_status(tp_status)
        content = build_report(
            recipient=recipient or "",
            modem=modem,
            message_id=mr if mr >= 0 else 0,
            sent_file=match.message.name if match else None,
            status=tp_status,
            discharge=discharge,
        )
        if name is None:
            name = self.spool.write_new("report", content, prefix=f"{modem}-")
        else:
            self.spool.write_atomic("report", name, content)
        if match is None:
            log.warning(
                "%s: delivery report from %s for MR %s on %s matches no sent part (older than %.0f days, "
                "or sent by other software on this SIM)",
                name, recipient, mr, modem, self.report_window / 86400,
            )
            return name
        message = match.message
        whole = delivery(match.parts)
        if whole is None:
            # A forwarded report whose message was replaced meanwhile (its name reused by a new
            # file): the report file stays, the new message's sent/ file is not its to change.
            log.warning("%s: report for MR %s of %s, which is a new message now; its sent/ file is left as it is",
                        name, mr, message.name)
            return name
        headers = self._update_sent_file(message.name, whole)
        log.info(
            "%s: report for part %d/%d of %s: %s (message %s)",
            name, match.seq, message.parts, message.name, verdict.text(tp_status), whole.status_header(),
        )
        if self.bus:
            self.bus.publish(
                ReportReceived(
                    id=message.name,
                    to=message.recipient,
                    status=whole.word,
                    delivered=whole.word == REPORT_DELIVERED,
                    message_ids=tuple(p.mr for p in match.parts if p.mr is not None),
                    report_path=str(self.spool.path("report", name)),
                    modem=modem,
                    discharge=iso(discharge) if discharge else None,
                    tp_status=tp_status,
                    headers=headers,
                )
            )
        return name

    def _update_sent_file(self, message_id: str, whole: Delivery) -> Headers:
        """Write `Status:` (and `Delivered:` once every part is) into sent/<id>. The file may not be
        there yet (a report for part 1 can beat the submit of part 3); the worker then writes
        the same headers itself when it writes the file (`Outbound.finish_sent`)."""
        try:
            data = self.spool.read("sent", message_id)
        except FileNotFoundError:
            try:
                return self.spool.verified(self.spool.read("checked", message_id)).headers
            except (OSError, ValueError):
                return Headers()
        updated = update_headers(data, whole.sent_file_headers())
        self.spool.write_atomic("sent", message_id, updated)
        return self.spool.verified(updated).headers


def _part_key(sim: str, pdu_hex: str) -> str:
    return hashlib.sha256(f"{sim}|{_clean_hex(pdu_hex)}".encode()).hexdigest()


def _clean_hex(pdu_hex: str) -> str:
    return "".join(pdu_hex.split()).upper()
