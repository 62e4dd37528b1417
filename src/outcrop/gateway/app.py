"""The Outcrop ASGI application.

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
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from outcrop.catalog.resolver import ModelRoute, Resolver
from outcrop.config import Settings
from outcrop.engines.base import Engine
from outcrop.engines.embeddings import BertEmbedder
from outcrop.engines.factory import build_engine
from outcrop.gateway import security
from outcrop.gateway.access_log import AccessLog
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
from outcrop.gateway.invocation_log import InvocationLog
from outcrop.gateway.metrics import Metrics
from outcrop.guardrails.runtime import open_guardrails
from outcrop.services.apply_guardrail import ApplyGuardrail
from outcrop.services.base import (
    DuplexOperation,
    Operation,
    RequestContext,
    Response,
    StreamResponse,
)
from outcrop.services.bedrock import BedrockControlPlane
from outcrop.services.bedrock_runtime import BedrockRuntime
from outcrop.services.converse import ConverseOperations
from outcrop.services.guardrail_checks import GuardrailChecks
from outcrop.services.guardrails_admin import GuardrailAdmin
from outcrop.services.openai_chat import CHAT_COMPLETIONS, OpenAIChatCompletions
from outcrop.services.sagemaker_admin import EndpointAdmin
from outcrop.services.sagemaker_runtime import SageMakerRuntime
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    AwsError,
    InternalServerException,
    InternalStreamFailure,
    NotImplementedYet,
    RequestEntityTooLarge,
    UnknownOperationException,
)
from outcrop.wire.jsonbody import set_max_json_depth
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


LocalHandler = Callable[[LocalRequest], Awaitable[Response]]


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


class OutcropApp:
    """The ASGI callable; owns the engines and services for the life of the process."""

    def __init__(self, settings: Settings, engines: Mapping[str, Engine] | None = None) -> None:
        self.settings = settings
        set_max_json_depth(settings.limits.max_json_depth)
        self.engines: dict[str, Engine] = dict(
            engines
            if engines is not None
            else {name: build_engine(name, s) for name, s in settings.engines.items()}
        )
        routes = [ModelRoute(r.match, r.engine) for r in settings.models] or [
            ModelRoute("*", "default")
        ]
        self.resolver = Resolver(
            routes=routes,
            aliases=dict(settings.aliases),
            extra_models=settings.catalog.extra_models(),
            strict=settings.catalog.strict,
        )
        self.embedder = BertEmbedder(settings.embeddings.model)
        region = settings.server.region
        self.guardrails = open_guardrails(
            settings.guardrails, region, self.embedder, settings.auth.account_id
        )
        self.bedrock = BedrockRuntime(
            self.resolver, self.engines, self.embedder, settings.speech, self.guardrails
        )
        self.openai_chat = OpenAIChatCompletions(self.bedrock)
        self.control_plane = BedrockControlPlane(
            self.resolver.known_models, region, self.resolver.model_for
        )
        self.services: list[ServiceBinding] = []
        self.add_service(
            "bedrock-runtime",
            {
                **self.bedrock.operations(),
                **ConverseOperations(self.bedrock).operations(),
                **ApplyGuardrail(self.guardrails).operations(),
                **GuardrailChecks().operations(),
            },
        )
        self.add_service(
            "bedrock",
            {
                **self.control_plane.operations(),
                **GuardrailAdmin(self.guardrails.store, region).operations(),
            },
        )
        self.sagemaker = SageMakerRuntime(
            settings.sagemaker, self.engines, engine_settings=settings.engines
        )
        self.add_service(
            "sagemaker-runtime", self.sagemaker.operations(), internal_error=InternalStreamFailure
        )
        self.interceptors: list[Interceptor] = []
        self.metrics = Metrics(
            self.engines, settings.aliases, settings.limits.max_metric_label_values
        )
        self.interceptors.append(self.metrics)
        self.invocation_log = InvocationLog.from_settings(settings.invocation_log)
        if self.invocation_log is not None:
            self.interceptors.append(self.invocation_log)
        access_log = AccessLog.from_settings(settings.server)
        if access_log is not None:
            self.interceptors.append(access_log)
        self.local_routes: dict[tuple[str, str], LocalHandler] = {
            ("GET", "/_outcrop/health"): self._health_route,
        }
        self.local_routes[("GET", "/metrics")] = self.metrics.route
        self.admin_guard = AdminGuard(settings.auth, settings.admin)
        EndpointAdmin(self.sagemaker).attach(self.local_routes)
        self._start_tasks: list[asyncio.Task[None]] = []
        self.faults = security.install(
            settings,
            self.interceptors,
            self.local_routes,
            self.engines,
            guardrail_arns=self.guardrails.store.arn_of,
        )

    def add_service(
        self,
        service_name: str,
        operations: Mapping[str, Operation],
        internal_error: Callable[[str], AwsError] = InternalServerException,
    ) -> ServiceBinding:
        """Serve another AWS service (matched after those added before it)."""
        spec = ServiceSpec.load(service_name)
        binding = ServiceBinding(
            spec,
            dict(operations),
            internal_error,
            {op: stream_exception_names(spec, op) for op in spec.model.operation_names},
        )
        self.services.append(binding)
        return binding

    # -- lifecycle ---------------------------------------------------------------------------

    def start_engines(self) -> None:
        """Start loading every engine in the background; health reports progress."""
        for engine in self.engines.values():
            self._start_tasks.append(asyncio.create_task(self._start(engine)))

    async def _start(self, engine: Engine) -> None:
        try:
            await engine.start()
        except Exception as exc:
            # One line; the traceback at DEBUG (`outcrop serve` reports failures in one line).
            log.error("engine %s failed to start: %s", engine.name, exc)
            log.debug("engine %s failed to start", engine.name, exc_info=True)

    async def wait_ready(self) -> None:
        if self._start_tasks:
            await asyncio.gather(*self._start_tasks)

    async def close(self) -> None:
        for task in self._start_tasks:
            task.cancel()
        await self.sagemaker.close()
        self.bedrock.bidirectional.close()
        for engine in self.engines.values():
            await engine.close()
        if self.invocation_log is not None:
            self.invocation_log.close()
        await self.embedder.close()

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
        path = raw_path.split("?", 1)[0]
        local = self.local_routes.get((method, path))
        if local is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            try:
                body = await read_body(receive, self.settings.admin.max_body_bytes)
            except BodyTooLarge:
                answer = self.admin_guard.too_large()
            else:
                refusal = self.admin_guard.refusal(scope, method, path, query, body)
                answer = refusal or await local(LocalRequest(method, path, query, body))
            await send_response(send, answer.status, [*base_headers, *answer.headers], answer.body)
            return
        refused = self.admin_guard.cross_site(scope)  # a web page's form post, not an SDK
        if refused is not None:
            raise refused
        if (method, path) == ("POST", CHAT_COMPLETIONS):
            await self._openai_chat(scope, receive, send, request_id, base_headers, path)
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

    async def _openai_chat(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str,
        base_headers: list[tuple[str, str]],
        path: str,
    ) -> None:
        """Bedrock's OpenAI-compatible Chat Completions (services/openai_chat.py)."""
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
        result = await self.openai_chat.handle(ctx, self.interceptors)
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

    # -- local routes ------------------------------------------------------------------------

    async def _health_route(self, request: LocalRequest) -> Response:
        status, body = self.health()
        return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)

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
        # Reported, not gating: text models serve without the embedding model.
        embedder = self.embedder.health()
        body["speech"] = self.bedrock.bidirectional.health()
        body["embeddings"] = {
            "ready": embedder.ready,
            "state": embedder.state,
            "detail": embedder.detail,
        }
        return (200 if ready else 503), body
