"""InvokeModelWithBidirectionalStream in record and replay mode.

Record: the call goes upstream over HTTP/2 (recording/h2duplex.py), signed with the user's
credentials and `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-EVENTS`; each input frame
the client sends is unwrapped (its outer `:date`/`:chunk-signature` frame: the incoming chain is
the client's, signed for this server, and is verified as a live session verifies it, by
`services.bidirectional.input_chain`: with verified credentials or an `event_signing_secret`)
and its inner `chunk` message re-signed in a new chain seeded by the upstream request's
signature (wire/event_signing.py, docs/wire.md §4), ending with the signed empty frame. An input
frame that does not verify ends the session with the live service's validationException frame,
and nothing is recorded. Output frames are forwarded as they arrive. The
interaction holds the input events (`request.events`) and the output events, each with its
time since the call started, the audio of both directions moved into one blob each.

Replay: a session matches on operation and model ID (its body is the stream); the recorded
output events are sent at their recorded times (scaled), whatever the client sends, while the
client's input is read, its signature chain verified as in record mode, and dropped (with a
chain to verify, nothing is sent before the client's first event verified); then the reply
waits briefly for the client's end of input, as the live service does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError

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
    replay_at,
    response_headers,
)
from outcrop.recording.h2duplex import DuplexCall, DuplexError, open_duplex
from outcrop.recording.library import Library
from outcrop.recording.upstream import SIGNING_NAMES, NoCredentials, Upstream, forwarded_headers
from outcrop.services.base import RequestContext, StreamResponse
from outcrop.services.bidirectional import input_chain
from outcrop.wire import eventstream
from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError
from outcrop.wire.errors import (
    AccessDeniedException,
    AwsError,
    ServiceUnavailableException,
    ValidationException,
)
from outcrop.wire.event_signing import (
    EventChain,
    EventSigningError,
    parse_authorization,
    sign_frame,
    signing_key,
)

log = logging.getLogger("outcrop.recording")

STREAMING_EVENTS = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
END_OF_INPUT_GRACE_S = 2.0


class UpstreamAnswer(AwsError):
    """An upstream's complete error answer to a bidirectional call, passed on as it came."""

    def __init__(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        super().__init__(body.decode("utf-8", "replace"))
        self._answer = status, list(headers), body

    def to_http(self) -> tuple[int, list[tuple[str, str]], bytes]:
        return self._answer


class Bidirectional:
    def __init__(
        self,
        library: Library,
        upstream: Upstream,
        speed: Callable[[], float],
        default_region: str,
        miss: Callable[[Call], AwsError],
        event_signing_secret: str | None = None,
    ) -> None:
        self.event_signing_secret = event_signing_secret
        """`[speech] event_signing_secret`: verifies input events without verified credentials."""
        self.library = library
        self.upstream = upstream
        self.speed = speed
        self.default_region = default_region
        self.miss = miss

    async def handle(
        self, service: str, ctx: RequestContext, body: AsyncIterator[bytes]
    ) -> StreamResponse:
        target = str(ctx.params.get("modelId", ""))
        ctx.record.model_id = target
        chain = input_chain(ctx, self.event_signing_secret)
        call = Call(service, ctx.operation, target, {"text": ""})
        decision = self.library.decide(call)
        if decision.replay is not None:
            return self._replay(ctx, decision.replay, body, chain)
        if not decision.upstream:
            raise self.miss(call)
        return await self._forward(ctx, call, body, chain)

    # -- replay --------------------------------------------------------------------------------

    def _replay(
        self,
        ctx: RequestContext,
        interaction: Interaction,
        body: AsyncIterator[bytes],
        chain: EventChain | None,
    ) -> StreamResponse:
        response = interaction.response
        if response.events is None:
            data = body_bytes(response.body) if response.body is not None else b""
            raise UpstreamAnswer(response.status, response.headers, data)
        speed = self.speed()
        timed = [
            (ctx.started + replay_at(e.t, speed), frame)
            for e, frame in zip(response.events, interaction.frames(), strict=True)
        ]
        return StreamResponse(list(response.headers), _replayed(ctx, timed, body, chain))

    # -- record --------------------------------------------------------------------------------

    async def _forward(
        self, ctx: RequestContext, call: Call, body: AsyncIterator[bytes], chain: EventChain | None
    ) -> StreamResponse:
        identity = ctx.call.identity
        region = identity.region if identity is not None else self.default_region
        url = self.upstream.url(call.service, region, ctx.raw_path, ctx.query)
        headers = forwarded_headers(ctx.headers)
        headers["X-Amz-Content-SHA256"] = STREAMING_EVENTS
        request = AWSRequest(method="POST", url=url, data=b"", headers=headers)
        signing_name = SIGNING_NAMES.get(call.service, call.service)
        try:
            frozen = self.upstream.credentials().get_frozen_credentials()
        except NoCredentials as exc:
            raise AccessDeniedException(str(exc)) from None
        except BotoCoreError as exc:
            raise AccessDeniedException(f"Outcrop recording: {exc}") from None
        SigV4Auth(frozen, signing_name, region).add_auth(request)
        seed = parse_authorization(request.headers["Authorization"]).signature
        recorded_at = now_iso()
        started = time.monotonic()
        try:
            duplex = await open_duplex("POST", url, list(request.headers.items()))
        except (OSError, TimeoutError) as exc:
            raise _unavailable(f"Outcrop recording: the upstream failed: {exc!r}") from None
        inputs: list[RecordedEvent] = []
        signer = _ChainSigner(seed, frozen.secret_key, region, signing_name)
        pump = asyncio.create_task(
            _pump_input(body, duplex, signer, chain, inputs, started, ctx.request_id)
        )
        try:
            await duplex.response()
        except DuplexError as exc:
            pump.cancel()
            await duplex.close()
            raise _unavailable(f"Outcrop recording: the upstream failed: {exc}") from None
        kept = list(response_headers(duplex.headers))
        request_record = RecordedRequest(
            ctx.method,
            ctx.raw_path,
            ctx.query,
            self.library.redaction.request_headers(ctx.headers),
            {"text": ""},
        )
        if duplex.status != 200:
            pump.cancel()
            data = b"".join([chunk async for chunk in duplex.chunks()])
            await duplex.close()
            await self.library.record(
                Interaction(
                    call.service,
                    call.operation,
                    call.target,
                    request_record,
                    RecordedResponse(duplex.status, tuple(kept), encode_body(data)),
                    recorded_at,
                    round(time.monotonic() - started, 6),
                )
            )
            raise UpstreamAnswer(duplex.status, kept, data)
        frames = self._relay(
            ctx, call, request_record, duplex, pump, inputs, kept, started, recorded_at
        )
        return StreamResponse(kept, frames)

    async def _relay(
        self,
        ctx: RequestContext,
        call: Call,
        request: RecordedRequest,
        duplex: DuplexCall,
        pump: asyncio.Task[bool | AwsError],
        inputs: list[RecordedEvent],
        headers: list[tuple[str, str]],
        started: float,
        recorded_at: str,
    ) -> AsyncGenerator[bytes, None]:
        splitter = FrameSplitter()
        outputs: list[RecordedEvent] = []
        complete = False
        chunks = aiter(duplex.chunks())
        step: asyncio.Future[bytes] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(chunks))
                if not pump.done():
                    await asyncio.wait({step, pump}, return_when=asyncio.FIRST_COMPLETED)
                refused = _refusal(pump)
                if refused is not None:
                    # The client's input did not verify: end as a live session ends.
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
                    ctx.record.error_code = refused.code
                    yield eventstream.exception_frame(refused)
                    return
                try:
                    data = await step
                except StopAsyncIteration:
                    break
                t = time.monotonic() - started
                for frame in splitter.feed(data):
                    outputs.append(RecordedEvent.from_frame(frame, t))
                    yield frame
            complete = not splitter.pending
            # The client's end of input usually follows the last output event closely.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                ended = await asyncio.wait_for(asyncio.shield(pump), END_OF_INPUT_GRACE_S)
                complete = ended is True
            refused = _refusal(pump)
            if refused is not None:
                ctx.record.error_code = refused.code
                yield eventstream.exception_frame(refused)
        except DuplexError as exc:
            raise _unavailable(f"Outcrop recording: the upstream failed: {exc}") from None
        finally:
            if step is not None and not step.done():
                step.cancel()
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            await duplex.close()
        if not complete:
            return
        in_audio, out_audio = bytearray(), bytearray()
        events_in = tuple(e.with_audio_in(in_audio) for e in inputs)
        events_out = tuple(e.with_audio_in(out_audio) for e in outputs)
        audio = {
            name: base64.b64encode(bytes(blob)).decode("ascii")
            for name, blob in (("input", in_audio), ("output", out_audio))
            if blob
        }
        await self.library.record(
            Interaction(
                call.service,
                call.operation,
                call.target,
                RecordedRequest(
                    request.method,
                    request.path,
                    request.query,
                    request.headers,
                    request.body,
                    events_in,
                ),
                RecordedResponse(200, tuple(headers), events=events_out),
                recorded_at,
                round(time.monotonic() - started, 6),
                audio,
            )
        )


