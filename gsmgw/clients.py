"""Who may submit messages over the network, to whom, and how fast.

Shared by the HTTP server (`gsmgw.http`), the SMPP server (`gsmgw.smpp`) and the SMTP listener
(`gsmgw.email`), so that a client has the same rights whichever door it uses (docs/api.md and docs/config.md "Clients";
EMAIL.md).

Reads: each client's `token_file` / `smpp.password_file` / `smtp.password_file` once, when the
registry is built.
Writes: nothing. Everything else here is pure and takes the time as a parameter.

Trust: tokens and passwords are compared in constant time (`hmac.compare_digest`), and every
client is compared, so the answer time does not tell which client names exist. An empty secret
never matches anything.

Destination rules: `deny` is checked first, then `allow`; the default is to refuse. How a rule
is written and what it matches is `gsmgw.rules`: the registry keeps every rule in its canonical
form (a number pattern in E.164 form, `group:NAME`, `modem:NAME`), refusing one that has none,
and matches the E.164 form of the destination, so "+49 900*", "0049900*" and "0900*" (with
`default_country: "49"`) all hold back +49900123456 however a client writes it.

Mail senders (EMAIL.md): `smtp.from` rules are globs of the same kind, compared with the envelope
sender without regard to case; a client without them may use any sender. `networks` are the
addresses (CIDR) whose unauthenticated mail counts as the client's.

Limits count SMS parts (what the SIMs send: a 3-part text to 2 recipients is 6) in sliding
windows: `per_second`, `per_minute`, `per_hour`, `per_day` are the last 1 s, 60 s, 1 h and 24 h.
A check costs the same however much a window holds: each window keeps WINDOW_BUCKETS running
counts, so a part counts for its window plus at most one bucket (1/100 of the window) longer,
never shorter. `max_parts` caps the parts of one message: the client's own, else the config's
`defaults.max_parts`.

Roles (the console's people, WEB.md; the same for every door): a `viewer` reads and may not send,
an `operator` (the default) sends, an `admin` also sees and acts on every client's messages.
Visibility (`visibility(client)`): a client sees the messages it submitted (`Client:`) and the
inbound SMS of the modems its `allow` names (`modem:NAME`, `modem:*`, or `*`); an admin sees all.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import ipaddress
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import Any

from gsmgw.rules import (
    ALL,
    RuleError,
    glob_regex,
    group_reference,
    is_number_rule,
    modem_reference,
    normalize_rule,
    rule_names_modem,
)
from gsmgw.sms.address import normalize_number
from gsmgw.sms.errors import AddressError
from gsmgw.sms.split import MAX_PARTS as MAX_PARTS_CEILING
from gsmgw.spool.format import DEFAULT_MAX_PARTS

ADMIN, OPERATOR, VIEWER = "admin", "operator", "viewer"
ROLES = (ADMIN, OPERATOR, VIEWER)

# Window lengths in seconds for each limit key a client may set.
LIMIT_WINDOWS: dict[str, float] = {
    "per_second": 1.0,
    "per_minute": 60.0,
    "per_hour": 3600.0,
    "per_day": 86400.0,
}


class ClientConfigError(ValueError):
    """A client entry cannot be used (unreadable token file, bad rule, unknown limit key)."""


class UnknownGroup(ValueError):
    """`group:NAME` names no group of the config."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        known_list = sorted(known)
        hint = f"known groups: {', '.join(known_list)}" if known_list else "the config defines no groups"
        super().__init__(f"unknown group {name!r}; {hint} (add it under `groups:` in the config, or as a group in the web console)")


