"""Voice activity and end of turn on real (espeak-ng) speech."""

from __future__ import annotations

import numpy as np

from outcrop.speech.audio import StreamResampler, chunked, duration_s, float_to_pcm16
from outcrop.speech.turns import SpeechEnded, SpeechStarted, TurnDetector
from tests.support.speech import silence, spoken


def test_one_question_is_one_turn_and_ends_after_the_silence() -> None:
    question = spoken("What is the capital of France?")
    detector = TurnDetector(end_ms=700)
    events = [e for piece in chunked(silence(0.5) + question + silence(1.5), 16000, 32)
              for e in detector.feed(piece)]  # fmt: skip
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    start, end = events
    assert isinstance(start, SpeechStarted) and isinstance(end, SpeechEnded)
    samples = np.abs(np.frombuffer(question, dtype="<i2"))
    loud = np.flatnonzero(samples > 1000)
    speech_start, speech_end = 0.5 + loud[0] / 16000, 0.5 + loud[-1] / 16000
    assert speech_start < start.at_s < speech_start + 0.4
    assert speech_end + 0.6 < end.ended_s < speech_end + 1.0  # 700 ms of silence ends it
    assert abs(duration_s(end.audio, 16000) - (speech_end - speech_start)) < 0.7


def test_silence_and_quiet_noise_are_not_speech() -> None:
    rng = np.random.default_rng(1)
    noise = float_to_pcm16((rng.standard_normal(16000 * 3) * 0.001).astype(np.float32))
    detector = TurnDetector()
    assert detector.feed(silence(2.0)) == [] and detector.feed(noise) == []


def test_higher_sensitivity_ends_turns_sooner() -> None:
    audio = spoken("Hello there.") + silence(2.0)
    ends = {}
    for end_ms in (500, 1000):
        events = TurnDetector(end_ms=end_ms).feed(audio)
        ends[end_ms] = next(e.ended_s for e in events if isinstance(e, SpeechEnded))
    assert 0.4 < ends[1000] - ends[500] < 0.6


def test_input_at_8_and_24_khz_is_resampled_to_16() -> None:
    for rate in (8000, 24000):
        pcm = spoken("Hello there.", rate)
        resampler = StreamResampler(rate, 16000)
        out = b"".join(resampler.feed(p) for p in chunked(pcm, rate, 32))
        assert abs(duration_s(out, 16000) - duration_s(pcm, rate)) < 0.05
        events = TurnDetector().feed(out + silence(1.0))
        assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
