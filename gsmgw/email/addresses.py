"""Mail addresses as SMS recipients and senders (EMAIL.md "Recipients"). Pure: no I/O.

A recipient is `<local part>@<domain>` with a domain of `smtp.domains` (any case) and a local
part that is
- a number in international form: `+4915112345678`, `004915112345678`, `4915112345678`;
- a national number, `015112345678`, with the config's `default_country`;
- a group of the config, `oncall` (exact name first, then ignoring case).
Separators that people type in numbers (`+49-151-1234 5678`, `0151/12345678`) are accepted as
`gsmgw.sms.normalize_number` accepts them.

`Refusal` carries the SMTP answer: `550 5.1.2` for a domain that is not ours, `550 5.1.1`
for a local part that is neither a number nor a group. Its text says what to write instead.

Senders (`sender_client`): an authenticated session is its client, and may use the envelope
senders of that client's `smtp.from` rules (any, without rules). Without AUTH, the client is
found by the peer's address: the clients whose `networks` hold it (the most specific first),
and, from `smtp.trusted_networks`, every client with `smtp.from` rules; the first whose rules
take the envelope sender (or that has none, for a `networks` match) is the one. Anything else is
an unknown sender: `550 5.7.1`.
"""

from __future__ import annotations

import re
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gsmgw.clients import Client, ClientRegistry
from gsmgw.sms import AddressError, normalize_number

_NUMBER_LIKE = re.compile(r"\A\+?[0-9][0-9 ()./-]*\Z")
_ADDRESS = re.compile(r"\A[^@\s]+@[^@\s]+\Z")


@dataclass(frozen=True)
class Recipient:
    address: str  # as the client wrote it
    numbers: tuple[str, ...]  # E.164, one for a number, the members for a group
    group: str | None = None  # the group's name when the address named one


@dataclass(frozen=True)
class Refusal(Exception):
    """An SMTP answer that refuses a command, with a text that says what to change."""

    code: int
    status: str  # the enhanced status code (RFC 3463), e.g. "5.1.1"
    text: str

    def __str__(self) -> str:
        return self.reply

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


def split_address(address: str) -> tuple[str, str] | None:
    """(local part without quotes, domain in lower case), or None when it is no address."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = local[1:-1]
    return local, domain.lower().rstrip(".")


def _example(domain: str) -> str:
    return f"+4915112345678@{domain}"


def _find_group(name: str, groups: Mapping[str, Iterable[str]]) -> str | None:
    if name in groups:
        return name
    folded = name.casefold()
    matches = [group for group in groups if group.casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def resolve_recipient(
    address: str,
    *,
    domains: Iterable[str],
    groups: Mapping[str, Iterable[str]],
    default_country: str | None,
) -> Recipient:
    """The numbers a recipient address stands for; Refusal saying what to write."""
    domain_list = [domain.lower() for domain in domains]
    first = domain_list[0] if domain_list else "sms.example.org"
    parts = split_address(address)
    if parts is None:
        raise Refusal(550, "5.1.3", f"<{address}> is not a mail address; write the number as "
                                             f"{_example(first)}")
    local, domain = parts
    if domain not in domain_list:
        raise Refusal(550, "5.1.2", f"gsmgw takes mail for {', '.join(domain_list)} only, not {domain}; "
                                             f"write the number as {_example(first)}")
    group = _find_group(local, groups)
    if group is not None:
        members = tuple(groups[group])
        if not members:
            raise Refusal(550, "5.1.1", f"the group {group!r} has no members; add numbers to "
                                                 f"groups.{group} in the config")
        return Recipient(address, members, group)
    if not _NUMBER_LIKE.match(local):
        known = ", ".join(sorted(groups)[:10])
        groups_hint = f" or a group ({known})" if known else ""
        raise Refusal(550, "5.1.1", f"{local!r} is neither a phone number nor a group; write a number "
                                             f"in international form, e.g. {_example(domain)}{groups_hint}")
    try:
        number = normalize_number(local, default_country)
    except AddressError as exc:
        raise Refusal(550, "5.1.1", f"{exc}; as an address: {_example(domain)}") from None
    return Recipient(address, (number,))


def reply_address(number: str, domains: Iterable[str]) -> str | None:
    """`<number>@<first domain>`: the address whose mail becomes an SMS to `number` (Reply-To of
    a forwarded SMS). None when there is no domain or `number` is not E.164 (an alphanumeric
    sender such as "Vodafone" cannot be answered)."""
    first = next(iter(domains), None)
    if first is None or not re.fullmatch(r"\+[1-9][0-9]{6,14}", number):
        return None
    return f"{number}@{first}"


def is_mail_address(text: str) -> bool:
    """A plausible addr-spec (local@domain, no spaces): what config keys holding addresses need."""
    return bool(_ADDRESS.match(text.strip()))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def in_networks(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(net.version == address.version and address in net for net in networks)


def sender_client(
    registry: ClientRegistry,
    *,
    authenticated: Client | None,
    peer: Address | None,
    trusted_networks: Sequence[Network],
    mail_from: str,
) -> Client:
    """The client a mail transaction belongs to (see the module docstring), or Refusal 550 5.7.1."""
    sender = mail_from or "<>"
    if authenticated is not None:
        if registry.sender_allowed(authenticated, mail_from):
            return authenticated
        raise Refusal(550, "5.7.1", f"client {authenticated.name!r} may not send as {sender}; use one of "
                                    f"{', '.join(authenticated.smtp_from)} or add it to that client's smtp.from")
    by_network = registry.clients_for_address(peer)
    candidates = list(by_network)
    if in_networks(peer, trusted_networks):
        candidates += [client for client in registry.clients if client.smtp_from and client not in by_network]
    if not candidates:
        raise Refusal(550, "5.7.1", f"{peer or 'this address'} may not send without logging in; authenticate with "
                                    "the user and password of clients[].smtp (AUTH), or add the address to "
                                    "smtp.trusted_networks or to a client's networks")
    for client in candidates:
        if registry.sender_allowed(client, mail_from):
            return client
    raise Refusal(550, "5.7.1", f"unknown sender {sender}: no client may send as it from {peer}; add it to the "
                                "smtp.from of the client it belongs to, or authenticate (AUTH)")
