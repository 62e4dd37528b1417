"""The bench decoder reads every served text family's stream: text events and final usage.

Each streamed text model gets its default body (as `outcrop invoke` and `outcrop bench` send
it) through Outcrop in-process on a scripted engine that answers with four tokens.
"""

from __future__ import annotations

import json

import pytest

from outcrop.app import OutcropApp
from outcrop.catalog.foundation import foundation_models
from outcrop.cli.bench.decode import TEXT, Operation, StreamDecoder
from outcrop.cli.native import StreamUsage, default_body
from outcrop.config import ScriptedSettings, Settings
from outcrop.dialects.registry import dialect_for
from tests.asgi_driver import call

MODELS = sorted(
    model_id
    for model_id, model in foundation_models().items()
    if model.streaming and "TEXT" in model.output_modalities and dialect_for(model_id) is not None
)


@pytest.fixture(scope="module")
def app() -> OutcropApp:
    return OutcropApp(
        Settings(engines={"default": ScriptedSettings(type="scripted", text="one two three four")})
    )


@pytest.mark.parametrize("model_id", MODELS)
async def test_stream_decodes_to_text_and_usage(app: OutcropApp, model_id: str) -> None:
    # Profile-only models are invoked through their US cross-region profile.
    invoked = model_id if foundation_models()[model_id].on_demand else f"us.{model_id}"
    body = json.dumps(default_body(invoked, "Hi", 50)).encode()
    result = await call(app, "POST", f"/model/{invoked}/invoke-with-response-stream", body)
    assert result.status == 200, result.body[:300]
    events = StreamDecoder(Operation.invoke).feed(result.body)
    assert events.count(TEXT) >= 1
    usage = [e for e in events if isinstance(e, StreamUsage)]
    # Reasoning models (gpt-oss, DeepSeek R1, Kimi thinking) add a scripted reasoning part.
    assert usage and usage[-1].output_tokens is not None and usage[-1].output_tokens >= 4
