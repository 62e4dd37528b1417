"""AWS Signature Version 4, verified on the server side (sans-IO: bytes in, verdicts out).

Owns the SigV4 algorithm as a verifier sees it: parsing the `Authorization: AWS4-HMAC-SHA256`
header and the presigned-URL query (`X-Amz-Algorithm`, `X-Amz-Credential`, ...), rebuilding the
canonical request from what arrived on the wire, the string to sign, the signing key, the
constant-time comparison, the clock-skew and expiry rules, and the per-frame signature chain of
signed input event streams (`STREAMING-AWS4-HMAC-SHA256-EVENTS`). Which credentials exist and
what a verified caller may do are not decided here (see `gateway.auth`).

What the SDKs actually sign (reference wire.md §6):

* The canonical URI is the raw, already percent-encoded path, percent-encoded once more (every
  SDK double-encodes for non-S3 services), after removing dot segments and empty segments.
* Over HTTP/2 the JS v3 SDK signs the pseudo-header `:authority` instead of `host`; ASGI servers
  (Granian included) surface the HTTP/2 authority as the `host` header, so its value stands in.
* The payload hash is `x-amz-content-sha256` when sent (JS), else sha256 of the body (boto3,
  also over https). A real hash in that header must equal sha256(body), because the signature
  covers only the header. `UNSIGNED-PAYLOAD` is refused on header-signed requests: it is an S3
  convention that other services honour only for operations modelled with the unsigned-payload
  trait, and no bedrock-runtime or sagemaker-runtime operation has it, so every SDK signs the
  body (docs/input-validation.md). Presigned URLs keep it, as SigV4's query form allows. The
  `STREAMING-AWS4-HMAC-SHA256-EVENTS` literal is accepted only where the caller says the body
  is a signed event stream, whose frames `EventSignatureChain` then verifies.

Error codes and messages follow what AWS's front door sends. Several texts are well attested
for AWS services in general (the skew messages, "Credential should be scoped to correct
service", the signature-mismatch text) but unverified for Bedrock specifically; SDKs surface
all of them as generic errors keyed on the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, unquote

from outcrop.wire.errors import (
    AwsError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
EVENT_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_EVENTS_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-EVENTS"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

DEFAULT_MAX_SKEW = dt.timedelta(minutes=15)
"""AWS-wide SigV4 rule; a Bedrock-specific window is unverified (reference wire.md §8)."""

MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
"""Presigned URLs may live at most a week (the SigV4 limit AWS documents)."""

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SPACES = re.compile(r"\s+")


# -- what arrived --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request exactly as received; the verifier never reads anything else."""

    method: str
    raw_path: str
    """The path still percent-encoded, as on the request line (ASGI `raw_path`), no query."""
    raw_query: str
    """The query string as received, without `?` (ASGI `query_string`)."""
    headers: tuple[tuple[str, str], ...]
    """(name, value) pairs in arrival order, repeated names kept; names in any case."""
    body: bytes = b""

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def query_params(self) -> list[tuple[str, str]]:
        """The query as decoded (name, value) pairs; `+` is kept literally, as SigV4 does."""
        pairs: list[tuple[str, str]] = []
        if not self.raw_query:
            return pairs
        for part in self.raw_query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
        return pairs


# -- what the client claims ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """`AKID/YYYYMMDD/region/service/aws4_request`, split."""

    access_key_id: str
    date: str
    region: str
    service: str

    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class SigV4Claim:
    """A parsed SigV4 signature, from the Authorization header or a presigned query."""

    credential: CredentialScope
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    security_token: str | None
    location: Literal["header", "query"]
    expires: int | None = None
    """Presigned URLs only: seconds after `amz_date` the URL stays valid."""

    @property
    def signed_at(self) -> dt.datetime:
        return parse_amz_date(self.amz_date)


def parse_amz_date(value: str) -> dt.datetime:
    """An ISO-8601 basic timestamp (`20150830T123600Z`) as an aware UTC datetime."""
    if not _AMZ_DATE.fullmatch(value):
        raise _bad_date(value)
    try:
        return dt.datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise _bad_date(value) from None


