"""`outcrop serve` lays its flags over the config file and keeps every other section as loaded.

Regression: `build_settings` used to rebuild `Settings` from a list of sections by name, and each
new section (`[state]`, `[console]`) was silently dropped until someone noticed.
"""

from __future__ import annotations

from pathlib import Path

from outcrop.app import load_settings
from outcrop.cli.main import build_settings

FLAG_SECTIONS = {"server", "engines", "models", "invocation_log", "recording"}


def test_every_section_the_flags_do_not_touch_is_kept(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        '[state]\nurl = "sqlite://"\n\n'
        "[console]\nmax_calls = 7\n\n"
        "[limits]\nmax_quota_counters = 11\n"
    )
    loaded = load_settings(config)
    built = build_settings(config, None, None, None, None, None, None, None, None)
    for name in type(loaded).model_fields:
        if name not in FLAG_SECTIONS:
            assert getattr(built, name) == getattr(loaded, name), name
    assert built.console.max_calls == 7
    assert built.limits.max_quota_counters == 11
