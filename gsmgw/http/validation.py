"""Checking what a network client asks to send, before anything is written (pure: no I/O).

`POST /api/v1/messages` (JSON) and Kannel's `/cgi-bin/sendsms` (form fields) both end here as a
`SendRequest`; `prepare_messages` then renders one spool file per recipient (docs/api.md: one message
per recipient) and checks each with the same `parse_outgoing` the daemon uses, so what is accepted
over HTTP is exactly what the daemon will send.

Every rejection is an `ApiError` with the HTTP status of docs/api.md and a message that says what is
wrong and what to send instead. Nothing here may raise anything else on any input: the request
parser is fuzzed with random bytes and random JSON (tests/test_http_fuzz.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from yarl import URL

from gsmgw.callbacks import callback_problem
from gsmgw.clients import Client, ClientRegistry, UnknownGroup
from gsmgw.durations import DurationTooLong, bounded_time, parse_duration
from gsmgw.rules import group_reference
from gsmgw.sms import (
    AddressError,
    UserDataError,
    count_data_parts,
    count_parts,
    normalize_number,
    parse_hex,
    parse_validity,
)
from gsmgw.sms.split import MAX_PARTS as MAX_PARTS_CEILING
from gsmgw.spool.format import DEFAULT_MAX_PARTS, SpoolFormatError, iso, make_outgoing, parse_outgoing

MAX_BODY_BYTES = 64 * 1024
MAX_URL_LENGTH = 2048
PRIORITIES = ("high", "normal", "low")

EXAMPLE = '{"to": "+4915112345678", "text": "hello"}'

SEND_FIELDS = (
    "to", "text", "binary", "udh", "class", "report", "flash", "validity", "priority", "modem", "send_after",
    "expires", "max_parts", "callback",
)


class ApiError(Exception):
    """A request that gets an error answer: `status` (docs/api.md) and a message saying what to do."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class SendRequest:
    """A send request whose fields are each valid; destinations not yet checked for the client."""

    recipients: tuple[str, ...]  # E.164, groups expanded, first occurrence kept
    text: str | None  # None for binary data
    parts: int
    alphabet: str
    data: bytes | None = None  # 8-bit data ("binary"), instead of text
    udh: bytes | None = None  # the sender's user data header, UDHL first ("udh"), for text or data
    message_class: int | None = None  # "class" 0..3 (TS 23.038 §4)
    report: bool | None = None
    flash: bool = False
    validity: str | None = None
    priority: str | None = None
    modem: str | None = None
    send_after: str | None = None
    expires: str | None = None
    max_parts: int | None = None
    callback: str | None = None
    dlr_mask: int | None = None  # Kannel's dlr-mask: the callback is a Kannel dlr-url (GET, %-escapes)


@dataclass(frozen=True)
class PreparedMessage:
    """One recipient's spool file, checked, ready for `Spool.submit_many`."""

    to: str
    parts: int
    alphabet: str
    data: bytes
    national: dict[str, str | None] | None = None  # national tables used, e.g. {"locking": "hi", "single": "hi"}


@dataclass(frozen=True)
class SendPolicy:
    """What the config says about sending, as far as request checking needs it."""

    default_country: str | None = None
    default_max_parts: int = DEFAULT_MAX_PARTS
    modem_names: tuple[str, ...] = ()
    defaults: Any = None  # config.defaults (report, validity, max_parts) for parse_outgoing


class JsonBodyError(ValueError):
    """A request body that is not JSON; the message says what is wrong (without an example)."""


