"""Amazon SageMaker Runtime operations: InvokeEndpoint, InvokeEndpointWithResponseStream and
InvokeEndpointAsync.

An invocation is routed (endpoint → inference component or variant → container, or the
session's instance), waits for a free instance slot, and is handed to the container's
backend; the container's answer becomes SageMaker's: 2xx bodies pass through byte for byte
(whole, or as `PayloadPart` events as they arrive), 4xx/5xx become ModelError (424) with
`OriginalStatusCode`, `OriginalMessage` and `LogStreamArn`, a container failing `/ping`
becomes ModelNotReadyException, and the invocation limit (60 s unless configured) and a
broken connection become ModelError before the first byte and a `ModelStreamError` frame
(`ModelInvocationTimeExceeded`, `StreamBroken`) after it. Session headers the model answers
with open and close sessions in the session table.

InvokeEndpointAsync's jobs are committed to the state store before the 202
(`sagemaker.async_jobs`): a job whose replica stops before it finishes is run by the next
replica (or start) that finds its lease expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from outcrop.config import EngineSettings, SageMakerSettings
from outcrop.engines.base import Engine
from outcrop.engines.factory import build_engine
from outcrop.invocation.admission import CallAdmission
from outcrop.invocation.engines import picked_engine
from outcrop.sagemaker.async_inference import AsyncStorage
from outcrop.sagemaker.async_jobs import AsyncJob, AsyncJobs, storable_params
from outcrop.sagemaker.backends import (
    CLOSED_SESSION_HEADER,
    CUSTOM_ATTRIBUTES,
    NEW_SESSION_HEADER,
    Backend,
    BackendBroken,
    BackendNotReady,
    BackendResponse,
    EndpointRequest,
    EngineBackend,
    HttpClient,
    HttpContainerBackend,
    StreamBroken,
)
from outcrop.sagemaker.capacity import InstancePool, Slot
from outcrop.sagemaker.endpoints import Destination, EndpointRegistry, EndpointSpec, RouteRequest
from outcrop.sagemaker.multi_model import MultiModelBackend
from outcrop.sagemaker.sessions import NEW_SESSION, Session, SessionTable, parse_new_session
from outcrop.services.base import Operation, RequestContext, Response, StreamResponse
from outcrop.state.store import StateUnavailable
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    AwsError,
    InternalFailure,
    ModelError,
    ModelStreamError,
    SageMakerModelNotReady,
    SageMakerValidationError,
    ServiceUnavailable,
)

log = logging.getLogger("outcrop.sagemaker")

SYNC_PAYLOAD_MAX = 6_291_456
"""InvokeEndpoint's 6 MiB limit, on the request (enforced from the model) and the response."""
ASYNC_TIMEOUT_DEFAULT_S = 900.0
ERROR_BODY_KEEP = 64 * 1024
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


@dataclass(frozen=True, slots=True)
class Target:
    """A routed invocation: where it goes and which instance (if pinned) serves it."""

    route: Destination
    instance: int | None = None
    session: Session | None = None


class _Lease:
    """What a streamed response holds until it ends: a slot and the container's body."""

    def __init__(self, slot: Slot, response: BackendResponse) -> None:
        self.slot = slot
        self.response = response

    def release(self) -> None:
        self.response.close()
        self.slot.release()


