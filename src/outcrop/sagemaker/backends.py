"""What answers an invocation: an Outcrop engine behind a container dialect, or a real
container over HTTP (the SageMaker container contract: `GET /ping`, `POST /invocations`).

Both give back a `BackendResponse`: the container's status, content type and headers once
they are known, and its body as the chunks arrive. The service above turns that into
SageMaker's answer; here only transport failures are named: `BackendNotReady` (the container
does not pass `/ping`, or refuses connections), `BackendBroken` (it answered with something
that is not HTTP, or dropped the connection before its headers) and `StreamBroken` (the
connection failed while the body was streaming). Timeouts are the caller's.

An engine-backed container admits each generation through the request's `admission` (the
invocation layer's `CallAdmission`: token quotas reserve the input plus the maximum output once
the body is parsed, and a scripted answer queued for the call replaces the engine), and reports
the generation's usage to it, as InvokeModel and Converse do.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from outcrop.dialects.containers.base import (
    ContainerDialect,
    ContainerRejected,
    ContainerReply,
    ContainerStream,
)
from outcrop.dialects.containers.choice import DialectName, dialect_name_for_body, dialect_named
from outcrop.engines.base import Engine, EngineError, EngineNotReady, EngineRequestError
from outcrop.invocation.engines import generate
from outcrop.sagemaker.sessions import NEW_SESSION, format_new_session
from outcrop.types import Finish, GenerationEvent, GenerationRequest, TokenEvent
from outcrop.wire.jsonbody import JsonInputError, load_json

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
NEW_SESSION_HEADER = "x-amzn-sagemaker-new-session-id"
CLOSED_SESSION_HEADER = "x-amzn-sagemaker-closed-session-id"
PING_TIMEOUT_S = 2.0
"""The container contract: `/ping` answers within 2 seconds."""
PING_FRESH_S = 5.0
"""How long a passed `/ping` counts before the next invocation pings again."""


class BackendNotReady(Exception):
    """The container is not ready for inference (its `/ping` fails, or it refuses
    connections); the engine is still loading."""


class BackendBroken(Exception):
    """The container's answer was not a readable HTTP response."""


class StreamBroken(Exception):
    """The connection to the container failed while its body was streaming."""


class Admission(Protocol):
    """Admits an engine-backed call (invocation/admission.py `CallAdmission`)."""

    def admit(self, engine: Engine, request: GenerationRequest) -> Engine:
        """Run the call's admission checks for `request`; the engine that answers it."""
        ...

    def finished(self, finish: Finish) -> None:
        """The generation's usage."""
        ...


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """One request to a container, as SageMaker forwards it."""

    request_id: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    inference_id: str | None = None
    session_id: str | None = None
    instance: int = 0
    target_model: str | None = None
    """Multi-model endpoints: the model file the request names (TargetModel)."""
    admission: Admission | None = None
    """Engine-backed containers: admits the generation (None: it runs unchecked)."""


@dataclass(slots=True)
class BackendResponse:
    status: int
    content_type: str | None
    headers: Mapping[str, str]
    """The container's response headers, names lower-cased."""
    chunks: AsyncGenerator[bytes, None]
    close: Callable[[], None] = field(default=lambda: None)
    """Synchronous, idempotent cleanup for a body that will not be read to its end."""


class Backend(Protocol):
    async def invoke(self, invocation: EndpointRequest) -> BackendResponse: ...

    def ready(self) -> bool | None:
        """Ready as last seen (None: not checked yet)."""
        ...

    def describe(self) -> dict[str, Any]: ...


async def _one_chunk(body: bytes) -> AsyncGenerator[bytes, None]:
    if body:
        yield body


def reply_response(reply: ContainerReply, headers: Mapping[str, str]) -> BackendResponse:
    return BackendResponse(reply.status, reply.content_type, dict(headers), _one_chunk(reply.body))


# --- engine-backed containers -----------------------------------------------------------------


