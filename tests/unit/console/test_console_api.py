"""The console's server side in process: what the ring keeps of a call (credentials redacted,
bounded in count and bytes), a call decoded for its page, the live feed, and who may reach
the console (the admin guard's rules; the page itself without credentials)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from outcrop.app import OutcropApp
from outcrop.cli.main import build_settings
from outcrop.config import EngineKind
from outcrop.console.calls import CallRing
from outcrop.gateway.invocation_log import decode_stream_events
from tests.asgi_driver import Result, call
from tests.unit.test_security import PATH, VERIFY, app, claude, signed_headers

API = "/_outcrop/console/api"
STREAM_PATH = PATH.replace("/invoke", "/invoke-with-response-stream")
CONVERSE_STREAM = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
JSON = [("content-type", "application/json")]


def converse(text: str) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": [{"text": text}]}]}).encode()


async def calls(gateway: OutcropApp, query: str = "") -> list[dict[str, Any]]:
    listed = await call(gateway, "GET", f"{API}/calls", query=query)
    assert listed.status == 200, listed.body
    rows: list[dict[str, Any]] = json.loads(listed.body)["calls"]
    return rows


async def details(gateway: OutcropApp, request_id: str) -> dict[str, Any]:
    got = await call(gateway, "GET", f"{API}/call", query=f"id={request_id}")
    assert got.status == 200, got.body
    result: dict[str, Any] = json.loads(got.body)
    return result


def tapped(gateway: OutcropApp, sent_body: asyncio.Event) -> Any:
    """The app, setting `sent_body` once its response sent a body chunk (a feed is open)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def tap(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                sent_body.set()

        await gateway(scope, receive, tap)

    return app


def request_id(result: Result) -> str:
    return result.headers["x-amzn-requestid"]


async def test_a_streamed_call_is_kept_with_each_event_and_what_they_assemble_to() -> None:
    gateway = app()
    sent = await call(gateway, "POST", CONVERSE_STREAM, converse("hello console"), JSON)
    assert sent.status == 200
    (row,) = await calls(gateway)
    assert row["id"] == request_id(sent)
    assert (row["operation"], row["modelId"], row["engine"]) == (
        "ConverseStream",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "default",
    )
    assert row["streaming"] is True and row["outputTokens"] > 0 and row["errorCode"] is None
    page = await details(gateway, row["id"])
    # Every event the client received, in order, as the client decodes it.
    assert [event["event"] for event in page["events"]] == decode_stream_events(sent.chunks)
    kinds = [event["type"] for event in page["events"]]
    assert kinds[0] == "messageStart" and kinds[-1] == "metadata"
    offsets = [event["offsetMs"] for event in page["events"]]
    assert offsets == sorted(offsets)
    assembled = page["assembled"]
    assert assembled["text"] == "Echo: hello console"
    assert assembled["stopReason"] == "end_turn"
    assert assembled["usage"]["outputTokens"] == row["outputTokens"]
    assert page["request"]["body"]["messages"][0]["content"][0]["text"] == "hello console"


async def test_credentials_are_never_kept() -> None:
    gateway = app()
    headers = [
        *JSON,
        ("authorization", "Bearer bedrock-api-key-secret"),
        ("x-amz-security-token", "session-secret"),
    ]
    await call(gateway, "POST", PATH, claude(), headers)
    signed = signed_headers(claude())
    await call(gateway, "POST", PATH, claude(), signed)
    rows = await calls(gateway)
    pages = [await details(gateway, row["id"]) for row in rows]
    text = json.dumps(pages)
    assert "bedrock-api-key-secret" not in text and "session-secret" not in text
    signature = dict((k.lower(), v) for k, v in signed)["authorization"].split("Signature=")[1]
    assert signature not in text
    kept = dict(pages[1]["request"]["headers"])
    assert kept["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert kept["authorization"].endswith("Signature=(redacted)")


async def test_the_ring_keeps_the_last_max_calls_and_pages_by_sequence() -> None:
    gateway = app(console={"max_calls": 3})
    sent = [await call(gateway, "POST", PATH, claude(f"n{i}"), JSON) for i in range(5)]
    rows = await calls(gateway)
    assert [r["id"] for r in rows] == [request_id(s) for s in sent[2:]]
    newer = await calls(gateway, f"after={rows[1]['seq']}")
    assert [r["id"] for r in newer] == [request_id(sent[4])]
    gone = await call(gateway, "GET", f"{API}/call", query=f"id={request_id(sent[0])}")
    assert gone.status == 404 and "max_calls" in json.loads(gone.body)["message"]
    cleared = await call(gateway, "DELETE", f"{API}/calls")
    assert json.loads(cleared.body) == {"cleared": 3}
    assert await calls(gateway) == []


async def test_a_call_beyond_max_call_bytes_is_kept_truncated() -> None:
    gateway = app(console={"max_call_bytes": 1024})
    await call(gateway, "POST", STREAM_PATH, claude("word " * 150, max_tokens=400), JSON)
    (row,) = await calls(gateway)
    page = await details(gateway, row["id"])
    assert page["truncated"] is True
    kept = sum(len(json.dumps(e["event"])) for e in page["events"])
    assert kept < 1024 and row["outputTokens"] > 100


async def test_a_refused_call_and_its_fault_rule_are_recorded() -> None:
    gateway = app()
    rule = {"id": "slow-down", "action": "error", "error": "ThrottlingException", "times": 1}
    added = await call(gateway, "POST", "/_outcrop/faults", json.dumps(rule).encode(), JSON)
    assert added.status == 201
    assert (await call(gateway, "POST", PATH, claude(), JSON)).status == 429
    (row,) = await calls(gateway)
    assert (row["status"], row["errorCode"], row["rules"]) == (
        429,
        "ThrottlingException",
        ["fault:slow-down"],
    )


async def test_a_scripted_response_is_named_on_the_call_it_answered() -> None:
    gateway = app()
    answer = {"id": "canned", "text": "Canned answer."}
    await call(gateway, "POST", "/_outcrop/responses", json.dumps(answer).encode(), JSON)
    await call(gateway, "POST", CONVERSE_STREAM, converse("hi"), JSON)
    (row,) = await calls(gateway)
    assert row["rules"] == ["response:canned"]
    assert (await details(gateway, row["id"]))["assembled"]["text"] == "Canned answer."


async def test_the_live_feed_sends_each_new_call() -> None:
    gateway = app()
    opened = asyncio.Event()
    feed = asyncio.create_task(
        call(tapped(gateway, opened), "GET", f"{API}/feed", disconnect_after_chunks=2)
    )
    ring = gateway.console.ring if gateway.console is not None else CallRing(1, 1)
    await asyncio.wait_for(opened.wait(), 30)
    sent = await call(gateway, "POST", PATH, claude(), JSON)
    result = await asyncio.wait_for(feed, 30)
    assert result.headers["content-type"].startswith("text/event-stream")
    event = result.chunks[1].decode()
    assert event.startswith("event: call\ndata: ")
    assert json.loads(event.split("data: ", 1)[1])["id"] == request_id(sent)
    assert ring.feeds == 0  # closed when the client went away


async def test_feeds_beyond_max_feed_clients_are_refused() -> None:
    gateway = app(console={"max_feed_clients": 1})
    opened = asyncio.Event()
    first = asyncio.create_task(
        call(tapped(gateway, opened), "GET", f"{API}/feed", disconnect_after_chunks=2)
    )
    ring = gateway.console.ring if gateway.console is not None else CallRing(1, 1)
    await asyncio.wait_for(opened.wait(), 30)
    second = await call(gateway, "GET", f"{API}/feed")
    assert second.status == 429 and "max_feed_clients" in json.loads(second.body)["message"]
    await call(gateway, "POST", PATH, claude(), JSON)  # the first feed's second chunk
    await asyncio.wait_for(first, 30)
    assert ring.feeds == 0


async def test_the_page_and_assets_are_served_without_credentials_the_api_needs_them() -> None:
    gateway = app(**VERIFY)
    page = await call(gateway, "GET", "/_outcrop/console", headers=[("host", "127.0.0.1")])
    assert page.status == 200 and b"<title>Outcrop console</title>" in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]
    script = page.body.decode().split('src="', 1)[1].split('"', 1)[0]
    asset = await call(gateway, "GET", script, headers=[("host", "127.0.0.1")])
    assert asset.status == 200 and asset.headers["content-type"].startswith("text/javascript")
    denied = await call(gateway, "GET", f"{API}/calls", headers=[("host", "127.0.0.1")])
    assert denied.status == 403
    # A Bedrock API key as a bearer token (over TLS, as Outcrop accepts bearer tokens).
    bearer = [("host", "127.0.0.1"), ("authorization", "Bearer bedrock-api-key-example")]
    listed = await call(gateway, "GET", f"{API}/calls", headers=bearer, scheme="https")
    assert listed.status == 200


async def test_the_page_keeps_the_host_and_origin_checks() -> None:
    gateway = app()
    rebound = await call(gateway, "GET", "/_outcrop/console", headers=[("host", "evil.example")])
    assert rebound.status == 403
    cross = [("host", "127.0.0.1:4590"), ("origin", "http://evil.example")]
    assert (await call(gateway, "GET", f"{API}/calls", headers=cross)).status == 403
    missing = await call(gateway, "GET", "/_outcrop/console/assets/../index.html")
    assert missing.status == 404


async def test_the_console_is_off_by_default_when_bound_beyond_loopback() -> None:
    assert app(server={"host": "0.0.0.0"}).console is None
    assert app(server={"host": "0.0.0.0"}, console={"enabled": True}).console is not None
    assert app(console={"enabled": False}).console is None
    off = app(console={"enabled": False})
    await call(off, "POST", PATH, claude(), JSON)
    assert (await call(off, "GET", f"{API}/calls")).status == 404


def test_serve_keeps_the_console_section_of_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text("[console]\nmax_calls = 10000\nmax_call_bytes = 4096\n")
    settings = build_settings(config, EngineKind.scripted, None, None, None, None, None, None, None)
    assert (settings.console.max_calls, settings.console.max_call_bytes) == (10_000, 4096)


async def test_the_ring_drops_the_oldest_calls_beyond_max_total_bytes() -> None:
    gateway = app(console={"max_total_bytes": 1024 * 1024, "max_call_bytes": 300 * 1024})
    padding = "x" * (250 * 1024)
    sent = [
        await call(gateway, "POST", PATH, claude(padding + str(i), max_tokens=1), JSON)
        for i in range(6)
    ]
    rows = await calls(gateway)
    assert [r["id"] for r in rows] == [request_id(s) for s in sent[-4:]]
    ring = gateway.console.ring if gateway.console is not None else CallRing(1, 1)
    assert 3 * 250 * 1024 < ring.bytes <= 1024 * 1024


async def test_open_feeds_end_when_the_server_stops() -> None:
    gateway = app()
    opened = asyncio.Event()
    feed = asyncio.create_task(call(tapped(gateway, opened), "GET", f"{API}/feed"))
    await asyncio.wait_for(opened.wait(), 30)
    gateway.stopping()
    result = await asyncio.wait_for(feed, 30)  # the response ended: nothing holds the stop
    assert result.status == 200 and result.chunks == [b": outcrop console feed\n\n"]


async def test_a_stream_cut_by_a_fault_shows_the_events_sent_then_its_error() -> None:
    gateway = app()
    rule = {
        "id": "mid-stream",
        "action": "stream_error",
        "error": "modelStreamErrorException",
        "message": "Injected mid-stream.",
        "after_events": 2,
    }
    await call(gateway, "POST", "/_outcrop/faults", json.dumps(rule).encode(), JSON)
    sent = await call(gateway, "POST", CONVERSE_STREAM, converse("one two three four"), JSON)
    (row,) = await calls(gateway)
    assert (row["status"], row["errorCode"], row["rules"]) == (
        200,
        "ModelStreamErrorException",
        ["fault:mid-stream"],
    )
    page = await details(gateway, row["id"])
    received = decode_stream_events(sent.chunks)
    assert [e["event"] for e in page["events"][:-1]] == received[:-1]
    assert received[-1]["modelStreamErrorException"]["message"] == "Injected mid-stream."
    assert page["events"][-1]["type"] == "ModelStreamErrorException"
    assert page["events"][-1]["event"] == {
        "ModelStreamErrorException": {"message": "Injected mid-stream."}
    }


async def test_an_openai_chat_completions_stream_is_decoded_from_its_server_sent_events() -> None:
    gateway = app()
    body = {
        "model": "openai.gpt-oss-20b-1:0",
        "messages": [{"role": "user", "content": "hi there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = await call(
        gateway, "POST", "/openai/v1/chat/completions", json.dumps(body).encode(), JSON
    )
    assert sent.status == 200
    (row,) = await calls(gateway)
    page = await details(gateway, row["id"])
    assert page["path"] == "/openai/v1/chat/completions"
    assert page["assembled"]["text"] == "Echo: hi there"
    assert page["assembled"]["reasoning"]
    assert page["assembled"]["usage"]["completion_tokens"] == row["outputTokens"]
    assert all(event["type"] == "chat.completion.chunk" for event in page["events"])
