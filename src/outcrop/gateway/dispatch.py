"""The gateway: ASGI dispatch of the application `outcrop.app.build_app` assembles.

Every response gets `x-amzn-RequestId` and an accurate `Date`. Local routes (`/_outcrop/...`
admin endpoints, `/metrics`) are answered directly; everything else is matched against the
service models of the services served (bedrock-runtime first) and dispatched to the operation,
with the interceptors (auth, quotas, faults, metrics, logs) around it. AWS errors are
serialized here, and any other exception is translated once into InternalServerException.
Streams are pumped to the client while `receive()` is watched for `http.disconnect`, which
cancels the stream and so aborts the generation behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from outcrop.gateway.admin_guard import AdminGuard
from outcrop.gateway.asgi import (
    AbortConnection,
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    SendGuard,
    StreamedBody,
    abort_response,
    encode_headers,
    http_date,
    read_body,
    send_response,
    wait_disconnect,
)
from outcrop.gateway.disconnect import until_gone
from outcrop.gateway.interceptors import Interceptor
from outcrop.services.base import (
    DuplexOperation,
    Operation,
    RequestContext,
    Response,
    StreamResponse,
)
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

_FRONT_DOOR_LIMIT = 64 * 1024 * 1024
"""Bodies beyond any modelled maximum are refused without reading them whole."""


@dataclass(frozen=True, slots=True)
class LocalRequest:
    """A request to a local (non-AWS) route."""

    method: str
    path: str
    query: str
    body: bytes


LocalHandler = Callable[[LocalRequest], Awaitable[Response | StreamResponse]]
"""A local route's answer: complete, or streamed (the console's live feed) until it ends or
the client goes away."""


@dataclass(slots=True)
class ServiceBinding:
    """One AWS service served: its model, its operations, and its stream exception members."""

    spec: ServiceSpec
    operations: dict[str, Operation]
    internal_error: Callable[[str], AwsError] = InternalServerException
    stream_exceptions: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per streaming operation: the exception shape names its event-stream union models."""


def stream_exception_names(spec: ServiceSpec, operation: str) -> frozenset[str]:
    """The error shapes an operation's output event stream models, from the service model."""
    stream = spec.model.operation_model(operation).get_event_stream_output()
    if stream is None:
        return frozenset()
    return frozenset(
        member.name
        for member in stream.members.values()
        if member.metadata.get("exception") or member.metadata.get("error")
    )


def service_binding(
    service_name: str,
    operations: Mapping[str, Operation],
    internal_error: Callable[[str], AwsError] = InternalServerException,
) -> ServiceBinding:
    """One AWS service to serve: its model loaded, its operations and stream exceptions."""
    spec = ServiceSpec.load(service_name)
    return ServiceBinding(
        spec,
        dict(operations),
        internal_error,
        {op: stream_exception_names(spec, op) for op in spec.model.operation_names},
    )


Hook = Callable[[], Awaitable[None]]

CallRoute = Callable[[RequestContext, Sequence[Interceptor]], Awaitable[Response | StreamResponse]]
"""Answers a call that no service model describes, running the interceptors it is given."""


