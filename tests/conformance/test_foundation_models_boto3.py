"""The Bedrock control plane's ListFoundationModels and GetFoundationModel through boto3, against
`outcrop serve --engine scripted` as a process, and application code that decides between
streaming and not from `responseStreamingSupported`."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from outcrop.catalog.foundation import foundation_model_records
from tests.support.server import ServerProcess

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def control(server: ServerProcess, region: str = "us-east-1") -> Any:
    return boto3.client(
        "bedrock",
        endpoint_url=server.url,
        region_name=region,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def ids(summaries: list[dict[str, Any]]) -> set[str]:
    return {s["modelId"] for s in summaries}


def test_list_everything(scripted_server: ServerProcess) -> None:
    response = control(scripted_server).list_foundation_models()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    summaries = response["modelSummaries"]
    assert ids(summaries) == set(foundation_model_records())
    by_id = {s["modelId"]: s for s in summaries}
    haiku = by_id[HAIKU]
    assert haiku == {
        "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "modelName": "Claude 3 Haiku",
        "providerName": "Anthropic",
        "inputModalities": ["TEXT", "IMAGE"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND"],
        "modelLifecycle": {"status": "ACTIVE"},
    }
    assert "providerModelName" not in haiku  # not a member of FoundationModelSummary
    titan = by_id["amazon.titan-embed-text-v2:0"]
    assert titan["outputModalities"] == ["EMBEDDING"]
    assert titan["responseStreamingSupported"] is False


@pytest.mark.parametrize("provider", ["anthropic", "Anthropic", "ANTHROPIC"])
def test_by_provider_is_case_insensitive(scripted_server: ServerProcess, provider: str) -> None:
    summaries = control(scripted_server).list_foundation_models(byProvider=provider)[
        "modelSummaries"
    ]
    assert summaries and {s["providerName"] for s in summaries} == {"Anthropic"}
    expected = {
        k for k, v in foundation_model_records().items() if v["providerName"] == "Anthropic"
    }
    assert ids(summaries) == expected


def test_by_provider_name_with_a_space(scripted_server: ServerProcess) -> None:
    bedrock = control(scripted_server)
    by_name = ids(bedrock.list_foundation_models(byProvider="Mistral AI")["modelSummaries"])
    by_segment = ids(bedrock.list_foundation_models(byProvider="mistral")["modelSummaries"])
    assert by_name == by_segment and "mistral.mistral-7b-instruct-v0:2" in by_name
    assert bedrock.list_foundation_models(byProvider="nobody")["modelSummaries"] == []


def test_by_output_modality(scripted_server: ServerProcess) -> None:
    summaries = control(scripted_server).list_foundation_models(byOutputModality="EMBEDDING")[
        "modelSummaries"
    ]
    found = ids(summaries)
    assert {
        "amazon.titan-embed-text-v1",
        "amazon.titan-embed-text-v2:0",
        "cohere.embed-english-v3",
        "cohere.embed-multilingual-v3",
        "cohere.embed-v4:0",
    } <= found
    assert all(s["outputModalities"] == ["EMBEDDING"] for s in summaries)
    assert not any(s["responseStreamingSupported"] for s in summaries)


def test_by_inference_and_customization_type(scripted_server: ServerProcess) -> None:
    bedrock = control(scripted_server)
    provisioned = bedrock.list_foundation_models(byInferenceType="PROVISIONED")["modelSummaries"]
    assert provisioned and all("PROVISIONED" in s["inferenceTypesSupported"] for s in provisioned)
    assert "amazon.titan-embed-text-v1:2:8k" in ids(provisioned)
    tunable = bedrock.list_foundation_models(
        byCustomizationType="FINE_TUNING", byProvider="amazon"
    )["modelSummaries"]
    assert "amazon.titan-text-express-v1:0:8k" in ids(tunable)
    assert all("FINE_TUNING" in s["customizationsSupported"] for s in tunable)
    both = bedrock.list_foundation_models(byOutputModality="TEXT", byInferenceType="ON_DEMAND")
    assert all(
        "TEXT" in s["outputModalities"] and "ON_DEMAND" in s["inferenceTypesSupported"]
        for s in both["modelSummaries"]
    )


def test_invalid_filter_value(scripted_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as raised:
        control(scripted_server).list_foundation_models(byOutputModality="SMELL")
    error = raised.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (
        "Member must satisfy enum value set: [TEXT, IMAGE, EMBEDDING]" in error["Error"]["Message"]
    )


def test_arn_uses_the_signing_region(scripted_server: ServerProcess) -> None:
    bedrock = control(scripted_server, region="eu-west-1")
    summaries = bedrock.list_foundation_models(byProvider="cohere")["modelSummaries"]
    assert summaries and all(
        s["modelArn"].startswith("arn:aws:bedrock:eu-west-1::foundation-model/cohere.")
        for s in summaries
    )
    details = bedrock.get_foundation_model(modelIdentifier="cohere.embed-english-v3")[
        "modelDetails"
    ]
    assert (
        details["modelArn"] == "arn:aws:bedrock:eu-west-1::foundation-model/cohere.embed-english-v3"
    )


@pytest.mark.parametrize(
    "identifier",
    [
        "amazon.titan-embed-text-v2:0",
        "arn:aws:bedrock:us-west-2::foundation-model/amazon.titan-embed-text-v2:0",
    ],
)
def test_get_foundation_model(scripted_server: ServerProcess, identifier: str) -> None:
    details = control(scripted_server).get_foundation_model(modelIdentifier=identifier)[
        "modelDetails"
    ]
    assert details["modelId"] == "amazon.titan-embed-text-v2:0"
    assert details["modelName"] == "Titan Text Embeddings V2"
    assert details["responseStreamingSupported"] is False
    assert details["modelLifecycle"] == {"status": "ACTIVE"}
    assert details["inputModalities"] == ["TEXT"] and details["outputModalities"] == ["EMBEDDING"]


def test_get_unknown_model(scripted_server: ServerProcess) -> None:
    with pytest.raises(ClientError) as raised:
        control(scripted_server).get_foundation_model(modelIdentifier="acme.rocket-v1:0")
    error = raised.value
    assert type(error).__name__ == "ResourceNotFoundException"
    assert error.response["Error"]["Message"] == (
        "Could not resolve the foundation model from the provided model identifier."
    )
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_application_checks_streaming_support_first(scripted_server: ServerProcess) -> None:
    """Code that streams when the catalog says it can, and invokes otherwise, works for every
    kind of model Outcrop serves."""
    bedrock = control(scripted_server)
    runtime = boto3.client(
        "bedrock-runtime", endpoint_url=scripted_server.url, region_name="us-east-1"
    )
    bodies = {
        "anthropic.claude-3-haiku-20240307-v1:0": {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "granite"}],
        },
        "amazon.titan-embed-text-v2:0": {"inputText": "granite"},
        "cohere.embed-english-v3": {"texts": ["granite"], "input_type": "search_document"},
    }
    for model_id, body in bodies.items():
        details = bedrock.get_foundation_model(modelIdentifier=model_id)["modelDetails"]
        if details["responseStreamingSupported"]:
            response = runtime.invoke_model_with_response_stream(
                modelId=model_id, body=json.dumps(body)
            )
            chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
            assert chunks[-1]["type"] == "message_stop"
        else:
            answer = json.loads(
                runtime.invoke_model(modelId=model_id, body=json.dumps(body))["body"].read()
            )
            assert "embedding" in answer or "embeddings" in answer
