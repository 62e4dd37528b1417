"""The Python smithy SDK (`aws-sdk-bedrock-runtime`, awscrt transport) in a bidirectional stream.

`SmithyStream` opens InvokeModelWithBidirectionalStream over TLS (ALPN h2; the test CA is
trusted by replacing the CRT transport's private `_tls_ctx`, wire.md §4.3), sends Nova Sonic
events as `chunk`s while a task collects output chunks with their arrival times, and records
the modelled exception that ends the stream, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import awscrt.io
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
)
from smithy_aws_core.identity.environment import EnvironmentCredentialsResolver
from smithy_http.aio.crt import AWSCRTHTTPClient


def crt_transport(ca_file: Path) -> AWSCRTHTTPClient:
    transport = AWSCRTHTTPClient()
    options = awscrt.io.TlsContextOptions()
    options.override_default_trust_store_from_path(None, str(ca_file))
    transport._tls_ctx = awscrt.io.ClientTlsContext(options)
    return transport


class SmithyStream:
    def __init__(self, endpoint: str, ca_file: Path, model_id: str = "amazon.nova-sonic-v1:0"):
        self.endpoint = endpoint
        self.ca_file = ca_file
        self.model_id = model_id
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.error: Exception | None = None
        self.ended = asyncio.Event()
        self._new = asyncio.Event()
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SmithyStream:
        config = await AsyncBedrockRuntimeConfig.resolve(
            endpoint_uri=self.endpoint,
            region="us-east-1",
            aws_credentials_identity_resolver=EnvironmentCredentialsResolver(),  # type: ignore[no-untyped-call]
            transport=crt_transport(self.ca_file),
        )
        client = AsyncBedrockRuntimeClient(config=config)
        # Bounded: when the CRT cannot connect (an unresolvable host, say), this await can
        # otherwise wait forever instead of raising.
        async with asyncio.timeout(30):
            self._stream = await client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=self.model_id)
            )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._stream.input_stream.close(), 10)

    async def _read(self) -> None:
        try:
            _, receiver = await self._stream.await_output()
            async for event in receiver:
                payload = json.loads(event.value.bytes_)["event"]
                self.received.append((time.monotonic(), payload))
                self._new.set()
        except Exception as exc:  # the modelled exception that ends the stream
            self.error = exc
        finally:
            self.ended.set()
            self._new.set()

    async def send(self, event: dict[str, Any]) -> None:
        part = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
        await self._stream.input_stream.send(
            InvokeModelWithBidirectionalStreamInputChunk(value=part)
        )

    async def send_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self.send(event)

    async def close_input(self) -> None:
        await self._stream.input_stream.close()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, event in self.received]

    async def wait_for(
        self, name: str, count: int = 1, within: float = 60.0, **match: Any
    ) -> float:
        """Wait until `count` events `name` (with fields equal to `match`) arrived; returns
        the arrival time of the last one."""
        deadline = time.monotonic() + within
        while True:
            hits = [
                t for t, e in self.received
                if name in e and all(e[name].get(k) == v for k, v in match.items())
            ]  # fmt: skip
            if len(hits) >= count:
                return hits[count - 1]
            if self.ended.is_set():
                raise AssertionError(f"stream ended ({self.error!r}) before {count} {name}")
            self._new.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {count} {name} events after {within} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def wait_end(self, within: float = 60.0) -> None:
        await asyncio.wait_for(self.ended.wait(), within)
