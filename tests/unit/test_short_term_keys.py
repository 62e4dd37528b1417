"""Short-term Bedrock API keys, made by AWS's `aws-bedrock-token-generator`: verified as the
presigned SigV4 URLs they are (verify mode), read for their principal (open mode)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, cast

import botocore.auth
import pytest
from aws_bedrock_token_generator import BedrockTokenGenerator
from aws_bedrock_token_generator.token_generator import _generate_token
from botocore.credentials import Credentials

from tests.asgi_driver import call
from tests.unit.test_security import PATH, SECRET, VERIFY, app, claude, error

INVALID = (
    403,
    "UnrecognizedClientException",
    "Authentication failed: Please make sure your API Key is valid.",
)


def token(secret: str = SECRET, key: str = "AKIDEXAMPLE", region: str = "us-east-1") -> str:
    return cast(str, BedrockTokenGenerator().get_token(Credentials(key, secret), region))


def bearer(value: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {value}")]


async def invoke(gateway: Any, value: str) -> Any:
    return await call(gateway, "POST", PATH, claude(), bearer(value), scheme="https")


async def test_verify_mode_checks_the_presigned_url_inside() -> None:
    gateway = app(**VERIFY)
    assert (await invoke(gateway, token())).status == 200
    assert error(await invoke(gateway, token(secret="wrong"))) == INVALID
    assert error(await invoke(gateway, token(key="AKIDUNKNOWN"))) == INVALID
    # Tampering with the signed query (the region in its scope) breaks the signature.
    decoded = base64.b64decode(token().removeprefix("bedrock-api-key-")).decode()
    moved = decoded.replace("us-east-1", "us-west-2")
    forged = "bedrock-api-key-" + base64.b64encode(moved.encode()).decode()
    assert error(await invoke(gateway, forged)) == INVALID
    for garbage in ("bedrock-api-key-!!!", "bedrock-api-key-" + base64.b64encode(b"x/?y").decode()):
        assert error(await invoke(gateway, garbage)) == INVALID


async def test_expired_and_overlong_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = app(**VERIFY)
    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: real() - dt.timedelta(hours=13)
    )
    old = token()  # valid for 12 hours from 13 hours ago
    monkeypatch.setattr(botocore.auth, "get_current_datetime", real)
    assert error(await invoke(gateway, old)) == INVALID
    day_long = _generate_token(Credentials("AKIDEXAMPLE", SECRET), "us-east-1", 24 * 3600)
    assert error(await invoke(gateway, day_long)) == INVALID
    short = _generate_token(Credentials("AKIDEXAMPLE", SECRET), "us-east-1", 900)
    assert (await invoke(gateway, short)).status == 200


async def test_open_mode_takes_the_principal_from_the_key() -> None:
    sections = {
        "auth": {
            "credentials": [
                {"access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET, "principal": "alice"}
            ]
        },
        "principals": {"alice": {"policies": ["none"]}},
        "policies": {
            "none": {"Statement": [{"Effect": "Deny", "Action": "bedrock:*", "Resource": "*"}]}
        },
    }
    gateway = app(**sections)
    status, code, message = error(await invoke(gateway, token(secret="anything")))
    assert (status, code) == (403, "AccessDeniedException") and "user/alice" in message
    assert (await invoke(gateway, "some-long-term-key")).status == 200
