"""The family dialects without a server: raw-prompt splitting, Bedrock's schema messages, which
dialect serves which catalog model, and the stream encoders' object sequences."""

from __future__ import annotations

from typing import Any

import pytest

from outcrop.catalog.foundation import foundation_models
from outcrop.dialects import anthropic, prompts
from outcrop.dialects.ai21 import JambaDialect
from outcrop.dialects.base import CompletionBuilder, InvokeCall, StreamEncoder, stream_events
from outcrop.dialects.cohere import CommandDialect, CommandRDialect
from outcrop.dialects.deepseek import DeepSeekDialect
from outcrop.dialects.meta import LlamaDialect, LlamaStream
from outcrop.dialects.mistral import MistralChatDialect, MistralTextDialect
from outcrop.dialects.nova import NovaDialect, NovaStream
from outcrop.dialects.openai import GptOssDialect, GptOssStream
from outcrop.dialects.registry import dialect_for
from outcrop.dialects.schema import Field, check_object, malformed, titan_malformed
from outcrop.dialects.titan import CHUNK_TOKENS, TitanDialect, TitanStream
from outcrop.dialects.writer import PalmyraDialect
from outcrop.types import (
    Finish,
    GenerationEvent,
    StopReason,
    TokenEvent,
    ToolCallEvent,
    Usage,
)

USAGE = Usage(5, 7, 100, 10)
CALL = InvokeCall("req-1", "model", False)


def run(encoder: StreamEncoder, events: list[GenerationEvent]) -> list[dict[str, Any]]:
    out = list(encoder.start())
    for event in events:
        if isinstance(event, Finish):
            out += encoder.finish(event, USAGE)
        else:
            out += stream_events(encoder, event)
    return out


# -- raw prompts -------------------------------------------------------------------------------


def test_llama3_prompt_becomes_turns_with_prefill() -> None:
    prompt = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nSure, "
    )
    turns = prompts.split_chat_prompt(prompt)
    assert turns is not None
    assert [(t.role, t.text) for t in turns] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Sure, "),
    ]


def test_inst_and_deepseek_and_human_assistant_prompts() -> None:
    inst = prompts.split_chat_prompt(
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1</s><s>[INST] Q2 [/INST]"
    )
    assert inst is not None
    assert [(t.role, t.text) for t in inst] == [
        ("system", "S"),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2"),
    ]
    deepseek = prompts.split_chat_prompt(
        "<｜begin▁of▁sentence｜><｜User｜>Why?<｜Assistant｜><think>\n"
    )
    assert deepseek is not None and [(t.role, t.text) for t in deepseek] == [("user", "Why?")]
    legacy = prompts.split_human_assistant(
        "Sys\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye\n\nAssistant:"
    )
    assert legacy is not None
    assert [t.role for t in legacy] == ["system", "user", "assistant", "user"]


def test_plain_prompts_stay_raw() -> None:
    request = LlamaDialect().parse({"prompt": "Once upon a time"}, CALL).request
    assert request.raw_prompt == "Once upon a time"
    assert prompts.split_chat_prompt("[INST] unbalanced") is None
    # Markup with no user turn is not a conversation either.
    assert prompts.split_chat_prompt("<|start_header_id|>system<|end_header_id|>\n\nx") is None


# -- schema messages ---------------------------------------------------------------------------


def test_violations_carry_pointers_except_in_titans_form() -> None:
    fields = {"a": Field("string", required=True, min_length=1), "b": Field("array", max_items=1)}
    two = check_object({"a": "", "b": [1, 2]}, fields)
    assert malformed(two).message == (
        "Malformed input request: #/a: expected minLength: 1, actual: 0#/b: expected maximum "
        "item count: 1, found: 2, please reformat your input and try again."
    )
    assert titan_malformed(two).message == (
        "Malformed input request: 2 schema violations found, please reformat your input and try "
        "again."
    )
    one = check_object({"x": 1}, {})
    assert malformed(one).message.startswith("Malformed input request: #: extraneous key [x]")
    assert titan_malformed(one).message == (
        "Malformed input request: extraneous key [x] is not permitted, please reformat your "
        "input and try again."
    )
    assert check_object("nope", fields, "#/x") == ["#/x: expected type: JSONObject, found: String"]


# -- every catalog text model has its family's dialect -----------------------------------------

