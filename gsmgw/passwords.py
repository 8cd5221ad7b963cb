"""Password hashes for console logins (`gsmgw passwd`, `clients[].web.password_file`).

A hash is one line that carries its own parameters, so they can be raised later without
invalidating the hashes already written:

    $scrypt$ln=15,r=8,p=1$<salt, base64>$<key, base64>

scrypt (RFC 7914, from hashlib) is memory-hard: n = 2**ln blocks of 128*r bytes, so the default
(ln=15, r=8) needs 32 MiB and about 0.1 s per check. `verify` accepts any parameters within
MAX_LN/MAX_R/MAX_P (a file with huge ones must not stall the server) and compares in constant
time. Pure apart from `os.urandom` for the salt.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re

SCHEME = "scrypt"
DEFAULT_LN = 15
DEFAULT_R = 8
DEFAULT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MAX_LN, MAX_R, MAX_P = 20, 32, 16
MIN_LN = 8

_FORMAT = re.compile(r"\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)\Z")


class PasswordHashError(ValueError):
    """A stored hash that cannot be used; the message says how to make a good one."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, ln: int, r: int, p: int) -> bytes:
    n = 1 << ln
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
        maxmem=128 * r * n * 2 + 1024 * 1024, dklen=KEY_BYTES,
    )


def hash_password(password: str, *, ln: int = DEFAULT_LN, r: int = DEFAULT_R, p: int = DEFAULT_P,
                  salt: bytes | None = None) -> str:
    """The line `gsmgw passwd` prints for `password`."""
    if not MIN_LN <= ln <= MAX_LN or not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise PasswordHashError(f"scrypt parameters out of range: ln {MIN_LN}..{MAX_LN}, r 1..{MAX_R}, p 1..{MAX_P}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    return f"${SCHEME}$ln={ln},r={r},p={p}${_b64(salt)}${_b64(_derive(password, salt, ln, r, p))}"


def check_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(ln, r, p, salt, key) of a stored hash, or PasswordHashError saying what is wrong."""
    match = _FORMAT.match(stored.strip())
    if match is None:
        raise PasswordHashError(
            "this is not a password hash made by `gsmgw passwd` (it must start with $scrypt$); "
            "run `gsmgw passwd NAME` and put its output line into the file")
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if not MIN_LN <= ln <= MAX_LN or not 1 <= r <= MAX_R or not 1 <= p <= MAX_P:
        raise PasswordHashError(
            f"the hash's scrypt parameters (ln={ln}, r={r}, p={p}) are outside ln {MIN_LN}..{MAX_LN}, "
            f"r 1..{MAX_R}, p 1..{MAX_P}; make a new one with `gsmgw passwd`")
    try:
        salt, key = _unb64(match.group(4)), _unb64(match.group(5))
    except ValueError:
        raise PasswordHashError("the hash's salt or key is not base64; make a new one with `gsmgw passwd`") from None
    return ln, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Does `password` match `stored`? False (never an exception) for a malformed hash."""
    try:
        ln, r, p, salt, key = check_hash(stored)
    except PasswordHashError:
        return False
    return hmac.compare_digest(_derive(password, salt, ln, r, p), key)


# A fixed hash checked when the user name is unknown, so that an unknown name costs the same
# time as a wrong password (the answer time must not tell which names exist).
@functools.cache
def _dummy() -> str:
    return hash_password("", salt=b"\0" * SALT_BYTES)


def verify_dummy(password: str) -> bool:
    verify_password(password, _dummy())
    return False
