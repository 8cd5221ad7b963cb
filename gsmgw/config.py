"""The gsmgw configuration: YAML in, frozen dataclasses out, every problem reported at once.

Reads: the config file, and the secret files it names (pin_file, token_file, password_file)
unless the caller asks not to (`gsmgw send` runs as a user who may not read the PIN).
Writes: nothing.

Every key of docs/config.md is understood (tests/test_docs_reference.py keeps the two equal). An
unknown key is an error, because a typo must not pass silently.
Each error names the key path (`modems[1].limits.per_minute`), the line in the file, and what to
write instead. The YAML is composed into its node tree first, so that every key and value has a
line number, and so that values like `pin: 0123` are taken as written, not as YAML 1.1 octal.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import socket
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence, overload

import yaml

from gsmgw.durations import EXAMPLES as DURATION_EXAMPLES
from gsmgw.durations import parse_duration
from gsmgw.spool.format import DEFAULT_MAX_PARTS

DEFAULT_CONFIG_PATH = "/etc/gsmgw/gsmgw.yaml"
CONFIG_ENV = "GSMGW_CONFIG"
DEFAULT_SPOOL = "/var/spool/gsmgw"
DEFAULT_STATE = "/var/lib/gsmgw"
DEFAULT_PROBE_PORTS = ("/dev/gsmgw/*", "/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")
LOG_LEVELS = ("debug", "info", "warning", "error")
BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
MODEM_LIMITS = ("per_minute", "per_day")
CLIENT_LIMITS = ("per_second", "per_minute", "per_hour", "per_day")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")  # safe in file names and URLs
_PREFIX = re.compile(r"\+\d{1,15}\Z")


# --- the config objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None


@dataclass(frozen=True)
class Defaults:
    report: bool = True
    validity: int | None = 168  # TP-VP of "2 days" (TS 23.040 §9.2.3.12.1: 168 -> 2 days)
    validity_text: str = "2 days"
    max_parts: int = DEFAULT_MAX_PARTS
    # ISO 639-1 codes of the TS 23.038 national tables the encoder may use (gsmgw.sms.count_parts)
    national_languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModemConfig:
    name: str
    port: str | None = None
    imsi: str | None = None
    iccid: str | None = None
    imei: str | None = None
    pin: str | None = field(default=None, repr=False)  # a repr may end up in a log
    pin_file: Path | None = None
    baudrate: int = 115200
    limits: Limits = field(default_factory=Limits)
    prefixes: tuple[str, ...] = ()
    profile: str | None = None
    balance: str | None = None  # USSD code that asks the network for the SIM's balance ("*100#")
    email_to: tuple[str, ...] = ()  # inbound SMS of this modem are mailed here (EMAIL.md), not to email_out.received

    @property
    def binding(self) -> tuple[str, str]:
        """How the modem is found: ("port", path) or ("imsi"|"iccid"|"imei", value)."""
        for key in ("port", "imsi", "iccid", "imei"):
            value = getattr(self, key)
            if value is not None:
                return key, value
        raise ValueError(f"modem {self.name} has no port, imsi, iccid or imei")


@dataclass(frozen=True)
class Hooks:
    received: str | None = None
    sent: str | None = None
    failed: str | None = None
    report: str | None = None
    call: str | None = None  # an incoming call was recorded in calls/


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class HttpConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8025
    tls: TlsConfig | None = None
    metrics: bool = True
    # Connections (gsmgw.listen): open at once in all and per remote address; seconds a client
    # has for a request's head after it connects (and between requests on a kept-alive one).
    max_connections: int = 1024
    max_connections_per_address: int = 128
    header_timeout: float = 10.0
    # Not a config key: the listener `run --simulate` adds by itself takes any free port when
    # 8025 is taken (a second demo, a test beside another), and prints where it listens.
    any_port_if_taken: bool = False


@dataclass(frozen=True)
class ClientSmpp:
    system_id: str
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None


@dataclass(frozen=True)
class ClientWeb:
    """A console login: the hash `gsmgw passwd` made, read from password_file."""

    password_hash: str | None = field(default=None, repr=False)
    password_file: Path | None = None


@dataclass(frozen=True)
class ClientSmtp:
    """`clients[].smtp` (EMAIL.md): AUTH user and password, and the envelope senders it may use."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    senders: tuple[str, ...] = ()  # the `from:` globs


@dataclass(frozen=True)
class ClientConfig:
    name: str
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    smpp: ClientSmpp | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    callback_hosts: tuple[str, ...] = ()  # normalised by gsmgw.callbacks.normalize_host_pattern
    callback_private_addresses: bool = False
    webhook_secret: str | None = field(default=None, repr=False)  # signs this client's report webhooks
    webhook_secret_file: Path | None = None
    web: ClientWeb | None = None
    role: str = "operator"  # admin | operator | viewer (gsmgw.clients.ROLES)
    max_parts: int | None = None  # None: defaults.max_parts
    smtp: ClientSmtp | None = None
    networks: tuple[str, ...] = ()  # CIDR; unauthenticated mail from here is this client's (EMAIL.md)


@dataclass(frozen=True)
class WebhooksConfig:
    received: str | None = None
    report: str | None = None
    secret: str | None = field(default=None, repr=False)
    call: str | None = None  # POSTed for each incoming call (calls/)


@dataclass(frozen=True)
class CallsConfig:
    """`calls:` what happens when a SIM is called (README "Incoming calls")."""

    hangup: bool = True  # hang up at once (AT+CHUP, or ATH): the SIM is for SMS, the caller hears it end
    ack: bool = False  # a call from a two_way.allow_from number acknowledges the alerts sent to it


@dataclass(frozen=True)
class SmppConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 2775
    tls: TlsConfig | None = None
    window: int = 10
    # Connections (gsmgw.listen): open at once in all and per remote address; seconds a client
    # has to bind after it connects.
    max_connections: int = 1024
    max_connections_per_address: int = 128
    bind_timeout: float = 30.0


@dataclass(frozen=True)
class AlertReceiver:
    to: tuple[str, ...]
    window: float = 120.0
    max_per_hour: int = 10
    max_parts: int | None = None


SMTP_TEXT_MODES = ("subject", "body", "subject+body")
SMARTHOST_TLS = ("auto", "required")


@dataclass(frozen=True)
class SmtpConfig:
    """`smtp:` (EMAIL.md "Mail in")."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 2525
    domains: tuple[str, ...] = ()
    tls: TlsConfig | None = None
    max_size: int = 256 * 1024
    text: str = "subject+body"
    trusted_networks: tuple[str, ...] = ()  # CIDR
    # Connections (gsmgw.listen), as for http: and smpp:; `timeout`: seconds for one command
    # (the whole DATA included) before the session is closed.
    max_connections: int = 1024
    max_connections_per_address: int = 128
    timeout: float = 60.0


@dataclass(frozen=True)
class EmailOutConfig:
    """`email_out:` (EMAIL.md "Mail out")."""

    smarthost_host: str
    smarthost_port: int = 25
    sender: str = ""  # the `from:` address, display name allowed
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    received: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    report: bool = False
    tls: str = "auto"  # STARTTLS when offered; "required": never send without it
    ca_file: Path | None = None  # trust for the smarthost's certificate; default: the system's


@dataclass(frozen=True)
class AlertmanagerConfig:
    receivers: Mapping[str, AlertReceiver] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class TwoWayConfig:
    enabled: bool = False
    allow_from: tuple[str, ...] = ()
    commands: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    timeout: float = 30.0
    secret: str | None = field(default=None, repr=False)  # the word every request starts with


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = False


DEFAULT_OPTOUT_KEYWORDS = ("STOP", "STOPP", "UNSUBSCRIBE", "END", "QUIT", "CANCEL")
DEFAULT_OPTIN_KEYWORDS = ("START",)


@dataclass(frozen=True)
class OptOutConfig:
    keywords: tuple[str, ...] = DEFAULT_OPTOUT_KEYWORDS  # upper case, without spaces
    start_keywords: tuple[str, ...] = DEFAULT_OPTIN_KEYWORDS
    confirm: str | None = None  # sent back to whoever opted out
    confirm_start: str | None = None  # sent back to whoever opted in again


@dataclass(frozen=True)
class InboundConfig:
    reassembly_timeout: float = 12 * 3600.0
    sweep_interval: float = 60.0
    # A report is matched to the most recent part with its TP-MR and recipient sent this recently
    # (the MR is one octet and wraps).
    report_window: float = 3 * 86400.0


@dataclass(frozen=True)
class SendingConfig:
    """How a temporary error is retried and when a modem rests (docs/config.md `sending`)."""

    retry_first: float = 15.0  # the first backoff; each further try waits twice as long ...
    retry_max: float = 600.0  # ... up to this
    attempts: int = 8  # tries before a message fails
    rest_after: int = 3  # failed sends in a row that rest a modem
    rest_for: float = 60.0


@dataclass(frozen=True)
class ClusterConfig:
    """CLUSTER.md: this host's name among the members sharing the journal, and its lease."""

    member: str
    lease: float = 30.0


