"""Which cassette is played and recorded, in which mode (VCR's), its bounds and atomic writes,
and the `serve` flags that set `[recording]`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from outcrop.config import ConfigError
from outcrop.config.recording import RecordingSettings, with_flags
from outcrop.recording.cassette import (
    Call,
    Cassette,
    CassetteError,
    Interaction,
    RecordedRequest,
    RecordedResponse,
)
from outcrop.recording.library import Library, SelectionError, check_name


def interaction(text: str) -> Interaction:
    body = {"messages": [{"role": "user", "content": [{"text": text}]}]}
    return Interaction(
        "bedrock-runtime",
        "Converse",
        "m",
        RecordedRequest("POST", "/model/m/converse", "", {}, {"json": body}),
        RecordedResponse(200, (("Content-Type", "application/json"),), {"json": {"said": text}}),
    )


def call(text: str) -> Call:
    return Call("bedrock-runtime", "Converse", "m", interaction(text).request.body)


def library(tmp_path: Path, mode: str = "none", **extra: object) -> Library:
    return Library(RecordingSettings.model_validate({"dir": tmp_path, "mode": mode, **extra}))


def seed(tmp_path: Path, name: str, *texts: str) -> None:
    Cassette([interaction(t) for t in texts]).save(tmp_path / f"{name}.json")


def test_default_session_replays_every_cassette_under_the_folder(tmp_path: Path) -> None:
    seed(tmp_path, "a", "one")
    seed(tmp_path, "nested/b", "two")
    lib = library(tmp_path)
    assert lib.decide(call("one")).replay is not None
    assert lib.decide(call("two")).replay is not None
    missed = lib.decide(call("three"))
    assert missed.replay is None and not missed.upstream
    assert lib.path.name.startswith("session-")
    # The session's own cassette is new: `--record DIR` (mode once) records every call.
    assert library(tmp_path, "once").decide(call("one")).upstream
    episodes = library(tmp_path, "new_episodes")
    assert episodes.decide(call("two")).replay is not None
    assert episodes.decide(call("three")).upstream


def test_modes(tmp_path: Path) -> None:
    seed(tmp_path, "c", "one")
    once = library(tmp_path, "once")
    once.select("c")
    assert once.decide(call("one")).replay is not None
    assert not once.decide(call("two")).upstream  # the cassette exists: replay only
    once.select("fresh")
    assert once.decide(call("one")).upstream  # no such cassette: record everything
    episodes = library(tmp_path, "new_episodes")
    episodes.select("c")
    assert episodes.decide(call("one")).replay is not None
    assert episodes.decide(call("two")).upstream
    every = library(tmp_path, "all")
    every.select("c")
    decision = every.decide(call("one"))
    assert decision.replay is None and decision.upstream
    assert every.cassette.interactions == []  # re-recorded from scratch


def test_recording_appends_and_writes_atomically(tmp_path: Path) -> None:
    lib = library(tmp_path, "new_episodes")
    lib.select("t/recorded")
    asyncio.run(lib.record(interaction("one")))
    asyncio.run(lib.record(interaction("two")))
    path = tmp_path / "t" / "recorded.json"
    assert [i.response.body for i in Cassette.load(path).interactions] == [
        {"json": {"said": "one"}},
        {"json": {"said": "two"}},
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["recorded.json"]
    assert lib.decide(call("two")).replay is not None


def test_bounds_stop_recording_not_serving(tmp_path: Path) -> None:
    lib = library(tmp_path, "all", max_interactions=1)
    assert asyncio.run(lib.record(interaction("one")))
    assert not asyncio.run(lib.record(interaction("two")))
    assert len(Cassette.load(lib.path).interactions) == 1
    small = library(tmp_path / "small", "all", max_cassette_bytes=1024)
    assert not asyncio.run(small.record(interaction("x" * 2000)))
    assert not small.path.exists()


def test_selection_errors_leave_the_state_as_it_was(tmp_path: Path) -> None:
    seed(tmp_path, "good", "one")
    lib = library(tmp_path)
    lib.select("good")
    (tmp_path / "broken.json").write_text(json.dumps({"interactions": []}))
    with pytest.raises(CassetteError):
        lib.select("broken", "new_episodes")
    assert lib.name == "good" and lib.mode == "none"
    assert lib.decide(call("one")).replay is not None
    with pytest.raises(SelectionError):
        lib.select("good", "sometimes")
    for bad in ("../escape", "/abs", "a/../b", "", "sp ace"):
        with pytest.raises(SelectionError):
            check_name(bad)
    assert check_name("tests/test_x/test_y.json") == "tests/test_x/test_y"


def test_a_broken_cassette_stops_the_server_at_start(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json: not JSON"):
        library(tmp_path)


def test_json_files_that_are_not_cassettes_are_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed(tmp_path, "recorded", "hello")
    (tmp_path / "package.json").write_text('{"name": "app", "version": "1.0.0"}')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.json").write_text("[1, 2, 3]")
    with caplog.at_level("WARNING", logger="outcrop.recording"):
        lib = library(tmp_path)
    found = lib.decide(call("hello")).replay
    assert found is not None and found.response.body == {"json": {"said": "hello"}}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "package.json" in warnings[0] and str(Path("sub") / "list.json") in warnings[0]
    assert "recorded.json" not in warnings[0]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"outcrop_cassette": 1, "interactions": [{"service": "x"}]}', "malformed interaction"),
        ('{"outcrop_cassette": 7, "interactions": []}', "outcrop_cassette 7 is not a format"),
    ],
)
def test_a_file_claiming_to_be_a_cassette_and_broken_still_stops_the_server(
    tmp_path: Path, text: str, error: str
) -> None:
    seed(tmp_path, "recorded", "hello")
    (tmp_path / "claims.json").write_text(text)
    with pytest.raises(ConfigError, match=rf"claims\.json: {error}"):
        library(tmp_path)


def test_serve_flags() -> None:
    base = RecordingSettings()
    recorded = with_flags(base, record=Path("c"), upstream="http://127.0.0.1:1/")
    assert (recorded.dir, recorded.mode, recorded.upstream) == (
        Path("c"),
        "once",
        "http://127.0.0.1:1",
    )
    replayed = with_flags(base, replay=Path("c"), replay_speed=10)
    assert (replayed.mode, replayed.replay_speed) == ("none", 10)
    assert with_flags(base, replay=Path("c"), mode="new_episodes").mode == "new_episodes"
    with pytest.raises(ValueError):
        with_flags(base, record=Path("a"), replay=Path("b"))
    with pytest.raises(ValueError):
        with_flags(base, mode="all")
    with pytest.raises(ValueError):
        RecordingSettings.model_validate({"dir": "c", "redact_patterns": ["("]})
    with pytest.raises(ValueError):
        RecordingSettings.model_validate({"dir": "c", "match_ignore": ["a[x"]})
