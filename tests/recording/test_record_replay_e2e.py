"""End to end, without AWS: Outcrop B (the real default engine, auth mode `verify`) is the
upstream; Outcrop A records through it (`--record DIR --record-upstream B`), re-signing each call
with credentials only A's process knows (a shared-credentials profile in its environment);
boto3, the JS v3 SDK and the Python smithy SDK call A for every recorded operation, errors
included (a ValidationException from B, a mid-stream exception from a fault rule on B). B is
stopped; A replays the folder (`--replay DIR`) and every client gets the same bodies, the same
event payloads in the same order and the same errors. A replayed stream takes a fault rule at
event K; a call nothing recorded gets the nearest-match diff.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.conformance.jsclient import run_js
from tests.support.server import ServerProcess, running_server

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ENDPOINT = "recorded-endpoint"
GUARDRAIL = "rectest00001"
ACCESS_KEY = "AKIDRECORDERONLY1"
SECRET_KEY = "recorder-only-secret-do-not-store"


def b_config(state_dir: Path) -> str:
    return f"""
[auth]
mode = "verify"

[[auth.credentials]]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"
principal = "recorder"

[principals.recorder]
policies = ["all"]

[policies.all]
Version = "2012-10-17"
[[policies.all.Statement]]
Effect = "Allow"
Action = ["bedrock:*", "sagemaker:*"]
Resource = "*"

[[faults]]
operation = "ConverseStream"
prompt = "fail midway"
action = "stream_error"
error = "ModelStreamErrorException"
message = "recorded mid-stream failure"
after_events = 2

[[faults]]
operation = "ConverseStream"
prompt = "Stall here"
action = "stall"
after_events = 2
stall_seconds = 600

[guardrails]
state_dir = "{state_dir}"

