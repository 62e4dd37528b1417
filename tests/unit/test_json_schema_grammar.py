"""Loading llama.cpp's JSON-schema converter (upstream code) from the llama.cpp cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from outcrop.engines import json_schema_grammar, llama_build
from outcrop.engines.base import EngineUnavailable
from tests.support.llama_sdist import make_sdist


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty llama.cpp cache, no source given, and a pip that fails (counted)."""
    monkeypatch.setenv("OUTCROP_LLAMA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OUTCROP_LLAMA_SOURCE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []

    def fail(work: Path) -> Path:
        calls.append(work)
        raise llama_build.LlamaBuildError("pip download failed (no network in this test)")

    monkeypatch.setattr(llama_build, "_fetch_sdist", fail)
    return calls


def test_the_converter_is_imported_from_the_cache(fetches: list[Path]) -> None:
    path = llama_build.grammar_module_path()
    path.parent.mkdir(parents=True)
    path.write_text('ORIGIN = "cache"\n\n\nclass SchemaConverter:\n    pass\n')
    module = json_schema_grammar.load()
    assert module.ORIGIN == "cache" and module.__file__ == str(path)
    assert json_schema_grammar.schema_converter_class() is module.SchemaConverter
    assert json_schema_grammar.preload()
    assert fetches == []


def test_a_missing_converter_is_a_clear_engine_error(fetches: list[Path]) -> None:
    with pytest.raises(json_schema_grammar.GrammarUnavailable) as caught:
        json_schema_grammar.schema_converter_class()
    message = str(caught.value)
    assert "tool calls and structured output on the llama.cpp engine" in message
    assert f"run `{llama_build.GRAMMAR_COMMAND}`" in message
    assert isinstance(caught.value, EngineUnavailable)  # a 503 on the wire, not a 500
    assert not json_schema_grammar.preload()
    assert len(fetches) == 1  # a failed fetch is not retried on every request


def test_a_missing_converter_is_extracted_on_first_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fetches: list[Path]
) -> None:
    monkeypatch.setenv("OUTCROP_LLAMA_SOURCE", str(make_sdist(tmp_path / "dl")))
    assert json_schema_grammar.load().ORIGIN == "sdist"
    assert llama_build.grammar_module_path().is_file()
    assert fetches == []