class EngineBackend:
    """An Outcrop engine speaking one container's body format.

    It also plays the stateful model's part of SageMaker sessions as LMI does: a request with
    `SessionId: NEW_SESSION` gets a new session ID and expiry in
    `X-Amzn-SageMaker-New-Session-Id` (a body of `{"requestType": "NEW_SESSION"}` only opens
    it), and `{"requestType": "CLOSE"}` with a session ID closes it. Custom attributes are
    echoed back.
    """

    def __init__(
        self,
        engine: Engine,
        dialect: DialectName | None,
        *,
        inputs_dialect: DialectName = "tgi",
        session_ttl_s: float = 1200.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.inputs_dialect = inputs_dialect
        self.session_ttl_s = session_ttl_s
        self._clock = clock

    def ready(self) -> bool | None:
        return self.engine.health().ready

    def describe(self) -> dict[str, Any]:
        return {
            "Engine": self.engine.name,
            "Dialect": self.dialect or f"auto (inputs: {self.inputs_dialect})",
            "Ready": self.ready(),
        }

    def dialect_for(self, body: bytes, engine: Engine | None = None) -> ContainerDialect:
        name = self.dialect or dialect_name_for_body(body, self.inputs_dialect)
        return dialect_named(name, (engine or self.engine).name)

    async def invoke(self, invocation: EndpointRequest) -> BackendResponse:
        health = self.engine.health()
        if not health.ready:
            raise BackendNotReady(health.detail or f"engine {self.engine.name} is {health.state}")
        headers: dict[str, str] = {}
        if invocation.custom_attributes is not None:
            headers[CUSTOM_ATTRIBUTES] = invocation.custom_attributes
        request_type = _request_type(invocation.body)
        if invocation.session_id == NEW_SESSION:
            session_id = str(uuid.uuid4())
            expires = self._clock() + self.session_ttl_s
            headers[NEW_SESSION_HEADER] = format_new_session(session_id, expires)
            if request_type == "NEW_SESSION":
                return _session_reply(f"Session {session_id} created", headers)
        elif invocation.session_id is not None and request_type == "CLOSE":
            headers[CLOSED_SESSION_HEADER] = invocation.session_id
            return _session_reply(f"Session {invocation.session_id} closed", headers)
        dialect = self.dialect_for(invocation.body)
        try:
            request = dialect.parse(invocation.content_type, invocation.body, invocation.request_id)
        except ContainerRejected as rejected:
            return reply_response(rejected.reply, headers)
        admission = invocation.admission
        engine = self.engine
        events: AsyncGenerator[GenerationEvent, None] | None = None
        try:
            if admission is not None:
                engine = admission.admit(self.engine, request.generation)
                if engine is not self.engine:  # a scripted answer, in this container's format
                    dialect = self.dialect_for(invocation.body, engine)
            events = generate(engine, request.generation)
            first = await anext(events)
            input_tokens = engine.count_tokens(request.generation)
        except EngineNotReady as exc:
            await _close(events)
            raise BackendNotReady(str(exc)) from None
        except EngineRequestError as exc:
            await _close(events)
            return reply_response(dialect.invalid(str(exc)), headers)
        except EngineError as exc:
            await _close(events)
            return reply_response(dialect.failure(str(exc)), headers)
        except StopAsyncIteration:
            return reply_response(dialect.failure("the engine produced no output"), headers)
        finished = admission.finished if admission is not None else None
        if request.stream:
            encoder = dialect.stream(request, input_tokens)
            chunks = _stream_chunks(events, first, encoder, finished)
            return BackendResponse(200, encoder.content_type, headers, chunks)
        pieces: list[str] = []
        finish: Finish | None = None
        async with aclosing(events):
            event: GenerationEvent | None = first
            try:
                while event is not None:
                    if isinstance(event, TokenEvent):
                        pieces.append(event.text)
                    elif isinstance(event, Finish):
                        finish = event
                        break
                    # Container formats have no tool-call field: ToolCallEvents are dropped.
                    event = await anext(events, None)
            except EngineError as exc:
                return reply_response(dialect.failure(str(exc)), headers)
        if finish is None:
            return reply_response(dialect.failure("the engine ended without finishing"), headers)
        if finished is not None:
            finished(finish)
        reply = dialect.complete(request, pieces, finish, input_tokens)
        return reply_response(reply, headers)


async def _close(events: AsyncGenerator[GenerationEvent, None] | None) -> None:
    if events is not None:
        await events.aclose()


async def _stream_chunks(
    events: AsyncGenerator[GenerationEvent, None],
    first: GenerationEvent,
    encoder: ContainerStream,
    finished: Callable[[Finish], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    async with aclosing(events):
        for chunk in encoder.start():
            yield chunk
        event: GenerationEvent | None = first
        try:
            while event is not None:
                if isinstance(event, TokenEvent):
                    for chunk in encoder.token(event.text):
                        yield chunk
                elif isinstance(event, Finish):
                    if finished is not None:
                        finished(event)
                    for chunk in encoder.finish(event):
                        yield chunk
                    return
                event = await anext(events, None)
            failure = encoder.failure("the engine ended the stream without finishing")
        except EngineError as exc:
            failure = encoder.failure(str(exc))
        for chunk in failure:
            yield chunk


def _request_type(body: bytes) -> str | None:
    if b"requestType" not in body:
        return None
    try:
        value = load_json(body)
    except JsonInputError:
        return None
    if isinstance(value, dict) and isinstance(value.get("requestType"), str):
        return str(value["requestType"]).upper()
    return None


def _session_reply(result: str, headers: Mapping[str, str]) -> BackendResponse:
    body = json.dumps({"result": result}).encode()
    return reply_response(ContainerReply(200, body, "application/json"), headers)


# --- real containers over HTTP ----------------------------------------------------------------


class HttpClient:
    """One aiohttp session shared by every container backend, opened on first use."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpContainerBackend:
    """A container reached at one base URL per instance (or one URL for all instances)."""

    def __init__(self, hostname: str, urls: tuple[str, ...], client: HttpClient) -> None:
        self.hostname = hostname
        self.urls = urls
        self.client = client
        self._fresh_until: dict[str, float] = {}
        self._last_ping: dict[str, str] = {}

    def ready(self) -> bool | None:
        if not self._last_ping:
            return None
        return all(state == "200" for state in self._last_ping.values())

    def describe(self) -> dict[str, Any]:
        return {
            "ContainerUrls": list(self.urls),
            "LastPing": {url: self._last_ping.get(url) for url in self.urls},
            "Ready": self.ready(),
        }

    def url_for(self, instance: int) -> str:
        return self.urls[instance % len(self.urls)]

    async def ping(self, url: str) -> None:
        """Pass if `GET /ping` answers 200 within 2 s; raise BackendNotReady otherwise."""
        now = time.monotonic()
        if self._fresh_until.get(url, 0.0) > now:
            return
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                async with self.client.session().get(url + "/ping") as response:
                    await response.read()
                    state = str(response.status)
        except TimeoutError:
            state = "timeout"
        except aiohttp.ClientError as exc:
            state = f"unreachable ({type(exc).__name__})"
        self._last_ping[url] = state
        if state != "200":
            self._fresh_until.pop(url, None)
            raise BackendNotReady(f"GET /ping: {state}")
        self._fresh_until[url] = now + PING_FRESH_S

    async def invoke(self, invocation: EndpointRequest) -> BackendResponse:
        url = self.url_for(invocation.instance)
        await self.ping(url)
        headers = _forwarded_headers(invocation)
        try:
            response = await self.client.session().post(
                url + "/invocations", data=invocation.body, headers=headers
            )
        except aiohttp.ClientConnectorError as exc:
            self._fresh_until.pop(url, None)
            self._last_ping[url] = f"unreachable ({type(exc).__name__})"
            raise BackendNotReady(f"POST /invocations: {exc}") from None
        except aiohttp.ClientError as exc:
            raise BackendBroken(_describe_error(exc)) from None
        return BackendResponse(
            response.status,
            response.headers.get("Content-Type"),
            {k.lower(): v for k, v in response.headers.items()},
            _body_chunks(response),
            response.close,
        )


async def _body_chunks(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    finished = False
    try:
        async for data in response.content.iter_any():
            yield data
        finished = True
    except aiohttp.ClientError as exc:
        raise StreamBroken(_describe_error(exc)) from None
    finally:
        if finished:
            response.release()
        else:
            response.close()


def _forwarded_headers(invocation: EndpointRequest) -> dict[str, str]:
    # SageMaker strips headers that are not in the API. Which of these it forwards to the
    # container is unverified; these are the ones a container can act on.
    headers = {"Accept-Encoding": "identity"}
    optional = {
        "Content-Type": invocation.content_type,
        "Accept": invocation.accept,
        "X-Amzn-SageMaker-Custom-Attributes": invocation.custom_attributes,
        "X-Amzn-SageMaker-Inference-Id": invocation.inference_id,
        "X-Amzn-SageMaker-Session-Id": invocation.session_id,
    }
    headers.update({k: v for k, v in optional.items() if v is not None})
    return headers


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")
