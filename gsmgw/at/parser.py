"""Sans-IO parser of the AT byte stream: bytes in, events out.

Rules of this file:
- No I/O and no clock. The session feeds what it read (:meth:`AtParser.feed`) and tells the
  parser which command is in flight (:meth:`start_command`, :meth:`abandon_command`).
- Bytes are latin-1, so any byte sequence decodes; garbage yields :class:`Noise`, never an
  exception.
- A line is classified by what is in flight. ``+CREG: 1`` answers ``AT+CREG?`` but is a URC at
  any other time; ``+CMTI:`` is always a URC. The rule: a line whose prefix is the name of the
  command in flight is a response; a line with a known URC prefix (or a known bare URC like
  ``RING``) is a URC; any other line belongs to the command in flight, or is noise when none is.
- Two-line URCs (``+CMT``, ``+CDS``, ``+CBM``: header then PDU line, TS 27.005 §3.4.1) are
  emitted once, complete.
- Lines are ended by CR or LF (echo ends with a bare CR; V.250 §5.2.1 ends responses with CRLF).
  The ``> `` prompt has no line end; it is recognised only while a command waits for one.
- The parser ends a command itself on its final result, so that URCs right after ``OK`` in the
  same read are classified correctly.
- A final ``OK`` glued to the end of an answer line that is data (hex, or ending in a digit or
  a quote) is split off; free text keeps its letters ("FACEBOOK").
- Feeding the same bytes in any split yields the same events (tested with hypothesis).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from gsmgw.at.errors import cme_code_from_text, cms_code_from_text
from gsmgw.at.events import (
    CallerId,
    CellBroadcast,
    Final,
    IncomingDirect,
    IncomingStored,
    LatePrompt,
    LateSubmitResult,
    Line,
    ModemReady,
    Noise,
    Prompt,
    RegistrationChanged,
    ReportDirect,
    ReportStored,
    Ring,
    SignalReport,
    SimStatus,
    StorageFull,
    StrayFinal,
    StrayResponse,
    Urc,
    UssdResult,
)

Event = Line | Final | Prompt | Urc

# V.250 §5.7.1 and TS 27.007 §9: finals that are plain words.
_WORD_FINALS = {
    "OK": "OK",
    "ERROR": "ERROR",
    "NO CARRIER": "NO CARRIER",
    "BUSY": "BUSY",
    "NO ANSWER": "NO ANSWER",
    "NO DIALTONE": "NO DIALTONE",
    "NO DIAL TONE": "NO DIALTONE",
    "CONNECT": "CONNECT",
    # ZTE MF-series sticks answer unknown commands so instead of ERROR.
    "COMMAND NOT SUPPORT": "COMMAND NOT SUPPORT",
}
_CODED_FINAL = re.compile(r"^\+(CMS|CME) ERROR:?\s*(.*)$", re.IGNORECASE)

# Prefixes (text before ':') of TS 27.005 §3.4.1 / TS 27.007 that modems send unsolicited. A
# prefix here is still a response when it is the name of the command in flight (AT+CREG? ->
# +CREG:). The vendors' own URCs, with their decoders, are in the profiles (gsmgw.at.profiles).
URC_PREFIXES = frozenset(
    {
        "+CMTI", "+CDSI", "+CMT", "+CDS", "+CBM", "+CRING", "+CLIP", "+CCWA", "+CUSD",
        "+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CPIN", "+CFUN", "+CIEV", "+CGEV", "+CTZV",
        "+CTZE", "+CSQ", "+CUSATP", "+STIN", "+CMTE", "+CPINR",
    }
)


class VendorLine(Protocol):
    """What the parser needs of a vendor URC (gsmgw.at.profiles.VendorUrc)."""

    @property
    def bare(self) -> bool: ...
    def decode(self, rest: str, fields: list[str], raw: str) -> Urc: ...


# The vendor URCs by (upper-case prefix or bare line, bare), as gsmgw.at.profiles.VENDOR_URCS.
VendorTable = Mapping[tuple[str, bool], VendorLine]
# Two-line URCs: the header is followed by a PDU line.
_PDU_URCS = {"+CMT", "+CDS", "+CBM"}

_PREFIX = re.compile(r"^([+^$*%#][A-Za-z0-9_]+|[A-Z]{2,}):\s?(.*)$", re.DOTALL)
_COMMAND_NAME = re.compile(r"^AT([+^$*%#][A-Za-z0-9_]+|&?[A-Za-z])?", re.IGNORECASE)
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
# "OK" glued to the end of the last answer line, without the CRLF V.250 §5.7.1 puts before it
# (seen from cheap SIM800 clones and in smstools3 bug reports: "+CSQ: 20,99OK",
# "<pdu>OK"). Split only where it cannot be text: after hex digits (a PDU line, which holds no
# 'O' or 'K', nor does an IMEI), or after a digit or closing quote ("MF190OK", "+CSQ: 20,99OK");
# words end in letters ("FACEBOOK" stays whole).
_GLUED_OK = re.compile(r'^([0-9A-Fa-f]+|.*[0-9"])OK$', re.DOTALL)
# Ctrl-Z ends an echoed PDU and ESC leads an echoed command after we left a stale prompt; both
# are trimmed from the ends of a line.
_TRIM = " \t\x1a\x1b"
# C0 controls, DEL, C1 and 0xFF never occur in a modem's text (operator names use 0xA0-0xFE).
# Line noise on a bad USB link shows up as exactly these, so a line holding one is noise.
_NOISE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\xff]")
_LINE_END = re.compile(rb"[\r\n]")
# Longest quoted +CUSD text that may span several lines before a missing quote is given up.
_MAX_CONTINUATION_LINES = 32


_PIN_ARGUMENT = re.compile(r"(AT\+CPIN=)(.*)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` as it may appear in logs, errors and events: a PIN/PUK never does."""
    return _PIN_ARGUMENT.sub(r'\1"****"', text)


