"""Converse and ConverseStream bodies ⇄ neutral types (docs/dialects.md §3).

Pure translation, no I/O:

- `parse_request` turns a Converse body (already checked against the service model by
  `wire.jsonbody`) into a `GenerationRequest`, applying the checks Bedrock makes itself (the
  first message is from the user, roles alternate, no blank text, tool blocks need a
  `toolConfig`, tool results answer tool uses, ...) with Bedrock's messages (§4).
- `ConverseEncoder` turns engine events into the ConverseStream event sequence: `messageStart`;
  per content block `contentBlockStart` (tool use only; text and reasoning blocks have none),
  `contentBlockDelta`s (text, reasoning text and signature, tool-input JSON fragments) and
  `contentBlockStop`; then `messageStop` with the stop reason and `metadata` with usage and
  `metrics.latencyMs`.
- `assemble_output` folds that same event sequence into the non-streaming Converse response, so
  that Converse and ConverseStream always agree on content, stop reason and usage.

Structured outputs (`outputConfig.textFormat`, or Claude's `output_config.format` in
`additionalModelRequestFields`) become `GenerationRequest.response_schema` (dialects/structured.py).

Converse is model-agnostic on Bedrock, and so is this module: the provider only decides whether
reasoning blocks carry a signature (Anthropic's do) and is otherwise ignored.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from outcrop.dialects.base import reasoning_signature
from outcrop.dialects.schema import tool_schema_problems
from outcrop.dialects.structured import anthropic_schema, converse_schema
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    ReasoningConfig,
    Role,
    SamplingParams,
    StopReason,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
)
from outcrop.wire.errors import ValidationException

ConverseEvent = tuple[str, dict[str, Any]]
"""One ConverseStream event: its `:event-type` and its payload structure."""

DEFAULT_MAX_TOKENS = 4096
"""maxTokens when inferenceConfig has none. Bedrock uses each model's own default (unverified
per model); this leaves room to answer while staying inside small local context windows."""

# Bedrock's own Converse checks. Sources: docs/dialects.md §4 and public issue reports
# quoting Bedrock (langchain-aws#130, elastic/kibana#246393, OpenHands#5339, Curie#16,
# dify#17545, aws-tools-for-powershell#354, sample-multi-agent-orchestration#15).
MUST_START_WITH_USER = (
    "A conversation must start with a user message. Try again with a conversation that starts "
    "with a user message."
)
MUST_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation "
    "alternates between user and assistant roles and try again."
)
TOOL_CONFIG_REQUIRED = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)


def empty_content_message(index: int) -> str:
    return (
        f"The content field in the Message object at messages.{index} is empty. Add a "
        "ContentBlock object to the content field and try again."
    )


def _has_substance(content: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a message carries something besides blank text and cache points."""
    return any(
        (isinstance(block.get("text"), str) and block["text"].strip())
        or not ({"text", "cachePoint"} & block.keys())
        for block in content
    )


def _blank(text: str, substantial: bool) -> bool:
    """A text block Bedrock refuses as blank: empty, or only whitespace in a message with
    nothing else in it. A whitespace-only block beside real content is accepted: Bedrock
    answered 200 to a `{"text": "\\n"}` block between a document and a cache point
    (tests/fixtures/recordings/pydai__test_bedrock_cache_write_and_read.txt); which other
    whitespace-only blocks it refuses is unverified."""
    return not text or (not text.strip() and not substantial)


def blank_text_message(index: int, block: int) -> str:
    return (
        f"The text field in the ContentBlock object at messages.{index}.content.{block} is "
        "blank. Add text to the text field, and try again."
    )


def too_many_results_message(index: int) -> str:
    return (
        f"The number of toolResult blocks at messages.{index}.content exceeds the number of "
        "toolUse blocks of previous turn."
    )


def empty_error_result_message(index: int, block: int) -> str:
    return (
        f"The content field at messages.{index}.content.{block}.toolResult cannot be empty when "
        "status value is error."
    )


def bad_schema_message(index: int) -> str:
    return (
        f"The format of the value at toolConfig.tools.{index}.toolSpec.inputSchema.json is "
        "invalid. Provide a json object for the field and try again."
    )