EXPECTED = {
    "anthropic.": anthropic.AnthropicDialect,
    "amazon.nova-": NovaDialect,
    "amazon.titan-text-": TitanDialect,
    "amazon.titan-tg1-": TitanDialect,
    "meta.": LlamaDialect,
    "mistral.mistral-large-2407": MistralChatDialect,
    "mistral.pixtral-": MistralChatDialect,
    "mistral.": MistralTextDialect,
    "cohere.command-r": CommandRDialect,
    "cohere.command-": CommandDialect,
    "ai21.": JambaDialect,
    "deepseek.": DeepSeekDialect,
    "openai.": GptOssDialect,
    "qwen.": GptOssDialect,
    "google.gemma-": GptOssDialect,
    "nvidia.nemotron-": GptOssDialect,
    "minimax.": GptOssDialect,
    "moonshot.": GptOssDialect,
    "zai.": GptOssDialect,
    "writer.palmyra-": PalmyraDialect,
}
# Text models whose InvokeModel body the reference does not describe.
UNDESCRIBED = ("twelvelabs.pegasus-",)


def test_every_catalog_text_model_resolves_to_its_family_dialect() -> None:
    text_models = [
        m
        for m in foundation_models().values()
        if m.output_modalities == ("TEXT",) and "SPEECH" not in m.input_modalities
    ]
    assert len(text_models) > 50
    for model in text_models:
        dialect = dialect_for(model.model_id)
        if model.model_id.startswith(UNDESCRIBED):
            assert dialect is None
            continue
        family = next(
            p for p in sorted(EXPECTED, key=len, reverse=True) if model.model_id.startswith(p)
        )
        assert isinstance(dialect, EXPECTED[family]), model.model_id
    # Speech-to-speech models speak only the bidirectional stream.
    assert dialect_for("amazon.nova-sonic-v1:0") is None


# -- stream encoders ---------------------------------------------------------------------------


def test_claude_blocks_for_thinking_text_and_two_tool_calls() -> None:
    stream = anthropic.MessagesStream("m", 5, thinking=True)
    objects = run(
        stream,
        [
            TokenEvent("hmm", kind="reasoning"),
            TokenEvent("Ok"),
            ToolCallEvent("a", "f"),
            ToolCallEvent("a", "f", "{}", 1),
            ToolCallEvent("b", "g", "{", 1),
            ToolCallEvent("b", "g", "}", 1),
            Finish(StopReason.TOOL_USE, 5, 7),
        ],
    )
    summary = [
        (o["type"], o.get("index"), (o.get("content_block") or o.get("delta") or {}).get("type"))
        for o in objects
    ]
    assert summary == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    ids = [
        o["content_block"]["id"]
        for o in objects
        if o["type"] == "content_block_start" and o["content_block"]["type"] == "tool_use"
    ]
    assert len(set(ids)) == 2 and all(i.startswith("toolu_bdrk_01") for i in ids)


def test_claude_response_and_builder() -> None:
    parsed = anthropic.parse(
        {
            "anthropic_version": "x",
            "max_tokens": 2000,
            "messages": [{"role": "user", "content": "q"}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        }
    )
    builder = CompletionBuilder()
    for event in (
        TokenEvent("r", kind="reasoning"),
        ToolCallEvent("c", "f", '{"a": 1}', 3),
        Finish(StopReason.TOOL_USE, 1, 4),
    ):
        builder.add(event)
    body = parsed.response(builder.build(), "claude")
    assert [b["type"] for b in body["content"]] == ["thinking", "tool_use"]
    assert body["content"][1]["input"] == {"a": 1} and body["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 100}},
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 4000}},
            "`max_tokens` must be greater than `thinking.budget_tokens`.",
        ),
        (
            {"tool_choice": {"type": "auto"}},
            "tool_choice may only be specified while providing tools.",
        ),
    ],
)
def test_claude_provider_validation(extra: dict[str, Any], message: str) -> None:
    body = {
        "anthropic_version": "x",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": "q"}],
    }
    with pytest.raises(Exception) as info:
        anthropic.parse({**body, **extra})
    assert str(getattr(info.value, "message", "")).startswith(message)


