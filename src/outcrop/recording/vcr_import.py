"""Import vcrpy / pytest-recording cassettes of Bedrock and SageMaker Runtime traffic.

vcrpy stores each exchange as `request {method, uri, body, headers}` and `response {status
{code, message}, headers, body {string}}`, in YAML (binary values as `!!binary`) or JSON; event
streams are kept as the opaque bytes of their frames. Here each exchange becomes an Outcrop
cassette interaction: the operation and its target come from the URI matched against the service
models (as the server routes calls), the request is normalized as recording normalizes it
(signature, dates, SDK ids and other volatile headers dropped, secrets redacted), and an event
stream is split into its frames (CRCs checked) and each event decoded as recording decodes it.
vcrpy keeps no timing, so imported events all carry `t` 0: they replay with no delays.

Exchanges that are not calls of a served operation (the `bedrock` control plane, STS, ...) are
skipped and counted. `outcrop cassettes import` is the command; docs/cassettes.md.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import yaml
from smithy_aws_event_stream.exceptions import EventError

from outcrop.recording import cassette as cassettes
from outcrop.wire.restjson import ServiceSpec

SERVICES = ("bedrock-runtime", "sagemaker-runtime")
TARGET_PARAMS = ("modelId", "guardrailIdentifier", "EndpointName")


class ImportProblem(ValueError):
    """The input is not a vcrpy cassette this importer can read."""


@dataclass
class ImportResult:
    """What an import produced: the interactions, and what it skipped and why."""

    interactions: list[cassettes.Interaction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_vcr(text: str) -> list[dict[str, Any]]:
    """The interactions of a vcrpy cassette in YAML or JSON (both of vcrpy's serializers)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ImportProblem(f"neither JSON nor YAML: {exc!r}") from None
    if isinstance(data, Mapping):
        interactions = data.get("interactions")
    elif isinstance(data, list):  # vcrpy's pre-1.0 layout: a bare list of exchanges
        interactions = data
    else:
        interactions = None
    if not isinstance(interactions, list):
        raise ImportProblem("no `interactions` list: not a vcrpy cassette")
    return [dict(item) for item in interactions if isinstance(item, Mapping)]


def import_vcr(text: str, redaction: cassettes.Redaction | None = None) -> ImportResult:
    """Convert a vcrpy cassette's text into Outcrop interactions."""
    result = ImportResult()
    for number, raw in enumerate(parse_vcr(text), start=1):
        try:
            interaction = convert(raw, redaction)
        except ImportProblem as exc:
            result.skipped.append(f"interaction {number}: {exc}")
            continue
        except (
            AttributeError,
            KeyError,
            OverflowError,
            RecursionError,
            TypeError,
            ValueError,
        ) as exc:
            result.skipped.append(f"interaction {number}: malformed ({exc!r})")
            continue
        result.interactions.append(interaction)
    return result


def _bytes(value: Any) -> bytes:
    """A vcrpy body or header value as bytes: `!!binary` loads as bytes, text is UTF-8 (vcrpy
    stores a body that decodes as UTF-8 as text), a pydantic-ai style `parsed_body` as JSON."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, Mapping):
        if "string" in value:
            return _bytes(value["string"])
        if "parsed_body" in value:
            return json.dumps(value["parsed_body"]).encode()
    if isinstance(value, list):  # a header's list of values
        return b", ".join(_bytes(v) for v in value)
    raise ImportProblem(f"unreadable body of type {type(value).__name__}")


def _headers(raw: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, Mapping):
        for name, values in raw.items():
            for value in values if isinstance(values, list) else [values]:
                pairs.append((str(name), _bytes(value).decode("latin-1")))
    return pairs


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


@cache
def _spec(service: str) -> ServiceSpec:
    return ServiceSpec.load(service)


def route(method: str, uri: str) -> tuple[str, str, str, str, str]:
    """(service, operation, target, path, query) of a call, from its method and URI.

    The host names the service when it is an AWS endpoint (`bedrock-runtime.*`,
    `runtime.sagemaker.*`); otherwise (a local endpoint) each service model is tried in turn."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if host.startswith("bedrock-runtime"):
        candidates: tuple[str, ...] = ("bedrock-runtime",)
    elif host.startswith("runtime.sagemaker") or host.startswith("runtime-fips.sagemaker"):
        candidates = ("sagemaker-runtime",)
    elif host.endswith("amazonaws.com"):
        raise ImportProblem(f"{host} is not a Bedrock or SageMaker Runtime endpoint")
    else:
        candidates = SERVICES
    path = parts.path or "/"
    for service in candidates:
        matched = _spec(service).match(method.upper(), path)
        if matched is not None:
            operation, params = matched
            target = next((params[name] for name in TARGET_PARAMS if name in params), "")
            return service, operation.name, target, path, parts.query
    raise ImportProblem(f"{method} {path} is no operation of {' or '.join(candidates)}")


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding:
        return body
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "identity":
        return body
    raise ImportProblem(f"response body in content-encoding {encoding}, which is not supported")


def split_frames(body: bytes, t: float = 0.0) -> list[cassettes.RecordedEvent]:
    """Each event-stream frame of `body`, decoded (its CRCs checked)."""
    splitter = cassettes.FrameSplitter()
    events: list[cassettes.RecordedEvent] = []
    try:
        for frame in splitter.feed(body):
            events.append(cassettes.RecordedEvent.from_frame(frame, t))
    except (ValueError, EventError) as exc:  # a bad length, or smithy's decoder refusing a CRC
        raise ImportProblem(f"damaged event stream after {len(events)} events: {exc}") from None
    if splitter.pending:
        raise ImportProblem(f"event stream cut short after {len(events)} events")
    return events


def _unprettified(body: bytes) -> bytes:
    """A JSON body some recorders re-indented for readability (OpenTelemetry's and
    OpenLLMetry's `PrettyPrintJSONBody` serializers) in the compact form AWS sends."""
    if b"\n" not in body or body[:1] not in (b"{", b"["):
        return body
    try:
        value = json.loads(body)
    except ValueError:
        return body
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _recorded_at(headers: Sequence[tuple[str, str]]) -> str:
    """The response's `date` as ISO 8601 (vcrpy keeps no time of its own), else empty."""
    value = _header(headers, "date")
    if not value:
        return ""
    try:
        return parsedate_to_datetime(value).isoformat(timespec="milliseconds")
    except (TypeError, ValueError):
        return ""


def convert(
    raw: Mapping[str, Any], redaction: cassettes.Redaction | None = None
) -> cassettes.Interaction:
    """One vcrpy exchange as an Outcrop interaction."""
    redaction = redaction or cassettes.Redaction()
    request = raw.get("request")
    response = raw.get("response")
    if not isinstance(request, Mapping) or not isinstance(response, Mapping):
        raise ImportProblem("no request/response pair")
    method = str(request.get("method", "POST")).upper()
    service, operation, target, path, query = route(method, str(request.get("uri", "")))
    status_field = response.get("status")
    code = status_field.get("code", 200) if isinstance(status_field, Mapping) else status_field
    response_headers = _headers(response.get("headers"))
    body = _decompress(_bytes(response.get("body")), _header(response_headers, "content-encoding"))
    content_type = (_header(response_headers, "content-type") or "").lower()
    stream = content_type.startswith("application/vnd.amazon.eventstream")
    kept = [(k, v) for k, v in response_headers if k.lower() != "content-encoding"]
    if not stream:
        body = _unprettified(body)
    return cassettes.Interaction(
        service=service,
        operation=operation,
        target=target,
        request=cassettes.RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=redaction.request_headers(_headers(request.get("headers"))),
            body=redaction.body(cassettes.parsed_body(_bytes(request.get("body")))),
        ),
        response=cassettes.RecordedResponse(
            status=int(code or 200),
            headers=cassettes.response_headers(kept),
            body=None if stream else cassettes.encode_body(body),
            events=tuple(split_frames(body)) if stream else None,
        ),
        recorded_at=_recorded_at(response_headers),
        duration=0.0,
    )
