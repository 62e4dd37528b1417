"""Speech test material: spoken questions (espeak-ng), Nova Sonic input events, output checks.

Questions are spoken by espeak-ng (a formant synthesizer, a different voice from the server's
Piper voice) and resampled to the rate a test sends. Audio the server returns is checked by
transcribing it with the same Whisper model the server uses, loaded here in the test process.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytest

from outcrop.speech.audio import float_to_pcm16, pcm16_to_float, resample

INTERRUPTED = '{ "interrupted" : true }'


def espeak_or_skip() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        pytest.skip("espeak-ng is not installed (make speech-test-deps)")
    return found


@cache
def spoken(text: str, rate: int = 16000) -> bytes:
    """`text` spoken by espeak-ng as 16-bit mono PCM at `rate`."""
    wav = subprocess.run(
        [espeak_or_skip(), "--stdout", "-s", "155", "-v", "en-us", text],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        native = reader.getframerate()
        samples = pcm16_to_float(reader.readframes(reader.getnframes()))
    return float_to_pcm16(resample(samples, native, rate))


def silence(seconds: float, rate: int = 16000) -> bytes:
    return b"\0\0" * int(seconds * rate)


def pieces(pcm: bytes, rate: int = 16000, ms: int = 32) -> Iterator[bytes]:
    size = rate * ms // 1000 * 2
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


@cache
def _whisper() -> Any:
    from faster_whisper import WhisperModel

    from outcrop.speech.asr import default_model_dir

    return WhisperModel(str(default_model_dir()), device="cpu", compute_type="int8", cpu_threads=1)


def transcribe(pcm: bytes, rate: int) -> str:
    """What Whisper tiny.en hears in `pcm` (mono 16-bit at `rate`), lower-case."""
    samples = resample(pcm16_to_float(pcm), rate, 16000)
    # Greedy decoding only: faster-whisper's default falls back to sampling at higher
    # temperatures when a short clip scores low, which made the same audio heard differently.
    segments, _ = _whisper().transcribe(samples, language="en", beam_size=1, temperature=0.0)
    return " ".join(s.text.strip() for s in segments).lower()


def words(text: str) -> set[str]:
    return {w.strip(".,!?;:'\"").lower() for w in text.split()} - {""}


# -- input events ------------------------------------------------------------------------------


@dataclass
class NovaInput:
    """Builds a session's input events (`{"event": {...}}` dicts) for one prompt."""

    prompt: str = field(default_factory=lambda: str(uuid.uuid4()))

    def session_start(self, max_tokens: int = 200, **extra: Any) -> dict[str, Any]:
        config = {"maxTokens": max_tokens, "topP": 0.9, "temperature": 0.7}
        return {"event": {"sessionStart": {"inferenceConfiguration": config, **extra}}}

    def prompt_start(
        self, rate: int = 24000, tools: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "promptName": self.prompt,
            "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {
                "mediaType": "audio/lpcm", "sampleRateHertz": rate, "sampleSizeBits": 16,
                "channelCount": 1, "voiceId": "matthew", "encoding": "base64",
                "audioType": "SPEECH",
            },
        }  # fmt: skip
        if tools is not None:
            body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
            body["toolConfiguration"] = {"tools": tools}
        return {"event": {"promptStart": body}}

    def text(self, role: str, content: str, interactive: bool = False) -> list[dict[str, Any]]:
        name = str(uuid.uuid4())
        return [
            {"event": {"contentStart": {
                "promptName": self.prompt, "contentName": name, "type": "TEXT",
                "interactive": interactive, "role": role,
                "textInputConfiguration": {"mediaType": "text/plain"}}}},
            {"event": {"textInput": {
                "promptName": self.prompt, "contentName": name, "content": content}}},
            self.content_end(name),
        ]  # fmt: skip

    def audio_start(self, name: str, rate: int = 16000, **overrides: Any) -> dict[str, Any]:
        config = {
            "mediaType": "audio/lpcm", "sampleRateHertz": rate, "sampleSizeBits": 16,
            "channelCount": 1, "audioType": "SPEECH", "encoding": "base64", **overrides,
        }  # fmt: skip
        return {"event": {"contentStart": {
            "promptName": self.prompt, "contentName": name, "type": "AUDIO", "interactive": True,
            "role": "USER", "audioInputConfiguration": config}}}  # fmt: skip

    def audio(self, name: str, pcm: bytes) -> dict[str, Any]:
        content = base64.b64encode(pcm).decode()
        return {"event": {"audioInput": {
            "promptName": self.prompt, "contentName": name, "content": content}}}  # fmt: skip

    def tool_result(self, tool_use_id: str, content: str) -> list[dict[str, Any]]:
        name = str(uuid.uuid4())
        return [
            {"event": {"contentStart": {
                "promptName": self.prompt, "contentName": name, "interactive": False,
                "type": "TOOL", "role": "TOOL",
                "toolResultInputConfiguration": {
                    "toolUseId": tool_use_id, "type": "TEXT",
                    "textInputConfiguration": {"mediaType": "text/plain"}}}}},
            {"event": {"toolResult": {
                "promptName": self.prompt, "contentName": name, "content": content}}},
            self.content_end(name),
        ]  # fmt: skip

    def content_end(self, name: str) -> dict[str, Any]:
        return {"event": {"contentEnd": {"promptName": self.prompt, "contentName": name}}}

    def prompt_end(self) -> dict[str, Any]:
        return {"event": {"promptEnd": {"promptName": self.prompt}}}

    def session_end(self) -> dict[str, Any]:
        return {"event": {"sessionEnd": {}}}

    def opening(
        self,
        system: str = "You are a helpful assistant.",
        rate: int = 24000,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """sessionStart, promptStart and the SYSTEM text block."""
        return [self.session_start(), self.prompt_start(rate, tools),
                *self.text("SYSTEM", system)]  # fmt: skip


# -- output events -----------------------------------------------------------------------------


@dataclass
class NovaOutput:
    """The output events of a session, in order, with helpers to read them."""

    events: list[dict[str, Any]]

    @classmethod
    def parse(cls, payloads: list[bytes]) -> NovaOutput:
        return cls([json.loads(p)["event"] for p in payloads])

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e[name] for e in self.events if name in e]

    @property
    def names(self) -> list[str]:
        return [next(iter(e)) for e in self.events]

    def texts(self, role: str, stage: str | None = None) -> list[str]:
        """textOutput contents of `role`, optionally only those in blocks of `stage`."""
        stages: dict[str, str] = {}
        for start in self.named("contentStart"):
            fields = json.loads(start.get("additionalModelFields") or "{}")
            stages[start["contentId"]] = fields.get("generationStage", "")
        return [
            t["content"] for t in self.named("textOutput")
            if t["role"] == role and (stage is None or stages.get(t["contentId"]) == stage)
        ]  # fmt: skip

    def audio(self, completion_id: str | None = None) -> bytes:
        return b"".join(
            base64.b64decode(a["content"]) for a in self.named("audioOutput")
            if completion_id is None or a["completionId"] == completion_id
        )  # fmt: skip

    def completions(self) -> list[str]:
        return [c["completionId"] for c in self.named("completionStart")]

    def stop_reasons(self, kind: str) -> list[str]:
        return [c["stopReason"] for c in self.named("contentEnd") if c["type"] == kind]