def command_name(command: str) -> str:
    """The response prefix of a command: ``AT+CREG?`` -> ``+CREG``, ``AT^CPIN?`` -> ``^CPIN``,
    ``ATI`` -> ``I``, ``AT`` -> ``""`` (V.250 §5.3 basic and extended syntax)."""
    m = _COMMAND_NAME.match(command.strip())
    if not m or not m.group(1):
        return ""
    return m.group(1).upper()


def split_fields(text: str) -> list[str]:
    """Split a response's parameters at commas outside double quotes; quotes are removed.

    ``"SM",3`` -> ``["SM", "3"]``; ``,24`` -> ``["", "24"]``.
    """
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    fields.append("".join(current).strip())
    return fields


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_final(line: str) -> Final | None:
    """The final result code in ``line``, or None if it is not one."""
    upper = line.upper()
    if upper in _WORD_FINALS:
        return Final(_WORD_FINALS[upper], line)
    m = _CODED_FINAL.match(line)
    if not m:
        return None
    kind, rest = m.group(1).upper(), m.group(2).strip()
    code = _int(rest)
    if code is None and rest:
        # CMEE=2: the meaning as text. Map it back to the number where the tables know it.
        code = cms_code_from_text(rest) if kind == "CMS" else cme_code_from_text(rest)
    return Final(kind, line, code, rest)


def csq_to_dbm(rssi: int | None) -> int | None:
    """TS 27.007 §8.5 +CSQ <rssi>: 0 is -113 dBm or less, 31 is -51 dBm or more, 2 dBm a step;
    99 is "not known or not detectable"."""
    if rssi is None or not 0 <= rssi <= 31:
        return None
    return -113 + 2 * rssi


def _classify_urc(name: str | None, rest: str, raw: str, vendor: VendorTable) -> Urc:
    """Turn one complete unsolicited line into its typed event: TS 27.005/27.007 here, a
    vendor's own line by its profile's decoder."""
    upper = raw.upper()
    if name is None:
        if upper == "RING":
            return Ring(raw)
        bare = vendor.get((upper, True))
        return bare.decode("", [], raw) if bare is not None else Noise(raw)
    f = split_fields(rest)
    own = vendor.get((name, False))
    if own is not None:
        return own.decode(rest, f, raw)
    if name in ("+CMTI", "+CDSI") and len(f) >= 2 and _int(f[1]) is not None:
        # TS 27.005 §3.4.1: <mem>,<index>; fields some firmwares add after it are ignored.
        cls = IncomingStored if name == "+CMTI" else ReportStored
        return cls(raw, f[0].upper(), int(f[1]))
    if name == "+CRING":
        return Ring(raw, rest.strip())
    if name == "+CLIP":
        return CallerId(raw, f[0], _int(f[1]) if len(f) > 1 else None, _int(f[5]) if len(f) > 5 else None)
    if name == "+CUSD" and _int(f[0]) is not None:
        text = f[1] if len(f) > 1 else None
        dcs = _int(f[2]) if len(f) > 2 else None
        return UssdResult(raw, int(f[0]), text, dcs)
    if name in ("+CREG", "+CGREG", "+CEREG", "+C5GREG") and _int(f[0]) is not None:
        # Unsolicited form (TS 27.007 §7.2): +CREG: <stat>[,<lac>,<ci>[,<AcT>]]
        return RegistrationChanged(raw, name[1:], int(f[0]))
    if name == "+CPIN":
        return SimStatus(raw, rest.strip().upper())
    if name == "+CSQ":
        return SignalReport(raw, csq_to_dbm(_int(f[0])))
    if name == "+CIEV":
        # TS 27.007 §8.10 indicators; "smsfull" / "message_full" are the names vendors give it.
        if f[0].upper() in ("SMSFULL", "MESSAGE_FULL") and (len(f) < 2 or f[1] != "0"):
            return StorageFull(raw, "")
        return Noise(raw)
    if name == "+CFUN" and f[0] == "1":
        return ModemReady(raw)
    return Noise(raw)


