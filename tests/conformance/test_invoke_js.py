"""InvokeModel and InvokeModelWithResponseStream through the official JS v3 SDK under Node,
which speaks HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2) for every operation and
sends GOAWAY as soon as the response headers arrive."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.conftest import BROKEN, DEAD, HAIKU, SLOW
from tests.conformance.jsclient import run_js
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node


def claude(text: str, max_tokens: int = 100) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


def chunks(run: Any) -> list[dict[str, Any]]:
    return [e["data"] for e in run.events if e["event"] == "chunk"]


def test_js_invoke_model(invoke_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModel",
            "modelId": f"us.{HAIKU}",
            "body": claude("basalt"),
        }
    )
    done = run.ok()
    assert done["response"]["statusCode"] == 200
    body = done["output"]["body"]
    assert body["content"][0]["text"] == "Echo: basalt"
    assert done["output"]["contentType"] == "application/json"
    headers = done["response"]["headers"]
    assert headers["x-amzn-bedrock-output-token-count"] == str(body["usage"]["output_tokens"])


def test_js_stream_over_h2c_gets_every_event_with_its_delays(invoke_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": SLOW,
            "body": claude("x"),
        }
    )
    run.ok()
    objects = chunks(run)
    types = [o["type"] for o in objects]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e for e in run.events if e["data"]["type"] == "content_block_delta"]
    assert "".join(e["data"]["delta"]["text"] for e in deltas) == (
        "one two three four five six seven eight nine ten"
    )
    # ten tokens 100 ms apart, received as they were produced (not in one burst at the end)
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(deltas)]
    assert sum(1 for g in gaps if g > 50) >= 7
    metrics = objects[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 10


def test_js_stream_over_tls_h2(invoke_server: ServerProcess, tls_files: tuple[Path, Path]) -> None:
    run = run_js(
        {
            "endpoint": invoke_server.tls_url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": HAIKU,
            "body": claude("over tls"),
        },
        ca_file=tls_files[0],
    )
    run.ok()
    text = "".join(o["delta"]["text"] for o in chunks(run) if o["type"] == "content_block_delta")
    assert text == "Echo: over tls"


@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_js_modelled_errors(invoke_server: ServerProcess, operation: str) -> None:
    def error(model_id: str, body: Any) -> dict[str, Any]:
        run = run_js(
            {
                "endpoint": invoke_server.url,
                "operation": operation,
                "modelId": model_id,
                "body": body,
                "maxAttempts": 1,
            }
        )
        assert run.error is not None
        return run.error

    invalid = error("acme.nothing-v1", claude("x"))
    assert invalid["name"] == "ValidationException"
    assert invalid["message"] == "The provided model identifier is invalid."
    assert invalid["$fault"] == "client"
    assert invalid["$metadata"]["httpStatusCode"] == 400
    malformed = error(HAIKU, {"prompt": 1})
    assert malformed["name"] == "ValidationException"
    assert malformed["message"].startswith("Malformed input request")
    model_error = error(DEAD, claude("x"))
    assert model_error["name"] == "ModelErrorException"
    assert model_error["originalStatusCode"] == 500


def test_js_mid_stream_failure_is_the_modelled_class(invoke_server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": BROKEN,
            "body": claude("a b c d e"),
        }
    )
    assert run.error is not None
    assert run.error["name"] == "ModelStreamErrorException"
    assert run.error["originalStatusCode"] == 500
    assert [o["type"] for o in chunks(run)][:2] == ["message_start", "content_block_start"]


def test_js_abort_mid_stream_leaves_the_server_serving(invoke_server: ServerProcess) -> None:
    aborted = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": SLOW,
            "body": claude("x"),
            "abortAfterEvents": 3,
        }
    )
    assert len(aborted.events) == 3
    again = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModel",
            "modelId": HAIKU,
            "body": claude("after abort"),
        }
    )
    assert again.ok()["output"]["body"]["content"][0]["text"] == "Echo: after abort"


@pytest.mark.llamacpp
def test_js_stream_from_the_real_model(llama_server: ServerProcess) -> None:
    body = claude("Say something about rocks.", 10) | {"temperature": 0}
    streamed = run_js(
        {
            "endpoint": llama_server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": HAIKU,
            "body": body,
        },
        timeout=120,
    )
    streamed.ok()
    objects = chunks(streamed)
    text = "".join(o["delta"]["text"] for o in objects if o["type"] == "content_block_delta")
    whole = run_js(
        {"endpoint": llama_server.url, "operation": "InvokeModel", "modelId": HAIKU, "body": body},
        timeout=120,
    ).ok()["output"]["body"]
    assert text == whole["content"][0]["text"] and text.strip()
    assert objects[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 10


def test_js_content_types(invoke_server: ServerProcess) -> None:
    """Without `contentType` the SDK sends application/octet-stream, which Bedrock reads as the
    JSON body; a charset parameter is refused with Bedrock's sentence."""
    omitted = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModel",
            "modelId": HAIKU,
            "body": claude("basalt"),
            "contentType": None,
        }
    )
    done = omitted.ok()
    assert done["request"]["headers"]["content-type"] == "application/octet-stream"
    assert done["output"]["body"]["content"][0]["text"] == "Echo: basalt"
    refused = run_js(
        {
            "endpoint": invoke_server.url,
            "operation": "InvokeModel",
            "modelId": HAIKU,
            "body": claude("basalt"),
            "contentType": "application/json; charset=utf-8",
        }
    )
    error = refused.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert (
        error["message"] == "The provided Content Type is invalid or not supported for this model"
    )
