"""The Redis connection replicas share live state through, with bounded waits and a health record.

One pooled `redis.asyncio` client per replica (`[shared]`: connection and reply timeouts, pool
size; a call waits at most `socket_timeout_s` for a pooled connection too, and redis-py's own
retries are off, so one failed call costs one timeout). Every feature goes through `run`, which
turns any Redis failure into `SharedUnavailable` and remembers it: for `retry_after_s` after a
failure, calls fail at once without touching the network, so an outage costs no timeout per
request; the next call after that tries again. The features decide what `SharedUnavailable`
means (`[shared] quotas_on_failure`, `rules_on_failure`); `/_outcrop/health` and `/metrics`
report the state and the failures per feature.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from outcrop.config.shared import SharedSettings

log = logging.getLogger("outcrop.shared")


def default_replica_id() -> str:
    """HOSTNAME-PID: unique among replicas on one machine and across machines."""
    return f"{socket.gethostname()}-{os.getpid()}"


class SharedUnavailable(Exception):
    """Redis did not answer (or failed less than `retry_after_s` ago)."""


def redacted(url: str) -> str:
    """The URL without its password (for health and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, parts.query, ""))


class SharedState:
    """The Redis client, the key naming and the record of its health."""

    def __init__(
        self,
        settings: SharedSettings,
        replica_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.url is not None
        self.settings = settings
        self.replica_id = replica_id
        self.clock = clock
        pool = BlockingConnectionPool.from_url(
            settings.url,
            max_connections=settings.max_connections,
            timeout=settings.socket_timeout_s,
            socket_timeout=settings.socket_timeout_s,
            socket_connect_timeout=settings.connect_timeout_s,
            retry=AsyncRetry(NoBackoff(), 0),
        )
        self.redis = Redis(connection_pool=pool, retry=AsyncRetry(NoBackoff(), 0))
        self._bound_s = settings.connect_timeout_s + 2 * settings.socket_timeout_s
        """The longest any one call may take, whatever redis-py does inside."""
        self._down_until = 0.0
        self.up: bool | None = None
        """None until the first call; then whether the last call succeeded."""
        self.last_error: str | None = None
        self.failures: Counter[str] = Counter()
        """Failed (or skipped while down) calls, by feature."""

    def key(self, *parts: str) -> str:
        return ":".join((self.settings.key_prefix, *parts))

    def script(self, text: str) -> AsyncScript:
        return self.redis.register_script(text)

    async def run[T](self, feature: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` against Redis, bounded; SharedUnavailable when Redis fails or is known down."""
        if self.up is False and self.clock() < self._down_until:
            self.failures[feature] += 1
            raise SharedUnavailable(self.last_error or "Redis is unreachable")
        try:
            async with asyncio.timeout(self._bound_s):
                result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(feature, exc)
            raise SharedUnavailable(self.last_error) from exc
        if self.up is not True:
            if self.up is False:
                log.warning("shared state: Redis is reachable again")
            self.up = True
        return result

    def _failed(self, feature: str, exc: BaseException) -> None:
        self.failures[feature] += 1
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.up is not False:
            log.warning(
                "shared state: Redis failed (%s); %s", self.last_error, self.failure_modes()
            )
        self.up = False
        self._down_until = self.clock() + self.settings.retry_after_s

    async def check(self) -> None:
        """Ping Redis (health), so that `up` says how it is now."""
        with contextlib.suppress(SharedUnavailable):
            await self.run("health", self.redis.ping)

    def failure_modes(self) -> str:
        s = self.settings
        return f"quotas fail {s.quotas_on_failure}, rules use {s.rules_on_failure}"

    def health(self) -> dict[str, Any]:
        s = self.settings
        assert s.url is not None
        return {
            "backend": "redis",
            "url": redacted(s.url),
            "up": self.up,
            "last_error": self.last_error,
            "failures": dict(self.failures),
            "on_failure": {
                "quotas": s.quotas_on_failure,
                "rules": s.rules_on_failure,
                "sessions": "closed",
            },
        }

    async def close(self) -> None:
        await self.redis.aclose()
