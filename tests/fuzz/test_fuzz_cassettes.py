"""Cassette files are input too (`outcrop serve --replay DIR`, `PUT /_outcrop/recording`,
`outcrop cassettes import`): a damaged one is refused with `CassetteError` (or, imported from
vcrpy, `ImportProblem`), never with another exception at load or at replay time.

Mutants come from the suite's own mutation engine (tests/fuzz/mutate.py) applied to a real
cassette with a streamed entry and a JSON entry.
"""

from __future__ import annotations

import json
import random

from hypothesis import given
from hypothesis import strategies as st

from outcrop.recording.cassette import (
    Cassette,
    CassetteError,
    Interaction,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
)
from outcrop.recording.vcr_import import ImportProblem, import_vcr
from outcrop.wire import eventstream
from tests.fuzz.mutate import mutant


def _seed() -> dict[str, object]:
    frame = eventstream.chunk_frame({"completion": "hi"})
    streamed = Interaction(
        "bedrock-runtime",
        "InvokeModelWithResponseStream",
        "anthropic.claude-v2",
        RecordedRequest("POST", "/model/x/invoke-with-response-stream", "", {}, {"json": {}}),
        RecordedResponse(
            200,
            (("Content-Type", "application/vnd.amazon.eventstream"),),
            events=(RecordedEvent.from_frame(frame, 0.5),),
        ),
        "2026-01-01T00:00:00.000+00:00",
        0.6,
    )
    plain = Interaction(
        "bedrock-runtime",
        "Converse",
        "m",
        RecordedRequest("POST", "/model/m/converse", "", {}, {"json": {"messages": []}}),
        RecordedResponse(200, (("Content-Type", "application/json"),), body={"json": {"a": 1}}),
        "2026-01-01T00:00:00.000+00:00",
        0.1,
    )
    return Cassette([streamed, plain]).to_json()


SEED = _seed()


@given(st.randoms(use_true_random=False))
def test_a_damaged_cassette_is_refused_with_a_cassette_error(rng: random.Random) -> None:
    text = mutant(SEED, rng).decode("utf-8", "replace")
    try:
        cassette = Cassette.loads(text, "fuzzed.json")
    except CassetteError:
        return
    for interaction in cassette.interactions:  # what replay does with each entry it serves
        interaction.frames()


@given(st.randoms(use_true_random=False))
def test_a_damaged_vcr_cassette_is_refused_or_skipped(rng: random.Random) -> None:
    vcr = {
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
                    "body": json.dumps({"messages": []}),
                    "headers": {"Content-Type": ["application/json"]},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"string": json.dumps({"output": {}})},
                },
            }
        ],
        "version": 1,
    }
    text = mutant(vcr, rng).decode("utf-8", "replace")
    try:
        import_vcr(text)
    except ImportProblem:
        return
