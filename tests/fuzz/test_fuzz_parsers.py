"""Unit-level fuzzing of every parser of client input, in process.

Invariant: a parser either accepts its input or raises its modelled error (an `AwsError` for
Bedrock bodies, `ContainerRejected` for SageMaker container bodies, `ProtocolError` /
`InputFrameError` / `EventSigningError` for bidirectional input, `JsonInputError` for raw JSON);
never anything else, which the server would turn into a 500. Inputs are mutants of real
requests (`tests.fuzz.corpus`, `tests.fuzz.mutate`) and hypothesis-built hostile JSON.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
from typing import Any
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from outcrop.catalog.resolver import OnDemandNotSupported, Resolver, UnknownModel
from outcrop.dialects.base import InvokeCall
from outcrop.dialects.containers.base import ContainerRejected
from outcrop.dialects.containers.lmi import LmiDialect
from outcrop.dialects.containers.openai_chat import OpenAIChatDialect
from outcrop.dialects.containers.tgi import TgiDialect
from outcrop.dialects.converse import parse_request
from outcrop.dialects.embeddings import embedding_dialect
from outcrop.dialects.registry import dialect_for
from outcrop.guardrails.settings import definition_problem
from outcrop.speech.protocol import InputProtocol, ProtocolError
from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError, chunk_bytes
from outcrop.wire.errors import AwsError, ValidationException
from outcrop.wire.event_signing import (
    EventChain,
    EventSigningError,
    read_signed_frame,
)
from outcrop.wire.jsonbody import JsonInputError, decode_json_body, load_json, parse_json_body
from outcrop.wire.restjson import ServiceSpec
from tests.fuzz import atheris_targets
from tests.fuzz.corpus import Seed, session_events, session_stream
from tests.fuzz.mutate import mutant, mutate_bytes
from tests.fuzz.strategies import encoded, json_values, mutated, seeds_where

RESOLVER = Resolver()
RUNTIME = ServiceSpec.load("bedrock-runtime")
CONTROL = ServiceSpec.load("bedrock")
_MODEL_PATH = re.compile(r"^/model/([^/]+)/(invoke|invoke-with-response-stream)$")


def _model(seed: Seed) -> str | None:
    found = _MODEL_PATH.match(seed.path)
    if found is None:
        return None
    try:
        return RESOLVER.resolve(unquote(found[1])).model.model_id
    except (UnknownModel, OnDemandNotSupported):
        return None


def _body(raw: bytes) -> dict[str, Any] | None:
    try:
        return decode_json_body(raw)
    except ValidationException:
        return None


@given(st.one_of(st.binary(max_size=512), json_values.map(encoded)))
def test_load_json_refuses_only_with_json_input_error(raw: bytes) -> None:
    with contextlib.suppress(JsonInputError):
        load_json(raw)


@given(mutated(seeds_where(lambda s: (m := _model(s)) is not None and dialect_for(m) is not None)))
def test_invoke_dialects_refuse_only_with_aws_errors(case: tuple[Seed, bytes]) -> None:
    seed, raw = case
    model = _model(seed)
    assert model is not None
    dialect = dialect_for(model)
    assert dialect is not None
    body = _body(raw)
    if body is None:
        return
    streaming = seed.path.endswith("stream")
    with contextlib.suppress(AwsError):
        dialect.parse(body, InvokeCall("fuzz", model, streaming))


@given(mutated(seeds_where(lambda s: s.name.startswith("embed:"))))
def test_embedding_dialects_refuse_only_with_aws_errors(case: tuple[Seed, bytes]) -> None:
    seed, raw = case
    dialect = embedding_dialect(unquote(seed.path.split("/")[2]))
    assert dialect is not None
    body = _body(raw)
    if body is None:
        return
    with contextlib.suppress(AwsError):
        dialect.parse(body)


@given(mutated(seeds_where(lambda s: s.path.endswith(("/converse", "/converse-stream")))))
def test_converse_refuses_only_with_aws_errors(case: tuple[Seed, bytes]) -> None:
    _, raw = case
    try:
        body = parse_json_body(RUNTIME.model.operation_model("Converse"), raw)
        parse_request(body, "fuzz")
    except AwsError:
        pass


@given(
    st.sampled_from([TgiDialect(), LmiDialect(), OpenAIChatDialect()]),
    mutated(seeds_where(lambda s: s.path.startswith("/endpoints/"))),
    st.sampled_from(["application/json", "text/plain", None]),
)
def test_container_dialects_refuse_only_with_their_own_replies(
    dialect: Any, case: tuple[Seed, bytes], content_type: str | None
) -> None:
    _, raw = case
    with contextlib.suppress(ContainerRejected):
        dialect.parse(content_type, raw, "fuzz")


@given(mutated(seeds_where(lambda s: s.name == "create-guardrail")))
def test_guardrail_definitions_are_judged_without_crashing(case: tuple[Seed, bytes]) -> None:
    _, raw = case
    body = _body(raw)
    if body is not None:
        problem = definition_problem(body)
        assert problem is None or isinstance(problem, str)
    with contextlib.suppress(AwsError):
        parse_json_body(CONTROL.model.operation_model("CreateGuardrail"), raw)


@given(
    mutated(seeds_where(lambda s: s.name == "apply-guardrail")),
)
def test_apply_guardrail_bodies_refuse_only_with_aws_errors(case: tuple[Seed, bytes]) -> None:
    _, raw = case
    with contextlib.suppress(AwsError):
        parse_json_body(RUNTIME.model.operation_model("ApplyGuardrail"), raw)


# -- restJson binding ----------------------------------------------------------------------------

_PATHS = st.one_of(
    st.text(max_size=80).map(lambda t: "/" + t),
    st.sampled_from(["/model/", "/guardrail/x/version/", "/async-invoke/"]).flatmap(
        lambda prefix: st.text(max_size=60).map(lambda t: prefix + t)
    ),
)


@given(st.sampled_from(["GET", "POST", "PUT", "DELETE"]), _PATHS)
def test_route_matching_never_fails(method: str, path: str) -> None:
    for spec in (RUNTIME, CONTROL):
        spec.match(method, path)


@given(
    st.sampled_from(sorted(RUNTIME.model.operation_names)),
    st.dictionaries(st.text(max_size=20), st.text(max_size=80), max_size=4),
    st.lists(st.tuples(st.sampled_from(_HEADERS := [
        "x-amzn-bedrock-guardrailidentifier", "x-amzn-bedrock-guardrailversion",
        "x-amzn-bedrock-trace", "x-amzn-bedrock-performanceconfig-latency",
        "x-amzn-bedrock-service-tier", "content-type", "accept", "x-amzn-bedrock-request-metadata",
    ]), st.text(max_size=80)), max_size=5),
    st.dictionaries(st.text(max_size=20), st.lists(st.text(max_size=40), max_size=3), max_size=3),
)  # fmt: skip
def test_restjson_binding_refuses_only_with_aws_errors(
    name: str,
    labels: dict[str, str],
    headers: list[tuple[str, str]],
    query: dict[str, list[str]],
) -> None:
    operation = RUNTIME.model.operation_model(name)
    with contextlib.suppress(AwsError):
        RUNTIME.bind(operation, labels, headers, query)


# -- bidirectional input ---------------------------------------------------------------------------


_EVENTS = session_events()
_STREAM = session_stream()


@given(st.randoms(use_true_random=False), st.integers(0, len(_EVENTS) - 1))
def test_speech_protocol_refuses_only_with_protocol_errors(rng: Any, index: int) -> None:
    protocol = InputProtocol()
    for position, event in enumerate(_EVENTS):
        raw = mutant(event, rng) if position == index else json.dumps(event).encode()
        try:
            protocol.receive(raw)
        except ProtocolError:
            return


@given(st.one_of(st.binary(max_size=300), st.randoms(use_true_random=False).map(
    lambda rng: _flip(_STREAM, rng))))  # fmt: skip
def test_input_frames_refuse_only_with_frame_errors(data: bytes) -> None:
    decoder = InputFrameDecoder()
    try:
        for frame in decoder.feed(data):
            chunk_bytes(frame.payload)
    except (InputFrameError, EventSigningError):
        pass


def _flip(data: bytes, rng: Any) -> bytes:
    for _ in range(rng.choice((1, 2, 4))):
        data = mutate_bytes(data, rng)
    return data


@given(st.integers(-(2**63), 2**63 - 1), st.binary(min_size=32, max_size=32))
def test_signed_frame_dates_refuse_only_with_signing_errors(date: int, signature: bytes) -> None:
    chain = EventChain("0" * 64, "us-east-1", "bedrock", lambda day: b"k" * 32)
    with contextlib.suppress(EventSigningError):
        chain.verify(read_signed_frame({":date": date, ":chunk-signature": signature}, b"x"))


def test_the_bidirectional_seed_is_valid() -> None:
    """The seed stream the mutants start from is accepted whole (or the fuzz tests little)."""
    protocol = InputProtocol()
    decoder = InputFrameDecoder()
    for frame in decoder.feed(_STREAM):
        protocol.receive(chunk_bytes(frame.payload))
    assert protocol.session_ended


def test_signed_frames_out_of_the_date_range_are_refused() -> None:
    date = struct.unpack(">q", b"\x7f" + b"\xff" * 7)[0]
    try:
        read_signed_frame({":date": date, ":chunk-signature": b"s" * 32}, b"")
    except EventSigningError as exc:
        assert "out of range" in str(exc)
    else:
        raise AssertionError("an out-of-range :date was accepted")


def test_the_atheris_targets_accept_their_seeds() -> None:
    """The coverage-guided targets (`make fuzz`) run here on their seeds, so they stay working."""
    for name, target in atheris_targets.TARGETS.items():
        for seed in atheris_targets.seeds(name):
            target(seed)
