"""Stateful sessions: which instance of which variant serves a session, until when.

SageMaker routes every request carrying a session ID to the instance that created the
session. The model creates sessions (answering `SessionId: NEW_SESSION` with the header
`X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<ISO time>`) and closes them (answering with
`X-Amzn-SageMaker-Closed-Session-Id: <id>`); this table records what the model said. Pure
state with an injected clock. The runtime uses its async methods (`find`, `record`, `forget`,
`listed`), which shared/sessions.py implements in Redis for a fleet of replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from outcrop.sagemaker.endpoints import Destination
from outcrop.wire.errors import SageMakerValidationError

NEW_SESSION = "NEW_SESSION"
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    route: Destination
    instance: int
    expires_at: float
    """Wall-clock seconds since the epoch."""


def format_new_session(session_id: str, expires_at: float) -> str:
    """The New-Session-Id header value: `<id>; Expires=<ISO 8601 UTC>` (LMI's format)."""
    stamp = datetime.fromtimestamp(expires_at, tz=UTC).strftime(EXPIRES_FORMAT)
    return f"{session_id}; Expires={stamp}"


def parse_new_session(value: str, default_expiry: float) -> tuple[str, float]:
    """The session ID and expiry a model announced (expiry `default_expiry` if unreadable)."""
    session_id, _, rest = value.partition(";")
    expires = default_expiry
    key, _, stamp = rest.strip().partition("=")
    if key.strip().lower() == "expires" and stamp:
        text = stamp.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            expires = parsed.timestamp()
    return session_id.strip(), expires


def invalid_session(session_id: str) -> SageMakerValidationError:
    # Unverified wording: what real SageMaker answers for unknown or expired session IDs is
    # not public; it is a ValidationError in this emulation.
    return SageMakerValidationError(
        f"Invalid session ID {session_id}: no open session with this ID exists on the endpoint "
        "(it was never opened, was closed, or has expired)."
    )


class SessionTable:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def now(self) -> float:
        return self._clock()

    def open(
        self, session_id: str, route: Destination, instance: int, expires_at: float
    ) -> Session:
        session = Session(session_id, route, instance, expires_at)
        self._sessions[session_id] = session
        return session

    def lookup(self, endpoint: str, session_id: str) -> Session:
        """The open session, or the ValidationError for unknown, closed and expired IDs."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None or session.route.endpoint.name != endpoint:
            raise invalid_session(session_id)
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def open_sessions(self, endpoint: str) -> list[Session]:
        self._expire()
        return [s for s in self._sessions.values() if s.route.endpoint.name == endpoint]

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[session_id]

    # -- what the runtime calls (async, so that a shared table can answer over the network) --

    async def find(self, endpoint: str, session_id: str) -> Session:
        return self.lookup(endpoint, session_id)

    async def record(
        self, session_id: str, route: Destination, instance: int, expires_at: float
    ) -> Session:
        return self.open(session_id, route, instance, expires_at)

    async def forget(self, session_id: str) -> None:
        self.close(session_id)

    async def listed(self, endpoint: str) -> list[Session]:
        return self.open_sessions(endpoint)
