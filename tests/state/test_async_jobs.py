"""InvokeEndpointAsync jobs in the state store: accepted jobs are durable before the 202, a job
whose replica was killed is run by the next start, leases pass between replicas one at a time,
and a store that does not answer refuses the call with SageMaker's ServiceUnavailable."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import boto3
import pytest

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.sagemaker.async_jobs import KIND, AsyncJob, AsyncJobs
from outcrop.state.sqlite import SQLiteStore
from outcrop.state.store import StateUnavailable, Write
from tests.asgi_driver import call
from tests.state.conftest import BACKENDS, store_for
from tests.support.server import running_server

each_backend = pytest.mark.parametrize("state_url", BACKENDS, indirect=True)


def job(job_id: str) -> AsyncJob:
    return AsyncJob(
        job_id,
        "chat",
        {"EndpointName": "chat", "InvocationTimeoutSeconds": "60"},
        (("content-type", "application/json"),),
        b'{"inputs": "\\u00e9 bytes \\u0000"}',
        None,
        60.0,
        "s3://b/chat/output/x.out",
        "s3://b/chat/failures/x-error.out",
    )


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@each_backend
async def test_leases_pass_between_replicas_one_at_a_time(state_url: str) -> None:
    clock = Clock()
    a = AsyncJobs(store_for(state_url), lease_s=30, clock=clock)
    b = AsyncJobs(store_for(state_url), lease_s=30, clock=clock)
    c = AsyncJobs(store_for(state_url), lease_s=30, clock=clock)
    await a.accept(job("j1"))
    assert await b.take_over() == []  # A's lease holds
    clock.now += 20
    assert await a.renew() == []
    clock.now += 20  # past the first lease, within the renewed one
    assert await b.take_over() == []
    clock.now += 31  # A stopped renewing (killed)
    taken_b, taken_c = await b.take_over(), await c.take_over()
    assert [j.job_id for j in taken_b + taken_c] == ["j1"]
    assert taken_b == [job("j1")] or taken_c == [job("j1")]  # the body and all, intact
    assert await a.renew() == ["j1"]  # A learns it lost the job
    winner = b if taken_b else c
    await winner.finished("j1")
    assert await a.documents.list(KIND) == []
    # A clean shutdown gives jobs up at once.
    await a.accept(job("j2"))
    await a.release()
    assert [j.job_id for j in await b.take_over()] == ["j2"]
    for jobs in (a, b, c):
        await jobs.documents.close()


class DownStore(SQLiteStore):
    async def commit(self, writes: Sequence[Write]) -> dict[tuple[str, str], int]:
        self.health.failed("down")
        raise StateUnavailable("down")


async def test_async_call_refused_while_the_store_is_down() -> None:
    settings = Settings.model_validate({"engines": {"default": {"type": "scripted"}}})
    app = OutcropApp(settings, engines={"default": ScriptedEngine()})
    app.sagemaker.jobs = AsyncJobs(DownStore(None))
    result = await call(
        app,
        "POST",
        "/endpoints/chat/async-invocations",
        json.dumps({"inputs": "hi"}).encode(),
        [("content-type", "application/json"), ("x-amzn-sagemaker-inferenceid", "nope")],
    )
    assert result.status == 503, result.body
    assert result.headers["x-amzn-errortype"].startswith("ServiceUnavailable")
    assert b"state store is unavailable" in result.body
    assert app.sagemaker._async_tasks == set()  # not run either
    await app.close()


def test_a_job_accepted_by_a_killed_server_is_run_by_the_next(tmp_path: Path) -> None:
    s3 = tmp_path / "s3"
    config = tmp_path / "outcrop.toml"
    config.write_text(
        "\n".join(
            [
                "[engines.default]",
                'type = "scripted"',
                'text = "one two three four five six seven eight nine ten"',
                "delay_ms = 400",
                "[guardrails]",
                f"state_dir = {json.dumps(str(tmp_path / 'state'))}",
                "[state]",
                "job_lease_s = 1",
                "[sagemaker]",
                f"async_local_root = {json.dumps(str(s3))}",
                "",
            ]
        )
    )
    output = s3 / "outcrop-sagemaker-async" / "chat" / "output" / "survivor.out"
    with running_server(["--config", str(config)]) as first:
        sm = boto3.client("sagemaker-runtime", endpoint_url=first.url, region_name="us-east-1")
        accepted = sm.invoke_endpoint_async(
            EndpointName="chat",
            Body=json.dumps({"inputs": "hello"}),
            ContentType="application/json",
            InferenceId="survivor",
        )
        assert accepted["ResponseMetadata"]["HTTPStatusCode"] == 202
        os.kill(first.proc.pid, signal.SIGKILL)  # the answer takes 4 s; it never came
        first.proc.wait()
    assert not output.exists()
    with running_server(["--config", str(config)]):
        deadline = time.monotonic() + 120
        while not output.exists():
            assert time.monotonic() < deadline, "the job was not run again"
            time.sleep(0.1)
        answer = json.loads(output.read_bytes())
        assert answer[0]["generated_text"].endswith("nine ten")
