"""The Outcrop ASGI application.

Every response gets `x-amzn-RequestId` and an accurate `Date`. Requests under `/_outcrop/` go to
the admin endpoints; everything else is matched against bedrock-runtime's service model and
dispatched to the service. AWS errors are serialized here, and any other exception is
translated once into InternalServerException. Streams are pumped to the client while
`receive()` is watched for `http.disconnect`, which cancels the stream and so aborts the
generation behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from outcrop.catalog.resolver import ModelRoute, Resolver
from outcrop.config import Settings
from outcrop.engines.base import Engine
from outcrop.engines.factory import build_engine
from outcrop.gateway.asgi import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    encode_headers,
    http_date,
    read_body,
    send_response,
    wait_disconnect,
)
from outcrop.services.base import RequestContext, Response, StreamResponse
from outcrop.services.bedrock_runtime import BedrockRuntime
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    AwsError,
    InternalServerException,
    NotImplementedYet,
    RequestEntityTooLarge,
    UnknownOperationException,
)
from outcrop.wire.restjson import ServiceSpec

log = logging.getLogger("outcrop")

Operation = Callable[[RequestContext], Awaitable[Response | StreamResponse]]

# Exceptions each streaming operation's union models; anything else becomes internalServer.
STREAM_EXCEPTIONS: Mapping[str, frozenset[str]] = {
    "InvokeModelWithResponseStream": frozenset(
        {
            "InternalServerException",
            "ModelStreamErrorException",
            "ValidationException",
            "ThrottlingException",
            "ModelTimeoutException",
            "ServiceUnavailableException",
        }
    ),
}

_FRONT_DOOR_LIMIT = 64 * 1024 * 1024
"""Bodies beyond any modelled maximum are refused without reading them whole."""


class OutcropApp:
    """The ASGI callable; owns the engines and services for the life of the process."""

    def __init__(self, settings: Settings, engines: Mapping[str, Engine] | None = None) -> None:
        self.settings = settings
        self.engines: dict[str, Engine] = dict(
            engines
            if engines is not None
            else {name: build_engine(name, s) for name, s in settings.engines.items()}
        )
        routes = [ModelRoute(r.match, r.engine) for r in settings.models] or [
            ModelRoute("*", "default")
        ]
        self.resolver = Resolver(routes=routes, aliases=dict(settings.aliases))
        self.spec = ServiceSpec.load("bedrock-runtime")
        self.bedrock = BedrockRuntime(self.resolver, self.engines)
        self.operations: dict[str, Operation] = dict(self.bedrock.operations())
        self._start_tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start_engines(self) -> None:
        """Start loading every engine in the background; health reports progress."""
        for engine in self.engines.values():
            self._start_tasks.append(asyncio.create_task(self._start(engine)))

    async def _start(self, engine: Engine) -> None:
        try:
            await engine.start()
        except Exception:
            log.exception("engine %s failed to start", engine.name)

    async def wait_ready(self) -> None:
        if self._start_tasks:
            await asyncio.gather(*self._start_tasks)

    async def close(self) -> None:
        for task in self._start_tasks:
            task.cancel()
        for engine in self.engines.values():
            await engine.close()

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        base_headers = [("x-amzn-RequestId", request_id), ("Date", http_date())]
        try:
            await self._handle(scope, receive, send, request_id, base_headers)
        except ClientGone:
            return
        except AwsError as err:
            await self._send_error(send, err, base_headers)
        except Exception:
            log.exception("request %s failed", request_id)
            await self._send_error(
                send, InternalServerException("Internal server error."), base_headers
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_engines()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        base_headers: list[tuple[str, str]],
    ) -> None:
        method: str = scope["method"]
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else scope["path"]
        if raw_path.startswith("/_outcrop/"):
            await self._admin(method, raw_path, send, base_headers)
            return
        matched = self.spec.match(method, raw_path)
        if matched is None:
            raise UnknownOperationException(f"No operation matches {method} {scope['path']}.")
        operation, labels = matched
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        bound = self.spec.bind(operation, labels, headers)
        limit = self.spec.payload_max(operation)
        try:
            body = await read_body(receive, min(_FRONT_DOOR_LIMIT, (limit or _FRONT_DOOR_LIMIT)))
        except BodyTooLarge as exc:
            if limit is not None and exc.size <= _FRONT_DOOR_LIMIT:
                self.spec.check_payload_length(operation, exc.size)
            raise RequestEntityTooLarge("Request entity too large.") from None
        handler = self.operations.get(bound.name)
        if handler is None:
            raise NotImplementedYet(f"Outcrop does not serve the {bound.name} operation yet.")
        ctx = RequestContext(request_id, bound.name, bound.params, body)
        result = await handler(ctx)
        if isinstance(result, Response):
            await send_response(send, result.status, [*base_headers, *result.headers], result.body)
            return
        await self._stream(receive, send, ctx, result, base_headers)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        ctx: RequestContext,
        result: StreamResponse,
        base_headers: list[tuple[str, str]],
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": encode_headers([*base_headers, *result.headers]),
            }
        )
        pump = asyncio.create_task(self._pump(send, ctx, result))
        watcher = asyncio.create_task(wait_disconnect(receive))
        done, _ = await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if pump in done:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            pump.result()
            return
        # The client went away: cancelling the pump closes the frames and aborts generation.
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _pump(self, send: Send, ctx: RequestContext, result: StreamResponse) -> None:
        allowed = STREAM_EXCEPTIONS.get(ctx.operation, frozenset())
        try:
            async with contextlib.aclosing(result.frames) as frames:
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        except AwsError as raised:
            err = raised if raised.code in allowed else InternalServerException(raised.message)
            await send(
                {
                    "type": "http.response.body",
                    "body": eventstream.exception_frame(err),
                    "more_body": True,
                }
            )
        except Exception:
            log.exception("stream %s failed", ctx.request_id)
            err = InternalServerException("Internal server error.")
            await send(
                {
                    "type": "http.response.body",
                    "body": eventstream.exception_frame(err),
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error(self, send: Send, err: AwsError, base: list[tuple[str, str]]) -> None:
        status, headers, body = err.to_http()
        await send_response(send, status, [*base, *headers], body)

    # -- admin -------------------------------------------------------------------------------

    async def _admin(
        self, method: str, path: str, send: Send, base_headers: list[tuple[str, str]]
    ) -> None:
        if path.split("?", 1)[0] == "/_outcrop/health" and method == "GET":
            status, body = self.health()
            await send_response(
                send,
                status,
                [*base_headers, ("Content-Type", "application/json")],
                json.dumps(body).encode(),
            )
            return
        raise UnknownOperationException(f"No admin endpoint {method} {path}.")

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 once every engine is ready, else 503; per-engine and per-model readiness."""
        engines = {name: engine.health() for name, engine in self.engines.items()}
        ready = all(h.ready for h in engines.values())
        served = self.resolver.served_models()
        body: dict[str, Any] = {
            "status": "ready" if ready else "loading",
            "engines": {
                name: {"ready": h.ready, "state": h.state, "detail": h.detail, **h.extra}
                for name, h in engines.items()
            },
            "models": {
                model_id: {"engine": engine, "ready": engines[engine].ready}
                for model_id, engine in served.items()
                if engine in engines
            },
        }
        if any(h.state == "failed" for h in engines.values()):
            body["status"] = "failed"
        return (200 if ready else 503), body
