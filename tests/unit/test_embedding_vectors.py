"""Dimension projection, normalization and quantization of embedding vectors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from outcrop.dialects import vectors


def sample(n: int, d: int = 384, seed: int = 7) -> np.ndarray:
    # Correlated vectors, like a sentence model's (a shared component plus noise).
    rng = np.random.default_rng(seed)
    common = rng.normal(size=d)
    return np.asarray(0.6 * common + rng.normal(size=(n, d)), dtype=np.float64)


def cosines(v: np.ndarray) -> np.ndarray:
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    result: np.ndarray = u @ u.T
    return result


@pytest.mark.parametrize("target", [512, 1024, 1536])
def test_larger_targets_keep_lengths_and_angles_exactly(target: int) -> None:
    x = sample(20)
    y = vectors.shape(x, target, normalize=False)
    assert y.shape == (20, target)
    assert np.allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-12)
    assert np.allclose(cosines(y), cosines(x), atol=1e-12)
    # Spread over every coordinate: no block of padding zeros.
    assert (np.abs(y) > 0).mean() > 0.99


def test_smaller_target_keeps_angles_approximately() -> None:
    x = sample(40)
    y = vectors.shape(x, 256, normalize=False)
    error = np.abs(cosines(y) - cosines(x))
    assert error.mean() < 0.03 and error.max() < 0.15
    ratio = np.linalg.norm(y, axis=1) / np.linalg.norm(x, axis=1)
    assert 0.85 < ratio.mean() < 1.15


def test_projection_is_fixed_across_processes() -> None:
    here = hashlib.sha256(np.round(vectors.projection(384, 1024), 10).tobytes()).hexdigest()
    code = (
        "import hashlib, numpy as np; from outcrop.dialects import vectors; "
        "print(hashlib.sha256(np.round(vectors.projection(384, 1024), 10).tobytes()).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == here
    assert not np.allclose(vectors.projection(384, 1024)[:, :512], vectors.projection(384, 512))


def test_normalize_gives_unit_vectors() -> None:
    y = vectors.shape(sample(5), 1024, normalize=True)
    assert np.allclose(np.linalg.norm(y, axis=1), 1.0)


def test_quantizations() -> None:
    y = vectors.shape(sample(6), 1024, normalize=True)
    floats = np.array(vectors.floats(y))
    assert np.allclose(floats, y, atol=1e-7)
    int8 = np.array(vectors.int8(y))
    uint8 = np.array(vectors.uint8(y))
    assert int8.min() >= -128 and int8.max() <= 127 and uint8.min() >= 0 and uint8.max() <= 255
    # Scalar quantization keeps the angles.
    assert np.allclose(cosines(int8.astype(float)), cosines(y), atol=0.01)
    assert np.allclose(cosines(uint8.astype(float) - 127.5), cosines(y), atol=0.01)
    ubinary = np.array(vectors.ubinary(y))
    binary = np.array(vectors.binary(y))
    assert ubinary.shape == binary.shape == (6, 128)
    assert (binary == ubinary - 128).all()
    unpacked = np.unpackbits(ubinary.astype(np.uint8), axis=1)
    assert (unpacked == (y > 0)).all()
    assert (np.array(vectors.bits(y)) == (y > 0)).all()
    # The first byte packs dimensions 0..7, most significant bit first.
    first = sum(int(y[0, i] > 0) << (7 - i) for i in range(8))
    assert ubinary[0, 0] == first
