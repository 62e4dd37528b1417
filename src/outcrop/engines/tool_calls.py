"""How a local model that has no tool-calling format of its own writes and reads tool calls.

This module owns the plain-text protocol between Outcrop and a local model (llama.cpp engine):

- **Prompt.** `tools_in_prompt` adds the offered tools to the system text (name, description and
  JSON schema of each, and how to call one) and renders earlier turns' tool calls and tool
  results as text the model can read, so a conversation with tool use fits any chat template.
- **Calls.** A call is written as::

      <tool_call>
      {"name": "get_weather", "arguments": {"city": "Lisbon"}}
      </tool_call>

  `tool_grammar` constrains decoding so that the model writes exactly this, with arguments
  that follow the tool's schema.
- **Parsing.** `ToolCallParser` turns the model's text, token by token, back into neutral
  events: answer text stays `TokenEvent`s; a call becomes `ToolCallEvent`s, the first naming the
  tool (empty arguments) and the following ones carrying the argument JSON as it is generated,
  so a Bedrock client sees it stream the way Bedrock streams tool input. A generation that made a
  complete call ends with `StopReason.TOOL_USE`.

A turn is either answer text or one tool call: the model decides with its first token (see
`tool_grammar`), and after a call only the end of the turn may follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace

from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
    ToolCall,
    ToolCallEvent,
    ToolChoice,
    ToolResult,
    ToolSpec,
)

CALL_OPEN = "<tool_call>\n"
CALL_CLOSE = "\n</tool_call>"
RESULT_OPEN = "<tool_response>\n"
RESULT_CLOSE = "\n</tool_response>"

_HEADER = re.compile(r'\{"name": "([A-Za-z0-9_-]+)", "arguments": ')
_HEADER_TEXT = '{"name": "'


def call_header(name: str) -> str:
    """The text between CALL_OPEN and a call's arguments."""
    return '{"name": ' + json.dumps(name) + ', "arguments": '


def render_call(name: str, arguments: str) -> str:
    """A complete call as the model writes it."""
    return CALL_OPEN + call_header(name) + arguments + "}" + CALL_CLOSE


def tools_prompt(tools: Sequence[ToolSpec], choice: ToolChoice) -> str:
    """The system-prompt section that offers `tools` and explains how to call one."""
    lines = ["You can call these tools:"]
    for tool in tools:
        spec: dict[str, object] = {"name": tool.name}
        if tool.description:
            spec["description"] = tool.description
        spec["parameters"] = dict(tool.input_schema)
        lines.append(json.dumps(spec, ensure_ascii=False))
    lines += [
        "",
        "To call a tool, reply with exactly this and nothing else:",
        CALL_OPEN
        + '{"name": "<tool name>", "arguments": <the arguments as a JSON object>}'
        + CALL_CLOSE,
        f"The tool's result comes back as {RESULT_OPEN.strip()} ... {RESULT_CLOSE.strip()}.",
    ]
    if choice.mode == "any":
        lines.append("You must call one of the tools now.")
    elif choice.mode == "tool":
        lines.append(f"You must call the tool {choice.name} now.")
    elif choice.mode == "none":
        lines.append("Do not call a tool now; answer in text.")
    return "\n".join(lines)


def tools_in_prompt(request: GenerationRequest) -> GenerationRequest:
    """`request` with tools, tool calls and tool results written into its message texts.

    Requests without tools and without tool turns are returned unchanged.
    """
    has_tool_turns = any(m.tool_calls or m.tool_results for m in request.messages)
    if not request.tools and not has_tool_turns:
        return request
    names: dict[str, str] = {}
    messages: list[ChatMessage] = []
    for message in request.messages:
        parts: list[str] = []
        if message.tool_results:
            parts += [_render_result(r, names) for r in message.tool_results]
        if message.text:
            parts.append(message.text)
        for call in message.tool_calls:
            names[call.call_id] = call.name
            parts.append(render_call(call.name, _compact(call)))
        messages.append(ChatMessage(message.role, "\n".join(parts)))
    if request.tools:
        section = tools_prompt(request.tools, request.tool_choice)
        if request.tool_choice.mode == "auto" and answers_tool_results(request):
            section += "\nNow answer the user in text, using the tool results."
        if messages and messages[0].role == "system":
            messages[0] = ChatMessage("system", messages[0].text + "\n\n" + section)
        else:
            messages.insert(0, ChatMessage("system", section))
    return replace(request, messages=tuple(messages))


def answers_tool_results(request: GenerationRequest) -> bool:
    """Whether the last turn is a user turn carrying tool results."""
    last = request.messages[-1] if request.messages else None
    return last is not None and last.role == "user" and bool(last.tool_results)


