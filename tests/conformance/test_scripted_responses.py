"""Scripted responses queued through `/_outcrop/responses` (outcrop.testing.responses), seen by
boto3: the next matching call gets the queued answer in its own operation's format, whatever
engine serves the model, and later calls go back to the engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config

from outcrop.testing import AdminApiError, Responses, responses
from tests.support.server import ServerProcess

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
WEATHER_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}


def bedrock(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )


def claude(text: str) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


def invoke_text(client: Any, text: str) -> str:
    reply = json.loads(client.invoke_model(modelId=HAIKU, body=claude(text))["body"].read())
    return "".join(block["text"] for block in reply["content"])


def test_the_next_call_gets_the_queued_answer_then_the_engine_again(
    scripted_server: ServerProcess,
) -> None:
    client = bedrock(scripted_server)
    with responses(scripted_server.url) as queued:
        rule = queued.queue("The answer is 42.", model="anthropic.*")
        assert invoke_text(client, "what is it?") == "The answer is 42."
        assert invoke_text(client, "what is it?") == "Echo: what is it?"
        state = queued.get(rule)
        assert (state.matched, state.fired, state.remaining) == (1, 1, 0)
        # Streams get it too, as the family's stream events, with its usage.
        queued.queue("Streamed from the queue.", times=2)
        stream = client.invoke_model_with_response_stream(modelId=HAIKU, body=claude("x"))
        chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
        text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
        assert text == "Streamed from the queue."
        metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
        assert metrics["outputTokenCount"] > 0
        converse = client.converse(
            modelId=NOVA, messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )
        assert converse["output"]["message"]["content"][0]["text"] == "Streamed from the queue."
    assert Responses(scripted_server.url).rules() == []  # the block removed what it added


def test_rules_match_by_model_and_prompt_in_order(scripted_server: ServerProcess) -> None:
    client = bedrock(scripted_server)
    with responses(scripted_server.url) as queued:
        queued.queue("For Nova only.", model="amazon.nova*")
        queued.queue("About refunds.", prompt="(?i)refund", times=None)
        assert invoke_text(client, "hello") == "Echo: hello"
        assert invoke_text(client, "I want a REFUND") == "About refunds."
        assert invoke_text(client, "refund again") == "About refunds."
        nova = client.converse(
            modelId=NOVA, messages=[{"role": "user", "content": [{"text": "refund"}]}]
        )
        assert nova["output"]["message"]["content"][0]["text"] == "For Nova only."


def test_a_queued_tool_call_streams_through_converse(scripted_server: ServerProcess) -> None:
    client = bedrock(scripted_server)
    with responses(scripted_server.url) as queued:
        queued.queue(tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}])
        stream = client.converse_stream(
            modelId=HAIKU,
            messages=[{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            toolConfig={"tools": [WEATHER_TOOL]},
        )
        events = list(stream["stream"])
    starts = [
        e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e
    ]
    assert [s["name"] for s in starts] == ["get_weather"]
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {})
    ]
    assert json.loads("".join(pieces)) == {"city": "Paris"}
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["tool_use"]


def test_the_queued_answer_replaces_the_real_model(llama_server: ServerProcess) -> None:
    client = bedrock(llama_server)
    with responses(llama_server.url) as queued:
        queued.queue("Deterministic, whatever the model would say.")
        assert invoke_text(client, "Tell me a story.") == (
            "Deterministic, whatever the model would say."
        )


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({}, "needs text or tool_calls"),
        ({"text": "x", "colour": "red"}, "colour"),
        ({"text": "x", "times": 0}, "times"),
        ({"text": "x", "prompt": "("}, "not a regular expression"),
        ({"tool_calls": [{"name": ""}]}, "tool_calls"),
    ],
)
def test_admin_api_misuse_changes_nothing(
    scripted_server: ServerProcess, rule: dict[str, Any], fragment: str
) -> None:
    api = Responses(scripted_server.url)
    with pytest.raises(AdminApiError) as info:
        api.queue(**rule)
    assert info.value.status == 400
    assert info.value.message.startswith("Invalid scripted response") and fragment in (
        info.value.message
    )
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{api.url}/rule?id=nope", timeout=5)
    assert missing.value.code == 404
    assert api.rules() == []
    assert invoke_text(bedrock(scripted_server), "still here") == "Echo: still here"


def test_sagemaker_endpoints_get_queued_answers_in_their_container_format(
    scripted_server: ServerProcess,
) -> None:
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=scripted_server.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, proxies={}),
    )

    def generated(endpoint: str) -> Any:
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Body=json.dumps({"inputs": "hello", "parameters": {"max_new_tokens": 20}}),
        )
        return json.loads(reply["Body"].read())

    with responses(scripted_server.url) as queued:
        queued.queue("From the queue.", model="support-*")
        assert generated("other-endpoint") == [{"generated_text": "Echo: hello"}]
        assert generated("support-bot") == [{"generated_text": "From the queue."}]
        assert generated("support-bot") == [{"generated_text": "Echo: hello"}]
        queued.queue("Streamed from the queue.", model="support-*")
        stream = runtime.invoke_endpoint_with_response_stream(
            EndpointName="support-bot",
            ContentType="application/json",
            Body=json.dumps({"inputs": "hello", "stream": True}),
        )
        sent = b"".join(e["PayloadPart"]["Bytes"] for e in stream["Body"] if "PayloadPart" in e)
    finals = [
        json.loads(line[5:])
        for line in sent.decode().splitlines()
        if line.startswith("data:") and '"generated_text":"' in line.replace(" ", "")
    ]
    assert [f["generated_text"] for f in finals] == ["Streamed from the queue."]
