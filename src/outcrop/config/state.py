"""The `[state]` section of the configuration file: where durable state lives.

    [state]
    # Omitted: SQLite in <state directory>/outcrop-state.sqlite3 (the state directory is
    # [guardrails] state_dir, else $OUTCROP_STATE_DIR, $XDG_STATE_HOME/outcrop or
    # ~/.local/state/outcrop). "sqlite://" keeps it in memory; "sqlite:///path" names a file
    # (relative; sqlite:////path is absolute).
    url = "postgresql://outcrop:secret@db.internal:5432/outcrop"
    pool_min_size = 1            # PostgreSQL connections kept open per replica
    pool_max_size = 10           # at most this many per replica
    pool_timeout_s = 5           # wait this long for a free connection, then fail the call
    connect_timeout_s = 5        # a new connection must be up within this
    operation_timeout_s = 10     # one store operation (SQLite: waiting for the write lock)
    job_lease_s = 30             # an async inference job whose replica stopped is run again
                                 # by another (or the next start) once this has passed
    health_timeout_s = 1         # GET /_outcrop/health waits this long for the store's answer

docs/state.md describes the store; docs/limits.md lists these limits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMES = ("postgresql://", "postgres://", "sqlite://")


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    pool_min_size: int = Field(1, ge=0, le=1000)
    pool_max_size: int = Field(10, ge=1, le=1000)
    pool_timeout_s: float = Field(5.0, gt=0, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0, le=3600)
    operation_timeout_s: float = Field(10.0, gt=0, le=3600)
    job_lease_s: float = Field(30.0, ge=0.3, le=86_400)
    health_timeout_s: float = Field(1.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(SCHEMES):
            raise ValueError("must start with postgresql://, postgres:// or sqlite://")
        if (
            value is not None
            and value.startswith("sqlite://")
            and value != "sqlite://"
            and (not value.startswith("sqlite:///") or value == "sqlite:///")
        ):
            raise ValueError("a SQLite URL is sqlite:// (in memory) or sqlite:///PATH")
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> StateSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self

    @property
    def is_postgresql(self) -> bool:
        return self.url is not None and self.url.startswith(("postgresql://", "postgres://"))
