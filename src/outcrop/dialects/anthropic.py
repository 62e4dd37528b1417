"""Anthropic Claude on Bedrock: the Messages body (tools, extended thinking) and the legacy Text
Completions body.

`parse` turns a request body into a `ParsedBody` (raising Bedrock's ValidationException for
bodies Bedrock rejects); `complete` builds the non-streaming response body; `MessagesStream`
and `CompletionStream` turn engine events into the exact sequence of stream objects real
Bedrock sends (reference/dialects.md §2.1), the last one carrying
`amazon-bedrock-invocationMetrics`.

Tools: `tools` become `ToolSpec`s, `tool_choice` a `ToolChoice`; `tool_use` blocks of earlier
assistant turns and `tool_result` blocks of user turns travel as `ChatMessage.tool_calls` /
`tool_results`. The engine's tool calls come back as `tool_use` blocks (`toolu_bdrk_` IDs) and
stream as `content_block_start` + `input_json_delta` fragments, the first one empty as on
Bedrock, ending with `stop_reason: tool_use`.

Structured outputs: `output_config.format` (`{"type": "json_schema", "schema": {...}}`) becomes
`GenerationRequest.response_schema`; models without the feature are refused as Bedrock refuses
them (dialects/structured.py).

Extended thinking (`thinking: {"type": "enabled", "budget_tokens": N}`): the engine's reasoning
becomes a `thinking` block with a `signature` (a `thinking_delta` run closed by one
`signature_delta` when streaming). This follows the Anthropic Messages spec and the
langchain-aws / anthropic SDK parsers; no raw Bedrock InvokeModel capture of it exists
(dialects.md §7). Without `thinking`, engine reasoning is not shown. Thinking blocks of earlier
turns are not passed to the engine (Anthropic drops them from the context too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from outcrop.dialects.base import (
    METRICS_KEY,
    CallIds,
    Completion,
    InvokeCall,
    Obj,
    arguments_object,
    base62_id,
    invocation_metrics,
    reasoning_signature,
)
from outcrop.dialects.prompts import split_human_assistant
from outcrop.dialects.schema import (
    Field,
    check_object,
    check_value,
    malformed,
    tool_schema_problems,
    type_name,
)
from outcrop.dialects.structured import anthropic_schema, check_supported
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    ReasoningConfig,
    Role,
    SamplingParams,
    StopReason,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
    Usage,
)
from outcrop.wire.errors import ValidationException

MESSAGES_FIELDS: dict[str, Field] = {
    "anthropic_version": Field("string", required=True),
    "anthropic_beta": Field("array"),
    "max_tokens": Field("integer", required=True, minimum=1),
    "messages": Field("array", required=True),
    "system": Field("any"),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "top_k": Field("integer", minimum=0, maximum=500),
    "stop_sequences": Field("array"),
    "tools": Field("array"),
    "tool_choice": Field("object"),
    "thinking": Field("object"),
    "metadata": Field("object"),
    # Structured outputs (`output_config.format`, dialects/structured.py).
    "output_config": Field("object"),
    # anthropic SDK >= 2.0 moves the anthropic-user-profile-id header here; Bedrock's handling
    # of it is unverified, so it is tolerated rather than rejected.
    "user_profile_id": Field("string"),
}

COMPLETION_FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "max_tokens_to_sample": Field("integer", required=True, minimum=1),
    "temperature": Field("number", minimum=0, maximum=1),
    "top_p": Field("number", minimum=0, maximum=1),
    "top_k": Field("integer", minimum=0, maximum=500),
    "stop_sequences": Field("array"),
    "anthropic_version": Field("string"),
}

# Sub-schemas below are Anthropic's documented shapes written in Bedrock's everit style; the
# exact wording Bedrock uses for violations inside tools / tool_choice / thinking is unverified.
_TOOL_FIELDS: dict[str, Field] = {
    "name": Field("string", required=True),
    "description": Field("string"),
    "input_schema": Field("object"),
    "type": Field("string"),
    "cache_control": Field("object"),
}
_TOOL_CHOICE_FIELDS: dict[str, Field] = {
    "type": Field("string", required=True, enum=("auto", "any", "tool", "none")),
    "name": Field("string"),
    "disable_parallel_tool_use": Field("boolean"),
}
_THINKING_FIELDS: dict[str, Field] = {
    "type": Field("string", required=True, enum=("enabled", "disabled", "adaptive")),
    "budget_tokens": Field("integer"),
}

# Bedrock's Claude schema is a union of the Messages form and the legacy form; a Messages body
# that fails its branch reports the other branch's failure first (verbatim from captures).
_UNION_PREFIX = '#: subject must not be valid against schema {"required":["messages"]}'

_ROLES: tuple[Role, ...] = ("user", "assistant")

# Anthropic's own validation messages, which Bedrock passes through as ValidationException.
# Taken from the Anthropic API; their exact Bedrock wording is unverified.
_THINKING_DOCS = (
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
    "#max-tokens-and-context-window-size"
)


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A parsed Claude body: the neutral request and which of the two body forms it used."""

    request: GenerationRequest
    legacy: bool
    """True for the Text Completions form (`prompt` + `max_tokens_to_sample`)."""
    thinking: bool = False
    """Extended thinking requested: reasoning is shown as thinking blocks."""
    call_ids: CallIds = field(default_factory=lambda: CallIds(tool_use_id), compare=False)

    def response(self, output: Completion, model_name: str) -> Obj:
        return complete(self, model_name, output.text, output.finish, output=output)

    def stream(self, model_name: str, input_tokens: int) -> MessagesStream | CompletionStream:
        if self.legacy:
            return CompletionStream()
        return MessagesStream(model_name, input_tokens, thinking=self.thinking)

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []


