"""Redis stopped and restarted under a fleet: the documented behaviour (docs/deploy.md).

Quotas fail open (the default) while Redis is down and count again once it is back; fault
rules go on from each replica's last known copy; the admin API answers 503; health says so.
The restarted Redis ran without persistence, so it comes back empty: quotas start full again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.fleet.conftest import LLAMA, SONNET, admin, claude, client, fleet
from tests.support.redis_server import running_redis
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(600)

WAIT_S = 300.0


def call(server: ServerProcess, model: str = SONNET) -> str:
    body = claude(max_tokens=1) if model == SONNET else '{"prompt": "hi", "max_gen_len": 2}'
    try:
        client(server).invoke_model(modelId=model, body=body)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def shared_health(server: ServerProcess) -> dict[str, Any]:
    health: Any = server.health()[1]["shared"]
    return dict(health)


def test_redis_stopped_and_restarted(tmp_path: Path) -> None:
    with (
        running_redis() as redis,
        fleet(redis, tmp_path, replicas=2, rpm=2, on_failure="open") as (a, b),
    ):
        fault = {"model": "meta.llama3*", "action": "error", "times": 3}
        fault["error"] = "ValidationException"
        status, rule = admin(a, "POST", "/_outcrop/faults", fault)
        assert status == 201, rule
        assert call(b, LLAMA) == "ValidationException"  # b's copy: fired once
        assert [call(a), call(b), call(a)] == ["ok", "ok", "ThrottlingException"]

        redis.stop()
        # Quotas fail open: calls beyond the quota are admitted while Redis is down.
        assert [call(a), call(b), call(a)] == ["ok", "ok", "ok"]
        # Rules: b goes on from its last copy (fired once of three), counting alone.
        assert [call(b, LLAMA), call(b, LLAMA), call(b, LLAMA)] == [
            "ValidationException",
            "ValidationException",
            "ok",
        ]
        assert admin(a, "GET", "/_outcrop/faults")[0] == 503
        for server in (a, b):
            health = shared_health(server)
            assert health["up"] is False, health
            assert health["on_failure"]["quotas"] == "open"
            assert health["failures"].get("quotas", 0) > 0

        redis.start()
        deadline = time.monotonic() + WAIT_S
        while not all(shared_health(s)["up"] for s in (a, b)):
            assert time.monotonic() < deadline, "the replicas never saw Redis again"
            time.sleep(0.2)
        # Counting again, fleet-wide, from a full bucket (this Redis kept no data).
        assert [call(b), call(a), call(b)] == ["ok", "ok", "ThrottlingException"]
        assert admin(b, "GET", "/_outcrop/faults")[0] == 200