@dataclasses.dataclass(frozen=True)
class Client:
    """One entry of `clients:` with its secrets already read from their files."""

    name: str
    token: str | None = dataclasses.field(default=None, repr=False)
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    limits: Mapping[str, int] = dataclasses.field(default_factory=dict)
    smpp_system_id: str | None = None
    smpp_password: str | None = dataclasses.field(default=None, repr=False)
    smtp_user: str | None = None
    smtp_password: str | None = dataclasses.field(default=None, repr=False)
    smtp_from: tuple[str, ...] = ()  # envelope sender globs; empty: any sender
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Callbacks (gsmgw.callbacks): the hosts they may name, and whether those may be non-public.
    callback_hosts: tuple[str, ...] = ()
    callback_private_addresses: bool = False
    # Signs the webhooks about this client's messages (gsmgw.webhooks); never the token.
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    role: str = OPERATOR
    password_hash: str | None = dataclasses.field(default=None, repr=False)  # console login (gsmgw passwd)
    max_parts: int | None = None  # None: the config's defaults.max_parts

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def may_send(self) -> bool:
        return self.role != VIEWER


@dataclasses.dataclass(frozen=True)
class Visibility:
    """Which messages one client may see (WEB.md "Visibility"; HTTP API and console alike)."""

    everything: bool  # an admin
    client: str  # outbound messages whose Client: is this name
    modem_rules: tuple[str, ...]  # the client's canonical allow rules that name modems (`*`, `modem:...`)

    def sees_outbound(self, client: str | None) -> bool:
        return self.everything or (client is not None and client == self.client)

    def sees_inbound(self, modem: str | None) -> bool:
        return self.everything or any(rule_names_modem(rule, modem or "") for rule in self.modem_rules)

    @property
    def all_inbound(self) -> bool:
        return self.everything or any(rule in (ALL, "modem:*") for rule in self.modem_rules)

    def inbound_modems(self, names: Iterable[str]) -> tuple[str, ...] | None:
        """The modems among `names` whose inbound this client sees; None means every modem."""
        if self.all_inbound:
            return None
        return tuple(name for name in names if self.sees_inbound(name))


