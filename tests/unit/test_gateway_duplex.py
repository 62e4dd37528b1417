"""Duplex operations in the gateway: headers at once, body chunks as they arrive, output while
the request is still open, and a client that leaves."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import MutableMapping
from typing import Any

from botocore.eventstream import EventStreamBuffer
from smithy_aws_event_stream.events import EventMessage

from outcrop.app import OutcropApp
from outcrop.config import ScriptedSettings, Settings
from outcrop.services.base import DuplexOperation, RequestContext, StreamResponse
from outcrop.wire.event_signing import sign_frame
from tests.support.speech import NovaInput

PATH = "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"


def signed(event: dict[str, Any] | None) -> bytes:
    inner = b""
    if event is not None:
        payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()})
        headers = {":message-type": "event", ":event-type": "chunk",
                   ":content-type": "application/json"}  # fmt: skip
        inner = bytes(EventMessage(headers=headers, payload=payload.encode()).encode())
    frame, _ = sign_frame("0" * 64, inner, int(time.time() * 1000), b"k" * 32, "us-east-1")
    return frame


class Client:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[MutableMapping[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self._buffer = EventStreamBuffer()

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        self._buffer.add_data(message.get("body", b""))
        for frame in self._buffer:
            self.events.append(json.loads(base64.b64decode(json.loads(frame.payload)["bytes"])))
        self.changed.set()

    def write(self, *events: dict[str, Any] | None, more: bool = True) -> None:
        body = b"".join(signed(e) for e in events)
        self.inbox.put_nowait({"type": "http.request", "body": body, "more_body": more})

    async def until(self, check: Any) -> None:
        async with asyncio.timeout(10):
            while not check():
                self.changed.clear()
                await self.changed.wait()


def app() -> OutcropApp:
    return OutcropApp(Settings(engines={"default": ScriptedSettings(type="scripted")}))


def scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": PATH.replace("%3A", ":"),
            "raw_path": PATH.encode(), "query_string": b"",
            "headers": [(b"content-type", b"application/vnd.amazon.eventstream")]}  # fmt: skip


async def test_output_streams_while_the_request_body_is_still_arriving() -> None:
    client, nova = Client(), NovaInput()
    opening = [nova.session_start(), {"event": {"promptStart": {"promptName": nova.prompt}}}]
    task = asyncio.create_task(app()(scope(), client.receive, client.send))
    # Headers (and an empty body message, so Granian flushes them) before any input.
    await client.until(lambda: len(client.sent) >= 2)
    assert client.sent[0]["status"] == 200 and client.sent[1] == {
        "type": "http.response.body", "body": b"", "more_body": True}  # fmt: skip
    client.write(*opening, *nova.text("SYSTEM", "Hi."))
    client.write(*nova.text("USER", "Ping?", interactive=True))
    await client.until(lambda: any("completionEnd" in e["event"] for e in client.events))
    texts = [
        e["event"]["textOutput"]["content"] for e in client.events if "textOutput" in e["event"]
    ]
    assert texts == ["Echo: Ping?", "Echo: Ping?"]  # SPECULATIVE, then FINAL
    assert not task.done()  # the request is still open
    client.write(nova.prompt_end(), nova.session_end(), None, more=False)
    await asyncio.wait_for(task, 10)
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_client_that_leaves_ends_the_session() -> None:
    client, nova = Client(), NovaInput()
    served = app()
    task = asyncio.create_task(served(scope(), client.receive, client.send))
    client.write(nova.session_start())
    async with asyncio.timeout(5):
        while served.bedrock.bidirectional.sessions != 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    client.inbox.put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(task, 5)
    assert served.bedrock.bidirectional.sessions == 0


async def test_a_duplex_operation_called_plainly_gets_the_whole_body() -> None:
    seen: list[bytes] = []

    async def handler(ctx: RequestContext, body: Any) -> StreamResponse:
        seen.extend([chunk async for chunk in body])

        async def frames() -> Any:
            yield b""

        return StreamResponse([], frames())

    ctx = RequestContext("r", "Op", {}, b"whole body")
    await DuplexOperation(handler)(ctx)
    assert seen == [b"whole body"]
