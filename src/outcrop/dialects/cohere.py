"""Cohere on InvokeModel: Command R / R+ chat and legacy Command generate
(reference/dialects.md §2.6).

Command R / R+: `message` + `chat_history` (USER / CHATBOT / SYSTEM / TOOL), `preamble`,
`documents` (shown to the model as part of the system turn), `tools` with
`parameter_definitions` (turned into JSON schemas), `tool_results`. Response as recorded:
`response_id`, `text`, `generation_id`, `chat_history` (the history plus this exchange) and
`finish_reason` (`COMPLETE`, `MAX_TOKENS`, `STOP_SEQUENCE`); tool calls as `tool_calls: [{"name",
"parameters"}]`. The stream is Cohere's v1 chat stream (no Bedrock capture exists; inferred from
Cohere's API and client parsers): `stream-start`, `text-generation` per piece,
`tool-calls-generation` when the model calls tools, `stream-end` with `finish_reason` and the
whole `response`, carrying the invocation metrics. Every object has `is_finished`, which
langchain-aws reads on every chunk; langchain-aws also reads `text` on every unfinished chunk, so
`stream-start` carries an empty `text` too (a client-compatibility choice).

Legacy Command (`cohere.command-text-v14`, `-light-`): `prompt` (continued raw unless it uses a
known chat markup), `max_tokens`, `temperature`, `p`, `k`, `stop_sequences`, ... Response
`{"id", "generations": [{"id", "text", "finish_reason"}], "prompt"}` (`id` is the request ID).
Stream as recorded: one chunk carrying the whole answer and the metrics. With `"stream": true` in
the body, Cohere's token stream (`{"text", "is_finished": false}` ... then `{"is_finished": true,
"finish_reason", "response"}`) is sent instead (unverified on Bedrock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from outcrop.dialects.base import (
    METRICS_KEY,
    Completion,
    InvokeCall,
    Obj,
    TextOnlyEncoder,
    arguments_object,
    invocation_metrics,
    new_uuid,
)
from outcrop.dialects.prompts import prompt_request
from outcrop.dialects.schema import Field, check_object, check_value, malformed, members
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
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
from outcrop.wire.errors import NotImplementedYet

DEFAULT_MAX_TOKENS = 512  # unverified default (Command R documents none; legacy says 20)

CHAT_FIELDS: dict[str, Field] = {
    "message": Field("string", required=True),
    "chat_history": Field("array"),
    "documents": Field("array"),
    "search_queries_only": Field("boolean"),
    "preamble": Field("string"),
    "max_tokens": Field("integer", minimum=1),
    "temperature": Field("number", minimum=0, maximum=1),
    "p": Field("number", minimum=0.01, maximum=0.99),
    "k": Field("number", minimum=0, maximum=500),
    "prompt_truncation": Field("string", enum=("OFF", "AUTO_PRESERVE_ORDER")),
    "frequency_penalty": Field("number", minimum=0, maximum=1),
    "presence_penalty": Field("number", minimum=0, maximum=1),
    "seed": Field("integer"),
    "return_prompt": Field("boolean"),
    "tools": Field("array"),
    "tool_results": Field("array"),
    "stop_sequences": Field("array", max_items=4),
    "raw_prompting": Field("boolean"),
}
GENERATE_FIELDS: dict[str, Field] = {
    "prompt": Field("string", required=True),
    "max_tokens": Field("integer", minimum=1),
    "temperature": Field("number", minimum=0, maximum=5),
    "p": Field("number", minimum=0, maximum=1),
    "k": Field("number", minimum=0, maximum=500),
    "stop_sequences": Field("array", max_items=4),
    "return_likelihoods": Field("string", enum=("GENERATION", "ALL", "NONE")),
    "stream": Field("boolean"),
    "num_generations": Field("integer", minimum=1, maximum=5),
    "logit_bias": Field("object"),
    "truncate": Field("string", enum=("NONE", "START", "END")),
}
_HISTORY_ROLES = ("USER", "CHATBOT", "SYSTEM", "TOOL")
_JSON_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "list": "array",
    "dict": "object",
}


def chat_finish_reason(stop: StopReason) -> str:
    return {
        StopReason.END_TURN: "COMPLETE",
        StopReason.TOOL_USE: "COMPLETE",
        StopReason.MAX_TOKENS: "MAX_TOKENS",
        StopReason.STOP_SEQUENCE: "STOP_SEQUENCE",
    }[stop]


def generate_finish_reason(stop: StopReason) -> str:
    return "MAX_TOKENS" if stop is StopReason.MAX_TOKENS else "COMPLETE"


def _sampling(body: Obj) -> SamplingParams:
    temperature = body.get("temperature")
    p = body.get("p")
    k = body.get("k")
    return SamplingParams(
        max_tokens=int(body.get("max_tokens", DEFAULT_MAX_TOKENS)),
        temperature=None if temperature is None else float(temperature),
        top_p=None if p is None else float(p),
        top_k=None if not k else int(k),
        stop_sequences=tuple(body.get("stop_sequences") or ()),
        seed=body.get("seed"),
    )


def _check_strings(values: list[Any], pointer: str) -> list[str]:
    return [
        p for i, v in enumerate(values) for p in check_value(v, Field("string"), f"{pointer}/{i}")
    ]


# -- Command R / R+ ----------------------------------------------------------------------------


def _tool_spec(tool: Obj) -> ToolSpec:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, definition in (tool.get("parameter_definitions") or {}).items():
        kind = _JSON_TYPES.get(str(definition.get("type", "str")).lower(), "string")
        properties[name] = {"type": kind, "description": definition.get("description", "")}
        if definition.get("required"):
            required.append(name)
    schema = {"type": "object", "properties": properties, "required": required}
    return ToolSpec(tool["name"], tool.get("description", ""), schema)


def _history_turn(entry: Obj) -> ChatMessage:
    roles: dict[str, Role] = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system"}
    role = roles.get(entry["role"], "user")
    calls = tuple(
        ToolCall(f"{c.get('name')}_{i}", str(c.get("name")), json.dumps(c.get("parameters", {})))
        for i, c in enumerate(entry.get("tool_calls") or [])
    )
    return ChatMessage(role, str(entry.get("message", "")), tool_calls=calls)


def _check_chat(body: Obj) -> list[str]:
    problems = check_object(body, CHAT_FIELDS)
    if problems:
        return problems
    for i, entry in enumerate(body.get("chat_history") or []):
        problems += check_object(
            entry,
            {
                "role": Field("string", required=True, enum=_HISTORY_ROLES),
                "message": Field("string"),
                "tool_calls": Field("array"),
                "tool_results": Field("array"),
            },
            f"#/chat_history/{i}",
        )
    for i, tool in enumerate(body.get("tools") or []):
        problems += check_object(
            tool,
            {
                "name": Field("string", required=True),
                "description": Field("string", required=True),
                "parameter_definitions": Field("object"),
            },
            f"#/tools/{i}",
        )
        for name, definition in members(members(tool).get("parameter_definitions")).items():
            problems += check_object(
                definition,
                {
                    "type": Field("string"),
                    "description": Field("string"),
                    "required": Field("boolean"),
                },
                f"#/tools/{i}/parameter_definitions/{name}",
            )
    for i, result in enumerate(body.get("tool_results") or []):
        problems += check_object(
            result,
            {"call": Field("object", required=True), "outputs": Field("array", required=True)},
            f"#/tool_results/{i}",
        )
    problems += _check_strings(body.get("stop_sequences") or [], "#/stop_sequences")
    return problems


@dataclass(slots=True)
class CommandRInvocation:
    request: GenerationRequest
    message: str
    history: list[Obj]
    generation_id: str = field(default_factory=new_uuid)

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def _history(self, text: str) -> list[Obj]:
        return [
            *self.history,
            {"role": "USER", "message": self.message},
            {"role": "CHATBOT", "message": text},
        ]

    def body(self, text: str, calls: list[Obj], finish: Finish) -> Obj:
        out: Obj = {
            "response_id": new_uuid(),
            "text": text,
            "generation_id": self.generation_id,
            "chat_history": self._history(text),
            "finish_reason": chat_finish_reason(finish.stop_reason),
        }
        if calls:
            out["tool_calls"] = calls
        return out

    def response(self, output: Completion, model_name: str) -> Obj:
        calls = [
            {"name": c.name, "parameters": arguments_object(c.arguments)} for c in output.tool_calls
        ]
        return self.body(output.text, calls, output.finish)

    def stream(self, model_name: str, input_tokens: int) -> CommandRStream:
        return CommandRStream(self)


class CommandRStream(TextOnlyEncoder):
    """Cohere v1 chat stream events (inferred; see the module docstring)."""

    def __init__(self, invocation: CommandRInvocation) -> None:
        self.invocation = invocation
        self._text: list[str] = []
        self._calls: dict[str, tuple[str, list[str]]] = {}

    def start(self) -> list[Obj]:
        return [
            {
                "is_finished": False,
                "event_type": "stream-start",
                "generation_id": self.invocation.generation_id,
                "text": "",
            }
        ]

    def text(self, piece: str) -> list[Obj]:
        self._text.append(piece)
        return [{"is_finished": False, "event_type": "text-generation", "text": piece}]

    def tool_call(self, event: ToolCallEvent) -> list[Obj]:
        self._calls.setdefault(event.call_id, (event.name, []))[1].append(event.arguments)
        return []

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        calls = [
            {"name": name, "parameters": arguments_object("".join(parts))}
            for name, parts in self._calls.values()
        ]
        out: list[Obj] = []
        if calls:
            out.append(
                {
                    "is_finished": False,
                    "event_type": "tool-calls-generation",
                    "text": "",
                    "tool_calls": calls,
                }
            )
        text = "".join(self._text)
        out.append(
            {
                "is_finished": True,
                "event_type": "stream-end",
                "finish_reason": chat_finish_reason(finish.stop_reason),
                "response": self.invocation.body(text, calls, finish),
                METRICS_KEY: invocation_metrics(usage),
            }
        )
        return out


class CommandRDialect:
    """Cohere Command R / R+ chat bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> CommandRInvocation:
        problems = _check_chat(body)
        if problems:
            raise malformed(problems)
        messages: list[ChatMessage] = []
        system = [body["preamble"]] if body.get("preamble") else []
        for document in body.get("documents") or []:
            system.append("Document: " + json.dumps(document, ensure_ascii=False))
        if system:
            messages.append(ChatMessage("system", "\n\n".join(system)))
        history = list(body.get("chat_history") or [])
        messages += [_history_turn(entry) for entry in history]
        results = tuple(
            ToolResult(
                f"{r['call'].get('name')}_{i}",
                json.dumps(r["outputs"], ensure_ascii=False),
            )
            for i, r in enumerate(body.get("tool_results") or [])
        )
        messages.append(ChatMessage("user", body["message"], tool_results=results))
        tools = tuple(_tool_spec(t) for t in body.get("tools") or [])
        request = GenerationRequest(
            tuple(messages),
            _sampling(body),
            call.request_id,
            tools=tools,
            # Cohere v1 has no tool_choice: the model decides, and after tool results it answers.
            tool_choice=ToolChoice("none") if results else ToolChoice(),
        )
        return CommandRInvocation(request, body["message"], history)