class SageMakerRuntime:
    """The sagemaker-runtime operations Outcrop serves."""

    def __init__(
        self,
        settings: SageMakerSettings,
        engines: Mapping[str, Engine],
        *,
        engine_settings: Mapping[str, EngineSettings] | None = None,
        registry: EndpointRegistry | None = None,
        clock: Callable[[], float] = time.time,
        jobs: AsyncJobs | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.engine_settings = dict(engine_settings or {})
        """The engines' configuration: multi-model containers build models from it."""
        self.registry = registry or EndpointRegistry(settings)
        self.sessions = SessionTable(clock)
        self.storage = AsyncStorage(settings.async_local_root)
        self.http = HttpClient()
        self._clock = clock
        self._pools: dict[tuple[str, str], InstancePool] = {}
        self._backends: dict[tuple[str, str, str], Backend] = {}
        self._async_tasks: set[asyncio.Task[None]] = set()
        self.jobs = jobs
        """Where accepted async jobs are kept until they finish (None: in memory only)."""
        self._maintenance: asyncio.Task[None] | None = None
        self.registry.on_evicted.append(self._forget)

    def operations(self) -> dict[str, Operation]:
        return {
            "InvokeEndpoint": _guarded(self.invoke_endpoint),
            "InvokeEndpointWithResponseStream": _guarded(self.invoke_endpoint_with_response_stream),
            "InvokeEndpointAsync": _guarded(self.invoke_endpoint_async),
        }

    def start(self) -> None:
        """Begin keeping async jobs: take over those left unfinished, renew leases."""
        if self.jobs is not None and self._maintenance is None:
            self._maintenance = asyncio.create_task(self._maintain(self.jobs))

    async def _maintain(self, jobs: AsyncJobs) -> None:
        while True:
            try:
                for job_id in await jobs.renew():
                    log.warning("async job %s: lease lost to another replica", job_id)
                for job in await jobs.take_over():
                    log.info("async job %s: taken over (its replica did not finish it)", job.job_id)
                    self._spawn(self._resume(job))
            except StateUnavailable as exc:
                log.warning("async jobs: state store unavailable (%s)", exc)
            await asyncio.sleep(jobs.lease_s / 3)

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        for task in list(self._async_tasks):
            task.cancel()
        for task in list(self._async_tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.jobs is not None:
            await self.jobs.release()
        for backend in self._backends.values():
            if isinstance(backend, MultiModelBackend):
                await backend.close()
        await self.http.close()

    # -- operations --------------------------------------------------------------------------

    async def invoke_endpoint(self, ctx: RequestContext) -> Response:
        target = self._target(ctx)
        route = target.route
        deadline = _deadline(route.endpoint.invocation_timeout_s)
        session_id = _param(ctx, "SessionId")
        slot = await self._slot(target, deadline)
        try:
            response = await self._invoke(ctx, target, slot, deadline)
            try:
                body = await self._read_body(response, route, deadline)
            finally:
                response.close()
        finally:
            slot.release()
        if not 200 <= response.status < 300:
            raise self.model_error(ctx, route, response.status, body)
        if len(body) > SYNC_PAYLOAD_MAX:
            # Unverified wording; the limit itself is documented.
            raise self.model_error(
                ctx,
                route,
                500,
                f"Response payload of {len(body)} bytes exceeds the {SYNC_PAYLOAD_MAX}-byte "
                "limit of InvokeEndpoint.".encode(),
            )
        headers = [
            ("Content-Type", response.content_type or "application/octet-stream"),
            ("x-Amzn-Invoked-Production-Variant", route.variant.name),
            *_custom_attributes(response),
        ]
        headers += self._session_headers(target, slot.instance, response, session_id)
        return Response(body, headers)

    async def invoke_endpoint_with_response_stream(self, ctx: RequestContext) -> StreamResponse:
        target = self._target(ctx)
        route = target.route
        deadline = _deadline(route.endpoint.invocation_timeout_s)
        slot = await self._slot(target, deadline)
        try:
            response = await self._invoke(ctx, target, slot, deadline)
        except BaseException:
            slot.release()
            raise
        if not 200 <= response.status < 300:
            try:
                body = await self._read_body(response, route, deadline)
            finally:
                response.close()
                slot.release()
            raise self.model_error(ctx, route, response.status, body)
        self._session_headers(target, slot.instance, response, _param(ctx, "SessionId"))
        lease = _Lease(slot, response)
        frames = self._frames(ctx, route, response, deadline, lease)
        # A stream closed before it started never runs its `finally`; give the slot back when
        # the generator is collected instead.
        weakref.finalize(frames, lease.release)
        headers = [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            ("X-Amzn-SageMaker-Content-Type", response.content_type or "application/octet-stream"),
            ("x-Amzn-Invoked-Production-Variant", route.variant.name),
            *_custom_attributes(response),
        ]
        return StreamResponse(headers, frames)

    async def invoke_endpoint_async(self, ctx: RequestContext) -> Response:
        input_location = _param(ctx, "InputLocation")
        if ctx.body and input_location is not None:
            # Unverified wording (AWS documents that the two are mutually exclusive).
            raise SageMakerValidationError(
                "Body and InputLocation are mutually exclusive. Provide exactly one of them."
            )
        if not ctx.body and input_location is None:
            raise SageMakerValidationError(
                "Either Body or InputLocation is required. Provide exactly one of them."
            )
        if input_location is not None:
            self.storage.input_path(input_location)  # ValidationError before the 202
        route = self.registry.route(RouteRequest(str(ctx.params["EndpointName"])))
        ctx.record.model_id = route.endpoint.name
        inference_id = _param(ctx, "InferenceId") or str(uuid.uuid4())
        locations = self.storage.locations(
            route.endpoint.name,
            inference_id,
            output_path=route.endpoint.async_output_path,
            failure_path=route.endpoint.async_failure_path,
            extension=_param(ctx, "S3OutputPathExtension"),
            filename=_param(ctx, "Filename"),
        )
        timeout = float(_param(ctx, "InvocationTimeoutSeconds") or ASYNC_TIMEOUT_DEFAULT_S)
        job = AsyncJob(
            ctx.request_id,
            route.endpoint.name,
            storable_params(dict(ctx.params)),
            ctx.headers,
            ctx.body,
            input_location,
            timeout,
            locations.output,
            locations.failure,
        )
        if self.jobs is not None:
            try:
                await self.jobs.accept(job)
            except StateUnavailable as exc:
                # Outcrop's wording; the job is not accepted, so nothing is lost.
                raise ServiceUnavailable(
                    f"The asynchronous inference could not be queued: the state store is "
                    f"unavailable ({exc}). Try again."
                ) from None
        self._spawn(self._run_job(ctx, Target(route), job))
        headers = [
            ("Content-Type", "application/json"),
            ("X-Amzn-SageMaker-OutputLocation", locations.output),
            ("X-Amzn-SageMaker-FailureLocation", locations.failure),
        ]
        return Response(json.dumps({"InferenceId": inference_id}).encode(), headers, status=202)

    # -- routing, capacity, invocation -------------------------------------------------------

    def _forget(self, endpoint: EndpointSpec) -> None:
        """Drop the pools and backends of an endpoint the registry evicted (calls in flight
        keep theirs until they end)."""
        for key in [k for k in self._pools if k[0] == endpoint.name]:
            del self._pools[key]
        for backend_key in [k for k in self._backends if k[0] == endpoint.name]:
            del self._backends[backend_key]

    def _target(self, ctx: RequestContext) -> Target:
        endpoint = str(ctx.params["EndpointName"])
        ctx.record.model_id = endpoint
        session_id = _param(ctx, "SessionId")
        if session_id is not None and session_id != NEW_SESSION:
            self.registry.get(endpoint)
            session = self.sessions.lookup(endpoint, session_id)
            return Target(session.route, session.instance, session)
        route = self.registry.route(
            RouteRequest(
                endpoint,
                target_variant=_param(ctx, "TargetVariant"),
                target_container=_param(ctx, "TargetContainerHostname"),
                inference_component=_param(ctx, "InferenceComponentName"),
                target_model=_param(ctx, "TargetModel"),
            )
        )
        return Target(route)

    def pool(self, route: Destination) -> InstancePool:
        pool = self._pools.get(route.pool_key)
        if pool is None:
            instances, per_instance = route.capacity
            pool = self._pools[route.pool_key] = InstancePool(instances, per_instance)
        return pool

    def backend(self, route: Destination) -> Backend:
        container = route.container
        key = (*route.pool_key, container.hostname)
        backend = self._backends.get(key)
        if backend is not None:
            return backend
        if container.engine is not None:
            engine = self.engines.get(container.engine)
            if engine is None:
                raise ServiceUnavailable(
                    f"No engine named {container.engine} serves endpoint {route.endpoint.name}."
                )
            dialect = None if container.dialect == "auto" else container.dialect

            def engine_backend(engine: Engine) -> EngineBackend:
                return EngineBackend(
                    engine,
                    dialect,
                    inputs_dialect=self.settings.inputs_dialect,
                    session_ttl_s=route.endpoint.session_ttl_s,
                    clock=self._clock,
                )

            if container.models_dir is not None:
                backend = MultiModelBackend(
                    f"{route.endpoint.name}/{container.hostname}",
                    container.models_dir,
                    self.engine_settings[container.engine],
                    container.max_loaded_models,
                    engine_backend,
                    build_engine,
                )
            else:
                backend = engine_backend(engine)
        else:
            backend = HttpContainerBackend(container.hostname, container.urls, self.http)
        self._backends[key] = backend
        return backend

    async def _slot(self, target: Target, deadline: float) -> Slot:
        try:
            async with asyncio.timeout_at(deadline):
                return await self.pool(target.route).acquire(target.instance)
        except TimeoutError:
            raise self.timeout_error(target.route) from None

    async def _invoke(
        self, ctx: RequestContext, target: Target, slot: Slot, deadline: float
    ) -> BackendResponse:
        route = target.route
        backend = self.backend(route)
        # Engine-backed containers admit the call once its body is parsed (token quotas), and
        # pick a queued scripted answer then; real containers' bodies are not parsed here.
        admission: CallAdmission | None = CallAdmission(ctx, route.endpoint.name)
        if not isinstance(backend, EngineBackend):
            scripted = picked_engine(ctx)
            if scripted is not None:  # a queued scripted response, in the container's format
                admission = None
                backend = EngineBackend(
                    scripted,
                    None,
                    inputs_dialect=self.settings.inputs_dialect,
                    session_ttl_s=route.endpoint.session_ttl_s,
                    clock=self._clock,
                )
        invocation = EndpointRequest(
            request_id=ctx.request_id,
            body=ctx.body,
            content_type=_param(ctx, "ContentType"),
            accept=_param(ctx, "Accept"),
            custom_attributes=_param(ctx, "CustomAttributes"),
            inference_id=_param(ctx, "InferenceId"),
            session_id=_param(ctx, "SessionId"),
            instance=slot.instance,
            target_model=_param(ctx, "TargetModel"),
            admission=admission,
        )
        try:
            async with asyncio.timeout_at(deadline):
                return await backend.invoke(invocation)
        except TimeoutError:
            raise self.timeout_error(route) from None
        except BackendNotReady as exc:
            log.info("%s/%s not ready: %s", route.endpoint.name, route.container.hostname, exc)
            # Unverified wording.
            raise SageMakerModelNotReady(
                f"Model for endpoint {route.endpoint.name} (container "
                f"{route.container.hostname} of variant {route.variant.name}) is not ready "
                "for inference yet. Wait and try your request again."
            ) from None
        except BackendBroken as exc:
            raise ModelError(
                self._received(ctx, route, "server error (0)", str(exc)),
                log_stream_arn=self.log_stream_arn(ctx, route),
            ) from None

    async def _read_body(
        self, response: BackendResponse, route: Destination, deadline: float
    ) -> bytes:
        parts: list[bytes] = []
        size = 0
        keep = SYNC_PAYLOAD_MAX + 1 if 200 <= response.status < 300 else ERROR_BODY_KEEP
        try:
            async with asyncio.timeout_at(deadline), contextlib.aclosing(response.chunks) as body:
                async for chunk in body:
                    if size < keep:
                        parts.append(chunk[: keep - size])
                    size += len(chunk)
        except TimeoutError:
            raise self.timeout_error(route) from None
        except StreamBroken as exc:
            raise ModelError(
                f"The connection to container {route.container.hostname} was closed before "
                f"its response was complete: {exc}"
            ) from None
        return b"".join(parts)

    async def _frames(
        self,
        ctx: RequestContext,
        route: Destination,
        response: BackendResponse,
        deadline: float,
        lease: _Lease,
    ) -> AsyncGenerator[bytes, None]:
        loop = asyncio.get_running_loop()
        try:
            async with contextlib.aclosing(response.chunks) as chunks:
                while True:
                    remaining = deadline - loop.time()
                    try:
                        if remaining <= 0:
                            raise TimeoutError
                        async with asyncio.timeout(remaining):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise ModelStreamError(
                            f"Your model did not finish its response within the invocation "
                            f"timeout of {route.endpoint.invocation_timeout_s:g} seconds.",
                            error_code="ModelInvocationTimeExceeded",
                        ) from None
                    except StreamBroken as exc:
                        raise ModelStreamError(
                            f"The connection to container {route.container.hostname} was "
                            f"closed before its response was complete: {exc}",
                            error_code="StreamBroken",
                        ) from None
                    if chunk:
                        if ctx.record.first_byte_ms is None:
                            ctx.record.first_byte_ms = ctx.elapsed_ms()
                        yield eventstream.payload_part_frame(chunk)
        finally:
            lease.release()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._async_tasks.add(task)
        task.add_done_callback(self._async_tasks.discard)

    async def _run_job(self, ctx: RequestContext, target: Target, job: AsyncJob) -> None:
        await self._run_async(
            ctx, target, job.input_location, job.timeout_s, job.output, job.failure
        )
        if self.jobs is not None:
            await self.jobs.finished(job.job_id)

    async def _resume(self, job: AsyncJob) -> None:
        """Run a job another replica (or an earlier run of this one) accepted."""
        ctx = RequestContext(
            job.job_id,
            "InvokeEndpointAsync",
            job.params,
            job.body,
            service="sagemaker-runtime",
            headers=job.headers,
        )
        try:
            target = Target(self.registry.route(RouteRequest(job.endpoint)))
        except AwsError as err:  # the endpoint is gone from the configuration
            self._write_failure(job.failure, {"ErrorCode": err.code, **err.body()})
            if self.jobs is not None:
                await self.jobs.finished(job.job_id)
            return
        await self._run_job(ctx, target, job)

    async def _run_async(
        self,
        ctx: RequestContext,
        target: Target,
        input_location: str | None,
        timeout_s: float,
        output: str,
        failure: str,
    ) -> None:
        route = target.route
        try:
            body = ctx.body if input_location is None else self.storage.read(input_location)
            request = RequestContext(
                ctx.request_id,
                ctx.operation,
                ctx.params,
                body,
                service=ctx.service,
                headers=ctx.headers,
            )
            deadline = _deadline(timeout_s)
            slot = await self._slot(target, deadline)
            try:
                response = await self._invoke(request, target, slot, deadline)
                try:
                    answer = await self._read_body(response, route, deadline)
                finally:
                    response.close()
            finally:
                slot.release()
            if not 200 <= response.status < 300:
                raise self.model_error(request, route, response.status, answer)
            self.storage.write(output, answer)
        except asyncio.CancelledError:
            raise
        except AwsError as err:
            self._write_failure(failure, {"ErrorCode": err.code, **err.body()})
        except OSError as exc:
            self._write_failure(
                failure, {"ErrorCode": "InputNotFound", "Message": f"Could not read input: {exc}"}
            )
        except Exception:
            log.exception("async inference %s failed", ctx.request_id)
            self._write_failure(
                failure, {"ErrorCode": "InternalFailure", "Message": "Internal failure."}
            )

    def _write_failure(self, location: str, body: dict[str, Any]) -> None:
        try:
            self.storage.write(location, json.dumps(body).encode())
        except OSError:
            log.exception("could not write async failure to %s", location)

    # -- sessions ----------------------------------------------------------------------------

    def _session_headers(
        self,
        target: Target,
        instance: int,
        response: BackendResponse,
        requested: str | None,
    ) -> list[tuple[str, str]]:
        """Record the sessions the model opened or closed; the headers to answer with."""
        out: list[tuple[str, str]] = []
        announced = response.headers.get(NEW_SESSION_HEADER)
        if announced is not None and requested == NEW_SESSION:
            default_expiry = self.sessions.now() + target.route.endpoint.session_ttl_s
            session_id, expires = parse_new_session(announced, default_expiry)
            if session_id:
                self.sessions.open(session_id, target.route, instance, expires)
                out.append(("X-Amzn-SageMaker-New-Session-Id", announced))
        closed = response.headers.get(CLOSED_SESSION_HEADER)
        if closed is not None:
            self.sessions.close(closed.strip())
            out.append(("X-Amzn-SageMaker-Closed-Session-Id", closed))
        return out

    # -- SageMaker's errors ------------------------------------------------------------------

    def region(self, ctx: RequestContext) -> str:
        """The region the client signed for, else the configured one."""
        found = _CREDENTIAL_REGION.search(ctx.header("authorization") or "")
        return found.group(1) if found else self.settings.region

    def log_stream_arn(self, ctx: RequestContext, route: Destination) -> str:
        return (
            f"arn:aws:logs:{self.region(ctx)}:{self.settings.account_id}:log-group:"
            f"/aws/sagemaker/Endpoints/{route.endpoint.name}"
        )

    def _received(self, ctx: RequestContext, route: Destination, what: str, message: str) -> str:
        # Real SageMaker's format: 'Received client error (400) from primary with message
        # "<container body>". See https://<region>.console.aws.amazon.com/cloudwatch/home?...
        # in account <id> for more information.'
        region = self.region(ctx)
        return (
            f'Received {what} from {route.container.hostname} with message "{message}". See '
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logEventViewer:group=/aws/sagemaker/Endpoints/{route.endpoint.name} in account "
            f"{self.settings.account_id} for more information."
        )

    def model_error(
        self, ctx: RequestContext, route: Destination, status: int, body: bytes
    ) -> ModelError:
        text = body.decode("utf-8", "replace")
        side = "client" if status < 500 else "server"
        return ModelError(
            self._received(ctx, route, f"{side} error ({status})", text),
            original_status_code=status,
            original_message=text,
            log_stream_arn=self.log_stream_arn(ctx, route),
        )

    def timeout_error(self, route: Destination) -> ModelError:
        # Real SageMaker's wording (as quoted from a ModelError by the AWS Java SDK, whose
        # message has no closing quote and no CloudWatch link).
        hostname = route.container.hostname
        return ModelError(
            f'Received server error (0) from {hostname} with message "Your invocation timed '
            f"out while waiting for a response from container {hostname}. Review the latency "
            "metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
        )


def _guarded(
    operation: Callable[[RequestContext], Awaitable[Response | StreamResponse]],
) -> Operation:
    """Translate anything that is not an AWS error into SageMaker's InternalFailure, once."""

    async def run(ctx: RequestContext) -> Response | StreamResponse:
        try:
            return await operation(ctx)
        except AwsError:
            raise
        except Exception:
            log.exception("sagemaker request %s failed", ctx.request_id)
            raise InternalFailure("An internal error occurred. Try your request again.") from None

    return run


def _param(ctx: RequestContext, name: str) -> str | None:
    value = ctx.params.get(name)
    return None if value is None else str(value)


def _deadline(timeout_s: float) -> float:
    return asyncio.get_running_loop().time() + timeout_s


def _custom_attributes(response: BackendResponse) -> list[tuple[str, str]]:
    value = response.headers.get(CUSTOM_ATTRIBUTES)
    return [] if value is None else [("X-Amzn-SageMaker-Custom-Attributes", value)]