[[guardrails.define]]
id = "{GUARDRAIL}"
name = "record-test"
blockedInputMessaging = "Blocked by the recording test."
blockedOutputsMessaging = "Blocked by the recording test."
[guardrails.define.wordPolicyConfig]
wordsConfig = [{{ text = "basalt" }}]
"""


def boto(service: str, url: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDCLIENTONLY",
        aws_secret_access_key="client-side-dummy-secret",
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ClientError):
        return {"code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"]}
    raise exc


def invoke_model(url: str) -> Any:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "Name a rock."}],
    }
    out = boto("bedrock-runtime", url).invoke_model(modelId=MODEL, body=json.dumps(body))
    return out["body"].read().decode()


def invoke_stream(url: str) -> Any:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "Name a mineral."}],
    }
    out = boto("bedrock-runtime", url).invoke_model_with_response_stream(
        modelId=MODEL, body=json.dumps(body)
    )
    return [event["chunk"]["bytes"].decode() for event in out["body"]]


def converse(url: str) -> Any:
    out = boto("bedrock-runtime", url).converse(
        modelId=MODEL, messages=user("Say hi."), inferenceConfig={"maxTokens": 8}
    )
    out.pop("ResponseMetadata")
    return out


def converse_stream(url: str) -> Any:
    out = boto("bedrock-runtime", url).converse_stream(
        modelId=MODEL, messages=user("Count to three."), inferenceConfig={"maxTokens": 8}
    )
    return list(out["stream"])


def count_tokens(url: str) -> Any:
    out = boto("bedrock-runtime", url).count_tokens(
        modelId=MODEL, input={"converse": {"messages": user("How many tokens is this?")}}
    )
    return out["inputTokens"]


def apply_guardrail(url: str) -> Any:
    out = boto("bedrock-runtime", url).apply_guardrail(
        guardrailIdentifier=GUARDRAIL,
        guardrailVersion="DRAFT",
        source="INPUT",
        content=[{"text": {"text": "Tell me about basalt."}}],
    )
    out.pop("ResponseMetadata")
    return out


def invoke_endpoint(url: str) -> Any:
    body = {"inputs": "Name a planet.", "parameters": {"max_new_tokens": 8}}
    out = boto("sagemaker-runtime", url).invoke_endpoint(
        EndpointName=ENDPOINT, Body=json.dumps(body), ContentType="application/json"
    )
    return out["Body"].read().decode()


def invoke_endpoint_stream(url: str) -> Any:
    body = {"inputs": "Name a moon.", "parameters": {"max_new_tokens": 8}, "stream": True}
    out = boto("sagemaker-runtime", url).invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, Body=json.dumps(body), ContentType="application/json"
    )
    return [base64.b64encode(event["PayloadPart"]["Bytes"]).decode() for event in out["Body"]]


PLANTED_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def converse_with_secret(url: str) -> Any:
    out = boto("bedrock-runtime", url).converse(
        modelId=MODEL,
        messages=user(f"My key is {PLANTED_SECRET}. Say ok."),
        inferenceConfig={"maxTokens": 8},
        requestMetadata={"patient": "Jane Q. Doe"},
    )
    out.pop("ResponseMetadata")
    return out


def validation_error(url: str) -> Any:
    try:
        boto("bedrock-runtime", url).converse(
            modelId=MODEL, messages=[{"role": "assistant", "content": [{"text": "x"}]}]
        )
    except ClientError as exc:
        return _error(exc)
    raise AssertionError("B accepted a conversation that starts with the assistant")


def mid_stream_error(url: str) -> Any:
    out = boto("bedrock-runtime", url).converse_stream(
        modelId=MODEL, messages=user("Please fail midway."), inferenceConfig={"maxTokens": 8}
    )
    events: list[Any] = []
    try:
        for event in out["stream"]:
            events.append(event)
    except EventStreamError as exc:
        return {"events": events, "error": _error(exc)}
    raise AssertionError("the stream did not fail")


def js(command: dict[str, Any]) -> Callable[[str], Any]:
    def call(url: str) -> Any:
        run = run_js({"endpoint": url, "maxAttempts": 1, **command})
        error = run.error
        if error is not None:
            return {"error": [error["name"], error["message"]], "events": len(run.events)}
        return {
            "events": [[e["event"], e["value"]] for e in run.events],
            "output": run.final.get("output"),
        }

    return call


def smithy_calls(url: str, ca_file: Path) -> dict[str, Any]:
    """ConverseStream, Converse and InvokeModelWithResponseStream with the Python smithy SDK
    (awscrt, TLS + h2), each answer as the SDK's objects print."""
    from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
    from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
    from aws_sdk_bedrock_runtime.models import (
        ContentBlockText,
        ConverseInput,
        ConverseStreamInput,
        InferenceConfiguration,
        InvokeModelWithResponseStreamInput,
        Message,
    )
    from smithy_aws_core.identity import AWSCredentialsIdentity
    from smithy_aws_core.identity.static import StaticCredentialsResolver

    from tests.conformance.smithy_bidi import crt_transport

    def ask(text: str) -> list[Message]:
        return [Message(role="user", content=[ContentBlockText(value=text)])]

    async def run() -> dict[str, Any]:
        identity = AWSCredentialsIdentity(
            access_key_id="AKIDCLIENTONLY", secret_access_key="client-side-dummy-secret"
        )
        config = await AsyncBedrockRuntimeConfig.resolve(
            endpoint_uri=url,
            region="us-east-1",
            aws_credentials_identity_resolver=StaticCredentialsResolver(identity),
            transport=crt_transport(ca_file),
        )
        client = AsyncBedrockRuntimeClient(config=config)
        limit = InferenceConfiguration(max_tokens=8)
        out: dict[str, Any] = {}
        async with asyncio.timeout(120):
            request = ConverseStreamInput(
                model_id=MODEL, messages=ask("Name a colour."), inference_config=limit
            )
            async with await client.converse_stream(request) as stream:
                out["smithy ConverseStream"] = [repr(e) async for e in stream.output_stream]
            answer = await client.converse(
                ConverseInput(model_id=MODEL, messages=ask("Name a fruit."), inference_config=limit)
            )
            out["smithy Converse"] = repr(answer)
            body = {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Name a metal."}],
            }
            invoke = InvokeModelWithResponseStreamInput(
                model_id=MODEL, body=json.dumps(body).encode(), content_type="application/json"
            )
            async with await client.invoke_model_with_response_stream(invoke) as chunks:
                # (the chunk's repr hides its bytes)
                out["smithy InvokeModelWithResponseStream"] = [
                    e.value.bytes_.decode() async for e in chunks.output_stream
                ]
        return out

    return asyncio.run(run())


SMITHY_CALLS = (
    "smithy ConverseStream",
    "smithy Converse",
    "smithy InvokeModelWithResponseStream",
)


