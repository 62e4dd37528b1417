"""IAM Deny bypasses in verify mode (issue 13, item 2), each replayed through the gateway.

A Deny written on the canonical resource Outcrop serves must hold however the request spells
the resource (foundation-model ARNs with an account ID or another partition, a guardrail ARN
from another account), whatever region it was signed for, and however the Converse body spells
`guardrailConfig` (JSON escapes, lone surrogates elsewhere).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.gateway.policies import guardrail_resource, model_resources
from tests.asgi_driver import Result, call

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
ALLOW_ALL = {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}


def gateway(*statements: dict[str, Any], **auth: Any) -> OutcropApp:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "auth": {
                "mode": "verify",
                "credentials": [
                    {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET, "principal": "a"}
                ],
                **auth,
            },
            "principals": {"a": {"policies": ["p"]}},
            "policies": {"p": {"Statement": [ALLOW_ALL, *statements]}},
            "guardrails": {
                "define": [
                    {
                        "id": "g1abc",
                        "name": "g1",
                        "blockedInputMessaging": "no",
                        "blockedOutputsMessaging": "no",
                        "wordPolicyConfig": {"wordsConfig": [{"text": "secretword"}]},
                    }
                ]
            },
        }
    )
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


async def signed_call(
    app: OutcropApp,
    path: str,
    body: bytes,
    region: str = "us-east-1",
    headers: list[tuple[str, str]] | None = None,
) -> Result:
    request = AWSRequest(
        method="POST",
        url=f"http://testserver{path}",
        data=body,
        headers={"Content-Type": "application/json", **dict(headers or [])},
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET), "bedrock", region).add_auth(request)
    prepared = request.prepare()
    sent = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    return await call(app, "POST", path, body, [*sent, ("host", urlsplit(prepared.url).netloc)])


def claude() -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hello"}],
        }
    ).encode()


def invoke_path(model: str) -> str:
    return f"/model/{quote(model, safe='')}/invoke"


def code_of(result: Result) -> tuple[int, str]:
    return result.status, result.headers.get("x-amzn-errortype", "").split(":")[0]


DENY_HAIKU = {
    "Effect": "Deny",
    "Action": "bedrock:InvokeModel*",
    "Resource": f"arn:aws:bedrock:*::foundation-model/{HAIKU}",
}


async def test_foundation_model_arn_spellings_do_not_escape_a_deny() -> None:
    app = gateway(DENY_HAIKU)
    for model in (
        HAIKU,
        f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws:bedrock:us-east-1:123456789012:foundation-model/{HAIKU}",
        f"arn:aws-cn:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws-x:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws-x:bedrock:eu-west-9::foundation-model/{HAIKU}",
        f"us.{HAIKU}",
        f"arn:aws-x:bedrock:us-east-1:999999999999:inference-profile/us.{HAIKU}",
    ):
        result = await signed_call(app, invoke_path(model), claude())
        assert code_of(result)[0] in (400, 403), (model, result.body)
        assert code_of(result) != (200, ""), model


def test_canonical_model_resources() -> None:
    canonical = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    for spelling in (
        f"arn:aws-cn:bedrock:us-east-1:123456789012:foundation-model/{HAIKU}",
        f"arn:aws-x:bedrock:eu-west-9::foundation-model/{HAIKU}",
    ):
        assert model_resources(spelling, "us-east-1", "123456789012", {}) == [canonical]
    assert model_resources(HAIKU, "cn-north-1", "1", {}) == [
        f"arn:aws-cn:bedrock:cn-north-1::foundation-model/{HAIKU}"
    ]


async def test_signing_for_another_region_does_not_escape_a_region_deny() -> None:
    deny_here = {
        "Effect": "Deny",
        "Action": "bedrock:InvokeModel",
        "Resource": "arn:aws:bedrock:us-east-1::foundation-model/*",
    }
    app = gateway(deny_here)
    for region in ("us-east-1", "us-west-2", "eu-central-1"):
        result = await signed_call(app, invoke_path(HAIKU), claude(), region=region)
        assert code_of(result) == (403, "AccessDeniedException"), region
    for region in ("not-a-region", "US-EAST-1", "us-east-1x", "*"):
        result = await signed_call(app, invoke_path(HAIKU), claude(), region=region)
        assert code_of(result) == (403, "InvalidSignatureException"), region


async def test_listed_regions_are_served_as_signed() -> None:
    deny_west = {
        "Effect": "Deny",
        "Action": "bedrock:InvokeModel",
        "Resource": "arn:aws:bedrock:us-west-2::foundation-model/*",
    }
    app = gateway(deny_west, regions=["us-east-1", "us-west-2"])
    assert (await signed_call(app, invoke_path(HAIKU), claude(), "us-east-1")).status == 200
    result = await signed_call(app, invoke_path(HAIKU), claude(), "us-west-2")
    assert code_of(result) == (403, "AccessDeniedException")


DENY_G1 = {
    "Effect": "Deny",
    "Action": "bedrock:ApplyGuardrail",
    "Resource": "arn:aws:bedrock:us-east-1:123456789012:guardrail/g1abc",
}


async def test_guardrail_arns_from_elsewhere_do_not_escape_a_deny() -> None:
    app = gateway(DENY_G1)
    body = json.dumps({"source": "INPUT", "content": [{"text": {"text": "hi"}}]}).encode()
    for identifier in (
        "g1abc",
        "arn:aws:bedrock:us-east-1:123456789012:guardrail/g1abc",
        "arn:aws:bedrock:us-east-1:999999999999:guardrail/g1abc",
        "arn:aws-cn:bedrock:cn-north-1:123456789012:guardrail/g1abc",
        "arn:aws-x:bedrock:us-east-1:123456789012:guardrail/g1abc",
    ):
        path = f"/guardrail/{quote(identifier, safe='')}/version/1/apply"
        result = await signed_call(app, path, body)
        assert code_of(result) == (403, "AccessDeniedException"), (identifier, result.body)
        # Invoking a model with that guardrail needs ApplyGuardrail on it too.
        headers = [
            ("X-Amzn-Bedrock-GuardrailIdentifier", identifier),
            ("X-Amzn-Bedrock-GuardrailVersion", "1"),
        ]
        result = await signed_call(app, invoke_path(HAIKU), claude(), headers=headers)
        assert code_of(result) == (403, "AccessDeniedException"), identifier


def test_unknown_guardrail_arns_are_canonical_too() -> None:
    expected = "arn:aws:bedrock:us-east-1:123456789012:guardrail/zz9"
    for identifier in ("zz9", "arn:aws-x:bedrock:eu-west-1:999999999999:guardrail/zz9"):
        assert guardrail_resource(identifier, "us-east-1", "123456789012") == expected


def converse_body(config_key: str, extra: str = "") -> bytes:
    text = (
        '{"messages":[{"role":"user","content":[{"text":"say secretword' + extra + '"}]}],'
        '"' + config_key + '":{"guardrailIdentifier":"g1abc","guardrailVersion":"1",'
        '"trace":"enabled"}}'
    )
    return text.encode()


async def test_escaped_guardrail_config_keys_are_seen_by_the_policy() -> None:
    app = gateway(DENY_G1)
    path = f"/model/{quote(HAIKU, safe='')}/converse"
    for key, extra in (
        ("guardrailConfig", ""),
        ("guardrail\\u0043onfig", ""),
        ("\\u0067uardrailConfig", ""),
        ("guardrailConfig", "\\ud800"),
        ("guardrail\\u0043onfig", "\\udfff"),
    ):
        result = await signed_call(app, path, converse_body(key, extra))
        assert code_of(result)[0] in (400, 403), (key, extra, result.body)
        assert b"secretword" not in result.body
