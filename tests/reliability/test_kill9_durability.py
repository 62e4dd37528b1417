"""Guardrail writes acknowledged before a kill -9 are all there after a restart."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.server import running_server

pytestmark = pytest.mark.reliability

ROUNDS = 3
ACKNOWLEDGED_BEFORE_KILL = 5


def _bedrock(url: str) -> Any:
    return boto3.client(
        "bedrock",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def _writer(url: str, tag: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Create guardrails one after another until stopped or the server is gone."""
    client = _bedrock(url)
    for n in range(10_000):
        if stop.is_set():
            return
        try:
            created = client.create_guardrail(
                name=f"{tag}-{n}",
                blockedInputMessaging="no",
                blockedOutputsMessaging="no",
                wordPolicyConfig={"wordsConfig": [{"text": f"word{n}"}]},
            )
        except Exception:
            return  # the server was killed mid-request: this write was not acknowledged
        acknowledged.append(created["guardrailId"])


def test_acknowledged_guardrails_survive_kill_9(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        f'[engines.default]\ntype = "scripted"\n\n[guardrails]\nstate_dir = "{tmp_path}"\n'
    )
    acknowledged: list[str] = []
    for round_ in range(ROUNDS):
        with running_server(["--config", str(config)], ready_timeout=120) as server:
            stop = threading.Event()
            mine: list[str] = []
            writer = threading.Thread(
                target=_writer, args=(server.url, f"r{round_}", mine, stop), daemon=True
            )
            writer.start()
            while len(mine) < ACKNOWLEDGED_BEFORE_KILL and writer.is_alive():
                writer.join(0.05)
            os.kill(server.proc.pid, signal.SIGKILL)  # while writes are still being made
            server.proc.wait()
            stop.set()
            writer.join(30)
            acknowledged += mine
    with running_server(["--config", str(config)], ready_timeout=120) as server:
        listed = _bedrock(server.url).list_guardrails(maxResults=1000)["guardrails"]
    present = {g["id"] for g in listed}
    missing = [g for g in acknowledged if g not in present]
    leftovers = sorted(p.name for p in tmp_path.rglob(".guardrails-*"))
    print(
        f"\nkill -9: {ROUNDS} rounds, {len(acknowledged)} acknowledged CreateGuardrail calls, "
        f"{len(missing)} missing after restart, {len(present)} guardrails listed, "
        f"temporary files left: {len(leftovers)}"
    )
    assert not missing
    assert len(acknowledged) >= ROUNDS * ACKNOWLEDGED_BEFORE_KILL
