"""InvokeModelWithBidirectionalStream in record and replay mode.

Record: the call goes upstream over HTTP/2 (recording/h2duplex.py), signed with the user's
credentials and `x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-EVENTS`; each input frame
the client sends is unwrapped (its outer `:date`/`:chunk-signature` frame, format-checked: the
incoming chain is the client's, signed for this server) and its inner `chunk` message re-signed
in a new chain seeded by the upstream request's signature (wire/event_signing.py, docs/wire.md
§4), ending with the signed empty frame. Output frames are forwarded as they arrive. The
interaction holds the input events (`request.events`) and the output events, each with its
time since the call started, the audio of both directions moved into one blob each.

Replay: a session matches on operation and model ID (its body is the stream); the recorded
output events are sent at their recorded times (scaled), whatever the client sends, while the
client's input is read and dropped; then the reply waits briefly for the client's end of input,
as the live service does.
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
from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError
from outcrop.wire.errors import AccessDeniedException, AwsError, ServiceUnavailableException
from outcrop.wire.event_signing import (
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
    ) -> None:
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
        call = Call(service, ctx.operation, target, {"text": ""})
        decision = self.library.decide(call)
        if decision.replay is not None:
            return self._replay(ctx, decision.replay, body)
        if not decision.upstream:
            raise self.miss(call)
        return await self._forward(ctx, call, body)

    # -- replay --------------------------------------------------------------------------------

    def _replay(
        self, ctx: RequestContext, interaction: Interaction, body: AsyncIterator[bytes]
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
        return StreamResponse(list(response.headers), _replayed(timed, body))

    # -- record --------------------------------------------------------------------------------

    async def _forward(
        self, ctx: RequestContext, call: Call, body: AsyncIterator[bytes]
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
        pump = asyncio.create_task(_pump_input(body, duplex, signer, inputs, started))
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
        frames = self._relay(call, request_record, duplex, pump, inputs, kept, started, recorded_at)
        return StreamResponse(kept, frames)

    async def _relay(
        self,
        call: Call,
        request: RecordedRequest,
        duplex: DuplexCall,
        pump: asyncio.Task[bool],
        inputs: list[RecordedEvent],
        headers: list[tuple[str, str]],
        started: float,
        recorded_at: str,
    ) -> AsyncGenerator[bytes, None]:
        splitter = FrameSplitter()
        outputs: list[RecordedEvent] = []
        complete = False
        try:
            async for data in duplex.chunks():
                t = time.monotonic() - started
                for frame in splitter.feed(data):
                    outputs.append(RecordedEvent.from_frame(frame, t))
                    yield frame
            complete = not splitter.pending
            # The client's end of input usually follows the last output event closely.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                complete = await asyncio.wait_for(asyncio.shield(pump), END_OF_INPUT_GRACE_S)
        except DuplexError as exc:
            raise _unavailable(f"Outcrop recording: the upstream failed: {exc}") from None
        finally:
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
    inputs: list[RecordedEvent],
    started: float,
) -> bool:
    """The client's input, re-signed, to the upstream; True once it ended cleanly."""
    decoder = InputFrameDecoder()
    try:
        async for data in body:
            for frame in decoder.feed(data):
                if frame.is_final:
                    await duplex.send(signer.sign(b""))
                    await duplex.end()
                    return True
                inputs.append(RecordedEvent.from_frame(frame.payload, time.monotonic() - started))
                await duplex.send(signer.sign(frame.payload))
    except (InputFrameError, EventSigningError) as exc:
        log.warning("bidirectional input not forwarded: %s", exc)
        await duplex.end()
        return False
    # The body ended without the final frame: end the upstream's input the proper way.
    await duplex.send(signer.sign(b""))
    await duplex.end()
    return True


async def _replayed(
    timed: list[tuple[float, bytes]], body: AsyncIterator[bytes]
) -> AsyncGenerator[bytes, None]:
    async def drain() -> None:
        async for _ in body:
            pass

    reader = asyncio.create_task(drain())
    try:
        for at, frame in timed:
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            yield frame
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(reader), END_OF_INPUT_GRACE_S)
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


def _unavailable(message: str) -> AwsError:
    return ServiceUnavailableException(message)
