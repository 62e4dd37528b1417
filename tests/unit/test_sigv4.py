"""SigV4 verification: the official AWS test-suite vectors, requests signed by botocore (the
signer boto3 uses) and by smithy-python's signer, and every way a signature can be wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from outcrop.wire import event_signing, sigv4
from outcrop.wire.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
)

SUITE = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "sigv4" / "aws_sigv4_test_suite.json").read_text()
)
SECRET = SUITE["secret_access_key"]
AKID = "AKIDEXAMPLE"
SUITE_TIME = dt.datetime(2015, 8, 30, 12, 36, tzinfo=dt.UTC)


def parse_req(text: str, authz: str) -> sigv4.HttpRequest:
    """A `.req` file as a received request: continuation lines are further values."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    path, _, query = target.partition("?")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1].isspace():
            headers.append((headers[-1][0], line.strip()))
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    headers.append(("Authorization", authz))
    return sigv4.HttpRequest(method, path, query, tuple(headers), body.encode())


@pytest.mark.parametrize("vector", SUITE["vectors"], ids=lambda v: v["name"])
def test_aws_test_suite_vector(vector: dict[str, str]) -> None:
    request = parse_req(vector["req"], vector["authz"])
    claim = sigv4.read_claim(request)
    (payload_hash,) = sigv4.payload_hashes(request, claim, allow_event_stream=False)
    canonical = sigv4.canonical_request(request, claim, payload_hash)
    assert canonical == vector["creq"]
    assert sigv4.string_to_sign(claim.amz_date, claim.credential, canonical) == vector["sts"]
    sigv4.check_scope(claim, ["service"], ["us-east-1"])
    sigv4.check_clock(claim, SUITE_TIME)
    verified = sigv4.verify_signature(request, claim, SECRET)
    assert verified.canonical_request == vector["creq"]
    with pytest.raises(InvalidSignatureException):
        sigv4.verify_signature(request, claim, SECRET + "x")


# -- requests signed by botocore, as boto3 sends them ---------------------------------------------