class _ChainSigner:
    """Signs inner messages into outer frames, each signature chained to the previous one."""

    def __init__(self, seed: str, secret: str, region: str, service: str) -> None:
        self.prior = seed
        self.secret = secret
        self.region = region
        self.service = service

    def sign(self, payload: bytes) -> bytes:
        date_ms = int(time.time() * 1000)
        day = dt.datetime.fromtimestamp(date_ms // 1000, dt.UTC).strftime("%Y%m%d")
        key = signing_key(self.secret, day, self.region, self.service)
        frame, self.prior = sign_frame(self.prior, payload, date_ms, key, self.region, self.service)
        return frame


async def _pump_input(
    body: AsyncIterator[bytes],
    duplex: DuplexCall,
    signer: _ChainSigner,
    chain: EventChain | None,
    inputs: list[RecordedEvent],
    started: float,
    request_id: str,
) -> bool | AwsError:
    """The client's input, verified and re-signed, to the upstream; True once it ended cleanly,
    the validationException to end the session with when an input frame did not verify."""
    decoder = InputFrameDecoder()
    try:
        async for data in body:
            for frame in decoder.feed(data):
                if chain is not None:
                    chain.verify(frame)
                if frame.is_final:
                    await duplex.send(signer.sign(b""))
                    await duplex.end()
                    return True
                inputs.append(RecordedEvent.from_frame(frame.payload, time.monotonic() - started))
                await duplex.send(signer.sign(frame.payload))
    except (InputFrameError, EventSigningError) as exc:
        log.warning("session %s refused its input, not forwarded: %s", request_id, exc)
        with contextlib.suppress(DuplexError):
            await duplex.end()
        return ValidationException(str(exc))
    # The body ended without the final frame: end the upstream's input the proper way.
    await duplex.send(signer.sign(b""))
    await duplex.end()
    return True


def _refusal(pump: asyncio.Task[bool | AwsError]) -> AwsError | None:
    """The error the input task ended the session with, if it has."""
    if not pump.done() or pump.cancelled() or pump.exception() is not None:
        return None
    result = pump.result()
    return result if isinstance(result, AwsError) else None


async def _drain_input(
    body: AsyncIterator[bytes], chain: EventChain | None, request_id: str, heard: asyncio.Event
) -> bool | AwsError:
    """Replay: the client's input read and dropped, its frames checked as a live session checks
    them (`heard` set once one passed); the validationException when one does not verify."""
    decoder = InputFrameDecoder()
    checking = True
    try:
        async for data in body:
            if not checking:
                continue  # after the client's final frame, until its end of input
            for frame in decoder.feed(data):
                if chain is not None:
                    chain.verify(frame)
                heard.set()
                if frame.is_final:
                    checking = False
                    break
    except (InputFrameError, EventSigningError) as exc:
        log.warning("session %s refused its input: %s", request_id, exc)
        return ValidationException(str(exc))
    return True


async def _replayed(
    ctx: RequestContext,
    timed: list[tuple[float, bytes]],
    body: AsyncIterator[bytes],
    chain: EventChain | None,
) -> AsyncGenerator[bytes, None]:
    heard = asyncio.Event()
    reader = asyncio.create_task(_drain_input(body, chain, ctx.request_id, heard))
    try:
        if chain is not None:
            # A live session answers only input that verified: nothing goes out before the
            # client's first event did (or its input ended).
            hearing = asyncio.create_task(heard.wait())
            try:
                await asyncio.wait({hearing, reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                hearing.cancel()
        for at, frame in timed:
            wait = at - time.monotonic()
            if wait > 0 and not reader.done():
                await asyncio.wait({reader}, timeout=wait)
            refused = _refusal(reader)
            if refused is not None:
                ctx.record.error_code = refused.code
                yield eventstream.exception_frame(refused)
                return
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            yield frame
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(reader), END_OF_INPUT_GRACE_S)
        refused = _refusal(reader)
        if refused is not None:
            ctx.record.error_code = refused.code
            yield eventstream.exception_frame(refused)
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


def _unavailable(message: str) -> AwsError:
    return ServiceUnavailableException(message)
