"""The `[engines.NAME.pool]` table: routing, health and failure settings of an engine pool
(an `openai` engine with `upstreams`, a `llamacpp` engine with `replicas` > 1 or
`upstreams`; docs/engine-pools.md).

    [engines.default]
    type = "openai"
    upstreams = ["http://gpu-1:8000/v1", "http://gpu-2:8000/v1"]

    [engines.default.pool]
    health_interval_s = 5       # active health checks of every upstream
    health_timeout_s = 2        # an unanswered check is a failed one
    max_attempts = 3            # upstreams tried for a request failing before its first token
    failure_threshold = 3       # consecutive failures that open an upstream's circuit
    cooldown_s = 10             # open circuit: seconds before one half-open trial request
    affinity_prefix_chars = 2048  # conversation start hashed for prefix affinity; 0: off
    load_factor = 1.25          # bounded load of affinity routing (times the average)
    affinity_min_load = 4       # ... but an upstream always takes this many for affinity
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    health_interval_s: float = Field(5.0, gt=0)
    health_timeout_s: float = Field(2.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=16)
    failure_threshold: int = Field(3, ge=1)
    cooldown_s: float = Field(10.0, ge=0)
    affinity_prefix_chars: int = Field(2048, ge=0)
    load_factor: float = Field(1.25, ge=1.0)
    affinity_min_load: int = Field(4, ge=1)
