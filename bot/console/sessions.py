"""Who is logged in to the console: sessions held in the process (a restart logs everyone out,
nothing to steal from disk), each with its own CSRF token, and a throttle on wrong passwords.

The cookie carries only a random token. A login replaces the token (no fixation); an idle
session ends after ``idle``. Sessions before login exist only to carry the login form's CSRF
token, and only the newest ``MAX_ANONYMOUS`` of them are kept.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from memory.models import utcnow

MAX_ANONYMOUS = 1000
FAILURES_ALLOWED = 5
FAILURE_WINDOW = timedelta(minutes=1)


@dataclass
class Session:
    """One browser's session. ``csrf`` goes in every form the page renders."""

    token: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    operator: bool = False
    last_seen: datetime = field(default_factory=utcnow)
    seen_seq: int = 0
    """The last console answer this session was shown (see :class:`bot.console.channel`)."""

    def csrf_ok(self, given: str | None) -> bool:
        """Whether ``given`` is this session's CSRF token (constant time)."""
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """See the module docstring.

    Args:
        password: the ``[console] password``.
        idle: how long an unused session lasts.
        clock: now (tests pin it).
    """

    def __init__(self, password: str, *, idle: timedelta = timedelta(hours=12),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._password = password.encode()
        self._idle = idle
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._failures: dict[str, deque[datetime]] = {}

    def start(self) -> Session:
        """A new session, not logged in."""
        anonymous = [t for t, s in self._sessions.items() if not s.operator]
        for token in anonymous[:max(0, len(anonymous) - MAX_ANONYMOUS + 1)]:
            del self._sessions[token]
        session = Session(token=secrets.token_urlsafe(32), last_seen=self._clock())
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (touched), or None."""
        session = self._sessions.get(token or "")
        now = self._clock()
        if session is None:
            return None
        if now - session.last_seen > self._idle:
            del self._sessions[session.token]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session.token)
        return session

    def throttled(self, client: str) -> bool:
        """Whether ``client`` gave too many wrong passwords lately."""
        now = self._clock()
        recent = self._failures.get(client, deque())
        while recent and now - recent[0] > FAILURE_WINDOW:
            recent.popleft()
        return len(recent) >= FAILURES_ALLOWED

    def password_ok(self, given: str) -> bool:
        """Whether ``given`` is the console password (constant time)."""
        return hmac.compare_digest(given.encode(), self._password)

    def log_in(self, session: Session, password: str, client: str) -> Session | None:
        """The new, logged-in session replacing ``session`` if ``password`` is right; None
        (and one more failure counted for ``client``) if not."""
        if not self.password_ok(password):
            self._failures.setdefault(client, deque()).append(self._clock())
            return None
        self._sessions.pop(session.token, None)
        fresh = self.start()
        fresh.operator = True
        return fresh

    def end(self, session: Session) -> None:
        """Log ``session`` out."""
        self._sessions.pop(session.token, None)
