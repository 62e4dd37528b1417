"""Scripted responses in process: the admin API's switch, and a call refused before it is
admitted (a token quota) consumes no queued answer."""

from __future__ import annotations

import json

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.asgi_driver import call
from tests.unit.test_security import PATH, SECRET, VERIFY, app, claude, error

ROUTE = "/_outcrop/responses"
JSON = [("content-type", "application/json")]


def signed_get(path: str) -> list[tuple[str, str]]:
    request = AWSRequest(method="GET", url=f"http://127.0.0.1{path}")
    SigV4Auth(Credentials("AKIDEXAMPLE", SECRET), "bedrock", "us-east-1").add_auth(request)
    return [*request.prepare().headers.items(), ("host", "127.0.0.1")]


async def test_the_api_is_off_in_verify_mode_unless_enabled() -> None:
    headers = signed_get(ROUTE)
    off = await call(app(**VERIFY), "GET", ROUTE, b"", headers)
    assert off.status == 403 and "responses_api = true" in json.loads(off.body)["message"]
    on = await call(app(**VERIFY, admin={"responses_api": True}), "GET", ROUTE, b"", headers)
    assert (on.status, json.loads(on.body)) == (200, {"rules": []})


async def test_a_call_refused_by_a_quota_consumes_no_queued_answer() -> None:
    gateway = app(quotas=[{"tokens_per_minute": 200}])
    # Uses about 80 of the minute's 200 tokens (40 in, 40 echoed out).
    first = await call(gateway, "POST", PATH, claude("word " * 40, max_tokens=95))
    assert first.status == 200
    added = await call(gateway, "POST", ROUTE, json.dumps({"text": "Queued."}).encode(), JSON)
    rule = json.loads(added.body)["id"]
    # Authorized and routed, then refused when admitted (input + max output over what is left).
    status, code, _ = error(await call(gateway, "POST", PATH, claude("hi", max_tokens=150)))
    assert (status, code) == (429, "ThrottlingException")
    state = await call(gateway, "GET", f"{ROUTE}/rule", b"", query=f"id={rule}")
    assert (json.loads(state.body)["fired"], json.loads(state.body)["remaining"]) == (0, 1)


async def test_a_queued_answer_keeps_the_model_timeout() -> None:
    gateway = app(limits={"model_timeout_s": 0.2})
    slow = {"text": "Too late.", "first_token_delay_ms": 2000}
    assert (await call(gateway, "POST", ROUTE, json.dumps(slow).encode(), JSON)).status == 201
    status, code, _ = error(await call(gateway, "POST", PATH, claude("hi")))
    assert (status, code) == (408, "ModelTimeoutException")
