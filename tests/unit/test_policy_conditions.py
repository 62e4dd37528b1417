"""IAM `Condition` blocks: parsing, IAM's rules for absent keys, and AWS's "enforce a specific
guardrail" policy (bedrock:GuardrailIdentifier) through the gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outcrop.gateway.conditions import guardrail_key, request_context
from outcrop.gateway.policies import PolicyError, evaluate, parse_policy
from tests.asgi_driver import call
from tests.unit.test_security import PATH, VERIFY, app, claude, error, signed_headers

GUARDRAIL = "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123"
MODEL = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


def allow_if(condition: dict[str, Any]) -> list[Any]:
    statement = {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}
    return [parse_policy("p", {"Statement": [{**statement, "Condition": condition}]})]


def keys(guardrail: str | None = None, secure: bool = False) -> dict[str, str | None]:
    return request_context(
        principal="arn:aws:iam::123456789012:user/alice",
        region="us-east-1",
        secure=secure,
        guardrail=guardrail,
    )


def allowed(policies: list[Any], context: dict[str, str | None]) -> bool:
    return evaluate(policies, "bedrock:InvokeModel", [MODEL], context).allowed


def test_guardrail_key_carries_numbered_versions_only() -> None:
    assert guardrail_key(GUARDRAIL, "3") == GUARDRAIL + ":3"
    assert guardrail_key(GUARDRAIL, "DRAFT") == GUARDRAIL
    assert guardrail_key(GUARDRAIL, None) == GUARDRAIL


def test_positive_negated_if_exists_and_null_on_an_absent_key() -> None:
    key = "bedrock:GuardrailIdentifier"
    equals = allow_if({"StringEquals": {key: GUARDRAIL + ":1"}})
    assert allowed(equals, keys(GUARDRAIL + ":1"))
    assert not allowed(equals, keys(GUARDRAIL + ":2"))
    assert not allowed(equals, keys())  # positive operator, key absent: false
    not_equals = allow_if({"StringNotEquals": {key: GUARDRAIL + ":1"}})
    assert allowed(not_equals, keys())  # negated operator, key absent: true
    assert not allowed(not_equals, keys(GUARDRAIL + ":1"))
    if_exists = allow_if({"StringEqualsIfExists": {key: GUARDRAIL + ":1"}})
    assert allowed(if_exists, keys()) and not allowed(if_exists, keys(GUARDRAIL))
    assert allowed(allow_if({"Null": {key: "true"}}), keys())
    assert not allowed(allow_if({"Null": {key: "false"}}), keys())
    like = allow_if({"StringLike": {key: [GUARDRAIL + ":*", "arn:*:guardrail/other"]}})
    assert allowed(like, keys(GUARDRAIL + ":7")) and not allowed(like, keys(GUARDRAIL))


def test_every_operator_and_key_must_hold_and_keys_ignore_case() -> None:
    both = allow_if(
        {
            "Bool": {"aws:SecureTransport": True},
            "StringEqualsIgnoreCase": {"AWS:RequestedRegion": "US-EAST-1"},
        }
    )
    assert allowed(both, keys(secure=True))
    assert not allowed(both, keys(secure=False))


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ({}, "an object of operators"),
        ({"NumericLessThan": {"aws:RequestedRegion": "1"}}, "operator not supported"),
        ({"NullIfExists": {"aws:RequestedRegion": "true"}}, "operator not supported"),
        ({"StringEquals": {"aws:SourceIp": "1.2.3.4"}}, "condition key 'aws:SourceIp'"),
        ({"StringEquals": {}}, "an object of condition keys"),
        ({"StringEquals": {"aws:RequestedRegion": []}}, "non-empty list"),
        ({"Null": {"aws:RequestedRegion": "maybe"}}, "true or false"),
        ({"Null": {"aws:RequestedRegion": ["true", "false"]}}, "one value"),
    ],
)
def test_conditions_that_do_not_parse(condition: dict[str, Any], fragment: str) -> None:
    document = {
        "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition}
    }
    with pytest.raises(PolicyError) as info:
        parse_policy("p", document)
    assert fragment in str(info.value)
    assert str(info.value).startswith("policies.p.Statement[0].Condition")


# AWS's example "enforce a specific guardrail and its numeric version" (guardrail permissions).
ENFORCE = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/*"],
            "Condition": {"StringEquals": {"bedrock:GuardrailIdentifier": GUARDRAIL + ":1"}},
        },
        {
            "Effect": "Deny",
            "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
            "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/*"],
            "Condition": {"StringNotEquals": {"bedrock:GuardrailIdentifier": GUARDRAIL + ":1"}},
        },
        {"Effect": "Allow", "Action": "bedrock:ApplyGuardrail", "Resource": GUARDRAIL},
    ]
}


async def test_a_policy_can_enforce_a_guardrail_on_invoke_model_and_converse() -> None:
    gateway = app(**{**VERIFY, "policies": {"all": ENFORCE}})
    body = claude()
    headers = signed_headers(body)

    def with_guardrail(identifier: str, version: str) -> list[tuple[str, str]]:
        return [
            *headers,
            ("x-amzn-bedrock-guardrailidentifier", identifier),
            ("x-amzn-bedrock-guardrailversion", version),
        ]

    status, code, message = error(await call(gateway, "POST", PATH, body, headers))
    assert (status, code) == (403, "AccessDeniedException")
    assert message.endswith("with an explicit deny in an identity-based policy")
    for identifier in ("abc123", GUARDRAIL):  # an ID or the ARN: the same guardrail
        result = await call(gateway, "POST", PATH, body, with_guardrail(identifier, "1"))
        # Authorized: the guardrail itself is unknown here, and that is what is reported.
        assert error(result)[:2] == (400, "ValidationException")
    status, code, _ = error(await call(gateway, "POST", PATH, body, with_guardrail("abc123", "2")))
    assert (status, code) == (403, "AccessDeniedException")

    converse_path = PATH.replace("/invoke", "/converse")
    plain = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    for config, expected in (
        (None, "AccessDeniedException"),
        ({"guardrailIdentifier": "abc123", "guardrailVersion": "1"}, "ValidationException"),
        ({"guardrailIdentifier": "abc123", "guardrailVersion": "DRAFT"}, "AccessDeniedException"),
    ):
        request = plain if config is None else {**plain, "guardrailConfig": config}
        converse = json.dumps(request).encode()
        result = await call(
            gateway, "POST", converse_path, converse, signed_headers(converse, path=converse_path)
        )
        assert error(result)[1] == expected, result.body
