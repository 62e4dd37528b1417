"""Error classes: statuses match botocore's model, and boto3/botocore map our bodies back."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.parsers import RestJSONParser

from outcrop.wire.errors import BEDROCK_RUNTIME_ERRORS, AwsError, ModelErrorException

_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")


@pytest.mark.parametrize("cls", BEDROCK_RUNTIME_ERRORS, ids=lambda c: c.code)
def test_status_and_fault_match_service_model(cls: type[AwsError]) -> None:
    shape = _MODEL.shape_for(cls.code)
    assert shape.metadata["error"]["httpStatusCode"] == cls.status
    sender_fault = shape.metadata["error"].get("senderFault", False)
    assert (cls.fault == "client") == bool(sender_fault)


def test_every_modelled_error_has_a_class() -> None:
    modelled = {s for s in _MODEL.shape_names if _MODEL.shape_for(s).metadata.get("exception")}
    assert modelled == {c.code for c in BEDROCK_RUNTIME_ERRORS}


@pytest.mark.parametrize("cls", BEDROCK_RUNTIME_ERRORS, ids=lambda c: c.code)
def test_botocore_parses_our_error_response(cls: type[AwsError]) -> None:
    err = (
        ModelErrorException("bad", original_status_code=503, resource_name="m")
        if cls is ModelErrorException
        else cls("something went wrong")
    )
    status, headers, body = err.to_http()
    parsed = RestJSONParser().parse(
        {"status_code": status, "headers": {k.lower(): v for k, v in headers}, "body": body},
        _MODEL.operation_model("InvokeModel").output_shape,
    )
    assert parsed["Error"]["Code"] == cls.code
    assert parsed["Error"]["Message"] == err.message
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == cls.status
    assert headers[1][1].startswith(cls.code + ":http://internal.amazon.com/coral/")


def test_model_error_body_has_modelled_members() -> None:
    _, _, body = ModelErrorException("x", original_status_code=502, resource_name="r").to_http()
    assert json.loads(body) == {"message": "x", "originalStatusCode": 502, "resourceName": "r"}
