"""The Nova Sonic event protocol: input events checked against the session's state, output events
built with the ids that link them (wire.md §4.4).

Every event is `{"event": {"<name>": {...}}}` inside a `chunk`. Input, in order: `sessionStart`,
`promptStart`, content blocks (`contentStart`, then `textInput` / `audioInput` / `toolResult`,
then `contentEnd`; the first block of a prompt is the SYSTEM text), `promptEnd`, `sessionEnd`.
`InputProtocol.receive` parses one event, checks it may come now, and returns a typed value, or
raises `ProtocolError` with the message the client gets in a `validationException`. Output
events come from `OutputEvents`, which carries the sessionId and promptName and makes the
completion and content ids.

Sans-IO: JSON bytes in, dataclasses and dicts out. AWS documents the events but not its
validation messages; the messages here are Outcrop's, written to say what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from outcrop.wire.jsonbody import JsonInputError, load_json

ROLES = ("SYSTEM", "USER", "ASSISTANT", "TOOL", "SYSTEM_SPEECH")
CONTENT_TYPES = ("TEXT", "AUDIO", "TOOL")
SAMPLE_RATES = (8000, 16000, 24000)
ENDPOINTING = ("HIGH", "MEDIUM", "LOW")
INTERRUPTED_TEXT = '{ "interrupted" : true }'
"""The ASSISTANT text Nova Sonic sends on barge-in; clients match it literally."""

_PROMPT_EVENTS = (
    "contentStart",
    "textInput",
    "audioInput",
    "toolResult",
    "contentEnd",
    "promptEnd",
)

StopReason = Literal["PARTIAL_TURN", "END_TURN", "INTERRUPTED", "TOOL_USE"]
GenerationStage = Literal["SPECULATIVE", "FINAL"]


class ProtocolError(ValueError):
    """An input event that is malformed or out of order; ends the session with a
    `validationException` carrying this message."""


# -- input values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None


@dataclass(frozen=True, slots=True)
class SessionStart:
    inference: InferenceConfig
    endpointing: str = "MEDIUM"


@dataclass(frozen=True, slots=True)
class AudioOutputConfig:
    sample_rate: int
    voice_id: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    input_schema: str
    """The JSON schema as the client sent it (a string holding a JSON object)."""

    def schema(self) -> dict[str, Any]:
        """The input schema, parsed."""
        value = json.loads(self.input_schema)
        assert isinstance(value, dict)
        return value


@dataclass(frozen=True, slots=True)
class PromptStart:
    prompt_name: str
    audio_output: AudioOutputConfig | None
    tools: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ContentStart:
    prompt_name: str
    content_name: str
    type: str
    role: str
    interactive: bool
    sample_rate: int | None = None
    """AUDIO blocks: the input rate (Hz)."""
    tool_use_id: str | None = None
    """TOOL blocks: the toolUse this result answers."""


@dataclass(frozen=True, slots=True)
class TextInput:
    block: ContentStart
    content: str


@dataclass(frozen=True, slots=True)
class AudioInput:
    block: ContentStart
    pcm: bytes
    """16-bit signed little-endian mono samples at `block.sample_rate`."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    block: ContentStart
    content: str


@dataclass(frozen=True, slots=True)
class ContentEnd:
    block: ContentStart


@dataclass(frozen=True, slots=True)
class PromptEnd:
    prompt_name: str


@dataclass(frozen=True, slots=True)
class SessionEnd:
    pass


InputEvent = (
    SessionStart
    | PromptStart
    | ContentStart
    | TextInput
    | AudioInput
    | ToolResult
    | ContentEnd
    | PromptEnd
    | SessionEnd
)


# -- input state machine -----------------------------------------------------------------------


