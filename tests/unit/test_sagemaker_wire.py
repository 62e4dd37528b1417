"""SageMaker's error classes and PayloadPart frames, against botocore's model and parsers."""

from __future__ import annotations

import json
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser, RestJSONParser

from outcrop.wire import eventstream
from outcrop.wire.errors import (
    BEDROCK_RUNTIME_ERRORS,
    SAGEMAKER_RUNTIME_ERRORS,
    AwsError,
    InternalStreamFailure,
    ModelError,
    ModelStreamError,
    SageMakerPayloadTooLarge,
)
from outcrop.wire.restjson import ServiceSpec, _python_pattern

SESSION = botocore.session.get_session()
SAGEMAKER = SESSION.get_service_model("sagemaker-runtime")
RAW_SHAPES = botocore.loaders.Loader().load_service_model("sagemaker-runtime", "service-2")[
    "shapes"
]


def _stream_members(service: str, operation: str) -> dict[str, str]:
    """Exception shape name -> union member name, from the model."""
    model = SESSION.get_service_model(service)
    stream = model.operation_model(operation).get_event_stream_output()
    return {
        shape.name: member
        for member, shape in stream.members.items()
        if shape.metadata.get("exception")
    }


@pytest.mark.parametrize("cls", SAGEMAKER_RUNTIME_ERRORS, ids=lambda c: c.code)
def test_sagemaker_errors_match_the_model(cls: type[AwsError]) -> None:
    shape = SAGEMAKER.shape_for(cls.code)
    assert shape.metadata.get("exception")
    if "error" in shape.metadata:
        assert shape.metadata["error"]["httpStatusCode"] == cls.status
    assert ("server" if RAW_SHAPES[cls.code].get("fault") else "client") == cls.fault
    assert "Message" in shape.members and cls.message_key == "Message"


def test_stream_members_are_the_models_union_members() -> None:
    sagemaker = _stream_members("sagemaker-runtime", "InvokeEndpointWithResponseStream")
    assert sagemaker == {
        "ModelStreamError": "ModelStreamError",
        "InternalStreamFailure": "InternalStreamFailure",
    }
    cls: type[AwsError]
    for cls in (ModelStreamError, InternalStreamFailure):
        assert cls.stream_member() == sagemaker[cls.code]
    bedrock = _stream_members("bedrock-runtime", "InvokeModelWithResponseStream")
    for cls in BEDROCK_RUNTIME_ERRORS:
        if cls.code in bedrock:
            assert cls.stream_member() == bedrock[cls.code]


def _parse_error(operation: str, status: int, headers: list[tuple[str, str]], body: bytes) -> Any:
    op = SAGEMAKER.operation_model(operation)
    lowered = {k.lower(): v for k, v in headers}
    response = {"status_code": status, "headers": lowered, "body": body}
    return RestJSONParser().parse(response, op.output_shape)


def test_model_error_members_reach_botocore() -> None:
    err = ModelError(
        "Received server error (500) from primary",
        original_status_code=500,
        original_message='{"error": "x"}',
        log_stream_arn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/e",
    )
    status, headers, body = err.to_http()
    assert status == 424
    assert dict(headers)["X-Amzn-ErrorType"] == (
        "ModelError:http://internal.amazon.com/coral/com.amazon.sagemaker/"
    )
    parsed = _parse_error("InvokeEndpoint", status, headers, body)
    assert parsed["Error"] == {
        "Code": "ModelError",
        "Message": "Received server error (500) from primary",
    }
    assert json.loads(body) == {
        "Message": "Received server error (500) from primary",
        "OriginalStatusCode": 500,
        "OriginalMessage": '{"error": "x"}',
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/e",
    }
    assert json.loads(ModelError("timeout").to_http()[2]) == {"Message": "timeout"}


def test_payload_too_large_is_a_bare_413() -> None:
    status, headers, body = SageMakerPayloadTooLarge(
        "HTTP content length exceeded 5 bytes."
    ).to_http()
    assert status == 413 and "X-Amzn-ErrorType" not in dict(headers)
    parsed = _parse_error("InvokeEndpoint", status, headers, body)
    assert parsed["Error"] == {"Code": "413", "Message": "HTTP content length exceeded 5 bytes."}


def test_oversize_bodies_per_operation() -> None:
    spec = ServiceSpec.load("sagemaker-runtime")
    with pytest.raises(SageMakerPayloadTooLarge) as sync:
        spec.check_payload_length(SAGEMAKER.operation_model("InvokeEndpoint"), 6291457)
    assert sync.value.message == "HTTP content length exceeded 6295552 bytes."
    with pytest.raises(AwsError) as async_:
        spec.check_payload_length(SAGEMAKER.operation_model("InvokeEndpointAsync"), 128001)
    assert async_.value.code == "ValidationError"
    assert async_.value.message == (
        "1 validation error detected: Value at 'Body' failed to satisfy constraint: "
        "Member must have length less than or equal to 128000"
    )


def test_header_patterns_in_java_syntax_are_checked() -> None:
    assert _python_pattern(r"\A\S[\p{Print}]*\z") == r"\A\S[\x20-\x7E]*\Z"
    assert _python_pattern(r"\p{ASCII}*") == r"[\x00-\x7F]*"
    spec = ServiceSpec.load("sagemaker-runtime")
    op = SAGEMAKER.operation_model("InvokeEndpoint")
    bound = spec.bind(op, {"EndpointName": "e"}, [("X-Amzn-SageMaker-Inference-Id", "id 1")])
    assert bound.params["InferenceId"] == "id 1"
    with pytest.raises(AwsError) as info:
        spec.bind(op, {"EndpointName": "e"}, [("X-Amzn-SageMaker-Inference-Id", " leading")])
    assert info.value.code == "ValidationError"
    assert "Member must satisfy regular expression pattern" in info.value.message


def test_payload_parts_then_model_stream_error_through_botocore() -> None:
    frames = b"".join(
        [
            eventstream.payload_part_frame(b'{"token": "a"}\n{"tok'),
            eventstream.payload_part_frame(b'en": "b"}\n'),
            eventstream.exception_frame(ModelStreamError("gone", error_code="StreamBroken")),
        ]
    )
    op = SAGEMAKER.operation_model("InvokeEndpointWithResponseStream")

    class Raw:
        def stream(self) -> list[bytes]:
            return [frames[i : i + 5] for i in range(0, len(frames), 5)]

    stream = EventStream(Raw(), op.get_event_stream_output(), EventStreamJSONParser(), op.name)
    seen: list[bytes] = []
    with pytest.raises(EventStreamError) as info:
        for event in stream:
            seen.append(event["PayloadPart"]["Bytes"])
    assert seen == [b'{"token": "a"}\n{"tok', b'en": "b"}\n']
    assert info.value.response["Error"] == {"Code": "ModelStreamError", "Message": "gone"}
