"""A near-zero-cost HTTP/1.1 server for bench/client_capacity.py: it answers every request
with the same pre-encoded InvokeModelWithResponseStream response (frames recorded from
Outcrop), so that the client, not the server, limits how fast requests complete.

Plain asyncio protocol, keep-alive, one `write` per response, no parsing beyond finding the end
of the request (headers + Content-Length). Not a general HTTP server.
Run: python bench/replay_server.py RESPONSE_BODY_FILE PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path


def response_bytes(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/vnd.amazon.eventstream\r\n"
        "X-Amzn-Bedrock-Content-Type: application/json\r\n"
        "x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Replay(asyncio.Protocol):
    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            assert self.transport is not None
            self.transport.write(self.response)


async def main(response: bytes, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Replay(response), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"replay server ready at http://127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(response_bytes(Path(sys.argv[1]).read_bytes()), int(sys.argv[2])))
