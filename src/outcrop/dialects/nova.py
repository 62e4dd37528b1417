"""Amazon Nova understanding models (`messages-v1`) on InvokeModel: request validation and
translation, the response body and the stream objects (reference/dialects.md §2.2).

Request: `messages` with Nova content blocks (`text`, `toolUse`, `toolResult`; media are refused
by the text-only served model), `system`, `inferenceConfig` (`max_new_tokens` from the Nova 1
docs and `maxTokens` from the Nova 2 docs are both accepted, as Bedrock does), `toolConfig`.

Stream: single-key wrapper objects, as recorded from real Nova 1 traffic: `messageStart`; every
text delta in its own `contentBlockIndex` followed by its `contentBlockStop` (text blocks have no
start event); a tool call as `contentBlockStart` (toolUseId, name), one `contentBlockDelta` with
the whole input JSON, `contentBlockStop`; `messageStop`; then `metadata` with the usage, carrying
`amazon-bedrock-invocationMetrics` beside it (with the zero cache counts recent captures show).

Reasoning (Nova 2 `reasoningConfig`) is shown as `reasoningContent` blocks mirroring Converse;
no Invoke capture of it exists (unverified). Without `reasoningConfig` reasoning is not shown.
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
    invocation_metrics,
    new_uuid,
)
from outcrop.dialects.schema import (
    Field,
    check_object,
    check_value,
    items,
    malformed,
    members,
    tool_schema_problems,
)
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

# Nova's documented output cap; the default when no max is given is unverified.
DEFAULT_MAX_TOKENS = 5000

FIELDS: dict[str, Field] = {
    "schemaVersion": Field("string"),
    "system": Field("array"),
    "messages": Field("array", required=True),
    "inferenceConfig": Field("object"),
    "toolConfig": Field("object"),
    # Nova 2 documents reasoningConfig as a top-level Invoke parameter in one place and inside
    # inferenceConfig in another; both are accepted.
    "reasoningConfig": Field("object"),
}
INFERENCE_FIELDS: dict[str, Field] = {
    "max_new_tokens": Field("integer", minimum=1),
    "maxTokens": Field("integer", minimum=1),
    "temperature": Field("number", minimum=0, maximum=1),
    "topP": Field("number", minimum=0, maximum=1),
    "topK": Field("integer", minimum=0),
    "stopSequences": Field("array"),
    "reasoningConfig": Field("object"),
}
REASONING_FIELDS: dict[str, Field] = {
    "type": Field("string", required=True, enum=("enabled", "disabled")),
    "maxReasoningEffort": Field("string", enum=("low", "medium", "high")),
}
MESSAGE_FIELDS: dict[str, Field] = {
    "role": Field("string", required=True, enum=("user", "assistant")),
    "content": Field("array", required=True),
}
_BLOCKS = ("text", "image", "video", "audio", "document", "toolUse", "toolResult", "cachePoint")

STOP_REASONS = {
    StopReason.END_TURN: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
}


def _check(body: Obj) -> list[str]:
    problems = check_object(body, FIELDS)
    if problems:
        return problems
    for i, turn in enumerate(body["messages"]):
        here = f"#/messages/{i}"
        if not isinstance(turn, dict):
            problems += check_value(turn, Field("object"), here)
            continue
        problems += check_object(turn, MESSAGE_FIELDS, here)
        for j, block in enumerate(items(turn.get("content"))):
            problems += _check_block(block, f"{here}/content/{j}")
    for i, block in enumerate(items(body.get("system"))):
        problems += check_object(
            block, {"text": Field("string"), "cachePoint": Field("object")}, f"#/system/{i}"
        )
    config = body.get("inferenceConfig")
    if config is not None:
        problems += check_object(config, INFERENCE_FIELDS, "#/inferenceConfig")
        for i, stop in enumerate(items(members(config).get("stopSequences"))):
            problems += check_value(stop, Field("string"), f"#/inferenceConfig/stopSequences/{i}")
    reasoning = _reasoning_config(body)
    if reasoning is not None:
        problems += check_object(reasoning, REASONING_FIELDS, "#/inferenceConfig/reasoningConfig")
    if "toolConfig" in body:
        problems += _check_tool_config(body["toolConfig"])
    return problems


def _check_block(block: Any, here: str) -> list[str]:
    if not isinstance(block, dict):
        return check_value(block, Field("object"), here)
    keys = [k for k in block if k in _BLOCKS]
    problems = [f"{here}: extraneous key [{k}] is not permitted" for k in block if k not in _BLOCKS]
    if len(keys) != 1 and not problems:
        problems.append(f"{here}: expected exactly one content type, found: {len(keys)}")
    if "text" in block:
        problems += check_value(block["text"], Field("string"), f"{here}/text")
    if "toolUse" in block:
        problems += check_object(
            block["toolUse"],
            {
                "toolUseId": Field("string", required=True),
                "name": Field("string", required=True),
                "input": Field("any", required=True),
            },
            f"{here}/toolUse",
        )
    if "toolResult" in block:
        problems += check_object(
            block["toolResult"],
            {
                "toolUseId": Field("string", required=True),
                "content": Field("array", required=True),
                "status": Field("string", enum=("success", "error")),
            },
            f"{here}/toolResult",
        )
    return problems


def _check_tool_config(config: Any) -> list[str]:
    problems = check_object(
        config,
        {"tools": Field("array", required=True), "toolChoice": Field("object")},
        "#/toolConfig",
    )
    for i, tool in enumerate(items(members(config).get("tools"))):
        here = f"#/toolConfig/tools/{i}"
        problems += check_object(
            tool, {"toolSpec": Field("object", required=True), "cachePoint": Field("object")}, here
        )
        spec = members(tool).get("toolSpec")
        if isinstance(spec, dict):
            problems += check_object(
                spec,
                {
                    "name": Field("string", required=True),
                    "description": Field("string"),
                    "inputSchema": Field("object", required=True),
                },
                f"{here}/toolSpec",
            )
            schema = spec.get("inputSchema")
            if isinstance(schema, dict):
                problems += check_object(
                    schema, {"json": Field("object", required=True)}, f"{here}/toolSpec/inputSchema"
                )
                if isinstance(schema.get("json"), dict):
                    problems += tool_schema_problems(
                        schema["json"], f"{here}/toolSpec/inputSchema/json"
                    )
    choice = members(config).get("toolChoice")
    if isinstance(choice, dict):
        problems += check_object(
            choice,
            {"auto": Field("object"), "any": Field("object"), "tool": Field("object")},
            "#/toolConfig/toolChoice",
        )
    return problems


def _reasoning_config(body: Obj) -> Any:
    config = members(body.get("inferenceConfig"))
    return config.get("reasoningConfig", body.get("reasoningConfig"))


def _turn(role: Role, content: list[Obj]) -> ChatMessage:
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    for block in content:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(use["toolUseId"], use["name"], json.dumps(use["input"])))
        elif "toolResult" in block:
            result = block["toolResult"]
            parts = [
                p["text"] if "text" in p else json.dumps(p.get("json"))
                for p in result["content"]
                if isinstance(p, dict)
            ]
            results.append(
                ToolResult(result["toolUseId"], "\n".join(parts), result.get("status") == "error")
            )
        elif any(k in block for k in ("image", "video", "audio", "document")):
            kind = next(k for k in ("image", "video", "audio", "document") if k in block)
            raise ValidationException(
                f"The model served here does not accept {kind} input. Remove it and try again."
            )
    return ChatMessage(role, "\n".join(texts), tuple(calls), tuple(results))


def _tools(config: Obj | None) -> tuple[tuple[ToolSpec, ...], ToolChoice]:
    if config is None:
        return (), ToolChoice()
    tools = tuple(
        ToolSpec(
            t["toolSpec"]["name"],
            t["toolSpec"].get("description", ""),
            t["toolSpec"]["inputSchema"]["json"],
        )
        for t in config["tools"]
        if "toolSpec" in t
    )
    choice = config.get("toolChoice") or {"auto": {}}
    if "any" in choice:
        return tools, ToolChoice("any")
    if "tool" in choice:
        name = choice["tool"].get("name")
        if name not in {t.name for t in tools}:
            # Wording unverified.
            raise ValidationException(f"The tool {name} in toolChoice is not in toolConfig.tools.")
        return tools, ToolChoice("tool", name)
    return tools, ToolChoice()


@dataclass(slots=True)
class NovaInvocation:
    request: GenerationRequest
    show_reasoning: bool
    call_ids: CallIds = field(default_factory=lambda: CallIds(new_uuid))

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        # Recorded Nova responses carry the cache counts even without caching.
        return [
            ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", "0"),
            ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", "0"),
        ]

    def response(self, output: Completion, model_name: str) -> Obj:
        content: list[Obj] = []
        if self.show_reasoning and output.reasoning:
            content.append({"reasoningContent": {"reasoningText": {"text": output.reasoning}}})
        if output.text or not output.tool_calls:
            content.append({"text": output.text})
        for call in output.tool_calls:
            content.append(
                {
                    "toolUse": {
                        "name": call.name,
                        "toolUseId": self.call_ids(call.call_id),
                        "input": arguments_object(call.arguments),
                    }
                }
            )
        finish = output.finish
        return {
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": STOP_REASONS[finish.stop_reason],
            "usage": {
                "inputTokens": finish.input_tokens,
                "outputTokens": finish.output_tokens,
                "totalTokens": finish.input_tokens + finish.output_tokens,
                "cacheReadInputTokenCount": 0,
                "cacheWriteInputTokenCount": 0,
            },
        }

    def stream(self, model_name: str, input_tokens: int) -> NovaStream:
        return NovaStream(self.show_reasoning)


class NovaStream:
    """Nova Invoke stream objects, in recorded order."""

    def __init__(self, show_reasoning: bool) -> None:
        self.show_reasoning = show_reasoning
        self._index = 0
        self._call: tuple[str, str] | None = None  # (engine call id, provider id)
        self._arguments: list[str] = []
        self._call_ids = CallIds(new_uuid)

    def start(self) -> list[Obj]:
        return [{"messageStart": {"role": "assistant"}}]

    def _single(self, delta: Obj) -> list[Obj]:
        out = [*self._close_call()]
        index = self._index
        self._index += 1
        return [
            *out,
            {"contentBlockDelta": {"delta": delta, "contentBlockIndex": index}},
            {"contentBlockStop": {"contentBlockIndex": index}},
        ]

    def reasoning(self, piece: str) -> list[Obj]:
        if not self.show_reasoning:
            return []
        return self._single({"reasoningContent": {"text": piece}})

    def text(self, piece: str) -> list[Obj]:
        return self._single({"text": piece})

    def _close_call(self) -> list[Obj]:
        if self._call is None:
            return []
        index = self._index
        self._index += 1
        self._call = None
        arguments = "".join(self._arguments)
        self._arguments = []
        return [
            {
                "contentBlockDelta": {
                    "delta": {"toolUse": {"input": arguments}},
                    "contentBlockIndex": index,
                }
            },
            {"contentBlockStop": {"contentBlockIndex": index}},
        ]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        out: list[Obj] = []
        if self._call is None or self._call[0] != event.call_id:
            out += self._close_call()
            tool_use_id = self._call_ids(event.call_id)
            self._call = (event.call_id, tool_use_id)
            out.append(
                {
                    "contentBlockStart": {
                        "start": {"toolUse": {"toolUseId": tool_use_id, "name": event.name}},
                        "contentBlockIndex": self._index,
                    }
                }
            )
        # Nova sends a call's whole input in one delta when the call is complete.
        self._arguments.append(event.arguments)
        return out

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        return [
            *self._close_call(),
            {"messageStop": {"stopReason": STOP_REASONS[finish.stop_reason]}},
            {
                "metadata": {
                    "usage": {
                        "inputTokens": usage.input_tokens,
                        "outputTokens": usage.output_tokens,
                        "cacheReadInputTokenCount": 0,
                        "cacheWriteInputTokenCount": 0,
                    },
                    "metrics": {},
                    "trace": {},
                },
                METRICS_KEY: invocation_metrics(usage, cache=True),
            },
        ]


class NovaDialect:
    """Amazon Nova `messages-v1` bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> NovaInvocation:
        problems = _check(body)
        if problems:
            raise malformed(problems)
        messages: list[ChatMessage] = []
        system = "\n".join(b["text"] for b in body.get("system") or [] if "text" in b)
        if system:
            messages.append(ChatMessage("system", system))
        turns = body["messages"]
        if not turns or turns[0]["role"] != "user":
            # Converse's wording; Nova's own message for this is unverified.
            raise ValidationException(
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message."
            )
        for turn in turns:
            messages.append(_turn(turn["role"], turn["content"]))
        config = body.get("inferenceConfig") or {}
        max_tokens = config.get("maxTokens", config.get("max_new_tokens", DEFAULT_MAX_TOKENS))
        sampling = SamplingParams(
            max_tokens=int(max_tokens),
            temperature=_float(config.get("temperature")),
            top_p=_float(config.get("topP")),
            top_k=config.get("topK"),
            stop_sequences=tuple(config.get("stopSequences") or ()),
        )
        raw_reasoning = _reasoning_config(body)
        reasoning: ReasoningConfig | None = None
        if raw_reasoning is not None and raw_reasoning.get("type") == "enabled":
            reasoning = ReasoningConfig(effort=raw_reasoning.get("maxReasoningEffort"))
        tools, choice = _tools(body.get("toolConfig"))
        request = GenerationRequest(
            tuple(messages),
            sampling,
            call.request_id,
            tools=tools,
            tool_choice=choice,
            reasoning=reasoning,
        )
        return NovaInvocation(request, show_reasoning=reasoning is not None)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