def unsupported_block_message(kind: str) -> str:
    # Wording unverified: the served models are text-only, whatever model ID was asked for.
    return (
        f"This model doesn't support the {kind} content block that you provided. Try again with "
        "a supported content block."
    )


_DOCUMENT_TEXT_FORMATS = frozenset({"txt", "md", "csv", "html"})
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def tool_use_id() -> str:
    """A Converse tool-use ID: `tooluse_` and 22 URL-safe base64 characters, as Bedrock's."""
    return "tooluse_" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


@dataclass(frozen=True, slots=True)
class ConverseInput:
    """A parsed Converse request: the neutral request plus what the response echoes."""

    request: GenerationRequest
    response_field_paths: tuple[str, ...] = ()
    performance_config: Mapping[str, Any] | None = None
    service_tier: Mapping[str, Any] | None = None
    request_metadata: Mapping[str, str] = field(default_factory=dict)


# -- request -----------------------------------------------------------------------------------


def parse_request(body: Mapping[str, Any], request_id: str = "") -> ConverseInput:
    """Translate a Converse (or ConverseStream, or CountTokens `converse`) body.

    Raises `ValidationException` with Bedrock's message for conversations Bedrock refuses.
    """
    messages = list(body.get("messages") or [])
    tool_config = body.get("toolConfig")
    _check_conversation(messages, has_tool_config=tool_config is not None)
    tools, choice = _parse_tool_config(tool_config)
    extra = body.get("additionalModelRequestFields")
    extra = extra if isinstance(extra, Mapping) else {}
    turns: list[ChatMessage] = []
    system = _system_text(body.get("system") or [])
    if system:
        turns.append(ChatMessage("system", system))
    turns += [_chat_message(i, m) for i, m in enumerate(messages)]
    request = GenerationRequest(
        messages=tuple(turns),
        sampling=_sampling(body.get("inferenceConfig") or {}, extra),
        request_id=request_id,
        tools=tools,
        tool_choice=choice,
        reasoning=_reasoning(extra),
        cache_point=cache_point(body),
        response_schema=converse_schema(body.get("outputConfig"))
        or anthropic_schema(
            extra.get("output_config"), "additionalModelRequestFields.output_config"
        ),
    )
    return ConverseInput(
        request=request,
        response_field_paths=tuple(body.get("additionalModelResponseFieldPaths") or ()),
        performance_config=body.get("performanceConfig"),
        service_tier=body.get("serviceTier"),
        request_metadata=dict(body.get("requestMetadata") or {}),
    )


def _check_conversation(messages: Sequence[Mapping[str, Any]], *, has_tool_config: bool) -> None:
    if not messages or messages[0]["role"] != "user":
        # Some newer models accept an assistant-first history (a 2025 Claude Sonnet 4.5
        # recording); Bedrock's documented and long-standing rule is enforced here.
        raise ValidationException(MUST_START_WITH_USER)
    previous_uses = 0
    for index, message in enumerate(messages):
        role = message["role"]
        # The model's role enum lists "system"; Bedrock takes system text only in `system`
        # (the message for a system turn in `messages` is unverified).
        if role == "system" or (index and role == messages[index - 1]["role"]):
            raise ValidationException(MUST_ALTERNATE)
        content: list[Mapping[str, Any]] = message["content"]
        if not content:
            raise ValidationException(empty_content_message(index))
        uses = results = 0
        substantial = _has_substance(content)
        for block_index, block in enumerate(content):
            if "text" in block and _blank(block["text"], substantial):
                raise ValidationException(blank_text_message(index, block_index))
            if ("toolUse" in block or "toolResult" in block) and not has_tool_config:
                raise ValidationException(TOOL_CONFIG_REQUIRED)
            if "toolUse" in block:
                uses += 1
            if "toolResult" in block:
                results += 1
                result = block["toolResult"]
                if result.get("status") == "error" and not result["content"]:
                    raise ValidationException(empty_error_result_message(index, block_index))
        if results > previous_uses:
            raise ValidationException(too_many_results_message(index))
        previous_uses = uses if role == "assistant" else 0