@dataclass(slots=True)
class InputProtocol:
    """The input side of one session: which events may come next, and their parsed values."""

    session_started: bool = False
    session_ended: bool = False
    prompt: PromptStart | None = None
    blocks_in_prompt: int = 0
    open_blocks: dict[str, ContentStart] = field(default_factory=dict)
    used_names: set[str] = field(default_factory=set)
    pending_tool_uses: set[str] = field(default_factory=set)
    """toolUseIds the model emitted and no result has answered yet."""

    def expect_tool_result(self, tool_use_id: str) -> None:
        self.pending_tool_uses.add(tool_use_id)

    def receive(self, raw: bytes) -> InputEvent:
        name, body = _envelope(raw)
        if self.session_ended:
            raise ProtocolError(f"Received {name} after sessionEnd.")
        if name == "sessionStart":
            return self._session_start(body)
        if not self.session_started:
            raise ProtocolError(f"The first event must be sessionStart, not {name}.")
        if name == "promptStart":
            return self._prompt_start(body)
        if name == "sessionEnd":
            self.session_ended = True
            return SessionEnd()
        if name not in _PROMPT_EVENTS:
            raise ProtocolError(f"Unknown input event {name}.")
        prompt = self.prompt
        if prompt is None:
            raise ProtocolError(f"Received {name} before promptStart.")
        prompt_name = _string(body, "promptName", name)
        if prompt_name != prompt.prompt_name:
            raise ProtocolError(
                f"{name} names promptName {prompt_name!r}, but the open prompt is "
                f"{prompt.prompt_name!r}."
            )
        if name == "promptEnd":
            self.prompt = None
            self.open_blocks.clear()
            return PromptEnd(prompt_name)
        if name == "contentStart":
            return self._content_start(body, prompt_name)
        content_name = _string(body, "contentName", name)
        block = self.open_blocks.get(content_name)
        if block is None:
            raise ProtocolError(f"{name} names contentName {content_name!r}, which is not open.")
        if name == "contentEnd":
            del self.open_blocks[content_name]
            return ContentEnd(block)
        return self._content(name, body, block)

    def _session_start(self, body: dict[str, Any]) -> SessionStart:
        if self.session_started:
            raise ProtocolError("sessionStart was already received.")
        config = body.get("inferenceConfiguration", {})
        if not isinstance(config, dict):
            raise ProtocolError("sessionStart.inferenceConfiguration must be an object.")
        max_tokens = config.get("maxTokens", 1024)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ProtocolError("inferenceConfiguration.maxTokens must be a positive integer.")
        temperature = _number(config, "temperature", 0.0, 1.0)
        top_p = _number(config, "topP", 0.0, 1.0)
        endpointing = "MEDIUM"
        turn = body.get("turnDetectionConfiguration")
        if turn is not None:
            if not isinstance(turn, dict) or turn.get("endpointingSensitivity") not in ENDPOINTING:
                raise ProtocolError(
                    "turnDetectionConfiguration.endpointingSensitivity must be one of "
                    "HIGH, MEDIUM, LOW."
                )
            endpointing = str(turn["endpointingSensitivity"])
        self.session_started = True
        return SessionStart(InferenceConfig(max_tokens, temperature, top_p), endpointing)

    def _prompt_start(self, body: dict[str, Any]) -> PromptStart:
        if self.prompt is not None:
            raise ProtocolError(f"Prompt {self.prompt.prompt_name!r} is still open.")
        prompt_name = _string(body, "promptName", "promptStart")
        audio = body.get("audioOutputConfiguration")
        audio_config = None
        if audio is not None:
            audio_config = _audio_output(audio)
        tools: list[ToolSpec] = []
        tool_config = body.get("toolConfiguration")
        if tool_config is not None:
            tools = _tools(tool_config)
        prompt = PromptStart(prompt_name, audio_config, tuple(tools))
        self.prompt = prompt
        self.blocks_in_prompt = 0
        return prompt

    def _content_start(self, body: dict[str, Any], prompt_name: str) -> ContentStart:
        content_name = _string(body, "contentName", "contentStart")
        if content_name in self.used_names:
            raise ProtocolError(f"contentName {content_name!r} was already used.")
        kind = body.get("type")
        if kind not in CONTENT_TYPES:
            raise ProtocolError("contentStart.type must be one of TEXT, AUDIO, TOOL.")
        role = body.get("role")
        if role not in ROLES:
            raise ProtocolError(
                "contentStart.role must be one of SYSTEM, USER, ASSISTANT, TOOL, SYSTEM_SPEECH."
            )
        if self.blocks_in_prompt == 0 and role != "SYSTEM":
            raise ProtocolError("The first content of a prompt must have the SYSTEM role.")
        interactive = bool(body.get("interactive", False))
        sample_rate = None
        tool_use_id = None
        if kind == "AUDIO":
            if role != "USER":
                raise ProtocolError("AUDIO content must have the USER role.")
            if any(b.type == "AUDIO" for b in self.open_blocks.values()):
                raise ProtocolError("An AUDIO content is already open in this prompt.")
            sample_rate = _audio_input(body.get("audioInputConfiguration"))
        elif kind == "TOOL":
            if role != "TOOL":
                raise ProtocolError("TOOL content must have the TOOL role.")
            config = body.get("toolResultInputConfiguration")
            if not isinstance(config, dict) or not isinstance(config.get("toolUseId"), str):
                raise ProtocolError("TOOL content needs toolResultInputConfiguration.toolUseId.")
            tool_use_id = config["toolUseId"]
            if tool_use_id not in self.pending_tool_uses:
                raise ProtocolError(f"No toolUse with toolUseId {tool_use_id!r} awaits a result.")
        elif role == "TOOL":
            raise ProtocolError("The TOOL role is only for TOOL content.")
        else:
            config = body.get("textInputConfiguration", {"mediaType": "text/plain"})
            if not isinstance(config, dict) or config.get("mediaType", "text/plain") != (
                "text/plain"
            ):
                raise ProtocolError("textInputConfiguration.mediaType must be text/plain.")
        block = ContentStart(
            prompt_name, content_name, str(kind), str(role), interactive, sample_rate, tool_use_id
        )
        self.open_blocks[content_name] = block
        self.used_names.add(content_name)
        self.blocks_in_prompt += 1
        return block

    def _content(self, name: str, body: dict[str, Any], block: ContentStart) -> InputEvent:
        expected = {"TEXT": "textInput", "AUDIO": "audioInput", "TOOL": "toolResult"}[block.type]
        if name != expected:
            raise ProtocolError(
                f"{name} was sent to {block.type} content {block.content_name!r}; it takes "
                f"{expected}."
            )
        content = body.get("content")
        if not isinstance(content, str):
            raise ProtocolError(f"{name}.content must be a string.")
        if name == "textInput":
            return TextInput(block, content)
        if name == "toolResult":
            assert block.tool_use_id is not None
            self.pending_tool_uses.discard(block.tool_use_id)
            return ToolResult(block, content)
        try:
            pcm = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("audioInput.content is not valid base64.") from None
        if len(pcm) % 2:
            raise ProtocolError(
                "audioInput.content must hold whole 16-bit samples (an even number of bytes)."
            )
        return AudioInput(block, pcm)


