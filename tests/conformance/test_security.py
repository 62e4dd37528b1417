"""Security, quotas, modelled errors and fault injection, seen by boto3 and the JS v3 SDK.

Servers run as processes (`outcrop serve --config FILE`) and the official SDKs call them over
loopback: boto3 over HTTP/1.1 (and HTTPS for bearer tokens), the JS SDK over h2c.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import pytest
import urllib3
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import (
    ClientError,
    EventStreamError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from outcrop.testing import Faults, faults
from tests.conformance.jsclient import JS_DIR, node_or_skip, run_js
from tests.support.server import ServerProcess, running_server

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TEMP_KEY, TEMP_SECRET, TEMP_TOKEN = "AKIDEXAMPLETEMP", "temporary-secret", "session-token-1"
API_KEY = "outcrop-test-api-key-0123456789"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
TITAN = "amazon.titan-text-express-v1"
GUARDRAIL_ARN = "arn:aws:bedrock:us-east-1:123456789012:guardrail/support01"


def claude_body(text: str = "hello there", max_tokens: int = 20) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


VERIFY_CONFIG = f"""
[engines.default]
type = "scripted"
delay_ms = 1

[auth]
mode = "verify"
regions = ["us-east-1"]

[[auth.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "{SECRET}"
principal = "alice"

[[auth.credentials]]
access_key_id = "{TEMP_KEY}"
secret_access_key = "{TEMP_SECRET}"
session_token = "{TEMP_TOKEN}"
principal = "arn:aws:sts::123456789012:assumed-role/tester/session"

[[auth.credentials]]
access_key_id = "AKIDNOPOLICY"
secret_access_key = "{SECRET}"
principal = "carol"

[[auth.api_keys]]
key = "{API_KEY}"
principal = "ci-bot"

[principals.alice]
policies = ["invoke-anthropic"]

[principals."arn:aws:sts::123456789012:assumed-role/tester/session"]
policies = ["invoke-anthropic"]

[principals.ci-bot]
policies = ["invoke-anthropic"]

[policies.invoke-anthropic]
Version = "2012-10-17"

[[policies.invoke-anthropic.Statement]]
Effect = "Allow"
Action = "bedrock:InvokeModel*"
Resource = "arn:aws:bedrock:*::foundation-model/anthropic.*"

[[policies.invoke-anthropic.Statement]]
Effect = "Allow"
Action = "sagemaker:InvokeEndpoint"
Resource = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/allowed-*"

[[policies.invoke-anthropic.Statement]]
Sid = "NoSonnetStreams"
Effect = "Deny"
Action = "bedrock:InvokeModelWithResponseStream"
Resource = "arn:aws:bedrock:*::foundation-model/{SONNET}"
"""

OPEN_CONFIG = """
[engines.default]
type = "scripted"
delay_ms = 1

[engines.loading]
type = "scripted"
load_ms = 3600000

[engines.down]
type = "scripted"
load_error = "upstream refused the connection"

[engines.broken]
type = "scripted"
fail_after_tokens = 0

[engines.flaky]
type = "scripted"
fail_after_tokens = 2

[engines.slow]
type = "scripted"
delay_ms = 400
token_count = 20

[engines.steady]
type = "scripted"
delay_ms = 150
token_count = 6

[[models]]
match = "anthropic.claude-3-sonnet-20240229-v1:0"
engine = "loading"

[[models]]
match = "anthropic.claude-3-opus-20240229-v1:0"
engine = "down"

[[models]]
match = "anthropic.claude-instant-v1"
engine = "broken"

[[models]]
match = "anthropic.claude-v2"
engine = "flaky"

[[models]]
match = "anthropic.claude-3-5-haiku-20241022-v1:0"
engine = "slow"

[[models]]
match = "anthropic.claude-3-5-sonnet-20241022-v2:0"
engine = "steady"

[[models]]
match = "*"
engine = "default"

[limits]
model_timeout_s = 1.5

[[quotas]]
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
requests_per_minute = 2

[[quotas]]
model = "anthropic.claude-v2:1"
tokens_per_minute = 100

[[quotas]]
model = "anthropic.claude-3-5-sonnet-20241022-v2:0"
concurrent_streams = 1
"""

LOADING, DOWN, BROKEN, FLAKY, SLOW = (
    SONNET,
    "anthropic.claude-3-opus-20240229-v1:0",
    "anthropic.claude-instant-v1",
    "anthropic.claude-v2",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
)
RPM_LIMITED = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TPM_LIMITED = "anthropic.claude-v2:1"
ONE_STREAM = "anthropic.claude-3-5-sonnet-20241022-v2:0"


# -- servers -------------------------------------------------------------------------------------


def _config(tmp_path_factory: pytest.TempPathFactory, text: str) -> Path:
    path = tmp_path_factory.mktemp("config") / "outcrop.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def verify_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    config = _config(tmp_path_factory, VERIFY_CONFIG)
    with running_server(["--config", str(config)], tls=tls_files) as server:
        yield server


@pytest.fixture(scope="module")
def replay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    text = VERIFY_CONFIG.replace('regions = ["us-east-1"]', "clock_skew_seconds = 2")
    with running_server(["--config", str(_config(tmp_path_factory, text))]) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = _config(tmp_path_factory, OPEN_CONFIG)
    # One engine never finishes loading, so /_outcrop/health stays 503 on purpose.
    with running_server(["--config", str(config)], wait_healthy=False) as server:
        yield server


@pytest.fixture
def fault_rules(open_server: ServerProcess) -> Iterator[Faults]:
    with faults(open_server.url) as rules:
        yield rules


def client(
    endpoint: str,
    *,
    key: str = "AKIDEXAMPLE",
    secret: str = SECRET,
    token: str | None = None,
    attempts: int = 1,
    read_timeout: float = 30,
    verify: str | bool | None = None,
) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        verify=verify,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": attempts},
            read_timeout=read_timeout,
            proxies={},
        ),
    )


def error_of(exc: ClientError) -> tuple[str, str, int]:
    return (
        exc.response["Error"]["Code"],
        exc.response["Error"]["Message"],
        exc.response["ResponseMetadata"]["HTTPStatusCode"],
    )


def stream_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


# ================================================================================================
# Authentication (verify mode)
# ================================================================================================


def test_boto3_correct_signatures_pass(verify_server: ServerProcess) -> None:
    bedrock = client(verify_server.url)
    reply = json.loads(bedrock.invoke_model(modelId=HAIKU, body=claude_body())["body"].read())
    assert reply["content"][0]["text"] == "Echo: hello there"
    streamed = stream_events(
        bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body())
    )
    assert streamed[-1]["type"] == "message_stop"


def test_boto3_session_credentials(verify_server: ServerProcess) -> None:
    good = client(verify_server.url, key=TEMP_KEY, secret=TEMP_SECRET, token=TEMP_TOKEN)
    good.invoke_model(modelId=HAIKU, body=claude_body())
    wrong = client(verify_server.url, key=TEMP_KEY, secret=TEMP_SECRET, token="other-token")
    with pytest.raises(ClientError) as info:
        wrong.invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
        403,
    )


def test_boto3_wrong_secret_and_unknown_key(verify_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as info:
        client(verify_server.url, secret="not-the-secret").invoke_model(
            modelId=HAIKU, body=claude_body()
        )
    code, message, status = error_of(info.value)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match")
    with pytest.raises(ClientError) as info:
        client(verify_server.url, key="AKIDUNKNOWN").invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value)[0] == "UnrecognizedClientException"


def _tamper(replace: dict[str, bytes] | None = None, header: tuple[str, str] | None = None) -> Any:
    """A before-send hook that changes the signed request on its way out."""

    def hook(request: Any, **_: Any) -> None:
        if replace is not None:
            for old, new in replace.items():
                request.body = request.body.replace(old.encode(), new)
            request.headers["Content-Length"] = str(len(request.body))
        if header is not None:
            request.headers[header[0]] = header[1]

    return hook


@pytest.mark.parametrize(
    "tampering",
    [
        _tamper(replace={"hello": b"HELLO"}),
        _tamper(header=("X-Amzn-Bedrock-Trace", "DISABLED")),
        _tamper(header=("X-Amz-Date", "20300101T000000Z")),
    ],
    ids=["body", "signed-header", "date"],
)
def test_boto3_tampered_requests_are_rejected(verify_server: ServerProcess, tampering: Any) -> None:
    bedrock = client(verify_server.url)
    bedrock.meta.events.register("before-send.bedrock-runtime.InvokeModel", tampering)
    with pytest.raises(ClientError) as info:
        bedrock.invoke_model(modelId=HAIKU, body=claude_body(), trace="ENABLED")
    code, message, status = error_of(info.value)
    assert status == 403 and code == "InvalidSignatureException"
    assert message.startswith(("The request signature we calculated", "Date in Credential scope"))


def _shift_boto3_clock(monkeypatch: pytest.MonkeyPatch, delta: dt.timedelta) -> None:
    """Make botocore sign as if its clock were off by `delta` (both of its SigV4 signers:
    the pure-Python one and the CRT one it prefers when awscrt is installed)."""
    import botocore.utils

    real: Callable[..., dt.datetime] = botocore.utils.get_current_datetime

    def shifted(*args: Any, **kwargs: Any) -> dt.datetime:
        return real(*args, **kwargs) + delta

    monkeypatch.setattr(botocore.auth, "get_current_datetime", shifted)
    try:
        import botocore.crt.auth
    except ImportError:
        return
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", shifted)


def test_boto3_expired_signature(
    verify_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shift_boto3_clock(monkeypatch, -dt.timedelta(minutes=20))
    with pytest.raises(ClientError) as info:
        client(verify_server.url).invoke_model(modelId=HAIKU, body=claude_body())
    code, message, status = error_of(info.value)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("Signature expired: ") and message.endswith(" - 15 min.)")
    _shift_boto3_clock(monkeypatch, dt.timedelta(minutes=20))
    with pytest.raises(ClientError) as info:
        client(verify_server.url).invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value)[1].startswith("Signature not yet current: ")


def test_boto3_replay_inside_and_outside_the_skew_window(replay_server: ServerProcess) -> None:
    captured: list[Any] = []
    bedrock = client(replay_server.url)
    bedrock.meta.events.register(
        "before-send.bedrock-runtime.InvokeModel", lambda request, **_: captured.append(request)
    )
    bedrock.invoke_model(modelId=HAIKU, body=claude_body())
    (sent,) = captured

    def replay() -> tuple[int, dict[str, Any], str]:
        parts = urlsplit(sent.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request(sent.method, parts.path, body=sent.body, headers=dict(sent.headers))
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        return response.status, body, response.getheader("X-Amzn-ErrorType") or ""

    assert replay()[0] == 200  # SigV4 has no nonce: inside the window a replay is accepted
    time.sleep(3.2)  # the server allows 2 s of skew
    status, body, error_type = replay()
    assert status == 403 and error_type.startswith("InvalidSignatureException")
    assert body["message"].startswith("Signature expired: ")
    assert body["message"].endswith(" - 2 sec.)")


def test_bad_authorization_headers_get_clear_errors(verify_server: ServerProcess) -> None:
    url = f"{verify_server.url}/model/{HAIKU}/invoke"
    cases = [
        ({}, "MissingAuthenticationTokenException", "Missing Authentication Token"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "IncompleteSignatureException", "Unsupported"),
        (
            {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE", "X-Amz-Date": "x"},
            "IncompleteSignatureException",
            "requires 'Signature' parameter",
        ),
        (
            {
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                f"bedrock/aws4_request, SignedHeaders=host, Signature={'0' * 64}",
                "X-Amz-Date": "99999999T999999Z",
            },
            "IncompleteSignatureException",
            "ISO-8601",
        ),
        ({"Authorization": "Bearer " + API_KEY}, "UnrecognizedClientException", "only over HTTPS"),
        ({"X-Big": "x" * 60_000}, "RequestHeaderFieldsTooLargeException", "more than the 16384"),
    ]
    cases.append(
        ({"X-Big": "x" * 60_000, "Authorization": "Bearer " + API_KEY}, cases[-1][1], cases[-1][2])
    )
    for headers, code, fragment in cases:
        request = urllib.request.Request(url, data=claude_body(), method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == (431 if code.startswith("RequestHeader") else 403)
        assert info.value.headers["X-Amzn-ErrorType"].split(":")[0] == code
        assert fragment in json.loads(info.value.read())["message"]
    client(verify_server.url).invoke_model(modelId=HAIKU, body=claude_body())  # still serving


def test_boto3_bearer_token_over_https(
    verify_server: ServerProcess, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert = str(tls_files[0])
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    bedrock = client(verify_server.tls_url, verify=cert)
    captured: list[Any] = []
    bedrock.meta.events.register(
        "before-send.bedrock-runtime.InvokeModel", lambda request, **_: captured.append(request)
    )
    bedrock.invoke_model(modelId=HAIKU, body=claude_body())
    authorization = captured[-1].headers["Authorization"]
    if isinstance(authorization, bytes):
        authorization = authorization.decode()
    assert authorization == f"Bearer {API_KEY}"  # boto3 sent the API key, not a signature
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "not-a-configured-key-123")
    with pytest.raises(ClientError) as info:
        client(verify_server.tls_url, verify=cert).invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value) == (
        "UnrecognizedClientException",
        "Authentication failed: Please make sure your API Key is valid.",
        403,
    )


def test_boto3_short_term_api_key_over_https(
    verify_server: ServerProcess, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short-term key made by AWS's own generator from alice's credentials is alice."""
    from aws_bedrock_token_generator import BedrockTokenGenerator
    from botocore.credentials import Credentials

    cert = str(tls_files[0])
    token = BedrockTokenGenerator().get_token(Credentials("AKIDEXAMPLE", SECRET), "us-east-1")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    bedrock = client(verify_server.tls_url, verify=cert)
    reply = json.loads(bedrock.invoke_model(modelId=HAIKU, body=claude_body())["body"].read())
    assert reply["content"][0]["text"] == "Echo: hello there"
    with pytest.raises(bedrock.exceptions.AccessDeniedException) as denied:
        bedrock.invoke_model(modelId=TITAN, body=b"{}")  # alice's policies apply
    assert "user/alice" in denied.value.response["Error"]["Message"]
    forged = BedrockTokenGenerator().get_token(Credentials("AKIDEXAMPLE", "wrong"), "us-east-1")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", forged)
    with pytest.raises(ClientError) as info:
        client(verify_server.tls_url, verify=cert).invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value)[::2] == ("UnrecognizedClientException", 403)


# ================================================================================================
# Authorization
# ================================================================================================


def test_boto3_policies_allow_and_deny(verify_server: ServerProcess) -> None:
    alice = client(verify_server.url)
    with pytest.raises(ClientError) as info:
        alice.invoke_model_with_response_stream(modelId=SONNET, body=claude_body())
    code, message, status = error_of(info.value)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
        "bedrock:InvokeModelWithResponseStream on resource: "
        f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET} "
        "with an explicit deny in an identity-based policy"
    )
    alice.invoke_model(modelId=SONNET, body=claude_body())  # the deny names streams only
    with pytest.raises(alice.exceptions.AccessDeniedException) as denied:
        alice.invoke_model(modelId=TITAN, body=b"{}")
    assert denied.value.response["Error"]["Message"].endswith(
        "because no identity-based policy allows the bedrock:InvokeModel action"
    )
    # A profile needs its own permission as well as the model's.
    with pytest.raises(alice.exceptions.AccessDeniedException) as profile:
        alice.invoke_model(modelId="us." + HAIKU, body=claude_body())
    assert "inference-profile/us." + HAIKU in profile.value.response["Error"]["Message"]
    carol = client(verify_server.url, key="AKIDNOPOLICY")
    with pytest.raises(carol.exceptions.AccessDeniedException):
        carol.invoke_model(modelId=HAIKU, body=claude_body())  # verify mode: default deny


