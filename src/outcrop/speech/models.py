"""The speech models, loaded once per process and shared by every session.

Loading happens on first use (in a thread, so the server keeps serving) and is awaited by all
sessions that need it meanwhile. Recognition and synthesis are CPU work in native code that
releases the GIL; they run on a small shared thread pool so that one session's sentence never
blocks another session's audio, and the event loop stays free to stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from outcrop.speech.asr import Recognizer
from outcrop.speech.audio import float_to_pcm16, pcm16_to_float, resample
from outcrop.speech.tts import Synthesizer

log = logging.getLogger("outcrop.speech")


class SpeechModelsUnavailable(RuntimeError):
    """The speech models failed to load."""


class SpeechModels:
    def __init__(
        self, asr_model: Path | None = None, voice: Path | None = None, workers: int = 2
    ) -> None:
        self.recognizer = Recognizer(asr_model, workers=workers)
        self.synthesizer = Synthesizer(voice)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speech")
        self._loading: asyncio.Future[None] | None = None
        self.state = "idle"
        self.detail = ""
        self.load_s: float | None = None

    async def ensure_loaded(self) -> None:
        if self._loading is None:
            self.state = "loading"
            loop = asyncio.get_running_loop()
            self._loading = asyncio.ensure_future(loop.run_in_executor(self._executor, self._load))
        try:
            await asyncio.shield(self._loading)
        except Exception as exc:
            raise SpeechModelsUnavailable(f"The speech models failed to load: {exc}") from exc

    def _load(self) -> None:
        started = time.monotonic()
        try:
            self.recognizer.load()
            self.synthesizer.load()
        except Exception as exc:
            self.state, self.detail = "failed", str(exc)
            log.exception("speech models failed to load")
            raise
        self.load_s = time.monotonic() - started
        self.state = "ready"

    async def transcribe(self, pcm16k: bytes) -> str:
        """The text of 16 kHz PCM speech."""
        await self.ensure_loaded()
        samples = pcm16_to_float(pcm16k)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.recognizer.transcribe, samples)

    async def synthesize(self, text: str, rate: int) -> bytes:
        """`text` spoken by the voice, as PCM at `rate`."""
        await self.ensure_loaded()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._synthesize, text, rate)

    def _synthesize(self, text: str, rate: int) -> bytes:
        samples = self.synthesizer.synthesize(text)
        return float_to_pcm16(resample(samples, self.synthesizer.sample_rate, rate))

    def health(self) -> dict[str, Any]:
        return {"state": self.state, "detail": self.detail, "load_s": self.load_s}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
