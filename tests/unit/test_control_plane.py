"""Control-plane pieces: query-string binding, spec-driven serialization, regions, the catalog."""

from __future__ import annotations

import json
from collections import Counter
from importlib.resources import files

import pytest

from outcrop.catalog.foundation import foundation_model_records, foundation_models
from outcrop.services.base import RequestContext
from outcrop.services.bedrock import foundation_model_arn, request_region, serialize
from outcrop.wire.errors import ValidationException
from outcrop.wire.restjson import ServiceSpec

BEDROCK = ServiceSpec.load("bedrock")


def test_query_string_members_are_bound_and_checked() -> None:
    matched = BEDROCK.match("GET", "/foundation-models")
    assert matched is not None
    op, labels = matched
    bound = BEDROCK.bind(
        op, labels, [], {"byProvider": ["Mistral AI"], "byInferenceType": ["ON_DEMAND"]}
    )
    assert bound.params == {"byProvider": "Mistral AI", "byInferenceType": "ON_DEMAND"}
    with pytest.raises(ValidationException) as raised:
        BEDROCK.bind(op, labels, [], {"byInferenceType": ["INFERENCE_PROFILE"]})
    assert raised.value.message == (
        "1 validation error detected: Value 'INFERENCE_PROFILE' at 'byInferenceType' failed to "
        "satisfy constraint: Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]"
    )


def test_get_foundation_model_route() -> None:
    matched = BEDROCK.match("GET", "/foundation-models/amazon.titan-embed-text-v2%3A0")
    assert matched is not None
    op, labels = matched
    assert op.name == "GetFoundationModel"
    assert labels == {"modelIdentifier": "amazon.titan-embed-text-v2:0"}


def test_serialize_follows_the_shape() -> None:
    shape = BEDROCK.model.shape_for("FoundationModelDetails")
    value = {
        "modelArn": "arn",
        "modelId": "x.y",
        "providerModelName": "not a member",
        "inputModalities": ["TEXT"],
        "modelLifecycle": {"status": "LEGACY", "legacyTime": "2025-01-01T00:00:00+00:00"},
        "modelName": None,
    }
    assert serialize(shape, value) == {
        "modelArn": "arn",
        "modelId": "x.y",
        "inputModalities": ["TEXT"],
        "modelLifecycle": {"status": "LEGACY", "legacyTime": "2025-01-01T00:00:00Z"},
    }


def test_request_region() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-central-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    signed = RequestContext(
        "r", "ListFoundationModels", {}, b"", headers=(("Authorization", auth),)
    )
    assert request_region(signed, "us-east-1") == "eu-central-1"
    bearer = RequestContext(
        "r", "ListFoundationModels", {}, b"", headers=(("Authorization", "Bearer t"),)
    )
    assert request_region(bearer, "us-west-2") == "us-west-2"
    assert (
        foundation_model_arn("us-west-2", "a.b:0")
        == "arn:aws:bedrock:us-west-2::foundation-model/a.b:0"
    )


def test_catalog_entries_are_unique_and_complete() -> None:
    raw = json.loads(files("outcrop.catalog").joinpath("foundation_models.json").read_text())
    counts = Counter(m["modelId"] for m in raw["models"])
    assert [k for k, n in counts.items() if n > 1] == []
    summary = BEDROCK.model.shape_for("FoundationModelSummary")
    allowed = set(summary.members) | {"providerModelName", "_source"}
    for model_id, record in foundation_model_records().items():
        assert set(record) <= allowed, model_id
        assert record["modelLifecycle"]["status"] in ("ACTIVE", "LEGACY"), model_id
        assert set(record["inferenceTypesSupported"]) <= {
            "ON_DEMAND",
            "PROVISIONED",
            "INFERENCE_PROFILE",
        }
        assert set(record["customizationsSupported"]) <= {
            "FINE_TUNING",
            "CONTINUED_PRE_TRAINING",
            "DISTILLATION",
        }
        assert model_id in foundation_models()


def test_embedding_models_never_stream() -> None:
    for model_id, model in foundation_models().items():
        if "EMBEDDING" in model.output_modalities:
            assert not model.streaming, model_id