def decode_json(body: bytes) -> Any:
    """The JSON value of a request body, or JsonBodyError saying what is wrong with it.

    Every JSON door of the HTTP server reads its body here, so that no input (empty, not UTF-8,
    not JSON, nested deeper than the parser's recursion limit) escapes as anything but this error.
    """
    if not body.strip():
        raise JsonBodyError("the request body is empty")
    try:
        text = body.decode("utf-8-sig")  # a byte order mark from Windows tools is not an error
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonBodyError("the JSON is nested too deeply") from None
    except ValueError as exc:
        raise JsonBodyError(f"the body is not valid JSON ({exc})") from None


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ApiError 400 saying what is wrong with it."""
    try:
        value = decode_json(body)
    except JsonBodyError as exc:
        raise ApiError(400, f"{exc}; send a JSON object like {EXAMPLE}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the body is JSON {type(value).__name__}, not an object; send an object like {EXAMPLE}")
    return value


def _is_clean_text(value: str) -> bool:
    """False for lone UTF-16 surrogates (JSON's "\\ud800"), which cannot be stored or sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _header_value(name: str, value: Any) -> str:
    """A string that goes into a spool header: one line, no control characters."""
    if not isinstance(value, str):
        raise ApiError(400, f'"{name}" must be a string, not {_json_type(value)}')
    if not _is_clean_text(value) or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ApiError(400, f'"{name}" contains control characters or invalid Unicode; send one line of plain text')
    return value.strip()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _boolean(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ApiError(400, f'"{name}" must be true or false, not {_json_type(value)}')
    return value


def normalize_recipient(value: Any, where: str, default_country: str | None) -> str:
    if not isinstance(value, str) or not _is_clean_text(value):
        raise ApiError(400, f'{where} must be a phone number as a string like "+4915112345678", not {_json_type(value)}')
    try:
        return normalize_number(value, default_country)
    except AddressError as exc:
        raise ApiError(400, f"{where}: {exc}") from None


def expand_recipients(
    destinations: Sequence[Any], registry: ClientRegistry, default_country: str | None, *, field: str = "to"
) -> tuple[str, ...]:
    """Numbers and `group:NAME` → E.164 numbers, in order, each once."""
    numbers: dict[str, None] = {}
    several = len(destinations) > 1
    for index, destination in enumerate(destinations):
        where = f'"{field}"[{index}]' if several else f'"{field}"'
        if group_reference(destination) is not None:
            try:
                members = registry.expand(destination)
            except UnknownGroup as exc:
                raise ApiError(400, f"{where}: {exc}") from None
            if not members:
                raise ApiError(400, f"{where}: the group {destination.strip()!r} has no members; add numbers to it in the config")
            for member in members:
                numbers[member] = None
        else:
            numbers[normalize_recipient(destination, where, default_country)] = None
    if not numbers:
        raise ApiError(400, f'"{field}" is empty; send a number, a list of numbers or "group:NAME"')
    return tuple(numbers)


def _iso_time(name: str, value: Any, *, durations: bool, now: datetime) -> str:
    text = _header_value(name, value)
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        moment = None  # not a time: try a duration, then say what both forms look like
    if moment is not None:
        try:
            bounded_time(moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo), now, f'"{name}":')
        except DurationTooLong as exc:
            raise ApiError(400, str(exc)) from None
        return text
    if durations:
        try:
            seconds = parse_duration(text)
        except DurationTooLong as exc:
            raise ApiError(400, f'"{name}": {exc}') from None
        except ValueError:
            pass  # the error below names both accepted forms
        else:
            # Fixed to a time now, so the message's life counts from its acceptance.
            return iso(now + timedelta(seconds=seconds))
    raise ApiError(
        400,
        f'"{name}": cannot read {text!r}; send an ISO-8601 time like "2026-11-24T10:15:00+01:00"'
        + (' or a duration like "30 min"' if durations else ""),
    )


def parse_callback(value: Any) -> str:
    """A callback URL for the report webhook: absolute http(s), one line, bounded."""
    text = _header_value("callback", value)
    problem = None
    if len(text) > MAX_URL_LENGTH:
        problem = f"it is longer than {MAX_URL_LENGTH} characters"
    else:
        try:
            url = URL(text)
        except (ValueError, TypeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host or " " in text:
            problem = "it is not an absolute http:// or https:// URL"
    if problem:
        raise ApiError(400, f'"callback": {problem}; send a URL like "https://app.example/sms/dlr"')
    return text


def check_text(
    text: Any, max_parts: int, *, field: str = "text", cap: int | None = None,
    national_languages: Sequence[str] = (), udh: bytes | None = None,
) -> tuple[int, str]:
    """(parts, alphabet) of a text that fits in `max_parts`, else ApiError 400. `cap` is the
    most the client may ask for (its max_parts), which the message names."""
    if text is None:
        raise ApiError(400, f'"{field}" is missing; send the message text, e.g. {EXAMPLE}')
    if not isinstance(text, str):
        raise ApiError(400, f'"{field}" must be a string, not {_json_type(text)}')
    if not _is_clean_text(text):
        raise ApiError(400, f'"{field}" contains a lone UTF-16 surrogate; encode characters outside the BMP (emoji) as a pair or as UTF-8')
    if not text:
        raise ApiError(400, f'"{field}" is empty; send the text of the message')
    try:
        count = count_parts(text, national_languages=national_languages, udh=udh)
    except UserDataError as exc:
        raise ApiError(400, f'"udh": {exc}') from None
    _check_parts(count, max_parts, "text", cap)
    return count.parts, count.alphabet


def check_data(
    data: bytes, udh: bytes | None, max_parts: int, *, field: str = "binary", cap: int | None = None
) -> tuple[int, str]:
    """(parts, "8bit") of 8-bit data with the sender's header that fits in `max_parts`, else ApiError 400."""
    if not data and not udh:
        raise ApiError(400, f'"{field}" is empty; send the data as hex, e.g. "0106" (two digits per octet)')
    try:
        count = count_data_parts(data, udh=udh)
    except UserDataError as exc:
        raise ApiError(400, f'"udh": {exc}') from None
    _check_parts(count, max_parts, "data", cap)
    return count.parts, count.alphabet


def _check_parts(count: Any, max_parts: int, what: str, cap: int | None) -> None:
    """ApiError 400 when `count` is over `max_parts`; `cap` (the client's max_parts) is named."""
    unit = {"gsm7": "GSM-7 characters", "ucs2": "UCS-2 characters"}.get(count.alphabet, "octets")
    if count.parts > MAX_PARTS_CEILING:
        raise ApiError(
            400,
            f"the {what} needs {count.parts} SMS parts ({count.units} {unit}), but one message has at most "
            f"{MAX_PARTS_CEILING} (the part count is one octet); send it as several messages",
        )
    cap = cap or MAX_PARTS_CEILING
    if count.parts > max_parts:
        raise ApiError(
            400,
            f"the {what} needs {count.parts} SMS parts ({count.units} {unit}) but at most {max_parts} are "
            "allowed; shorten it"
            + (f' or send a higher "max_parts" (up to {cap})' if max_parts < cap else
               f" ({cap} is the most this client may send in one message: its max_parts in the gateway's config)"),
        )


def hex_field(fields: Mapping[str, Any], name: str) -> bytes | None:
    """A JSON field of hex octets ("binary", "udh") -> bytes; ApiError 400 saying what to send."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f'"{name}" must be a string of hex digits like "0605040B8423F0", not {_json_type(value)}')
    try:
        return parse_hex(value, what=f'"{name}"')
    except UserDataError as exc:
        raise ApiError(400, str(exc)) from None


def message_class_value(value: Any, name: str = "class") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        raise ApiError(400, f'"{name}" must be a message class 0..3 (0 flash, 1 phone, 2 SIM, 3 terminal), not {value!r}')
    return value


def parse_send_request(
    fields: Mapping[str, Any], *, registry: ClientRegistry, policy: SendPolicy, now: datetime,
    max_parts_cap: int | None = None,
) -> SendRequest:
    """Check every field of a `POST /api/v1/messages` object; ApiError 400 for the first bad one.

    `max_parts_cap` is the client's max_parts (`ClientRegistry.max_parts_for`; default the
    policy's): a request's `"max_parts"` may lower it, never raise it."""
    unknown = sorted(str(key) for key in fields if key not in SEND_FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(repr(key) for key in unknown)}; the fields are {', '.join(SEND_FIELDS)}")

    if "to" not in fields or fields["to"] is None:
        raise ApiError(400, f'"to" is missing; send a number, a list of numbers or "group:NAME", e.g. {EXAMPLE}')
    to = fields["to"]
    if isinstance(to, list):
        if not to:
            raise ApiError(400, '"to" is an empty list; send at least one number')
        destinations: list[Any] = to
    elif isinstance(to, str) and "," in to:
        # "+49…, +49…" as in a spool file's To: line
        destinations = [item for item in (part.strip() for part in to.split(",")) if item]
    else:
        destinations = [to]
    recipients = expand_recipients(destinations, registry, policy.default_country)

    cap = max_parts_cap or policy.default_max_parts
    max_parts = fields.get("max_parts")
    if max_parts is not None:
        if isinstance(max_parts, bool) or not isinstance(max_parts, int) or not 1 <= max_parts <= MAX_PARTS_CEILING:
            raise ApiError(400, f'"max_parts" must be a whole number from 1 to {MAX_PARTS_CEILING}, not {max_parts!r} '
                                f"(this client may send at most {cap} parts per message)")
    max_parts = min(max_parts or cap, cap)
    udh = hex_field(fields, "udh")
    data = hex_field(fields, "binary")
    if data is not None:
        if fields.get("text") is not None:
            raise ApiError(400, '"text" and "binary" are both given; send a text or 8-bit data (hex in "binary"), not both')
        parts, alphabet = check_data(data, udh, max_parts, cap=cap)
    else:
        parts, alphabet = check_text(
            fields.get("text"), max_parts, cap=cap,
            national_languages=getattr(policy.defaults, "national_languages", ()), udh=udh,
        )
    message_class = message_class_value(fields.get("class"))
    flash = bool(_boolean(fields, "flash"))
    if flash and message_class not in (None, 0):
        raise ApiError(400, f'"flash": true is class 0, but "class" is {message_class}; send one of the two')

    validity = fields.get("validity")
    if validity is not None:
        if isinstance(validity, bool) or not isinstance(validity, (str, int)):
            raise ApiError(400, f'"validity" must be a duration like "2 days" or a TP-VP number 0-255, not {_json_type(validity)}')
        if isinstance(validity, str):
            validity = _header_value("validity", validity)
        try:
            parse_validity(validity)
        except ValueError as exc:
            raise ApiError(400, f'"validity": {exc}') from None
        validity = str(validity)

    priority = fields.get("priority")
    if priority is not None:
        priority = _header_value("priority", priority).lower()
        if priority not in PRIORITIES:
            raise ApiError(400, f'"priority" must be "high", "normal" or "low", not {fields["priority"]!r}')

    modem = fields.get("modem")
    if modem is not None:
        modem = _header_value("modem", modem)
        if modem not in policy.modem_names:
            configured = ", ".join(policy.modem_names) or "none"
            raise ApiError(400, f'"modem": no modem named {modem!r} is configured (configured: {configured}); leave "modem" out to let gsmgw choose')

    send_after = fields.get("send_after")
    if send_after is not None:
        send_after = _iso_time("send_after", send_after, durations=True, now=now)
    expires = fields.get("expires")
    if expires is not None:
        expires = _iso_time("expires", expires, durations=True, now=now)
    callback = fields.get("callback")
    if callback is not None:
        callback = parse_callback(callback)

    return SendRequest(
        recipients=recipients,
        text=fields["text"] if data is None else None,
        parts=parts,
        alphabet=alphabet,
        data=data,
        udh=udh,
        message_class=message_class,
        report=_boolean(fields, "report"),
        flash=flash,
        validity=validity,
        priority=priority,
        modem=modem,
        send_after=send_after,
        expires=expires,
        max_parts=max_parts,
        callback=callback,
    )


def check_callback(client: Client, callback: str | None) -> None:
    """ApiError 400 when the client may not use this callback URL (gsmgw.callbacks)."""
    if callback is None:
        return
    problem = callback_problem(callback, client.name, client.callback_hosts, client.callback_private_addresses)
    if problem:
        raise ApiError(400, f"nothing was queued: {problem}")


def check_destinations(registry: ClientRegistry, client: Client, recipients: Iterable[str]) -> None:
    """ApiError 403 naming every recipient the client's allow/deny rules exclude."""
    refused = [registry.check_destination(client, number) for number in recipients]
    reasons = [verdict.reason for verdict in refused if not verdict.allowed]
    if reasons:
        shown = "; ".join(reasons[:5]) + (f"; and {len(reasons) - 5} more" if len(reasons) > 5 else "")
        raise ApiError(403, f"nothing was queued: {shown}. Remove these recipients or ask the gateway's admin to change the client's rules")


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for a Retry-After header (at least 1)."""
    if math.isinf(wait):
        return 86400
    return max(1, math.ceil(wait))


def prepare_messages(
    request: SendRequest, *, client_name: str | None, policy: SendPolicy, now: datetime,
    headers: Mapping[str, str] | None = None,
) -> list[PreparedMessage]:
    """One checked spool file per recipient, carrying `Client:` and `Callback:` for the webhooks
    (and `headers`, e.g. the console's `Campaign:`)."""
    extra: dict[str, str] = dict(headers or {})
    if client_name:
        extra["Client"] = client_name
    if request.callback:
        extra["Callback"] = request.callback
        if request.dlr_mask is not None:
            extra["Dlr_mask"] = str(request.dlr_mask)
    extra["Queued"] = iso(now)
    prepared = []
    for number in request.recipients:
        try:
            data = make_outgoing(
                to=number,
                text=request.text,
                data=request.data,
                udh=request.udh,
                message_class=request.message_class,
                report=request.report,
                flash=request.flash,
                validity=request.validity,
                priority=request.priority,
                modem=request.modem,
                send_after=request.send_after,
                expires=request.expires,
                max_parts=request.max_parts,
                extra=extra,
            )
            # The daemon's own reader is the judge of what it will send.
            message = parse_outgoing(
                data, now=now, default_country=policy.default_country, defaults=policy.defaults,
            )
        except SpoolFormatError as exc:
            raise ApiError(400, f"the message cannot be queued: {exc.reason if hasattr(exc, 'reason') else exc}") from None
        prepared.append(PreparedMessage(number, message.parts, message.alphabet, data, message.national))
    return prepared
