"""Three `outcrop serve` replicas sharing one PostgreSQL, driven with boto3 and the JS v3 SDK
(issue 15).

A guardrail created through replica A and versioned through B applies on C, a DRAFT changed
through A applies on C's next call, all of it survives restarting the three; two replicas
versioning one guardrail at once hand out distinct, gap-free numbers; with PostgreSQL stopped
the control plane answers InternalServerException, guarded calls go on with the guardrails as
last read, health reports the store down, and once it is back nothing acknowledged is missing.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conformance.jsclient import run_js
from tests.support.postgres_server import PostgresServer
from tests.support.server import ServerProcess, running_server

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"  # the scripted engine echoes the prompt
BLOCKED = "Blocked by the fleet guardrail."
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120)


def spec(name: str, word: str) -> dict[str, Any]:
    return {
        "name": name,
        "blockedInputMessaging": BLOCKED,
        "blockedOutputsMessaging": BLOCKED,
        "wordPolicyConfig": {"wordsConfig": [{"text": word}]},
    }


def write_config(path: Path, url: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config = path / "outcrop.toml"
    config.write_text(
        "\n".join(
            [
                "[engines.default]",
                'type = "scripted"',
                "[guardrails]",
                f"state_dir = {json.dumps(str(path / 'state'))}",
                "[state]",
                f"url = {json.dumps(url)}",
                "pool_timeout_s = 2",
                "connect_timeout_s = 2",
                "operation_timeout_s = 5",
                "",
            ]
        )
    )
    return config


@contextmanager
def replicas(tmp: Path, url: str, count: int = 3) -> Iterator[list[ServerProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(running_server(["--config", str(write_config(tmp / f"r{i}", url))]))
            for i in range(count)
        ]


def control(server: ServerProcess, config: Config | None = None) -> Any:
    return boto3.client("bedrock", endpoint_url=server.url, region_name="us-east-1", config=config)


def runtime(server: ServerProcess) -> Any:
    return boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1")


def metrics(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        return str(response.read().decode())


def intervened(server: ServerProcess, text: str, gid: str, version: str) -> bool:
    answer = runtime(server).converse(
        modelId=MODEL,
        messages=[{"role": "user", "content": [{"text": text}]}],
        guardrailConfig={"guardrailIdentifier": gid, "guardrailVersion": version},
    )
    if answer["stopReason"] == "guardrail_intervened":
        assert answer["output"]["message"]["content"][0]["text"] == BLOCKED
        return True
    return False


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    return postgres.create_database(f"fleet_{uuid.uuid4().hex}")


def test_created_on_a_versioned_on_b_applied_on_c_and_kept(tmp_path: Path, database: str) -> None:
    with replicas(tmp_path, database) as (a, b, c):
        gid = control(a).create_guardrail(**spec("fleet", "pineapple"))["guardrailId"]
        assert control(b).create_guardrail_version(guardrailIdentifier=gid)["version"] == "1"
        assert intervened(c, "I like pineapple", gid, "1")
        assert not intervened(c, "I like mango", gid, "1")
        # A DRAFT changed through A applies on C's next call; version 1 does not change.
        control(a).update_guardrail(guardrailIdentifier=gid, **spec("fleet", "mango"))
        assert intervened(c, "I like mango", gid, "DRAFT")
        assert not intervened(c, "I like pineapple", gid, "DRAFT")
        assert intervened(c, "I like pineapple", gid, "1")
        assert control(c).get_guardrail(guardrailIdentifier=gid)["version"] == "DRAFT"
        # Deleted through B: gone on C at once.
        other = control(b).create_guardrail(**spec("short-lived", "kiwi"))["guardrailId"]
        assert intervened(c, "kiwi", other, "DRAFT")
        control(b).delete_guardrail(guardrailIdentifier=other)
        with pytest.raises(ClientError) as gone:
            intervened(c, "kiwi", other, "DRAFT")
        assert gone.value.response["Error"]["Code"] == "ValidationException"

    with replicas(tmp_path, database) as (a, b, c):
        for server in (a, b, c):
            assert intervened(server, "I like pineapple", gid, "1")
            assert intervened(server, "I like mango", gid, "DRAFT")
        listed = control(b).list_guardrails(guardrailIdentifier=gid)["guardrails"]
        assert [g["version"] for g in listed] == ["DRAFT", "1"]


def test_concurrent_versions_on_two_replicas_are_distinct(tmp_path: Path, database: str) -> None:
    per_replica = 8
    with replicas(tmp_path, database, count=2) as (a, b):
        gid = control(a).create_guardrail(**spec("numbered", "x"))["guardrailId"]
        clients = [control(a), control(b)] * per_replica
        with ThreadPoolExecutor(len(clients)) as pool:
            numbers = list(
                pool.map(
                    lambda client: client.create_guardrail_version(guardrailIdentifier=gid)[
                        "version"
                    ],
                    clients,
                )
            )
        assert sorted(int(n) for n in numbers) == list(range(1, 2 * per_replica + 1))
        listed = control(b).list_guardrails(guardrailIdentifier=gid)["guardrails"]
        assert len(listed) == 2 * per_replica + 1


def test_postgresql_stopped_and_restarted(tmp_path: Path, postgres_alone: PostgresServer) -> None:
    url = postgres_alone.url()
    with replicas(tmp_path, url, count=2) as (a, c):
        acknowledged = [control(a).create_guardrail(**spec("kept", "pineapple"))["guardrailId"]]
        assert intervened(c, "pineapple", acknowledged[0], "DRAFT")
        postgres_alone.stop()
        try:
            with pytest.raises(ClientError) as down:
                control(a, NO_RETRIES).create_guardrail(**spec("lost", "mango"))
            error = down.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert error["Error"]["Code"] == "InternalServerException"
            assert "state store is unavailable" in error["Error"]["Message"]
            with pytest.raises(ClientError) as read:
                control(c, NO_RETRIES).get_guardrail(guardrailIdentifier=acknowledged[0])
            assert read.value.response["Error"]["Code"] == "InternalServerException"
            # Inference goes on with the guardrails as last read.
            assert intervened(c, "pineapple", acknowledged[0], "DRAFT")
            status, health = c.health()
            assert status == 200
            state = health["state"]
            assert isinstance(state, dict)
            assert state["backend"] == "postgresql" and state["ok"] is False and state["detail"]
            assert 'outcrop_state_up{backend="postgresql"} 0.0' in metrics(c)
        finally:
            postgres_alone.start()
        # Back: the pools reconnect by themselves; writes succeed again.
        acknowledged.append(control(a).create_guardrail(**spec("after", "mango"))["guardrailId"])
        back = a.health()[1]["state"]
        assert isinstance(back, dict) and back["ok"] is True
        assert 'outcrop_state_up{backend="postgresql"} 1.0' in metrics(a)
        assert re.search(r'outcrop_state_errors_total\{backend="postgresql"\} [1-9]', metrics(a))
        names = {g["id"]: g["name"] for g in control(c).list_guardrails()["guardrails"]}
        assert set(acknowledged) <= set(names)
        assert "lost" not in names.values()
        assert intervened(c, "mango", acknowledged[1], "DRAFT")


@pytest.mark.node
def test_the_js_sdk_versions_on_b_and_is_guarded_on_c(tmp_path: Path, database: str) -> None:
    """The same flow with clients spread over two SDKs: boto3 creates through A, the JS v3
    SDK versions through B and converses through C."""
    with replicas(tmp_path, database) as (a, b, c):
        gid = control(a).create_guardrail(**spec("js-fleet", "pineapple"))["guardrailId"]
        versioned = run_js(
            {
                "endpoint": b.url,
                "service": "bedrock",
                "operation": "CreateGuardrailVersion",
                "input": {"guardrailIdentifier": gid, "description": "from node"},
            }
        ).ok()
        assert versioned["output"]["version"] == "1"
        conversed = run_js(
            {
                "endpoint": c.url,
                "operation": "Converse",
                "modelId": MODEL,
                "input": {
                    "messages": [{"role": "user", "content": [{"text": "pineapple pie"}]}],
                    "guardrailConfig": {"guardrailIdentifier": gid, "guardrailVersion": "1"},
                },
            }
        ).ok()
        assert conversed["output"]["stopReason"] == "guardrail_intervened"
        assert conversed["output"]["output"]["message"]["content"][0]["text"] == BLOCKED
        got = control(a).get_guardrail(guardrailIdentifier=gid, guardrailVersion="1")
        assert got["description"] == "from node"