# -- legacy Command ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    request: GenerationRequest
    prompt: str
    request_id: str
    token_stream: bool
    generation_id: str = field(default_factory=new_uuid)

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def body(self, text: str, finish: Finish) -> Obj:
        return {
            "id": self.request_id,
            "generations": [
                {
                    "id": self.generation_id,
                    "text": text,
                    "finish_reason": generate_finish_reason(finish.stop_reason),
                }
            ],
            "prompt": self.prompt,
        }

    def response(self, output: Completion, model_name: str) -> Obj:
        return self.body(output.text, output.finish)

    def stream(self, model_name: str, input_tokens: int) -> CommandStream:
        return CommandStream(self)


class CommandStream(TextOnlyEncoder):
    """One whole-answer chunk (as recorded), or Cohere's token stream when asked for."""

    def __init__(self, invocation: CommandInvocation) -> None:
        self.invocation = invocation
        self._text: list[str] = []

    def text(self, piece: str) -> list[Obj]:
        self._text.append(piece)
        if self.invocation.token_stream:
            return [{"text": piece, "is_finished": False}]
        return []

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        body = self.invocation.body("".join(self._text), finish)
        if self.invocation.token_stream:
            generation = body["generations"][0]
            return [
                {
                    "is_finished": True,
                    "finish_reason": generation["finish_reason"],
                    "response": body,
                    METRICS_KEY: invocation_metrics(usage),
                }
            ]
        # Key order as recorded for the stream chunk: generations (finish_reason, id, text), id,
        # prompt, then the metrics.
        generation = body["generations"][0]
        return [
            {
                "generations": [
                    {
                        "finish_reason": generation["finish_reason"],
                        "id": generation["id"],
                        "text": generation["text"],
                    }
                ],
                "id": body["id"],
                "prompt": body["prompt"],
                METRICS_KEY: invocation_metrics(usage),
            }
        ]


class CommandDialect:
    """Cohere legacy Command (generate) bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> CommandInvocation:
        problems = check_object(body, GENERATE_FIELDS)
        if not problems:
            problems = _check_strings(body.get("stop_sequences") or [], "#/stop_sequences")
        if problems:
            raise malformed(problems)
        if body.get("num_generations", 1) != 1:
            raise NotImplementedYet(
                "Outcrop serves num_generations = 1 only; send one request per generation."
            )
        request = prompt_request(body["prompt"], _sampling(body), call.request_id)
        return CommandInvocation(
            request, body["prompt"], call.request_id, token_stream=bool(body.get("stream"))
        )
