"""Generations that operations run on their own are admitted too: SageMaker's engine-backed
containers (in process, through the gateway's real quota interceptor) and a speech session's
turns (the invocation layer's `CallAdmission` against the real `QuotaEnforcer`)."""

from __future__ import annotations

import json

import pytest

from outcrop.config.security import QuotaSettings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.quotas import QuotaEnforcer
from outcrop.invocation.admission import CallAdmission
from outcrop.invocation.context import RequestContext
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, StopReason
from outcrop.wire.errors import ServiceQuotaExceededException, ThrottlingException
from tests.asgi_driver import call
from tests.unit.test_security import app, error

ENDPOINT = "/endpoints/my-endpoint/invocations"
STREAM = "/endpoints/my-endpoint/invocations-response-stream"
RESPONSES = "/_outcrop/responses"
JSON = [("content-type", "application/json")]


def tgi(text: str, max_new_tokens: int) -> bytes:
    return json.dumps({"inputs": text, "parameters": {"max_new_tokens": max_new_tokens}}).encode()


async def test_invoke_endpoint_reserves_tokens_and_settles_with_the_usage() -> None:
    gateway = app(quotas=[{"tokens_per_minute": 200, "operation": "InvokeEndpoint*"}])
    # Reserves 40 in + 150 out, uses about 40 + 41 (the echo): the rest is given back.
    first = await call(gateway, "POST", ENDPOINT, tgi("word " * 40, 150), JSON)
    assert first.status == 200, first.body
    assert "Echo:" in json.loads(first.body)[0]["generated_text"]
    # Fits only if the first call was settled with its usage (about 120 of 200 left).
    second = await call(gateway, "POST", ENDPOINT, tgi("hi", 100), JSON)
    assert second.status == 200, second.body
    # Input plus max output over what is left: refused when admitted, before generating.
    status, code, _ = error(await call(gateway, "POST", ENDPOINT, tgi("hi", 150), JSON))
    assert (status, code) == (429, "ThrottlingException")


async def test_invoke_endpoint_that_never_fits_the_quota_is_refused() -> None:
    gateway = app(quotas=[{"tokens_per_minute": 100}])
    status, code, _ = error(await call(gateway, "POST", STREAM, tgi("hi", 500), JSON))
    assert (status, code) == (400, "ServiceQuotaExceededException")
    # The stream quota's counter was released: a call that fits goes through.
    fits = await call(gateway, "POST", STREAM, tgi("hi", 20), JSON)
    assert fits.status == 200


async def test_a_sagemaker_call_refused_by_a_quota_consumes_no_queued_answer() -> None:
    gateway = app(quotas=[{"tokens_per_minute": 100}])
    added = await call(gateway, "POST", RESPONSES, json.dumps({"text": "Queued."}).encode(), JSON)
    rule = json.loads(added.body)["id"]
    status, code, _ = error(await call(gateway, "POST", ENDPOINT, tgi("hi", 500), JSON))
    assert (status, code) == (400, "ServiceQuotaExceededException")
    state = await call(gateway, "GET", f"{RESPONSES}/rule", b"", query=f"id={rule}")
    assert (json.loads(state.body)["fired"], json.loads(state.body)["remaining"]) == (0, 1)
    # Admitted, the queued answer is the container's answer.
    answered = await call(gateway, "POST", ENDPOINT, tgi("hi", 20), JSON)
    assert json.loads(answered.body)[0]["generated_text"] == "Queued."


def request(text: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest((ChatMessage("user", text),), SamplingParams(max_tokens))


async def test_each_turn_of_a_session_is_admitted_against_the_quota() -> None:
    quotas = QuotaEnforcer([QuotaSettings(tokens_per_minute=100)], clock=lambda: 0.0)
    ctx = RequestContext(
        "r1", "InvokeModelWithBidirectionalStream", {"modelId": "amazon.nova-sonic-v1:0"}, b""
    )
    await quotas.before(ctx)
    engine = ScriptedEngine()
    admission = CallAdmission(ctx, "amazon.nova-sonic-v1:0")
    turn = request("hello there", 40)
    assert await admission.admit(engine, turn) is engine
    assert ctx.record.model_id == "amazon.nova-sonic-v1:0"
    assert ctx.record.input_tokens == engine.count_tokens(turn)
    admission.finished(Finish(StopReason.END_TURN, 5, 7))
    admission.finished(Finish(StopReason.END_TURN, 6, 8))
    assert (ctx.record.input_tokens, ctx.record.output_tokens) == (11, 15)
    # The second turn's reservation does not fit what is left of the minute.
    with pytest.raises(ThrottlingException):
        await admission.admit(engine, request("again", 60))
    with pytest.raises(ServiceQuotaExceededException):
        await admission.admit(engine, request("too much", 500))


async def test_a_session_of_several_turns_gives_back_every_turns_unused_reservation() -> None:
    # Regression: the settlement kept only the last reservation per counter, so a session of
    # several turns was charged each earlier turn's whole reservation (input + max output).
    quotas = QuotaEnforcer([QuotaSettings(tokens_per_minute=100)], clock=lambda: 0.0)
    ctx = RequestContext(
        "r2", "InvokeModelWithBidirectionalStream", {"modelId": "amazon.nova-sonic-v1:0"}, b""
    )
    await quotas.before(ctx)
    engine = ScriptedEngine()
    admission = CallAdmission(ctx, "amazon.nova-sonic-v1:0")
    for _ in range(2):  # two turns, each reserving about 2 + 40
        await admission.admit(engine, request("hi", 40))
        admission.finished(Finish(StopReason.END_TURN, 2, 3))
    quotas.after(ctx)
    # 10 tokens were used; a call that needs 85 fits only if both reservations came back.
    later = RequestContext("r3", "InvokeModel", {"modelId": "amazon.nova-sonic-v1:0"}, b"")
    await quotas.before(later)
    await CallAdmission(later, "amazon.nova-sonic-v1:0").admit(engine, request("hi", 83))
