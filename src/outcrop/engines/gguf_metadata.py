"""Read the scalar and string metadata of a GGUF file's header (no tensors, no arrays).

The managed llama-server engine renders prompts itself (so that it can count their tokens
exactly before generating) and needs two facts about the model that llama-server's `/props`
does not distinguish: whether the GGUF carries its own `tokenizer.chat_template` (llama-server
falls back to ChatML when it does not) and the model's `general.architecture`.

Format (GGUF v2/v3, little-endian): magic ``GGUF``, u32 version, u64 tensor count, u64
key/value count, then each pair as a u64-length UTF-8 key, a u32 value type and the value.
Arrays (the vocabulary, merges, ...) are skipped without being kept.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

GGUF_MAGIC = b"GGUF"

# value type -> struct format of a scalar
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING = 8
_ARRAY = 9
_MAX_STRING = 64 << 20


class GgufError(ValueError):
    """The file is not a GGUF model (or its header is damaged)."""


def read_metadata(path: Path) -> dict[str, str | int | float | bool]:
    """The header's scalar and string values by key (arrays left out)."""
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise GgufError(f"{path} is not a GGUF file")
        version, _tensors, count = struct.unpack("<IQQ", _read(handle, 20))
        if version < 2:
            raise GgufError(f"{path}: GGUF version {version} is not supported")
        values: dict[str, str | int | float | bool] = {}
        for _ in range(count):
            key = _string(handle)
            (kind,) = struct.unpack("<I", _read(handle, 4))
            if kind == _ARRAY:
                _skip_array(handle)
            else:
                values[key] = _value(handle, kind)
        return values


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise GgufError("truncated GGUF header")
    return data


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _read(handle, 8))
    if length > _MAX_STRING:
        raise GgufError("implausible string length in GGUF header")
    return _read(handle, length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int) -> str | int | float | bool:
    if kind == _STRING:
        return _string(handle)
    fmt = _SCALARS.get(kind)
    if fmt is None:
        raise GgufError(f"unknown GGUF value type {kind}")
    value: str | int | float | bool = struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]
    return value


def _skip_array(handle: BinaryIO) -> None:
    kind, length = struct.unpack("<IQ", _read(handle, 12))
    if kind == _STRING:
        for _ in range(length):
            (size,) = struct.unpack("<Q", _read(handle, 8))
            handle.seek(size, 1)
    elif kind == _ARRAY:
        for _ in range(length):
            _skip_array(handle)
    else:
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise GgufError(f"unknown GGUF array type {kind}")
        handle.seek(struct.calcsize(fmt) * length, 1)
