"""Forwarding a call to the real upstream, re-signed with the user's own credentials.

The credentials come from botocore's normal chain (environment, shared files and profiles,
SSO, container and instance roles: `botocore.session.Session().get_credentials()`), frozen
afresh for each call so that refreshing credentials refresh; botocore's `SigV4Auth` signs the
request for the service's signing name (`bedrock`, `sagemaker`) and the region the caller signed
for. The upstream is AWS (`https://bedrock-runtime.{region}.amazonaws.com`,
`https://runtime.sagemaker.{region}.amazonaws.com`) unless `[recording] upstream` names another
base URL. aiohttp carries the call (HTTP/1.1, which both services accept for every operation
but the bidirectional stream); the request path goes out exactly as the client sent it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from yarl import URL

from outcrop.recording.cassette import VOLATILE_REQUEST_HEADERS

SIGNING_NAMES = {"bedrock-runtime": "bedrock", "sagemaker-runtime": "sagemaker"}

_NOT_FORWARDED = VOLATILE_REQUEST_HEADERS | {"x-amz-content-sha256"}


def forwarded_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The client's headers worth sending upstream: not its signature, dates, transport."""
    forwarded = {
        name: value
        for name, value in headers
        if name.lower() not in _NOT_FORWARDED and not name.startswith(":")
    }
    # Bodies as sent, uncompressed: what is recorded is what a client decodes.
    forwarded["Accept-Encoding"] = "identity"
    return forwarded


def aws_endpoint(service: str, region: str) -> str:
    """The public endpoint of `service` in `region`."""
    if service == "sagemaker-runtime":
        return f"https://runtime.sagemaker.{region}.amazonaws.com"
    return f"https://{service}.{region}.amazonaws.com"


class NoCredentials(Exception):
    """The credential chain found nothing to sign with."""


@dataclass(slots=True)
class UpstreamResponse:
    """The upstream's answer as it arrives: status, headers, then body chunks with their
    arrival times (seconds since the request was sent)."""

    status: int
    headers: list[tuple[str, str]]
    sent_at: float
    response: aiohttp.ClientResponse

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return ""

    async def chunks(self) -> AsyncIterator[tuple[bytes, float]]:
        async for data in self.response.content.iter_any():
            yield data, time.monotonic() - self.sent_at

    async def read(self) -> bytes:
        return await self.response.read()

    def release(self) -> None:
        self.response.release()


class Upstream:
    """Signs and sends calls; one connection pool for the server's life."""

    def __init__(self, base_url: str | None, timeout_s: float) -> None:
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=30)
        self._session: aiohttp.ClientSession | None = None
        self._credentials: Credentials | None = None

    def credentials(self) -> Credentials:
        if self._credentials is None:
            try:
                found = botocore.session.Session().get_credentials()
            except BotoCoreError as exc:  # a profile that does not exist, an expired SSO token
                raise NoCredentials(
                    f"Outcrop recording could not load AWS credentials: {exc}"
                ) from None
            if found is None:
                raise NoCredentials(
                    "Outcrop recording found no AWS credentials in the credential chain "
                    "(environment, shared credentials and config files, SSO, roles)."
                )
            self._credentials = found
        return self._credentials

    def url(self, service: str, region: str, raw_path: str, query: str) -> str:
        base = self.base_url or aws_endpoint(service, region)
        return base + raw_path + (f"?{query}" if query else "")

    async def send(
        self,
        service: str,
        region: str,
        method: str,
        raw_path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        url = self.url(service, region, raw_path, query)
        forwarded = forwarded_headers(headers)
        request = AWSRequest(method=method, url=url, data=body, headers=forwarded)
        try:
            frozen = self.credentials().get_frozen_credentials()
        except BotoCoreError as exc:  # refreshing failed (an expired role session, say)
            raise NoCredentials(
                f"Outcrop recording could not refresh AWS credentials: {exc}"
            ) from None
        SigV4Auth(frozen, SIGNING_NAMES.get(service, service), region).add_auth(request)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        sent_at = time.monotonic()
        response = await self._session.request(
            method,
            URL(url, encoded=True),
            data=body,
            headers=dict(request.headers.items()),
            allow_redirects=False,
        )
        return UpstreamResponse(
            response.status,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            sent_at,
            response,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
