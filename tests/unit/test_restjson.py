"""Routing and header binding driven by botocore's bedrock-runtime model."""

from __future__ import annotations

import pytest

from outcrop.wire.errors import ValidationException
from outcrop.wire.restjson import ServiceSpec

SPEC = ServiceSpec.load("bedrock-runtime")


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        ("POST", "/model/m.x/invoke", "InvokeModel"),
        ("POST", "/model/m.x/invoke-with-response-stream", "InvokeModelWithResponseStream"),
        (
            "POST",
            "/model/m.x/invoke-with-bidirectional-stream",
            "InvokeModelWithBidirectionalStream",
        ),
        ("POST", "/model/m.x/converse", "Converse"),
        ("POST", "/model/m.x/converse-stream", "ConverseStream"),
        ("POST", "/model/m.x/count-tokens", "CountTokens"),
        ("POST", "/guardrail/g1/version/DRAFT/apply", "ApplyGuardrail"),
        ("POST", "/guardrail-checks/invoke", "InvokeGuardrailChecks"),
        ("POST", "/async-invoke", "StartAsyncInvoke"),
        ("GET", "/async-invoke", "ListAsyncInvokes"),
        (
            "GET",
            "/async-invoke/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aasync-invoke%2Fx",
            "GetAsyncInvoke",
        ),
    ],
)
def test_every_operation_routes(method: str, path: str, operation: str) -> None:
    matched = SPEC.match(method, path)
    assert matched is not None
    assert matched[0].name == operation


def test_every_model_operation_is_reachable() -> None:
    reachable = set()
    for name in SPEC.model.operation_names:
        http = SPEC.model.operation_model(name).http
        path = http["requestUri"].split("?")[0]
        for label in ("modelId", "guardrailIdentifier", "guardrailVersion", "invocationArn"):
            path = path.replace("{" + label + "}", "x")
        matched = SPEC.match(http["method"], path)
        assert matched is not None, name
        reachable.add(matched[0].name)
    assert reachable == set(SPEC.model.operation_names)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("anthropic.claude-3-haiku-20240307-v1%3A0", "anthropic.claude-3-haiku-20240307-v1:0"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
        (
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.a.b-v1%3A0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.a.b-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.a.b-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.a.b-v1:0",
        ),
    ],
)
def test_model_id_label_is_decoded_once(raw: str, decoded: str) -> None:
    matched = SPEC.match("POST", f"/model/{raw}/invoke")
    assert matched is not None
    assert matched[1] == {"modelId": decoded}


def test_unknown_paths_and_methods_do_not_match() -> None:
    assert SPEC.match("GET", "/model/x/invoke") is None
    assert SPEC.match("POST", "/model/x/unknown") is None
    assert SPEC.match("POST", "/") is None


def test_headers_bind_to_members_case_insensitively() -> None:
    op, labels = SPEC.match("POST", "/model/m.x/invoke-with-response-stream") or (None, {})
    assert op is not None
    bound = SPEC.bind(
        op,
        labels,
        [
            ("content-type", "application/json"),
            ("X-AMZN-BEDROCK-ACCEPT", "application/json"),
            ("x-amzn-bedrock-trace", "ENABLED_FULL"),
            ("x-amzn-bedrock-service-tier", "flex"),
            ("x-unrelated", "1"),
        ],
    )
    assert bound.params == {
        "modelId": "m.x",
        "contentType": "application/json",
        "accept": "application/json",
        "trace": "ENABLED_FULL",
        "serviceTier": "flex",
    }


def test_enum_violation_is_a_coral_validation_error() -> None:
    op, labels = SPEC.match("POST", "/model/m.x/invoke") or (None, {})
    assert op is not None
    with pytest.raises(ValidationException) as info:
        SPEC.bind(op, labels, [("X-Amzn-Bedrock-Service-Tier", "gold")])
    assert info.value.message == (
        "1 validation error detected: Value 'gold' at 'serviceTier' failed to satisfy "
        "constraint: Member must satisfy enum value set: [priority, default, flex, reserved]"
    )


def test_model_id_pattern_and_length_are_checked() -> None:
    op, _ = SPEC.match("POST", "/model/m.x/invoke") or (None, {})
    assert op is not None
    with pytest.raises(ValidationException) as info:
        SPEC.bind(op, {"modelId": "x" * 2049}, [])
    assert "Member must have length less than or equal to 2048" in info.value.message


def test_payload_limit_comes_from_the_model() -> None:
    op, _ = SPEC.match("POST", "/model/m.x/invoke") or (None, {})
    assert op is not None
    assert SPEC.payload_max(op) == 25_000_000
    SPEC.check_payload_length(op, 25_000_000)
    with pytest.raises(ValidationException) as info:
        SPEC.check_payload_length(op, 25_000_001)
    assert "at 'body' failed to satisfy constraint" in info.value.message