GUARDED_CONFIG = f"""
[engines.default]
type = "scripted"
delay_ms = 1

[auth]
mode = "verify"

[[auth.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "{SECRET}"
principal = "alice"

[principals.alice]
policies = ["guarded-only"]

[guardrails]
state_dir = "{{state}}"

[[guardrails.define]]
id = "support01"
name = "support"
blockedInputMessaging = "Blocked."
blockedOutputsMessaging = "Blocked."
[guardrails.define.wordPolicyConfig]
wordsConfig = [{{ text = "forbidden" }}]

# AWS's example "enforce a specific guardrail and its numeric version".
[policies.guarded-only]
Version = "2012-10-17"

[[policies.guarded-only.Statement]]
Effect = "Allow"
Action = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
Resource = "arn:aws:bedrock:us-east-1::foundation-model/*"
Condition = {{ StringEquals = {{ "bedrock:GuardrailIdentifier" = "{GUARDRAIL_ARN}:1" }} }}

[[policies.guarded-only.Statement]]
Effect = "Deny"
Action = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
Resource = "arn:aws:bedrock:us-east-1::foundation-model/*"
Condition = {{ StringNotEquals = {{ "bedrock:GuardrailIdentifier" = "{GUARDRAIL_ARN}:1" }} }}

[[policies.guarded-only.Statement]]
Effect = "Allow"
Action = "bedrock:ApplyGuardrail"
Resource = "{GUARDRAIL_ARN}"
"""


