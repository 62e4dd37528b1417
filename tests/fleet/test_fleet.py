"""Three `outcrop serve` processes sharing one Redis act as one server for quotas and rules
(issue 15): boto3 and the JS SDK spread across the replicas."""

from __future__ import annotations

import json
import queue
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from redis import Redis

from tests.conformance.jsclient import run_js
from tests.fleet.conftest import HAIKU, LLAMA, SONNET, admin, claude, client, fleet
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(600)

VERDICT_TIMEOUT_S = 300.0


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    with fleet(redis_server, tmp_path_factory.mktemp("fleet")) as servers:
        yield servers


def test_every_replica_reports_its_identity_and_the_shared_backend(
    replicas: list[ServerProcess],
) -> None:
    bodies = [server.health()[1] for server in replicas]
    ids = {body["replica"] for body in bodies}
    assert len(ids) == 3
    for body in bodies:
        shared: Any = body["shared"]
        assert (shared["backend"], shared["up"]) == ("redis", True)


def test_a_concurrency_quota_of_5_admits_exactly_5_streams_fleet_wide(
    replicas: list[ServerProcess],
) -> None:
    attempts = 100
    clients = [client(server, pool=attempts) for server in replicas]
    start = threading.Barrier(attempts)
    release = threading.Event()
    verdicts: queue.Queue[str] = queue.Queue()

    def attempt(n: int) -> None:
        start.wait(VERDICT_TIMEOUT_S)
        try:
            response = clients[n % 3].invoke_model_with_response_stream(
                modelId=HAIKU, body=claude(max_tokens=4000)
            )
        except ClientError as exc:
            verdicts.put(exc.response["Error"]["Code"])
            return
        stream = response["body"]
        try:
            next(iter(stream))  # streaming: the slot is held until the stream is closed
            verdicts.put("admitted")
            release.wait(VERDICT_TIMEOUT_S)
        finally:
            stream.close()

    with ThreadPoolExecutor(attempts) as pool:
        futures = [pool.submit(attempt, n) for n in range(attempts)]
        try:
            got = [verdicts.get(timeout=VERDICT_TIMEOUT_S) for _ in range(attempts)]
        finally:
            release.set()
        for future in futures:
            future.result()
    assert got.count("admitted") == 5, got
    assert got.count("ServiceQuotaExceededException") == attempts - 5, got


def sonnet_bucket(replicas: list[ServerProcess], redis: Redis) -> tuple[float, int]:
    """The fleet's request bucket for SONNET as stored in Redis: (level, Redis's time in ms of
    the last admission), both written by the admission script (shared/quotas.py)."""
    args = list(replicas[0].proc.args)  # type: ignore[arg-type]
    config = tomllib.loads(Path(str(args[args.index("--config") + 1])).read_text())
    prefix = config["shared"]["key_prefix"]
    keys = [k for k in redis.scan_iter(match=f"{prefix}:quota:*:rate") if b"sonnet" in k]
    assert len(keys) == 1, keys
    level, at = redis.hmget(keys[0], ["r", "r_at"])
    assert level is not None and at is not None
    return float(level), int(at)


