"""An app whose state store never answers: the control plane answers InternalServerException,
guardrails from the configuration file still apply, a guardrail the replica never read is a
ServiceUnavailableException, and health reports the store down (still 200)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.state.sqlite import SQLiteStore
from outcrop.state.store import StateUnavailable
from tests.asgi_driver import call

T = TypeVar("T")
JSON = [("content-type", "application/json")]
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"  # the scripted engine echoes the prompt
CONFIGURED = {
    "id": "configured01",
    "name": "from-the-file",
    "blockedInputMessaging": "Blocked by the file.",
    "blockedOutputsMessaging": "Blocked by the file.",
    "wordPolicyConfig": {"wordsConfig": [{"text": "pineapple"}]},
}


class Down(SQLiteStore):
    """Every operation fails, as with PostgreSQL stopped."""

    async def _run(self, work: Callable[..., T]) -> T:
        self.health.failed("PostgreSQL: connection refused")
        raise StateUnavailable("PostgreSQL: connection refused")

    async def ping(self) -> None:
        await self._run(lambda c: None)


def down_app(tmp_path: Path) -> OutcropApp:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "guardrails": {"state_dir": str(tmp_path), "define": [CONFIGURED]},
        }
    )
    app = OutcropApp(settings, engines={"default": ScriptedEngine()})
    app.state = app.guardrails.store.documents = Down(None)
    return app


def converse(text: str, guardrail: str) -> bytes:
    return json.dumps(
        {
            "messages": [{"role": "user", "content": [{"text": text}]}],
            "guardrailConfig": {"guardrailIdentifier": guardrail, "guardrailVersion": "1"},
        }
    ).encode()


async def test_a_store_that_does_not_answer(tmp_path: Path) -> None:
    app = down_app(tmp_path)
    created = await call(
        app,
        "POST",
        "/guardrails",
        json.dumps(
            {"name": "x", "blockedInputMessaging": "n", "blockedOutputsMessaging": "n"}
        ).encode(),
        JSON,
    )
    assert created.status == 500, created.body
    assert created.headers["x-amzn-errortype"].startswith("InternalServerException")
    assert "state store is unavailable" in json.loads(created.body)["message"]
    listed = await call(app, "GET", "/guardrails")
    assert listed.status == 500

    path = f"/model/{MODEL}/converse"
    configured = await call(app, "POST", path, converse("a pineapple", "configured01"), JSON)
    assert configured.status == 200, configured.body
    answer = json.loads(configured.body)
    assert answer["stopReason"] == "guardrail_intervened"
    assert answer["output"]["message"]["content"][0]["text"] == "Blocked by the file."

    unknown = await call(app, "POST", path, converse("hello", "abcdefabcdef"), JSON)
    assert unknown.status == 503, unknown.body
    assert unknown.headers["x-amzn-errortype"].startswith("ServiceUnavailableException")

    plain = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
    assert (await call(app, "POST", path, plain.encode(), JSON)).status == 200

    health = await call(app, "GET", "/_outcrop/health")
    assert health.status == 200
    assert json.loads(health.body)["state"] == {
        "backend": "sqlite",
        "ok": False,
        "detail": "PostgreSQL: connection refused",
    }
