"""The benchmark's HTTP clients: how one streaming request is sent and its events timed.

Two transports with one interface, `await transport.stream(payload, on_text)`, which calls
`on_text()` as each text-carrying event arrives and returns the usage the stream reported
(raising `StreamFailed` on any error):

- `RawTransport` (default): aiohttp (HTTP/1.1 keep-alive, C-accelerated parser) with requests
  signed by botocore's own SigV4 signer (or a Bedrock API key from AWS_BEARER_TOKEN_BEDROCK)
  and frames decoded by `decode.StreamDecoder`. No retries, no per-call SDK machinery.
- `SdkTransport` (`--client sdk`): aiobotocore, i.e. the full SDK pipeline; slower per
  request, for checking that results do not depend on the client.

bench/README.md measures both against the same server.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from yarl import URL

from outcrop.cli.bench.decode import (
    TEXT,
    Operation,
    StreamDecoder,
    StreamFailed,
    error_message,
    error_type,
)
from outcrop.cli.native import StreamUsage, chunk_text, chunk_usage, converse_text, converse_usage

SIGNING_NAME = "bedrock"
USER_AGENT = "outcrop-bench"
BEARER_VARIABLE = "AWS_BEARER_TOKEN_BEDROCK"


@dataclass(frozen=True, slots=True)
class Target:
    """What to call: where, as whom, which model and operation."""

    endpoint_url: str
    region: str
    model_id: str
    operation: Operation
    credentials: Credentials | None
    """None with a bearer token (Bedrock API key)."""
    bearer_token: str | None = None
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Payload:
    """One request body, as a JSON object (for the SDK) and as bytes (for the raw client)."""

    document: dict[str, Any]
    raw: bytes

    @classmethod
    def of(cls, document: dict[str, Any]) -> Payload:
        return cls(document, json.dumps(document).encode())


class Transport(Protocol):
    async def stream(self, payload: Payload, on_text: Callable[[], None]) -> StreamUsage | None:
        """Send one request; call `on_text` per text event; return the reported usage."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def bearer_from_environment() -> str | None:
    return os.environ.get(BEARER_VARIABLE) or None


