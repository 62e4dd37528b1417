"""Authentication: who is calling, from the request's SigV4 signature or Bedrock API key.

An interceptor that runs first. It reads the signature (Authorization header or presigned
query) or the bearer token and leaves an `Identity` in `ctx.call.identity` for the
policy, quota and fault interceptors.

* mode `open` (default, for local development, as AWS emulators do): any well-formed SigV4
  signature or bearer token is accepted without checking it, and so is an unsigned request;
  malformed credentials are still refused.
* mode `verify`: signatures are checked against the configured credentials (`wire.sigv4`),
  including the session token, the credential scope (service and region), the clock-skew
  window and the body's hash; bearer tokens must arrive over TLS and be configured API keys
  or short-term API keys signed with configured credentials. Unknown keys cost the same work
  as known ones, and every comparison is constant-time.

Short-term Bedrock API keys (what `aws-bedrock-token-generator` and the console make) are
`bedrock-api-key-` + base64 of a presigned SigV4 URL, `bedrock.amazonaws.com/?Action=
CallWithBearerToken&X-Amz-...&Version=1`, signed for service `bedrock` with the caller's
credentials and valid up to 12 hours. In `verify` mode that URL's signature, session token,
scope and expiry are checked like any presigned request; in `open` mode the access key in it
names the principal, as a SigV4 signature's would.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from outcrop.config.security import AuthSettings, principal_arn
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.invocation.context import Identity, RequestContext
from outcrop.wire import sigv4
from outcrop.wire.errors import (
    AwsError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from outcrop.wire.restjson import ServiceSpec

INVALID_TOKEN = "The security token included in the request is invalid."
# Unverified: the wording two public reports quote from Bedrock's 403 for a bad or expired API
# key; the error type AWS sends with it is not known, so it stays UnrecognizedClientException.
INVALID_API_KEY = "Authentication failed: Please make sure your API Key is valid."

SHORT_TERM_PREFIX = "bedrock-api-key-"
SHORT_TERM_HOST = "bedrock.amazonaws.com"
SHORT_TERM_ACTION = "CallWithBearerToken"
SHORT_TERM_MAX_S = 12 * 3600

_DUMMY_SECRET = "outcrop-unknown-access-key-dummy-secret"


@dataclass(frozen=True, slots=True)
class _Secret:
    secret_access_key: str
    session_token: str | None
    principal: str


class Authenticator(BaseInterceptor):
    """Sets `ctx.call.identity` or refuses the call with AWS's authentication errors."""

    def __init__(
        self,
        settings: AuthSettings,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.max_skew = dt.timedelta(seconds=settings.clock_skew_seconds)
        account = settings.account_id
        self._secrets = {
            c.access_key_id: _Secret(
                c.secret_access_key,
                c.session_token,
                principal_arn(c.principal or c.access_key_id, account),
            )
            for c in settings.credentials
        }
        self._api_keys = {
            hashlib.sha256(k.key.encode()).digest(): principal_arn(
                k.principal or "BedrockAPIKey", account
            )
            for k in settings.api_keys
        }

    @property
    def verifying(self) -> bool:
        return self.settings.mode == "verify"

    async def before(self, ctx: RequestContext) -> None:
        ctx.call.identity = self.identify(ctx)

    def identify(self, ctx: RequestContext) -> Identity:
        request = sigv4.HttpRequest(ctx.method, ctx.raw_path, ctx.query, ctx.headers, ctx.body)
        authorization = request.header_values("authorization")
        if len(authorization) == 1 and authorization[0][:7].lower() == "bearer ":
            return self._bearer(authorization[0][7:].strip(), ctx.scheme)
        try:
            claim = sigv4.read_claim(request)
        except MissingAuthenticationTokenException:
            if self.verifying:
                raise
            return Identity(self._default_principal("anonymous"), "anonymous", self._region())
        if not self.verifying:
            known = self._secrets.get(claim.credential.access_key_id)
            principal = (
                known.principal
                if known is not None
                else self._default_principal(claim.credential.access_key_id)
            )
            return Identity(
                principal, "sigv4", claim.credential.region, claim.credential.access_key_id
            )
        return self._verify(request, claim, ctx)

    # -- verify mode ---------------------------------------------------------------------------

    def _verify(
        self, request: sigv4.HttpRequest, claim: sigv4.SigV4Claim, ctx: RequestContext
    ) -> Identity:
        spec = ServiceSpec.load(ctx.service)
        sigv4.check_scope(claim, [spec.signing_name], self.settings.regions)
        known = self._secrets.get(claim.credential.access_key_id)
        # An unknown key is checked against a dummy secret, so it costs what a known one does.
        secret = known.secret_access_key if known is not None else _DUMMY_SECRET
        event_input = _has_event_stream_input(spec, ctx.operation)
        try:
            verified = sigv4.verify_signature(
                request, claim, secret, allow_event_stream=event_input
            )
        except InvalidSignatureException:
            if known is None:
                raise UnrecognizedClientException(INVALID_TOKEN) from None
            raise
        if known is None:
            raise UnrecognizedClientException(INVALID_TOKEN)
        if not _same_token(known.session_token, claim.security_token):
            raise UnrecognizedClientException(INVALID_TOKEN)
        sigv4.check_clock(claim, self.clock(), self.max_skew)
        return Identity(
            known.principal,
            "sigv4",
            claim.credential.region,
            claim.credential.access_key_id,
            verified,
        )

    # -- bearer tokens (Bedrock API keys) ------------------------------------------------------

    def _bearer(self, token: str, scheme: str) -> Identity:
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise IncompleteSignatureException(
                "Authorization header with the Bearer scheme requires a token."
            )
        if not self.verifying:
            digest = hashlib.sha256(token.encode()).digest()
            principal = self._api_keys.get(digest)
            if principal is None:
                short_term = _short_term_claim(token)
                if short_term is not None:
                    return self._open_short_term(short_term[1])
                principal = self._default_principal("BedrockAPIKey")
            return Identity(principal, "bearer", self._region())
        if scheme != "https" and not self.settings.allow_bearer_over_http:
            raise UnrecognizedClientException(
                "Bearer tokens (Bedrock API keys) are accepted only over HTTPS. Use the TLS "
                "listener, or set auth.allow_bearer_over_http when TLS ends in front of Outcrop."
            )
        digest = hashlib.sha256(token.encode()).digest()
        found: str | None = None
        for candidate, principal in self._api_keys.items():
            if hmac.compare_digest(candidate, digest):
                found = principal
        if found is None:
            return self._verify_short_term(token)
        return Identity(found, "bearer", self._region())

    def _open_short_term(self, claim: sigv4.SigV4Claim) -> Identity:
        access_key = claim.credential.access_key_id
        known = self._secrets.get(access_key)
        principal = known.principal if known is not None else self._default_principal(access_key)
        return Identity(principal, "bearer", claim.credential.region, access_key)

    def _verify_short_term(self, token: str) -> Identity:
        """A short-term API key whose presigned URL checks out, or UnrecognizedClientException."""
        parsed = _short_term_claim(token)
        if parsed is None:
            raise UnrecognizedClientException(INVALID_API_KEY)
        request, claim = parsed
        known = self._secrets.get(claim.credential.access_key_id)
        secret = known.secret_access_key if known is not None else _DUMMY_SECRET
        try:
            sigv4.check_scope(claim, ["bedrock"], self.settings.regions)
            sigv4.verify_signature(request, claim, secret)
            sigv4.check_clock(claim, self.clock(), self.max_skew)
        except AwsError:
            raise UnrecognizedClientException(INVALID_API_KEY) from None
        if known is None or not _same_token(known.session_token, claim.security_token):
            raise UnrecognizedClientException(INVALID_API_KEY)
        return Identity(
            known.principal, "bearer", claim.credential.region, claim.credential.access_key_id
        )

    # -- helpers -------------------------------------------------------------------------------

    def _region(self) -> str:
        return self.settings.region

    def _default_principal(self, name: str) -> str:
        return principal_arn(name, self.settings.account_id)


def _short_term_claim(token: str) -> tuple[sigv4.HttpRequest, sigv4.SigV4Claim] | None:
    """The presigned request inside a short-term API key and its claim; None when `token` is
    not one (wrong prefix, host or action, undecodable, no or malformed signature, or an
    expiry past 12 hours)."""
    if not token.startswith(SHORT_TERM_PREFIX):
        return None
    try:
        url = base64.b64decode(token[len(SHORT_TERM_PREFIX) :], validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    host, separator, query = url.partition("/?")
    if host != SHORT_TERM_HOST or not separator:
        return None
    # `&Version=1` is appended after signing, so it is not part of the signed query.
    request = sigv4.HttpRequest("POST", "/", query.removesuffix("&Version=1"), (("host", host),))
    try:
        claim = sigv4.read_claim(request)
    except AwsError:
        return None
    if claim.location != "query" or dict(request.query_params()).get("Action") != (
        SHORT_TERM_ACTION
    ):
        return None
    if claim.expires is None or claim.expires > SHORT_TERM_MAX_S:
        return None
    return request, claim


def _same_token(expected: str | None, given: str | None) -> bool:
    if expected is None or given is None:
        return expected is None and given is None
    return hmac.compare_digest(expected.encode(), given.encode())


def _has_event_stream_input(spec: ServiceSpec, operation: str) -> bool:
    try:
        return spec.model.operation_model(operation).get_event_stream_input() is not None
    except Exception:
        return False
