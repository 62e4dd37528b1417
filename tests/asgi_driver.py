"""Drive an ASGI app in-process for unit tests: one request in, status/headers/body chunks out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def call(
    app: Any,
    method: str,
    raw_path: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    disconnect_after_chunks: int | None = None,
    query: str = "",
    scheme: str = "http",
) -> Result:
    """Send one request; optionally disconnect once that many body chunks were received."""
    result = Result()
    gone = asyncio.Event()
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            if message.get("body"):
                result.chunks.append(message["body"])
            if (
                disconnect_after_chunks is not None
                and len(result.chunks) >= disconnect_after_chunks
            ):
                gone.set()
            if not message.get("more_body", False):
                gone.set()

    scope = {
        "type": "http",
        "method": method,
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or [])],
        "query_string": query.encode(),
        "scheme": scheme,
    }
    await app(scope, receive, send)
    return result