def _envelope(raw: bytes) -> tuple[str, dict[str, Any]]:
    try:
        value = load_json(raw)
    except JsonInputError:
        raise ProtocolError("An input event is not valid JSON.") from None
    event = value.get("event") if isinstance(value, dict) else None
    if not isinstance(event, dict) or len(event) != 1:
        raise ProtocolError('An input event must be {"event": {"<name>": {...}}}.')
    ((name, body),) = event.items()
    if not isinstance(body, dict):
        raise ProtocolError(f"The {name} event must be an object.")
    return str(name), body


def _string(body: dict[str, Any], key: str, event: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{event}.{key} is required.")
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ProtocolError(f"inferenceConfiguration.{key} must be a number from {low} to {high}.")
    return float(value)


def _audio_output(config: object) -> AudioOutputConfig:
    if not isinstance(config, dict):
        raise ProtocolError("audioOutputConfiguration must be an object.")
    _lpcm(config, "audioOutputConfiguration")
    voice = config.get("voiceId")
    if not isinstance(voice, str) or not voice:
        raise ProtocolError("audioOutputConfiguration.voiceId is required.")
    return AudioOutputConfig(int(config["sampleRateHertz"]), voice)


def _audio_input(config: object) -> int:
    if not isinstance(config, dict):
        raise ProtocolError("AUDIO content needs audioInputConfiguration.")
    _lpcm(config, "audioInputConfiguration")
    return int(config["sampleRateHertz"])


def _lpcm(config: dict[str, Any], where: str) -> None:
    if config.get("mediaType") != "audio/lpcm":
        raise ProtocolError(f"{where}.mediaType must be audio/lpcm.")
    rate = config.get("sampleRateHertz")
    if rate not in SAMPLE_RATES:
        raise ProtocolError(f"{where}.sampleRateHertz must be 8000, 16000 or 24000, not {rate}.")
    if config.get("sampleSizeBits", 16) != 16:
        raise ProtocolError(f"{where}.sampleSizeBits must be 16.")
    if config.get("channelCount", 1) != 1:
        raise ProtocolError(f"{where}.channelCount must be 1.")
    if config.get("encoding", "base64") != "base64":
        raise ProtocolError(f"{where}.encoding must be base64.")


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _tools(config: object) -> list[ToolSpec]:
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list):
        raise ProtocolError("toolConfiguration.tools must be a list.")
    specs: list[ToolSpec] = []
    for tool in tools:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ProtocolError("Each tool needs a toolSpec with a name.")
        schema_holder = spec.get("inputSchema", {})
        if not isinstance(schema_holder, dict):
            raise ProtocolError("toolSpec.inputSchema must be an object.")
        schema = schema_holder.get("json", "{}")
        if not isinstance(schema, str):
            schema = json.dumps(schema)
        if not isinstance(_json_or_none(schema), dict):
            raise ProtocolError("toolSpec.inputSchema.json must be a JSON object (a JSON schema).")
        specs.append(ToolSpec(spec["name"], str(spec.get("description", "")), schema))
    return specs