def test_boto3_a_policy_can_require_a_guardrail(tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("guardrail-state")
    config = _config(tmp_path_factory, GUARDED_CONFIG.replace("{state}", str(state)))
    with running_server(["--config", str(config)]) as server:
        alice = client(server.url)
        messages = [{"role": "user", "content": [{"text": "hello"}]}]
        with pytest.raises(alice.exceptions.AccessDeniedException) as denied:
            alice.converse(modelId=HAIKU, messages=messages)
        assert denied.value.response["Error"]["Message"].endswith(
            "with an explicit deny in an identity-based policy"
        )
        guarded = {"guardrailIdentifier": "support01", "guardrailVersion": "1"}
        reply = alice.converse(modelId=HAIKU, messages=messages, guardrailConfig=guarded)
        assert reply["output"]["message"]["content"][0]["text"] == "Echo: hello"
        stream = alice.converse_stream(
            modelId=HAIKU, messages=messages, guardrailConfig={**guarded, "trace": "enabled"}
        )
        assert [e for e in stream["stream"] if "messageStop" in e]
        with pytest.raises(alice.exceptions.AccessDeniedException):
            alice.converse(
                modelId=HAIKU,
                messages=messages,
                guardrailConfig={**guarded, "guardrailVersion": "DRAFT"},
            )
        reply = json.loads(
            alice.invoke_model(
                modelId=HAIKU,
                body=claude_body(),
                guardrailIdentifier=GUARDRAIL_ARN,
                guardrailVersion="1",
            )["body"].read()
        )
        assert reply["content"][0]["text"] == "Echo: hello there"


def sagemaker(endpoint: str, **kwargs: Any) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=kwargs.get("key", "AKIDEXAMPLE"),
        aws_secret_access_key=kwargs.get("secret", SECRET),
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={}),
    )


