"""What the network listeners (HTTP, SMTP) share when they start: the TLS context of `*.tls` and
the words for a port they cannot listen on. Both raise errors that say what to fix."""

from __future__ import annotations

import errno
import ssl
from typing import Any


def server_tls(tls: Any, key: str, error: type[Exception]) -> ssl.SSLContext | None:
    """The server-side TLS context of a `tls: {cert, key}` config (None without one); `error`
    (the listener's start error) names `key` and what to check when the files cannot be used."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except (OSError, ssl.SSLError) as exc:
        raise error(
            f"{key}: cannot load the certificate {tls.cert} with the key {tls.key}: {exc}; check both "
            "paths, that they are PEM files that belong together, and that gsmgw may read them"
        ) from None
    return context


def cannot_listen(key: str, host: str, port: int, exc: OSError, *, low_port_fix: str) -> str:
    """Why `key` cannot listen on host:port, and what to do about it."""
    hint = f"another program (or another gsmgw) uses it; stop it or set {key} to another port"
    if exc.errno == errno.EACCES:
        hint = f"ports below 1024 need privileges; {low_port_fix}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "this machine has no such address; use 127.0.0.1 or one of its own addresses"
    return f"{key}: cannot listen on {host}:{port}: {exc.strerror}; {hint}"