BOTO_CALLS: dict[str, Callable[[str], Any]] = {
    "InvokeModel": invoke_model,
    "InvokeModelWithResponseStream": invoke_stream,
    "Converse": converse,
    "ConverseStream": converse_stream,
    "CountTokens": count_tokens,
    "ApplyGuardrail": apply_guardrail,
    "InvokeEndpoint": invoke_endpoint,
    "InvokeEndpointWithResponseStream": invoke_endpoint_stream,
    "Converse with a secret": converse_with_secret,
    "ValidationException": validation_error,
    "mid-stream exception": mid_stream_error,
}

JS_CALLS: dict[str, Callable[[str], Any]] = {
    "js ConverseStream": js(
        {
            "operation": "ConverseStream",
            "modelId": MODEL,
            "input": {"messages": user("Name a river."), "inferenceConfig": {"maxTokens": 8}},
        }
    ),
    "js InvokeModelWithResponseStream": js(
        {
            "operation": "InvokeModelWithResponseStream",
            "modelId": MODEL,
            "body": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Name a lake."}],
            },
        }
    ),
    "js InvokeEndpointWithResponseStream": js(
        {
            "operation": "InvokeEndpointWithResponseStream",
            "endpointName": ENDPOINT,
            "body": {"inputs": "Name a sea.", "parameters": {"max_new_tokens": 8}, "stream": True},
        }
    ),
    "js InvokeModel": js(
        {
            "operation": "InvokeModel",
            "modelId": MODEL,
            "body": {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Name a gem."}],
            },
        }
    ),
    "js Converse": js(
        {
            "operation": "Converse",
            "modelId": MODEL,
            "input": {"messages": user("Name a tree."), "inferenceConfig": {"maxTokens": 8}},
        }
    ),
    "js CountTokens": js(
        {
            "operation": "CountTokens",
            "modelId": MODEL,
            "input": {"input": {"converse": {"messages": user("Count these words.")}}},
        }
    ),
    "js ApplyGuardrail": js(
        {
            "operation": "ApplyGuardrail",
            "input": {
                "guardrailIdentifier": GUARDRAIL,
                "guardrailVersion": "DRAFT",
                "source": "OUTPUT",
                "content": [{"text": {"text": "Basalt again."}}],
            },
        }
    ),
    "js InvokeEndpoint": js(
        {
            "operation": "InvokeEndpoint",
            "endpointName": ENDPOINT,
            "body": {"inputs": "Name a star.", "parameters": {"max_new_tokens": 8}},
        }
    ),
    "js Converse error": js(
        {
            "operation": "Converse",
            "modelId": MODEL,
            "input": {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]},
        }
    ),
}


def first_events_of_a_stalled_stream(url: str) -> list[Any]:
    """The events a client gets while B holds the rest of the stream back (a stall rule on
    B): A forwards each event as it arrives. The client then leaves."""
    out = boto("bedrock-runtime", url).converse_stream(
        modelId=MODEL, messages=user("Stall here please."), inferenceConfig={"maxTokens": 8}
    )
    events = iter(out["stream"])
    first = [next(events), next(events)]
    out["stream"].close()
    return first


def volcano(url: str) -> Any:
    out = boto("bedrock-runtime", url).converse(
        modelId=MODEL, messages=user("Name a volcano."), inferenceConfig={"maxTokens": 8}
    )
    out.pop("ResponseMetadata")
    return out


def new_episodes(recorder: ServerProcess) -> dict[str, Any]:
    """A cassette selected over the admin API in mode new_episodes: the first call goes
    upstream and is appended, the same call again is replayed from it."""
    status, state = _admin(recorder, "PUT", {"cassette": "episodes", "mode": "new_episodes"})
    assert status == 200, state
    first, second = volcano(recorder.url), volcano(recorder.url)
    state = _admin(recorder, "GET")[1]
    _admin(recorder, "PUT", {"cassette": None, "mode": "once"})
    return {"first": first, "second": second, "state": state}