def test_boto3_sagemaker_signatures_and_policies(verify_server: ServerProcess) -> None:
    runtime = sagemaker(verify_server.url)
    body = json.dumps({"inputs": "hello endpoint"})
    answer = runtime.invoke_endpoint(EndpointName="allowed-tgi", Body=body)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as denied:
        runtime.invoke_endpoint(EndpointName="private-tgi", Body=body)
    code, message, status = error_of(denied.value)
    assert (code, status) == ("AccessDeniedException", 403)
    assert message == (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
        "sagemaker:InvokeEndpoint on resource: "
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/private-tgi "
        "because no identity-based policy allows the sagemaker:InvokeEndpoint action"
    )
    with pytest.raises(ClientError) as forged:
        sagemaker(verify_server.url, secret="wrong").invoke_endpoint(
            EndpointName="allowed-tgi", Body=body
        )
    assert error_of(forged.value)[0] == "InvalidSignatureException"


# ================================================================================================
# Quotas (open mode)
# ================================================================================================


def test_boto3_requests_per_minute(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url)
    bedrock.invoke_model(modelId=RPM_LIMITED, body=claude_body())
    bedrock.invoke_model(modelId=RPM_LIMITED, body=claude_body())
    with pytest.raises(bedrock.exceptions.ThrottlingException) as info:
        bedrock.invoke_model(modelId=RPM_LIMITED, body=claude_body())
    assert error_of(info.value) == (
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
        429,
    )
    bedrock.invoke_model(modelId=HAIKU, body=claude_body())  # other models are not limited