def message_id() -> str:
    return base62_id("msg_bdrk_01", 22)


def tool_use_id() -> str:
    return base62_id("toolu_bdrk_01", 22)


def parse(body: dict[str, Any], request_id: str = "") -> ParsedBody:
    """Validate a Claude body and translate it; raises ValidationException as Bedrock does."""
    if "messages" not in body and "prompt" in body:
        return ParsedBody(_parse_completion(body, request_id), legacy=True)
    problems = check_object(body, MESSAGES_FIELDS)
    if not problems:
        problems = _check_messages(body["messages"])
    if not problems and "stop_sequences" in body:
        problems = _check_strings(body["stop_sequences"], "#/stop_sequences")
    if not problems:
        problems = _check_tools(body)
    if problems:
        raise malformed(problems, prefix=_UNION_PREFIX)
    messages = _messages(body)
    if not any(m.role == "user" for m in messages):
        raise ValidationException("messages: at least one message is required")
    reasoning = _reasoning(body)
    tools, choice = _tools(body, thinking=reasoning is not None)
    sampling = SamplingParams(
        max_tokens=int(body["max_tokens"]),
        temperature=_opt_float(body.get("temperature")),
        top_p=_opt_float(body.get("top_p")),
        top_k=body.get("top_k"),
        stop_sequences=tuple(body.get("stop_sequences") or ()),
    )
    request = GenerationRequest(
        tuple(messages),
        sampling,
        request_id,
        tools=tools,
        tool_choice=choice,
        reasoning=reasoning,
        cache_point=_cache_point(body),
        response_schema=anthropic_schema(body.get("output_config")),
    )
    return ParsedBody(request, legacy=False, thinking=reasoning is not None)


def _cache_point(body: dict[str, Any]) -> int | None:
    """Where the last `cache_control` mark is (`GenerationRequest.cache_point`): on a block of
    message i, the cached prefix holds i + 1 messages; on `system` or a tool, none."""

    def marked(blocks: Any) -> bool:
        return isinstance(blocks, list) and any(
            isinstance(b, dict) and "cache_control" in b for b in blocks
        )

    found: int | None = 0 if marked(body.get("system")) or marked(body.get("tools")) else None
    for index, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict) and marked(message.get("content")):
            found = index + 1
    return found