def botocore_signed(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    secret: str = SECRET,
    token: str | None = None,
    service: str = "bedrock",
    when: dt.datetime | None = None,
) -> sigv4.HttpRequest:
    """Sign with botocore's SigV4Auth and return the request as a server would receive it."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    signer = SigV4Auth(Credentials(AKID, secret, token), service, "us-east-1")
    if when is not None:
        request.context["timestamp"] = when.strftime(sigv4.AMZ_DATE_FORMAT)
        signer._timestamp = lambda: request.context["timestamp"]
    signer.add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    received = [(k, v) for k, v in prepared.headers.items()]
    received.append(("host", parts.netloc))
    return sigv4.HttpRequest("POST", parts.path, parts.query, tuple(received), body)


MODEL_PATH = "http://127.0.0.1:4590/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"


def test_botocore_signed_invoke_with_double_encoded_model_id() -> None:
    request = botocore_signed(
        MODEL_PATH, b'{"x":1}', {"Content-Type": "application/json", "Accept": "*/*"}
    )
    claim = sigv4.read_claim(request)
    verified = sigv4.verify_signature(request, claim, SECRET)
    assert "/model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke" in verified.canonical_request


def test_botocore_signed_profile_arn_and_session_token() -> None:
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x"
    request = botocore_signed(
        f"http://127.0.0.1:4590/model/{arn}/invoke", b"{}", {}, token="session-token"
    )
    claim = sigv4.read_claim(request)
    assert claim.security_token == "session-token"
    assert "x-amz-security-token" in claim.signed_headers
    verified = sigv4.verify_signature(request, claim, SECRET)
    assert "%252F" in verified.canonical_request


def test_tampered_body_header_and_path_are_rejected() -> None:
    request = botocore_signed(MODEL_PATH, b'{"x":1}', {"X-Amzn-Bedrock-Trace": "ENABLED"})
    claim = sigv4.read_claim(request)
    variants = [
        sigv4.HttpRequest(request.method, request.raw_path, "", request.headers, b'{"x":2}'),
        sigv4.HttpRequest(
            request.method,
            request.raw_path,
            "",
            tuple(
                (k, "DISABLED" if k.lower() == "x-amzn-bedrock-trace" else v)
                for k, v in request.headers
            ),
            request.body,
        ),
        sigv4.HttpRequest(
            request.method,
            request.raw_path.replace("haiku", "sonnet"),
            "",
            request.headers,
            request.body,
        ),
        sigv4.HttpRequest("PUT", request.raw_path, "", request.headers, request.body),
        sigv4.HttpRequest(request.method, request.raw_path, "a=b", request.headers, request.body),
    ]
    for variant in variants:
        with pytest.raises(InvalidSignatureException) as info:
            sigv4.verify_signature(variant, claim, SECRET)
        assert info.value.message == sigv4.SIGNATURE_MISMATCH


def test_a_signed_header_that_is_missing_fails_as_a_mismatch() -> None:
    request = botocore_signed(MODEL_PATH, b"{}", {"X-Amzn-Bedrock-Trace": "ENABLED"})
    stripped = tuple((k, v) for k, v in request.headers if k.lower() != "x-amzn-bedrock-trace")
    bare = sigv4.HttpRequest("POST", request.raw_path, "", stripped, request.body)
    with pytest.raises(InvalidSignatureException):
        sigv4.verify_signature(bare, sigv4.read_claim(bare), SECRET)


# -- payload hash variants -----------------------------------------------------------------------


def _with_content_sha(value: str, body: bytes) -> tuple[sigv4.HttpRequest, sigv4.SigV4Claim]:
    request = botocore_signed(MODEL_PATH, body, {"X-Amz-Content-SHA256": value})
    return request, sigv4.read_claim(request)


def test_declared_content_sha256_must_match_the_body() -> None:
    body = b'{"x":1}'
    good, claim = _with_content_sha(hashlib.sha256(body).hexdigest(), body)
    assert (
        sigv4.verify_signature(good, claim, SECRET).payload_hash == hashlib.sha256(body).hexdigest()
    )
    lying, claim = _with_content_sha(hashlib.sha256(b"other").hexdigest(), body)
    with pytest.raises(InvalidSignatureException):
        sigv4.verify_signature(lying, claim, SECRET)


def test_unsigned_payload_is_refused_on_header_signed_requests() -> None:
    # Issue 13 item 11: no bedrock-runtime or sagemaker-runtime operation carries the
    # unsigned-payload trait, so the SDKs always sign the body and a signature over
    # UNSIGNED-PAYLOAD does not match what the service computes (docs/input-validation.md).
    request, claim = _with_content_sha(sigv4.UNSIGNED_PAYLOAD, b"anything")
    with pytest.raises(InvalidSignatureException) as caught:
        sigv4.verify_signature(request, claim, SECRET)
    assert caught.value.message == sigv4.SIGNATURE_MISMATCH


def test_unsigned_payload_stays_allowed_in_presigned_urls() -> None:
    request = botocore_presigned(MODEL_PATH, b"")
    claim = sigv4.read_claim(request)
    assert sigv4.payload_hashes(request, claim, allow_event_stream=False) == (
        sigv4.EMPTY_SHA256,
        sigv4.UNSIGNED_PAYLOAD,
    )


def test_streaming_events_literal_only_where_the_body_is_an_event_stream() -> None:
    request, claim = _with_content_sha(sigv4.STREAMING_EVENTS_PAYLOAD, b"")
    with pytest.raises(InvalidSignatureException):
        sigv4.verify_signature(request, claim, SECRET)
    verified = sigv4.verify_signature(request, claim, SECRET, allow_event_stream=True)
    assert verified.payload_hash == sigv4.STREAMING_EVENTS_PAYLOAD


# -- HTTP/2: the JS SDK signs :authority ---------------------------------------------------------


def test_authority_pseudo_header_takes_the_host_value() -> None:
    # Build what the JS SDK signs over h2 (:authority instead of host) with our own primitives,
    # then check it against an independent botocore computation of the same canonical request.
    body = b'{"x":1}'
    amz_date = "20261123T065512Z"
    body_hash = hashlib.sha256(body).hexdigest()
    names = ":authority;content-type;x-amz-content-sha256;x-amz-date"
    received = (
        ("host", "127.0.0.1:8700"),
        ("content-type", "application/json"),
        ("x-amz-content-sha256", body_hash),
        ("x-amz-date", amz_date),
    )
    canonical = "\n".join(
        [
            "POST",
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke",
            "",
            ":authority:127.0.0.1:8700\ncontent-type:application/json\n"
            f"x-amz-content-sha256:{body_hash}\nx-amz-date:{amz_date}\n",
            names,
            body_hash,
        ]
    )
    scope = sigv4.CredentialScope(AKID, amz_date[:8], "us-east-1", "bedrock")
    carrier = AWSRequest(method="POST", url="https://unused/")
    carrier.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(AKID, SECRET), "bedrock", "us-east-1")
    signature = signer.signature(sigv4.string_to_sign(amz_date, scope, canonical), carrier)
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={AKID}/{scope.scope()}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    request = sigv4.HttpRequest(
        "POST",
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
        "",
        (*received, ("authorization", authorization)),
        body,
    )
    verified = sigv4.verify_signature(request, sigv4.read_claim(request), SECRET)
    assert verified.canonical_request == canonical


# -- presigned URLs ------------------------------------------------------------------------------


def botocore_presigned(url: str, body: bytes, expires: int = 300) -> sigv4.HttpRequest:
    """A URL presigned by botocore. Its presigner moves a JSON body's members into the query
    and signs an empty body, so the URL is then used without one."""
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4QueryAuth(Credentials(AKID, SECRET), "bedrock", "us-east-1", expires=expires).add_auth(
        request
    )
    parts = urlsplit(request.prepare().url)
    return sigv4.HttpRequest("POST", parts.path, parts.query, (("host", parts.netloc),), b"")


def test_presigned_url_verifies_and_expires() -> None:
    request = botocore_presigned(MODEL_PATH, b'{"x":1}', expires=300)
    claim = sigv4.read_claim(request)
    assert claim.location == "query" and claim.expires == 300
    assert request.raw_query.startswith("x=1&")  # operation parameters are signed too
    sigv4.verify_signature(request, claim, SECRET)
    signed_at = claim.signed_at
    sigv4.check_clock(claim, signed_at + dt.timedelta(seconds=299))
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        sigv4.check_clock(claim, signed_at + dt.timedelta(seconds=301))
    tampered = sigv4.HttpRequest(
        "POST",
        request.raw_path,
        request.raw_query.replace("X-Amz-Expires=300", "X-Amz-Expires=900"),
        request.headers,
        request.body,
    )
    with pytest.raises(InvalidSignatureException):
        sigv4.verify_signature(tampered, sigv4.read_claim(tampered), SECRET)


# -- clock and scope -----------------------------------------------------------------------------


def _claim(amz_date: str = "20150830T123600Z", service: str = "bedrock") -> sigv4.SigV4Claim:
    return sigv4.SigV4Claim(
        sigv4.CredentialScope(AKID, amz_date[:8], "us-east-1", service),
        ("host", "x-amz-date"),
        "0" * 64,
        amz_date,
        None,
        "header",
    )


def test_clock_skew_messages() -> None:
    claim = _claim()
    sigv4.check_clock(claim, SUITE_TIME + dt.timedelta(minutes=15))
    with pytest.raises(InvalidSignatureException) as late:
        sigv4.check_clock(claim, SUITE_TIME + dt.timedelta(minutes=16))
    assert late.value.message == (
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z "
        "(20150830T125200Z - 15 min.)"
    )
    with pytest.raises(InvalidSignatureException) as early:
        sigv4.check_clock(claim, SUITE_TIME - dt.timedelta(minutes=20))
    assert early.value.message == (
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123100Z "
        "(20150830T121600Z + 15 min.)"
    )


def test_scope_checks() -> None:
    with pytest.raises(InvalidSignatureException, match="correct service: 'bedrock'"):
        sigv4.check_scope(_claim(service="s3"), ["bedrock"], None)
    with pytest.raises(InvalidSignatureException, match="valid region"):
        sigv4.check_scope(_claim(), ["bedrock"], ["eu-west-1"])
    bad_day = sigv4.SigV4Claim(
        sigv4.CredentialScope(AKID, "20150829", "us-east-1", "bedrock"),
        ("host",),
        "0" * 64,
        "20150830T123600Z",
        None,
        "header",
    )
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope"):
        sigv4.check_scope(bad_day, ["bedrock"], None)
    hostless = sigv4.SigV4Claim(
        sigv4.CredentialScope(AKID, "20150830", "us-east-1", "bedrock"),
        ("x-amz-date",),
        "0" * 64,
        "20150830T123600Z",
        None,
        "header",
    )
    with pytest.raises(IncompleteSignatureException, match="'Host' or ':authority'"):
        sigv4.check_scope(hostless, ["bedrock"], None)


# -- malformed input -----------------------------------------------------------------------------

GOOD_SIG = "a" * 64


def _req(headers: list[tuple[str, str]], query: str = "") -> sigv4.HttpRequest:
    return sigv4.HttpRequest("POST", "/", query, tuple(headers), b"")


@pytest.mark.parametrize(
    ("authorization", "fragment"),
    [
        ("Basic dXNlcjpwYXNz", "Unsupported authorization type"),
        ("AWS4-HMAC-SHA256", "requires 'Credential' parameter"),
        ("AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/bedrock/aws4_request", "'Signature'"),
        (
            f"AWS4-HMAC-SHA256 Credential=A/2015/us-east-1/bedrock/aws4_request, "
            f"SignedHeaders=host, Signature={GOOD_SIG}",
            "Invalid credential date",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=A/us-east-1/bedrock/aws4_request, SignedHeaders=host, "
            f"Signature={GOOD_SIG}",
            "5 slash-delimited",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/bedrock/aws4_request, "
            "SignedHeaders=host, Signature=xyz",
            "64 lowercase hexadecimal",
        ),
        ("AWS4-HMAC-SHA256 garbage", "missing equal-sign"),
    ],
)
def test_malformed_authorization_headers(authorization: str, fragment: str) -> None:
    request = _req([("authorization", authorization), ("x-amz-date", "20150830T123600Z")])
    with pytest.raises(IncompleteSignatureException) as info:
        sigv4.read_claim(request)
    assert fragment in info.value.message


@pytest.mark.parametrize("amz_date", ["", "yesterday", "20151330T123600Z", "99999999T999999Z"])
def test_absurd_dates(amz_date: str) -> None:
    authorization = (
        "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={GOOD_SIG}"
    )
    with pytest.raises(IncompleteSignatureException, match="ISO-8601"):
        sigv4.read_claim(_req([("authorization", authorization), ("x-amz-date", amz_date)]))


def test_missing_date_header_and_missing_auth() -> None:
    authorization = (
        "AWS4-HMAC-SHA256 Credential=A/20150830/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=host, Signature={GOOD_SIG}"
    )
    with pytest.raises(IncompleteSignatureException, match="X-Amz-Date"):
        sigv4.read_claim(_req([("authorization", authorization)]))
    with pytest.raises(MissingAuthenticationTokenException):
        sigv4.read_claim(_req([]))


def test_incomplete_presigned_query() -> None:
    with pytest.raises(IncompleteSignatureException, match="X-Amz-Credential"):
        sigv4.read_claim(_req([], query="X-Amz-Algorithm=AWS4-HMAC-SHA256"))
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=A%2F20150830%2Fus-east-1%2Fbedrock"
        "%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host"
        f"&X-Amz-Signature={GOOD_SIG}&X-Amz-Expires=9999999"
    )
    with pytest.raises(IncompleteSignatureException, match="less than a week"):
        sigv4.read_claim(_req([], query=query))


# -- the signed event-stream chain ----------------------------------------------------------------

# Known answer from the official smithy signer (aws_sdk_signers.AsyncEventSigner, as used by
# aws-sdk-bedrock-runtime): a seed signature and two outer frames, us-east-1, service bedrock,
# the example secret (docs/wire.md §4 describes the chain).
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # the SDK docs' example secret
CHAIN_SEED = "ef4e80b9944ca2934f20d37d0f21961cc00160c8d7b88eeb2f4a4bd1902eb851"
CHAIN_FRAMES = bytes.fromhex(
    "000000e200000043d8e35bfc053a6461746508000001a2072f1902103a6368756e6b2d7369676e6174757265"
    "060020e6a95b69285f719d797f8010f406b229b3639a2169d831997ca0b6bc19320e3a"
    "0000008f0000004bb79a60320d3a6d6573736167652d747970650700056576656e740b3a6576656e742d7479"
    "70650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b"
    "226279746573223a2265794a6c646d567564434936494873696332567a63326c76626b56755a434936494874"
    "396658303d227d6d41cfad992e622c"
    "0000005300000043f5447a58053a6461746508000001a2072f1902103a6368756e6b2d7369676e6174757265"
    "060020d63363d2a5a2578ad69bb00fe1027e2b3b61435b2ee0626280f85cb735a50c379016efd2"
)


def _frames(data: bytes) -> list[Any]:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_event_chain_known_answer_and_tampering() -> None:
    frames = _frames(CHAIN_FRAMES)
    date_ms = frames[0].headers[":date"]
    stamp = dt.datetime.fromtimestamp(date_ms / 1000, tz=dt.UTC).strftime("%Y%m%d")
    keys = event_signing.key_from_secret(DOC_SECRET, "us-east-1", "bedrock")
    assert keys(stamp) == sigv4.signing_key(DOC_SECRET, stamp, "us-east-1", "bedrock")
    chain = event_signing.EventChain(CHAIN_SEED, "us-east-1", "bedrock", keys)
    for frame in frames:
        chain.verify(event_signing.read_signed_frame(frame.headers, frame.payload))
    assert chain.frames == 2
    fresh = event_signing.EventChain(CHAIN_SEED, "us-east-1", "bedrock", keys)
    first = frames[0]
    with pytest.raises(event_signing.EventSigningError):
        fresh.verify(event_signing.read_signed_frame(first.headers, first.payload + b" "))
    # The chain does not advance on failure, so the untampered frame still verifies after it.
    fresh.verify(event_signing.read_signed_frame(first.headers, first.payload))
