"""InvokeModelWithBidirectionalStream: a Nova Sonic speech session over one full-duplex request.

The operation resolves the model (it must take speech input), answers 200 at once, and then
runs two loops for the life of the session: input (request-body bytes → signed outer frames,
their signatures checked → inner `chunk` events → the session) and output (session events →
`chunk` frames). A session ends after `sessionEnd`; after `session_limit_s` with
ModelTimeoutException (Bedrock's 8 minutes); after `input_timeout_s` without input with
ValidationException "Timed out waiting for input events" (Bedrock's message); on malformed or
out-of-order input, or a signature that does not verify, with ValidationException; when the
client goes away (the gateway closes the frames, which cancels everything the session runs).
After the last frame the response waits briefly for the client's end of input, so the client
sees its stream end cleanly rather than reset.

Each assistant turn is a generation admitted through the invocation layer
(`invocation.admission.CallAdmission`): token quotas reserve per turn (a refusal ends the session
with ThrottlingException, also for a turn that could never fit the quota: the output union
models no quota-exceeded member), a scripted response queued for the session answers the next turn,
and the session's usage is the sum of its turns.

Event signatures: with verified credentials (`ctx.call.identity.verified`, set by the
authentication interceptor in `verify` mode) or a configured `event_signing_secret`, the chain
seeded by the request's signature is verified; otherwise each frame's `:date` and
`:chunk-signature` are only format-checked (`open` mode).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import orjson

from outcrop.catalog.resolver import ResolvedModel
from outcrop.config import SpeechSettings
from outcrop.engines.base import Engine, EngineError
from outcrop.invocation.admission import CallAdmission
from outcrop.services.base import DuplexOperation, RequestContext, StreamResponse
from outcrop.speech.models import SpeechModels, SpeechModelsUnavailable
from outcrop.speech.protocol import ProtocolError
from outcrop.speech.session import SessionOptions, SpeechSession
from outcrop.wire import eventstream
from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError, chunk_bytes
from outcrop.wire.errors import (
    AwsError,
    ModelStreamErrorException,
    ModelTimeoutException,
    ServiceQuotaExceededException,
    ServiceUnavailableException,
    ThrottlingException,
    ValidationException,
)
from outcrop.wire.event_signing import (
    EventChain,
    EventSigningError,
    key_from_secret,
    parse_authorization,
)

log = logging.getLogger("outcrop.speech")

# Verbatim from Bedrock: the session-length limit (aws-samples/amazon-nova-samples#147) and an
# idle input stream (reported by many Nova Sonic clients).
SESSION_TIMEOUT = "Model has timed out in processing the request. Try your request again."
INPUT_TIMEOUT = "Timed out waiting for input events"
# Unverified: Bedrock's message for a model without speech input on this operation.
NOT_BIDIRECTIONAL = "The provided model does not support bidirectional streaming."
END_OF_INPUT_GRACE_S = 2.0


class _End:
    """The session ended normally."""


_END = _End()
Item = dict[str, Any] | AwsError | _End


class BidirectionalStreaming:
    def __init__(
        self,
        resolve: Callable[[str], ResolvedModel],
        engines: Mapping[str, Engine],
        settings: SpeechSettings,
        models: SpeechModels | None = None,
    ) -> None:
        self.resolve = resolve
        self.engines = engines
        self.settings = settings
        self.models = models or SpeechModels(settings.asr_model, settings.voice, settings.workers)
        self.options = SessionOptions(
            chunk_ms=settings.chunk_ms,
            lead_s=settings.playback_lead_ms / 1000,
            tool_result_timeout_s=settings.tool_result_timeout_s,
            max_tool_rounds=settings.max_tool_rounds,
        )
        self.operation = DuplexOperation(self.invoke)
        self.sessions = 0
        """Sessions open now (each holds a reader task and the session's response task)."""

    def close(self) -> None:
        self.models.close()

    def health(self) -> dict[str, Any]:
        """Reported, not gating: text models serve without the speech models."""
        return {**self.models.health(), "sessions": self.sessions}

    async def invoke(self, ctx: RequestContext, body: AsyncIterator[bytes]) -> StreamResponse:
        resolved = self.resolve(str(ctx.params["modelId"]))
        if "SPEECH" not in resolved.model.input_modalities:
            raise ValidationException(NOT_BIDIRECTIONAL)
        ctx.record.model_id = resolved.model.model_id
        chain = self._chain(ctx)
        engine = self.engines[resolved.engine]
        headers = [("Content-Type", "application/vnd.amazon.eventstream")]
        admission = CallAdmission(ctx, resolved.model.model_id)
        return StreamResponse(headers, self._frames(ctx, body, chain, engine, admission))

    def _chain(self, ctx: RequestContext) -> EventChain | None:
        return input_chain(ctx, self.settings.event_signing_secret)

    async def _frames(
        self,
        ctx: RequestContext,
        body: AsyncIterator[bytes],
        chain: EventChain | None,
        engine: Engine,
        admission: CallAdmission,
    ) -> AsyncGenerator[bytes, None]:
        self.sessions += 1
        queue: asyncio.Queue[Item] = asyncio.Queue()
        session = SpeechSession(
            self.models, engine, queue.put_nowait, lambda exc: queue.put_nowait(_error(exc)),
            self.options, admission=admission,
        )  # fmt: skip
        reader = asyncio.create_task(self._read(body, chain, session, queue, ctx.request_id))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.session_limit_s
        error: AwsError | None = None
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    error = ModelTimeoutException(SESSION_TIMEOUT)
                    break
                if isinstance(item, _End):
                    break
                if isinstance(item, AwsError):
                    error = item
                    break
                if ctx.record.first_byte_ms is None:
                    ctx.record.first_byte_ms = ctx.elapsed_ms()
                yield _chunk(item)
            await session.close()
            if error is not None:
                ctx.record.error_code = error.code
                yield eventstream.exception_frame(error)
            # The client's end of input usually follows our last frame within milliseconds.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(reader), END_OF_INPUT_GRACE_S)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await session.close()
            self.sessions -= 1

    async def _read(
        self,
        body: AsyncIterator[bytes],
        chain: EventChain | None,
        session: SpeechSession,
        queue: asyncio.Queue[Item],
        request_id: str,
    ) -> None:
        """Input: decode, verify and hand over events until the session ends; then drain."""
        # The body is read by its own task and waited for through a queue: an idle timeout
        # must not cancel a pending ASGI receive() (Granian stops sending after that).
        arrived: asyncio.Queue[bytes | None] = asyncio.Queue()
        pump = asyncio.create_task(_pump_body(body, arrived))
        try:
            await self._consume(arrived, chain, session, queue, request_id)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _consume(
        self,
        arrived: asyncio.Queue[bytes | None],
        chain: EventChain | None,
        session: SpeechSession,
        queue: asyncio.Queue[Item],
        request_id: str,
    ) -> None:
        decoder = InputFrameDecoder()
        active = True
        while True:
            try:
                chunk = await asyncio.wait_for(arrived.get(), self.settings.input_timeout_s)
            except TimeoutError:
                if active:
                    queue.put_nowait(ValidationException(INPUT_TIMEOUT))
                return
            if chunk is None:
                break
            if not active:
                continue  # draining after the end, until the client's end of input
            try:
                for frame in decoder.feed(chunk):
                    if chain is not None:
                        chain.verify(frame)
                    if frame.is_final:
                        await session.finish()
                        queue.put_nowait(_END)
                        active = False
                        break
                    if await session.receive(chunk_bytes(frame.payload)):
                        queue.put_nowait(_END)
                        active = False
                        break
            except (ProtocolError, InputFrameError, EventSigningError) as exc:
                log.warning("session %s refused its input: %s", request_id, exc)
                queue.put_nowait(ValidationException(str(exc)))
                active = False
            except Exception as exc:
                # A bug, not the client's fault; the session must still end, not wait for its
                # limit with nobody reading its input.
                log.exception("session %s failed on its input", request_id)
                queue.put_nowait(_error(exc))
                active = False
        if active:
            # The body ended without the final frame or sessionEnd: answer what is under way.
            await session.finish()
            queue.put_nowait(_END)


def input_chain(ctx: RequestContext, event_signing_secret: str | None) -> EventChain | None:
    """The signature chain to verify the call's input events against, or None to format-check
    frames only (`open` mode). Shared with record and replay mode (recording/bidi.py), so that a
    forged event is refused the same way whoever answers the session."""
    identity = ctx.call.identity
    verified = identity.verified if identity is not None else None
    if verified is None and event_signing_secret is None:
        return None
    try:
        seed = parse_authorization(ctx.header("authorization"))
    except EventSigningError as exc:
        raise ValidationException(str(exc)) from None
    if verified is not None:
        key = verified.signing_key
        return EventChain.from_seed(seed, lambda date: key)
    return EventChain.from_seed(
        seed, key_from_secret(event_signing_secret or "", seed.region, seed.service)
    )


async def _pump_body(body: AsyncIterator[bytes], arrived: asyncio.Queue[bytes | None]) -> None:
    try:
        async for chunk in body:
            arrived.put_nowait(chunk)
    finally:
        arrived.put_nowait(None)


def _chunk(event: dict[str, Any]) -> bytes:
    """An output `chunk` frame: `{"bytes": base64(event JSON)}` (keys sorted, as Bedrock's)."""
    encoded = base64.b64encode(orjson.dumps(event, option=orjson.OPT_SORT_KEYS))
    return eventstream.event_frame("chunk", b'{"bytes":"' + encoded + b'"}')


def _error(exc: BaseException) -> AwsError:
    """A response task's failure as the stream exception the client gets: a member of the
    output event union (`InvokeModelWithBidirectionalStreamOutput`: internalServerException,
    modelStreamErrorException, validationException, throttlingException,
    modelTimeoutException, serviceUnavailableException), since an SDK cannot decode any other.
    """
    if isinstance(exc, ServiceQuotaExceededException):
        # A turn that can never fit a token quota. The union models no quota-exceeded member;
        # its quota error is throttlingException, whose shape the model documents as "denied
        # due to exceeding the account quotas for Amazon Bedrock" (docs/speech.md).
        return ThrottlingException(exc.message)
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ProtocolError):
        return ValidationException(str(exc))
    if isinstance(exc, SpeechModelsUnavailable):
        return ServiceUnavailableException(str(exc))
    if isinstance(exc, EngineError):
        return ModelStreamErrorException(
            f"The model failed while streaming: {exc}",
            original_status_code=500,
            original_message=str(exc),
        )
    return ModelStreamErrorException(
        "The model failed while streaming.", original_status_code=500, original_message=str(exc)
    )
