"""A recorded call decoded for its page: each event in order with its offset, and what the
events add up to (text, tool calls, reasoning, guardrail trace, usage, stop reason).

Converse answers (ConverseStream's `contentBlockDelta`/`metadata` events, Converse's `output`)
are assembled member by member. InvokeModel bodies and chunks differ by model family; their
text is gathered from the members the families put it in (`completion`, `outputText`,
`generation`, `text`, `delta.text`, `choices[].delta.content`, ...), their usage from
`amazon-bedrock-invocationMetrics`, their guardrail trace from `amazon-bedrock-trace`.
Decoded on demand (never on the request path) and kept on the call once made.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from outcrop.console.calls import RecordedCall
from outcrop.gateway.invocation_log import decode_stream_events

_TEXT_KEYS = ("completion", "outputText", "generation", "text", "content", "output_text")


def details(call: RecordedCall) -> dict[str, Any]:
    """The call's page: summary, request, events and what they assemble to."""
    if call.details is None:
        call.details = _details(call)
    return call.details


def _details(call: RecordedCall) -> dict[str, Any]:
    events = _events(call)
    response = _json_or_text(call.response_body) if call.response_body is not None else None
    assembled = Assembly()
    if call.streaming:
        for event in events:
            assembled.event(event["event"])
    elif isinstance(response, dict):
        assembled.body(response)
    if call.error_code and call.streaming:
        events.append(
            {
                "offsetMs": call.duration_ms,
                "type": call.error_code,
                "event": {call.error_code: {"message": call.error_message}},
            }
        )
    return {
        **call.summary(),
        "method": call.method,
        "path": call.path,
        "query": call.query,
        "errorMessage": call.error_message,
        "truncated": call.truncated,
        "request": {"headers": call.headers, "body": _json_or_text(call.body)},
        "response": response,
        "events": events,
        "assembled": assembled.result(),
    }


def _events(call: RecordedCall) -> list[dict[str, Any]]:
    decoded: list[dict[str, Any]] = []
    for offset, frame in call.frames:
        try:
            items = call.units.decode([frame]) if call.units else decode_stream_events([frame])
        except Exception as exc:  # a corrupted frame (fault injection) is shown as such
            items = [{"undecodable": f"{type(exc).__name__}: {exc}", "bytes": len(frame)}]
        for item in items:
            decoded.append({"offsetMs": offset, "type": _event_type(item), "event": item})
    return decoded


def _event_type(event: Any) -> str:
    if isinstance(event, dict):
        if len(event) == 1:
            return str(next(iter(event)))
        kind = event.get("type") or event.get("object")
        if isinstance(kind, str):
            return kind
        return "chunk"
    return "text"