def visibility(client: Client) -> Visibility:
    """The visibility of a client as the registry holds it (rules in canonical form)."""
    rules = tuple(rule for rule in client.allow if rule == ALL or modem_reference(rule) is not None)
    return Visibility(everything=client.is_admin, client=client.name, modem_rules=rules)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer of `ClientRegistry.check_destination`; `reason` says why and what to do."""

    allowed: bool
    reason: str


def _field(entry: Any, name: str, default: Any = None) -> Any:
    """Read a field from a config dataclass or from a plain mapping (both are accepted)."""
    if isinstance(entry, Mapping):
        return entry.get(name, default)
    return getattr(entry, name, default)


# SMPP 3.4 §4.1.1 bind_*: password is a C-Octet String of at most 9 octets with its NUL.
SMPP_PASSWORD_OCTETS = 8


def read_secret_file(path: str, what: str) -> str:
    """Read a token or password file: the first line, without surrounding whitespace.

    A secret file is usually written with `echo`, so the trailing newline is not part of it.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            first_line = handle.readline()
    except OSError as exc:
        raise ClientConfigError(
            f"{what}: cannot read {path}: {exc.strerror}; create the file with the secret on its "
            f"first line, readable by the gsmgw user only (chmod 600)"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ClientConfigError(f"{what}: {path} is not UTF-8 text; write the secret as plain text") from exc
    secret = first_line.strip()
    if not secret:
        raise ClientConfigError(f"{what}: {path} is empty; write the secret on its first line")
    return secret


def secret_file_readable_by_others(path: str) -> bool:
    """True when group or others may read the file (`check-config` warns about it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def client_from_config(entry: Any) -> Client:
    """Build a `Client` from one `clients:` entry (dataclass or mapping), reading its secret files."""
    name = _field(entry, "name")
    if not isinstance(name, str) or not name:
        raise ClientConfigError("clients: every client needs a `name:`")
    where = f"clients[{name}]"
    token = _field(entry, "token")
    token_file = _field(entry, "token_file")
    if token_file:
        token = read_secret_file(str(token_file), f"{where}.token_file")
    if token is not None:
        token = str(token).strip() or None

    smpp = _field(entry, "smpp")
    smpp_system_id = smpp_password = None
    if smpp:
        smpp_system_id = _field(smpp, "system_id") or name
        smpp_password = _field(smpp, "password")
        password_file = _field(smpp, "password_file")
        if password_file:
            smpp_password = read_secret_file(str(password_file), f"{where}.smpp.password_file")
        if smpp_password is not None:
            smpp_password = str(smpp_password).strip() or None

    smtp = _field(entry, "smtp")
    smtp_user = smtp_password = None
    smtp_from: tuple[str, ...] = ()
    if smtp:
        smtp_user = str(_field(smtp, "user") or name)
        smtp_password = _field(smtp, "password")
        password_file = _field(smtp, "password_file")
        if password_file:
            smtp_password = read_secret_file(str(password_file), f"{where}.smtp.password_file")
        if smtp_password is not None:
            smtp_password = str(smtp_password).strip() or None
        # A mapping says `from:` as the config does; gsmgw.config.ClientSmtp calls it `senders`.
        senders = smtp.get("from") if isinstance(smtp, Mapping) else _field(smtp, "senders")
        smtp_from = tuple(_sender_rule(rule, f"{where}.smtp.from") for rule in (senders or ()))
    networks = tuple(parse_network(value, f"{where}.networks") for value in (_field(entry, "networks") or ()))
    role = _field(entry, "role") or OPERATOR
    if role not in ROLES:
        raise ClientConfigError(f"{where}.role: {role!r} is not one of {', '.join(ROLES)}")
    password_hash = None
    web = _field(entry, "web")
    if web:
        password_hash = _field(web, "password_hash")
        password_file = _field(web, "password_file")
        if password_file and not password_hash:
            password_hash = read_secret_file(str(password_file), f"{where}.web.password_file")

    # Rules are put in their canonical form by the registry, which knows default_country.
    allow = tuple(_field(entry, "allow") or ())
    deny = tuple(_field(entry, "deny") or ())

    limits_entry = _field(entry, "limits") or {}
    limits: dict[str, int] = {}
    for key in LIMIT_WINDOWS:
        value = _field(limits_entry, key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ClientConfigError(f"{where}.limits.{key}: must be a whole number of at least 1, not {value!r}")
        limits[key] = value
    if isinstance(limits_entry, Mapping):
        unknown = set(limits_entry) - set(LIMIT_WINDOWS)
        if unknown:
            raise ClientConfigError(
                f"{where}.limits: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(LIMIT_WINDOWS)}"
            )
    from gsmgw.callbacks import normalize_host_pattern

    try:
        callback_hosts = tuple(normalize_host_pattern(str(host)) for host in (_field(entry, "callback_hosts") or ()))
    except ValueError as exc:
        raise ClientConfigError(f"{where}.callback_hosts: {exc}") from None
    webhook_secret = _field(entry, "webhook_secret")
    webhook_secret_file = _field(entry, "webhook_secret_file")
    if webhook_secret_file:
        webhook_secret = read_secret_file(str(webhook_secret_file), f"{where}.webhook_secret_file")
    max_parts = _field(entry, "max_parts")
    if max_parts is not None and (isinstance(max_parts, bool) or not isinstance(max_parts, int)
                                  or not 1 <= max_parts <= MAX_PARTS_CEILING):
        raise ClientConfigError(f"{where}.max_parts: must be a whole number from 1 to {MAX_PARTS_CEILING}, not {max_parts!r}")
    return Client(
        name=name,
        token=token,
        allow=allow,
        deny=deny,
        limits=limits,
        smpp_system_id=smpp_system_id,
        smpp_password=smpp_password,
        smtp_user=smtp_user,
        smtp_password=smtp_password,
        smtp_from=smtp_from,
        networks=networks,
        callback_hosts=callback_hosts,
        callback_private_addresses=bool(_field(entry, "callback_private_addresses", False)),
        webhook_secret=str(webhook_secret).strip() or None if webhook_secret is not None else None,
        role=role,
        password_hash=password_hash,
        max_parts=max_parts,
    )


def _sender_rule(rule: Any, where: str) -> str:
    if not isinstance(rule, str) or not rule.strip():
        raise ClientConfigError(f'{where}: a rule must be a non-empty string like "nagios@example.org" or "*@example.org"')
    return rule.strip()


def _address_glob(rule: str) -> re.Pattern[str]:
    """A sender rule as a regex: `*` any run of characters, `?` one, case folded."""
    return glob_regex(rule.casefold())


def _same_secret(presented: str | None, configured: str | None) -> bool:
    """Constant-time equality of two names or secrets; an empty one never matches. Always does
    one comparison, so a login's cost does not depend on which entries exist."""
    matches = hmac.compare_digest((presented or "").encode("utf-8", "surrogatepass"),
                                  (configured or "").encode("utf-8", "surrogatepass"))
    return matches and bool(presented) and bool(configured)


def parse_network(value: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR form (`10.0.5.0/24`, `::1/128`; a bare address is one host)."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError as exc:
        raise ClientConfigError(f"{where}: {value!r} is not a network ({exc}); write it like 10.0.5.0/24 or 192.0.2.7") from None


def peer_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a connection's peer; IPv4 mapped into IPv6 (`::ffff:10.0.5.7`) as IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


WINDOW_BUCKETS = 100


class _Window:
    """The parts taken in one sliding window of one client, as counts per time bucket.

    Bucket i holds what was taken in [i * width, (i + 1) * width) and leaves the window whole at
    (i + 1) * width + length: a part counts at least `length` seconds and at most one `width`
    longer. At most WINDOW_BUCKETS + 1 buckets are kept, and `total` is their running sum.
    """

    __slots__ = ("length", "width", "buckets", "total")

    def __init__(self, length: float) -> None:
        self.length = length
        self.width = length / WINDOW_BUCKETS
        self.buckets: collections.deque[list[int]] = collections.deque()  # [bucket index, parts], oldest first
        self.total = 0

    def expire(self, now: float) -> None:
        gone = (now - self.length) / self.width  # buckets whose end is at or before this are out
        while self.buckets and self.buckets[0][0] + 1 <= gone:
            self.total -= self.buckets.popleft()[1]

    def wait(self, excess: int, now: float) -> float:
        """Seconds until `excess` parts have left the window (it holds at least that many)."""
        freed = 0
        for index, parts in self.buckets:
            freed += parts
            if freed >= excess:
                return max(0.0, (index + 1) * self.width + self.length - now)
        return self.length  # unreachable while total >= excess; a safe answer all the same

    def add(self, parts: int, now: float) -> None:
        index = math.floor(now / self.width)
        if self.buckets and self.buckets[-1][0] >= index:
            self.buckets[-1][1] += parts  # the same bucket (or a clock that stepped back)
        else:
            self.buckets.append([index, parts])
        self.total += parts

    def remove(self, parts: int, at: float) -> None:
        index = math.floor(at / self.width)
        for bucket in reversed(self.buckets):
            if bucket[0] == index:
                taken = min(parts, bucket[1])
                bucket[1] -= taken
                self.total -= taken
                return
            if bucket[0] < index:
                return  # its bucket has left the window: nothing to give back


class SlidingWindowLimiter:
    """Per-client part counts in sliding windows; pure (the caller passes `now`).

    `acquire` either takes room for all `count` parts in every window of the client or takes
    nothing, so a request with several recipients is limited as a whole. Every call costs the
    same whatever the windows hold (see `_Window`).
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, client: str, key: str, now: float) -> _Window:
        window = self._windows.get((client, key))
        if window is None:
            window = self._windows[(client, key)] = _Window(LIMIT_WINDOWS[key])
        window.expire(now)
        return window

    def retry_after(self, client: Client, count: int, now: float) -> float:
        """Seconds until `count` more parts fit in every window; 0.0 when they fit now.

        `math.inf` when `count` is larger than a limit itself, so waiting cannot help.
        """
        wait = 0.0
        for key, limit in client.limits.items():
            if count > limit:
                return math.inf
            window = self._window(client.name, key, now)
            excess = window.total + count - limit
            if excess > 0:
                wait = max(wait, window.wait(excess, now))
        return wait

    def acquire(self, client: Client, count: int, now: float) -> float:
        """Take room for `count` parts; returns 0.0 on success, else the wait (nothing taken)."""
        wait = self.retry_after(client, count, now)
        if wait > 0:
            return wait
        for key in client.limits:
            self._window(client.name, key, now).add(count, now)
        return 0.0

    def release(self, client: Client, count: int, now: float) -> None:
        """Give back room taken by `acquire` at `now` when the parts were not queued after all."""
        for key in client.limits:
            window = self._windows.get((client.name, key))
            if window is not None:
                window.remove(count, now)


class ClientRegistry:
    """All clients and groups of the config: authentication, destination rules, limits.

    The clients it holds have their rules in canonical form (`gsmgw.rules`); a client whose
    rules were already canonical is kept as the same object.
    """

    def __init__(
        self,
        clients: Iterable[Client],
        groups: Mapping[str, Iterable[str]] | None = None,
        *,
        default_country: str | None = None,
        default_max_parts: int = DEFAULT_MAX_PARTS,
    ):
        self.default_country = default_country
        self.default_max_parts = default_max_parts
        self.groups: dict[str, tuple[str, ...]] = {}
        for group_name, members in (groups or {}).items():
            try:
                self.groups[group_name] = tuple(normalize_number(str(member), default_country) for member in members)
            except ValueError as exc:
                raise ClientConfigError(f"groups.{group_name}: {exc}") from exc
        self.clients: tuple[Client, ...] = tuple(self._canonical(client) for client in clients)
        names = [client.name for client in self.clients]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ClientConfigError(f"clients: the name(s) {', '.join(duplicates)} appear twice; give each client its own name")
        self._by_name = {client.name: client for client in self.clients}
        self._rules: dict[str, re.Pattern[str]] = {
            rule: glob_regex(rule)
            for client in self.clients
            for rule in client.allow + client.deny
            if is_number_rule(rule)
        }
        self._sender_patterns: dict[str, re.Pattern[str]] = {}
        self.limiter = SlidingWindowLimiter()
        # The console's groups (gsmgw.groups.GroupBook.console, updated in place): `group:NAME`
        # may name one of them as a destination; rules name config groups (or `group:*`).
        self.console_groups: Mapping[str, tuple[str, ...]] = {}

    def _canonical(self, client: Client) -> Client:
        """`client` with every rule in canonical form; ClientConfigError names the rule and the fix."""
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("allow", "deny"):
            canonical = []
            for position, rule in enumerate(getattr(client, key)):
                where = f"clients[{client.name}].{key}[{position}]"
                try:
                    rule = normalize_rule(rule, self.default_country, deny=key == "deny")
                except RuleError as exc:
                    raise ClientConfigError(f"{where}: {exc}") from None
                group = group_reference(rule)
                if group is not None and group != ALL and group not in self.groups:
                    raise ClientConfigError(f"{where}: rule {rule!r}: {UnknownGroup(group, self.groups)}")
                canonical.append(rule)
            lists[key] = tuple(canonical)
        if (lists["allow"], lists["deny"]) == (client.allow, client.deny):
            return client
        return dataclasses.replace(client, allow=lists["allow"], deny=lists["deny"])

    @classmethod
    def from_config(cls, config: Any) -> "ClientRegistry":
        """Build the registry from a loaded `gsmgw.config.Config` (reads token files); group
        members and national rules are read with the config's `default_country`."""
        entries = _field(config, "clients") or ()
        groups = _field(config, "groups") or {}
        return cls(
            (client_from_config(entry) for entry in entries),
            groups,
            default_country=_field(config, "default_country"),
            default_max_parts=_field(_field(config, "defaults"), "max_parts") or DEFAULT_MAX_PARTS,
        )

    # --- authentication -------------------------------------------------------------------

    def by_name(self, name: str) -> Client | None:
        return self._by_name.get(name)

    def authenticate_token(self, token: str | None) -> Client | None:
        """The client whose HTTP bearer token this is, or None."""
        if not token:
            return None
        presented = token.encode("utf-8", "surrogatepass")
        found = None
        for client in self.clients:
            expected = (client.token or "").encode("utf-8", "surrogatepass")
            # Compare against every client, also after a match, so timing reveals nothing.
            if expected and hmac.compare_digest(presented, expected) and found is None:
                found = client
        return found

    def authenticate_password(self, name: str | None, password: str | None) -> Client | None:
        """Name + token, as Kannel's `username`/`password` send them."""
        client = self._by_name.get(name or "")
        if client is None or not client.token or not password:
            # Still do one comparison so an unknown name costs the same as a wrong password.
            hmac.compare_digest(b"x" * 32, (password or "").encode("utf-8", "surrogatepass"))
            return None
        if hmac.compare_digest(password.encode("utf-8", "surrogatepass"), client.token.encode("utf-8", "surrogatepass")):
            return client
        return None

    def authenticate_web(self, name: str | None, password: str | None) -> Client | None:
        """The client with this console login (name and password), or None. Slow on purpose
        (a memory-hard hash): call it off the event loop. An unknown name costs the same."""
        from gsmgw.passwords import verify_dummy, verify_password

        client = self._by_name.get(name or "")
        if client is None or not client.password_hash or not password:
            verify_dummy(password or "")
            return None
        return client if verify_password(password, client.password_hash) else None

    def authenticate_smpp(self, system_id: str | None, password: str | None) -> Client | None:
        """The client with this SMPP `system_id` and password, or None.

        Every client's system_id and password are compared, in constant time, whatever matches:
        a bind with an unknown system_id costs what one with a wrong password costs."""
        found = None
        for client in self.clients:
            configured = client.smpp_password or ""
            # SMPP 3.4 §4.1.1: the password field holds at most 8 octets, and clients such as
            # smpplib cut a longer one to that; a longer configured password is its first 8.
            cut = configured[:SMPP_PASSWORD_OCTETS] if len(configured) > SMPP_PASSWORD_OCTETS else None
            password_matches = _same_secret(password, configured) | _same_secret(password, cut)
            if _same_secret(system_id, client.smpp_system_id) & password_matches and found is None:
                found = client
        return found

    @staticmethod
    def same_smpp_login(old: Client, new: Client) -> bool:
        """Does `new` (after a reload) still accept the login a session was bound with as `old`?"""
        return old.smpp_system_id == new.smpp_system_id and hmac.compare_digest(
            (old.smpp_password or "").encode("utf-8", "surrogatepass"),
            (new.smpp_password or "").encode("utf-8", "surrogatepass"),
        )

    def authenticate_smtp(self, user: str | None, password: str | None) -> Client | None:
        """The client with this SMTP AUTH user and password, or None. As for SMPP, every
        client's user and password are compared, so an unknown user costs what a wrong password does."""
        found = None
        for client in self.clients:
            matches = _same_secret(user, client.smtp_user) & _same_secret(password, client.smtp_password)
            if matches and found is None:
                found = client
        return found

    def clients_for_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> tuple[Client, ...]:
        """Clients whose `networks` hold `address`, the most specific network first."""
        if address is None:
            return ()
        matches = []
        for client in self.clients:
            prefixes = [net.prefixlen for net in client.networks if net.version == address.version and address in net]
            if prefixes:
                matches.append((-max(prefixes), client))
        return tuple(client for _, client in sorted(matches, key=lambda item: item[0]))

    def sender_allowed(self, client: Client, address: str) -> bool:
        """May `client` send mail as the envelope sender `address`? Any sender without `smtp.from`."""
        if not client.smtp_from:
            return True
        subject = address.strip().strip("<>").casefold()
        return any(self._sender_rule(rule).match(subject) for rule in client.smtp_from)

    def _sender_rule(self, rule: str) -> re.Pattern[str]:
        pattern = self._sender_patterns.get(rule)
        if pattern is None:
            pattern = self._sender_patterns[rule] = _address_glob(rule)
        return pattern

    # --- destinations ---------------------------------------------------------------------

    def expand(self, destination: str) -> tuple[str, ...]:
        """`group:NAME` → its members (E.164); anything else is returned as it is, alone."""
        name = group_reference(destination)
        if name is not None:
            if name in self.groups:
                return self.groups[name]
            if name in self.console_groups:
                return tuple(self.console_groups[name])
            raise UnknownGroup(name, [*self.groups, *self.console_groups])
        return (destination,)

    def _matches(self, rule: str, number: str) -> bool:
        group = group_reference(rule)
        if group == ALL:
            return any(number in members for members in self.groups.values()) or any(
                number in members for members in self.console_groups.values())
        if group is not None:
            return number in self.groups.get(group, ())
        pattern = self._rules.get(rule)
        return pattern is not None and bool(pattern.match(number))  # modem: rules name no destination

    def check_destination(self, client: Client, number: str) -> Verdict:
        """May `client` send to `number`? `deny` first, then `allow`; default no.

        The rules are those of this registry's client of that name (after a reload, a session
        that still holds the old `Client` gets the new rules; a client no longer configured may
        send nothing). `number` is read as every door reads one (`normalize_number` with
        `default_country`), so the rules see the same E.164 form whichever form was written."""
        current = self._by_name.get(client.name)
        if current is None:
            return Verdict(False, f"client {client.name!r} is no longer in the config, so it may not send")
        client = current
        if not client.may_send:
            return Verdict(False, f"client {client.name!r} has the role viewer: it may read but not send; "
                                  f"give it role: operator to let it send")
        try:
            number = normalize_number(number, self.default_country)
        except AddressError as exc:
            return Verdict(False, f"client {client.name!r} may send to phone numbers only: {exc}")
        for rule in client.deny:
            if self._matches(rule, number):
                return Verdict(False, f"{number} is excluded by the deny rule {rule!r} of client {client.name!r}")
        for rule in client.allow:
            if self._matches(rule, number):
                return Verdict(True, f"allowed by {rule!r}")
        if not client.allow:
            return Verdict(False, f"client {client.name!r} has no `allow` rules, so it may not send to anyone; add e.g. allow: [\"+49*\"] to its config")
        return Verdict(
            False,
            f"{number} matches none of the allow rules of client {client.name!r} ({', '.join(client.allow)})",
        )

    def receives_from_modem(self, client: Client, modem: str) -> bool:
        """Do inbound SMS that arrived on `modem` go to `client`? Its `allow` list must hold `*`
        or a `modem:` rule naming the modem (`modem:gsm1`, `modem:*`)."""
        return any(rule_names_modem(rule, modem) for rule in client.allow)

    # --- limits ---------------------------------------------------------------------------

    def max_parts_for(self, client: Client) -> int:
        """The most SMS parts one message of `client` may have: its `max_parts`, else the
        config's `defaults.max_parts`. Every door caps a message at this."""
        current = self._by_name.get(client.name, client)
        return current.max_parts or self.default_max_parts

    def acquire(self, client: Client, parts: int, now: float) -> float:
        """Take room for `parts` SMS parts in the client's limits (the current ones for its
        name); 0.0, or the seconds to wait (math.inf: more than a limit itself)."""
        return self.limiter.acquire(self._by_name.get(client.name, client), parts, now)

    def release(self, client: Client, parts: int, now: float) -> None:
        """Give back what `acquire(client, parts, now)` took when nothing was queued."""
        self.limiter.release(self._by_name.get(client.name, client), parts, now)
