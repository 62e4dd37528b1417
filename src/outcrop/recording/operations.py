"""Record and replay as the gateway's operations: in recording mode (`[recording] dir` set)
the Bedrock Runtime and SageMaker Runtime operations below are answered from cassettes or by
the upstream, instead of the local engines (the bidirectional stream: recording/bidi.py).

The seam is the operation: the gateway has routed and bound the call (so its operation and
target are known), and its interceptors run as configured (authentication of the incoming
call, policies, quotas, fault rules: a fault rule fires on a replayed or proxied stream at
event K as on an engine's stream, since the frames pass through `wrap_stream`).

* Replay: the matching interaction's response is sent back as recorded: status, headers and
  body bytes, or each event re-encoded byte for byte at its recorded time divided by
  `replay_speed` (0: at once), counted from the call's arrival.
* Upstream (record): the call goes to the upstream re-signed (recording/upstream.py); a stream
  is forwarded frame by frame as it arrives, each frame decoded and timed for the cassette;
  errors come back with the upstream's status, headers and body. The interaction is recorded
  once the answer is complete (a stream the client left early is not recorded).
* Miss (mode `none`, or `once` with an existing cassette): a modelled 400, Bedrock's
  `ValidationException` (SageMaker's `ValidationError`), whose message names the nearest
  recorded call and how the two differ.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from outcrop.config.recording import RecordingSettings
from outcrop.recording.bidi import Bidirectional
from outcrop.recording.cassette import (
    Call,
    FrameSplitter,
    Interaction,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    body_bytes,
    encode_body,
    now_iso,
    parsed_body,
    replay_at,
    response_headers,
)
from outcrop.recording.library import Library
from outcrop.recording.upstream import NoCredentials, Upstream
from outcrop.services.base import (
    DuplexOperation,
    Operation,
    RequestContext,
    Response,
    StreamResponse,
)
from outcrop.wire.errors import (
    AccessDeniedException,
    AwsError,
    SageMakerValidationError,
    ServiceUnavailable,
    ServiceUnavailableException,
    ValidationException,
)

log = logging.getLogger("outcrop.recording")

RECORDED: Mapping[str, tuple[str, ...]] = {
    "bedrock-runtime": (
        "InvokeModel",
        "InvokeModelWithResponseStream",
        "Converse",
        "ConverseStream",
        "CountTokens",
        "ApplyGuardrail",
    ),
    "sagemaker-runtime": ("InvokeEndpoint", "InvokeEndpointWithResponseStream"),
}
"""The operations recorded and replayed, by service."""

DUPLEX: Mapping[str, tuple[str, ...]] = {
    "bedrock-runtime": ("InvokeModelWithBidirectionalStream",),
}
"""The full-duplex operations recorded and replayed (recording/bidi.py)."""

EVENT_STREAM = "application/vnd.amazon.eventstream"

_TARGET_PARAMS = ("modelId", "EndpointName", "guardrailIdentifier")


def target_of(ctx: RequestContext) -> str:
    """The model ID, endpoint name or guardrail identifier the call names, as sent."""
    for name in _TARGET_PARAMS:
        value = ctx.params.get(name)
        if value is not None:
            return str(value)
    return ""


class RecordingOperations:
    """The recorded operations' handlers, sharing one cassette library and one upstream."""

    def __init__(
        self,
        settings: RecordingSettings,
        default_region: str,
        event_signing_secret: str | None = None,
    ) -> None:
        self.settings = settings
        self.library = Library(settings)
        self.upstream = Upstream(settings.upstream, settings.upstream_timeout_s)
        self.default_region = default_region
        self.bidirectional = Bidirectional(
            self.library,
            self.upstream,
            lambda: settings.replay_speed,
            default_region,
            self._miss,
            event_signing_secret,
        )

    def wrap(self, service: str, operations: Mapping[str, Any]) -> dict[str, Any]:
        """`operations` with the recorded ones answered here."""
        out = dict(operations)
        for name in RECORDED.get(service, ()):
            out[name] = self._operation(service, name)
        for name in DUPLEX.get(service, ()):
            out[name] = self._duplex(service)
        return out

    def _duplex(self, service: str) -> DuplexOperation:
        async def handle(ctx: RequestContext, body: AsyncIterator[bytes]) -> StreamResponse:
            return await self.bidirectional.handle(service, ctx, body)

        return DuplexOperation(handle)

    def _operation(self, service: str, name: str) -> Operation:
        async def handle(ctx: RequestContext) -> Response | StreamResponse:
            return await self.handle(service, ctx)

        return handle

    async def close(self) -> None:
        await self.upstream.close()

    # -- a call --------------------------------------------------------------------------------

    async def handle(self, service: str, ctx: RequestContext) -> Response | StreamResponse:
        library = self.library
        target = target_of(ctx)
        body = library.redaction.body(parsed_body(ctx.body))
        call = Call(service, ctx.operation, target, body)
        if service == "bedrock-runtime" and "modelId" in ctx.params:
            ctx.record.model_id = target  # for metrics and the invocation log
        decision = library.decide(call)
        if decision.replay is not None:
            return await self._replay(ctx, decision.replay)
        if not decision.upstream:
            raise self._miss(call)
        request = RecordedRequest(
            ctx.method,
            ctx.raw_path,
            ctx.query,
            library.redaction.request_headers(ctx.headers),
            body,
        )
        return await self._forward(ctx, call, request)

    def _miss(self, call: Call) -> AwsError:
        library = self.library
        where = (
            f"cassette {library.path}"
            if library.name is not None
            else f"{len(library.tape.interactions)} recorded calls under {library.dir}"
        )
        intro = (
            f"Outcrop replay: no recorded call matches this {call.operation} call on "
            f"{call.target!r} (mode {library.mode}, {where})."
        )
        found = library.nearest(call)
        if found is None:
            message = f"{intro} Nothing was recorded."
        else:
            nearest, differences = found
            message = (
                f"{intro} Nearest: {nearest.operation} on {nearest.target!r} recorded at "
                f"{nearest.recorded_at or 'an unknown time'}; differences: "
                f"{json.dumps(differences, ensure_ascii=False)}"
            )
        if call.service == "sagemaker-runtime":
            return SageMakerValidationError(message)
        return ValidationException(message)

    # -- replay --------------------------------------------------------------------------------

    async def _replay(
        self, ctx: RequestContext, interaction: Interaction
    ) -> Response | StreamResponse:
        response = interaction.response
        speed = self.settings.replay_speed
        headers = list(response.headers)
        if response.events is None:
            await _sleep_until(ctx.started + replay_at(interaction.duration, speed))
            body = body_bytes(response.body) if response.body is not None else b""
            return Response(body, headers, response.status)
        timed = [
            (ctx.started + replay_at(e.t, speed), frame)
            for e, frame in zip(response.events, interaction.frames(), strict=True)
        ]
        return StreamResponse(headers, _timed_frames(timed))

    # -- upstream ------------------------------------------------------------------------------

    async def _forward(
        self, ctx: RequestContext, call: Call, request: RecordedRequest
    ) -> Response | StreamResponse:
        identity = ctx.call.identity
        region = identity.region if identity is not None else self.default_region
        recorded_at = now_iso()
        try:
            answer = await self.upstream.send(
                call.service, region, ctx.method, ctx.raw_path, ctx.query, ctx.headers, ctx.body
            )
        except NoCredentials as exc:
            raise AccessDeniedException(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(
                call.service, f"Outcrop recording: the upstream failed: {exc!r}"
            ) from None
        headers = list(response_headers(answer.headers))
        if answer.status == 200 and answer.content_type.startswith(EVENT_STREAM):
            return StreamResponse(headers, self._relay(call, request, answer, headers, recorded_at))
        try:
            data = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(
                call.service, f"Outcrop recording: the upstream failed: {exc!r}"
            ) from None
        finally:
            answer.release()
        duration = time.monotonic() - answer.sent_at
        await self.library.record(
            Interaction(
                call.service,
                call.operation,
                call.target,
                request,
                RecordedResponse(answer.status, tuple(headers), encode_body(data)),
                recorded_at,
                round(duration, 6),
            )
        )
        return Response(data, headers, answer.status)

    async def _relay(
        self,
        call: Call,
        request: RecordedRequest,
        answer: Any,
        headers: list[tuple[str, str]],
        recorded_at: str,
    ) -> AsyncGenerator[bytes, None]:
        """The upstream's frames as they arrive, decoded and timed for the cassette."""
        splitter = FrameSplitter()
        events: list[RecordedEvent] = []
        decodable = True
        try:
            chunks: AsyncIterator[tuple[bytes, float]] = answer.chunks()
            async for data, t in chunks:
                for frame in splitter.feed(data):
                    if decodable:
                        try:
                            events.append(RecordedEvent.from_frame(frame, t))
                        except Exception:
                            log.warning(
                                "%s: an upstream frame does not decode; not recorded",
                                call.operation,
                            )
                            decodable = False
                    yield frame
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unavailable(
                call.service, f"Outcrop recording: the upstream failed: {exc!r}"
            ) from None
        finally:
            answer.release()
        if not decodable or splitter.pending:
            return
        duration = time.monotonic() - answer.sent_at
        await self.library.record(
            Interaction(
                call.service,
                call.operation,
                call.target,
                request,
                RecordedResponse(200, tuple(headers), events=tuple(events)),
                recorded_at,
                round(duration, 6),
            )
        )


async def _sleep_until(deadline: float) -> None:
    wait = deadline - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


async def _timed_frames(timed: list[tuple[float, bytes]]) -> AsyncGenerator[bytes, None]:
    for at, frame in timed:
        await _sleep_until(at)
        yield frame


def _unavailable(service: str, message: str) -> AwsError:
    if service == "sagemaker-runtime":
        return ServiceUnavailable(message)
    return ServiceUnavailableException(message)