def check_linked(output: NovaOutput) -> None:
    """Every content event belongs to an open completion, and content ids are opened once."""
    open_completions: set[str] = set()
    open_contents: dict[str, str] = {}
    session_ids = {body["sessionId"] for e in output.events for body in e.values()}
    assert len(session_ids) == 1, session_ids
    for event in output.events:
        ((name, body),) = event.items()
        cid = body["completionId"]
        if name == "completionStart":
            assert cid not in open_completions
            open_completions.add(cid)
            continue
        if name == "usageEvent":
            continue
        assert cid in open_completions, (name, body)
        if name == "completionEnd":
            assert not [c for c, owner in open_contents.items() if owner == cid], open_contents
            open_completions.remove(cid)
        elif name == "contentStart":
            assert body["contentId"] not in open_contents
            open_contents[body["contentId"]] = cid
        elif name == "contentEnd":
            assert open_contents.pop(body["contentId"]) == cid
        else:
            assert open_contents.get(body["contentId"]) == cid, (name, body)
    assert not open_contents and not open_completions


def assert_speech_at(pcm: bytes, rate: int, expected_text: str) -> str:
    """`pcm` is `expected_text` spoken at `rate`: Whisper hears most of its words, and the
    duration matches the same voice's synthesis of the text at its native rate."""
    heard = transcribe(pcm, rate)
    expected = words(expected_text)
    assert len(words(heard) & expected) >= 0.6 * len(expected), (heard, expected_text)
    return heard


def np_rms(pcm: bytes) -> float:
    samples = pcm16_to_float(pcm)
    return float(np.sqrt(np.mean(samples * samples))) if len(samples) else 0.0