class RequestSigner:
    """Builds the URL and headers of a request the way boto3 would send it.

    A signature covers the method, path, headers, body hash and a timestamp, and AWS accepts it
    for five minutes; identical bodies (the benchmark repeats its prompts) reuse their signed
    headers for `REUSE_SECONDS`, which saves botocore's ~0.1 ms of signing per request.
    """

    REUSE_SECONDS = 60.0

    def __init__(self, target: Target, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.clock = clock
        self._signed: dict[bytes, tuple[float, dict[str, str]]] = {}
        base = target.endpoint_url.rstrip("/")
        # boto3 percent-encodes the model ID segment (`:` and `/` too); SigV4 then encodes the
        # path once more in its canonical form, which SigV4Auth does from this URL.
        self.url = f"{base}/model/{quote(target.model_id, safe='')}/{target.operation.path_suffix}"
        self.base_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if target.operation is Operation.invoke:
            self.base_headers["X-Amzn-Bedrock-Accept"] = "application/json"

    def headers(self, body: bytes) -> dict[str, str]:
        if self.target.bearer_token is not None:
            return {**self.base_headers, "Authorization": f"Bearer {self.target.bearer_token}"}
        now = self.clock()
        cached = self._signed.get(body)
        if cached is not None and now - cached[0] < self.REUSE_SECONDS:
            return cached[1]
        headers = self.sign(body)
        if len(self._signed) > 1024:
            self._signed.clear()
        self._signed[body] = (now, headers)
        return headers

    def sign(self, body: bytes) -> dict[str, str]:
        """Freshly signed headers (SigV4, by botocore) for a request with this body."""
        if self.target.credentials is None:
            raise StreamFailed("NoCredentials", "no AWS credentials and no bearer token")
        request = AWSRequest(method="POST", url=self.url, data=body, headers=self.base_headers)
        credentials = self.target.credentials
        if hasattr(credentials, "get_frozen_credentials"):  # refreshable (SSO, roles)
            credentials = credentials.get_frozen_credentials()
        SigV4Auth(credentials, SIGNING_NAME, self.target.region).add_auth(request)
        return dict(request.headers.items())


class RawTransport:
    """aiohttp with botocore signing; one keep-alive connection per concurrent stream."""

    def __init__(self, target: Target, max_connections: int) -> None:
        self.target = target
        self.signer = RequestSigner(target)
        self.url = URL(self.signer.url, encoded=True)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            ssl=ssl.create_default_context() if self.url.scheme == "https" else False,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=self.target.timeout_s),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def stream(self, payload: Payload, on_text: Callable[[], None]) -> StreamUsage | None:
        assert self._session is not None
        usage: StreamUsage | None = None
        headers = self.signer.headers(payload.raw)
        try:
            async with self._session.post(self.url, data=payload.raw, headers=headers) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    raise StreamFailed(
                        error_type(resp.status, resp.headers, body), error_message(body)
                    )
                decoder = StreamDecoder(self.target.operation)
                async for data in resp.content.iter_any():
                    for event in decoder.feed(data):
                        if event == TEXT:
                            on_text()
                        elif isinstance(event, StreamUsage):
                            usage = event
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise StreamFailed("ConnectionError", str(exc)) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise StreamFailed("ConnectionClosed", str(exc)) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise StreamFailed("Timeout", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise StreamFailed(type(exc).__name__, str(exc)) from None
        return usage


class SdkTransport:
    """aiobotocore: the full SDK pipeline (retries off, so errors count once)."""

    def __init__(self, target: Target, max_connections: int) -> None:
        self.target = target
        self.max_connections = max_connections
        self._client: Any = None
        self._context: Any = None

    async def __aenter__(self) -> Self:
        try:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session
        except ImportError:
            raise StreamFailed(
                "MissingDependency", "--client sdk needs aiobotocore (pip install aiobotocore)"
            ) from None
        session = get_session()
        if self.target.credentials is not None:
            c = self.target.credentials
            session.set_credentials(c.access_key, c.secret_key, c.token)
        config = AioConfig(
            max_pool_connections=self.max_connections,
            retries={"mode": "standard", "total_max_attempts": 1},
            read_timeout=self.target.timeout_s,
            user_agent_extra=USER_AGENT,
        )
        self._context = session.create_client(
            "bedrock-runtime",
            region_name=self.target.region,
            endpoint_url=self.target.endpoint_url,
            config=config,
        )
        self._client = await self._context.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)

    async def stream(self, payload: Payload, on_text: Callable[[], None]) -> StreamUsage | None:
        usage: StreamUsage | None = None
        model_id = self.target.model_id
        try:
            if self.target.operation is Operation.invoke:
                response = await self._client.invoke_model_with_response_stream(
                    modelId=model_id,
                    body=payload.raw,
                    contentType="application/json",
                    accept="application/json",
                )
                async for event in response["body"]:
                    raw = event.get("chunk", {}).get("bytes")
                    if raw is None:
                        continue
                    chunk = json.loads(raw)
                    if chunk_text(chunk):
                        on_text()
                    usage = chunk_usage(chunk) or usage
            else:
                response = await self._client.converse_stream(modelId=model_id, **payload.document)
                async for event in response["stream"]:
                    if converse_text(event):
                        on_text()
                    usage = converse_usage(event) or usage
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "ClientError")
            raise StreamFailed(code[:1].upper() + code[1:], str(error.get("Message", ""))) from None
        except BotoCoreError as exc:
            raise StreamFailed(type(exc).__name__, str(exc)) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise StreamFailed(type(exc).__name__, str(exc)) from None
        return usage


def make_transport(kind: str, target: Target, max_connections: int) -> Transport:
    if kind == "sdk":
        return SdkTransport(target, max_connections)
    return RawTransport(target, max_connections)
