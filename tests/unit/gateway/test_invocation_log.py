"""Invocation logs: one Bedrock-shaped JSON object per invocation, bodies only when asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from outcrop.app import OutcropApp
from outcrop.config import InvocationLogSettings, ScriptedSettings, Settings
from outcrop.gateway.invocation_log import invocation_entry
from outcrop.invocation.context import Identity
from outcrop.services.base import RequestContext
from tests.asgi_driver import call

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
REQUEST = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "one two"}],
}
BODY = json.dumps(REQUEST).encode()
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-3/bedrock/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abc"
)


def _signed(path: str) -> list[tuple[str, str]]:
    """Headers of a request signed by botocore for eu-west-3 (as boto3 would send them)."""
    request = AWSRequest(
        "POST", f"http://localhost{path}", data=BODY, headers={"Content-Type": "application/json"}
    )
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    SigV4Auth(credentials, "bedrock", "eu-west-3").add_auth(request)
    return [("Host", "localhost"), *request.headers.items()]


def _app(path: Path, include_bodies: bool) -> OutcropApp:
    return OutcropApp(
        Settings(
            engines={"default": ScriptedSettings(type="scripted", text="Hello there")},
            invocation_log=InvocationLogSettings(
                destination=str(path), include_bodies=include_bodies
            ),
        )
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_one_entry_per_invocation_without_bodies(tmp_path: Path) -> None:
    log = tmp_path / "invocations.jsonl"
    app = _app(log, include_bodies=False)
    ok = await call(app, "POST", f"/model/{HAIKU}/invoke", BODY, _signed(f"/model/{HAIKU}/invoke"))
    stream = await call(app, "POST", f"/model/us.{HAIKU}/invoke-with-response-stream", BODY)
    bad = await call(app, "POST", "/model/nobody.x/invoke", BODY)
    await app.close()
    assert (ok.status, stream.status, bad.status) == (200, 200, 400)
    first, second, third = _lines(log)

    assert first["schemaType"] == "ModelInvocationLog" and first["schemaVersion"] == "1.0"
    assert first["requestId"] == ok.headers["x-amzn-requestid"]
    assert first["operation"] == "InvokeModel"
    assert first["modelId"] == HAIKU
    # Open mode: the authenticator names the caller after its access key.
    assert first["identity"]["arn"].startswith("arn:aws:iam::")
    assert first["identity"]["arn"].endswith("AKIDEXAMPLE")
    assert first["region"] == "eu-west-3"
    assert first["input"] == {
        "inputContentType": "application/json",
        "inputTokenCount": int(ok.headers["x-amzn-bedrock-input-token-count"]),
    }
    assert first["output"] == {
        "outputContentType": "application/json",
        "outputTokenCount": int(ok.headers["x-amzn-bedrock-output-token-count"]),
    }
    assert "errorCode" not in first
    stamp = datetime.strptime(first["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert isinstance(first["latencyMs"], int)

    assert second["operation"] == "InvokeModelWithResponseStream"
    assert second["modelId"] == f"us.{HAIKU}"  # as the caller named it
    assert second["output"]["outputTokenCount"] == 2
    assert "outputBodyJson" not in second["output"]
    assert "timeToFirstTokenMs" in second

    assert third["errorCode"] == "ValidationException"
    assert third["errorMessage"] == "The provided model identifier is invalid."
    assert "output" not in third


async def test_bodies_when_configured(tmp_path: Path) -> None:
    log = tmp_path / "with-bodies.jsonl"
    app = _app(log, include_bodies=True)
    ok = await call(app, "POST", f"/model/{HAIKU}/invoke", BODY)
    stream = await call(app, "POST", f"/model/{HAIKU}/invoke-with-response-stream", BODY)
    await app.close()
    invoke, streamed = _lines(log)
    assert invoke["input"]["inputBodyJson"] == REQUEST
    assert invoke["output"]["outputBodyJson"] == json.loads(ok.body)
    assert streamed["input"]["inputBodyJson"] == REQUEST
    chunks = streamed["output"]["outputBodyJson"]
    assert stream.status == 200
    assert [c["type"] for c in chunks] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta") == (
        "Hello there"
    )


def test_principal_from_the_authentication_interceptor() -> None:
    ctx = RequestContext("r-1", "InvokeModel", {"modelId": HAIKU}, BODY)
    ctx.call.identity = Identity(
        "arn:aws:iam::123456789012:user/alice", "sigv4", "eu-west-1", "AKIDALICE"
    )
    ctx.record.error_code = "AccessDeniedException"
    entry = invocation_entry(ctx, now=1_700_000_000.0, include_bodies=False)
    assert entry["identity"] == {"arn": "arn:aws:iam::123456789012:user/alice"}
    assert entry["accountId"] == "123456789012"
    assert entry["region"] == "eu-west-1"
    assert entry["errorCode"] == "AccessDeniedException"


def test_refused_before_authentication_names_the_access_key() -> None:
    ctx = RequestContext(
        "r-2", "InvokeModel", {"modelId": HAIKU}, BODY, headers=(("Authorization", AUTH),)
    )
    ctx.record.error_code = "UnrecognizedClientException"
    entry = invocation_entry(ctx, now=1_700_000_000.0, include_bodies=False)
    assert entry["identity"] == {"accessKeyId": "AKIDEXAMPLE"}
    assert entry["region"] == "eu-west-3"
    assert "accountId" not in entry