class Assembly:
    """What the events of an answer add up to."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None
        self.trace: Any = None
        self.stop_reason: str | None = None
        self.transcript: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.audio_rate: int | None = None

    def result(self) -> dict[str, Any]:
        tools = []
        for tool in self.tools.values():
            raw = tool.pop("inputText", "")
            if raw:
                tool["input"] = _json_or_text(raw.encode())
            tools.append(tool)
        return {
            "text": "".join(self.text),
            "reasoning": "".join(self.reasoning),
            "toolCalls": tools,
            "usage": self.usage,
            "metrics": self.metrics,
            "guardrailTrace": self.trace,
            "stopReason": self.stop_reason,
            "speech": self._speech(),
        }

    def _speech(self) -> dict[str, Any] | None:
        """A speech session's transcript (both sides, as Nova Sonic's textOutput events give
        them) and its output audio (16-bit mono LPCM, base64)."""
        if not self.transcript and not self.audio:
            return None
        return {
            "transcript": self.transcript,
            "audio": {
                "sampleRateHertz": self.audio_rate or 24000,
                "pcmBase64": base64.b64encode(bytes(self.audio)).decode(),
            }
            if self.audio
            else None,
        }

    def _speech_event(self, name: str, payload: dict[str, Any]) -> None:
        if name == "textOutput":
            self.transcript.append({"role": payload.get("role"), "text": payload.get("content")})
        elif name == "audioOutput":
            try:
                self.audio += base64.b64decode(str(payload.get("content", "")), validate=True)
            except (binascii.Error, ValueError):
                return
        elif name == "contentStart":
            config = payload.get("audioOutputConfiguration")
            if isinstance(config, dict) and isinstance(config.get("sampleRateHertz"), int):
                self.audio_rate = config["sampleRateHertz"]

    # -- streams -------------------------------------------------------------------------------

    def event(self, event: Any) -> None:
        if not isinstance(event, dict):
            if isinstance(event, str):
                self.text.append(event)
            return
        if len(event) == 1 and isinstance(next(iter(event.values())), dict):
            name, payload = next(iter(event.items()))
            if self._converse_event(name, payload):
                return
        self._chunk(event)

    def _converse_event(self, name: str, payload: dict[str, Any]) -> bool:
        index = int(payload.get("contentBlockIndex", 0) or 0)
        if name == "contentBlockStart":
            tool = payload.get("start", {}).get("toolUse")
            if isinstance(tool, dict):
                self.tools[index] = {
                    "toolUseId": tool.get("toolUseId"),
                    "name": tool.get("name"),
                    "inputText": "",
                }
            return True
        if name == "contentBlockDelta":
            delta = payload.get("delta", {})
            if "text" in delta:
                self.text.append(str(delta["text"]))
            if "toolUse" in delta:
                tool = self.tools.setdefault(index, {"inputText": ""})
                tool["inputText"] += str(delta["toolUse"].get("input", ""))
            reasoning = delta.get("reasoningContent")
            if isinstance(reasoning, dict) and "text" in reasoning:
                self.reasoning.append(str(reasoning["text"]))
            return True
        if name == "messageStop":
            self.stop_reason = payload.get("stopReason")
            return True
        if name == "metadata":
            self.usage = payload.get("usage")
            self.metrics = payload.get("metrics")
            if "trace" in payload:
                self.trace = payload["trace"]
            return True
        return name in ("messageStart", "contentBlockStop")

    def _chunk(self, chunk: dict[str, Any]) -> None:
        speech = chunk.get("event")  # a bidirectional (Nova Sonic) session's output event
        if isinstance(speech, dict) and len(speech) == 1:
            name, payload = next(iter(speech.items()))
            if isinstance(payload, dict):
                self._speech_event(name, payload)
                return
        metrics = chunk.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.metrics = metrics
            self.usage = {
                "inputTokens": metrics.get("inputTokenCount"),
                "outputTokens": metrics.get("outputTokenCount"),
            }
        if "amazon-bedrock-trace" in chunk:
            self.trace = chunk["amazon-bedrock-trace"]
        for key in ("stop_reason", "stopReason", "finish_reason", "completionReason"):
            if isinstance(chunk.get(key), str):
                self.stop_reason = chunk[key]
        delta = chunk.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("text"), str):
                self.text.append(delta["text"])
            if isinstance(delta.get("thinking"), str):
                self.reasoning.append(delta["thinking"])
            if isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
            return
        choices = chunk.get("choices")
        if isinstance(chunk.get("usage"), dict):  # OpenAI-compatible chunks and bodies
            self.usage = chunk["usage"]
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    part = choice.get("delta") or choice.get("message") or {}
                    if isinstance(part, dict) and isinstance(part.get("content"), str):
                        self.text.append(part["content"])
                    if isinstance(part, dict) and isinstance(part.get("reasoning_content"), str):
                        self.reasoning.append(part["reasoning_content"])
                    if isinstance(choice.get("finish_reason"), str):
                        self.stop_reason = choice["finish_reason"]
            return
        for key in _TEXT_KEYS:
            if isinstance(chunk.get(key), str):
                self.text.append(chunk[key])
                return

    # -- complete bodies -----------------------------------------------------------------------

    def body(self, body: dict[str, Any]) -> None:
        output = body.get("output")
        if isinstance(output, dict) and isinstance(output.get("message"), dict):
            for block in output["message"].get("content", []):
                if not isinstance(block, dict):
                    continue
                if "text" in block:
                    self.text.append(str(block["text"]))
                if "toolUse" in block:
                    self.tools[len(self.tools)] = dict(block["toolUse"])
                reasoning = block.get("reasoningContent", {}).get("reasoningText")
                if isinstance(reasoning, dict):
                    self.reasoning.append(str(reasoning.get("text", "")))
            self.usage = body.get("usage")
            self.metrics = body.get("metrics")
            self.trace = body.get("trace")
            self.stop_reason = body.get("stopReason")
            return
        if "outputs" in body or "assessments" in body:  # ApplyGuardrail
            self.trace = {"action": body.get("action"), "assessments": body.get("assessments")}
            for item in body.get("outputs") or []:
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    self.text.append(item["text"])
            self.usage = body.get("usage")
            return
        content = body.get("content")
        if isinstance(content, list):  # Anthropic messages
            for block in content:
                if isinstance(block, dict) and block.get("type") == "text":
                    self.text.append(str(block.get("text", "")))
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self.tools[len(self.tools)] = {
                        "toolUseId": block.get("id"),
                        "name": block.get("name"),
                        "input": block.get("input"),
                    }
            self.usage = body.get("usage")
            self.stop_reason = body.get("stop_reason")
            self.trace = body.get("amazon-bedrock-trace")
            return
        results = body.get("results")
        if isinstance(results, list):  # Titan text
            for result in results:
                if isinstance(result, dict) and isinstance(result.get("outputText"), str):
                    self.text.append(result["outputText"])
            self.trace = body.get("amazon-bedrock-trace")
            return
        self._chunk(body)


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "replace")
