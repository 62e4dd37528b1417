"""Three `outcrop serve` processes sharing one Redis act as one server for quotas and rules
(issue 15): boto3 and the JS SDK spread across the replicas."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

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


def test_a_60_rpm_quota_admits_60_fleet_wide(replicas: list[ServerProcess]) -> None:
    """boto3 and JS calls spread over the three replicas. The bucket refills one request a
    second, so beyond the 60 it holds, at most one more per second of the burst is admitted."""
    boto_attempts, js_attempts = 75, 15
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

    began = time.monotonic()
    with ThreadPoolExecutor(boto_attempts + js_attempts) as pool:
        futures = [pool.submit(js, n) for n in range(js_attempts)]
        futures += [pool.submit(boto, n) for n in range(boto_attempts)]
        got = [f.result() for f in futures]
    burst_s = time.monotonic() - began
    admitted = got.count("admitted")
    assert set(got) <= {"admitted", "ThrottlingException"}, got
    assert 60 <= admitted <= 60 + int(burst_s) + 1, (admitted, burst_s)
    assert got.count("ThrottlingException") == len(got) - admitted
    # Separately the three replicas would have admitted every one of the 90.
    assert admitted < boto_attempts + js_attempts


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