def test_boto3_tokens_per_minute(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url)
    with pytest.raises(bedrock.exceptions.ServiceQuotaExceededException):
        bedrock.invoke_model(modelId=TPM_LIMITED, body=claude_body(max_tokens=500))
    # 100 tokens a minute. A 30-word prompt echoed back uses ~65; the next call reserves its
    # input plus max_tokens (~72), more than what is left.
    words = " ".join(f"w{i}" for i in range(30))
    bedrock.invoke_model(modelId=TPM_LIMITED, body=claude_body(words, max_tokens=40))
    with pytest.raises(bedrock.exceptions.ThrottlingException) as info:
        bedrock.invoke_model(modelId=TPM_LIMITED, body=claude_body(words, max_tokens=40))
    assert error_of(info.value)[1] == "Too many tokens, please wait before trying again."


def test_boto3_concurrent_streams(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url)
    first = bedrock.invoke_model_with_response_stream(modelId=ONE_STREAM, body=claude_body())
    with pytest.raises(bedrock.exceptions.ServiceQuotaExceededException):
        bedrock.invoke_model_with_response_stream(modelId=ONE_STREAM, body=claude_body())
    assert stream_events(first)[-1]["type"] == "message_stop"
    time.sleep(0.2)
    stream_events(bedrock.invoke_model_with_response_stream(modelId=ONE_STREAM, body=claude_body()))


# ================================================================================================
# Modelled errors from their real causes (open mode)
# ================================================================================================


def test_boto3_errors_from_real_causes(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url)
    cases = [
        (LOADING, "ModelNotReadyException", 429),
        (DOWN, "ServiceUnavailableException", 503),
        (BROKEN, "ModelErrorException", 424),
        (SLOW, "ModelTimeoutException", 408),
    ]
    for model, code, status in cases:
        with pytest.raises(ClientError) as info:
            bedrock.invoke_model(modelId=model, body=claude_body())
        assert isinstance(info.value, getattr(bedrock.exceptions, code))
        assert error_of(info.value)[::2] == (code, status)
    error = info.value.response
    assert error["Error"]["Message"].startswith("The request took too long to process")


def test_boto3_stream_errors_from_real_causes(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url)
    for model, code in [(FLAKY, "modelStreamErrorException"), (SLOW, "modelTimeoutException")]:
        response = bedrock.invoke_model_with_response_stream(modelId=model, body=claude_body())
        seen = 0
        with pytest.raises(EventStreamError) as info:
            for _ in response["body"]:
                seen += 1
        assert info.value.response["Error"]["Code"] == code
        assert seen >= 1


