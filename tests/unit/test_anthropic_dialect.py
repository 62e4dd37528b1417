"""The Claude dialect: body validation with Bedrock's messages, responses and stream objects."""

from __future__ import annotations

from typing import Any

import pytest

from outcrop.dialects import anthropic
from outcrop.types import Finish, StopReason, Usage
from outcrop.wire.errors import ValidationException


def body(**extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_model_and_stream_are_rejected_verbatim() -> None:
    with pytest.raises(ValidationException) as info:
        anthropic.parse(body(stream=True, model="claude"))
    assert info.value.message == (
        'Malformed input request: #: subject must not be valid against schema {"required":'
        '["messages"]}#: extraneous key [stream] is not permitted#: extraneous key [model] is '
        "not permitted, please reformat your input and try again."
    )


def test_missing_required_keys() -> None:
    with pytest.raises(ValidationException) as info:
        anthropic.parse({"messages": [{"role": "user", "content": "x"}]})
    assert "#: required key [anthropic_version] not found" in info.value.message
    assert "#: required key [max_tokens] not found" in info.value.message


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"temperature": 1.5}, "#/temperature: 1.5 is not less or equal to 1"),
        ({"max_tokens": "5"}, "#/max_tokens: expected type: Integer, found: String"),
        ({"top_k": -1}, "#/top_k: -1 is not greater or equal to 0"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "#/messages/0/role: robot is not"),
        ({"stop_sequences": [1]}, "#/stop_sequences/0: expected type: String, found: Integer"),
    ],
)
def test_type_and_range_violations(extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationException) as info:
        anthropic.parse(body(**extra))
    assert fragment in info.value.message
    assert info.value.message.endswith(", please reformat your input and try again.")


def test_any_anthropic_version_string_is_accepted() -> None:
    anthropic.parse(body(anthropic_version="2026-10-21"))


def test_messages_translate_with_system_blocks_and_merged_turns() -> None:
    parsed = anthropic.parse(
        body(
            system=[{"type": "text", "text": "Be brief."}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "a"}]},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
            ],
            temperature=0.2,
            stop_sequences=["END"],
        )
    )
    req = parsed.request
    assert [(m.role, m.text) for m in req.messages] == [
        ("system", "Be brief."),
        ("user", "a\n\nb"),
        ("assistant", "c"),
    ]
    assert req.sampling.max_tokens == 10
    assert req.sampling.temperature == 0.2
    assert req.sampling.stop_sequences == ("END",)


def test_legacy_completion_body() -> None:
    parsed = anthropic.parse({"prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5})
    assert parsed.legacy
    # The Human/Assistant turns reach the engine as a conversation (dialects/prompts.py).
    assert parsed.request.raw_prompt is None
    assert [(m.role, m.text) for m in parsed.request.messages] == [("user", "hi")]
    finish = Finish(StopReason.MAX_TOKENS, 3, 5)
    assert anthropic.complete(parsed, "claude-2.1", " Hello", finish) == {
        "type": "completion",
        "completion": " Hello",
        "stop_reason": "max_tokens",
        "stop": None,
    }


def test_message_response_shape() -> None:
    parsed = anthropic.parse(body())
    finish = Finish(StopReason.STOP_SEQUENCE, 12, 4, "END")
    out = anthropic.complete(parsed, "claude-3-haiku-20240307", "Hello", finish, "msg_bdrk_01x")
    assert out == {
        "id": "msg_bdrk_01x",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
        "usage": {"input_tokens": 12, "output_tokens": 4},
    }


def test_message_ids_look_like_bedrocks() -> None:
    mid = anthropic.message_id()
    assert mid.startswith("msg_bdrk_01") and len(mid) == len("msg_bdrk_") + 24


def test_stream_sequence() -> None:
    stream = anthropic.MessagesStream("claude-3-haiku-20240307", 14, "msg_bdrk_01y")
    objs = [*stream.start(), *stream.text("Hel"), *stream.text("lo")]
    objs += stream.finish(Finish(StopReason.END_TURN, 14, 2), Usage(14, 2, 50, 10))
    assert [o["type"] for o in objs] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert objs[0]["message"]["usage"] == {"input_tokens": 14, "output_tokens": 1}
    assert objs[5] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2},
    }
    assert objs[6]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 14,
        "outputTokenCount": 2,
        "invocationLatency": 50,
        "firstByteLatency": 10,
    }


def test_empty_answer_still_opens_and_closes_a_block() -> None:
    stream = anthropic.MessagesStream("m", 1)
    objs = [*stream.start(), *stream.finish(Finish(StopReason.END_TURN, 1, 0), Usage(1, 0, 1, 1))]
    assert [o["type"] for o in objs][:3] == [
        "message_start",
        "content_block_start",
        "content_block_stop",
    ]
