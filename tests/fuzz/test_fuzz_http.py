"""ASGI-level fuzzing: mutated requests through the whole app, in process.

Invariant (judged by `tests.fuzz.harness.judge`): never a 500, as a status or as an
`internalServerException` / `InternalStreamFailure` frame; always `x-amzn-RequestId`; an
`X-Amzn-ErrorType` on every error; nothing escaping the app; an answer (no hang). Requests are
mutants of every seed (`tests.fuzz.corpus`: each InvokeModel family, recorded traffic, Converse,
CountTokens, embeddings, guardrails, SageMaker containers), arbitrary bodies, arbitrary paths
and headers, and bidirectional sessions whose opening events are mutated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outcrop.config import ScriptedSettings, Settings, SpeechSettings
from outcrop.gateway.app import OutcropApp
from tests.fuzz.corpus import (
    GUARDRAIL_ID,
    Seed,
    guardrail_definition,
    seeds,
    session_events,
    signed_event,
)
from tests.fuzz.harness import Outcome, exchange, fuzz_app
from tests.fuzz.mutate import mutant
from tests.fuzz.strategies import mutated, seeds_where

Served = tuple[asyncio.Runner, OutcropApp]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One app and one event loop for all examples of the module (as a server has)."""
    with asyncio.Runner() as runner:
        app = fuzz_app(tmp_path_factory.mktemp("fuzz-state"))
        yield runner, app
        runner.run(app.close())


def _run(served: Served, method: str, path: str, body: bytes, headers: Any = None) -> Outcome:
    runner, app = served
    return runner.run(exchange(app, method, path, body, headers))


@given(case=mutated(seeds_where(lambda s: True)))
def test_mutated_requests_get_modelled_answers(served: Served, case: tuple[Seed, bytes]) -> None:
    seed, raw = case
    outcome = _run(served, seed.method, seed.path, raw, list(seed.headers))
    assert outcome.ok, (seed.name, raw[:300], outcome)


@given(seed=st.sampled_from(seeds()), raw=st.binary(max_size=400))
def test_arbitrary_bodies_get_modelled_answers(served: Served, seed: Seed, raw: bytes) -> None:
    outcome = _run(served, seed.method, seed.path, raw, list(seed.headers))
    assert outcome.ok, (seed.name, raw, outcome)


_SEGMENTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["model", "guardrail", "version", "endpoints", "invoke", "converse",
                     "apply", "%2F", "%3A", "..", "%00", "%ud800", "async-invoke"]),
)  # fmt: skip


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    segments=st.lists(_SEGMENTS, min_size=1, max_size=5),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "content-type",
                    "accept",
                    "x-amzn-bedrock-guardrailidentifier",
                    "x-amzn-bedrock-trace",
                    "x-amzn-bedrock-request-metadata",
                    "x-amzn-bedrock-service-tier",
                    "x-amz-content-sha256",
                    "x-amzn-sagemaker-custom-attributes",
                    "authorization",
                ]
            ),
            st.text(st.characters(max_codepoint=255), max_size=60),
        ),
        max_size=4,
    ),
)
def test_arbitrary_paths_and_headers_get_modelled_answers(
    served: Served, method: str, segments: list[str], headers: list[tuple[str, str]]
) -> None:
    path = "/" + "/".join(s.replace("/", "%2F").replace("?", "%3F") for s in segments)
    outcome = _run(served, method, path, b"{}", headers)
    assert outcome.ok, (method, path, headers, outcome)


# -- bidirectional sessions ----------------------------------------------------------------------

_BIDI = "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"
_OPENING = session_events()[:2]  # sessionStart, promptStart


@pytest.fixture(scope="module")
def speech_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = Settings(
        engines={"default": ScriptedSettings(type="scripted", text="Hello.")},
        speech=SpeechSettings(session_limit_s=30, input_timeout_s=30),
    )
    with asyncio.Runner() as runner:
        app = OutcropApp(settings)
        yield runner, app
        runner.run(app.close())


@given(index=st.integers(0, len(_OPENING) - 1), rng=st.randoms(use_true_random=False))
def test_bidirectional_sessions_with_mutated_events_end_with_modelled_answers(
    speech_served: Served, index: int, rng: Any
) -> None:
    events = [mutant(e, rng) if i == index else json.dumps(e).encode()
              for i, e in enumerate(_OPENING)]  # fmt: skip
    body = b"".join(signed_event(raw) for raw in events)
    headers = [("content-type", "application/vnd.amazon.eventstream")]
    outcome = _run(speech_served, "POST", _BIDI, body, headers)
    assert outcome.ok, (events, outcome)


def test_the_guardrail_seeds_name_the_served_guardrail() -> None:
    """The guardrail seeds reach the guardrail (or the fuzzers test mostly the 404)."""
    assert guardrail_definition()["id"] == GUARDRAIL_ID
    assert any(GUARDRAIL_ID in s.path for s in seeds())


REFUSED_SEEDS = ("traceloop__test_guardrail_converse",)
"""Recorded Converse calls with two user turns in a row, which Bedrock answered with 200 and
Outcrop refuses ("A conversation must alternate..."): a known difference, kept as seeds."""


def test_every_seed_is_answered_with_success(tmp_path: Path) -> None:
    """Unmutated, each seed succeeds: the mutants start from requests that reach deep."""
    with asyncio.Runner() as runner:
        app = fuzz_app(tmp_path)
        failures = []
        for seed in seeds():
            outcome = runner.run(
                exchange(app, seed.method, seed.path, json.dumps(seed.body).encode(),
                         list(seed.headers))
            )  # fmt: skip
            if not 200 <= outcome.status < 300 and not seed.name.startswith(REFUSED_SEEDS):
                failures.append((seed.name, outcome))
        runner.run(app.close())
    assert not failures, failures
