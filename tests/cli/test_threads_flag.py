"""`outcrop serve --threads N` sets the CPU threads of every llama.cpp engine, and only theirs."""

from __future__ import annotations

from pathlib import Path

from outcrop.cli.main import build_settings
from outcrop.config import LlamaCppSettings, ScriptedSettings


def test_threads_applies_to_llamacpp_engines(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        '[engines.default]\ntype = "llamacpp"\nn_threads = 4\n\n[engines.fake]\ntype = "scripted"\n'
    )
    settings = build_settings(config, None, None, None, None, None, None, None, None, threads=2)
    default, fake = settings.engines["default"], settings.engines["fake"]
    assert isinstance(default, LlamaCppSettings) and default.n_threads == 2
    assert isinstance(fake, ScriptedSettings)
    unchanged = build_settings(config, None, None, None, None, None, None, None, None)
    kept = unchanged.engines["default"]
    assert isinstance(kept, LlamaCppSettings) and kept.n_threads == 4


def test_threads_with_a_model_flag() -> None:
    settings = build_settings(
        None, None, Path("gemma3-270m"), None, None, None, None, None, None, threads=3
    )
    engine = settings.engines["default"]
    assert isinstance(engine, LlamaCppSettings)
    assert (engine.model, engine.n_threads) == (Path("gemma3-270m"), 3)