# -- output events -----------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class OutputEvents:
    """Builds output events for one prompt; every event names the session and prompt."""

    prompt_name: str
    session_id: str = field(default_factory=new_id)

    def _ids(self, completion_id: str) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "promptName": self.prompt_name,
            "completionId": completion_id,
        }

    def completion_start(self, completion_id: str) -> dict[str, Any]:
        return _event("completionStart", self._ids(completion_id))

    def completion_end(self, completion_id: str, stop_reason: str) -> dict[str, Any]:
        return _event("completionEnd", {**self._ids(completion_id), "stopReason": stop_reason})

    def text_start(
        self, completion_id: str, content_id: str, role: str, stage: GenerationStage
    ) -> dict[str, Any]:
        return _event(
            "contentStart",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "type": "TEXT",
                "role": role,
                "additionalModelFields": json.dumps(
                    {"generationStage": stage}, separators=(",", ":")
                ),
                "textOutputConfiguration": {"mediaType": "text/plain"},
            },
        )

    def text_output(
        self, completion_id: str, content_id: str, role: str, text: str
    ) -> dict[str, Any]:
        return _event(
            "textOutput",
            {**self._ids(completion_id), "contentId": content_id, "content": text, "role": role},
        )

    def audio_start(self, completion_id: str, content_id: str, sample_rate: int) -> dict[str, Any]:
        return _event(
            "contentStart",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "type": "AUDIO",
                "role": "ASSISTANT",
                "audioOutputConfiguration": {
                    "mediaType": "audio/lpcm",
                    "sampleRateHertz": sample_rate,
                    "sampleSizeBits": 16,
                    "channelCount": 1,
                    "encoding": "base64",
                },
            },
        )

    def audio_output(self, completion_id: str, content_id: str, pcm: bytes) -> dict[str, Any]:
        return _event(
            "audioOutput",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "content": base64.b64encode(pcm).decode("ascii"),
            },
        )

    def tool_start(self, completion_id: str, content_id: str) -> dict[str, Any]:
        return _event(
            "contentStart",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "type": "TOOL",
                "role": "TOOL",
                "toolUseOutputConfiguration": {"mediaType": "application/json"},
            },
        )

    def tool_use(
        self, completion_id: str, content_id: str, tool_name: str, tool_use_id: str, content: str
    ) -> dict[str, Any]:
        return _event(
            "toolUse",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "content": content,
                "toolName": tool_name,
                "toolUseId": tool_use_id,
            },
        )

    def content_end(
        self, completion_id: str, content_id: str, kind: str, stop_reason: StopReason
    ) -> dict[str, Any]:
        return _event(
            "contentEnd",
            {
                **self._ids(completion_id),
                "contentId": content_id,
                "stopReason": stop_reason,
                "type": kind,
            },
        )

    def usage(self, completion_id: str, delta: UsageCounts, total: UsageCounts) -> dict[str, Any]:
        return _event(
            "usageEvent",
            {
                **self._ids(completion_id),
                "details": {"delta": delta.details(), "total": total.details()},
                "totalInputTokens": total.input_total,
                "totalOutputTokens": total.output_total,
                "totalTokens": total.input_total + total.output_total,
            },
        )


@dataclass(slots=True)
class UsageCounts:
    """Token counts in Nova Sonic's usage shape (speech tokens are estimated from duration)."""

    input_speech: int = 0
    input_text: int = 0
    output_speech: int = 0
    output_text: int = 0

    @property
    def input_total(self) -> int:
        return self.input_speech + self.input_text

    @property
    def output_total(self) -> int:
        return self.output_speech + self.output_text

    def details(self) -> dict[str, Any]:
        return {
            "input": {"speechTokens": self.input_speech, "textTokens": self.input_text},
            "output": {"speechTokens": self.output_speech, "textTokens": self.output_text},
        }

    def add(self, other: UsageCounts) -> None:
        self.input_speech += other.input_speech
        self.input_text += other.input_text
        self.output_speech += other.output_speech
        self.output_text += other.output_text


def _event(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"event": {name: body}}
