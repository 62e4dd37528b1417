"""The baseline for bench/stream_throughput.py: a minimal ASGI app that streams fixed frames.

It answers every POST with the event-stream frames recorded from Outcrop (a file of
length-prefixed frames), one `send` per frame, exactly as Outcrop's gateway sends them, so the
difference measured is Outcrop's own work (routing, dialect, engine, framing) per event.
Run: python bench/raw_asgi_app.py FRAMES_FILE PORT
"""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from outcrop.server import serve

Message = MutableMapping[str, Any]


def load_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        frames.append(data[offset : offset + length])
        offset += length
    return frames


def make_app(
    frames: list[bytes],
) -> Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]:
    headers = [
        (b"content-type", b"application/vnd.amazon.eventstream"),
        (b"x-amzn-bedrock-content-type", b"application/json"),
    ]

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for frame in frames:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def main() -> None:
    frames = load_frames(Path(sys.argv[1]))
    port = int(sys.argv[2])

    def ready(urls: list[str]) -> None:
        print(f"raw app ready at {urls[0]}", flush=True)

    asyncio.run(serve(make_app(frames), host="127.0.0.1", port=port, on_ready=ready))


if __name__ == "__main__":
    main()
