"""Metrics interceptor: counts per outcome, tokens, time to first token, active streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from outcrop.app import OutcropApp
from outcrop.config import ModelRouteSettings, ScriptedSettings, Settings
from outcrop.engines.base import EngineError
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.gateway.metrics import outcome
from outcrop.types import GenerationEvent, GenerationRequest, TokenEvent
from tests.asgi_driver import call

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "one two three"}],
    }
).encode()


class DiesMidStream(ScriptedEngine):
    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        yield TokenEvent("partial")
        raise EngineError("out of memory")


def _app(default: ScriptedEngine | None = None) -> OutcropApp:
    """Sonnet on a slow engine, everything else on `default` (4 tokens, 1 ms apart)."""
    scripted = ScriptedSettings(type="scripted")
    settings = Settings(
        engines={"default": scripted, "slow": scripted},
        models=[
            ModelRouteSettings(match=SONNET, engine="slow"),
            ModelRouteSettings(match="*", engine="default"),
        ],
    )
    return OutcropApp(
        settings,
        engines={
            "default": default or ScriptedEngine(ScriptedConfig(text="a b c d", delay_ms=1)),
            "slow": ScriptedEngine(ScriptedConfig(text="x " * 50, delay_ms=20)),
        },
    )


def _samples(app: OutcropApp) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = app.metrics.exposition().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize(
    ("code", "fault", "status", "expected"),
    [
        (None, None, 200, "success"),
        ("ThrottlingException", "client", 429, "throttle"),
        ("throttlingException", None, 200, "throttle"),
        ("ValidationException", "client", 400, "client_error"),
        ("ModelStreamErrorException", "client", 200, "client_error"),
        ("InternalServerException", "server", 500, "server_error"),
        ("ClientDisconnected", None, 200, "disconnect"),
        ("Whatever", None, 503, "server_error"),
    ],
)
def test_outcome_classification(
    code: str | None, fault: str | None, status: int, expected: str
) -> None:
    assert outcome(code, fault, status) == expected


async def test_counts_follow_the_requests_made() -> None:
    app = _app()
    stream_path = f"/model/{HAIKU}/invoke-with-response-stream"
    for _ in range(3):
        assert (await call(app, "POST", stream_path, BODY)).status == 200
    assert (await call(app, "POST", f"/model/{HAIKU}/invoke", BODY)).status == 200
    assert (await call(app, "POST", "/model/nobody.x/invoke", BODY)).status == 400
    assert (await call(app, "POST", f"/model/{HAIKU}/invoke", b"{}")).status == 400
    samples = _samples(app)
    stream = {"model": HAIKU, "operation": "InvokeModelWithResponseStream"}
    invoke = {"model": HAIKU, "operation": "InvokeModel"}
    assert _value(samples, "outcrop_invocations_total", **stream) == 3
    assert _value(samples, "outcrop_invocations_total", **invoke) == 1
    assert _value(samples, "outcrop_output_token_count_total", **stream) == 3 * 4
    assert _value(samples, "outcrop_output_token_count_total", **invoke) == 4
    assert _value(samples, "outcrop_input_token_count_total", **invoke) > 0
    assert _value(samples, "outcrop_time_to_first_token_seconds_count", **stream) == 3
    assert _value(samples, "outcrop_time_to_first_token_seconds_count", **invoke) == 0
    assert _value(samples, "outcrop_invocation_latency_seconds_count", **stream) == 3
    bad_model = {"model": "unknown", "operation": "InvokeModel"}
    assert _value(samples, "outcrop_invocation_client_errors_total", **bad_model) == 1
    assert _value(samples, "outcrop_invocation_client_errors_total", **invoke) == 1
    assert _value(samples, "outcrop_active_streams", **stream) == 0
    assert _value(samples, "outcrop_engine_queue_depth", engine="default") == 0
    assert _value(samples, "outcrop_engine_ready", engine="default") == 1


async def test_mid_stream_failure_and_disconnect() -> None:
    app = _app(default=DiesMidStream())
    broken = await call(app, "POST", f"/model/{HAIKU}/invoke-with-response-stream", BODY)
    assert broken.status == 200 and b"modelStreamErrorException" in broken.body
    # Leave a slow stream after a few tokens; watch the active-streams gauge while it runs.
    path = f"/model/{SONNET}/invoke-with-response-stream"
    task = asyncio.create_task(call(app, "POST", path, BODY, disconnect_after_chunks=10))
    for _ in range(200):
        await asyncio.sleep(0.005)
        if (
            _value(
                _samples(app),
                "outcrop_active_streams",
                model=SONNET,
                operation="InvokeModelWithResponseStream",
            )
            == 1
        ):
            break
    else:
        pytest.fail("the stream never showed as active")
    await task
    samples = _samples(app)
    haiku = {"model": HAIKU, "operation": "InvokeModelWithResponseStream"}
    sonnet = {"model": SONNET, "operation": "InvokeModelWithResponseStream"}
    # ModelStreamErrorException is a client fault in Bedrock's model.
    assert _value(samples, "outcrop_invocation_client_errors_total", **haiku) == 1
    assert _value(samples, "outcrop_invocations_total", **haiku) == 0
    assert _value(samples, "outcrop_output_token_count_total", **haiku) == 1
    assert _value(samples, "outcrop_invocation_client_disconnects_total", **sonnet) == 1
    assert _value(samples, "outcrop_active_streams", **sonnet) == 0


async def test_metrics_route_serves_prometheus_text() -> None:
    app = _app()
    result = await call(app, "GET", "/metrics")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(result.body.decode())}
    assert {"outcrop_invocations", "outcrop_active_streams", "outcrop_engine_queue_depth"} <= names


async def test_control_plane_calls_are_not_invocations() -> None:
    app = _app()
    listed = await call(app, "GET", "/foundation-models")
    assert listed.status == 200
    samples = _samples(app)
    assert not [key for key in samples if key[0].startswith("outcrop_invocation")]