def test_boto3_retries_model_not_ready(open_server: ServerProcess) -> None:
    bedrock = client(open_server.url, attempts=3)
    with pytest.raises(bedrock.exceptions.ModelNotReadyException) as info:
        bedrock.invoke_model(modelId=LOADING, body=claude_body())
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] >= 1


# ================================================================================================
# Fault injection (open mode)
# ================================================================================================

INVOKE_ERRORS = [
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
    ("ThrottlingException", 429),
    ("ModelTimeoutException", 408),
    ("InternalServerException", 500),
    ("ServiceUnavailableException", 503),
    ("ValidationException", 400),
    ("ModelNotReadyException", 429),
    ("ServiceQuotaExceededException", 400),
    ("ModelErrorException", 424),
]
STREAM_ERRORS = [
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "modelTimeoutException",
    "serviceUnavailableException",
]


def test_invoke_errors_match_the_service_model() -> None:
    operation = (
        botocore.session.get_session()
        .get_service_model("bedrock-runtime")
        .operation_model("InvokeModel")
    )
    assert {shape.name for shape in operation.error_shapes} == {c for c, _ in INVOKE_ERRORS}


@pytest.mark.parametrize(("code", "status"), INVOKE_ERRORS)
def test_boto3_every_modelled_error(
    fault_rules: Faults, open_server: ServerProcess, code: str, status: int
) -> None:
    rule = fault_rules.inject("error", error=code, model=HAIKU, message=f"injected {code}", times=1)
    bedrock = client(open_server.url)
    with pytest.raises(getattr(bedrock.exceptions, code)) as info:
        bedrock.invoke_model(modelId=HAIKU, body=claude_body())
    assert error_of(info.value) == (code, f"injected {code}", status)
    assert fault_rules.get(rule).fired == 1
    bedrock.invoke_model(modelId=HAIKU, body=claude_body())  # times=1: the next call is clean


@pytest.mark.parametrize("member", STREAM_ERRORS)
def test_boto3_mid_stream_exception_frames(
    fault_rules: Faults, open_server: ServerProcess, member: str
) -> None:
    fault_rules.inject("stream_error", error=member, after_events=2, model=HAIKU, message="boom")
    response = client(open_server.url).invoke_model_with_response_stream(
        modelId=HAIKU, body=claude_body()
    )
    seen = []
    with pytest.raises(EventStreamError) as info:
        for event in response["body"]:
            seen.append(event)
    assert len(seen) == 2
    assert info.value.response["Error"] == {"Code": member, "Message": "boom"}


def test_boto3_retries_recover_from_injected_throttling(
    fault_rules: Faults, open_server: ServerProcess
) -> None:
    rule = fault_rules.inject("error", error="ThrottlingException", model=HAIKU, times=2)
    response = client(open_server.url, attempts=3).invoke_model(modelId=HAIKU, body=claude_body())
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert fault_rules.get(rule).fired == 2
    rule = fault_rules.inject("error", error="ThrottlingException", model=HAIKU, times=5)
    with pytest.raises(ClientError) as info:
        client(open_server.url, attempts=3).invoke_model(modelId=HAIKU, body=claude_body())
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert fault_rules.get(rule).fired == 3  # boto3 gave up after its 3 attempts


def test_boto3_sagemaker_faults(fault_rules: Faults, open_server: ServerProcess) -> None:
    fault_rules.inject("error", error="ModelError", model="flaky-endpoint", times=1)
    runtime = sagemaker(open_server.url)
    with pytest.raises(runtime.exceptions.ModelError) as info:
        runtime.invoke_endpoint(EndpointName="flaky-endpoint", Body=json.dumps({"inputs": "x"}))
    assert info.value.response["Error"]["Message"] == "Outcrop fault injection: ModelError."
    fault_rules.inject(
        "stream_error", error="ModelStreamError", model="flaky-endpoint", after_events=1, times=1
    )
    stream = runtime.invoke_endpoint_with_response_stream(
        EndpointName="flaky-endpoint", Body=json.dumps({"inputs": "one two three", "stream": True})
    )
    with pytest.raises(EventStreamError) as midway:
        list(stream["Body"])
    assert midway.value.response["Error"]["Code"] == "ModelStreamError"