def usage(finish: Finish) -> Obj:
    """A Messages `usage`. With a cache mark (docs/prompt-caching.md), `input_tokens` counts
    only the prompt tokens after it; the cache fields those before it."""
    read, write = finish.cache_read_input_tokens, finish.cache_write_input_tokens
    if read is None or write is None:
        return {"input_tokens": finish.input_tokens, "output_tokens": finish.output_tokens}
    return {
        "input_tokens": finish.input_tokens - read - write,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": finish.output_tokens,
    }


def _messages(body: dict[str, Any]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append(ChatMessage("system", text))
    _check_tool_pairs(body["messages"])
    for turn in body["messages"]:
        role: Role = turn["role"]
        message = _turn(role, turn["content"])
        if messages and messages[-1].role == role:
            # Anthropic merges consecutive turns of the same role.
            last = messages[-1]
            text = "\n\n".join(t for t in (last.text, message.text) if t)
            message = ChatMessage(
                role,
                text,
                last.tool_calls + message.tool_calls,
                last.tool_results + message.tool_results,
            )
            messages[-1] = message
        else:
            messages.append(message)
    return messages


def _turn(role: Role, content: Any) -> ChatMessage:
    if isinstance(content, str):
        return ChatMessage(role, content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind in ("image", "document"):
            raise ValidationException(
                f"The model served here does not accept {kind} input. Remove it and try again."
            )
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
            calls.append(ToolCall(str(block.get("id", "")), str(block.get("name", "")), arguments))
        elif kind == "tool_result":
            inner = block.get("content", "")
            results.append(
                ToolResult(
                    str(block.get("tool_use_id", "")),
                    inner if isinstance(inner, str) else _result_text(inner),
                    bool(block.get("is_error", False)),
                )
            )
        # thinking / redacted_thinking blocks of earlier turns are not part of the context.
    return ChatMessage(role, "\n".join(texts), tuple(calls), tuple(results))


def _result_text(blocks: Any) -> str:
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "json":
            parts.append(json.dumps(block.get("json"), ensure_ascii=False))
    return "\n".join(parts)


def _check_tool_pairs(turns: list[dict[str, Any]]) -> None:
    """Every tool_use must be answered by tool_results in the next turn, and vice versa
    (Anthropic's own messages, passed through by Bedrock)."""
    previous_ids: list[str] = []
    for index, turn in enumerate(turns):
        content = turn["content"] if isinstance(turn["content"], list) else []
        results = [b.get("tool_use_id") for b in content if b.get("type") == "tool_result"]
        unexpected = [r for r in results if r not in previous_ids]
        if unexpected:
            raise ValidationException(
                f"messages.{index}.content.0: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {unexpected[0]}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        missing = [i for i in previous_ids if i not in results]
        if missing:
            raise ValidationException(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        previous_ids = [
            str(b.get("id"))
            for b in content
            if b.get("type") == "tool_use" and turn["role"] == "assistant"
        ]


def _reasoning(body: dict[str, Any]) -> ReasoningConfig | None:
    thinking = body.get("thinking")
    if thinking is None or thinking.get("type") == "disabled":
        return None
    if thinking.get("type") == "adaptive":
        return ReasoningConfig()
    budget = int(thinking["budget_tokens"])
    if budget < 1024:
        raise ValidationException(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    if budget >= int(body["max_tokens"]):
        raise ValidationException(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {_THINKING_DOCS}"
        )
    if "temperature" in body and body["temperature"] != 1:
        raise ValidationException(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_THINKING_DOCS}"
        )
    return ReasoningConfig(budget_tokens=budget)


def _tools(body: dict[str, Any], thinking: bool) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    tools = tuple(
        ToolSpec(
            str(t["name"]),
            str(t.get("description", "")),
            t.get("input_schema") or {"type": "object"},
        )
        for t in body.get("tools") or ()
    )
    raw_choice = body.get("tool_choice")
    if raw_choice is None:
        return tools, ToolChoice()
    if not tools:
        raise ValidationException("tool_choice may only be specified while providing tools.")
    mode = raw_choice["type"]
    if thinking and mode in ("any", "tool"):
        raise ValidationException("Thinking may not be enabled when tool_choice forces tool use.")
    if mode == "tool":
        name = raw_choice.get("name")
        if name not in {t.name for t in tools}:
            # Unverified wording; Anthropic rejects a forced tool that is not offered.
            raise ValidationException(f"tool_choice.name: tool '{name}' not found in tools.")
        return tools, ToolChoice("tool", str(name))
    return tools, ToolChoice(mode)


def _check_tools(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, tool in enumerate(body.get("tools") or ()):
        pointer = f"#/tools/{i}"
        if not isinstance(tool, dict):
            problems.append(f"{pointer}: expected type: JSONObject, found: {type(tool).__name__}")
            continue
        # Server tools (computer_*, bash_*, text_editor_*) carry their own extra keys.
        fields = _TOOL_FIELDS if "type" not in tool or tool["type"] == "custom" else None
        if fields is None:  # a server tool still has a name
            if not isinstance(tool.get("name"), str):
                problems += check_value(tool.get("name"), Field("string"), f"{pointer}/name")
            continue
        problems += check_object(tool, fields, pointer)
        if "input_schema" not in tool:
            problems.append(f"{pointer}: required key [input_schema] not found")
        elif isinstance(tool["input_schema"], dict):
            problems += tool_schema_problems(tool["input_schema"], f"{pointer}/input_schema")
    if "tool_choice" in body:
        choice = body["tool_choice"]
        problems += check_object(choice, _TOOL_CHOICE_FIELDS, "#/tool_choice")
        if choice.get("type") == "tool" and "name" not in choice:
            problems.append("#/tool_choice: required key [name] not found")
    if "thinking" in body:
        thinking = body["thinking"]
        problems += check_object(thinking, _THINKING_FIELDS, "#/thinking")
        if thinking.get("type") == "enabled" and "budget_tokens" not in thinking:
            problems.append("#/thinking: required key [budget_tokens] not found")
    return problems


def _parse_completion(body: dict[str, Any], request_id: str) -> GenerationRequest:
    problems = check_object(body, COMPLETION_FIELDS)
    if not problems and "stop_sequences" in body:
        problems = _check_strings(body["stop_sequences"], "#/stop_sequences")
    if problems:
        raise malformed(problems)
    prompt: str = body["prompt"]
    if "Human:" not in prompt or "Assistant:" not in prompt:
        # Anthropic's legacy API requires the Human/Assistant turn markers (wording unverified).
        raise ValidationException('prompt must contain "\\n\\nHuman:" and "\\n\\nAssistant:" turns')
    sampling = SamplingParams(
        max_tokens=int(body["max_tokens_to_sample"]),
        temperature=_opt_float(body.get("temperature")),
        top_p=_opt_float(body.get("top_p")),
        top_k=body.get("top_k"),
        stop_sequences=tuple(body.get("stop_sequences") or ()),
    )
    # The Human/Assistant turns go to the engine as a conversation (dialects/prompts.py).
    turns = split_human_assistant(prompt)
    if turns is None:
        return GenerationRequest(
            (ChatMessage("user", prompt),), sampling, request_id, raw_prompt=prompt
        )
    return GenerationRequest(tuple(turns), sampling, request_id)


def _check_messages(messages: list[Any]) -> list[str]:
    problems: list[str] = []
    for i, turn in enumerate(messages):
        pointer = f"#/messages/{i}"
        if not isinstance(turn, dict):
            problems.append(f"{pointer}: expected type: JSONObject, found: {type(turn).__name__}")
            continue
        problems += check_object(
            turn,
            {
                "role": Field("string", required=True, enum=_ROLES),
                "content": Field("any", required=True),
            },
            pointer,
        )
        content = turn.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                problems += _check_block(block, f"{pointer}/content/{j}")
        elif "content" in turn and not isinstance(content, str):
            problems.append(
                f"{pointer}/content: expected type: JSONArray, found: {type_name(content)}"
            )
    return problems


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{pointer}: expected type: JSONObject, found: String"]
    kind = block.get("type")
    if kind == "text":
        return check_value(block.get("text"), Field("string"), f"{pointer}/text")
    if kind == "tool_use":
        problems: list[str] = []
        for key, spec in (("id", "string"), ("name", "string"), ("input", "object")):
            if key not in block:
                problems.append(f"{pointer}: required key [{key}] not found")
            else:
                problems += check_value(block[key], Field(spec), f"{pointer}/{key}")
        return problems
    if kind == "tool_result":
        if "tool_use_id" not in block:
            return [f"{pointer}: required key [tool_use_id] not found"]
        return []
    if kind in ("image", "document", "thinking", "redacted_thinking"):
        return []
    return [f"{pointer}/type: {kind} is not a valid enum value"]


def _check_strings(values: list[Any], pointer: str) -> list[str]:
    return [
        p for i, v in enumerate(values) for p in check_value(v, Field("string"), f"{pointer}/{i}")
    ]


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system if isinstance(b, dict))
    raise malformed([f"#/system: expected type: String, found: {type(system).__name__}"])


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def stop_reason_name(stop: StopReason) -> str:
    return {
        StopReason.END_TURN: "end_turn",
        StopReason.MAX_TOKENS: "max_tokens",
        StopReason.STOP_SEQUENCE: "stop_sequence",
        StopReason.TOOL_USE: "tool_use",
    }[stop]


def complete(
    parsed: ParsedBody,
    model_name: str,
    text: str,
    finish: Finish,
    msg_id: str | None = None,
    output: Completion | None = None,
) -> dict[str, Any]:
    """The non-streaming response body."""
    if parsed.legacy:
        return {
            "type": "completion",
            "completion": text,
            "stop_reason": _legacy_stop(finish.stop_reason),
            "stop": _legacy_stop_sequence(finish),
        }
    content: list[Obj] = []
    if output is not None and parsed.thinking and output.reasoning:
        content.append(
            {
                "type": "thinking",
                "thinking": output.reasoning,
                "signature": reasoning_signature(output.reasoning),
            }
        )
    calls = output.tool_calls if output is not None else ()
    if text or not calls:
        content.append({"type": "text", "text": text})
    for call in calls:
        content.append(
            {
                "type": "tool_use",
                "id": parsed.call_ids(call.call_id),
                "name": call.name,
                "input": arguments_object(call.arguments),
            }
        )
    return {
        "id": msg_id or message_id(),
        "type": "message",
        "role": "assistant",
        "model": model_name,
        "content": content,
        "stop_reason": stop_reason_name(finish.stop_reason),
        "stop_sequence": finish.stop_sequence,
        "usage": usage(finish),
    }


def _legacy_stop(stop: StopReason) -> str:
    return "max_tokens" if stop is StopReason.MAX_TOKENS else "stop_sequence"


# Claude's legacy models end a turn by producing the next "\n\nHuman:" turn, which Bedrock
# reports as that stop sequence matching (as recorded).
_LEGACY_TURN_END = "\n\nHuman:"


def _legacy_stop_sequence(finish: Finish) -> str | None:
    if finish.stop_reason is StopReason.END_TURN:
        return _LEGACY_TURN_END
    return finish.stop_sequence


class MessagesStream:
    """Stream objects of a Messages response, in Bedrock's order."""

    def __init__(
        self,
        model_name: str,
        input_tokens: int,
        msg_id: str | None = None,
        *,
        thinking: bool = False,
    ) -> None:
        self.model_name = model_name
        self.input_tokens = input_tokens
        self.msg_id = msg_id or message_id()
        self.thinking = thinking
        self._index = -1
        self._open_kind: str | None = None  # "thinking" | "text" | "tool_use" | None
        self._open_call: str | None = None
        self._reasoning: list[str] = []
        self._call_ids = CallIds(tool_use_id)

    def start(self) -> list[Obj]:
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self.msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model_name,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": 1},
                },
            }
        ]

    def _close(self) -> list[Obj]:
        if self._open_kind is None:
            return []
        out: list[Obj] = []
        if self._open_kind == "thinking":
            signature = reasoning_signature("".join(self._reasoning))
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        out.append({"type": "content_block_stop", "index": self._index})
        self._open_kind = None
        self._open_call = None
        return out

    def _open(self, block: Obj) -> list[Obj]:
        out = self._close()
        self._index += 1
        self._open_kind = str(block["type"])
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return out

    def _delta(self, delta: Obj) -> Obj:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def reasoning(self, piece: str) -> list[Obj]:
        if not self.thinking:
            return []
        out = (
            []
            if self._open_kind == "thinking"
            else self._open({"type": "thinking", "thinking": ""})
        )
        self._reasoning.append(piece)
        out.append(self._delta({"type": "thinking_delta", "thinking": piece}))
        return out

    def text(self, piece: str) -> list[Obj]:
        out = [] if self._open_kind == "text" else self._open({"type": "text", "text": ""})
        out.append(self._delta({"type": "text_delta", "text": piece}))
        return out

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        out: list[Obj] = []
        if self._open_kind != "tool_use" or self._open_call != event.call_id:
            block = {
                "type": "tool_use",
                "id": self._call_ids(event.call_id),
                "name": event.name,
                "input": {},
            }
            out += self._open(block)
            self._open_call = event.call_id
            # Bedrock opens every tool_use block with an empty partial_json.
            out.append(self._delta({"type": "input_json_delta", "partial_json": ""}))
        if event.arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": event.arguments}))
        return out

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        out: list[Obj] = []
        if self._index < 0:
            out += self._open({"type": "text", "text": ""})
        out += self._close()
        out += [
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason_name(finish.stop_reason),
                    "stop_sequence": finish.stop_sequence,
                },
                "usage": _delta_usage(finish),
            },
            {"type": "message_stop", METRICS_KEY: invocation_metrics(usage)},
        ]
        return out


def _delta_usage(finish: Finish) -> Obj:
    """`message_delta` usage: output tokens, and with a cache mark the cache counts too (the
    prompt's are known only at the end here; Anthropic's API sends them in message_delta as
    well; what Bedrock's stream sends there with caching is unverified)."""
    full = usage(finish)
    if finish.cache_read_input_tokens is None:
        return {"output_tokens": finish.output_tokens}
    return full


class CompletionStream:
    """Stream objects of a legacy Text Completions response."""

    def start(self) -> list[Obj]:
        return []

    def reasoning(self, piece: str) -> list[Obj]:
        return []

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        return []

    def text(self, piece: str) -> list[Obj]:
        return [{"completion": piece, "stop_reason": None, "stop": None}]

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        return [
            {
                "completion": "",
                "stop_reason": _legacy_stop(finish.stop_reason),
                "stop": _legacy_stop_sequence(finish),
                METRICS_KEY: invocation_metrics(usage),
            }
        ]


class AnthropicDialect:
    """Claude Messages and legacy Text Completions (chosen per body)."""

    def parse(self, body: Obj, call: InvokeCall) -> ParsedBody:
        parsed = parse(body, call.request_id)
        check_supported(call.model_id, parsed.request.response_schema)
        return parsed
