"""Bedrock prompt caching in the dialects: where a request's cache point is, and the usage
fields built from what the engine read from and wrote to its prompt cache (shapes from real
Bedrock responses, tests/fixtures/recordings and docs/prompt-caching.md)."""

from __future__ import annotations

from typing import Any

from outcrop.dialects import anthropic, converse
from outcrop.types import Finish, StopReason


def converse_body(**extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": [{"text": "a long document"}]},
            {"role": "assistant", "content": [{"text": "ok"}]},
            {"role": "user", "content": [{"text": "question"}]},
        ],
        **extra,
    }


def test_converse_cache_point_position() -> None:
    assert converse.parse_request(converse_body()).request.cache_point is None
    system = converse_body(system=[{"text": "rules"}, {"cachePoint": {"type": "default"}}])
    assert converse.parse_request(system).request.cache_point == 0
    body = converse_body()
    body["messages"][0]["content"].append({"cachePoint": {"type": "default"}})
    assert converse.parse_request(body).request.cache_point == 1
    body["messages"][2]["content"].append({"cachePoint": {"type": "default"}})
    assert converse.parse_request(body).request.cache_point == 3  # the last one counts
    tools = converse_body(
        toolConfig={
            "tools": [
                {"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}},
                {"cachePoint": {"type": "default"}},
            ]
        }
    )
    parsed = converse.parse_request(tools).request
    assert parsed.cache_point == 0 and [t.name for t in parsed.tools] == ["t"]


def finish(read: int | None, write: int | None) -> Finish:
    return Finish(
        StopReason.END_TURN,
        input_tokens=1522 - 5,
        output_tokens=5,
        cache_read_input_tokens=read,
        cache_write_input_tokens=write,
    )


def test_converse_usage_without_a_cache_point_is_unchanged() -> None:
    assert converse.usage(finish(None, None)) == {
        "inputTokens": 1517,
        "outputTokens": 5,
        "totalTokens": 1522,
    }


def test_converse_usage_with_a_cache_write_matches_bedrocks_shape() -> None:
    # As recorded from Bedrock (claude-sonnet-4-5 through Converse), serverToolUsage aside.
    assert converse.usage(finish(0, 1503)) == {
        "cacheDetails": [{"inputTokens": 1503, "ttl": "5m"}],
        "cacheReadInputTokenCount": 0,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokenCount": 1503,
        "cacheWriteInputTokens": 1503,
        "inputTokens": 14,
        "outputTokens": 5,
        "totalTokens": 1522,
    }
    read = converse.usage(finish(1503, 0))
    assert "cacheDetails" not in read
    assert (read["cacheReadInputTokens"], read["inputTokens"], read["totalTokens"]) == (
        1503,
        14,
        1522,
    )


def claude_body(**extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        **extra,
    }


def test_claude_cache_control_position_and_usage() -> None:
    assert anthropic.parse(claude_body()).request.cache_point is None
    system = [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]
    assert anthropic.parse(claude_body(system=system)).request.cache_point == 0
    marked = claude_body()
    marked["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    assert anthropic.parse(marked).request.cache_point == 1
    assert anthropic.usage(finish(None, None)) == {"input_tokens": 1517, "output_tokens": 5}
    assert anthropic.usage(finish(0, 1513)) == {
        "input_tokens": 4,
        "cache_creation_input_tokens": 1513,
        "cache_read_input_tokens": 0,
        "output_tokens": 5,
    }
