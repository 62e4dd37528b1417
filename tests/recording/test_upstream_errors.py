"""Record mode when the upstream cannot be used: no credentials in the chain (403
AccessDeniedException saying so) and an unreachable upstream (503, Bedrock's
ServiceUnavailableException or SageMaker's ServiceUnavailable); nothing is recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import free_port, running_server

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDCLIENT",
        aws_secret_access_key="client-secret",
        config=Config(retries={"max_attempts": 1}),
    )


def no_credentials(tmp: Path) -> dict[str, str]:
    """An environment where botocore's chain finds nothing (`AWS_PROFILE` empty: the profile
    "" does not exist, so the chain fails as with a profile name mistyped)."""
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_PROFILE": "",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "",
    }


def converse(url: str) -> ClientError:
    with pytest.raises(ClientError) as failed:
        client("bedrock-runtime", url).converse(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}]
        )
    return failed.value


def test_no_credentials_in_the_chain(tmp_path: Path) -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    args = ["--engine", "scripted", "--record", str(tmp_path / "c")]
    with running_server([*args, "--record-upstream", upstream], env=no_credentials(tmp_path)) as a:
        error = converse(a.url).response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert "could not load AWS credentials" in error["Error"]["Message"]
    assert not list((tmp_path / "c").glob("*.json"))


def test_unreachable_upstream(tmp_path: Path) -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    profile = tmp_path / "credentials"
    profile.write_text("[a]\naws_access_key_id = AKIDA\naws_secret_access_key = a\n")
    env = {**no_credentials(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(profile)}
    env["AWS_PROFILE"] = "a"
    args = ["--engine", "scripted", "--record", str(tmp_path / "c")]
    with running_server([*args, "--record-upstream", upstream], env=env) as a:
        error = converse(a.url).response
        with pytest.raises(ClientError) as sagemaker:
            client("sagemaker-runtime", a.url).invoke_endpoint(
                EndpointName="e", Body=json.dumps({"inputs": "hi"}), ContentType="application/json"
            )
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error["Error"]["Code"] == "ServiceUnavailableException"
    assert "the upstream failed" in error["Error"]["Message"]
    assert sagemaker.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert not list((tmp_path / "c").glob("*.json"))
