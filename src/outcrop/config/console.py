"""The `[console]` section: the web console at `/_outcrop/console` (docs/console.md).

[console]
enabled = true            # omitted: on when [server] host is a loopback address
max_calls = 1000          # calls kept in the ring of recent calls (oldest dropped first)
max_call_bytes = 262144   # per call: request body plus response bytes (events) kept
max_feed_clients = 16     # live feeds (server-sent events) open at once
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    """Serve the console and record calls; default: on when bound to a loopback host."""
    max_calls: int = Field(1000, ge=1, le=1_000_000)
    """Recent calls kept in memory (a ring: the oldest is dropped first)."""
    max_call_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Bytes of one call kept: its request body, then its response (body or event frames);
    beyond it the rest is not kept and the call is marked truncated."""
    max_total_bytes: int = Field(128 * 1024 * 1024, ge=1024 * 1024)
    """Bytes of every kept call together (bodies and events); beyond it the oldest calls are
    dropped, whatever `max_calls` allows."""
    max_feed_clients: int = Field(16, ge=1, le=1024)
    """Live feeds (`/_outcrop/console/api/feed`) open at once; one more gets a 429."""