@dataclass(frozen=True)
class Config:
    spool: Path = Path(DEFAULT_SPOOL)
    state: Path = Path(DEFAULT_STATE)
    default_country: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    modems: tuple[ModemConfig, ...] = ()
    probe_ports: tuple[str, ...] = DEFAULT_PROBE_PORTS
    hooks: Hooks = field(default_factory=Hooks)
    hook_timeout: float = 30.0
    status_interval: float = 30.0
    log_level: str = "info"
    http: HttpConfig | None = None
    clients: tuple[ClientConfig, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    webhooks: WebhooksConfig | None = None
    smpp: SmppConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    two_way: TwoWayConfig = field(default_factory=TwoWayConfig)
    inbound: InboundConfig = field(default_factory=InboundConfig)
    sending: SendingConfig = field(default_factory=SendingConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    web: WebConfig | None = None
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    # CLUSTER.md: a PostgreSQL DSN shared by several hosts; None: SQLite in the state directory.
    journal: str | None = None
    cluster: ClusterConfig | None = None  # set exactly when journal: is
    smtp: SmtpConfig | None = None
    email_out: EmailOutConfig | None = None
    source: Path | None = None

    @property
    def national_languages(self) -> tuple[str, ...]:
        """The top-level `national_languages:` (kept in `defaults`, where the encoders read it)."""
        return self.defaults.national_languages

    def modem(self, name: str) -> ModemConfig | None:
        for modem in self.modems:
            if modem.name == name:
                return modem
        return None

    @classmethod
    def for_simulation(cls, spool: str | os.PathLike, ports: Sequence[str], *, state: str | os.PathLike | None = None) -> "Config":
        """Same as `simulation_config`."""
        return simulation_config(spool, ports, state=state)


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One problem: which key, which line, what is wrong and what to write instead."""

    path: str
    line: int | None
    message: str
    fix: str = ""

    def render(self, filename: str | None = None) -> str:
        where = filename or "config"
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text}; {self.fix}" if self.fix else text


@dataclass(frozen=True)
class CheckResult:
    config: Config | None
    errors: list[Issue]
    warnings: list[Issue]


class ConfigError(Exception):
    """The config cannot be used. `errors` lists every problem; str() is the whole report."""

    def __init__(self, errors: list[Issue], warnings: list[Issue] | None = None, filename: str | None = None):
        self.errors = errors
        self.warnings = warnings or []
        self.filename = filename
        super().__init__("\n".join(issue.render(filename) for issue in errors))


class ConfigUnreadable(ConfigError):
    """The config file itself cannot be read (missing, no permission)."""


def config_path(cli_value: str | os.PathLike | None = None) -> str:
    """The config to use: `-c`, else $GSMGW_CONFIG, else /etc/gsmgw/gsmgw.yaml."""
    return given_config_path(cli_value) or DEFAULT_CONFIG_PATH


def given_config_path(cli_value: str | os.PathLike | None = None) -> str | None:
    """The config the user named: `-c`, else $GSMGW_CONFIG; None when neither is given. Commands
    that can work on a directory alone (`send --spool`, `status --spool/--state`) then read none:
    /etc/gsmgw/gsmgw.yaml may be unreadable for this user, or belong to another gateway."""
    if cli_value:
        return os.fspath(cli_value)
    return os.environ.get(CONFIG_ENV) or None


# --- the YAML node index: path -> line, raw scalar text ----------------------------------------


@dataclass
class _Node:
    line: int
    raw: str | None  # the scalar as written, None for mappings and sequences
    plain: bool  # an unquoted scalar (YAML 1.1 would type it)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _index_nodes(node: yaml.Node, path: str, index: dict[str, _Node], issues: list[Issue]) -> None:
    raw = node.value if isinstance(node, yaml.ScalarNode) else None
    plain = isinstance(node, yaml.ScalarNode) and node.style is None
    index.setdefault(path, _Node(node.start_mark.line + 1, raw, plain))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = _child(path, key)
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue  # a merge key: its mapping's keys are checked where they are used
            if key in seen:
                issues.append(Issue(child, line, f"this key appears twice (also on line {seen[key]})",
                                    "keep one of them; YAML would silently use the last"))
            seen[key] = line
            index[child] = _Node(line, None, False)
            _index_nodes(value_node, child, index, issues)
            # The value's own line is kept under a separate key for scalars on their own line.
            if isinstance(value_node, yaml.ScalarNode):
                index[child] = _Node(line, value_node.value, value_node.style is None)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index_nodes(item, f"{path}[{position}]", index, issues)


# --- the checker --------------------------------------------------------------------------------


class _Checker:
    """Walks the loaded data with its node index, collecting every error and warning."""

    def __init__(self, index: dict[str, _Node], filename: str, read_secrets: bool):
        self.index = index
        self.filename = filename
        self.read_secrets = read_secrets
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.inline_secrets: list[str] = []

    def line(self, path: str) -> int | None:
        while path:
            node = self.index.get(path)
            if node is not None:
                return node.line
            path = path.rsplit(".", 1)[0] if "." in path else (path.rsplit("[", 1)[0] if "[" in path else "")
        root = self.index.get("")
        return root.line if root is not None else None

    def error(self, path: str, message: str, fix: str = "") -> None:
        self.errors.append(Issue(path, self.line(path), message, fix))

    def warn(self, path: str, message: str, fix: str = "") -> None:
        self.warnings.append(Issue(path, self.line(path), message, fix))

    def raw(self, path: str, value: Any) -> str:
        """A scalar as written in the file (`pin: 0123` stays "0123")."""
        node = self.index.get(path)
        if node is not None and node.raw is not None and not isinstance(value, (dict, list)):
            return node.raw
        return str(value)

    # --- shapes --------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of keys ({', '.join(allowed)}), not {_kind(value)}",
                       "write it as `key: value` lines indented under it")
            return {}
        for key in value:
            key_text = str(key)
            if key_text not in allowed:
                suggestion = difflib.get_close_matches(key_text, allowed, n=1, cutoff=0.6)
                fix = f"did you mean {suggestion[0]}?" if suggestion else f"known keys here: {', '.join(allowed)}"
                self.error(_child(path, key_text), "unknown key", fix)
        for key in required:
            if value.get(key) is None:
                self.error(_child(path, key), "is required", f"add `{key}:` under {path or 'the top level'}")
        return value

    def sequence(self, value: Any, path: str, what: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list of {what}, not {_kind(value)}", "write it as [a, b] or as `- a` lines")
            return []
        return value

    def string(self, value: Any, path: str, example: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, (dict, list)) or isinstance(value, bool):
            self.error(path, f"must be a text, not {_kind(value)}", f"write for example {path.split('.')[-1]}: {example}")
            return None
        text = self.raw(path, value).strip()
        if not text:
            self.error(path, "is empty", f"write for example {path.split('.')[-1]}: {example}")
            return None
        return text

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, not {value!r}", "write true or false")
            return default
        return value

    @overload
    def integer(self, value: Any, path: str, default: int, low: int, high: int | None = None) -> int: ...
    @overload
    def integer(self, value: Any, path: str, default: None, low: int, high: int | None = None) -> int | None: ...
    def integer(self, value: Any, path: str, default: int | None, low: int, high: int | None = None) -> int | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
            self.error(path, f"must be a whole number {bounds}, not {value!r}", f"write a number {bounds}")
            return default
        return value

    def duration(self, value: Any, path: str, default: float, minimum: float = 0.0) -> float:
        if value is None:
            return default
        try:
            seconds = parse_duration(value if isinstance(value, (int, float)) else self.raw(path, value))
        except ValueError as exc:
            self.error(path, str(exc), f"write for example {DURATION_EXAMPLES}")
            return default
        if seconds < minimum:
            self.error(path, f"{seconds:g} s is too short", f"write at least {minimum:g} s")
            return default
        return seconds

    def choice(self, value: Any, path: str, choices: Sequence[str], default: str | None) -> str | None:
        if value is None:
            return default
        text = str(value).strip().lower()
        if text not in choices:
            suggestion = difflib.get_close_matches(text, choices, n=1, cutoff=0.5)
            hint = f"did you mean {suggestion[0]}? " if suggestion else ""
            self.error(path, f"{value!r} is not one of {', '.join(choices)}", f"{hint}write one of {', '.join(choices)}")
            return default
        return text

    def secret_file(self, value: Any, path: str, what: str) -> tuple[Path | None, str | None]:
        """(path, first line) of a secret file; warns if others may read it."""
        text = self.string(value, path, f"/etc/gsmgw/{what}")
        if text is None:
            return None, None
        secret_path = Path(text)
        if not self.read_secrets:
            return secret_path, None  # e.g. `gsmgw send`, run by a user who may not see the PIN
        try:
            info = os.stat(secret_path)
        except FileNotFoundError:
            self.error(path, f"{text} does not exist", f"create it with the {what} on its first line (chmod 600)")
            return secret_path, None
        except OSError as exc:
            self.warn(path, f"cannot check {text}: {exc.strerror}", "make sure the user gsmgw runs as can read it")
            return secret_path, None
        if info.st_mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWOTH):
            self.warn(path, f"{text} holds a {what} and is readable by others (mode {stat.S_IMODE(info.st_mode):o})",
                      f"chmod 600 {text}")
        try:
            with open(secret_path, encoding="utf-8") as handle:
                secret = handle.readline().strip()
        except PermissionError:
            self.warn(path, f"cannot read {text} as this user", "make sure the user gsmgw runs as can read it")
            return secret_path, None
        except (OSError, UnicodeDecodeError) as exc:
            self.error(path, f"cannot read {text}: {getattr(exc, 'strerror', None) or exc}",
                       f"write the {what} as plain text on its first line")
            return secret_path, None
        if not secret:
            self.error(path, f"{text} is empty", f"write the {what} on its first line")
            return secret_path, None
        return secret_path, secret

    def listen(self, value: Any, path: str, default_port: int) -> tuple[str, int]:
        text = self.string(value, path, f"127.0.0.1:{default_port}")
        if text is None:
            return "127.0.0.1", default_port
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)|(\d+)", text)
        if match is None:
            self.error(path, f"cannot read {text!r} as host:port", f"write for example 127.0.0.1:{default_port} or [::1]:{default_port}")
            return "127.0.0.1", default_port
        if match.group(5):
            host, port = "127.0.0.1", int(match.group(5))
        else:
            host = match.group(1) or match.group(3) or "127.0.0.1"
            port = int(match.group(2) or match.group(4))
        if not 1 <= port <= 65535:
            self.error(path, f"port {port} is outside 1..65535", f"write for example 127.0.0.1:{default_port}")
        return host, port

    def tls(self, value: Any, path: str) -> TlsConfig | None:
        if value is None:
            return None
        data = self.mapping(value, path, ("cert", "key"), required=("cert", "key"))
        cert = self.string(data.get("cert"), _child(path, "cert"), "/etc/gsmgw/tls.crt")
        key = self.string(data.get("key"), _child(path, "key"), "/etc/gsmgw/tls.key")
        for item, item_path in ((cert, _child(path, "cert")), (key, _child(path, "key"))):
            if item is not None and not os.path.exists(item):
                self.error(item_path, f"{item} does not exist", "give the path of an existing PEM file")
        if key is not None and os.path.exists(key):
            mode = os.stat(key).st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                self.warn(_child(path, "key"), f"the TLS key {key} is readable by others", f"chmod 600 {key}")
        if cert is None or key is None:
            return None
        return TlsConfig(Path(cert), Path(key))

    def limits(self, value: Any, path: str, allowed: Sequence[str]) -> Limits:
        data = self.mapping(value, path, allowed)
        return Limits(**{key: self.integer(data.get(key), _child(path, key), None, 1) for key in allowed})

    def number(self, value: Any, path: str, default_country: str | None) -> str | None:
        from gsmgw.sms import AddressError, normalize_number

        text = self.string(value, path, '"+4915112345678"')
        if text is None:
            return None
        try:
            return normalize_number(text, default_country)
        except AddressError as exc:
            self.error(path, str(exc), 'quote numbers: "+4915112345678"')
            return None

    def note_inline_secret(self, path: str) -> None:
        self.inline_secrets.append(path)

    def size(self, value: Any, path: str, default: int, low: int, high: int) -> int:
        """A size in bytes: a number, or "256 KiB", "1 MiB", "500 kB", "1 MB"."""
        if value is None:
            return default
        text = self.raw(path, value).strip() if not isinstance(value, bool) else ""
        match = re.fullmatch(r"(\d+)\s*(B|KiB|KB|kB|K|k|MiB|MB|M|GiB|GB|G)?", text)
        if match is None:
            self.error(path, f"cannot read {text or value!r} as a size", 'write for example "256 KiB" or "1 MiB"')
            return default
        factor = {None: 1, "B": 1, "KiB": 1024, "K": 1024, "k": 1024, "KB": 1000, "kB": 1000,
                  "MiB": 1024 ** 2, "M": 1024 ** 2, "MB": 1000 ** 2, "GiB": 1024 ** 3, "G": 1024 ** 3,
                  "GB": 1000 ** 3}[match.group(2)]
        size = int(match.group(1)) * factor
        if not low <= size <= high:
            self.error(path, f"{text} is outside {low // 1024} KiB..{high // 1024 ** 2} MiB",
                       f"write a size from {low // 1024} KiB to {high // 1024 ** 2} MiB")
            return default
        return size

    def networks(self, value: Any, path: str) -> tuple[str, ...]:
        """A list of networks in CIDR form (a bare address is one host), kept as written."""
        import ipaddress

        found = []
        for position, item in enumerate(self.sequence(value, path, "networks")):
            item_path = f"{path}[{position}]"
            text = self.string(item, item_path, "10.0.5.0/24")
            if text is None:
                continue
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                self.error(item_path, f"{text!r} is not a network ({exc})", "write it like 10.0.5.0/24, 192.0.2.7 or ::1/128")
                continue
            if network.prefixlen == 0:
                self.warn(item_path, f"{text} is every address: anyone who reaches the port may send SMS without a password",
                          "list only the networks of the devices that send mail")
            found.append(text)
        return tuple(found)

    def mail_addresses(self, value: Any, path: str) -> tuple[str, ...]:
        """One address or a list of them (plain addr-specs: ops@example.org)."""
        from gsmgw.email.addresses import is_mail_address

        items = [value] if isinstance(value, str) else self.sequence(value, path, "mail addresses")
        found = []
        for position, item in enumerate(items):
            item_path = path if isinstance(value, str) else f"{path}[{position}]"
            text = self.string(item, item_path, "ops@example.org")
            if text is None:
                continue
            if not is_mail_address(text):
                self.error(item_path, f"{text!r} is not a mail address", "write it like ops@example.org")
                continue
            found.append(text)
        return tuple(found)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{value!r} (true/false)"
    return repr(value)


# --- sections -----------------------------------------------------------------------------------

_TOP_KEYS = (
    "spool", "state", "default_country", "defaults", "modems", "probe_ports", "hooks", "hook_timeout",
    "status_interval", "log_level", "http", "clients", "groups", "webhooks", "smpp", "alertmanager",
    "two_way", "inbound", "web", "optout", "national_languages", "journal", "cluster", "calls", "smtp",
    "email_out", "sending",
)
_MODEM_KEYS = ("name", "port", "imsi", "iccid", "imei", "pin", "pin_file", "baudrate", "limits", "prefixes", "profile",
               "balance", "email_to")
ROLES = ("admin", "operator", "viewer")
_DIGITS = {"imsi": (6, 15), "iccid": (18, 22), "imei": (14, 16)}


def _defaults(check: _Checker, value: Any, top_national: Any = None) -> Defaults:
    """`defaults:`, and the national tables: the top-level `national_languages:` (the documented
    key, as the issue and users write it) or its synonym `defaults.national_languages`, not both."""
    from gsmgw.sms import parse_validity

    data = check.mapping(value, "defaults", ("report", "validity", "max_parts", "national_languages"))
    national_path = "national_languages"
    national = top_national
    if data.get("national_languages") is not None:
        if top_national is not None:
            check.error("defaults.national_languages", "national_languages is set twice: at the top level and under defaults",
                        "keep the top-level national_languages: and remove defaults.national_languages")
        else:
            national_path, national = "defaults.national_languages", data["national_languages"]
    validity_text = Defaults.validity_text
    validity = Defaults.validity
    if data.get("validity") is not None:
        raw = check.raw("defaults.validity", data["validity"])
        try:
            validity = parse_validity(raw)
            validity_text = raw
        except ValueError as exc:
            # The codec's message may already say what to write: that part becomes the fix.
            problem, said, advice = str(exc).partition("; write")
            check.error("defaults.validity", problem,
                        "write" + advice if said else 'write for example "2 days", "12 hours" or a TP-VP 0..255')
    return Defaults(
        report=check.boolean(data.get("report"), "defaults.report", Defaults.report),
        validity=validity,
        validity_text=validity_text,
        max_parts=check.integer(data.get("max_parts"), "defaults.max_parts", Defaults.max_parts, 1, 255),
        national_languages=_national_languages(check, national, national_path),
    )


def _number_prefix(text: str, default_country: str | None) -> str | None:
    """A routing prefix in the E.164 form the destinations it must match have ("+49 17" and, with
    default_country 49, "017" -> "+4917"), read as a rule is; None if it is not a digit prefix."""
    from gsmgw.sms.address import normalize_number_pattern
    from gsmgw.sms.errors import AddressError

    if "*" in text or "?" in text:
        return None
    try:
        prefix = normalize_number_pattern(text.strip() + "*", default_country)[:-1]
    except AddressError:
        return None
    return prefix if _PREFIX.match(prefix) else None


def _national_languages(check: _Checker, value: Any, path: str) -> tuple[str, ...]:
    from gsmgw.sms.national import BY_CODE, valid_codes

    codes: list[str] = []
    for position, item in enumerate(check.sequence(value, path, "language codes")):
        item_path = f"{path}[{position}]"
        code = check.string(item, item_path, "hi")
        if code is None:
            continue
        if code.lower() not in BY_CODE:
            check.error(item_path, f"{code!r} is not a national language of TS 23.038",
                        f"write ISO 639-1 codes from: {valid_codes()}")
        elif code.lower() not in codes:
            codes.append(code.lower())
    return tuple(codes)


def _modem(check: _Checker, value: Any, path: str, default_country: str | None) -> ModemConfig | None:
    data = check.mapping(value, path, _MODEM_KEYS, required=("name",))
    name = check.string(data.get("name"), _child(path, "name"), "gsm1")
    if name is not None and not _NAME.match(name):
        check.error(_child(path, "name"), f"{name!r} cannot be used in file names",
                    "use letters, digits, '-', '_' and '.', starting with a letter or digit (e.g. gsm1)")
        name = None
    bindings = [key for key in ("port", "imsi", "iccid", "imei") if data.get(key) is not None]
    if len(bindings) != 1:
        found = ", ".join(bindings) if bindings else "none"
        check.error(path if not bindings else _child(path, bindings[1]),
                    f"needs exactly one of port, imsi, iccid, imei (found: {found})",
                    "give the port (e.g. port: /dev/gsmgw/gsm1) or one SIM/modem identity, not several")
    values: dict[str, str | None] = {}
    for key in ("port", "imsi", "iccid", "imei"):
        text = check.string(data.get(key), _child(path, key), "/dev/gsmgw/gsm1" if key == "port" else '"262011234567890"')
        if text is not None and key in _DIGITS:
            low, high = _DIGITS[key]
            if not (text.isdigit() and low <= len(text) <= high):
                check.error(_child(path, key), f"{text!r} is not an {key.upper()} ({low}-{high} digits)",
                            f"quote it and check the digits, e.g. {key}: \"{'2' * low}\"; `gsmgw probe` shows it")
                text = None
        values[key] = text
    pin = None
    if data.get("pin") is not None:
        pin = check.string(data.get("pin"), _child(path, "pin"), '"1234"')
        check.note_inline_secret(_child(path, "pin"))
    pin_file = None
    if data.get("pin_file") is not None:
        if data.get("pin") is not None:
            check.error(_child(path, "pin_file"), "both pin and pin_file are given", "keep one of them")
        pin_file, pin = check.secret_file(data.get("pin_file"), _child(path, "pin_file"), "PIN")
    if pin is not None and not (pin.isdigit() and 4 <= len(pin) <= 8):
        check.error(_child(path, "pin_file" if pin_file else "pin"), "a SIM PIN is 4 to 8 digits",
                    'write it quoted, e.g. pin: "1234"')
        pin = None
    prefixes = []
    for position, item in enumerate(check.sequence(data.get("prefixes"), _child(path, "prefixes"), "prefixes")):
        item_path = f"{path}.prefixes[{position}]"
        text = check.string(item, item_path, '"+4917"')
        if text is not None:
            prefix = _number_prefix(text, default_country)
            if prefix is None:
                check.error(item_path, f"{text!r} is not a number prefix", 'write it with + and the country code, e.g. "+4917"')
            else:
                prefixes.append(prefix)
    baudrate = check.integer(data.get("baudrate"), _child(path, "baudrate"), 115200, 1200)
    if baudrate not in BAUDRATES:
        check.warn(_child(path, "baudrate"), f"{baudrate} is not a usual serial speed",
                   f"USB modems ignore it; use one of {', '.join(map(str, BAUDRATES))}")
    from gsmgw.at.profiles import PROFILES  # the dialects the driver knows, by name

    profile = check.choice(data.get("profile"), _child(path, "profile"), tuple(PROFILES), None)
    limits = check.limits(data.get("limits"), _child(path, "limits"), MODEM_LIMITS)
    balance = check.string(data.get("balance"), _child(path, "balance"), '"*100#"')
    if balance is not None and not re.fullmatch(r"[0-9*#+]{2,40}", balance):
        check.error(_child(path, "balance"), f"{balance!r} is not a USSD code",
                    'write the code your operator gives for the balance, quoted, e.g. balance: "*100#"')
        balance = None
    email_to = check.mail_addresses(data.get("email_to"), _child(path, "email_to"))
    if name is None:
        return None
    return ModemConfig(
        name=name, port=values["port"], imsi=values["imsi"], iccid=values["iccid"], imei=values["imei"],
        pin=pin, pin_file=pin_file, baudrate=baudrate or 115200, limits=limits, prefixes=tuple(prefixes),
        profile=profile, balance=balance, email_to=email_to,
    )


def _hooks(check: _Checker, value: Any) -> Hooks:
    data = check.mapping(value, "hooks", ("received", "sent", "failed", "report", "call"))
    found: dict[str, str | None] = {}
    for key in ("received", "sent", "failed", "report", "call"):
        path = f"hooks.{key}"
        program = check.string(data.get(key), path, "/usr/local/bin/on-sms")
        if program is None:
            found[key] = None
            continue
        if not os.path.isabs(program):
            check.error(path, f"{program!r} is not an absolute path",
                        "hooks run without a shell and without PATH; write the full path, e.g. /usr/local/bin/on-sms")
        elif not os.path.exists(program):
            check.warn(path, f"{program} does not exist", "install it or remove the hook")
        elif not os.access(program, os.X_OK):
            check.warn(path, f"{program} is not executable", f"chmod +x {program}")
        found[key] = program
    return Hooks(**found)


def _http(check: _Checker, value: Any) -> HttpConfig | None:
    if value is None:
        return None
    data = check.mapping(
        value, "http", ("listen", "tls", "metrics", "max_connections", "max_connections_per_address", "header_timeout")
    )
    host, port = check.listen(data.get("listen"), "http.listen", 8025) if data.get("listen") is not None else ("127.0.0.1", 8025)
    return HttpConfig(
        host, port, check.tls(data.get("tls"), "http.tls"), check.boolean(data.get("metrics"), "http.metrics", True),
        *_connection_caps(check, data, "http", "header_timeout", 10.0),
    )


def _connection_caps(check: _Checker, data: dict, section: str, timeout_key: str, timeout: float) -> tuple:
    """(max_connections, max_connections_per_address, timeout) of a listener's section."""
    total = check.integer(data.get("max_connections"), f"{section}.max_connections", 1024, 1, 100_000)
    per_address = check.integer(
        data.get("max_connections_per_address"), f"{section}.max_connections_per_address",
        min(128, total or 128), 1, 100_000,
    )
    if total is not None and per_address is not None and per_address > total:
        check.error(f"{section}.max_connections_per_address",
                    f"{per_address} is more than max_connections ({total})",
                    "write at most max_connections, or raise max_connections")
    seconds = check.duration(data.get(timeout_key), f"{section}.{timeout_key}", timeout, 1.0)
    return total, per_address, seconds


def _rule(check: _Checker, value: Any, path: str, groups: Mapping[str, Any], default_country: str | None,
          modem_names: Sequence[str], *, deny: bool) -> str | None:
    """A client's allow/deny rule in the canonical form the registry matches (gsmgw.rules)."""
    from gsmgw.rules import RuleError, group_reference, modem_reference, normalize_rule

    text = check.string(value, path, '"+49*" or "group:oncall"')
    if text is None:
        return None
    try:
        rule = normalize_rule(text, default_country, deny=deny)
    except RuleError as exc:
        check.error(path, exc.message, exc.fix)
        return None
    group = group_reference(rule)
    if group is not None and not _group_ref(check, group, path, groups):
        return None
    modem = modem_reference(rule)
    if modem is not None and modem_names and not any(fnmatch.fnmatchcase(name, modem) for name in modem_names):
        check.warn(path, f"{rule!r} names no configured modem (configured: {', '.join(modem_names)})",
                   "correct the modem name, or use modem:* for every modem")
    return rule


def _group_ref(check: _Checker, group: str, path: str, groups: Mapping[str, Any]) -> bool:
    """Is `group` defined? An error saying what exists when it is not."""
    if group in groups:
        return True
    if group == "*" and (".allow[" in path or ".deny[" in path):
        return True  # a rule: any member of any group (config or console)
    suggestion = difflib.get_close_matches(group, list(groups), n=1, cutoff=0.6)
    hint = f"did you mean group:{suggestion[0]}?" if suggestion else "add it under groups:"
    check.error(path, f"group {group!r} is not defined", hint)
    return False


def _clients(check: _Checker, value: Any, groups: Mapping[str, Any], default_country: str | None,
             modem_names: Sequence[str]) -> tuple[ClientConfig, ...]:
    clients = []
    names: dict[str, str] = {}
    for position, item in enumerate(check.sequence(value, "clients", "clients")):
        path = f"clients[{position}]"
        data = check.mapping(item, path, _CLIENT_KEYS, ("name",))
        name = check.string(data.get("name"), _child(path, "name"), "zabbix")
        if name is not None and name in names:
            check.error(_child(path, "name"), f"client name {name!r} is used twice (also at {names[name]})",
                        "give every client its own name")
        if name is not None:
            names[name] = path
        token = None
        if data.get("token") is not None:
            token = check.string(data.get("token"), _child(path, "token"), "a long random string")
            check.note_inline_secret(_child(path, "token"))
        token_file = None
        if data.get("token_file") is not None:
            if data.get("token") is not None:
                check.error(_child(path, "token_file"), "both token and token_file are given", "keep token_file")
            token_file, token = check.secret_file(data.get("token_file"), _child(path, "token_file"), "token")
        smpp = None
        if data.get("smpp") is not None:
            smpp_path = _child(path, "smpp")
            smpp_data = check.mapping(data.get("smpp"), smpp_path, ("system_id", "password", "password_file"))
            system_id = check.string(smpp_data.get("system_id"), _child(smpp_path, "system_id"), "zabbix") or name or ""
            if len(system_id) > 15:
                check.error(_child(smpp_path, "system_id"), "an SMPP system_id has at most 15 characters (SMPP 3.4 §5.2.1)",
                            "shorten it")
            password = None
            password_file = None
            if smpp_data.get("password") is not None:
                password = check.string(smpp_data.get("password"), _child(smpp_path, "password"), "secret")
                check.note_inline_secret(_child(smpp_path, "password"))
            if smpp_data.get("password_file") is not None:
                if password is not None:
                    check.error(_child(smpp_path, "password_file"), "both password and password_file are given",
                                "keep password_file")
                password_file, password = check.secret_file(
                    smpp_data.get("password_file"), _child(smpp_path, "password_file"), "SMPP password")
            if password is not None and len(password) > 8:
                check.warn(_child(smpp_path, "password"), "SMPP 3.4 passwords have at most 8 characters; clients such as "
                           "smpplib send only the first 8, and gsmgw then accepts those",
                           "use 8 characters or fewer")
            if password is None and password_file is None:
                check.error(smpp_path, "needs password or password_file", "add password_file: /etc/gsmgw/<client>.smpp")
            smpp = ClientSmpp(system_id, password, password_file)
        web = None
        if data.get("web") is not None:
            web = _client_web(check, data.get("web"), _child(path, "web"))
        role = check.choice(data.get("role"), _child(path, "role"), ROLES, "operator") or "operator"
        smtp = _client_smtp(check, data.get("smtp"), _child(path, "smtp"))
        networks = check.networks(data.get("networks"), _child(path, "networks"))
        if token is None and token_file is None and smpp is None and web is None and smtp is None and not networks:
            check.error(path, "has no way to log in",
                        "add token_file: (HTTP), smpp: {system_id, password_file}, web: {password_file} (console), "
                        "smtp: {user, password_file} or networks: (mail)")
        allow = tuple(
            rule for position2, rule_value in enumerate(check.sequence(data.get("allow"), _child(path, "allow"), "rules"))
            if (rule := _rule(check, rule_value, f"{path}.allow[{position2}]", groups, default_country, modem_names,
                              deny=False)) is not None
        )
        deny = tuple(
            rule for position2, rule_value in enumerate(check.sequence(data.get("deny"), _child(path, "deny"), "rules"))
            if (rule := _rule(check, rule_value, f"{path}.deny[{position2}]", groups, default_country, modem_names,
                              deny=True)) is not None
        )
        if not allow:
            check.warn(_child(path, "allow"), "this client may send to nobody (allow is empty)",
                       'add allow: ["+49*"] or allow: ["group:oncall"]')
        limits = check.limits(data.get("limits"), _child(path, "limits"), CLIENT_LIMITS)
        callback_hosts = _callback_hosts(check, data.get("callback_hosts"), _child(path, "callback_hosts"))
        private = check.boolean(data.get("callback_private_addresses"), _child(path, "callback_private_addresses"), False)
        webhook_secret_file, webhook_secret = _secret_pair(check, data, path, "webhook_secret", "webhook secret")
        if callback_hosts and webhook_secret is None and webhook_secret_file is None:
            check.error(_child(path, "webhook_secret_file"),
                        "is required with callback_hosts: the client's callbacks are signed with it, never with its token",
                        "add webhook_secret_file: /etc/gsmgw/<client>.webhook (a long random string, chmod 600) "
                        "and give it to the client's application")
        if webhook_secret is not None and token is not None and webhook_secret == token:
            check.error(_child(path, "webhook_secret"), "is the client's token; a receiver that checks signatures "
                        "would then hold a token that may send SMS", "give the webhook secret its own random value")
        max_parts = check.integer(data.get("max_parts"), _child(path, "max_parts"), None, 1, 255)
        if name is not None:
            clients.append(ClientConfig(name, token, token_file, smpp, allow, deny, limits, callback_hosts, private,
                                        webhook_secret, webhook_secret_file, web=web, role=role, max_parts=max_parts,
                                        smtp=smtp, networks=networks))
    return tuple(clients)


_CLIENT_KEYS = ("name", "token", "token_file", "smpp", "allow", "deny", "limits", "callback_hosts",
                "callback_private_addresses", "webhook_secret", "webhook_secret_file", "web", "role",
                "max_parts", "smtp", "networks")


def _secret_pair(check: _Checker, data: Mapping[str, Any], path: str, key: str, what: str) -> tuple[Path | None, str | None]:
    """`<key>` (inline) or `<key>_file` under `path`: (file, secret); both given is an error."""
    secret = None
    if data.get(key) is not None:
        secret = check.string(data.get(key), _child(path, key), "a long random string")
        check.note_inline_secret(_child(path, key))
    secret_file = None
    if data.get(f"{key}_file") is not None:
        if secret is not None:
            check.error(_child(path, f"{key}_file"), f"both {key} and {key}_file are given", f"keep {key}_file")
        secret_file, secret = check.secret_file(data.get(f"{key}_file"), _child(path, f"{key}_file"), what)
    return secret_file, secret


def _callback_hosts(check: _Checker, value: Any, path: str) -> tuple[str, ...]:
    from gsmgw.callbacks import normalize_host_pattern

    hosts = []
    for position, item in enumerate(check.sequence(value, path, "host names")):
        text = check.string(item, f"{path}[{position}]", '"app.example"')
        if text is None:
            continue
        try:
            hosts.append(normalize_host_pattern(text))
        except ValueError as exc:
            problem, _, fix = str(exc).partition("; ")
            check.error(f"{path}[{position}]", problem, fix)
    return tuple(dict.fromkeys(hosts))


def _client_web(check: _Checker, value: Any, path: str) -> ClientWeb:
    from gsmgw.passwords import PasswordHashError, check_hash

    data = check.mapping(value, path, ("password_file",), required=("password_file",))
    password_file, password_hash = None, None
    if data.get("password_file") is not None:
        password_file, password_hash = check.secret_file(
            data.get("password_file"), _child(path, "password_file"), "password hash")
    if password_hash is not None:
        try:
            check_hash(password_hash)
        except PasswordHashError as exc:
            check.error(_child(path, "password_file"), f"{password_file}: {exc}",
                        f"gsmgw passwd > {password_file}")
            password_hash = None
    return ClientWeb(password_hash, password_file)


def _web(check: _Checker, value: Any) -> WebConfig | None:
    if value is None:
        return None
    data = check.mapping(value, "web", ("enabled",))
    return WebConfig(enabled=check.boolean(data.get("enabled"), "web.enabled", True))


def _keywords(check: _Checker, value: Any, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    words = []
    for position, item in enumerate(check.sequence(value, path, "words")):
        text = check.string(item, f"{path}[{position}]", "STOP")
        if text is not None:
            words.append("".join(text.split()).upper())
    return tuple(dict.fromkeys(words))


def _optout(check: _Checker, value: Any) -> OptOutConfig:
    data = check.mapping(value, "optout", ("keywords", "start_keywords", "confirm", "confirm_start"))
    keywords = _keywords(check, data.get("keywords"), "optout.keywords", DEFAULT_OPTOUT_KEYWORDS)
    start = _keywords(check, data.get("start_keywords"), "optout.start_keywords", DEFAULT_OPTIN_KEYWORDS)
    both = sorted(set(keywords) & set(start))
    if both:
        check.error("optout.start_keywords", f"{', '.join(both)} would both opt out and opt in",
                    "keep each word in one of the two lists")
    return OptOutConfig(
        keywords=keywords, start_keywords=start,
        confirm=check.string(data.get("confirm"), "optout.confirm", '"You will get no more messages. Send START to undo."'),
        confirm_start=check.string(data.get("confirm_start"), "optout.confirm_start", '"Welcome back."'),
    )


def _client_smtp(check: _Checker, value: Any, path: str) -> ClientSmtp | None:
    if value is None:
        return None
    data = check.mapping(value, path, ("user", "password", "password_file", "from"))
    user = check.string(data.get("user"), _child(path, "user"), "nagios")
    password_file, password = _secret_pair(check, data, path, "password", "SMTP password")
    if user is not None and password is None and password_file is None:
        check.error(path, f"the user {user!r} has no password", "add password_file: /etc/gsmgw/<client>.smtp")
    senders = []
    for position, item in enumerate(check.sequence(data.get("from"), _child(path, "from"), "sender addresses")):
        item_path = f"{path}.from[{position}]"
        text = check.string(item, item_path, '"nagios@example.org" or "*@example.org"')
        if text is not None and "@" not in text and "*" not in text:
            check.error(item_path, f"{text!r} is not a sender address or pattern",
                        'write an address ("nagios@example.org") or a pattern with * ("*@example.org")')
        elif text is not None:
            senders.append(text)
    if user is None and password is None and password_file is None and not senders:
        check.error(path, "says neither how to log in nor which senders are this client's",
                    "add user: and password_file: (AUTH), or from: [\"device@example.org\"] for trusted networks")
    return ClientSmtp(user, password, password_file, tuple(senders))


_DOMAIN = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")


def _smtp(check: _Checker, value: Any) -> SmtpConfig | None:
    if value is None:
        return None
    data = check.mapping(value, "smtp", ("listen", "domains", "tls", "max_size", "text", "trusted_networks",
                                         "max_connections", "max_connections_per_address", "timeout"),
                         required=("domains",))
    host, port = check.listen(data.get("listen"), "smtp.listen", 2525) if data.get("listen") is not None else ("127.0.0.1", 2525)
    domains_value = data.get("domains")
    items = [domains_value] if isinstance(domains_value, str) else check.sequence(domains_value, "smtp.domains", "domains")
    domains = []
    for position, item in enumerate(items):
        item_path = "smtp.domains" if isinstance(domains_value, str) else f"smtp.domains[{position}]"
        text = check.string(item, item_path, "sms.example.org")
        if text is None:
            continue
        if not _DOMAIN.match(text.rstrip(".")):
            check.error(item_path, f"{text!r} is not a domain name", "write the domain of the SMS addresses, e.g. sms.example.org")
            continue
        domains.append(text.rstrip(".").lower())
    if isinstance(domains_value, list) and not domains_value:
        check.error("smtp.domains", "lists no domain", "write e.g. domains: [sms.example.org]")
    return SmtpConfig(
        listen_host=host,
        listen_port=port,
        domains=tuple(dict.fromkeys(domains)),
        tls=check.tls(data.get("tls"), "smtp.tls"),
        max_size=check.size(data.get("max_size"), "smtp.max_size", 256 * 1024, 1024, 64 * 1024 * 1024),
        text=check.choice(data.get("text"), "smtp.text", SMTP_TEXT_MODES, "subject+body") or "subject+body",
        trusted_networks=check.networks(data.get("trusted_networks"), "smtp.trusted_networks"),
        **dict(zip(("max_connections", "max_connections_per_address", "timeout"),
                   _connection_caps(check, data, "smtp", "timeout", 60.0))),
    )


def _email_out(check: _Checker, value: Any) -> EmailOutConfig | None:
    if value is None:
        return None
    import email.utils

    from gsmgw.email.addresses import is_mail_address

    data = check.mapping(value, "email_out", ("smarthost", "user", "password", "password_file", "from", "received",
                                              "failed", "report", "tls", "ca_file"), required=("smarthost", "from"))
    host, port = "localhost", 25
    smarthost = check.string(data.get("smarthost"), "email_out.smarthost", "mail.example.org:587")
    if smarthost is not None:
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)|([^:\[\]\s]+)", smarthost)
        if match is None:
            check.error("email_out.smarthost", f"cannot read {smarthost!r} as host:port",
                        "write for example mail.example.org:587 (STARTTLS) or 127.0.0.1:25")
        else:
            host = match.group(1) or match.group(3) or match.group(5)
            port = int(match.group(2) or match.group(4) or 25)
            if not 1 <= port <= 65535:
                check.error("email_out.smarthost", f"port {port} is outside 1..65535", "write for example mail.example.org:587")
    sender = check.string(data.get("from"), "email_out.from", '"SMS gateway <sms@sms.example.org>"') or ""
    if sender:
        _, address = email.utils.parseaddr(sender)
        if not is_mail_address(address):
            check.error("email_out.from", f"{sender!r} has no mail address", 'write e.g. "SMS gateway <sms@sms.example.org>"')
    user = check.string(data.get("user"), "email_out.user", "gsmgw")
    password = None
    password_file = None
    if data.get("password") is not None:
        password = check.string(data.get("password"), "email_out.password", "secret")
        check.note_inline_secret("email_out.password")
    if data.get("password_file") is not None:
        if password is not None:
            check.error("email_out.password_file", "both password and password_file are given", "keep password_file")
        password_file, password = check.secret_file(data.get("password_file"), "email_out.password_file",
                                                    "smarthost password")
    if user is not None and password is None and password_file is None:
        check.error("email_out.user", "has no password", "add password_file: /etc/gsmgw/smarthost.pw")
    if (password is not None or password_file is not None) and user is None:
        check.error("email_out", "a password without a user", "add user: with the smarthost login")
    ca_file = check.string(data.get("ca_file"), "email_out.ca_file", "/etc/ssl/certs/internal-ca.pem")
    if ca_file is not None and not os.path.exists(ca_file):
        check.error("email_out.ca_file", f"{ca_file} does not exist", "give the PEM file of the CA that signed the smarthost's certificate")
    return EmailOutConfig(
        smarthost_host=host,
        smarthost_port=port,
        sender=sender,
        user=user,
        password=password,
        password_file=password_file,
        received=check.mail_addresses(data.get("received"), "email_out.received"),
        failed=check.mail_addresses(data.get("failed"), "email_out.failed"),
        report=check.boolean(data.get("report"), "email_out.report", False),
        tls=check.choice(data.get("tls"), "email_out.tls", SMARTHOST_TLS, "auto") or "auto",
        ca_file=Path(ca_file) if ca_file else None,
    )


def _check_email(check: _Checker, config: Config) -> None:
    """What the email keys mean together (EMAIL.md)."""
    mail_clients = [client for client in config.clients if client.smtp is not None or client.networks]
    if mail_clients and config.smtp is None:
        check.warn("clients", f"{mail_clients[0].name} has smtp: or networks:, but there is no smtp: listener",
                   "add smtp: {listen: 127.0.0.1:2525, domains: [sms.example.org]}")
    smtp = config.smtp
    if smtp is not None:
        if not any(client.smtp is not None or client.networks for client in config.clients):
            check.warn("smtp", "no client may send mail: none has smtp: or networks:",
                       "give a client smtp: {user, password_file} or networks: [10.0.5.0/24]")
        loopback = smtp.listen_host in ("127.0.0.1", "::1", "localhost")
        if smtp.tls is None and not loopback and any(c.smtp is not None and c.smtp.user for c in config.clients):
            check.warn("smtp.tls", "AUTH is offered only under TLS or on loopback, and smtp.listen is not loopback",
                       "add tls: {cert, key} so that clients on other machines can log in")
    out = config.email_out
    if out is not None:
        if smtp is None:
            check.warn("email_out", "without smtp: a mailed SMS has no Reply-To, so replies cannot become SMS",
                       "add smtp: with the domains: of the SMS addresses")
        if not (out.received or out.failed or out.report or any(modem.email_to for modem in config.modems)):
            check.warn("email_out", "nothing is mailed: received, failed and modems[].email_to are empty and report is off",
                       "add received: [office@example.org]")
    elif any(modem.email_to for modem in config.modems):
        check.error("modems", "a modem has email_to: but email_out: (the smarthost) is not configured",
                    "add email_out: {smarthost: mail.example.org:587, from: sms@sms.example.org}")


def _groups(check: _Checker, value: Any, default_country: str | None) -> Mapping[str, tuple[str, ...]]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        check.error("groups", f"must be a mapping of group names to lists of numbers, not {_kind(value)}",
                    'write e.g. oncall: ["+4915112345678"]')
        return MappingProxyType({})
    groups = {}
    for name, members in value.items():
        path = f"groups.{name}"
        if not _NAME.match(str(name)):
            check.error(path, f"{name!r} is not a usable group name", "use letters, digits, '-', '_' and '.'")
        numbers = []
        for position, member in enumerate(check.sequence(members, path, "numbers")):
            number = check.number(member, f"{path}[{position}]", default_country)
            if number is not None:
                numbers.append(number)
        if not numbers and isinstance(members, list) and not members:
            check.warn(path, "the group is empty", "add numbers or remove it")
        groups[str(name)] = tuple(dict.fromkeys(numbers))
    return MappingProxyType(groups)


def _url(check: _Checker, value: Any, path: str) -> str | None:
    text = check.string(value, path, "https://app.example/sms/in")
    if text is not None and not re.match(r"https?://[^\s/]+", text):
        check.error(path, f"{text!r} is not an http:// or https:// URL", "write for example https://app.example/sms/in")
        return None
    return text


def _webhooks(check: _Checker, value: Any) -> WebhooksConfig | None:
    if value is None:
        return None
    data = check.mapping(value, "webhooks", ("received", "report", "call", "secret", "secret_file"))
    secret_file, secret = _secret_pair(check, data, "webhooks", "secret", "webhook secret")
    config = WebhooksConfig(_url(check, data.get("received"), "webhooks.received"),
                            _url(check, data.get("report"), "webhooks.report"), secret,
                            _url(check, data.get("call"), "webhooks.call"))
    if any(data.get(key) is not None for key in ("received", "report", "call")) and secret is None and secret_file is None:
        check.error("webhooks.secret_file", "is required: webhooks are signed with a secret of their own, "
                    "so that the receiver can tell them from forgeries",
                    "add secret_file: /etc/gsmgw/webhook.secret (a long random string on its first line, "
                    "chmod 600) and give the same secret to the receiving application")
    return config


def _smpp(check: _Checker, value: Any) -> SmppConfig | None:
    if value is None:
        return None
    data = check.mapping(
        value, "smpp", ("listen", "tls", "window", "max_connections", "max_connections_per_address", "bind_timeout")
    )
    host, port = check.listen(data.get("listen"), "smpp.listen", 2775) if data.get("listen") is not None else ("127.0.0.1", 2775)
    return SmppConfig(host, port, check.tls(data.get("tls"), "smpp.tls"),
                      check.integer(data.get("window"), "smpp.window", 10, 1, 1000),
                      *_connection_caps(check, data, "smpp", "bind_timeout", 30.0))


def _recipient(check: _Checker, value: Any, path: str, groups: Mapping[str, Any], default_country: str | None) -> str | None:
    """A number (-> E.164) or `group:NAME` (-> its canonical spelling), as the doors read them."""
    from gsmgw.rules import GROUP_PREFIX, group_reference

    text = check.string(value, path, '"+4915112345678" or "group:oncall"')
    if text is None:
        return None
    group = group_reference(text)
    if group is not None:
        return GROUP_PREFIX + group if _group_ref(check, group, path, groups) else None
    return check.number(text, path, default_country)


def _alertmanager(check: _Checker, value: Any, groups: Mapping[str, Any], default_country: str | None) -> AlertmanagerConfig | None:
    if value is None:
        return None
    data = check.mapping(value, "alertmanager", ("receivers",), required=("receivers",))
    receivers_value = data.get("receivers") or {}
    if not isinstance(receivers_value, dict):
        check.error("alertmanager.receivers", "must be a mapping of receiver names", "write e.g. oncall: {to: [group:oncall]}")
        return AlertmanagerConfig()
    receivers = {}
    for name, entry in receivers_value.items():
        path = f"alertmanager.receivers.{name}"
        if not _NAME.match(str(name)):
            check.error(path, f"{name!r} cannot be used in a URL path", "use letters, digits, '-', '_' and '.'")
        receiver = check.mapping(entry, path, ("to", "window", "max_per_hour", "max_parts"), required=("to",))
        to_value = receiver.get("to")
        to_items = [to_value] if isinstance(to_value, str) else check.sequence(to_value, f"{path}.to", "numbers or groups")
        to = tuple(
            item for position, raw in enumerate(to_items)
            if (item := _recipient(check, raw, f"{path}.to" if isinstance(to_value, str) else f"{path}.to[{position}]",
                                   groups, default_country)) is not None
        )
        receivers[str(name)] = AlertReceiver(
            to=to,
            window=check.duration(receiver.get("window"), f"{path}.window", 120.0),
            max_per_hour=check.integer(receiver.get("max_per_hour"), f"{path}.max_per_hour", 10, 1),
            max_parts=check.integer(receiver.get("max_parts"), f"{path}.max_parts", None, 1, 255),
        )
    return AlertmanagerConfig(MappingProxyType(receivers))


def _two_way(check: _Checker, value: Any, default_country: str | None) -> TwoWayConfig:
    data = check.mapping(value, "two_way", ("enabled", "allow_from", "secret", "secret_file", "commands", "timeout"))
    enabled = check.boolean(data.get("enabled"), "two_way.enabled", False)
    allow_from = tuple(
        number for position, raw in enumerate(check.sequence(data.get("allow_from"), "two_way.allow_from", "numbers"))
        if (number := check.number(raw, f"two_way.allow_from[{position}]", default_country)) is not None
    )
    commands: dict[str, tuple[str, ...]] = {}
    commands_value = data.get("commands")
    if commands_value is not None and not isinstance(commands_value, dict):
        check.error("two_way.commands", "must be a mapping of words to argument lists",
                    "write e.g. uptime: [/usr/bin/uptime]")
    elif commands_value:
        for word, argv_value in commands_value.items():
            path = f"two_way.commands.{word}"
            if not re.fullmatch(r"[A-Za-z0-9_-]+", str(word)):
                check.error(path, f"{word!r} is not one word", "use letters, digits, '-' and '_'")
                continue
            argv_list = check.sequence(argv_value, path, "program and arguments")
            argv = [str(item) for item in argv_list if isinstance(item, (str, int, float)) and not isinstance(item, bool)]
            if not argv or len(argv) != len(argv_list):
                check.error(path, "must be a non-empty list of texts: the program and its arguments",
                            "write e.g. [/usr/bin/systemctl, restart, nginx]")
                continue
            if not os.path.isabs(argv[0]):
                check.error(f"{path}[0]", f"{argv[0]!r} is not an absolute path",
                            "commands run without a shell and without PATH; write the full path")
            commands[str(word).lower()] = tuple(argv)
    if enabled and not allow_from:
        check.error("two_way.allow_from", "two_way is enabled but nobody may use it",
                    'list the numbers allowed to send commands, e.g. allow_from: ["+4915112345678"]')
    return TwoWayConfig(enabled, allow_from, MappingProxyType(commands),
                        check.duration(data.get("timeout"), "two_way.timeout", 30.0, 1.0),
                        _two_way_secret(check, data))


def _calls(check: _Checker, value: Any, two_way: TwoWayConfig) -> CallsConfig:
    data = check.mapping(value, "calls", ("hangup", "ack"))
    calls = CallsConfig(
        hangup=check.boolean(data.get("hangup"), "calls.hangup", CallsConfig.hangup),
        ack=check.boolean(data.get("ack"), "calls.ack", CallsConfig.ack),
    )
    if calls.ack and not two_way.enabled:
        check.error("calls.ack", "acknowledges alerts for the numbers of two_way.allow_from, but two_way is off",
                    'enable two-way (two_way: {enabled: true, allow_from: ["+4915112345678"]}) or remove calls.ack')
    elif calls.ack and two_way.secret is not None:
        check.warn("calls.ack", "a call carries no secret word: a caller whose number (which can be forged) is "
                   "in two_way.allow_from acknowledges without two_way.secret",
                   "keep calls.ack only if that is acceptable; acknowledging by SMS needs the secret word")
    return calls


TWO_WAY_SECRET_MIN = 8


def _two_way_secret(check: _Checker, data: Mapping[str, Any]) -> str | None:
    """`two_way.secret` / `secret_file`: one word of at least TWO_WAY_SECRET_MIN characters."""
    secret_file, secret = _secret_pair(check, data, "two_way", "secret", "two-way secret word")
    if secret is None:
        return None
    path = "two_way.secret_file" if secret_file is not None else "two_way.secret"
    # The value itself never goes into a message: a config error may be shown to others.
    if len(secret.split()) != 1:
        check.error(path, "the secret word contains spaces; it must be one word, sent first in every request",
                    "write a single word without spaces")
        return None
    if len(secret) < TWO_WAY_SECRET_MIN:
        check.error(path, f"the secret word has {len(secret)} characters; that is easy to guess",
                    f"use at least {TWO_WAY_SECRET_MIN} letters and digits")
        return None
    return secret


def _inbound(check: _Checker, value: Any) -> InboundConfig:
    data = check.mapping(value, "inbound", ("reassembly_timeout", "sweep_interval", "report_window"))
    default = InboundConfig()
    return InboundConfig(
        reassembly_timeout=check.duration(data.get("reassembly_timeout"), "inbound.reassembly_timeout",
                                          default.reassembly_timeout, 60.0),
        sweep_interval=check.duration(data.get("sweep_interval"), "inbound.sweep_interval", default.sweep_interval, 1.0),
        report_window=check.duration(data.get("report_window"), "inbound.report_window", default.report_window, 60.0),
    )


def _sending(check: _Checker, value: Any) -> SendingConfig:
    data = check.mapping(value, "sending", ("retry_first", "retry_max", "attempts", "rest_after", "rest_for"))
    default = SendingConfig()
    retry_first = check.duration(data.get("retry_first"), "sending.retry_first", default.retry_first, 1.0)
    retry_max = check.duration(data.get("retry_max"), "sending.retry_max", default.retry_max, 1.0)
    if retry_max < retry_first:
        check.error("sending.retry_max", f"is shorter than sending.retry_first ({retry_first:g} s)",
                    "make retry_max at least as long as retry_first")
    return SendingConfig(
        retry_first=retry_first,
        retry_max=retry_max,
        attempts=check.integer(data.get("attempts"), "sending.attempts", default.attempts, 1, 100),
        rest_after=check.integer(data.get("rest_after"), "sending.rest_after", default.rest_after, 1, 1000),
        rest_for=check.duration(data.get("rest_for"), "sending.rest_for", default.rest_for, 0.0),
    )


MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
JOURNAL_SCHEMES = ("postgresql", "postgres")
DEFAULT_LEASE = 30.0


def _journal(check: _Checker, value: Any, cluster: Any) -> tuple[str | None, ClusterConfig | None]:
    """`journal:` (a PostgreSQL URI) and `cluster: {member, lease}`, which only a journal: uses."""
    if value is None:
        if cluster is not None:
            check.error("cluster", "cluster: needs journal: (the PostgreSQL database the members share)",
                        "add journal: postgresql://gsmgw@db.example/gsmgw, or remove cluster: for a single host")
        return None, None
    dsn = check.string(value, "journal", "postgresql://gsmgw@db1,db2/gsmgw?target_session_attrs=read-write")
    if dsn is None:
        return None, None
    try:
        parts = urllib.parse.urlsplit(dsn)
        password = parts.password
    except ValueError as error:
        check.error("journal", f"is not a URI ({error})", "write postgresql://USER@HOST[,HOST2]/DATABASE")
        return None, None
    if parts.scheme not in JOURNAL_SCHEMES or not parts.netloc or parts.path in ("", "/"):
        check.error("journal", "is not a PostgreSQL URI with a host and a database",
                    "write postgresql://USER@HOST[,HOST2]/DATABASE (SQLite needs no journal: line)")
        return None, None
    if password is not None:
        check.note_inline_secret("journal")
        check.warn("journal", "holds a password, which then shows in the config",
                   "put it in ~/.pgpass of the gsmgw user (or a passfile= parameter) and remove it from the URI")
    data = check.mapping(cluster, "cluster", ("member", "lease"))
    member = data.get("member")
    if member is None:
        member = socket.gethostname()
        if not MEMBER_NAME.fullmatch(member):
            check.error("cluster.member", f"the host name {member!r} cannot be a member name",
                        "set cluster.member: to letters, digits, '.', '_' or '-' (up to 63), unique per host")
            return None, None
    else:
        member = check.raw("cluster.member", member)
        if not MEMBER_NAME.fullmatch(member):
            check.error("cluster.member", f"{member!r} is not a member name",
                        "write letters, digits, '.', '_' or '-' (up to 63, no '/'), unique per host, e.g. gw-a")
            return None, None
    lease = check.duration(data.get("lease"), "cluster.lease", DEFAULT_LEASE, 2.0)
    return dsn, ClusterConfig(member=member, lease=lease)


def _build(check: _Checker, data: Any, source: Path | None, modems_required: bool = True) -> Config | None:
    data = check.mapping(data, "", _TOP_KEYS)
    spool = check.string(data.get("spool"), "spool", "/var/spool/gsmgw") or DEFAULT_SPOOL
    state = check.string(data.get("state"), "state", "/var/lib/gsmgw") or DEFAULT_STATE
    for key, value in (("spool", spool), ("state", state)):
        if not os.path.isabs(value):
            check.warn(key, f"{value!r} is relative, so it depends on the directory gsmgw starts in",
                       "write an absolute path")
    default_country = None
    if data.get("default_country") is not None:
        default_country = check.raw("default_country", data["default_country"]).strip().lstrip("+")
        if not (default_country.isdigit() and 1 <= len(default_country) <= 3 and not default_country.startswith("0")):
            check.error("default_country", f"{default_country!r} is not a country calling code",
                        'write 1 to 3 digits without + or 00, quoted, e.g. default_country: "49"')
            default_country = None
    defaults = _defaults(check, data.get("defaults"), data.get("national_languages"))

    modems = []
    modem_items = check.sequence(data.get("modems"), "modems", "modems")
    if not modem_items and (data.get("modems") is None or data.get("modems") == []):
        # A config with only listeners and clients is whole for simulated modems (the README's
        # demo-api.yaml); real modems it must name.
        simulate = f"gsmgw run --simulate 2 -c {check.filename}"
        if modems_required:
            check.error("modems", "no modem is configured",
                        f"add modems: with at least one `- name: gsm1` and its port, or run it on simulated "
                        f"modems: {simulate}")
        else:
            check.warn("modems", f"no modem is configured, so only simulated modems can run this config ({simulate})",
                       "add modems: with at least one `- name: gsm1` and its port to run it on real modems")
    names: dict[str, int] = {}
    for position, item in enumerate(modem_items):
        modem = _modem(check, item, f"modems[{position}]", default_country)
        if modem is None:
            continue
        if modem.name in names:
            check.error(f"modems[{position}].name", f"modem name {modem.name!r} is also used by modems[{names[modem.name]}]",
                        "give every modem its own name: it names its files and its status")
        names[modem.name] = position
        modems.append(modem)

    probe_ports = tuple(
        pattern for position, raw in enumerate(check.sequence(data.get("probe_ports"), "probe_ports", "port patterns"))
        if (pattern := check.string(raw, f"probe_ports[{position}]", '"/dev/ttyUSB*"')) is not None
    ) if data.get("probe_ports") is not None else DEFAULT_PROBE_PORTS

    groups = _groups(check, data.get("groups"), default_country)
    journal, cluster = _journal(check, data.get("journal"), data.get("cluster"))
    config = Config(
        spool=Path(spool),
        state=Path(state),
        default_country=default_country,
        defaults=defaults,
        modems=tuple(modems),
        probe_ports=probe_ports,
        hooks=_hooks(check, data.get("hooks")),
        hook_timeout=check.duration(data.get("hook_timeout"), "hook_timeout", 30.0, 1.0),
        status_interval=check.duration(data.get("status_interval"), "status_interval", 30.0, 1.0),
        log_level=check.choice(data.get("log_level"), "log_level", LOG_LEVELS, "info") or "info",
        http=_http(check, data.get("http")),
        clients=_clients(check, data.get("clients"), groups, default_country, tuple(names)),
        groups=groups,
        webhooks=_webhooks(check, data.get("webhooks")),
        smpp=_smpp(check, data.get("smpp")),
        alertmanager=_alertmanager(check, data.get("alertmanager"), groups, default_country),
        two_way=(two_way := _two_way(check, data.get("two_way"), default_country)),
        calls=_calls(check, data.get("calls"), two_way),
        inbound=_inbound(check, data.get("inbound")),
        sending=_sending(check, data.get("sending")),
        web=_web(check, data.get("web")),
        optout=_optout(check, data.get("optout")),
        journal=journal,
        cluster=cluster,
        smtp=_smtp(check, data.get("smtp")),
        email_out=_email_out(check, data.get("email_out")),
        source=source,
    )
    if config.clients and config.http is None and config.smpp is None and config.smtp is None:
        check.warn("clients", "clients are configured but neither http:, smpp: nor smtp: listens",
                   "add http: {listen: 127.0.0.1:8025}, smpp: {listen: 127.0.0.1:2775} or smtp: {domains: [...]}")
    _check_email(check, config)
    if config.webhooks is not None and config.webhooks.secret is not None:
        for position, client in enumerate(config.clients):
            if client.token is not None and client.token == config.webhooks.secret:
                check.error("webhooks.secret", f"is the token of client {client.name!r}; a receiver that checks "
                            "signatures would then hold a token that may send SMS",
                            "give the webhook secret its own random value")
    if config.web is not None and config.web.enabled and config.http is None:
        check.error("web", "the web console is part of the HTTP server, which is not configured",
                    "add http: {listen: 127.0.0.1:8025}")
    if config.alertmanager is not None and config.http is None:
        check.error("alertmanager", "the Alertmanager receiver is part of the HTTP server, which is not configured",
                    "add http: {listen: 127.0.0.1:8025}")
    return config


# --- entry points -------------------------------------------------------------------------------


def check_text(text: str, *, filename: str = "config", read_secrets: bool = True,
               mode: int | None = None, source: Path | None = None, modems_required: bool = True) -> CheckResult:
    """Check config text; `mode` is the file's permission bits (for the inline-secret warning)."""
    index: dict[str, _Node] = {}
    structural: list[Issue] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        return CheckResult(None, [Issue("", mark.line + 1 if mark else None, message,
                                        "check the indentation (spaces, not tabs) and quote values containing ': ' or '#'")], [])
    if root is not None:
        _index_nodes(root, "", index, structural)
    if data is None:
        return CheckResult(None, [Issue("", 1, "the config is empty",
                                        "start from config.example.yaml; at least spool: and modems: are needed")], [])
    check = _Checker(index, filename, read_secrets)
    check.errors.extend(structural)
    config = _build(check, data, source, modems_required)
    if check.inline_secrets and mode is not None and mode & (stat.S_IRGRP | stat.S_IROTH):
        for path in check.inline_secrets:
            check.warn(path, f"a secret is written in the config, and the config is readable by others "
                             f"(mode {stat.S_IMODE(mode):o})",
                       f"chmod 600 {filename}, or move it into a file (pin_file:, token_file:, password_file:)")
    check.errors.sort(key=lambda issue: (issue.line or 0))
    check.warnings.sort(key=lambda issue: (issue.line or 0))
    return CheckResult(config if not check.errors else None, check.errors, check.warnings)


def check_config(path: str | os.PathLike, *, read_secrets: bool = True, modems_required: bool = True) -> CheckResult:
    """Every error and warning of the config file at `path`. ConfigUnreadable if it cannot be read.

    `modems_required=False` is for `gsmgw check-config` and `gsmgw run --simulate N -c FILE`,
    where the simulated modems replace the config's, so a config with only http/smpp/clients is
    complete: a missing modems: is then a warning that says so."""
    filename = os.fspath(path)
    try:
        with open(filename, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read()
    except OSError as exc:
        fix = ("give another file with -c FILE or $GSMGW_CONFIG, or start from config.example.yaml"
               if isinstance(exc, FileNotFoundError) else "run as a user who may read it")
        raise ConfigUnreadable([Issue("", None, f"cannot read the config {filename}: {exc.strerror}", fix)],
                               filename=filename) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return CheckResult(None, [Issue("", line, "the config is not UTF-8 text", "save it as UTF-8")], [])
    return check_text(text, filename=filename, read_secrets=read_secrets, mode=mode, source=Path(filename),
                      modems_required=modems_required)


def load_config(path: str | os.PathLike, *, read_secrets: bool = True, modems_required: bool = True) -> Config:
    """The config at `path`, or ConfigError listing every problem (warnings are in .warnings)."""
    result = check_config(path, read_secrets=read_secrets, modems_required=modems_required)
    if result.config is None:
        raise ConfigError(result.errors, result.warnings, filename=os.fspath(path))
    return result.config


SIMULATION_ADMIN = "admin"


def with_simulated_console(config: Config) -> Config:
    """The config of `gsmgw run --simulate`, with the web console (WEB.md "Starting it"): the HTTP
    listener on 127.0.0.1:8025 (another free port when that one is taken) unless `http:` says otherwise, the console unless `web: {enabled:
    false}`, and, when no client is an admin, a client `admin` (role admin, sees and may reach
    everything) for the one-time sign-in link the run prints. It has no password or token: only
    the link signs it in."""
    import dataclasses

    web = config.web if config.web is not None else WebConfig(enabled=True)
    clients = config.clients
    if web.enabled and not any(client.role == "admin" for client in clients):
        name = SIMULATION_ADMIN
        while any(client.name == name for client in clients):
            name += "_"
        clients = clients + (ClientConfig(name=name, allow=("*", "modem:*"), role="admin"),)
    http = config.http or HttpConfig(any_port_if_taken=True)
    return dataclasses.replace(config, http=http, web=web, clients=clients)


def console_admin(config: Config) -> str | None:
    """The client the one-time sign-in link of `run --simulate` signs in: the first admin."""
    return next((client.name for client in config.clients if client.role == "admin"), None)


def simulation_config(
    spool: str | os.PathLike,
    ports: Sequence[str],
    *,
    state: str | os.PathLike | None = None,
    names: Callable[[int], str] = lambda position: f"modem{position}",
) -> Config:
    """The config of `gsmgw run --simulate N --spool DIR`: one modem per simulated port.

    Modems are named modem0, modem1, ... like the simulator's symlinks; the state directory is
    SPOOL/.state unless given (a hidden directory, so it is not mistaken for a spool directory).
    """
    spool_path = Path(spool)
    modems = tuple(ModemConfig(name=names(position), port=str(port)) for position, port in enumerate(ports))
    return Config(
        spool=spool_path,
        state=Path(state) if state is not None else spool_path / ".state",
        modems=modems,
        probe_ports=tuple(str(port) for port in ports),
    )