class AtParser:
    """Byte stream of one port in, :data:`Event` list out. ``repr`` shows the state."""

    def __init__(self, *, vendor_urcs: VendorTable | None = None):
        if vendor_urcs is None:
            # Imported here: the profiles use this module's field splitter.
            from gsmgw.at.profiles import VENDOR_URCS

            vendor_urcs = VENDOR_URCS
        self._vendor = vendor_urcs
        self._urc_prefixes = URC_PREFIXES | {line for line, bare in vendor_urcs if not bare}
        self._buf = bytearray()
        self._command: str | None = None  # the command line in flight
        self._command_name = ""
        self._echo: str | None = None  # command echo still to swallow (echo may be on)
        self.echoed = False  # the command in flight (or the last one) was echoed (ATE1 in force)
        self._expect_prompt = False
        self._payload_echo: str | None = None  # PDU echo after the prompt
        self._skip_space = False  # the blank after '>'
        self._pdu_header: tuple[str, str, str] | None = None  # (name, rest, raw) of +CMT/+CDS/+CBM
        self._continuation: list[str] | None = None  # a quoted +CUSD text spanning lines
        self._abandoned: str | None = None  # name of a command that timed out
        self._abandoned_line: str | None = None
        self._stray_final_pending = False
        self._late_prompt_possible = False  # a prompt command was abandoned before its "> "
        self.needs_ack = False  # set by the modem when +CMT/+CDS must be acknowledged (+CNMA)

    def __repr__(self) -> str:
        return (
            f"<AtParser command={mask_secrets(self._command or '')!r} prompt={self._expect_prompt} "
            f"buffered={len(self._buf)} abandoned={self._abandoned!r}>"
        )

    # ------------------------------------------------------------ what the session tells us

    @property
    def urc_prefixes(self) -> frozenset[str]:
        return frozenset(self._urc_prefixes)

    @property
    def vendor_urcs(self) -> VendorTable:
        return self._vendor

    @property
    def command_in_flight(self) -> str | None:
        return self._command

    def start_command(self, line: str, *, expects_prompt: bool = False, payload: str | None = None) -> None:
        """``line`` (without CR) has been written. ``expects_prompt``: AT+CMGS/AT+CMGW.
        ``payload``: the PDU that will be written after the prompt, whose echo is swallowed."""
        if self._command is not None:
            raise RuntimeError(f"start_command({line!r}) while {self._command!r} is in flight")
        self._command = line
        self._command_name = command_name(line)
        self._echo = line.strip().upper()
        self.echoed = False
        self._expect_prompt = expects_prompt
        self._payload_echo = payload.strip().upper() if payload else None

    def abandon_command(self) -> None:
        """The command timed out. Its late answer, if any, comes out as Stray*/LateSubmitResult."""
        if self._command is None:
            return
        self._abandoned = self._command_name
        self._abandoned_line = mask_secrets(self._command)
        self._stray_final_pending = False
        self._late_prompt_possible = self._expect_prompt
        self._end_command()

    def _end_command(self) -> None:
        self._command = None
        self._command_name = ""
        self._echo = None
        self._expect_prompt = False
        self._payload_echo = None
        self._skip_space = False

    # ------------------------------------------------------------ bytes in, events out

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        buf = self._buf
        while buf:
            first = buf[0]
            if self._skip_space:
                self._skip_space = False
                if first == 0x20:
                    del buf[0]
                    continue
            if first == 0x3E and (self._expect_prompt or self._late_prompt_possible):
                del buf[0]  # '>' at the start of a line
                self._skip_space = True
                if self._expect_prompt:
                    self._expect_prompt = False
                    events.append(Prompt())
                else:
                    # The modem now waits for text that will never come. The ESC the session
                    # answers makes it end that command with a final result of its own.
                    # Its final comes after the ESC, maybe once the next command is in flight.
                    self._late_prompt_possible = False
                    self._stray_final_pending = True
                    events.append(LatePrompt("> "))
                continue
            m = _LINE_END.search(buf)
            if m is None:
                break
            raw = bytes(buf[: m.start()])
            del buf[: m.end()]
            self._line(raw.decode("latin-1"), events)
        return events

    def _line(self, raw: str, events: list[Event]) -> None:
        line = raw.strip(_TRIM)
        if not line:
            return
        echo = self._payload_echo
        if echo is not None and self._command is not None and line[len(echo):len(echo) + 1] == "\x1a" \
                and line[:len(echo)].upper() == echo:
            # The echoed PDU and its Ctrl-Z with the answer right behind, no line end between
            # ("<pdu>^Z+CMGS: 5"): drop the echo, keep the answer.
            self._payload_echo = None
            self._line(line[len(echo) + 1:], events)
            return
        if _NOISE_CHARS.search(line):
            events.append(Noise(raw))
            return
        if self._continuation is not None:
            self._continuation.append(line)
            joined = "\n".join(self._continuation)
            if joined.count('"') % 2 == 0 or len(self._continuation) > _MAX_CONTINUATION_LINES:
                self._continuation = None
                self._complete_line(joined, events)
            return
        if self._pdu_header is not None:
            name, rest, header_raw = self._pdu_header
            self._pdu_header = None
            if _HEX.match(line):
                events.append(self._pdu_urc(name, rest, header_raw, line))
                return
            glued = _GLUED_OK.match(line)
            if glued and _HEX.match(glued.group(1)):
                events.append(self._pdu_urc(name, rest, header_raw, glued.group(1)))
                self._complete_line("OK", events)
                return
            # The PDU line never came; report the header so it is not silently lost.
            events.append(Noise(header_raw))
        if self._command is not None:
            upper = line.upper()
            if self._echo is not None and upper == self._echo:
                self._echo = None
                self.echoed = True
                return
            if self._payload_echo is not None and upper == self._payload_echo:
                self._payload_echo = None
                return
        if line.upper().startswith("+CUSD:") and line.count('"') % 2 == 1:
            self._continuation = [line]
            return
        glued = _GLUED_OK.match(line) if self._command is not None else None
        if glued is not None:
            self._complete_line(glued.group(1), events)
            self._complete_line("OK", events)
            return
        self._complete_line(line, events)

    def _complete_line(self, line: str, events: list[Event]) -> None:
        final = parse_final(line)
        if final is not None:
            self._late_prompt_possible = False
            if self._command is None or self._stray_final_pending:
                # The end of a late answer (or a final nobody asked for): it must not end the
                # command now in flight, which gets its own final next.
                self._stray_final_pending = False
                self._abandoned = None
                events.append(StrayFinal(line, final))
                return
            self._end_command()
            events.append(final)
            return
        m = _PREFIX.match(line)
        name = m.group(1).upper() if m else None
        rest = m.group(2) if m else ""
        in_flight = self._command is not None
        if in_flight and name is not None and name == self._command_name:
            self._answer(line, events)
            return
        if name in _PDU_URCS:
            fields = split_fields(rest)
            # PDU mode has one number after the header (TS 27.005 §3.4.1); text mode has more.
            if _int(fields[-1]) is not None and (name == "+CMT" or len(fields) == 1):
                self._pdu_header = (name, rest, line)
                return
            events.append(Noise(line))
            return
        if name is not None and name in self._urc_prefixes:
            events.append(_classify_urc(name, rest, line, self._vendor))
            return
        upper = line.upper()
        if name is None and (upper == "RING" or (upper, True) in self._vendor):
            events.append(_classify_urc(None, "", line, self._vendor))
            return
        if self._abandoned is not None and (
            not in_flight or (name is not None and name == self._abandoned)
        ):
            # Part of the late answer to the command that timed out. While another command is
            # in flight, the final that follows is the late answer's, not the new command's.
            self._stray_final_pending = in_flight
            mr = _int(split_fields(rest)[0]) if name == "+CMGS" else None
            if mr is not None:
                events.append(LateSubmitResult(line, mr))
            else:
                events.append(StrayResponse(line, self._abandoned_line))
            return
        if in_flight:
            self._answer(line, events)
            return
        events.append(Noise(line))

    def _answer(self, line: str, events: list[Event]) -> None:
        # The echo comes before the answer or not at all (a URC may still come before it).
        self._echo = None
        events.append(Line(line))

    def _pdu_urc(self, name: str, rest: str, header_raw: str, pdu: str) -> Urc:
        length = _int(split_fields(rest)[-1]) or 0
        raw = f"{header_raw}\n{pdu}"
        if name == "+CMT":
            return IncomingDirect(raw, pdu.upper(), length, self.needs_ack)
        if name == "+CDS":
            return ReportDirect(raw, pdu.upper(), length, self.needs_ack)
        return CellBroadcast(raw, pdu.upper(), length)
