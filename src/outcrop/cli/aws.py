"""The AWS SDK as the client commands use it: sessions, clients, and errors as one line.

`invoke`, `models` and `bench` talk to Outcrop or to real AWS the standard way: the usual
credential chain (environment, profile, SSO, instance role), `--profile`, `--region`, and
`--endpoint-url` (or `AWS_ENDPOINT_URL`, which botocore reads itself). Failures become one line
naming the AWS error code and its message, never a traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    import boto3

DEFAULT_REGION = "us-east-1"
"""Used when no region is configured but an endpoint URL is (a local server ignores it)."""
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")


class CommandError(Exception):
    """A failure to report as one line on standard error, with an exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, code: int) -> NoReturn:
    """End the command: `outcrop: message` on stderr, exit status `code`."""
    typer.echo(f"outcrop: {message}", err=True)
    raise typer.Exit(code)


def session(profile: str | None, region: str | None) -> boto3.session.Session:
    import boto3  # imported on use: `outcrop serve` does not need it

    try:
        return boto3.session.Session(profile_name=profile, region_name=region)
    except BotoCoreError as exc:
        raise CommandError(str(exc)) from None


def resolve_region(
    sess: boto3.session.Session, region: str | None, endpoint_url: str | None
) -> str:
    """The region to sign for: the flag, the profile's, or us-east-1 beside an endpoint URL."""
    chosen = region or sess.region_name
    if chosen:
        return str(chosen)
    if endpoint_url or _env_endpoint():
        return DEFAULT_REGION
    raise CommandError("You must specify a region (--region, AWS_REGION or the profile's region).")


def runtime_client(
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    *,
    max_attempts: int = 3,
    read_timeout: float = 300.0,
) -> Any:
    """A bedrock-runtime client from the standard credential chain."""
    sess = session(profile, region)
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        read_timeout=read_timeout,
        connect_timeout=10,
        user_agent_extra="outcrop-cli",
    )
    try:
        return sess.client(
            "bedrock-runtime",
            region_name=resolve_region(sess, region, endpoint_url),
            endpoint_url=endpoint_url,
            config=config,
        )
    except BotoCoreError as exc:  # NoRegionError among them
        raise CommandError(str(exc)) from None


def describe(exc: BaseException) -> str:
    """One line for an SDK failure: `Code: message` for AWS errors, the SDK's text otherwise."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "UnknownError"
        message = error.get("Message") or str(exc)
        return _one_line(f"{code}: {message}")
    return _one_line(str(exc) or type(exc).__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _env_endpoint() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)
