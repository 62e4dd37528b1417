"""`[shared]`: the Redis server replicas share live state through (quotas, fault and scripted
rules, SageMaker sessions), its client's bounds, and what each feature does while Redis is
unreachable (docs/deploy.md, docs/limits.md). Without `url`, all of it stays in the process."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SharedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, pattern=r"^(redis|rediss|unix)://")
    """redis://[user:password@]host:port/db; none: every replica keeps its own state."""
    key_prefix: str = Field("outcrop", min_length=1, max_length=64)
    """Prefix of every key Outcrop writes (several fleets can share one Redis)."""
    connect_timeout_s: float = Field(1.0, gt=0, le=60)
    """Longest wait to open a connection to Redis."""
    socket_timeout_s: float = Field(0.5, gt=0, le=60)
    """Longest wait for one Redis reply (and for a free pooled connection)."""
    max_connections: int = Field(64, ge=1, le=10_000)
    """Connections pooled per replica."""
    retry_after_s: float = Field(1.0, ge=0, le=300)
    """After a failed Redis call, calls skip Redis (the feature's failure mode) this long
    before trying again, so that a Redis outage costs no timeout per request."""
    lease_s: float = Field(15.0, ge=1, le=3600)
    """A concurrency slot's lease: the replica holding it renews it every third of this; a
    dead replica's slots lapse within this time."""
    quotas_on_failure: Literal["open", "closed"] = "open"
    """Redis unreachable: `open` admits calls unthrottled; `closed` refuses every call that a
    quota matches with ServiceUnavailableException."""
    rules_refresh_s: float = Field(0.1, ge=0, le=60)
    """A replica re-reads the rules' version at most this often (0: on every call); a change
    through the admin API answers only this long after it is written, so that the next call
    on any replica sees it."""
    rules_on_failure: Literal["last_known", "none"] = "last_known"
    """Redis unreachable: `last_known` applies the rules as last read from Redis, `times`
    counted by this replica alone; `none` applies no fault or scripted rule."""
    session_ttl_s: float | None = Field(None, gt=0)
    """How long an idle SageMaker session lives in Redis (default: the endpoint's)."""
