"""Where a client's callbacks may go: its allowed hosts, and the addresses they may resolve to.

A callback is a URL a network client gives with a message (`callback` over HTTP, Kannel's
`dlr-url`) that the gateway calls later. Without rules it is a way to make the gateway send
requests into its own network: to loopback services, private addresses, or the cloud metadata
address 169.254.169.254. So:

- a client names the hosts its callbacks may use in `clients[].callback_hosts` (none by default):
  `app.example` (that host only), `*.example.org` (any name below example.org, not example.org
  itself), or an IP address; a callback to any other host is refused when the message is
  submitted (`callback_problem`);
- when the gateway calls, the host's addresses must be public (`address_refusal`), unless the
  client sets `callback_private_addresses: true` (for an application on the gateway's own host or
  network). The check is made on the addresses the connection then uses, so a name that resolves
  differently a second later (DNS rebinding) cannot switch it (gsmgw.webhooks does the I/O).

URLs from the config itself (`webhooks.received`, `webhooks.report`) are the administrator's and
are not restricted. No webhook or callback follows a redirect.

Pure: no I/O. The host names are compared in their ASCII (IDNA) form, case-insensitively.
"""

from __future__ import annotations

import ipaddress
import re

from yarl import URL

__all__ = [
    "address_refusal",
    "callback_problem",
    "host_allowed",
    "host_refusal",
    "normalize_host_pattern",
]

# RFC 1123 labels; a pattern may start with "*." for any name below a domain.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_PATTERN = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*\Z")

# Well-known prefixes that carry an IPv4 address inside an IPv6 one and reach it through a
# gateway: NAT64 (RFC 6052 §2.1). IPv4-mapped, 6to4 and Teredo are read by ipaddress itself.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def normalize_host_pattern(text: str) -> str:
    """A `callback_hosts` entry in the form it is matched in; ValueError saying what to write."""
    value = _host_form(text)
    if _is_address(value):
        return value
    if not _HOST_PATTERN.match(value) or value.replace("*.", "").isdigit():
        raise ValueError(
            f"{text!r} is not a host name, a *.domain pattern or an IP address; write e.g. "
            '"app.example", "*.example.org" or "192.0.2.10" (no scheme, port or path)'
        )
    return value


def _host_form(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets, an address in its canonical form."""
    value = host.strip().lower().rstrip(".")
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, patterns: tuple[str, ...]) -> bool:
    """Is `host` (a URL's host, IDNA form) named by one of the normalised `patterns`?"""
    if not host:
        return False
    value = _host_form(host)
    for pattern in patterns:
        if pattern.startswith("*."):
            if value.endswith(pattern[1:]) and len(value) > len(pattern) - 1:
                return True
        elif value == pattern:
            return True
    return False


def address_refusal(address: str) -> str | None:
    """Why a callback may not connect to `address` without `callback_private_addresses`, or
    None for a public (globally routable) unicast address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_refusal(str(embedded))
            return f"{inner} (inside {ip})" if inner else None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        metadata = " (the cloud metadata service)" if str(ip) == "169.254.169.254" else ""
        return f"{ip} is a link-local address{metadata}"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_reserved:
        return f"{ip} is a reserved address"
    if ip.is_private or not ip.is_global:
        return f"{ip} is a private or otherwise non-public address"
    return None


def host_refusal(host: str | None, hosts: tuple[str, ...], private_addresses: bool) -> str | None:
    """What the URL's host alone rules out: "host" when it is not among `hosts`, the
    address_refusal of a non-public IP address, or None (a name is checked when resolved)."""
    if not host_allowed(host, hosts):
        return "host"
    address = _host_form(host or "")
    if not private_addresses and _is_address(address):
        return address_refusal(address)
    return None


def callback_problem(url: str, client_name: str, hosts: tuple[str, ...], private_addresses: bool) -> str | None:
    """What is wrong with a callback URL a client submits, as the answer's words; None if fine.

    Only what the URL itself shows is checked here; the addresses a name resolves to are
    checked when the gateway calls it.
    """
    try:
        host = URL(url).raw_host
    except (ValueError, TypeError):
        return "the callback is not a URL"
    refusal = host_refusal(host, hosts, private_addresses)
    if refusal == "host":
        allowed = ", ".join(hosts) if hosts else "none"
        return (
            f"the callback's host {host!r} is not one client {client_name!r} may call back "
            f"(callback_hosts: {allowed}); ask the gateway's administrator to add it to "
            f"clients[].callback_hosts of client {client_name!r}"
        )
    if refusal:
        return (
            f"the callback's address is not public: {refusal}; callbacks of client {client_name!r} may "
            "only reach public addresses unless clients[].callback_private_addresses is true"
        )
    return None
