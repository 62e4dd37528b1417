"""Configuration errors name the key's own line: tagged-union tags dropped, validators' keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from outcrop.config import ConfigError, load_settings
from outcrop.config_lines import file_loc, line_of

TEXT = """\
[engines.default]
type = "llamacpp"
n_ctx = 3

[[models]]
match = "*"
engine = "default"
"""
DATA = {
    "engines": {"default": {"type": "llamacpp", "n_ctx": 3}},
    "models": [{"match": "*", "engine": "default"}],
}


def test_file_loc_drops_the_union_tag() -> None:
    assert file_loc(DATA, ("engines", "default", "llamacpp", "n_ctx")) == (
        "engines",
        "default",
        "n_ctx",
    )
    assert line_of(TEXT, file_loc(DATA, ("engines", "default", "llamacpp", "n_ctx"))) == 3


def test_file_loc_keeps_keys_that_happen_to_equal_the_tag() -> None:
    data = {"engines": {"llamacpp": {"type": "llamacpp"}}}
    assert file_loc(data, ("engines", "llamacpp", "llamacpp", "model")) == (
        "engines",
        "llamacpp",
        "model",
    )


def test_file_loc_walks_lists_and_missing_keys() -> None:
    assert file_loc(DATA, ("models", 0, "engine")) == ("models", 0, "engine")
    assert file_loc(DATA, ("models", 5, "engine")) == ("models", 5, "engine")
    assert file_loc(DATA, ("server", "port")) == ("server", "port")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TEXT, "line 3: engines.default.n_ctx: Input should be greater than or equal to 256"),
        (
            '[engines.default]\ntype = "scripted"\n\n[[models]]\nmatch = "*"\nengine = "other"\n',
            "line 6: models.0.engine: route '*' names unknown engine 'other' "
            "(engines defined: default)",
        ),
        (
            '[engines.fast]\ntype = "scripted"\n',
            'engines: without [[models]] routes an engine named "default" is required',
        ),
    ],
)
def test_load_settings_names_the_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "outcrop.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message == f"{path}: {expected}"
