"""OpenAI Chat Completions-style bodies, shared by Mistral chat, AI21 Jamba and OpenAI gpt-oss.

Reads `messages` (roles system / developer / user / assistant with `tool_calls` / tool with
`tool_call_id`), `tools` (`{"type": "function", "function": {...}}`) and `tool_choice` into
neutral types, checking each message with Bedrock's everit-style messages. The response and
stream shapes differ per family and live in the family modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from outcrop.dialects.schema import Field, check_object, check_value, tool_schema_problems
from outcrop.types import (
    ChatMessage,
    Role,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
)
from outcrop.wire.errors import ValidationException

_MESSAGE_FIELDS: dict[str, Field] = {
    "role": Field("string", required=True),
    "content": Field("any"),
    "name": Field("string"),
    "tool_calls": Field("array"),
    "tool_call_id": Field("string"),
    # OpenAI's newer fields; tolerated (their content is not shown to the model).
    "refusal": Field("any"),
    "reasoning_content": Field("any"),
    "prefix": Field("boolean"),
}


def check_messages(
    messages: list[Any], roles: tuple[str, ...], pointer: str = "#/messages"
) -> list[str]:
    """Violations in a Chat Completions `messages` array."""
    problems: list[str] = []
    for i, message in enumerate(messages):
        here = f"{pointer}/{i}"
        if not isinstance(message, dict):
            problems += check_value(message, Field("object"), here)
            continue
        problems += check_object(message, _MESSAGE_FIELDS, here)
        role = message.get("role")
        if isinstance(role, str) and role not in roles:
            problems.append(f"{here}/role: {role} is not a valid enum value")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            problems.append(f"{here}/content: expected type: String, found: JSONObject")
    return problems


def content_text(content: Any) -> str:
    """The text of a message's `content` (a string or a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind in ("image_url", "input_image", "image", "input_audio", "file"):
            raise ValidationException(
                f"The model served here does not accept {kind} input. Remove it and try again."
            )
    return "\n".join(parts)


def _role(name: str) -> Role:
    if name in ("system", "developer"):
        return "system"
    if name == "assistant":
        return "assistant"
    return "user"


def to_messages(messages: list[Mapping[str, Any]]) -> list[ChatMessage]:
    """Neutral turns: tool messages become tool results of a user turn; consecutive turns of
    one role are merged (system turns stay separate)."""
    out: list[ChatMessage] = []
    for message in messages:
        role_name = str(message.get("role"))
        role = _role(role_name)
        if role_name == "tool":
            result = ToolResult(
                str(message.get("tool_call_id", "")), content_text(message.get("content"))
            )
            turn = ChatMessage("user", "", tool_results=(result,))
        else:
            calls = tuple(
                ToolCall(
                    str(call.get("id", "")),
                    str(call.get("function", {}).get("name", "")),
                    _arguments_text(call.get("function", {}).get("arguments", "{}")),
                )
                for call in message.get("tool_calls") or ()
                if isinstance(call, dict)
            )
            turn = ChatMessage(role, content_text(message.get("content")), tool_calls=calls)
        if out and out[-1].role == turn.role and turn.role != "system":
            last = out[-1]
            text = "\n\n".join(t for t in (last.text, turn.text) if t)
            out[-1] = ChatMessage(
                turn.role,
                text,
                last.tool_calls + turn.tool_calls,
                last.tool_results + turn.tool_results,
            )
        else:
            out.append(turn)
    return out


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def check_tools(tools: list[Any], pointer: str = "#/tools") -> list[str]:
    problems: list[str] = []
    for i, tool in enumerate(tools):
        here = f"{pointer}/{i}"
        if not isinstance(tool, dict):
            problems += check_value(tool, Field("object"), here)
            continue
        problems += check_object(
            tool,
            {"type": Field("string", enum=("function",)), "function": Field("object", True)},
            here,
        )
        function = tool.get("function")
        if isinstance(function, dict):
            problems += check_object(
                function,
                {
                    "name": Field("string", required=True),
                    "description": Field("string"),
                    "parameters": Field("object"),
                    "strict": Field("boolean"),
                },
                f"{here}/function",
            )
            if isinstance(function.get("parameters"), dict):
                problems += tool_schema_problems(
                    function["parameters"], f"{here}/function/parameters"
                )
    return problems


def to_tools(tools: list[Mapping[str, Any]]) -> tuple[ToolSpec, ...]:
    return tuple(
        ToolSpec(
            str(t["function"]["name"]),
            str(t["function"].get("description", "")),
            t["function"].get("parameters") or {"type": "object"},
        )
        for t in tools
    )


def to_tool_choice(
    choice: Any, tools: tuple[ToolSpec, ...], *, forcing_word: str = "required"
) -> ToolChoice:
    """`"auto"`, `"none"`, the family's word for "must call a tool" (`required`, or `any` for
    Mistral), or `{"type": "function", "function": {"name": ...}}`."""
    if choice is None or choice == "auto":
        return ToolChoice()
    if choice == "none":
        return ToolChoice("none")
    if choice in (forcing_word, "any", "required"):
        return ToolChoice("any")
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        if isinstance(name, str) and name in {t.name for t in tools}:
            return ToolChoice("tool", name)
        raise ValidationException(f"Invalid tool_choice: tool '{name}' is not in tools.")
    raise ValidationException(f"Invalid tool_choice: {json.dumps(choice)}.")


class ToolCallDeltas:
    """Streamed `tool_calls` deltas in the Chat Completions shape: the first fragment of a call
    carries its index, id, type and name; later fragments only more argument text."""

    def __init__(self, call_ids: Callable[[str], str]) -> None:
        self._call_ids = call_ids
        self._index: dict[str, int] = {}

    def delta(self, event: ToolCallEvent) -> dict[str, Any] | None:
        """The `tool_calls` entry for `event`, or None for an empty continuation."""
        if event.call_id not in self._index:
            index = self._index[event.call_id] = len(self._index)
            return {
                "index": index,
                "id": self._call_ids(event.call_id),
                "type": "function",
                "function": {"name": event.name, "arguments": event.arguments},
            }
        if event.arguments:
            return {"index": self._index[event.call_id], "function": {"arguments": event.arguments}}
        return None