class Gateway:
    """The ASGI callable: dispatch only. It is handed what it serves (services matched in
    order, interceptors run in order, local routes by exact path or by prefix) and the
    lifespan hooks; it builds nothing and knows no engine."""

    def __init__(
        self,
        services: Sequence[ServiceBinding],
        interceptors: Sequence[Interceptor],
        local_routes: Mapping[tuple[str, str], LocalHandler],
        local_prefixes: Mapping[tuple[str, str], LocalHandler] | None = None,
        call_routes: Mapping[tuple[str, str], CallRoute] | None = None,
        *,
        admin_guard: AdminGuard,
        local_body_limit: int,
        on_startup: Hook | None = None,
        on_shutdown: Hook | None = None,
    ) -> None:
        self.services = list(services)
        self.admin_guard = admin_guard
        """Host, Origin and authentication rules of the local routes, and cross-site refusals."""
        self.local_body_limit = local_body_limit
        """The most of a body a local route reads (`[admin] max_body_bytes`)."""
        self.interceptors = list(interceptors)
        self.local_routes = dict(local_routes)
        self.local_prefixes = dict(local_prefixes or {})
        """(method, path prefix) → handler, for paths with a name in them."""
        self.call_routes = dict(call_routes or {})
        """(method, path) → handler of AWS calls outside the service models."""
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown

    def local_route(self, method: str, path: str) -> LocalHandler | None:
        found = self.local_routes.get((method, path))
        if found is not None:
            return found
        for (route_method, prefix), handler in self.local_prefixes.items():
            if route_method == method and path.startswith(prefix):
                return handler
        return None

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = str(uuid.uuid4())
        base_headers = [("x-amzn-RequestId", request_id), ("Date", http_date())]
        guard = SendGuard(send)
        try:
            try:
                await self._handle(scope, receive, guard, request_id, base_headers)
            except ClientGone:
                return
            except AbortConnection as abort:
                await abort_response(guard, abort.response_started, base_headers)
                return
            except AwsError as err:
                if guard.started:
                    raise
                await self._send_error(guard, err, base_headers)
            except Exception:
                if guard.started:
                    raise
                log.exception("request %s failed", request_id)
                await self._send_error(
                    guard, InternalServerException("Internal server error."), base_headers
                )
        except Exception:
            await guard.last_resort(request_id, base_headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._on_startup is not None:
                    await self._on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown is not None:
                    await self._on_shutdown()
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
        path = raw_path.split("?", 1)[0]
        local = self.local_route(method, path)
        if local is not None:
            answer = await self._local(scope, receive, local, method, path)
            if isinstance(answer, StreamResponse):
                await self._local_stream(receive, send, answer, base_headers)
                return
            await send_response(send, answer.status, [*base_headers, *answer.headers], answer.body)
            return
        refused = self.admin_guard.cross_site(scope)  # a web page's form post, not an SDK
        if refused is not None:
            raise refused
        call_route = self.call_routes.get((method, path))
        if call_route is not None:
            await self._call_route(scope, receive, send, call_route, request_id, base_headers, path)
            return
        binding, matched = self._match(method, raw_path)
        if binding is None or matched is None:
            raise UnknownOperationException(f"No operation matches {method} {scope['path']}.")
        operation, labels = matched
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        bound = binding.spec.bind(operation, labels, headers, query)
        handler = binding.operations.get(bound.name)
        # Duplex operations read their body while they answer; the others get it whole.
        streamed = StreamedBody(receive) if isinstance(handler, DuplexOperation) else None
        body = b"" if streamed is not None else await self._read(receive, binding, operation)
        ctx = RequestContext(
            request_id,
            bound.name,
            bound.params,
            body,
            service=str(binding.spec.model.service_name),
            headers=tuple(headers),
            method=method,
            raw_path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            scheme=str(scope.get("scheme", "http")),
        )
        try:
            if handler is None:
                raise NotImplementedYet(f"Outcrop does not serve the {bound.name} operation yet.")
            for interceptor in self.interceptors:
                await interceptor.before(ctx)
            result: Response | StreamResponse
            if streamed is not None:
                assert isinstance(handler, DuplexOperation)
                result = await handler.handler(ctx, streamed.chunks())
            else:
                # A client that leaves before the answer is ready stops its generation.
                result = await until_gone(receive, handler(ctx))
        except ClientGone:
            ctx.record.error_code = "ClientDisconnected"
            self._after(ctx)
            raise
        except AwsError as err:
            ctx.record.failed(err)
            ctx.record.status = err.status
            self._after(ctx)
            raise
        except BaseException as exc:
            # A 500 (or a client gone) before the answer: the interceptors still release what
            # the call holds (a quota's stream slot above all).
            if isinstance(exc, Exception):
                ctx.record.failed(binding.internal_error("Internal server error."))
                ctx.record.status = 500
            else:
                ctx.record.error_code = "ClientDisconnected"
            self._after(ctx)
            raise
        if isinstance(result, Response):
            ctx.record.status = result.status
            ctx.record.response_body = result.body
            self._after(ctx)
            await send_response(send, result.status, [*base_headers, *result.headers], result.body)
            return
        frames = result.frames
        for interceptor in self.interceptors:
            frames = interceptor.wrap_stream(ctx, frames)
        try:
            await self._stream(
                receive, send, ctx, binding, result.headers, frames, base_headers, streamed
            )
        finally:
            self._after(ctx)

    async def _local(
        self, scope: Scope, receive: Receive, handler: LocalHandler, method: str, path: str
    ) -> Response | StreamResponse:
        """A local route's answer: its body read within the limit, the admin guard's rules
        (Host, Origin, authentication) applied first."""
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            body = await read_body(receive, self.local_body_limit)
        except BodyTooLarge:
            return self.admin_guard.too_large()
        refusal = self.admin_guard.refusal(scope, method, path, query, body)
        return refusal or await handler(LocalRequest(method, path, query, body))

    async def _local_stream(
        self, receive: Receive, send: Send, answer: StreamResponse, base: list[tuple[str, str]]
    ) -> None:
        """A streamed local answer: its units sent as they come, closed when the client goes."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": encode_headers([*base, *answer.headers]),
            }
        )

        async def pump() -> None:
            async with contextlib.aclosing(answer.frames) as units:
                async for unit in units:
                    await send({"type": "http.response.body", "body": unit, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        pumping = asyncio.create_task(pump())
        watcher = asyncio.create_task(wait_disconnect(receive))
        done, _ = await asyncio.wait({pumping, watcher}, return_when=asyncio.FIRST_COMPLETED)
        for task in (pumping, watcher):
            if task not in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if pumping in done:
            pumping.result()

    async def _call_route(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        handler: CallRoute,
        request_id: str,
        base_headers: list[tuple[str, str]],
        path: str,
    ) -> None:
        """A call outside the service models (Bedrock's OpenAI-compatible Chat Completions,
        services/openai_chat.py): its handler runs the interceptors itself."""
        try:
            body = await read_body(receive, _FRONT_DOOR_LIMIT)
        except BodyTooLarge:
            raise RequestEntityTooLarge("Request entity too large.") from None
        ctx = RequestContext(
            request_id,
            "InvokeModel",
            {},
            body,
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
            method="POST",
            raw_path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            scheme=str(scope.get("scheme", "http")),
        )
        result = await handler(ctx, self.interceptors)
        if isinstance(result, Response):
            await send_response(send, result.status, [*base_headers, *result.headers], result.body)
            return
        await self._stream(
            receive, send, ctx, self.services[0], result.headers, result.frames, base_headers
        )

    async def _read(self, receive: Receive, binding: ServiceBinding, operation: Any) -> bytes:
        limit = binding.spec.payload_max(operation)
        try:
            return await read_body(receive, min(_FRONT_DOOR_LIMIT, (limit or _FRONT_DOOR_LIMIT)))
        except BodyTooLarge as exc:
            if limit is not None and exc.size <= _FRONT_DOOR_LIMIT:
                binding.spec.check_payload_length(operation, exc.size)
            raise RequestEntityTooLarge("Request entity too large.") from None

    def _match(
        self, method: str, raw_path: str
    ) -> tuple[ServiceBinding | None, tuple[Any, dict[str, str]] | None]:
        for binding in self.services:
            matched = binding.spec.match(method, raw_path)
            if matched is not None:
                return binding, matched
        return None, None

    def _after(self, ctx: RequestContext) -> None:
        for interceptor in self.interceptors:
            try:
                interceptor.after(ctx)
            except Exception:
                log.exception("interceptor %r failed after %s", interceptor, ctx.request_id)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        ctx: RequestContext,
        binding: ServiceBinding,
        headers: list[tuple[str, str]],
        frames: AsyncGenerator[bytes, None],
        base_headers: list[tuple[str, str]],
        streamed: StreamedBody | None = None,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": encode_headers([*base_headers, *headers]),
            }
        )
        if streamed is not None:
            # Granian sends the headers with the first body message; a duplex client waits for
            # them before (or while) it sends its input.
            await send({"type": "http.response.body", "body": b"", "more_body": True})
        pump = asyncio.create_task(self._pump(send, ctx, binding, frames))
        watcher = asyncio.create_task(
            streamed.wait_disconnect() if streamed is not None else wait_disconnect(receive)
        )
        done, _ = await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if pump in done:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            pump.result()
            return
        # The client went away: cancelling the pump closes the frames and aborts generation.
        ctx.record.error_code = "ClientDisconnected"
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump

    async def _pump(
        self,
        send: Send,
        ctx: RequestContext,
        binding: ServiceBinding,
        frames: AsyncGenerator[bytes, None],
    ) -> None:
        allowed = binding.stream_exceptions.get(ctx.operation, frozenset())
        err: AwsError | None = None
        try:
            async with contextlib.aclosing(frames) as stream:
                async for frame in stream:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
        except AwsError as raised:
            err = raised if raised.code in allowed else binding.internal_error(raised.message)
        except Exception:
            log.exception("stream %s failed", ctx.request_id)
            err = binding.internal_error("Internal server error.")
        if err is not None:
            ctx.record.failed(err)
            frame = eventstream.exception_frame(err)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error(self, send: Send, err: AwsError, base: list[tuple[str, str]]) -> None:
        status, headers, body = err.to_http()
        await send_response(send, status, [*base, *headers], body)
