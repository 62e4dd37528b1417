"""Import of vcrpy / pytest-recording cassettes (recording/vcr_import.py, `outcrop cassettes
import`).

The realistic inputs are made by vcrpy itself: boto3 calls recorded against a local Outcrop
(scripted engine) with vcrpy's YAML serializer (event streams as `!!binary`) and its JSON one.
The hand-written ones cover what a local recording cannot show: AWS host names, SageMaker, the
control plane to skip, gzip, a re-indented JSON body, damaged frames, planted secrets.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import vcr
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from outcrop.recording.cassette import REDACTED, Cassette, Interaction, Redaction, body_bytes
from outcrop.recording.vcr_import import ImportProblem, import_vcr, parse_vcr
from outcrop.wire.eventstream import chunk_frame, json_event_frame, payload_part_frame
from tests.support.server import REPO, running_server

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "Name a colour."}],
}


@dataclass
class Recorded:
    """A vcrpy cassette made here, and what boto3 saw while it was recorded."""

    yaml_path: Path
    json_path: Path
    seen: dict[str, Any]


def client(url: str) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(retries={"max_attempts": 1}),
    )


def record_calls(bedrock: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    messages = [{"role": "user", "content": [{"text": "Count to three."}]}]
    stream = bedrock.converse_stream(
        modelId=MODEL, messages=messages, inferenceConfig={"maxTokens": 8}
    )
    seen["converse_stream"] = list(stream["stream"])
    reply = bedrock.invoke_model(modelId=MODEL, body=json.dumps(CLAUDE_BODY))
    seen["invoke_model"] = json.loads(reply["body"].read())
    chunks = bedrock.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(CLAUDE_BODY))
    seen["invoke_stream"] = [json.loads(e["chunk"]["bytes"]) for e in chunks["body"]]
    with pytest.raises(ClientError) as caught:
        bedrock.converse(modelId="no.such-model-v1:0", messages=messages)
    seen["error"] = caught.value.response["Error"]
    return seen


def text_headers(request: Any) -> Any:
    for name, value in list(request.headers.items()):
        if isinstance(value, bytes):
            request.headers[name] = value.decode()
    return request


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    folder = tmp_path_factory.mktemp("vcr")
    with running_server(["--engine", "scripted", "--quiet"]) as server:
        bedrock = client(server.url)
        with vcr.use_cassette(str(folder / "calls.yaml"), record_mode="all"):
            seen = record_calls(bedrock)
        # vcrpy's JSON serializer refuses bytes: complete (JSON) responses only, and botocore's
        # header values made text first, as projects using it do
        with vcr.use_cassette(
            str(folder / "calls.json"),
            serializer="json",
            record_mode="all",
            before_record_request=text_headers,
        ):
            bedrock.converse(
                modelId=MODEL,
                messages=[{"role": "user", "content": [{"text": "Hello."}]}],
                inferenceConfig={"maxTokens": 8},
            )
    yield Recorded(folder / "calls.yaml", folder / "calls.json", seen)


def vcr_bodies(path: Path) -> list[bytes]:
    """The response bodies exactly as vcrpy stored them."""
    out = []
    for raw in yaml.safe_load(path.read_text())["interactions"]:
        body = raw["response"]["body"]["string"]
        out.append(body if isinstance(body, bytes) else body.encode())
    return out


def test_vcrpy_yaml_cassette_imports_every_call_and_streams_reencode_byte_for_byte(
    recorded: Recorded,
) -> None:
    result = import_vcr(recorded.yaml_path.read_text())
    assert result.skipped == []
    operations = [(i.service, i.operation, i.target) for i in result.interactions]
    assert operations == [
        ("bedrock-runtime", "ConverseStream", MODEL),
        ("bedrock-runtime", "InvokeModel", MODEL),
        ("bedrock-runtime", "InvokeModelWithResponseStream", MODEL),
        ("bedrock-runtime", "Converse", "no.such-model-v1:0"),
    ]
    bodies = vcr_bodies(recorded.yaml_path)
    for interaction, body in zip(result.interactions, bodies, strict=True):
        events = interaction.response.events
        if events is None:
            assert interaction.response.body is not None
            continue
        # every frame goes out again exactly as it came: same headers, same payload bytes
        assert b"".join(event.frame() for event in events) == body
        assert all(event.t == 0.0 for event in events)

    converse_stream, invoke, invoke_stream, error = result.interactions
    deltas = [
        e.payload["json"]["delta"]["text"]
        for e in converse_stream.response.events or ()
        if e.event_type == "contentBlockDelta"
    ]
    seen_deltas = [
        e["contentBlockDelta"]["delta"]["text"]
        for e in recorded.seen["converse_stream"]
        if "contentBlockDelta" in e
    ]
    assert deltas == seen_deltas
    assert invoke.response.body == {"text": json.dumps(recorded.seen["invoke_model"])}
    # a chunk's base64 `bytes` is decoded into a readable model object
    decoded = [
        e.chunk["json"] if e.chunk is not None and "json" in e.chunk else None
        for e in invoke_stream.response.events or ()
    ]
    assert decoded == recorded.seen["invoke_stream"]
    assert error.response.status == 400
    assert error.response.body is not None
    assert json.loads(body_bytes(error.response.body)) == {
        "message": recorded.seen["error"]["Message"]
    }
    error_headers = {k.lower(): v for k, v in error.response.headers}
    assert error_headers["x-amzn-errortype"].startswith("ValidationException")


def test_request_is_normalized_and_the_signing_secret_is_gone(recorded: Recorded) -> None:
    text = recorded.yaml_path.read_text()
    signature = yaml.safe_load(text)["interactions"][0]["request"]["headers"]["Authorization"][0]
    assert b"AKIAIOSFODNN7EXAMPLE" in signature  # vcrpy kept it: `!!binary`
    cassette = Cassette(import_vcr(text).interactions)
    written = cassette.dumps()
    for volatile in ("authorization", "x-amz-date", "amz-sdk-invocation-id", "user-agent"):
        assert volatile not in written.lower()
    assert "AKIAIOSFODNN7EXAMPLE" not in written
    first = cassette.interactions[0].request
    assert first.body == {
        "json": {
            "messages": [{"role": "user", "content": [{"text": "Count to three."}]}],
            "inferenceConfig": {"maxTokens": 8},
        }
    }
    assert first.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    assert Cassette.loads(written).to_json() == cassette.to_json()


def test_vcrpy_json_serializer_cassette(recorded: Recorded) -> None:
    result = import_vcr(recorded.json_path.read_text())
    assert [(i.operation, i.response.status) for i in result.interactions] == [("Converse", 200)]
    body = result.interactions[0].response.body
    assert body is not None and "json" in body
    assert body["json"]["output"]["message"]["role"] == "assistant"


def _exchange(
    uri: str,
    response_body: Any,
    *,
    method: str = "POST",
    request_body: Any = "{}",
    status: int = 200,
    request_headers: dict[str, list[Any]] | None = None,
    response_headers: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    return {
        "request": {
            "method": method,
            "uri": uri,
            "body": request_body,
            "headers": request_headers or {},
        },
        "response": {
            "status": {"code": status, "message": "OK"},
            "headers": response_headers or {"Content-Type": ["application/json"]},
            "body": {"string": response_body},
        },
    }


def _import(*exchanges: dict[str, Any], redaction: Redaction | None = None) -> Any:
    return import_vcr(yaml.safe_dump({"interactions": list(exchanges), "version": 1}), redaction)


def test_aws_hosts_route_to_their_service_and_other_services_are_skipped() -> None:
    stream = payload_part_frame(b'{"token": {"text": "Hi"}}\n')
    result = _import(
        _exchange("https://bedrock.us-east-1.amazonaws.com/foundation-models", "{}", method="GET"),
        _exchange(
            "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/my-endpoint/invocations",
            '[{"generated_text": "Hi"}]',
            request_body='{"inputs": "Hello"}',
        ),
        _exchange(
            "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/my-endpoint/"
            "invocations-response-stream",
            stream,
            response_headers={"Content-Type": ["application/vnd.amazon.eventstream"]},
        ),
        _exchange(
            "https://bedrock-runtime.us-west-2.amazonaws.com/guardrail/gr-123/version/1/apply",
            '{"action": "NONE", "outputs": []}',
            request_body='{"source": "INPUT", "content": [{"text": {"text": "hi"}}]}',
        ),
        _exchange(
            "https://bedrock-runtime.us-west-2.amazonaws.com/model/amazon.nova-micro-v1%3A0/"
            "count-tokens",
            '{"inputTokens": 5}',
        ),
    )
    assert len(result.skipped) == 1
    assert (
        "bedrock.us-east-1.amazonaws.com is not a Bedrock or SageMaker Runtime endpoint"
        in (result.skipped[0])
    )
    assert [(i.service, i.operation, i.target) for i in result.interactions] == [
        ("sagemaker-runtime", "InvokeEndpoint", "my-endpoint"),
        ("sagemaker-runtime", "InvokeEndpointWithResponseStream", "my-endpoint"),
        ("bedrock-runtime", "ApplyGuardrail", "gr-123"),
        ("bedrock-runtime", "CountTokens", "amazon.nova-micro-v1:0"),
    ]
    events = result.interactions[1].response.events
    assert events is not None and b"".join(e.frame() for e in events) == stream


def test_gzip_and_reindented_json_bodies_come_back_compact() -> None:
    answer = {"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}}
    result = _import(
        _exchange(
            f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse",
            gzip.compress(json.dumps(answer).encode()),
            response_headers={
                "Content-Type": ["application/json"],
                "Content-Encoding": ["gzip"],
            },
        ),
        _exchange(
            f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse",
            json.dumps(answer, indent=2),
        ),
    )
    assert [i.response.body for i in result.interactions] == [
        {"text": json.dumps(answer)},
        {"json": answer},
    ]
    assert all(
        "content-encoding" not in {k.lower() for k, _ in i.response.headers}
        for i in result.interactions
    )


def test_a_damaged_stream_is_skipped_with_the_reason() -> None:
    good = json_event_frame("messageStart", {"role": "assistant"})
    frames = good + chunk_frame({"type": "message_stop"})
    damaged = frames[:-1] + bytes([frames[-1] ^ 0xFF])  # the last frame's message CRC
    result = _import(
        _exchange(
            f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse-stream",
            damaged,
            response_headers={"Content-Type": ["application/vnd.amazon.eventstream"]},
        ),
        _exchange(
            f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse-stream",
            good[:-3],
            response_headers={"Content-Type": ["application/vnd.amazon.eventstream"]},
        ),
    )
    assert result.interactions == []
    assert result.skipped[0].startswith("interaction 1: damaged event stream after 1 events")
    assert result.skipped[1] == "interaction 2: event stream cut short after 0 events"


def test_planted_secrets_in_headers_and_body_are_redacted() -> None:
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzSECRET1"
    token = "IQoJb3JpZ2luX2VjEJr" + "A" * 60
    email = "jane.doe@example.com"
    body = {"messages": [{"role": "user", "content": [{"text": f"my key is {secret_key}"}]}]}
    body["system"] = [{"text": f"reply to {email}"}]
    result = _import(
        _exchange(
            f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/converse",
            '{"output": {}}',
            request_body=json.dumps(body),
            request_headers={
                "X-Amz-Security-Token": [token.encode()],
                "X-Api-Key": ["key-1234"],
                "X-Custom": [f"id AKIAIOSFODNN7EXAMPLE {token}"],
            },
        ),
        redaction=Redaction.build(headers=["x-api-key"], paths=["system[*].text"]),
    )
    written = Cassette(result.interactions).dumps()
    for planted in (secret_key, token, email, "key-1234", "AKIAIOSFODNN7EXAMPLE"):
        assert planted not in written
    headers = result.interactions[0].request.headers
    assert headers["x-api-key"] == REDACTED
    assert "x-amz-security-token" not in headers
    assert headers["x-custom"] == f"id {REDACTED} {REDACTED}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("interactions: 3\n", "no `interactions` list: not a vcrpy cassette"),
        ("{unclosed: [", "neither JSON nor YAML"),
    ],
)
def test_not_a_vcr_cassette(text: str, problem: str) -> None:
    with pytest.raises(ImportProblem, match=problem):
        parse_vcr(text)


def test_vcrpy_pre_1_layout_a_bare_list() -> None:
    exchange = _exchange(
        f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{MODEL}/invoke", '{"ok": 1}'
    )
    assert len(import_vcr(yaml.safe_dump([exchange])).interactions) == 1


def test_cli_imports_and_appends(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "cassettes" / "imported.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "outcrop.cli.main", "cassettes", "import", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=REPO,
        )

    first = cli(str(recorded.yaml_path), "-o", str(out))
    assert first.returncode == 0, first.stderr
    assert f"{recorded.yaml_path}: 4 interactions imported, 0 skipped" in first.stdout
    second = cli(str(recorded.json_path), "-o", str(out), "--append")
    assert second.returncode == 0, second.stderr
    interactions: list[Interaction] = Cassette.load(out).interactions
    assert [i.operation for i in interactions][-2:] == ["Converse", "Converse"]
    assert len(interactions) == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: 3\n")
    refused = cli(str(bad), "-o", str(tmp_path / "x.json"))
    assert refused.returncode == 1
    assert "not a vcrpy cassette" in refused.stderr
    assert not (tmp_path / "x.json").exists()


def test_imported_cassette_replays_what_boto3_saw_while_vcrpy_recorded(
    recorded: Recorded, tmp_path: Path
) -> None:
    """The upstream that vcrpy recorded is gone; `outcrop serve --replay` answers from the
    imported cassette, and boto3 gets the same events, bodies and errors as it did then."""
    folder = tmp_path / "cassettes"
    result = import_vcr(recorded.yaml_path.read_text())
    Cassette(result.interactions).save(folder / "imported.json")
    with running_server(["--engine", "scripted", "--quiet", "--replay", str(folder)]) as server:
        seen = record_calls(client(server.url))
    # InvokeModel's message id is random per call: equal only when it came from the cassette
    assert seen == recorded.seen
