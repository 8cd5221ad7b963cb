"""Kannel's smsbox `sendsms` interface, for scripts written against Kannel (pure: no I/O).

`GET`/`POST /cgi-bin/sendsms?username=…&password=…&to=…&text=…` as Kannel's smsbox takes it
(Kannel user guide, "Sending SMS via HTTP"): `username`/`user` is a client's name and
`password`/`pass` its token. Parameters may come in the query string, in an
`application/x-www-form-urlencoded` body, or as `X-Kannel-<Name>` headers with the text as a
`text/plain` body (Kannel's POST form). Kannel's answers are plain lines with Kannel's status
codes: `0: Accepted for delivery` with 202, `Authorization failed for sendsms` with 403, and so on.

Understood: `to` (several numbers separated by spaces, as Kannel), `text`, `charset` (of the
text; default UTF-8, UTF-16BE for `coding=2`, as Kannel), `coding` (0 7-bit or 2 UCS-2: the wire
alphabet of a text is chosen by gsmgw anyway; 1 = 8-bit data: `text` is then the URL-encoded
octets, charset ignored; unset means 0, or 1 when `udh` is given, as Kannel's smsbox),
`udh` (the user data header as URL-encoded octets, length octet first; in the X-Kannel form
`X-Kannel-UDH` is hex, or URL-encoded, as smsbox reads it), `dlr-mask` (any of the delivered,
failed or buffered bits 1, 2, 4 request a report), `dlr-url` (becomes the message's callback),
`mclass` (0..3: the message class; 0 is flash), `validity` and `deferred` (minutes, as Kannel),
`smsc` (a modem's name), `priority` (0..3, as Kannel and SMPP's priority_flag: 2 and 3 are sent
first). `from` is accepted and ignored: a SIM sends with its own number.
Anything else is ignored, as Kannel does. Refusals use smsbox's words ("UDH field misformed",
"Coding field misformed", "MClass field misformed") followed by what to send instead.
"""

from __future__ import annotations

import codecs
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from gsmgw.clients import ClientRegistry
from gsmgw.durations import parse_duration
from gsmgw.http.validation import (
    ApiError,
    SendPolicy,
    SendRequest,
    check_data,
    check_text,
    expand_recipients,
    parse_callback,
)
from gsmgw.sms import UserDataError, check_user_header
from gsmgw.spool.format import iso, priority_of_level

ACCEPTED = "0: Accepted for delivery"
AUTH_FAILED = "Authorization failed for sendsms"
MISSING_TO = "Missing receiver number, rejected"
EMPTY_TO = "Empty receiver number not allowed, rejected"
DENIED = "Number(s) has/have been denied by white- and/or black-lists."

# DLR mask bits (Kannel user guide, "dlr-mask"): 1 delivered, 2 failed, 4 buffered (pending),
# 8 SMSC accepted, 16 SMSC rejected. Only the first three need a report from the network.
DLR_REPORT_BITS = 1 | 2 | 4

PARAMETERS = (
    "username", "user", "password", "pass", "to", "text", "charset", "coding", "dlr-mask",
    "dlr-url", "mclass", "validity", "deferred", "smsc", "from", "udh", "priority",
)


class KannelError(ApiError):
    """A Kannel answer other than success: Kannel's text and HTTP status."""