def test_boto3_stream_cut_stall_crc_and_drop(
    fault_rules: Faults, open_server: ServerProcess
) -> None:
    body = claude_body("one two three four five six")
    bedrock = client(open_server.url)
    full = stream_events(bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=body))
    assert full[-1]["type"] == "message_stop"

    fault_rules.inject("cut", after_events=3, model=HAIKU, times=1)
    cut = stream_events(bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=body))
    assert len(cut) == 3 and cut[-1]["type"] != "message_stop"

    fault_rules.inject("corrupt_crc", after_events=1, model=HAIKU, times=1)
    response = bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=body)
    with pytest.raises(ChecksumMismatch):
        list(response["body"])

    fault_rules.inject("stall", after_events=1, model=HAIKU, times=1)
    response = client(open_server.url, read_timeout=1).invoke_model_with_response_stream(
        modelId=HAIKU, body=body
    )
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, ReadTimeoutError)):
        list(response["body"])

    fault_rules.inject("drop", after_events=2, model=HAIKU, times=1)
    response = bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=body)
    received = []
    # The connection broke mid-body; botocore's event stream lets urllib3's error through.
    with pytest.raises(urllib3.exceptions.ProtocolError, match="ended prematurely"):
        for event in response["body"]:
            received.append(event)
    assert len(received) == 2

    fault_rules.inject("drop", model=HAIKU, operation="InvokeModel", times=1)
    response = bedrock.invoke_model(modelId=HAIKU, body=body)  # headers arrive, then nothing
    with pytest.raises(ResponseStreamingError, match="IncompleteRead"):
        response["body"].read()

    # Only where a rule says so: the same calls are clean again.
    assert (
        stream_events(bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=body))[-1][
            "type"
        ]
        == "message_stop"
    )


def test_fault_rules_by_prompt_probability_and_latency(
    fault_rules: Faults, open_server: ServerProcess
) -> None:
    bedrock = client(open_server.url)
    rule = fault_rules.inject("error", error="ValidationException", prompt=r"forbidden\s+word")
    bedrock.invoke_model(modelId=HAIKU, body=claude_body("a harmless prompt"))
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.invoke_model(modelId=HAIKU, body=claude_body("this has a forbidden  word"))
    state = fault_rules.get(rule)
    assert (state.matched, state.fired, state.remaining) == (1, 1, None)
    fault_rules.remove(rule)

    fault_rules.inject("latency", latency_ms=150, model=HAIKU, times=1)
    started = time.monotonic()
    events = stream_events(
        bedrock.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body("a b c"))
    )
    assert time.monotonic() - started >= 0.15 * len(events) * 0.9


def test_fault_admin_api_misuse(open_server: ServerProcess) -> None:
    api = Faults(open_server.url)
    from outcrop.testing import FaultApiError

    bad: list[dict[str, Any]] = [
        {"action": "explode"},
        {"action": "error"},
        {"action": "error", "error": "NoSuchError"},
        {"action": "stall", "unknown": 1},
        {"action": "error", "error": "ThrottlingException", "prompt": "("},
        {"action": "error", "error": "ThrottlingException", "probability": 2},
    ]
    for rule in bad:
        with pytest.raises(FaultApiError) as info:
            api.inject(**rule)
        assert info.value.status == 400 and info.value.message.startswith("Invalid fault rule")
    for method, path in [("GET", "/rule"), ("GET", "/rule?id=nope"), ("DELETE", "/rule?id=x")]:
        request = urllib.request.Request(f"{api.url}{path}", method=method)
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(request, timeout=5)
        assert http_error.value.code in (400, 404)
        assert "message" in json.loads(http_error.value.read())
    request = urllib.request.Request(
        api.url, data=b"not json", method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as not_json:
        urllib.request.urlopen(request, timeout=5)
    assert not_json.value.code == 400
    assert api.rules() == []  # nothing was added by any of it
    client(open_server.url).invoke_model(modelId=HAIKU, body=claude_body())


def test_fault_api_is_off_in_verify_mode(verify_server: ServerProcess) -> None:
    url = f"{verify_server.url}/_outcrop/faults"
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(url, timeout=5)
    assert unsigned.value.code == 403  # the admin API is authenticated in verify mode
    assert unsigned.value.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationToken")
    request = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("AKIDEXAMPLE", SECRET), "bedrock", "us-east-1"
    ).add_auth(request)
    prepared = request.prepare()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(prepared.headers.items())), timeout=5
        )
    assert info.value.code == 403 and "disabled" in json.loads(info.value.read())["message"]


# ================================================================================================
# The JS v3 SDK (h2c)
# ================================================================================================