def _parse_tool_config(config: Mapping[str, Any] | None) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    if config is None:
        return (), ToolChoice()
    tools: list[ToolSpec] = []
    for index, tool in enumerate(config["tools"]):
        if "cachePoint" in tool:
            continue
        if "systemTool" in tool:
            # Wording unverified: Bedrock's server-side tools (Nova 2) are not served here.
            raise ValidationException(
                f"The system tool {tool['systemTool'].get('name', '')} at toolConfig.tools."
                f"{index} isn't supported by this model."
            )
        spec = tool["toolSpec"]
        schema = spec["inputSchema"].get("json")
        if not isinstance(schema, dict) or tool_schema_problems(schema, "#"):
            raise ValidationException(bad_schema_message(index))
        if any(t.name == spec["name"] for t in tools):
            # Wording unverified; every provider refuses duplicate tool names.
            raise ValidationException(
                f"The tool name {spec['name']} at toolConfig.tools.{index} is a duplicate. "
                "Tool names must be unique."
            )
        tools.append(ToolSpec(spec["name"], spec.get("description", ""), schema))
    choice = ToolChoice()
    requested = config.get("toolChoice") or {"auto": {}}
    if "any" in requested:
        choice = ToolChoice("any")
    elif "tool" in requested:
        name = requested["tool"]["name"]
        if not any(t.name == name for t in tools):
            # Wording unverified.
            raise ValidationException(
                f"The tool {name} named in toolConfig.toolChoice.tool isn't defined in "
                "toolConfig.tools."
            )
        choice = ToolChoice("tool", name)
    return tuple(tools), choice


def _system_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"])
        elif "guardContent" in block:
            parts.append(_guard_text(block["guardContent"]))
    return "\n".join(p for p in parts if p)


def _chat_message(index: int, message: Mapping[str, Any]) -> ChatMessage:
    role: Role = message["role"]
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    for block in message["content"]:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = json.dumps(use["input"], ensure_ascii=False)
            calls.append(ToolCall(use["toolUseId"], use["name"], arguments))
        elif "toolResult" in block:
            result = block["toolResult"]
            results.append(
                ToolResult(
                    result["toolUseId"],
                    "\n".join(_result_text(part) for part in result["content"]),
                    is_error=result.get("status") == "error",
                )
            )
        elif "document" in block:
            texts.append(_document_text(block["document"]))
        elif "guardContent" in block:
            texts.append(_guard_text(block["guardContent"]))
        elif "citationsContent" in block:
            texts.append("".join(c.get("text", "") for c in block["citationsContent"]["content"]))
        elif "searchResult" in block:
            texts.append(_search_result_text(block["searchResult"]))
        elif "image" in block or "video" in block or "audio" in block:
            kind = next(k for k in ("image", "video", "audio") if k in block)
            raise ValidationException(unsupported_block_message(kind))
        # reasoningContent of earlier turns, cachePoint, toolAddition/toolRemoval: not prompt
        # text (Claude, too, drops earlier turns' thinking from its context).
    return ChatMessage(role, "\n".join(t for t in texts if t), tuple(calls), tuple(results))


def _result_text(part: Mapping[str, Any]) -> str:
    if "text" in part:
        return str(part["text"])
    if "json" in part:
        return json.dumps(part["json"], ensure_ascii=False)
    if "document" in part:
        return _document_text(part["document"])
    if "searchResult" in part:
        return _search_result_text(part["searchResult"])
    kind = next(iter(part), "image")
    raise ValidationException(unsupported_block_message(kind))


def _document_text(document: Mapping[str, Any]) -> str:
    source = document["source"]
    if "text" in source:
        body = str(source["text"])
    elif "content" in source:
        body = "\n".join(str(c.get("text", "")) for c in source["content"])
    elif "bytes" in source and document.get("format") in _DOCUMENT_TEXT_FORMATS:
        body = base64.b64decode(source["bytes"]).decode("utf-8", errors="replace")
    else:
        raise ValidationException(
            unsupported_block_message(f"{document.get('format', '')} document")
        )
    return f"{document['name']}:\n{body}"


