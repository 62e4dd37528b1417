"""16-bit little-endian mono PCM: conversion to and from float samples, resampling, chunking.

Resampling uses libsoxr (the `soxr` package, its high-quality setting), whole buffers for
synthesized speech and `StreamResampler` for input arriving in pieces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import soxr

Samples = npt.NDArray[np.float32]
BYTES_PER_SAMPLE = 2


def pcm16_to_float(pcm: bytes) -> Samples:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: Samples) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0)
    return bytes((clipped * 32767.0).round().astype("<i2").tobytes())


def resample(samples: Samples, rate_in: int, rate_out: int) -> Samples:
    if rate_in == rate_out:
        return samples
    out: Samples = soxr.resample(samples, rate_in, rate_out, quality="HQ").astype(np.float32)
    return out


def duration_s(pcm: bytes, rate: int) -> float:
    return len(pcm) / BYTES_PER_SAMPLE / rate


class StreamResampler:
    """Resamples PCM arriving in pieces to `rate_out` without seams between pieces."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in = rate_in
        self.rate_out = rate_out
        self._stream = (
            None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, 1, "float32")
        )

    def feed(self, pcm: bytes) -> bytes:
        if self._stream is None:
            return pcm
        out: Samples = self._stream.resample_chunk(pcm16_to_float(pcm))
        return float_to_pcm16(out)


def chunked(pcm: bytes, rate: int, chunk_ms: int) -> Iterator[bytes]:
    """`pcm` in pieces of `chunk_ms` (the last may be shorter)."""
    size = max(BYTES_PER_SAMPLE, rate * chunk_ms // 1000 * BYTES_PER_SAMPLE)
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]
