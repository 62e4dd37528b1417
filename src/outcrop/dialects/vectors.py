"""Shaping native embedding vectors into what a Bedrock embedding model returns. Pure numpy.

**Dimensions.** The local model's vectors have `native` dimensions (384 for all-MiniLM-L6-v2);
Bedrock families return 256 to 1536. A vector is mapped with a fixed matrix `P` of shape
(native, target), the same for every request and every process:

* target > native: `P` has orthonormal rows (`P Pᵀ = I`), so `x ↦ x P` is an isometry: lengths,
  dot products and cosine similarities are exactly those of the native vectors, while the
  information is spread over all `target` coordinates (no padding zeros), as a real
  embedding's is.
* target < native: `P` is an orthogonal projection onto a random `target`-dimensional subspace,
  scaled by √(native / target) so that lengths are kept on average. Cosine similarities are
  kept approximately (Johnson–Lindenstrauss), much as a real model's smaller output sizes lose a
  little accuracy.
* target == native: the identity.

`P` comes from Gaussian numbers drawn from PCG64's raw 64-bit stream (stable across numpy
versions) with a seed derived from (native, target), orthonormalized by QR with the signs fixed
by R's diagonal, so it is unique and reproducible.

**Normalization** divides by the Euclidean length (unit vectors, cosine = dot product).

**Quantization** (of unit vectors; coordinates of a unit vector in d dimensions are about
N(0, 1/d), so z = v·√d is about standard normal):

* `int8`: round(z · 127/4), clipped to [-128, 127] (±4 standard deviations span the range);
* `uint8`: round((z + 4) · 255/8), clipped to [0, 255];
* `ubinary`: one bit per dimension (1 where v > 0), packed 8 per byte, most significant bit
  first, as unsigned bytes: d/8 values in [0, 255];
* `binary`: the same bytes minus 128, as signed values in [-128, 127] (the packing Cohere and
  sentence-transformers use);
* Titan's `binary`: one 0/1 value per dimension (1 where v > 0).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float64]
"""A batch of vectors, one per row."""

_SEED_BASE = 0x0C7C0DE_EB3D
_INT8_SIGMAS = 4.0


def _gaussian(seed: int, count: int) -> npt.NDArray[np.float64]:
    """`count` standard normal numbers by Box–Muller over PCG64's raw output."""
    raw = np.random.PCG64(seed).random_raw(count + count % 2)
    uniform = (raw >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    u1 = 1.0 - uniform[0::2]  # in (0, 1]
    u2 = uniform[1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * math.pi * u2
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]


@cache
def projection(native: int, target: int) -> Vectors:
    """The fixed (native, target) matrix described in the module docstring."""
    if native == target:
        return np.eye(native)
    rows, cols = max(native, target), min(native, target)
    gaussian = _gaussian(_SEED_BASE + native * 100_003 + target, rows * cols).reshape(rows, cols)
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))  # unique: R with a positive diagonal
    if target > native:
        matrix: Vectors = q.T  # (native, target), orthonormal rows
    else:
        matrix = q * math.sqrt(native / target)  # (native, target), scaled orthonormal columns
    matrix.setflags(write=False)
    return matrix


def shape(vectors: Vectors, target: int, normalize: bool) -> Vectors:
    """Map native vectors to `target` dimensions, then optionally to unit length."""
    out: Vectors = vectors @ projection(vectors.shape[1], target)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norms == 0.0, 1.0, norms)
    return out


def floats(vectors: Vectors) -> list[list[float]]:
    """JSON-ready floats, rounded to float32 precision."""
    rounded: list[list[float]] = vectors.astype(np.float32).astype(np.float64).round(9).tolist()
    return rounded


def _standardized(vectors: Vectors) -> Vectors:
    z: Vectors = vectors * math.sqrt(vectors.shape[1])
    return z


def int8(vectors: Vectors) -> list[list[int]]:
    z = _standardized(vectors)
    q = np.clip(np.rint(z * (127.0 / _INT8_SIGMAS)), -128, 127).astype(np.int64)
    out: list[list[int]] = q.tolist()
    return out


def uint8(vectors: Vectors) -> list[list[int]]:
    z = _standardized(vectors)
    q = np.clip(np.rint((z + _INT8_SIGMAS) * (255.0 / (2 * _INT8_SIGMAS))), 0, 255)
    out: list[list[int]] = q.astype(np.int64).tolist()
    return out


def ubinary(vectors: Vectors) -> list[list[int]]:
    packed = np.packbits(vectors > 0.0, axis=1, bitorder="big").astype(np.int64)
    out: list[list[int]] = packed.tolist()
    return out


def binary(vectors: Vectors) -> list[list[int]]:
    packed = np.packbits(vectors > 0.0, axis=1, bitorder="big").astype(np.int64) - 128
    out: list[list[int]] = packed.tolist()
    return out


def bits(vectors: Vectors) -> list[list[int]]:
    """One 0/1 value per dimension (Titan Text Embeddings V2 `binary`)."""
    out: list[list[int]] = (vectors > 0.0).astype(np.int64).tolist()
    return out
