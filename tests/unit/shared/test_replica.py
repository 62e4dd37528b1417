"""Replica identity (`[server] replica_id`) in health, metrics, the access and invocation logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.access_log import AccessLog
from outcrop.shared.client import default_replica_id
from tests.asgi_driver import call
from tests.unit.test_security import PATH, claude


def build(tmp_log: str | None = None, **server: object) -> OutcropApp:
    sections: dict[str, object] = {"engines": {"default": {"type": "scripted"}}, "server": server}
    if tmp_log is not None:
        sections["invocation_log"] = {"destination": tmp_log}
    return OutcropApp(Settings.model_validate(sections), engines={"default": ScriptedEngine()})


async def test_a_named_replica_shows_in_health_metrics_and_logs(tmp_path: Path) -> None:
    log = f"{tmp_path}/invocations.jsonl"
    app = build(log, replica_id="replica-a")
    access = next(i for i in app.interceptors if isinstance(i, AccessLog))
    sink = io.StringIO()
    access._sink = lambda: sink
    try:
        assert (await call(app, "POST", PATH, claude())).status == 200
        health = json.loads((await call(app, "GET", "/_outcrop/health")).body)
        assert health["replica"] == "replica-a"
        assert health["shared"] == {"backend": "in-process"}
        metrics = (await call(app, "GET", "/metrics")).body.decode()
        assert 'outcrop_replica_info{replica="replica-a"} 1.0' in metrics
        assert " [replica-a] POST InvokeModel " in sink.getvalue()
        first = Path(log).read_text(encoding="utf-8").splitlines()[0]  # noqa: ASYNC240
        assert json.loads(first)["replicaId"] == "replica-a"
    finally:
        await app.close()


async def test_a_single_server_keeps_its_log_lines_and_defaults_to_hostname_pid() -> None:
    app = build()
    access = next(i for i in app.interceptors if isinstance(i, AccessLog))
    sink = io.StringIO()
    access._sink = lambda: sink
    try:
        assert app.replica_id == default_replica_id()
        assert (await call(app, "POST", PATH, claude())).status == 200
        assert "[" not in sink.getvalue() and " POST InvokeModel " in sink.getvalue()
    finally:
        await app.close()