def _guard_text(guard: Mapping[str, Any]) -> str:
    if "text" in guard:
        return str(guard["text"]["text"])
    raise ValidationException(unsupported_block_message("image"))


def _search_result_text(result: Mapping[str, Any]) -> str:
    body = "\n".join(str(c.get("text", "")) for c in result.get("content", []))
    return f"{result.get('title', '')}\n{body}".strip()


def _sampling(config: Mapping[str, Any], extra: Mapping[str, Any]) -> SamplingParams:
    top_k = extra.get("top_k", extra.get("topK"))
    nested = extra.get("inferenceConfig")
    if top_k is None and isinstance(nested, Mapping):
        top_k = nested.get("topK", nested.get("top_k"))  # Nova's spelling
    if isinstance(top_k, bool) or not isinstance(top_k, int | float):
        top_k = None
    return SamplingParams(
        # null is absent, as the body check treats it
        max_tokens=int(config.get("maxTokens") or DEFAULT_MAX_TOKENS),
        temperature=_opt_float(config.get("temperature")),
        top_p=_opt_float(config.get("topP")),
        top_k=None if top_k is None else int(top_k),
        stop_sequences=tuple(config.get("stopSequences") or ()),
    )


def _reasoning(extra: Mapping[str, Any]) -> ReasoningConfig | None:
    """Reasoning asked for in additionalModelRequestFields, in any family's spelling:
    Claude `thinking`, gpt-oss `reasoning_effort`, Nova 2 `reasoningConfig`."""
    thinking = extra.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        return ReasoningConfig(budget_tokens=int(budget) if isinstance(budget, int) else None)
    effort = extra.get("reasoning_effort")
    nova = extra.get("reasoningConfig")
    if isinstance(nova, Mapping) and nova.get("type") == "enabled":
        effort = nova.get("maxReasoningEffort", "medium")
    if effort in ("low", "medium", "high"):
        return ReasoningConfig(effort=effort)
    return None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- response ----------------------------------------------------------------------------------

BlockKind = Literal["text", "reasoning", "tool"]


@dataclass(slots=True)
class _Block:
    index: int
    kind: BlockKind
    call_id: str = ""
    reasoning: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


def stop_reason_name(finish: Finish, requested_max_tokens: int, malformed_tool_use: bool) -> str:
    """Converse's stopReason for an engine's `Finish`.

    An engine that stopped at max_tokens before the requested number of tokens ran out of
    context window; a tool call whose arguments are not a JSON object is `malformed_tool_use`.
    """
    reason = finish.stop_reason
    if reason is StopReason.MAX_TOKENS:
        if finish.output_tokens < requested_max_tokens:
            return "model_context_window_exceeded"
        return "max_tokens"
    if malformed_tool_use:
        return "malformed_tool_use"
    return str(reason.value)