def js(
    server: ServerProcess,
    operation: str,
    model: str,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    command = {
        "endpoint": server.url,
        "operation": operation,
        "modelId": model,
        "body": json.loads(claude_body()),
        "contentType": "application/json",
        **extra,
    }
    return run_js(command, env=env)


def test_js_verify_mode(verify_server: ServerProcess) -> None:
    ok = js(verify_server, "InvokeModel", HAIKU).ok()
    assert ok["output"]["body"]["content"][0]["text"] == "Echo: hello there"
    assert (
        ok["request"]["headers"]["authorization"]
        .split("SignedHeaders=")[1]
        .startswith(":authority;")
    )
    streamed = js(verify_server, "InvokeModelWithResponseStream", HAIKU)
    streamed.ok()
    assert streamed.events[-1]["data"]["type"] == "message_stop"
    cases = [
        ({"AWS_SECRET_ACCESS_KEY": "wrong"}, "InvalidSignatureException"),
        ({"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
    ]
    for env, name in cases:
        run = js(verify_server, "InvokeModel", HAIKU, maxAttempts=1, env=env)
        assert run.error is not None and run.error["name"] == name
        assert run.error["$metadata"]["httpStatusCode"] == 403
    denied = js(verify_server, "InvokeModelWithResponseStream", SONNET, maxAttempts=1)
    assert denied.error is not None and denied.error["name"] == "AccessDeniedException"
    assert "with an explicit deny" in denied.error["message"]


def test_js_clock_skew_is_refused_then_corrected_by_the_sdk(verify_server: ServerProcess) -> None:
    late = -20 * 60 * 1000
    refused = js(verify_server, "InvokeModel", HAIKU, maxAttempts=1, systemClockOffsetMs=late)
    assert refused.error is not None and refused.error["name"] == "InvalidSignatureException"
    assert refused.error["message"].startswith("Signature expired: ")
    # With retries the SDK resets its clock offset from our Date header and signs again.
    recovered = js(verify_server, "InvokeModel", HAIKU, systemClockOffsetMs=late).ok()
    assert recovered["$metadata"]["attempts"] == 2


def test_js_presigned_url(verify_server: ServerProcess) -> None:
    node = node_or_skip()
    body = claude_body("presigned").decode()
    path = f"/model/{HAIKU.replace(':', '%3A')}/invoke"
    command = {"endpoint": verify_server.url, "path": path, "body": body, "expiresIn": 60}
    env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, "PATH": "/usr/bin"}
    out = subprocess.run(
        [node, str(JS_DIR / "presign.mjs"), json.dumps(command)],
        capture_output=True, text=True, cwd=JS_DIR, env=env, check=True,
    )  # fmt: skip
    url = json.loads(out.stdout)["url"]
    assert "X-Amz-Signature=" in url and "Authorization" not in url
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["content"][0]["text"] == "Echo: presigned"
    tampered = urllib.request.Request(
        url, data=body.replace("presigned", "tampered").encode(), headers=headers, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(tampered, timeout=10)
    assert info.value.code == 403
    assert info.value.headers["X-Amzn-ErrorType"].startswith("InvalidSignatureException")


def test_js_retries_recover_from_injected_throttling_and_give_up(
    fault_rules: Faults, open_server: ServerProcess
) -> None:
    rule = fault_rules.inject("error", error="ThrottlingException", model=HAIKU, times=2)
    done = js(open_server, "InvokeModel", HAIKU).ok()
    assert done["$metadata"]["attempts"] == 3
    assert fault_rules.get(rule).fired == 2
    rule = fault_rules.inject("error", error="ThrottlingException", model=HAIKU, times=9)
    run = js(open_server, "InvokeModel", HAIKU)
    assert run.error is not None and run.error["name"] == "ThrottlingException"
    assert run.error["$metadata"]["attempts"] == 3
    assert fault_rules.get(rule).fired == 3


def test_js_every_modelled_error(fault_rules: Faults, open_server: ServerProcess) -> None:
    for code, status in INVOKE_ERRORS:
        fault_rules.inject("error", error=code, model=HAIKU, times=1, message=f"injected {code}")
        run = js(open_server, "InvokeModel", HAIKU, maxAttempts=1)
        assert run.error is not None, code
        assert (run.error["name"], run.error["message"]) == (code, f"injected {code}")
        assert run.error["$metadata"]["httpStatusCode"] == status


def test_js_mid_stream_faults_are_modelled_classes(
    fault_rules: Faults, open_server: ServerProcess
) -> None:
    for member in STREAM_ERRORS:
        fault_rules.inject(
            "stream_error", error=member, after_events=2, model=HAIKU, times=1, message="boom"
        )
        run = js(open_server, "InvokeModelWithResponseStream", HAIKU)
        assert run.error is not None, member
        assert run.error["name"] == member[0].upper() + member[1:]
        assert run.error["message"] == "boom"
        assert len(run.events) == 2


def test_js_errors_from_real_causes(open_server: ServerProcess) -> None:
    for model, name in [
        (LOADING, "ModelNotReadyException"),
        (DOWN, "ServiceUnavailableException"),
        (BROKEN, "ModelErrorException"),
        (SLOW, "ModelTimeoutException"),
    ]:
        run = js(open_server, "InvokeModel", model, maxAttempts=1)
        assert run.error is not None and run.error["name"] == name
    flaky = js(open_server, "InvokeModelWithResponseStream", FLAKY)
    assert flaky.error is not None and flaky.error["name"] == "ModelStreamErrorException"
    assert flaky.error.get("originalStatusCode") == 500
