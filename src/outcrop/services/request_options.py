"""The request options that ride beside a model invocation's body: service tier, latency
setting and request metadata.

- `serviceTier` (priority, default, flex, reserved) and `performanceConfigLatency` (standard,
  optimized) are checked against the service model's enums when the request is bound, echoed in
  the response (InvokeModel: the `X-Amzn-Bedrock-Service-Tier` and
  `X-Amzn-Bedrock-PerformanceConfig-Latency` headers; Converse: `serviceTier` and
  `performanceConfig` members). The tier also schedules the generation: engines with a queue
  (llama.cpp) serve `priority` requests before `default` and `reserved` ones, and `flex` ones
  last (`GenerationRequest.priority`: -1, 0, 0, 1; equal priorities keep arrival order). The
  latency setting changes nothing locally: there is no faster variant of a local model.
- Request metadata (`X-Amzn-Bedrock-Request-Metadata`, a JSON object in a header of at most
  8,500 characters; Converse's `requestMetadata` member) is checked against the service model's
  `RequestMetadata` map (1-16 entries, keys of 1-256 and values of 0-256 characters from
  `[a-zA-Z0-9\\s:_@$#=/+,-.]`) and handed to the invocation log as
  `ctx.state["request_metadata"]` (a `dict[str, str]`).
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from botocore.model import Shape

from outcrop.services.base import RequestContext
from outcrop.types import GenerationRequest
from outcrop.wire.errors import ValidationException
from outcrop.wire.jsonbody import JsonInputError, coral_message, load_json, value_violations
from outcrop.wire.restjson import ServiceSpec

TIER_PRIORITY = {"priority": -1, "default": 0, "reserved": 0, "flex": 1}
"""Scheduling priority of each service tier (lower runs first)."""

METADATA_STATE_KEY = "request_metadata"
"""Where the parsed request metadata is kept in `RequestContext.state`."""

# Wording unverified: what Bedrock says when the header is not a JSON object of strings.
METADATA_NOT_JSON = "The request metadata must be a JSON object whose keys and values are strings."


def tier_priority(tier: object) -> int:
    """The `GenerationRequest.priority` for a service tier (None: the default tier)."""
    return TIER_PRIORITY.get(str(tier), 0) if tier is not None else 0


@cache
def _metadata_shape() -> Shape:
    return ServiceSpec.load("bedrock-runtime").model.shape_for("RequestMetadata")


def check_request_metadata(value: Any) -> dict[str, str]:
    """A request metadata map checked against the service model (Coral-style errors)."""
    if not isinstance(value, dict):
        raise ValidationException(METADATA_NOT_JSON)
    problems = list(value_violations(_metadata_shape(), value, "requestMetadata"))
    if problems:
        raise ValidationException(coral_message(problems))
    return {str(k): str(v) for k, v in value.items()}


def parse_metadata_header(raw: str) -> dict[str, str]:
    """The `X-Amzn-Bedrock-Request-Metadata` header's map (its length is checked at binding)."""
    try:
        value = load_json(raw)
    except JsonInputError:
        raise ValidationException(METADATA_NOT_JSON) from None
    if isinstance(value, dict) and any(not isinstance(v, str) for v in value.values()):
        raise ValidationException(METADATA_NOT_JSON)
    return check_request_metadata(value)


def with_request_options(ctx: RequestContext, request: GenerationRequest) -> GenerationRequest:
    """Record InvokeModel's request metadata and schedule `request` by its service tier."""
    raw = ctx.params.get("requestMetadata")
    if raw is not None:
        ctx.state[METADATA_STATE_KEY] = parse_metadata_header(str(raw))
    priority = tier_priority(ctx.params.get("serviceTier"))
    if priority != request.priority:
        request = dataclasses.replace(request, priority=priority)
    return request
