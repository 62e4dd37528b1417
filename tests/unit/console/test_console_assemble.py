"""What a call's events add up to on its page, for answers the in-process tests of the API do
not produce (a speech session needs speech models): transcript and output audio."""

from __future__ import annotations

import base64

from outcrop.console.assemble import Assembly


def test_a_speech_session_gives_its_transcript_and_its_output_audio() -> None:
    first, second = b"\x01\x00" * 100, b"\x02\x00" * 50
    assembly = Assembly()
    for event in [
        {"event": {"textOutput": {"role": "USER", "content": "what is the time"}}},
        {"event": {"contentStart": {"type": "AUDIO", "audioOutputConfiguration": {
            "sampleRateHertz": 16000, "sampleSizeBits": 16, "channelCount": 1}}}},
        {"event": {"audioOutput": {"content": base64.b64encode(first).decode()}}},
        {"event": {"audioOutput": {"content": base64.b64encode(second).decode()}}},
        {"event": {"audioOutput": {"content": "not base64!"}}},
        {"event": {"textOutput": {"role": "ASSISTANT", "content": "It is noon."}}},
    ]:  # fmt: skip
        assembly.event(event)
    speech = assembly.result()["speech"]
    assert speech["transcript"] == [
        {"role": "USER", "text": "what is the time"},
        {"role": "ASSISTANT", "text": "It is noon."},
    ]
    assert speech["audio"]["sampleRateHertz"] == 16000
    assert base64.b64decode(speech["audio"]["pcmBase64"]) == first + second


def test_a_text_answer_has_no_speech() -> None:
    assembly = Assembly()
    assembly.event({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hi"}}})
    assert assembly.result()["speech"] is None and assembly.result()["text"] == "Hi"
