"""Voice activity and end-of-turn detection on 16 kHz PCM, sans-IO.

Each 30 ms frame is classified by the WebRTC voice activity detector (`webrtcvad`, a GMM over
sub-band energies) and must also be louder than an energy floor, so that near-silent noise does
not count. Speech starts once `onset_ms` of the last 300 ms are voiced (the `SpeechStarted`
event, which is also what triggers barge-in); the turn ends after `end_ms` of continuous
non-speech (`SpeechEnded`, carrying the utterance with `preroll_ms` of audio before the onset).
`end_ms` follows the session's endpointing sensitivity (HIGH ends turns soonest). Time is the
audio's own timeline (samples received), not the wall clock, so detection does not depend on how
fast a client sends.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import webrtcvad

RATE = 16000
FRAME_MS = 30
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
END_OF_TURN_MS = {"HIGH": 500, "MEDIUM": 700, "LOW": 1000}
_WINDOW_FRAMES = 10


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at_s: float
    """Position in the input audio (seconds from the first sample)."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    audio: bytes
    """The utterance (16 kHz PCM), from a little before the onset to the last voiced frame."""
    started_s: float
    ended_s: float


TurnEvent = SpeechStarted | SpeechEnded


class TurnDetector:
    def __init__(
        self,
        *,
        end_ms: int = 700,
        onset_ms: int = 150,
        preroll_ms: int = 300,
        aggressiveness: int = 2,
        floor_dbfs: float = -50.0,
        max_utterance_s: float = 30.0,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._onset_frames = max(1, onset_ms // FRAME_MS)
        self._end_frames = max(1, end_ms // FRAME_MS)
        self._floor = 32768.0 * 10 ** (floor_dbfs / 20)
        self._max_frames = int(max_utterance_s * 1000 / FRAME_MS)
        self._pending = b""
        self._frames = 0
        self._window: collections.deque[bool] = collections.deque(maxlen=_WINDOW_FRAMES)
        self._preroll: collections.deque[bytes] = collections.deque(
            maxlen=max(_WINDOW_FRAMES, preroll_ms // FRAME_MS)
        )
        self._speaking = False
        self._utterance: list[bytes] = []
        self._trailing = 0
        self._started_s = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, pcm: bytes) -> list[TurnEvent]:
        """Add 16 kHz samples; returns the events they complete, in order."""
        self._pending += pcm
        events: list[TurnEvent] = []
        while len(self._pending) >= FRAME_BYTES:
            frame, self._pending = self._pending[:FRAME_BYTES], self._pending[FRAME_BYTES:]
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return events

    def _voiced(self, frame: bytes) -> bool:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        if float(np.sqrt(np.mean(samples * samples))) < self._floor:
            return False
        return bool(self._vad.is_speech(frame, RATE))

    def _frame(self, frame: bytes) -> TurnEvent | None:
        self._frames += 1
        voiced = self._voiced(frame)
        now_s = self._frames * FRAME_MS / 1000
        if not self._speaking:
            self._preroll.append(frame)
            self._window.append(voiced)
            if sum(self._window) >= self._onset_frames:
                self._speaking = True
                self._utterance = list(self._preroll)
                self._trailing = 0
                self._window.clear()
                self._started_s = now_s - len(self._utterance) * FRAME_MS / 1000
                return SpeechStarted(now_s)
            return None
        self._utterance.append(frame)
        self._trailing = 0 if voiced else self._trailing + 1
        if self._trailing >= self._end_frames or len(self._utterance) >= self._max_frames:
            keep = len(self._utterance) - max(0, self._trailing - 5)
            audio = b"".join(self._utterance[:keep])
            self._speaking = False
            self._utterance = []
            self._preroll.clear()
            return SpeechEnded(audio, self._started_s, now_s)
        return None