@pytest.mark.parametrize(
    ("stop", "tail"),
    [
        (StopReason.MAX_TOKENS, [("c", 3, "length")]),
        (StopReason.END_TURN, [("c", 3, None), ("", 3, "stop")]),
    ],
)
def test_llama_stream_puts_a_length_stop_on_the_last_token(
    stop: StopReason, tail: list[tuple[str, int, str | None]]
) -> None:
    objects = run(
        LlamaStream(9),
        [TokenEvent("a"), TokenEvent("b"), TokenEvent("c"), Finish(stop, 9, 3)],
    )
    rows = [(o["generation"], o["generation_token_count"], o["stop_reason"]) for o in objects]
    assert rows == [("a", 1, None), ("b", 2, None), *tail]
    assert objects[0]["prompt_token_count"] == 9
    assert all(o["prompt_token_count"] is None for o in objects[1:])
    assert "amazon-bedrock-invocationMetrics" in objects[-1]


def test_titan_stream_gathers_pieces() -> None:
    pieces = [TokenEvent(f" w{i}") for i in range(CHUNK_TOKENS + 5)]
    objects = run(TitanStream(4), [*pieces, Finish(StopReason.END_TURN, 4, CHUNK_TOKENS + 5)])
    assert len(objects) == 2
    assert objects[0]["inputTextTokenCount"] == 4 and objects[0]["completionReason"] is None
    assert objects[1]["inputTextTokenCount"] is None and objects[1]["completionReason"] == "FINISH"
    assert "".join(o["outputText"] for o in objects) == "".join(p.text for p in pieces)
    [single] = run(TitanStream(4), [TokenEvent("x"), Finish(StopReason.MAX_TOKENS, 4, 1)])
    assert single["inputTextTokenCount"] == 4 and single["completionReason"] == "LENGTH"


def test_nova_stream_indexes_and_tool_block() -> None:
    objects = run(
        NovaStream(show_reasoning=False),
        [
            TokenEvent("hidden", kind="reasoning"),
            TokenEvent("A"),
            TokenEvent("B"),
            ToolCallEvent("x", "f"),
            ToolCallEvent("x", "f", '{"k":', 1),
            ToolCallEvent("x", "f", " 1}", 1),
            Finish(StopReason.TOOL_USE, 5, 4),
        ],
    )
    keys = [(next(iter(o)), next(iter(o.values())).get("contentBlockIndex")) for o in objects]
    assert keys == [
        ("messageStart", None),
        ("contentBlockDelta", 0),
        ("contentBlockStop", 0),
        ("contentBlockDelta", 1),
        ("contentBlockStop", 1),
        ("contentBlockStart", 2),
        ("contentBlockDelta", 2),
        ("contentBlockStop", 2),
        ("messageStop", None),
        ("metadata", None),
    ]
    assert objects[6]["contentBlockDelta"]["delta"] == {"toolUse": {"input": '{"k": 1}'}}


def test_reasoning_tags_of_gpt_oss_and_deepseek_streams() -> None:
    events: list[GenerationEvent] = [
        TokenEvent("think", kind="reasoning"),
        TokenEvent("answer"),
        Finish(StopReason.END_TURN, 1, 2),
    ]
    oss = run(GptOssStream("openai.gpt-oss-20b-1:0"), events)
    assert "".join(o["choices"][0]["delta"].get("content", "") for o in oss) == (
        "<reasoning>think</reasoning>answer"
    )
    assert oss[0]["choices"][0]["delta"]["role"] == "assistant"
    deepseek = DeepSeekDialect().parse({"prompt": "q"}, CALL)
    assert deepseek.request.reasoning is not None
    r1 = run(deepseek.stream("m", 1), events)
    assert "".join(o["choices"][0]["text"] for o in r1) == "think\n</think>\n\nanswer"


def test_openai_style_bodies_translate_tools_and_turns() -> None:
    body: dict[str, Any] = {
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "Rain"},
        ],
        "tools": [
            {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "w"}},
    }
    request = GptOssDialect().parse(body, InvokeCall("r", "openai.gpt-oss-20b-1:0")).request
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[2].tool_calls[0].name == "w"
    assert request.messages[3].tool_results[0].content == "Rain"
    assert request.tool_choice.mode == "tool" and request.tool_choice.name == "w"
    system = {"role": "system", "content": "Be terse."}
    mistral_body = {**body, "messages": [system, *body["messages"][1:]], "tool_choice": "any"}
    mistral = MistralChatDialect().parse(mistral_body, CALL).request
    assert mistral.tool_choice.mode == "any"