class ConverseEncoder:
    """Engine events → ConverseStream events, in Bedrock's order and shapes."""

    def __init__(self, *, signs_reasoning: bool = False) -> None:
        self.signs_reasoning = signs_reasoning
        """Anthropic models close a reasoning block with a `signature` delta."""
        self._block: _Block | None = None
        self._next_index = 0
        self._tool_arguments: dict[str, list[str]] = {}

    def start(self) -> list[ConverseEvent]:
        return [("messageStart", {"role": "assistant"})]

    def token(self, event: TokenEvent) -> list[ConverseEvent]:
        events: list[ConverseEvent] = []
        block = self._open(events, event.kind)
        if not event.text:
            return events
        if event.kind == "reasoning":
            block.reasoning.append(event.text)
            delta: dict[str, Any] = {"reasoningContent": {"text": event.text}}
        else:
            delta = {"text": event.text}
        events.append(("contentBlockDelta", {"contentBlockIndex": block.index, "delta": delta}))
        return events

    def tool_call(self, event: ToolCallEvent) -> list[ConverseEvent]:
        events: list[ConverseEvent] = []
        block = self._block
        opened = block is None or block.kind != "tool" or block.call_id != event.call_id
        if opened:
            self._close(events)
            block = self._new_block("tool", event.call_id)
            self._tool_arguments[event.call_id] = block.arguments
            start = {"toolUse": {"name": event.name, "toolUseId": tool_use_id()}}
            events.append(("contentBlockStart", {"contentBlockIndex": block.index, "start": start}))
        assert block is not None
        # An empty fragment is passed on only as a call's first delta (Claude sends one).
        if event.arguments or opened:
            block.arguments.append(event.arguments)
            delta = {"toolUse": {"input": event.arguments}}
            events.append(("contentBlockDelta", {"contentBlockIndex": block.index, "delta": delta}))
        return events

    def finish(
        self,
        finish: Finish,
        *,
        latency_ms: int,
        requested_max_tokens: int,
        response_fields: Mapping[str, Any] | None = None,
        performance_config: Mapping[str, Any] | None = None,
        service_tier: Mapping[str, Any] | None = None,
    ) -> list[ConverseEvent]:
        events: list[ConverseEvent] = []
        if self._next_index == 0:
            # An empty answer is still one (empty) text block, as clients index content[0].
            self._open(events, "text")
            events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ""}}))
        self._close(events)
        malformed = any(not _is_json_object("".join(a)) for a in self._tool_arguments.values())
        stop: dict[str, Any] = {
            "stopReason": stop_reason_name(finish, requested_max_tokens, malformed)
        }
        if response_fields:
            stop["additionalModelResponseFields"] = dict(response_fields)
        events.append(("messageStop", stop))
        metadata: dict[str, Any] = {
            "metrics": {"latencyMs": latency_ms},
            "usage": usage(finish),
        }
        if performance_config is not None:
            metadata["performanceConfig"] = dict(performance_config)
        if service_tier is not None:
            metadata["serviceTier"] = dict(service_tier)
        events.append(("metadata", metadata))
        return events

    def _open(self, events: list[ConverseEvent], kind: BlockKind) -> _Block:
        if self._block is not None and self._block.kind == kind:
            return self._block
        self._close(events)
        return self._new_block(kind)

    def _new_block(self, kind: BlockKind, call_id: str = "") -> _Block:
        self._block = _Block(self._next_index, kind, call_id)
        self._next_index += 1
        return self._block

    def _close(self, events: list[ConverseEvent]) -> None:
        block, self._block = self._block, None
        if block is None:
            return
        if block.kind == "reasoning" and self.signs_reasoning:
            delta = {
                "reasoningContent": {"signature": reasoning_signature("".join(block.reasoning))}
            }
            events.append(("contentBlockDelta", {"contentBlockIndex": block.index, "delta": delta}))
        events.append(("contentBlockStop", {"contentBlockIndex": block.index}))


def cache_point(body: Mapping[str, Any]) -> int | None:
    """Where the request's last `cachePoint` block is (`GenerationRequest.cache_point`): after
    message i, the prefix holds i + 1 messages; in `system` or `toolConfig.tools` (both
    rendered before any message), none; no cache point: None."""
    found: int | None = None
    system = body.get("system") or []
    tools = (body.get("toolConfig") or {}).get("tools") or []
    if any("cachePoint" in block for block in [*system, *tools]):
        found = 0
    for index, message in enumerate(body.get("messages") or []):
        if any("cachePoint" in block for block in message.get("content") or []):
            found = index + 1
    return found


def usage(finish: Finish) -> dict[str, Any]:
    """Converse `usage`. With a cache point (docs/prompt-caching.md): `inputTokens` counts only
    the prompt tokens after it, `cacheReadInputTokens`/`cacheWriteInputTokens` those before it
    (and the `...Count` twins real Bedrock also sends), and `totalTokens` all of them."""
    read, write = finish.cache_read_input_tokens, finish.cache_write_input_tokens
    if read is None or write is None:
        return {
            "inputTokens": finish.input_tokens,
            "outputTokens": finish.output_tokens,
            "totalTokens": finish.input_tokens + finish.output_tokens,
        }
    out: dict[str, Any] = {}
    if write:
        out["cacheDetails"] = [{"inputTokens": write, "ttl": "5m"}]
    out |= {
        "cacheReadInputTokenCount": read,
        "cacheReadInputTokens": read,
        "cacheWriteInputTokenCount": write,
        "cacheWriteInputTokens": write,
        "inputTokens": finish.input_tokens - read - write,
        "outputTokens": finish.output_tokens,
        "totalTokens": finish.input_tokens + finish.output_tokens,
    }
    return out


