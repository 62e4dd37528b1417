"""A small web app implementing SageMaker's container contract, for tests and the benchmark.

`python -m tests.support.sagemaker_container --port P --garbage-port G` serves several
"containers" on one port, each under its own path prefix (the root is one too), every one with
`GET <prefix>/ping` and `POST <prefix>/invocations`:

* `/` and any unlisted prefix (echo): answers JSON describing what it received (body, headers
  SageMaker forwards, the prefix as `instance`), echoes `X-Amzn-SageMaker-Custom-Attributes`
  back prefixed with `container-saw=`. A body with `"stream": true` is answered with `chunks`
  JSON lines (default 5), one write each. Plays a stateful model: `SessionId: NEW_SESSION`
  opens a session (`X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<time>`), a body
  `{"requestType": "CLOSE"}` closes it, an unknown session ID gets a 400.
* `/slow`: streams 5 lines, `gap_ms` (default 300) apart.
* `/broken`: streams 2 lines, then drops the connection without ending the chunked body.
* `/hang`: never answers `/invocations`; `/hangstream`: one line, then nothing.
* `/fail400`, `/fail500`: answer with that status and a JSON error body.
* `/notready...` (any prefix starting so): `/ping` answers 503 until `POST <prefix>/_ready`.
* `/counted`: answers after 300 ms; `GET /counted/_stats` gives the most concurrent invocations
  seen (`POST /counted/_reset` resets it).
* `/bulk`: streams `chunks` chunks of `size` bytes as fast as it can (the benchmark's source).

The garbage port answers `/ping` properly and `/invocations` with bytes that are not HTTP.
Prints `READY <port> <garbage port>` once both accept connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.support.server import REPO, free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ContainerState:
    def __init__(self) -> None:
        self.ready: set[str] = set()
        self.sessions: dict[str, float] = {}
        self.in_flight = 0
        self.max_in_flight = 0


def _prefix(request: web.Request) -> str:
    return request.match_info.get("name", "")


async def ping(request: web.Request) -> web.StreamResponse:
    state: ContainerState = request.app["state"]
    name = _prefix(request)
    if name.startswith("notready") and name not in state.ready:
        return web.Response(status=503, text="loading")
    return web.Response(status=200)


async def make_ready(request: web.Request) -> web.StreamResponse:
    state: ContainerState = request.app["state"]
    state.ready.add(_prefix(request))
    return web.Response(status=200)


async def stats(request: web.Request) -> web.StreamResponse:
    state: ContainerState = request.app["state"]
    return web.json_response({"max_in_flight": state.max_in_flight, "in_flight": state.in_flight})


async def reset(request: web.Request) -> web.StreamResponse:
    state: ContainerState = request.app["state"]
    state.max_in_flight = 0
    return web.Response(status=200)


def _lines(count: int, label: str) -> list[bytes]:
    return [
        json.dumps({"part": i, "of": count, "from": label}).encode() + b"\n" for i in range(count)
    ]


async def _stream(
    request: web.Request,
    lines: list[bytes],
    gap_s: float,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/jsonlines"
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index, line in enumerate(lines):
        if index and gap_s:
            await asyncio.sleep(gap_s)
        await response.write(line)
    await response.write_eof()
    return response


async def invocations(request: web.Request) -> web.StreamResponse:
    state: ContainerState = request.app["state"]
    name = _prefix(request)
    body = await request.read()
    try:
        parsed: Any = json.loads(body) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        parsed = {}
    if not isinstance(parsed, dict):
        parsed = {}
    if name == "hang":
        await asyncio.sleep(3600)
    if name in ("fail400", "fail500"):
        status = int(name[4:])
        return web.json_response(
            {"error": f"container says {status}", "code": status}, status=status
        )
    if name == "slow":
        return await _stream(request, _lines(5, name), float(parsed.get("gap_ms", 300)) / 1000)
    if name == "counted":
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(0.3)
        finally:
            state.in_flight -= 1
        return web.json_response({"instance": name})
    if name == "bulk":
        size = int(parsed.get("size", 64))
        count = int(parsed.get("chunks", 100))
        chunk = (b"x" * (size - 1)) + b"\n"
        if not parsed.get("stream", True):
            return web.Response(body=chunk * count, content_type="application/octet-stream")
        return await _stream(request, [chunk] * count, 0)
    if name in ("broken", "hangstream"):
        response = web.StreamResponse(status=200)
        response.content_type = "application/jsonlines"
        response.enable_chunked_encoding()
        await response.prepare(request)
        for line in _lines(2 if name == "broken" else 1, name):
            await response.write(line)
            await asyncio.sleep(0.05)
        if name == "hangstream":
            await asyncio.sleep(3600)
        assert request.transport is not None
        request.transport.close()  # no terminating chunk: the body is cut short
        return response
    return await _echo(request, state, name, body, parsed)


async def _echo(
    request: web.Request, state: ContainerState, name: str, body: bytes, parsed: dict[str, Any]
) -> web.StreamResponse:
    headers: dict[str, str] = {}
    custom = request.headers.get("X-Amzn-SageMaker-Custom-Attributes")
    if custom is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = f"container-saw={custom}"
    session = request.headers.get("X-Amzn-SageMaker-Session-Id")
    if session == "NEW_SESSION":
        session_id = f"sess-{uuid.uuid4().hex[:12]}"
        expires = time.time() + float(parsed.get("ttl_s", 600))
        state.sessions[session_id] = expires
        stamp = datetime.fromtimestamp(expires, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers["X-Amzn-SageMaker-New-Session-Id"] = f"{session_id}; Expires={stamp}"
    elif session is not None:
        if session not in state.sessions:
            return web.json_response({"error": f"unknown session {session}"}, status=400)
        if parsed.get("requestType") == "CLOSE":
            del state.sessions[session]
            headers["X-Amzn-SageMaker-Closed-Session-Id"] = session
    if parsed.get("stream"):
        return await _stream(
            request, _lines(int(parsed.get("chunks", 5)), name or "root"), 0, headers
        )
    answer = {
        "instance": name or "root",
        "body": body.decode("utf-8", "replace") if len(body) <= 65536 else None,
        "body_length": len(body),
        "content_type": request.headers.get("Content-Type"),
        "accept": request.headers.get("Accept"),
        "custom_attributes": custom,
        "inference_id": request.headers.get("X-Amzn-SageMaker-Inference-Id"),
        "session_id": session,
    }
    return web.json_response(answer, headers=headers)


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app["state"] = ContainerState()
    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)
    app.router.add_get("/{name}/ping", ping)
    app.router.add_post("/{name}/invocations", invocations)
    app.router.add_post("/{name}/_ready", make_ready)
    app.router.add_get("/{name}/_stats", stats)
    app.router.add_post("/{name}/_reset", reset)
    return app


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request_line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        if request_line.startswith(b"GET") and b"/ping" in request_line:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            writer.write(b"%%% this is not HTTP at all %%%\r\n\r\n")
        await writer.drain()
    finally:
        writer.close()


async def serve(port: int, garbage_port: int, host: str = "127.0.0.1") -> None:
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    garbage = await asyncio.start_server(_garbage, host, garbage_port)
    print(f"READY {port} {garbage_port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        garbage.close()
        await runner.cleanup()


@dataclass(frozen=True)
class RunningContainer:
    port: int
    garbage_port: int

    def url(self, prefix: str = "") -> str:
        base = f"http://127.0.0.1:{self.port}"
        return f"{base}/{prefix}" if prefix else base

    @property
    def garbage_url(self) -> str:
        return f"http://127.0.0.1:{self.garbage_port}"


@contextmanager
def running_container() -> Iterator[RunningContainer]:
    """The test container as a subprocess on free loopback ports."""
    port, garbage_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.sagemaker_container",
            "--port",
            str(port),
            "--garbage-port",
            str(garbage_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"test container did not start: {line}{proc.stdout.read()}")
        yield RunningContainer(port, garbage_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--garbage-port", type=int, required=True)
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.garbage_port))


if __name__ == "__main__":
    main()