def _bad_date(value: str) -> AwsError:
    return IncompleteSignatureException(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def parse_credential(value: str, source: str) -> CredentialScope:
    """`AKID/date/region/service/aws4_request`; IncompleteSignatureException otherwise."""
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise IncompleteSignatureException(
            f"Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{value}'"
            if len(parts) != 5
            else f"Invalid credential scope in {source}: '{value}'"
        )
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise IncompleteSignatureException(f"Invalid credential date in {source}: '{parts[1]}'")
    return CredentialScope(parts[0], parts[1], parts[2], parts[3])


def parse_authorization(value: str) -> tuple[CredentialScope, tuple[str, ...], str]:
    """The Credential, SignedHeaders and Signature of an `AWS4-HMAC-SHA256` Authorization value."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported authorization type: '{algorithm[:64]}'. "
            f"Use {ALGORITHM} (SigV4) or a Bearer token."
        )
    fields: dict[str, str] = {}
    for raw in rest.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep:
            raise IncompleteSignatureException(
                f"'{item[:64]}' not a valid key=value pair (missing equal-sign) in "
                f"Authorization header: '{value[:256]}'."
            )
        fields[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "Signature", "SignedHeaders") if not fields.get(k)]
    if missing:
        raise IncompleteSignatureException(
            " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            + f" Authorization={value[:256]}"
        )
    credential = parse_credential(fields["Credential"], "Authorization header")
    signature = fields["Signature"]
    if not _HEX64.fullmatch(signature):
        raise IncompleteSignatureException(
            f"Signature must be 64 lowercase hexadecimal characters. Authorization={value[:256]}"
        )
    return credential, _signed_header_names(fields["SignedHeaders"]), signature


def _signed_header_names(value: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in value.split(";"))
    if not all(names):
        raise IncompleteSignatureException(f"Invalid SignedHeaders: '{value[:256]}'")
    return names


def read_claim(request: HttpRequest) -> SigV4Claim:
    """The SigV4 signature a request carries (header first, then presigned query).

    Raises MissingAuthenticationTokenException when it carries none and
    IncompleteSignatureException when what it carries is malformed.
    """
    authorization = request.header_values("authorization")
    if authorization:
        if len(authorization) > 1:
            raise IncompleteSignatureException("Only one Authorization header is allowed.")
        credential, signed, signature = parse_authorization(authorization[0])
        amz_date = request.header("x-amz-date")
        if amz_date is None:
            raise IncompleteSignatureException(
                "Authorization header requires existence of either a 'X-Amz-Date' or a "
                f"'Date' header. Authorization={authorization[0][:256]}"
            )
        parse_amz_date(amz_date)
        return SigV4Claim(
            credential,
            signed,
            signature,
            amz_date,
            request.header("x-amz-security-token"),
            "header",
        )
    params = dict(request.query_params())
    if "X-Amz-Algorithm" not in params and "X-Amz-Signature" not in params:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    return _claim_from_query(params)


def _claim_from_query(params: dict[str, str]) -> SigV4Claim:
    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [name for name in required if not params.get(name)]
    if missing:
        raise IncompleteSignatureException(
            " ".join(f"AWS query-string parameters must include '{name}'." for name in missing)
            + " Re-examine the query-string parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported X-Amz-Algorithm: '{params['X-Amz-Algorithm'][:64]}'"
        )
    credential = parse_credential(params["X-Amz-Credential"], "X-Amz-Credential")
    signature = params["X-Amz-Signature"]
    if not _HEX64.fullmatch(signature):
        raise IncompleteSignatureException(
            "X-Amz-Signature must be 64 lowercase hexadecimal characters."
        )
    amz_date = params["X-Amz-Date"]
    parse_amz_date(amz_date)
    expires: int | None = None
    if "X-Amz-Expires" in params:
        raw = params["X-Amz-Expires"]
        if not raw.isdigit():
            raise IncompleteSignatureException(
                f"X-Amz-Expires should be a number of seconds, got '{raw[:32]}'."
            )
        expires = int(raw)
        if expires > MAX_PRESIGN_EXPIRES:
            raise IncompleteSignatureException(
                f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}"
            )
    return SigV4Claim(
        credential,
        _signed_header_names(params["X-Amz-SignedHeaders"]),
        signature,
        amz_date,
        params.get("X-Amz-Security-Token"),
        "query",
        expires,
    )


# -- canonical request ---------------------------------------------------------------------------


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 dot-segment removal, also dropping empty segments (as AWS signers do)."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    head = "/" if path.startswith("/") else ""
    tail = "/" if path.endswith("/") and kept else ""
    return head + "/".join(kept) + tail


def canonical_uri(raw_path: str) -> str:
    """The received (already encoded) path, normalized and percent-encoded once more."""
    return quote(remove_dot_segments(raw_path), safe="/~")


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(params: Iterable[tuple[str, str]], *, skip: str | None = None) -> str:
    """Encoded `name=value` pairs sorted by name then value, joined with `&`."""
    encoded = sorted((_encode(k), _encode(v)) for k, v in params if k != skip)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_header_value(values: Sequence[str]) -> str:
    """Trimmed values, inner whitespace runs collapsed, repeated headers joined with `,`."""
    return ",".join(_SPACES.sub(" ", v.strip()) for v in values)


def canonical_headers(request: HttpRequest, signed: Sequence[str]) -> str | None:
    """The `name:value\\n` block for exactly the signed names; None if one is missing.

    `:authority` (signed by the JS SDK over HTTP/2) takes the value ASGI servers give as `host`.
    """
    lines: list[str] = []
    for name in signed:
        values = request.header_values(name)
        if not values and name == ":authority":
            values = request.header_values("host")[:1]
        if not values:
            return None
        lines.append(f"{name}:{canonical_header_value(values)}\n")
    return "".join(lines)


def canonical_request(request: HttpRequest, claim: SigV4Claim, payload_hash: str) -> str | None:
    """The canonical request the client must have signed, or None if a signed header is absent."""
    headers = canonical_headers(request, claim.signed_headers)
    if headers is None:
        return None
    skip = "X-Amz-Signature" if claim.location == "query" else None
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.raw_path),
            canonical_query(request.query_params(), skip=skip),
            headers,
            ";".join(claim.signed_headers),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, credential: CredentialScope, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{credential.scope()}\n{digest}"


@lru_cache(maxsize=1024)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain `AWS4`+secret → date → region → service → `aws4_request` (cached per day)."""
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


# -- verification --------------------------------------------------------------------------------


def check_clock(
    claim: SigV4Claim, now: dt.datetime, max_skew: dt.timedelta = DEFAULT_MAX_SKEW
) -> None:
    """Reject signatures outside the skew window (header) or past their expiry (presigned)."""
    signed_at = claim.signed_at
    if claim.location == "query":
        expires = claim.expires if claim.expires is not None else MAX_PRESIGN_EXPIRES
        if now > signed_at + dt.timedelta(seconds=expires):
            # The presigned-URL wording is unverified for Bedrock; code as for headers.
            raise InvalidSignatureException(
                f"Signature expired: {claim.amz_date} is now earlier than "
                f"{_fmt(now - dt.timedelta(seconds=expires))} "
                f"({_fmt(now)} - {expires} sec.)"
            )
        if signed_at > now + max_skew:
            raise InvalidSignatureException(_not_yet_current(claim.amz_date, now, max_skew))
        return
    if signed_at < now - max_skew:
        raise InvalidSignatureException(
            f"Signature expired: {claim.amz_date} is now earlier than "
            f"{_fmt(now - max_skew)} ({_fmt(now)} - {_minutes(max_skew)})"
        )
    if signed_at > now + max_skew:
        raise InvalidSignatureException(_not_yet_current(claim.amz_date, now, max_skew))


def _not_yet_current(amz_date: str, now: dt.datetime, max_skew: dt.timedelta) -> str:
    return (
        f"Signature not yet current: {amz_date} is still later than "
        f"{_fmt(now + max_skew)} ({_fmt(now)} + {_minutes(max_skew)})"
    )


def _fmt(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(AMZ_DATE_FORMAT)


def _minutes(window: dt.timedelta) -> str:
    seconds = int(window.total_seconds())
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
"""A well-formed AWS region name (as `catalog.identifiers.REGION`; `wire` imports no catalog)."""


def check_scope(claim: SigV4Claim, services: Iterable[str], regions: Iterable[str] | None) -> None:
    """The credential scope must name this service (and an accepted region, if restricted),
    and its date must be the day of the signing time."""
    allowed = tuple(services)
    if claim.credential.service not in allowed:
        raise InvalidSignatureException(
            f"Credential should be scoped to correct service: '{allowed[0]}'. "
        )
    region = claim.credential.region
    # Unrestricted (`[auth] regions` unset) still means a well-formed region name, never any
    # string: resources and ARNs are built from it (docs/security.md, "Regions").
    if (regions is not None and region not in tuple(regions)) or not _REGION.fullmatch(region):
        raise InvalidSignatureException("Credential should be scoped to a valid region. ")
    if claim.credential.date != claim.amz_date[:8]:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{claim.credential.date}' != '{claim.amz_date[:8]}', from "
            f"'{'x-amz-date' if claim.location == 'header' else 'X-Amz-Date'}'."
        )
    if "host" not in claim.signed_headers and ":authority" not in claim.signed_headers:
        raise IncompleteSignatureException(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )


def payload_hashes(
    request: HttpRequest, claim: SigV4Claim, *, allow_event_stream: bool
) -> tuple[str, ...]:
    """The payload hashes the client may have signed with; an empty tuple means a mismatch.

    With `x-amz-content-sha256` the client signed that value (checked against the body when it
    is a real hash; UNSIGNED-PAYLOAD only in presigned URLs). Without it the client signed
    sha256(body); presigned URLs may also have been signed with UNSIGNED-PAYLOAD (the S3
    convention some signers apply everywhere).
    """
    declared = request.header("x-amz-content-sha256")
    if declared is None and claim.location == "query":
        declared = dict(request.query_params()).get("X-Amz-Content-Sha256")
    body_hash = hashlib.sha256(request.body).hexdigest() if request.body else EMPTY_SHA256
    if declared is None:
        if claim.location == "query":
            return (body_hash, UNSIGNED_PAYLOAD)
        return (body_hash,)
    if declared == UNSIGNED_PAYLOAD:
        return (declared,) if claim.location == "query" else ()
    if declared == STREAMING_EVENTS_PAYLOAD:
        return (declared,) if allow_event_stream else ()
    if _HEX64.fullmatch(declared) and hmac.compare_digest(declared, body_hash):
        return (declared,)
    return ()


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature that checked out: its claim, and what an event-stream chain needs."""

    claim: SigV4Claim
    payload_hash: str
    signing_key: bytes
    canonical_request: str


def verify_signature(
    request: HttpRequest,
    claim: SigV4Claim,
    secret_access_key: str,
    *,
    allow_event_stream: bool = False,
) -> Verified:
    """Recompute the signature with `secret_access_key` and compare in constant time.

    Every candidate payload hash is tried, and the work done does not depend on where a
    mismatch is, so timing tells nothing about the secret or the expected signature.
    """
    key = signing_key(
        secret_access_key,
        claim.credential.date,
        claim.credential.region,
        claim.credential.service,
    )
    candidates = payload_hashes(request, claim, allow_event_stream=allow_event_stream)
    match: Verified | None = None
    # Always compute at least once, so a body/hash mismatch costs what a bad signature costs.
    for payload_hash in candidates or (EMPTY_SHA256,):
        canonical = canonical_request(request, claim, payload_hash)
        text = string_to_sign(claim.amz_date, claim.credential, canonical or "")
        expected = sign(key, text)
        ok = hmac.compare_digest(expected, claim.signature)
        if ok and canonical is not None and candidates and match is None:
            match = Verified(claim, payload_hash, key, canonical)
    if match is None:
        raise InvalidSignatureException(SIGNATURE_MISMATCH)
    return match


# -- signed event streams (InvokeModelWithBidirectionalStream input) ----------------------------


def encode_date_header(date_ms: int) -> bytes:
    """The `:date` header of an outer frame as encoded on the wire (type 8, int64 ms)."""
    return b"\x05:date\x08" + date_ms.to_bytes(8, "big", signed=True)


@dataclass(slots=True)
class EventSignatureChain:
    """Verifies the `:chunk-signature` of each signed outer frame, in arrival order.

    Seeded with the request's signature; each frame's string to sign names the previous
    signature, the hash of its encoded `:date` header and the hash of its payload (the
    complete inner message as received; never re-encode it). The chain advances only on
    success. An empty payload is the client's final frame.
    """

    previous: str
    key: bytes
    credential: CredentialScope

    def verify(self, date_ms: int, chunk_signature: bytes, payload: bytes) -> bool:
        stamp = dt.datetime.fromtimestamp(date_ms / 1000, tz=dt.UTC).strftime(AMZ_DATE_FORMAT)
        # Signing keys are per day: a frame dated on another day than the request's scope
        # is signed with that day's key (unverified edge; SDK sessions rarely span midnight).
        text = "\n".join(
            [
                EVENT_ALGORITHM,
                stamp,
                f"{stamp[:8]}/{self.credential.region}/{self.credential.service}/aws4_request",
                self.previous,
                hashlib.sha256(encode_date_header(date_ms)).hexdigest(),
                hashlib.sha256(payload).hexdigest(),
            ]
        )
        expected = sign(self.key, text)
        ok = hmac.compare_digest(expected, chunk_signature.hex())
        if ok:
            self.previous = expected
        return ok