def assemble_output(events: Sequence[ConverseEvent]) -> dict[str, Any]:
    """The non-streaming Converse response built from a ConverseStream event sequence.

    Keys follow real responses: `metrics`, `output`, `performanceConfig`, `stopReason`,
    `trace` (a guardrail's), `usage`, then `additionalModelResponseFields` and `serviceTier`.
    """
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, list[str]] = {}
    stop: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for kind, payload in events:
        if kind == "contentBlockStart":
            use = payload["start"]["toolUse"]
            index = payload["contentBlockIndex"]
            blocks[index] = {"toolUse": {"name": use["name"], "toolUseId": use["toolUseId"]}}
            inputs[index] = []
        elif kind == "contentBlockDelta":
            _apply_delta(blocks, inputs, payload["contentBlockIndex"], payload["delta"])
        elif kind == "messageStop":
            stop = payload
        elif kind == "metadata":
            metadata = payload
    for index, pieces in inputs.items():
        blocks[index]["toolUse"] = {
            "input": _json_object("".join(pieces)),
            **blocks[index]["toolUse"],
        }
    response: dict[str, Any] = {
        "metrics": metadata["metrics"],
        "output": {
            "message": {"content": [blocks[i] for i in sorted(blocks)], "role": "assistant"}
        },
    }
    if "performanceConfig" in metadata:
        response["performanceConfig"] = metadata["performanceConfig"]
    response["stopReason"] = stop["stopReason"]
    if "trace" in metadata:
        response["trace"] = metadata["trace"]
    response["usage"] = metadata["usage"]
    if "additionalModelResponseFields" in stop:
        response["additionalModelResponseFields"] = stop["additionalModelResponseFields"]
    if "serviceTier" in metadata:
        response["serviceTier"] = metadata["serviceTier"]
    return response


def _apply_delta(
    blocks: dict[int, dict[str, Any]],
    inputs: dict[int, list[str]],
    index: int,
    delta: Mapping[str, Any],
) -> None:
    if "text" in delta:
        block = blocks.setdefault(index, {"text": ""})
        block["text"] += delta["text"]
    elif "reasoningContent" in delta:
        block = blocks.setdefault(index, {"reasoningContent": {"reasoningText": {"text": ""}}})
        reasoning = block["reasoningContent"]["reasoningText"]
        piece = delta["reasoningContent"]
        if "text" in piece:
            reasoning["text"] += piece["text"]
        if "signature" in piece:
            block["reasoningContent"]["reasoningText"] = {
                "signature": piece["signature"],
                "text": reasoning["text"],
            }
    elif "toolUse" in delta:
        inputs[index].append(delta["toolUse"]["input"])


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _json_object(text: str) -> dict[str, Any]:
    """A tool call's input; `{}` when generation stopped before the JSON was complete."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- additionalModelResponseFieldPaths ---------------------------------------------------------


def response_fields(native: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """The parts of the model's native response that `additionalModelResponseFieldPaths` name.

    Each path is a JSON pointer into the model's own response body (`/stop_sequence`); the
    result nests the found values under the same keys (`{"stop_sequence": "###"}`). Paths that
    point at nothing are left out. (The nesting of multi-level pointers is unverified.)
    """
    result: dict[str, Any] = {}
    for path in paths:
        keys = [_unescape(k) for k in path.split("/")[1:]] if path.startswith("/") else []
        if not keys:
            continue
        found, value = _lookup(native, keys)
        if not found:
            continue
        target = result
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return result


def _lookup(document: Any, keys: Sequence[str]) -> tuple[bool, Any]:
    current = document
    for key in keys:
        if isinstance(current, Mapping) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            return False, None
    return True, current


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")
