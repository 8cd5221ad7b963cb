"""Who is signed in to the console: sessions, CSRF tokens, sign-in throttling, one-time links.

Pure state with the time passed in (no I/O), so every rule here is tested without a server:
- a session is a random token in an HttpOnly, SameSite=Strict cookie (Secure under TLS) and ends
  after IDLE_TIMEOUT without a request; sessions live in memory, so a restart of the gateway
  signs everybody out;
- each session has its own CSRF token, which every form POST must carry (`csrf_matches`);
- five wrong passwords in a row for one user name make that name wait before the next attempt,
  1 s, then 2 s, 4 s ... up to MAX_DELAY, whatever address the attempts come from; a right
  password ends the wait;
- a one-time sign-in link (`gsmgw run --simulate` prints one) works once, for LINK_LIFETIME.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

SESSION_COOKIE = "gsmgw_session"
LOGIN_COOKIE = "gsmgw_login"  # the sign-in form's own CSRF token (double submit)
IDLE_TIMEOUT = 8 * 3600.0
LINK_LIFETIME = 600.0
FREE_FAILURES = 5
FIRST_DELAY = 1.0
MAX_DELAY = 900.0
MAX_TRACKED_NAMES = 10_000
MAX_SESSIONS = 10_000
MAX_STASH = 4  # uploads kept per session while their owner decides about bad rows


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    last_seen: float
    via: str  # "password" | "link"
    stash: OrderedDict = field(default_factory=OrderedDict)

    def keep(self, key: str, value) -> None:
        """Keep a value (an uploaded CSV) for a later request of this session; oldest dropped."""
        self.stash[key] = value
        while len(self.stash) > MAX_STASH:
            self.stash.popitem(last=False)


EXPIRED = "expired"


class Sessions:
    def __init__(self, idle_timeout: float = IDLE_TIMEOUT):
        self.idle_timeout = idle_timeout
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, via: str, now: float) -> Session:
        self.sweep(now)
        session = Session(new_token(), user, new_token(), now, now, via)
        self._sessions[session.token] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None, now: float) -> Session | str | None:
        """The session (its idle time restarts), EXPIRED, or None when there is no such token."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return EXPIRED  # a cookie we do not know: ended, timed out, or the gateway restarted
        if now - session.last_seen > self.idle_timeout:
            del self._sessions[token]
            return EXPIRED
        session.last_seen = now
        self._sessions.move_to_end(token)
        return session

    def peek(self, token: str | None, now: float) -> bool:
        """Is the session still alive? (Does not count as activity: an open page's live updates
        do not keep a session from timing out.)"""
        session = self._sessions.get(token or "")
        return session is not None and now - session.last_seen <= self.idle_timeout

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def end_user(self, user: str) -> None:
        for token in [t for t, s in self._sessions.items() if s.user == user]:
            del self._sessions[token]

    def sweep(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > self.idle_timeout]:
            del self._sessions[token]

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class Throttle:
    """Wrong passwords per user name (not per address: an attacker has many addresses)."""

    def __init__(self, free: int = FREE_FAILURES, first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY):
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._names: OrderedDict[str, _Failures] = OrderedDict()

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** (failures - self.free))

    def wait(self, user: str, now: float) -> float:
        """Seconds before `user` may try again (0.0: now)."""
        entry = self._names.get(user.lower())
        if entry is None:
            return 0.0
        return max(0.0, entry.last + self.delay(entry.count) - now)

    def failed(self, user: str, now: float) -> None:
        key = user.lower()
        entry = self._names.pop(key, None) or _Failures()
        entry.count += 1
        entry.last = now
        self._names[key] = entry
        while len(self._names) > MAX_TRACKED_NAMES:
            self._names.popitem(last=False)

    def succeeded(self, user: str) -> None:
        self._names.pop(user.lower(), None)


class OneTimeLinks:
    def __init__(self, lifetime: float = LINK_LIFETIME):
        self.lifetime = lifetime
        self._links: dict[str, tuple[str, float]] = {}

    def issue(self, user: str, now: float) -> str:
        token = new_token()
        self._links = {t: v for t, v in self._links.items() if now - v[1] <= self.lifetime}
        self._links[token] = (user, now)
        return token

    def redeem(self, token: str | None, now: float) -> str | None:
        """The user the link signs in, once; None when unknown, used or older than its lifetime."""
        if not token:
            return None
        for known in list(self._links):
            if hmac.compare_digest(known.encode(), token.encode("utf-8", "surrogatepass")):
                user, issued = self._links.pop(known)
                return user if now - issued <= self.lifetime else None
        return None
