"""Fleets of `outcrop serve` processes sharing one throwaway Redis (tests/support/)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.redis_server import RedisServer, redis_server
from tests.support.server import ServerProcess, running_server

__all__ = ["redis_server"]

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
"""Served by the slow engine: streams that last until the client lets go."""
SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"

FLEET_TOML = """
[engines.default]
type = "scripted"

[engines.slow]
type = "scripted"
delay_ms = 50
token_count = 100000

[[models]]
match = "anthropic.claude-3-haiku*"
engine = "slow"

[[models]]
match = "*"
engine = "default"

[shared]
url = "{url}"
key_prefix = "{prefix}"
lease_s = {lease_s}
retry_after_s = 0.2
# Generous bounds (the test machine is loaded), and a failure shows up instead of admitting.
socket_timeout_s = 20
connect_timeout_s = 20
quotas_on_failure = "{on_failure}"

[[quotas]]
model = "anthropic.claude-3-haiku*"
concurrent_streams = {streams}

[[quotas]]
model = "anthropic.claude-3-sonnet*"
requests_per_minute = {rpm}
"""


@contextmanager
def fleet(
    redis: RedisServer,
    tmp: Path,
    replicas: int = 3,
    *,
    streams: int = 5,
    rpm: int = 60,
    lease_s: float = 15,
    on_failure: str = "closed",
) -> Iterator[list[ServerProcess]]:
    """`replicas` servers on one Redis under a fresh key prefix (replica ids: hostname-pid)."""
    config = tmp / f"fleet-{uuid.uuid4().hex[:8]}.toml"
    prefix = f"fleet{uuid.uuid4().hex[:10]}"
    text = FLEET_TOML.format(
        url=redis.url,
        prefix=prefix,
        lease_s=lease_s,
        streams=streams,
        rpm=rpm,
        on_failure=on_failure,
    )
    config.write_text(text)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(["--config", str(config), "--quiet"]))
            for _ in range(replicas)
        ]
        yield servers


def client(server: ServerProcess, pool: int = 10) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=pool,
            read_timeout=300,
        ),
    )


def claude(max_tokens: int = 5, text: str = "hello") -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
    )


def admin(server: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call an admin route; (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