def test_a_60_rpm_quota_admits_60_fleet_wide(
    replicas: list[ServerProcess], redis_server: RedisServer
) -> None:
    """A 60 RPM quota is a bucket of 60 that refills one request a second (docs/limits.md).

    Sequential calls spread over the replicas drain it: 60 are admitted, plus the refill earned
    while they ran. Then 60 attempts at once behind a barrier, boto3 and JS over the three
    replicas: they admit exactly what the bucket held when the burst began plus the refill
    earned over the burst's span, minus what is left, with the span measured by Redis's clock
    (the time each admission was decided, kept in the bucket). The bucket starts the burst
    empty, so its refill is never clipped at 60 and the count is exact however slow the
    machine is."""
    redis = Redis.from_url(redis_server.url)
    boto_attempts, js_attempts = 45, 15
    clients = [client(server, pool=boto_attempts) for server in replicas]

    def boto(n: int) -> str:
        try:
            clients[n % 3].invoke_model(modelId=SONNET, body=claude(max_tokens=1))
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "admitted"

    def js(n: int) -> str:
        run = run_js(
            {
                "endpoint": replicas[n % 3].url,
                "operation": "InvokeModel",
                "modelId": SONNET,
                "body": {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                "maxAttempts": 1,
            },
            timeout=VERDICT_TIMEOUT_S,
        )
        return "admitted" if run.error is None else str(run.error["name"])

    assert boto(0) == "admitted"
    first_level, first_at = sonnet_bucket(replicas, redis)
    assert first_level == 59  # a fresh bucket of 60, one taken
    drained = 1
    while (verdict := boto(drained)) == "admitted":
        drained += 1
        assert drained < 10_000
    assert verdict == "ThrottlingException"
    held, began = sonnet_bucket(replicas, redis)
    assert 60 <= drained <= 60 + (began - first_at) / 1000 + 1, (drained, began - first_at)
    assert 0 <= held < 1  # the call after the last admission found less than one request

    start = threading.Barrier(boto_attempts + js_attempts)

    def together(attempt: Callable[[int], str], n: int) -> str:
        start.wait(VERDICT_TIMEOUT_S)
        return attempt(n)

    with ThreadPoolExecutor(boto_attempts + js_attempts) as pool:
        futures = [pool.submit(together, js, n) for n in range(js_attempts)]
        futures += [pool.submit(together, boto, n) for n in range(boto_attempts)]
        got = [f.result() for f in futures]
    left, ended = sonnet_bucket(replicas, redis)
    redis.close()
    admitted = got.count("admitted")
    assert set(got) <= {"admitted", "ThrottlingException"}, got
    earned = (ended - began) / 1000  # one request a second, over Redis's span of the burst
    assert held + earned < 60  # never back at the cap: no refill was clipped
    assert admitted == round(held + earned - left), (admitted, held, earned, left)
    # Separately the three replicas would have admitted every one of the 60.
    assert admitted < boto_attempts + js_attempts or earned >= 59


def test_a_fault_injected_through_a_fires_once_on_c(replicas: list[ServerProcess]) -> None:
    a, b, c = replicas
    status, rule = admin(
        a,
        "POST",
        "/_outcrop/faults",
        {"model": "meta.llama3*", "action": "error", "error": "ModelNotReadyException", "times": 1},
    )
    assert status == 201, rule
    command = {
        "endpoint": c.url,
        "operation": "InvokeModel",
        "modelId": LLAMA,
        "body": {"prompt": "hello", "max_gen_len": 5},
        "maxAttempts": 1,
    }
    first = run_js(command)
    assert first.error is not None and first.error["name"] == "ModelNotReadyException", first.lines
    assert run_js(command).error is None
    body = client(b).invoke_model(modelId=LLAMA, body='{"prompt": "hello", "max_gen_len": 5}')
    assert body["ResponseMetadata"]["HTTPStatusCode"] == 200
    status, found = admin(b, "GET", f"/_outcrop/faults/rule?id={rule['id']}")
    assert status == 200
    assert (found["fired"], found["remaining"]) == (1, 0)
    assert admin(c, "DELETE", f"/_outcrop/faults/rule?id={rule['id']}")[0] == 200


def test_killing_a_replica_mid_stream_releases_its_slots(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with fleet(redis_server, tmp_path, replicas=2, streams=1, lease_s=2) as (a, b):
        held = client(b).invoke_model_with_response_stream(
            modelId=HAIKU, body=claude(max_tokens=4000)
        )
        stream = held["body"]
        next(iter(stream))
        with pytest.raises(ClientError) as refused:
            client(a).invoke_model_with_response_stream(modelId=HAIKU, body=claude())
        assert refused.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
        b.proc.kill()
        b.proc.wait(30)
        stream.close()
        # B never released its slot; its lease lapses (2 s here) and A admits a stream again.
        deadline = time.monotonic() + VERDICT_TIMEOUT_S
        while True:
            try:
                again = client(a).invoke_model_with_response_stream(
                    modelId=HAIKU, body=claude(max_tokens=2)
                )
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ServiceQuotaExceededException"
                assert time.monotonic() < deadline, "the dead replica's slot never lapsed"
                time.sleep(0.2)
                continue
            assert [e for e in again["body"]]
            break


def test_a_sagemaker_session_opened_on_a_routes_on_b_and_closes_on_c(
    replicas: list[ServerProcess],
) -> None:
    a, b, c = replicas
    sm = [
        boto3.client(
            "sagemaker-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        for server in (a, b, c)
    ]
    opened = sm[0].invoke_endpoint(
        EndpointName="fleet-sessions",
        Body=json.dumps({"requestType": "NEW_SESSION"}),
        ContentType="application/json",
        SessionId="NEW_SESSION",
    )
    session_id = opened["NewSessionId"].split(";")[0]
    answered = sm[1].invoke_endpoint(
        EndpointName="fleet-sessions",
        Body=json.dumps({"inputs": "hello"}),
        ContentType="application/json",
        SessionId=session_id,
    )
    assert answered["ResponseMetadata"]["HTTPStatusCode"] == 200
    closed = sm[2].invoke_endpoint(
        EndpointName="fleet-sessions",
        Body=json.dumps({"requestType": "CLOSE"}),
        ContentType="application/json",
        SessionId=session_id,
    )
    assert closed["ClosedSessionId"] == session_id
    with pytest.raises(ClientError) as refused:
        sm[0].invoke_endpoint(
            EndpointName="fleet-sessions",
            Body=json.dumps({"inputs": "again"}),
            ContentType="application/json",
            SessionId=session_id,
        )
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert session_id in refused.value.response["Error"]["Message"]
