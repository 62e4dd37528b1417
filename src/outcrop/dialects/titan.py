"""Amazon Titan Text (`inputText` + `textGenerationConfig`) on InvokeModel
(reference/dialects.md §2.3).

`inputText` is an instruction to Titan (often in its `User: ... / Bot:` convention); it reaches
the served model as one user turn, or as turns when it uses that convention, so the served
model's chat template applies.

Response: `{"inputTextTokenCount", "results": [{"tokenCount", "outputText", "completionReason"}]}`
with `completionReason` `FINISH` (what real responses say; the docs spell it `FINISHED`),
`LENGTH`, or `STOP_CRITERIA_MET` when a stop sequence matched (docs; not in a capture).

Stream: Titan sends large pieces, not tokens: text is gathered into chunks of `CHUNK_TOKENS`
engine pieces; `inputTextTokenCount` is set on the first chunk only, `totalOutputTextTokenCount`
and `completionReason` on the last only, which also carries the invocation metrics. A short
answer is one chunk carrying everything, as recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from outcrop.dialects.base import (
    METRICS_KEY,
    Completion,
    InvokeCall,
    Obj,
    TextOnlyEncoder,
    invocation_metrics,
)
from outcrop.dialects.schema import (
    Field,
    check_object,
    check_value,
    items,
    members,
    titan_malformed,
)
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationRequest,
    Role,
    SamplingParams,
    StopReason,
    Usage,
)

DEFAULT_MAX_TOKENS = 512  # documented default of maxTokenCount
CHUNK_TOKENS = 32

FIELDS: dict[str, Field] = {
    "inputText": Field("string", required=True, min_length=1),
    "textGenerationConfig": Field("object"),
}
CONFIG_FIELDS: dict[str, Field] = {
    "temperature": Field("number", minimum=0, maximum=1),
    "topP": Field("number", minimum=0, maximum=1),
    "maxTokenCount": Field("integer", minimum=1),
    "stopSequences": Field("array"),
}

REASONS = {
    StopReason.END_TURN: "FINISH",
    StopReason.TOOL_USE: "FINISH",
    StopReason.MAX_TOKENS: "LENGTH",
    StopReason.STOP_SEQUENCE: "STOP_CRITERIA_MET",
}

_TURN = re.compile(r"^(User|Bot)\s*:", re.M)


def split_user_bot(text: str) -> list[ChatMessage]:
    """Titan's `User:` / `Bot:` convention as turns; plain text is one user turn."""
    marks = list(_TURN.finditer(text))
    if not marks:
        return [ChatMessage("user", text)]
    turns: list[ChatMessage] = []
    preamble = text[: marks[0].start()].strip()
    if preamble:
        turns.append(ChatMessage("system", preamble))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        content = text[mark.end() : following.start() if following else len(text)].strip()
        role: Role = "user" if mark.group(1) == "User" else "assistant"
        if content:
            turns.append(ChatMessage(role, content))
    if not any(t.role == "user" for t in turns):
        return [ChatMessage("user", text)]
    return turns


@dataclass(frozen=True, slots=True)
class TitanInvocation:
    request: GenerationRequest

    def response_headers(self, output: Completion) -> list[tuple[str, str]]:
        return []

    def response(self, output: Completion, model_name: str) -> Obj:
        finish = output.finish
        return {
            "inputTextTokenCount": finish.input_tokens,
            "results": [
                {
                    "tokenCount": finish.output_tokens,
                    "outputText": output.text,
                    "completionReason": REASONS[finish.stop_reason],
                }
            ],
        }

    def stream(self, model_name: str, input_tokens: int) -> TitanStream:
        return TitanStream(input_tokens)


class TitanStream(TextOnlyEncoder):
    """Titan stream objects: text gathered into large chunks."""

    def __init__(self, input_tokens: int) -> None:
        self.input_tokens = input_tokens
        self._pieces: list[str] = []
        self._sent_first = False

    def _chunk(self, last: Finish | None, usage: Usage | None) -> Obj:
        first = not self._sent_first
        self._sent_first = True
        text = "".join(self._pieces)
        self._pieces = []
        obj: Obj = {
            "outputText": text,
            "index": 0,
            "totalOutputTextTokenCount": last.output_tokens if last else None,
            "completionReason": REASONS[last.stop_reason] if last else None,
            "inputTextTokenCount": self.input_tokens if first else None,
        }
        if usage is not None:
            obj[METRICS_KEY] = invocation_metrics(usage)
        return obj

    def text(self, piece: str) -> list[Obj]:
        out = [self._chunk(None, None)] if len(self._pieces) >= CHUNK_TOKENS else []
        self._pieces.append(piece)
        return out

    def finish(self, finish: Finish, usage: Usage) -> list[Obj]:
        return [self._chunk(finish, usage)]


class TitanDialect:
    """Amazon Titan Text bodies."""

    def parse(self, body: Obj, call: InvokeCall) -> TitanInvocation:
        problems = check_object(body, FIELDS)
        config: Any = body.get("textGenerationConfig") or {}
        if not problems and config:
            problems = check_object(config, CONFIG_FIELDS, "#/textGenerationConfig")
            for i, stop in enumerate(items(members(config).get("stopSequences"))):
                problems += check_value(
                    stop, Field("string"), f"#/textGenerationConfig/stopSequences/{i}"
                )
        if problems:
            raise titan_malformed(problems)
        temperature = config.get("temperature")
        top_p = config.get("topP")
        sampling = SamplingParams(
            max_tokens=int(config.get("maxTokenCount", DEFAULT_MAX_TOKENS)),
            temperature=None if temperature is None else float(temperature),
            top_p=None if top_p is None else float(top_p),
            stop_sequences=tuple(config.get("stopSequences") or ()),
        )
        turns = split_user_bot(body["inputText"])
        return TitanInvocation(GenerationRequest(tuple(turns), sampling, call.request_id))
