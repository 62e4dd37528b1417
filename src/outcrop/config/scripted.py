"""A scripted response as the admin API (`/_outcrop/responses`) receives it: which calls it
answers (`config.security.RuleMatchSettings`), how often, and what it says. The gateway queues
them (gateway/scripted_responses.py); the invocation answers with them
(`invocation.engines.scripted_engine`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from outcrop.config.security import RuleMatchSettings


class ToolCallSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)
    """The call's arguments (what Converse reports as `toolUse.input`)."""


class ScriptedResponseSettings(RuleMatchSettings):
    """One queued answer: which calls it answers, how often, and what it says."""

    times: int | None = Field(1, ge=1)
    """How many matching calls it answers (default the next one; null: every one)."""
    text: str | None = None
    reasoning: str | None = None
    """Reasoning text, emitted when the request asks for reasoning."""
    tool_calls: tuple[ToolCallSettings, ...] | None = None
    token_count: int | None = Field(None, ge=1)
    """Repeat `text` as this many tokens (for long answers)."""
    delay_ms: float = Field(0.0, ge=0)
    first_token_delay_ms: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _says_something(self) -> ScriptedResponseSettings:
        if self.text is None and not self.tool_calls:
            raise ValueError("a scripted response needs text or tool_calls")
        return self