def _compact(call: ToolCall) -> str:
    try:
        return json.dumps(json.loads(call.arguments), ensure_ascii=False)
    except json.JSONDecodeError:
        return call.arguments


def _render_result(result: ToolResult, names: Mapping[str, str]) -> str:
    name = names.get(result.call_id, "the tool")
    verb = "failed" if result.is_error else "returned"
    return f"{RESULT_OPEN}{name} {verb}: {result.content}{RESULT_CLOSE}"


class ToolCallParser:
    """Model text → `TokenEvent`s and `ToolCallEvent`s (see the module docstring).

    States: `start` (undecided: the text so far could still open a call), `text` (an answer),
    `header` (inside `{"name": "...", "arguments": `), `arguments` (argument JSON, streamed),
    `after` (the call is complete; the closing text is swallowed).
    """

    def __init__(self) -> None:
        self._state = "start"
        self._buffer = ""
        self._tokens = 0
        self._name = ""
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self.complete_calls = 0

    @property
    def _call_id(self) -> str:
        return f"call_{self.complete_calls}"

    def feed(self, event: TokenEvent) -> list[GenerationEvent]:
        if event.kind != "text" or self._state == "text":
            return [event]
        self._buffer += event.text
        self._tokens += event.token_count
        out: list[GenerationEvent] = []
        while self._step(out):
            pass
        return out

    def finish(self, finish: Finish) -> list[GenerationEvent]:
        """Flush what is held and pass on `finish` (as TOOL_USE when a call was completed)."""
        out: list[GenerationEvent] = []
        if self._state in ("start", "header") and self._buffer:
            # The generation ended before deciding, or inside a call's name: plain text.
            out.append(TokenEvent(self._buffer, self._tokens))
        self._buffer, self._tokens = "", 0
        if self.complete_calls and finish.stop_reason is StopReason.END_TURN:
            finish = replace(finish, stop_reason=StopReason.TOOL_USE)
        out.append(finish)
        return out

    def _step(self, out: list[GenerationEvent]) -> bool:
        """Consume what the current state can; True when the state changed (run again)."""
        if self._state == "start":
            if self._buffer.startswith(CALL_OPEN):
                self._buffer = self._buffer[len(CALL_OPEN) :]
                self._state = "header"
                return True
            if CALL_OPEN.startswith(self._buffer):
                return False
            self._state = "text"
            out.append(TokenEvent(self._buffer, self._tokens))
            self._buffer, self._tokens = "", 0
            return False
        if self._state == "header":
            match = _HEADER.match(self._buffer)
            if match is None:
                if _could_become_header(self._buffer):
                    return False
                # Not the grammar's form (no grammar was applied): show it as text.
                self._state = "text"
                out.append(TokenEvent(CALL_OPEN + self._buffer, self._tokens))
                self._buffer, self._tokens = "", 0
                return False
            self._name = match.group(1)
            out.append(ToolCallEvent(self._call_id, self._name, "", self._tokens))
            self._buffer, self._tokens = self._buffer[match.end() :], 0
            self._state = "arguments"
            return True
        if self._state == "arguments":
            end = self._scan()
            piece = self._buffer if end is None else self._buffer[:end]
            if piece:
                out.append(ToolCallEvent(self._call_id, self._name, piece, self._tokens))
                self._tokens = 0
            if end is None:
                self._buffer = ""
                return False
            self._buffer = self._buffer[end:]
            self._state = "after"
            self.complete_calls += 1
            return True
        # after: the closing `}` and `</tool_call>` are the protocol's, not the caller's.
        self._buffer, self._tokens = "", 0
        return False

    def _scan(self) -> int | None:
        """Where the argument object ends in the buffer (exclusive), or None if it goes on."""
        for index, char in enumerate(self._buffer):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    return index + 1
        return None


def _could_become_header(text: str) -> bool:
    if len(text) <= len(_HEADER_TEXT):
        return _HEADER_TEXT.startswith(text)
    if not text.startswith(_HEADER_TEXT):
        return False
    rest = text[len(_HEADER_TEXT) :]
    name = re.match(r"[A-Za-z0-9_-]*", rest)
    assert name is not None
    tail = rest[name.end() :]
    return '", "arguments": '.startswith(tail)


async def parse_tool_calls(
    events: AsyncGenerator[GenerationEvent, None],
) -> AsyncGenerator[GenerationEvent, None]:
    """Engine events with the model's tool-call text turned into `ToolCallEvent`s."""
    parser = ToolCallParser()
    try:
        async for event in events:
            if isinstance(event, TokenEvent):
                for parsed in parser.feed(event):
                    yield parsed
            elif isinstance(event, Finish):
                for parsed in parser.finish(event):
                    yield parsed
            else:
                yield event
    finally:
        await events.aclose()
