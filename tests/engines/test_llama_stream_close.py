"""A llama-server stream closed early (the client left while the engine waited for the next
chunk) leaves no "Task exception was never retrieved": the pending read of the child's answer
is cancelled and its outcome retrieved, not left to fail when the connection is closed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from typing import Any

import aiohttp
from aiohttp import web

from outcrop.engines.llama_server import ExternalLlamaServer, LlamaServerEngine


async def stalling_server(release: asyncio.Event) -> tuple[web.AppRunner, str]:
    """Answers with one SSE chunk, then holds the rest until `release` is set."""

    async def completion(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"content": "a", "tokens": [1]}\n\n')
        await release.wait()
        return response

    app = web.Application()
    app.router.add_post("/completion", completion)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def pending_reads() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "StreamReader.readany"
    ]


async def test_closing_a_stream_mid_read_leaves_no_unretrieved_task_exception() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    release = asyncio.Event()
    runner, url = await stalling_server(release)
    engine = LlamaServerEngine(external_url=url)
    engine._process = ExternalLlamaServer("test", url)  # what start() sets, without /health
    died = asyncio.Event()
    try:
        async with aiohttp.ClientSession() as session:
            response = await engine._post(session, {"prompt": "hi"}, died)
            first = await engine._next_chunk(response, died, 60.0, False)
            assert first is not None and b'"content": "a"' in first
            waiting = asyncio.create_task(engine._next_chunk(response, died, 60.0, True))
            for _ in range(1000):  # until the engine is waiting on the child's next chunk
                if pending_reads() or waiting.done():
                    break
                await asyncio.sleep(0)
            reads = pending_reads()
            assert len(reads) == 1 and not waiting.done()
            waiting.cancel()  # the client left
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            response.close()  # what the stream's `finally` does
            await asyncio.wait_for(asyncio.wait(reads), 30.0)
            del reads
            for _ in range(5):
                await asyncio.sleep(0)
            gc.collect()
    finally:
        release.set()
        await runner.cleanup()
        loop.set_exception_handler(previous)
    never_retrieved = [c for c in reported if "never retrieved" in str(c.get("message"))]
    assert never_retrieved == []


def test_an_external_llama_server_can_be_constructed() -> None:
    """A merge once left `@dataclass(slots=True)` (LlamaServerStats') above this class, which
    broke its zero-argument `super()`: every `upstreams` entry of a llamacpp engine failed."""
    server = ExternalLlamaServer("gpu-1", "http://gpu-1:8080/")
    assert (server.host, server.port, server.base_url) == ("gpu-1", 8080, "http://gpu-1:8080")
    assert not dataclasses.is_dataclass(server)