def run_all(server: ServerProcess, ca_file: Path) -> dict[str, Any]:
    results = {name: call(server.url) for name, call in {**BOTO_CALLS, **JS_CALLS}.items()}
    results.update(smithy_calls(server.tls_url, ca_file))
    return results


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[tuple[Path, dict[str, Any], str]]:
    """Record every call through A into a folder; B's log shows what it verified."""
    tmp = tmp_path_factory.mktemp("recording")
    cassettes = tmp / "cassettes"
    config = tmp / "b.toml"
    config.write_text(b_config(tmp / "state"))
    profile = tmp / "credentials"
    profile.write_text(
        f"[recorder]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    a_env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(profile),
        "AWS_CONFIG_FILE": str(tmp / "no-config"),
        "AWS_PROFILE": "recorder",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with running_server(["--config", str(config)], ready_timeout=300) as upstream:
        # B refuses what the clients sign: only A's credential chain knows B's key.
        with pytest.raises(ClientError) as refused:
            converse(upstream.url)
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        args = ["--engine", "scripted", "--record", str(cassettes)]
        args += ["--record-upstream", upstream.url]
        args += ["--config", str(tmp / "a.toml")]
        (tmp / "a.toml").write_text('[recording]\nredact_paths = ["requestMetadata.patient"]\n')
        with running_server(args, env=a_env, tls=tls_files) as recorder:
            results = run_all(recorder, tls_files[0])
            results["stalled"] = first_events_of_a_stalled_stream(recorder.url)
            results["episodes"] = new_episodes(recorder)
        b_log = upstream.log()
    yield cassettes, results, b_log


@pytest.fixture(scope="module")
def replayer(
    recorded: tuple[Path, dict[str, Any], str], tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    cassettes = recorded[0]
    args = ["--engine", "scripted", "--replay", str(cassettes), "--replay-speed", "0"]
    # The same [recording] redaction as when recording, so that matching sees the same.
    args += ["--config", str(cassettes.parent / "a.toml")]
    with running_server(args, tls=tls_files) as server:
        yield server


@pytest.fixture(scope="module")
def replayed(replayer: ServerProcess, tls_files: tuple[Path, Path]) -> dict[str, Any]:
    return run_all(replayer, tls_files[0])


def test_recording_went_through_b_signed_by_a(recorded: tuple[Path, dict[str, Any], str]) -> None:
    _, results, b_log = recorded
    assert "Echo" not in json.dumps(results["Converse"])  # B's real model, not A's scripted one
    for operation in ("ConverseStream", "CountTokens", "ApplyGuardrail", "InvokeEndpoint"):
        assert f" {operation} " in b_log
    assert results["ValidationException"]["code"] == "ValidationException"
    assert results["mid-stream exception"]["error"]["code"] == "modelStreamErrorException"
    assert len(results["mid-stream exception"]["events"]) == 2
    assert results["js Converse error"]["error"][0] == "ValidationException"
    for name in JS_CALLS:
        assert name == "js Converse error" or "error" not in results[name], results[name]
    assert "msg_bdrk_" in results["smithy InvokeModelWithResponseStream"][0]
    assert results["ApplyGuardrail"]["action"] == "GUARDRAIL_INTERVENED"
    assert list(results["stalled"][0]) == ["messageStart"]
    assert list(results["stalled"][1]) == ["contentBlockDelta"]
    # B's engine stream closed early by the stalled call left no unretrieved task behind.
    assert "Task exception was never retrieved" not in b_log


def test_new_episodes_records_a_miss_once_and_replays_it(
    recorded: tuple[Path, dict[str, Any], str],
) -> None:
    cassettes, results, _ = recorded
    episodes = results["episodes"]
    # One interaction recorded for two calls: the second was a replay of the first.
    assert episodes["state"]["mode"] == "new_episodes" and episodes["state"]["recorded"] == 1
    assert episodes["first"] == episodes["second"]
    data = json.loads((cassettes / "episodes.json").read_text())
    (interaction,) = data["interactions"]
    assert "Name a volcano." in json.dumps(interaction["request"]["body"])


def test_cassette_is_readable_and_holds_no_credentials(
    recorded: tuple[Path, dict[str, Any], str],
) -> None:
    cassettes = recorded[0]
    files = list(cassettes.glob("session-*.json"))
    assert len(files) == 1
    text = files[0].read_text()
    for secret in (ACCESS_KEY, SECRET_KEY, "AKIDCLIENTONLY", "client-side-dummy-secret"):
        assert secret not in text
    # The planted secret and the PII field are redacted; replay still matches (test below).
    assert PLANTED_SECRET not in text and "Jane Q. Doe" not in text
    assert "My key is [REDACTED]. Say ok." in text
    # A stream the client left is forwarded as it came but not recorded.
    assert "Stall here" not in text
    data = json.loads(text)
    operations = {i["operation"] for i in data["interactions"]}
    assert (
        set(BOTO_CALLS) - {"ValidationException", "mid-stream exception", "Converse with a secret"}
        <= operations
    )
    stream = next(i for i in data["interactions"] if i["operation"] == "ConverseStream")
    kinds = [e["headers"][":event-type"] for e in stream["response"]["events"]]
    assert kinds[0] == "messageStart" and kinds[-1] == "metadata"
    times = [e["t"] for e in stream["response"]["events"]]
    assert times == sorted(times) and times[0] >= 0
    chunked = next(
        i for i in data["interactions"] if i["operation"] == "InvokeModelWithResponseStream"
    )
    assert chunked["response"]["events"][0]["chunk"]["json"]["type"] == "message_start"


@pytest.mark.parametrize("name", [*BOTO_CALLS, *JS_CALLS, *SMITHY_CALLS])
def test_replay_gives_every_client_what_it_recorded(
    name: str, recorded: tuple[Path, dict[str, Any], str], replayed: dict[str, Any]
) -> None:
    assert replayed[name] == recorded[1][name]


def _add_fault(server: ServerProcess, rule: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{server.url}/_outcrop/faults",
        data=json.dumps(rule).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_fault_rule_fires_at_event_k_of_a_replayed_stream(
    replayer: ServerProcess, recorded: tuple[Path, dict[str, Any], str]
) -> None:
    _add_fault(
        replayer,
        {
            "operation": "ConverseStream",
            "prompt": "Count to three",
            "action": "stream_error",
            "error": "ThrottlingException",
            "after_events": 3,
            "times": 1,
        },
    )
    out = boto("bedrock-runtime", replayer.url).converse_stream(
        modelId=MODEL, messages=user("Count to three."), inferenceConfig={"maxTokens": 8}
    )
    events: list[Any] = []
    with pytest.raises(EventStreamError) as failed:
        for event in out["stream"]:
            events.append(event)
    assert failed.value.response["Error"]["Code"] == "throttlingException"
    assert events == recorded[1]["ConverseStream"][:3]


def test_a_miss_names_the_nearest_recorded_call(replayer: ServerProcess) -> None:
    with pytest.raises(ClientError) as missed:
        boto("bedrock-runtime", replayer.url).converse(
            modelId=MODEL, messages=user("Say hello."), inferenceConfig={"maxTokens": 8}
        )
    error = missed.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "no recorded call matches this Converse call" in error["Message"]
    assert '"recorded": "Say hi.", "request": "Say hello."' in error["Message"]
    assert "body.messages[0].content[0].text" in error["Message"]


def _admin(server: ServerProcess, method: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{server.url}/_outcrop/recording",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_admin_api_selects_the_cassette(
    recorded: tuple[Path, dict[str, Any], str], tls_files: tuple[Path, Path]
) -> None:
    cassettes = recorded[0]
    args = ["--engine", "scripted", "--replay", str(cassettes), "--replay-speed", "0"]
    with running_server(args) as server:
        status, state = _admin(server, "GET")
        assert status == 200 and state["cassette"] is None and state["mode"] == "none"
        assert state["interactions"] >= len(BOTO_CALLS)
        status, state = _admin(server, "PUT", {"cassette": "per-test/empty", "mode": "none"})
        assert status == 200 and state["cassette"] == "per-test/empty"
        assert state["interactions"] == 0
        with pytest.raises(ClientError) as missed:
            converse(server.url)
        message = missed.value.response["Error"]["Message"]
        assert "per-test/empty.json" in message and "Nothing was recorded" in message
        assert _admin(server, "PUT", {"cassette": None})[0] == 200
        assert converse(server.url) == recorded[1]["Converse"]
        for bad in ({"cassette": "../x"}, {"mode": "sometimes"}, {"other": 1}, [1]):
            status, state = _admin(server, "PUT", bad)
            assert status == 400 and state["message"]
        # A speech session nothing recorded is a miss too, not a local engine's session.
        request = urllib.request.Request(
            f"{server.url}/model/amazon.nova-sonic-v1:0/invoke-with-bidirectional-stream",
            data=b"",
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400
        assert refused.value.headers["X-Amzn-ErrorType"].startswith("ValidationException")
        assert b"InvokeModelWithBidirectionalStream" in refused.value.read()
