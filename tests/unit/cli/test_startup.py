"""What `outcrop serve` prints while its engines load, and the URL line after."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncGenerator

import pytest

from outcrop.cli import startup
from outcrop.cli.startup import (
    StartupTracebacks,
    announce,
    essential_engines,
    progress_text,
    url_line,
)
from outcrop.config import ModelRouteSettings, ScriptedSettings, Settings
from outcrop.engines.base import Engine
from outcrop.types import EngineHealth, GenerationEvent, GenerationRequest


class Loading(Engine):
    """Reports the given health states one after the other, one per call."""

    def __init__(self, states: list[EngineHealth]) -> None:
        self.name = "default"
        self.states = states

    def health(self) -> EngineHealth:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def count_tokens(self, request: GenerationRequest) -> int:
        return 0

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        raise NotImplementedError
        yield


def test_url_line_keeps_the_export_hint() -> None:
    line = url_line(["http://127.0.0.1:4590", "https://localhost:4591"])
    assert line == (
        "Outcrop is serving Bedrock Runtime and SageMaker Runtime at http://127.0.0.1:4590"
        " and https://localhost:4591"
        "  (export AWS_ENDPOINT_URL=http://127.0.0.1:4590)"
    )


def test_progress_text_names_the_loading_engines() -> None:
    states = {
        "default": EngineHealth(False, "loading", "assembling", {"progress": 0.25}),
        "fast": EngineHealth(True, "ready"),
    }
    assert progress_text(states, 1.25) == ("engine default: assembling 25% (1.2s)")


async def test_progress_lines_then_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "POLL_SECONDS", 0.001)
    engine = Loading(
        [
            EngineHealth(False, "loading", "assembling the embedded model"),
            EngineHealth(False, "loading", "assembling the embedded model"),
            EngineHealth(False, "loading", "loading the model"),
            EngineHealth(True, "ready"),
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    await asyncio.wait_for(announce({"default": engine}, ["http://x:1"], out=out, err=err), 5)
    lines = err.getvalue().splitlines()
    assert lines[0] == "Outcrop is starting at http://x:1; loading models…"
    assert lines[1:3] == [
        "engine default: assembling the embedded model",
        "engine default: loading the model",
    ]
    assert lines[3].startswith("Models loaded in ")
    assert out.getvalue() == url_line(["http://x:1"]) + "\n"


async def test_ready_engines_print_only_the_url() -> None:
    out, err = io.StringIO(), io.StringIO()
    await announce({"default": Loading([EngineHealth(True, "ready")])}, ["u"], out=out, err=err)
    assert err.getvalue() == ""
    assert out.getvalue() == url_line(["u"]) + "\n"


async def test_a_failed_engine_is_reported_before_the_url() -> None:
    out, err = io.StringIO(), io.StringIO()
    failed = Loading([EngineHealth(False, "failed", "model file is corrupt")])
    await announce({"default": failed}, ["u"], out=out, err=err)
    assert err.getvalue() == "outcrop: engine default failed to load: model file is corrupt\n"
    assert out.getvalue() == url_line(["u"]) + "\n"


async def test_an_essential_engine_that_failed_ends_start_up_without_the_url() -> None:
    out, err = io.StringIO(), io.StringIO()
    engines = {
        "default": Loading(
            [EngineHealth(False, "loading", "loading x.gguf"), EngineHealth(False, "failed", "bad")]
        ),
        "extra": Loading([EngineHealth(True, "ready")]),
    }
    problem = await asyncio.wait_for(
        announce(engines, ["u"], essential={"default"}, out=out, err=err), 5
    )
    assert problem == "engine default failed to load: bad"
    assert out.getvalue() == ""
    assert "Models loaded" not in err.getvalue()


async def test_a_failed_extra_engine_is_reported_and_serving_goes_on() -> None:
    out, err = io.StringIO(), io.StringIO()
    engines = {
        "default": Loading([EngineHealth(True, "ready")]),
        "extra": Loading([EngineHealth(False, "failed", "unreachable")]),
    }
    assert await announce(engines, ["u"], essential={"default"}, out=out, err=err) is None
    assert err.getvalue() == "outcrop: engine extra failed to load: unreachable\n"
    assert out.getvalue() == url_line(["u"]) + "\n"


def test_essential_engines() -> None:
    scripted = ScriptedSettings(type="scripted")
    assert essential_engines(Settings(engines={"default": scripted})) == {"default"}
    routed = Settings(
        engines={"a": scripted, "b": scripted},
        models=[
            ModelRouteSettings(match="x*", engine="a"),
            ModelRouteSettings(match="*", engine="b"),
        ],
    )
    assert essential_engines(routed) == {"b"}


def test_start_up_drops_engine_tracebacks_until_it_is_over() -> None:
    starting = StartupTracebacks()

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "failed", None, None)

    engine_error = record("outcrop.engines.llamacpp", logging.ERROR)
    assert not starting.filter(engine_error)
    assert starting.filter(record("outcrop.engines.llamacpp", logging.WARNING))
    assert starting.filter(record("outcrop.gateway", logging.ERROR))
    starting.starting = False
    assert starting.filter(engine_error)
