"""Past `max_requests_in_flight` a request is refused at once with 503 ServiceUnavailable
(retried by the SDKs) instead of waiting; health still answers; capacity comes back when the
requests in flight end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.reliability.clients import (
    FAST_MODEL,
    SLOW_MODEL,
    H2Client,
    claude_body,
    health_answers,
    stream_path,
    until,
)
from tests.reliability.conftest import serve_with
from tests.support.server import ServerProcess, running_server

pytestmark = pytest.mark.reliability

CAP = 8


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = serve_with(
        tmp_path_factory.mktemp("capped") / "outcrop.toml",
        cap=CAP,
    )
    with running_server(["--config", config], ready_timeout=120) as server:
        yield server


def _invoke(url: str) -> str:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    try:
        client.invoke_model(modelId=FAST_MODEL, body=claude_body("one more"))
    except client.exceptions.ServiceUnavailableException:
        return "ServiceUnavailableException"
    return "ok"


async def test_requests_past_the_cap_are_refused_at_once(capped_server: ServerProcess) -> None:
    url = capped_server.url
    h2 = await H2Client.open("127.0.0.1", capped_server.port)
    try:
        body = claude_body("hold a slot")
        ids = [await h2.request("POST", stream_path(SLOW_MODEL), body) for _ in range(CAP)]
        await until(lambda: all(h2.responses[i].data for i in ids), 60)
        refused = await asyncio.to_thread(_invoke, url)
        healthy = await asyncio.to_thread(health_answers, url, 5.0)
    finally:
        await h2.close()
    deadline = time.monotonic() + 60
    after = refused
    while after != "ok" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        after = await asyncio.to_thread(_invoke, url)
    print(
        f"\nin-flight cap {CAP}: with {CAP} streams in flight another call got {refused}; "
        f"health answered: {healthy}; once they ended: {after}"
    )
    assert refused == "ServiceUnavailableException"
    assert healthy
    assert after == "ok"
