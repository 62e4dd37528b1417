"""What a call is about, as quotas, policies' neighbours and fault rules match it: the model
(base model ID, or the SageMaker endpoint name), the principal, whether it streams, and the
text of its prompt. Read from the request context; no model family is known here. The model key
is derived once per call, whichever interceptor asks first."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from weakref import WeakKeyDictionary

from outcrop.catalog.identifiers import parse_identifier
from outcrop.invocation.context import RequestContext
from outcrop.wire.restjson import ServiceSpec

_MODEL_KEYS: WeakKeyDictionary[RequestContext, str] = WeakKeyDictionary()


def model_key(ctx: RequestContext, aliases: Mapping[str, str] | None = None) -> str:
    """The base model ID a Bedrock call names (or the endpoint name a SageMaker call names).

    Every interceptor of an application passes the same `aliases` (`[aliases]`)."""
    known = _MODEL_KEYS.get(ctx)
    if known is None:
        known = _MODEL_KEYS[ctx] = _model_key(ctx, aliases)
    return known


def _model_key(ctx: RequestContext, aliases: Mapping[str, str] | None) -> str:
    params = ctx.params
    if "modelId" in params:
        identifier = str(params["modelId"])
        ref = parse_identifier(identifier, aliases or {})
        return ref.base_model_id if ref is not None else identifier
    if "EndpointName" in params:
        return str(params["EndpointName"])
    return ""


def principal_of(ctx: RequestContext) -> str:
    identity = ctx.call.identity
    return identity.principal if identity is not None else ""


def is_streaming(ctx: RequestContext) -> bool:
    """Whether the operation answers with an event stream (from the service model)."""
    try:
        operation = ServiceSpec.load(ctx.service).model.operation_model(ctx.operation)
    except Exception:
        return False
    return operation.get_event_stream_output() is not None


def prompt_text(body: bytes) -> str:
    """Every string in a JSON body, one per line (the body itself when it is not JSON)."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body.decode("utf-8", errors="replace")
    return "\n".join(_strings(value))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
