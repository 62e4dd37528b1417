"""The access log: one line per finished call, with what a person watching the server needs."""

from __future__ import annotations

import io
import json

from outcrop.config import ScriptedSettings, ServerSettings, Settings
from outcrop.gateway.access_log import AccessLog, access_line
from outcrop.gateway.app import OutcropApp
from outcrop.services.base import RequestContext
from tests.asgi_driver import call

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "one two"}],
    }
).encode()


def test_a_line_for_a_call_and_its_usage() -> None:
    ctx = RequestContext("r1", "ConverseStream", {"modelId": f"us.{HAIKU}"}, b"", started=0.0)
    ctx.record.input_tokens, ctx.record.output_tokens = 12, 64
    line = access_line(ctx, "10:42:07")
    assert line.startswith(f"10:42:07 POST ConverseStream us.{HAIKU} 200 ")
    assert line.endswith("ms 12/64 tokens")


def test_a_failed_call_names_its_error_and_unknown_counts_are_dashes() -> None:
    ctx = RequestContext("r2", "InvokeEndpoint", {"EndpointName": "chat"}, b"", method="POST")
    ctx.record.status = 424
    ctx.record.output_tokens = 3
    ctx.record.error_code = "ModelError"
    words = access_line(ctx, "t").split()
    assert words[:5] == ["t", "POST", "InvokeEndpoint", "chat", "424"]
    assert words[6:] == ["-/3", "tokens", "ModelError"]
    bare = RequestContext("r3", "ListFoundationModels", {}, b"", method="GET")
    assert access_line(bare, "t").split()[:5] == ["t", "GET", "ListFoundationModels", "-", "200"]


def _app(access_log: bool) -> OutcropApp:
    settings = Settings(
        server=ServerSettings(access_log=access_log),
        engines={"default": ScriptedSettings(type="scripted")},
    )
    return OutcropApp(settings)


async def test_the_app_writes_one_line_per_call() -> None:
    app = _app(access_log=True)
    sink = io.StringIO()
    [access] = [i for i in app.interceptors if isinstance(i, AccessLog)]
    access._sink = lambda: sink
    await call(app, "POST", f"/model/{HAIKU}/invoke", BODY)
    await call(app, "POST", f"/model/{HAIKU}/invoke-with-response-stream", BODY)
    await call(app, "POST", "/model/nobody.x/invoke", BODY)
    await call(app, "GET", "/_outcrop/health")
    await app.close()
    lines = sink.getvalue().splitlines()
    assert [line.split()[2:5] for line in lines] == [
        ["InvokeModel", HAIKU, "200"],
        ["InvokeModelWithResponseStream", HAIKU, "200"],
        ["InvokeModel", "nobody.x", "400"],
    ]
    # "Echo: one two": four tokens out.
    assert lines[0].endswith("/4 tokens") and lines[1].endswith("/4 tokens")
    assert lines[2].endswith("ValidationException")


def test_off_by_configuration() -> None:
    app = _app(access_log=False)
    assert not any(isinstance(i, AccessLog) for i in app.interceptors)