def parse_form(raw: bytes) -> list[tuple[str, bytes]]:
    """`a=b&c=d` → [(name, raw value bytes)]; values stay bytes until the charset is known."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1", errors="strict")
    return [(name.encode("latin-1").decode("utf-8", "replace").lower(), value.encode("latin-1")) for name, value in pairs]


def collect_parameters(
    query: bytes, body: bytes, content_type: str, headers: Mapping[str, str]
) -> dict[str, bytes]:
    """All sendsms parameters: query string, then form body or X-Kannel-* headers + text body.

    The first occurrence of a name wins, as with Kannel's `http_cgi_variable`.
    """
    params: dict[str, bytes] = {}

    def add(name: str, value: bytes) -> None:
        params.setdefault(name, value)

    for name, value in parse_form(query):
        add(name, value)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        for name, value in parse_form(body):
            add(name, value)
    else:
        for header, header_value in headers.items():
            if header.lower() == "x-kannel-udh":
                add("udh", _header_udh(header_value))
            elif header.lower().startswith("x-kannel-"):
                add(header[len("x-kannel-"):].lower(), header_value.encode("utf-8", "surrogateescape"))
        if body and "text" not in params:
            add("text", body)
            charset = re.search(r"charset\s*=\s*\"?([A-Za-z0-9_.:-]+)", content_type)
            if charset and "charset" not in params:
                add("charset", charset.group(1).encode("ascii"))
    # Kannel's short aliases.
    if "user" in params:
        add("username", params["user"])
    if "pass" in params:
        add("password", params["pass"])
    return params


def _header_udh(value: str) -> bytes:
    """X-Kannel-UDH as smsbox reads it: hex ("0605040B8423F0"), else URL-encoded octets."""
    text = value.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        return urllib.parse.unquote_to_bytes(text)


def text_parameter(params: Mapping[str, bytes], name: str) -> str | None:
    value = params.get(name)
    return None if value is None else value.decode("utf-8", "replace")


def _int_parameter(params: Mapping[str, bytes], name: str) -> int | None:
    value = text_parameter(params, name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise KannelError(400, f"{name} must be a number, not {value[:20]!r}, rejected") from None


def decode_text(raw: bytes, coding: int | None, charset: str | None) -> str:
    """The message text from its raw bytes, in the charset Kannel would assume."""
    name = (charset or "").strip() or ("UTF-16BE" if coding == 2 else "UTF-8")
    try:
        codec = codecs.lookup(name)
    except LookupError:
        raise KannelError(400, f"Unknown charset {name!r}; send UTF-8 (or charset=UTF-16BE with coding=2), rejected") from None
    try:
        return raw.decode(codec.name)
    except UnicodeDecodeError:
        raise KannelError(400, f"The text is not valid {name}; send it as {name} or give the right charset, rejected") from None


def parse_sendsms(
    params: Mapping[str, bytes], *, registry: ClientRegistry, policy: SendPolicy, now: datetime,
    max_parts_cap: int | None = None,
) -> SendRequest:
    """Kannel parameters → a checked SendRequest (authentication is the caller's). The text may
    have up to `max_parts_cap` parts (the client's max_parts; default the policy's)."""
    to = text_parameter(params, "to")
    if to is None:
        raise KannelError(400, MISSING_TO)
    numbers = [number for number in re.split(r"[\s,;]+", to) if number]
    if not numbers:
        raise KannelError(400, EMPTY_TO)

    coding = _int_parameter(params, "coding")
    if coding not in (None, 0, 1, 2):
        raise KannelError(400, f"Coding field misformed: coding must be 0 (7-bit), 1 (8-bit data) or 2 (UCS-2), not {coding}, rejected")
    udh = params.get("udh") or None
    if udh is not None:
        _check_udh(udh)
    if coding is None:
        coding = 1 if udh else 0  # smsbox's "compatibility mode"
    raw_text = params.get("text")
    if raw_text is None:
        raise KannelError(400, "Missing text, rejected")
    data = raw_text if coding == 1 else None
    text = decode_text(raw_text, coding, text_parameter(params, "charset")) if data is None else None

    try:
        recipients = expand_recipients(numbers, registry, policy.default_country)
        cap = max_parts_cap or policy.default_max_parts
        if data is not None:
            parts, alphabet = check_data(data, udh, cap, field="text", cap=cap)
        else:
            parts, alphabet = check_text(
                text, cap, cap=cap, national_languages=getattr(policy.defaults, "national_languages", ()), udh=udh,
            )
    except ApiError as exc:
        raise KannelError(exc.status, f"{exc.message}, rejected") from None

    dlr_mask = _int_parameter(params, "dlr-mask")
    if dlr_mask is not None and not 0 <= dlr_mask <= 255:
        raise KannelError(400, f"dlr-mask must be 0-255 (1 delivered, 2 failed, 4 buffered, 8 sent, 16 rejected), not {dlr_mask}, rejected")
    report = bool(dlr_mask & DLR_REPORT_BITS) if dlr_mask is not None else None
    dlr_url = text_parameter(params, "dlr-url")
    callback = None
    if dlr_url and dlr_url.strip():
        try:
            callback = parse_callback(dlr_url.strip())
        except ApiError as exc:
            raise KannelError(400, f"dlr-url: {exc.message}, rejected") from None
        if report is None:
            report = True
        if dlr_mask is None:
            dlr_mask = DLR_REPORT_BITS  # a dlr-url without a mask: every report, as the user surely wants

    mclass = _int_parameter(params, "mclass")
    if mclass is not None and not 0 <= mclass <= 3:
        raise KannelError(400, f"MClass field misformed: mclass must be 0 (flash), 1 (phone), 2 (SIM) or 3, not {mclass}, rejected")
    level = _int_parameter(params, "priority")
    if level is not None and not 0 <= level <= 3:
        raise KannelError(400, f"Priority field misformed: priority must be 0 to 3 (2 and 3 are sent first), not {level}, rejected")
    validity_minutes = _int_parameter(params, "validity")
    deferred_minutes = _int_parameter(params, "deferred")
    deferred_seconds = None
    for name, value in (("validity", validity_minutes), ("deferred", deferred_minutes)):
        if value is None:
            continue
        if value < 0:
            raise KannelError(400, f"{name} must be 0 or more minutes, rejected")
        try:
            seconds = parse_duration(value * 60)
        except ValueError as exc:
            raise KannelError(400, f"{name}={value} minutes: {exc}, rejected") from None
        if name == "deferred":
            deferred_seconds = seconds
    modem = text_parameter(params, "smsc")
    if modem is not None:
        modem = modem.strip() or None
    if modem is not None and modem not in policy.modem_names:
        raise KannelError(400, f"Unknown smsc {modem!r}; configured modems: {', '.join(policy.modem_names) or 'none'}, rejected")

    request = SendRequest(recipients=recipients, text=text, parts=parts, alphabet=alphabet, data=data, udh=udh,
                          max_parts=cap)
    return replace(
        request,
        report=report,
        message_class=mclass,
        validity=f"{validity_minutes} min" if validity_minutes else None,
        send_after=iso(now + timedelta(seconds=deferred_seconds)) if deferred_seconds else None,
        modem=modem,
        priority=None if level is None else priority_of_level(level),
        callback=callback,
        dlr_mask=dlr_mask if callback else None,
    )


def _check_udh(udh: bytes) -> None:
    """smsbox refuses a header whose first octet is not its length; gsmgw also one that claims
    concatenation or national tables (it numbers the parts and chooses the tables itself)."""
    example = "udh=%06%05%04%0B%84%23%F0 (16-bit ports 2948 <- 9200)"
    if len(udh) != udh[0] + 1:
        raise KannelError(
            400, f"UDH field misformed: its first octet says {udh[0]} octets but {len(udh) - 1} follow; send the "
                 f"header URL-encoded with its length octet first, e.g. {example}, rejected")
    try:
        check_user_header(udh)
    except UserDataError as exc:
        raise KannelError(400, f"UDH field misformed: {exc}, rejected") from None


def credentials(params: Mapping[str, bytes]) -> tuple[str | None, str | None]:
    return text_parameter(params, "username"), text_parameter(params, "password")

