"""Limits on what one admin API call may ask of the server (docs/security.md, "Limits").

A scripted response of twenty million tokens, a stall of a day, or a million rules would let
one caller of `/_outcrop/faults` or `/_outcrop/responses` take the server down for everyone, so
the admin API refuses them with a 400 naming the limit and its `[admin]` key. Rules from the
configuration file are the operator's own and are not limited. `prompt` patterns are compiled
with RE2 (linear-time matching, `outcrop.security_settings.compile_prompt_pattern`) whatever
their source.
"""

from __future__ import annotations

from outcrop.security_settings import AdminSettings, RuleMatchSettings

MAX_GLOB_CHARS = 1024
"""`operation`, `model` and `principal` globs: characters each (they are matched per call)."""


def body_problem(size: int, limits: AdminSettings) -> str | None:
    if size > limits.max_body_bytes:
        return (
            f"The request body is {size} bytes, more than the {limits.max_body_bytes} "
            "allowed ([admin] max_body_bytes)."
        )
    return None


def count_problem(rules: int, limits: AdminSettings) -> str | None:
    if rules >= limits.max_rules:
        return (
            f"{rules} rules are in force already, the most allowed ([admin] max_rules); "
            "remove some first."
        )
    return None


def rule_problem(settings: RuleMatchSettings, limits: AdminSettings) -> str | None:
    """The first limit `settings` exceeds, as a message naming its key; None when within."""
    fields = settings.model_dump()
    numbers = (
        ("token_count", fields.get("token_count"), limits.max_token_count, "max_token_count"),
        ("delay_ms", fields.get("delay_ms"), limits.max_delay_s * 1000, "max_delay_s"),
        (
            "first_token_delay_ms",
            fields.get("first_token_delay_ms"),
            limits.max_delay_s * 1000,
            "max_delay_s",
        ),
        ("latency_ms", fields.get("latency_ms"), limits.max_delay_s * 1000, "max_delay_s"),
        ("stall_seconds", fields.get("stall_seconds"), limits.max_delay_s, "max_delay_s"),
        ("after_events", fields.get("after_events"), limits.max_token_count, "max_token_count"),
    )
    for name, value, bound, key in numbers:
        if value is not None and value > bound:
            return f"{name}: {value} is more than {bound:g}, the most allowed ([admin] {key})."
    for name in ("text", "reasoning", "message", "prompt"):
        value = fields.get(name)
        if isinstance(value, str) and len(value) > limits.max_text_chars:
            return (
                f"{name}: {len(value)} characters, more than {limits.max_text_chars} "
                "([admin] max_text_chars)."
            )
    for name in ("operation", "model", "principal"):
        value = fields.get(name)
        if isinstance(value, str) and len(value) > MAX_GLOB_CHARS:
            return f"{name}: a glob of at most {MAX_GLOB_CHARS} characters."
    calls = fields.get("tool_calls") or ()
    if len(calls) > limits.max_tool_calls:
        return (
            f"tool_calls: {len(calls)} calls, more than {limits.max_tool_calls} "
            "([admin] max_tool_calls)."
        )
    return None
