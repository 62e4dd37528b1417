"""Authentication, policies, quotas, faults, limits and their configuration, in process."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from outcrop.app import OutcropApp, load_settings
from outcrop.config import ConfigError, Settings
from outcrop.config.security import FaultRuleSettings
from outcrop.engines.base import EngineTimeout
from outcrop.engines.deadline import DeadlineEngine
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.gateway.faults import FaultRegistry, corrupt_crc, faulty_stream
from outcrop.gateway.policies import (
    PolicyError,
    action_for,
    evaluate,
    model_resources,
    parse_policy,
)
from outcrop.gateway.quotas import TokenBucket
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams
from tests.asgi_driver import Result, call

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"


def claude(text: str = "hello there", max_tokens: int = 20) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


def app(**sections: Any) -> OutcropApp:
    settings = Settings.model_validate({"engines": {"default": {"type": "scripted"}}, **sections})
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


def signed_headers(body: bytes, secret: str = SECRET, path: str = PATH) -> list[tuple[str, str]]:
    request = AWSRequest(
        method="POST",
        url=f"http://testserver{path}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", secret), "bedrock", "us-east-1")
    signer.add_auth(request)
    prepared = request.prepare()
    headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    return [*headers, ("host", urlsplit(prepared.url).netloc)]


def error(result: Result) -> tuple[int, str, str]:
    code = result.headers.get("x-amzn-errortype", "").split(":")[0]
    return result.status, code, json.loads(result.body).get("message", "")


VERIFY = {
    "auth": {
        "mode": "verify",
        "credentials": [
            {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET, "principal": "alice"}
        ],
        "api_keys": [{"key": "bedrock-api-key-example", "principal": "bot"}],
    },
    "principals": {"alice": {"policies": ["all"]}, "bot": {"policies": ["all"]}},
    "policies": {
        "all": {"Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}
    },
}


# -- authentication through the gateway ----------------------------------------------------------


async def test_open_mode_accepts_unsigned_and_any_signature_but_not_garbage() -> None:
    gateway = app()
    body = claude()
    assert (await call(gateway, "POST", PATH, body)).status == 200
    wrong = signed_headers(body, secret="anything")
    assert (await call(gateway, "POST", PATH, body, wrong)).status == 200
    bearer = [("Authorization", "Bearer whatever-token")]
    assert (await call(gateway, "POST", PATH, body, bearer)).status == 200
    garbage = [("Authorization", "AWS4-HMAC-SHA256 nonsense")]
    status, code, _ = error(await call(gateway, "POST", PATH, body, garbage))
    assert (status, code) == (403, "IncompleteSignatureException")


async def test_verify_mode_signatures_and_bearer_tokens() -> None:
    gateway = app(**VERIFY)
    body = claude()
    assert (await call(gateway, "POST", PATH, body, signed_headers(body))).status == 200
    status, code, _ = error(await call(gateway, "POST", PATH, body, signed_headers(body, "x")))
    assert (status, code) == (403, "InvalidSignatureException")
    status, code, message = error(await call(gateway, "POST", PATH, body))
    assert (status, code, message) == (
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    bearer = [("Authorization", "Bearer bedrock-api-key-example")]
    assert (await call(gateway, "POST", PATH, body, bearer, scheme="https")).status == 200
    status, code, message = error(await call(gateway, "POST", PATH, body, bearer))
    assert code == "UnrecognizedClientException" and "only over HTTPS" in message
    other = [("Authorization", "Bearer bedrock-api-key-other")]
    status, code, message = error(await call(gateway, "POST", PATH, body, other, scheme="https"))
    assert (code, message) == (
        "UnrecognizedClientException",
        "Authentication failed: Please make sure your API Key is valid.",
    )


async def test_verify_mode_refuses_the_wrong_service_scope() -> None:
    gateway = app(**VERIFY)
    body = claude()
    request = AWSRequest(method="POST", url=f"http://testserver{PATH}", data=body)
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET), "sagemaker", "us-east-1").add_auth(request)
    prepared = request.prepare()
    headers = [*prepared.headers.items(), ("host", "testserver")]
    status, code, message = error(await call(gateway, "POST", PATH, body, headers))
    assert (status, code, message) == (
        403,
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'bedrock'. ",
    )


# -- policies -------------------------------------------------------------------------------------


def test_policy_evaluation() -> None:
    policy = parse_policy(
        "p",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "bedrock:invoke*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "NotAction": "bedrock:InvokeModel",
                    "Resource": "arn:aws:bedrock:*::foundation-model/meta.*",
                },
            ],
        },
    )
    meta = "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-8b-instruct-v1:0"
    assert evaluate([policy], "bedrock:InvokeModel", [meta]).allowed
    denied = evaluate([policy], "bedrock:InvokeModelWithResponseStream", [meta])
    assert not denied.allowed and denied.explicit_deny and denied.resource == meta
    assert not evaluate([policy], "bedrock:CountTokens", [meta]).allowed
    assert not evaluate([], "bedrock:InvokeModel", [meta]).allowed


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"Statement": []}, "Statement"),
        ({"Statement": {"Effect": "Maybe", "Action": "*", "Resource": "*"}}, "Effect"),
        ({"Statement": {"Effect": "Allow", "Resource": "*"}}, "exactly one of Action"),
        ({"Statement": {"Effect": "Allow", "Action": "x", "Resource": "*"}}, "service:Action"),
        ({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "model"}}, "not an ARN"),
        (
            {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}},
            "Condition",
        ),
        ({"Version": "2020-01-01", "Statement": []}, "Version"),
        ({"Statment": []}, "unknown key"),
    ],
)
def test_policies_that_do_not_parse(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("p", document)
    assert fragment in str(info.value) and str(info.value).startswith("policies.p")


def test_actions_and_resources() -> None:
    assert action_for("bedrock-runtime", "Converse") == "bedrock:InvokeModel"
    assert action_for("bedrock-runtime", "ConverseStream") == (
        "bedrock:InvokeModelWithResponseStream"
    )
    assert action_for("bedrock-runtime", "CountTokens") == "bedrock:CountTokens"
    assert action_for("sagemaker-runtime", "InvokeEndpoint") == "sagemaker:InvokeEndpoint"
    assert model_resources("us." + HAIKU, "us-west-2", "111122223333", {}) == [
        f"arn:aws:bedrock:us-west-2:111122223333:inference-profile/us.{HAIKU}",
        f"arn:aws:bedrock:us-west-2::foundation-model/{HAIKU}",
    ]
    assert model_resources(HAIKU, "eu-west-1", "1", {}) == [
        f"arn:aws:bedrock:eu-west-1::foundation-model/{HAIKU}"
    ]


async def test_deny_reaches_the_client_before_the_model_runs() -> None:
    sections = dict(VERIFY)
    sections["policies"] = {
        "all": {
            "Statement": [
                {"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "bedrock:InvokeModel", "Resource": "*"},
            ]
        }
    }
    gateway = app(**sections)
    body = claude()
    status, code, message = error(await call(gateway, "POST", PATH, body, signed_headers(body)))
    assert (status, code) == (403, "AccessDeniedException")
    assert message.startswith("User: arn:aws:iam::123456789012:user/alice is not authorized")


async def test_applying_a_guardrail_needs_apply_guardrail_on_it() -> None:
    sections = dict(VERIFY)
    model_only = {"Effect": "Allow", "Action": "bedrock:InvokeModel*", "Resource": "*"}
    on_guardrail = {
        "Effect": "Allow",
        "Action": "bedrock:ApplyGuardrail",
        "Resource": "arn:aws:bedrock:us-east-1:123456789012:guardrail/allowed*",
    }
    sections["policies"] = {"all": {"Statement": [model_only, on_guardrail]}}
    gateway = app(**sections)
    body = claude()
    headers = signed_headers(body)

    def guarded(identifier: str) -> list[tuple[str, str]]:
        return [
            *headers,
            ("x-amzn-bedrock-guardrailidentifier", identifier),
            ("x-amzn-bedrock-guardrailversion", "DRAFT"),
        ]

    status, code, message = error(await call(gateway, "POST", PATH, body, guarded("other")))
    assert (status, code) == (403, "AccessDeniedException")
    assert message == (
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
        "bedrock:ApplyGuardrail on resource: "
        "arn:aws:bedrock:us-east-1:123456789012:guardrail/other because no identity-based "
        "policy allows the bedrock:ApplyGuardrail action"
    )
    # Allowed on that guardrail: authorization passes, and the unknown guardrail is reported.
    status, code, message = error(await call(gateway, "POST", PATH, body, guarded("allowed1")))
    assert (status, code) == (400, "ValidationException")
    assert "guardrail identifier or version" in message
    # Without a guardrail the model permission is enough.
    assert (await call(gateway, "POST", PATH, body, headers)).status == 200


# -- quotas ---------------------------------------------------------------------------------------


def test_token_bucket_refills_per_minute() -> None:
    bucket = TokenBucket(60, 60, 0.0)
    assert bucket.try_take(60, 0.0) and not bucket.try_take(1, 0.0)
    assert bucket.try_take(1, 1.0)  # one unit a second
    bucket.adjust(-30, 1.0)
    assert bucket.level == -30 and not bucket.try_take(1, 20.0)
    assert bucket.try_take(1, 32.0)


async def test_quotas_release_streams_and_count_requests() -> None:
    gateway = app(
        quotas=[
            {"model": HAIKU, "requests_per_minute": 3},
            {"model": HAIKU, "concurrent_streams": 1},
        ]
    )
    body = claude()
    stream = PATH.replace("/invoke", "/invoke-with-response-stream")
    assert (await call(gateway, "POST", stream, body)).status == 200
    assert (await call(gateway, "POST", stream, body)).status == 200  # released after the first
    assert (await call(gateway, "POST", PATH, body)).status == 200
    status, code, message = error(await call(gateway, "POST", PATH, body))
    assert (status, code, message) == (
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
    )


# -- faults ---------------------------------------------------------------------------------------


def test_fault_registry_times_probability_and_prompt() -> None:
    registry = FaultRegistry(random.Random(7))
    once = registry.add(FaultRuleSettings(action="cut", times=1, model="m"))
    assert registry.pick("Op", "m", "p", b"{}") is once
    assert registry.pick("Op", "m", "p", b"{}") is None
    half = registry.add(FaultRuleSettings(action="cut", probability=0.5, model="n"))
    fired = sum(registry.pick("Op", "n", "p", b"{}") is half for _ in range(400))
    assert 150 < fired < 250 and half.matched == 400
    prompt = registry.add(FaultRuleSettings(action="cut", prompt="secret", model="o"))
    assert registry.pick("Op", "o", "p", b'{"messages":[{"content":"no"}]}') is None
    assert registry.pick("Op", "o", "p", b'{"messages":[{"content":"a secret"}]}') is prompt
    with pytest.raises(ValueError, match="exists already"):
        registry.add(FaultRuleSettings(action="cut", id=once.id))
    with pytest.raises(ValueError, match="unknown error"):
        registry.add(FaultRuleSettings(action="error", error="Nope"))


async def _frames(n: int) -> AsyncGenerator[bytes, None]:
    for i in range(n):
        yield bytes([i]) * 20


async def test_faulty_stream_actions() -> None:
    async def run(**fields: Any) -> list[bytes]:
        return [f async for f in faulty_stream(FaultRuleSettings(**fields), _frames(5))]

    assert len(await run(action="cut", after_events=2)) == 2
    corrupted = await run(action="corrupt_crc", after_events=1)
    assert corrupted[1] == corrupt_crc(bytes([1]) * 20) and corrupted[2] == bytes([2]) * 20
    from outcrop.wire.errors import ThrottlingException

    with pytest.raises(ThrottlingException):
        await run(action="stream_error", error="throttlingException", after_events=3)


# -- limits and engine states ---------------------------------------------------------------------


def _request() -> GenerationRequest:
    return GenerationRequest((ChatMessage("user", "a b c d e f"),), SamplingParams(max_tokens=20))


async def test_deadline_engine_times_out_and_scripted_engine_loads() -> None:
    slow = DeadlineEngine(ScriptedEngine(ScriptedConfig(delay_ms=50)), timeout_s=0.08)
    with pytest.raises(EngineTimeout):
        async for _ in slow.generate(_request()):
            pass
    loading = ScriptedEngine(ScriptedConfig(load_ms=30))
    assert loading.health().state == "loading"
    await asyncio.wait_for(loading.start(), 1)
    assert loading.health().ready
    down = ScriptedEngine(ScriptedConfig(load_error="no upstream"))
    await down.start()
    assert down.health().state == "failed" and down.health().detail == "no upstream"


# -- configuration --------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "outcrop.toml"
    path.write_text(text)
    return load_settings(path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[auth]\nmode = "strict"\n', "line 2: auth.mode"),
        ("[auth]\nclock_skew = 5\n", "line 2: auth.clock_skew"),
        ('[auth]\nmode = "verify"\n', "needs at least one"),
        ('[[quotas]]\nmodel = "x"\n\n[[quotas]]\nrequests_per_minute = -1\n', "line 5: quotas.1"),
        ('[[faults]]\naction = "error"\n', "line 1: faults.0"),
        (
            '[policies.p]\nVersion = "2012-10-17"\n\n[[policies.p.Statement]]\nEffect = "Allow"\n'
            'Action = "bedrock:*"\nResource = "*"\nCondition = {}\n',
            "line 8: policies.p.Statement[0].Condition",
        ),
        ('[principals.alice]\npolicies = ["missing"]\n', "no policy named 'missing'"),
        ('[policies.p]\nfile = "nope.json"\n', "cannot read"),
    ],
)
def test_bad_configuration_names_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, '[engines.default]\ntype = "scripted"\n' + text)
    message = str(info.value)
    if fragment.startswith("line "):
        number, rest = fragment.split(": ", 1)
        shifted = f"line {int(number.split()[1]) + 2}: {rest}"
        assert shifted in message, message
    else:
        assert fragment in message, message


def test_policy_files_and_their_json_errors(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_text(
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    )
    settings = _load(tmp_path, '[policies.p]\nfile = "ok.json"\n')
    assert settings.policies["p"] == {
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    }
    (tmp_path / "bad.json").write_text('{\n  "Statement": [\n    {"Effect": "Allow",,}\n  ]\n}')
    with pytest.raises(ConfigError, match=r"bad.json line 3 column"):
        _load(tmp_path, '[policies.p]\nfile = "bad.json"\n')
