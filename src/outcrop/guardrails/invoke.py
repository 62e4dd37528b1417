"""What an InvokeModel request asks of a guardrail, and the errors Bedrock answers for it.

InvokeModel and InvokeModelWithResponseStream select a guardrail with the headers
`X-Amzn-Bedrock-GuardrailIdentifier` and `X-Amzn-Bedrock-GuardrailVersion` and its trace with
`X-Amzn-Bedrock-Trace`; the body may carry `amazon-bedrock-guardrailConfig` with `tagSuffix`
(input tagging) and, when streaming, `streamProcessingMode` (SYNCHRONOUS, the default, or
ASYNCHRONOUS). Bedrock removes that member before the model sees the body.

Input tagging (AWS user guide, "Apply tags to user input to filter content"): with a tag suffix
`xyz`, only the text inside `<amazon-bedrock-guardrails-guardContent_xyz>` ...
`</amazon-bedrock-guardrails-guardContent_xyz>` is checked; without tags the whole prompt is,
except that prompt-attack filters need tags. Outcrop removes the tag markup before the model
sees the prompt (unverified whether Bedrock does).

The errors the InvokeModel API reference names ("an error is thrown" when the body carries the
guardrail config without an identifier, when a guardrail is enabled with a content type other
than application/json, and when an identifier comes without a version), with Bedrock's messages
where they are known from public reports (see the constants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from outcrop.dialects.schema import malformed
from outcrop.wire.errors import ValidationException

CONFIG_FIELD = "amazon-bedrock-guardrailConfig"
TAG_PREFIX = "amazon-bedrock-guardrails-guardContent_"

INCORRECT_FORMAT = "Guardrail was enabled but input is in incorrect format."
"""Bedrock's message for an identifier without a version (public reports quote it for
InvokeModel and ApplyGuardrail); used for the other malformed-guardrail cases too (unverified)."""

UNKNOWN_GUARDRAIL = "The guardrail identifier or version provided in the request does not exist."
"""Bedrock's message for an unknown guardrail ID or version on InvokeModel and Converse (public
reports quote it, identical for both)."""

TraceMode = Literal["ENABLED", "DISABLED", "ENABLED_FULL"]
StreamMode = Literal["SYNCHRONOUS", "ASYNCHRONOUS"]

_SUFFIX = re.compile(r"^[A-Za-z0-9]{1,20}$")


@dataclass(frozen=True, slots=True)
class InvokeGuardrailRequest:
    identifier: str
    version: str
    trace: TraceMode
    tag_suffix: str | None
    stream_mode: StreamMode


@dataclass(frozen=True, slots=True)
class GuardrailHeaders:
    identifier: str
    version: str
    trace: TraceMode


def guardrail_headers(params: Mapping[str, Any]) -> GuardrailHeaders | None:
    """The guardrail the request's headers enable, or None; raises Bedrock's
    ValidationException for an identifier without a version or with a non-JSON body."""
    identifier = params.get("guardrailIdentifier") or None
    if identifier is None:
        return None
    version = params.get("guardrailVersion") or None
    if version is None:
        raise ValidationException(INCORRECT_FORMAT)
    content_type = params.get("contentType")
    if content_type is not None and str(content_type).split(";", 1)[0].strip().lower() != (
        "application/json"
    ):
        raise ValidationException(INCORRECT_FORMAT)
    return GuardrailHeaders(str(identifier), str(version), params.get("trace") or "DISABLED")


def guardrail_request(
    headers: GuardrailHeaders | None, body: dict[str, Any]
) -> InvokeGuardrailRequest | None:
    """The whole guardrail request, the body's config member removed from `body`. Without a
    guardrail the member stays, for the family's schema to refuse (see `refuse_unused_config`)."""
    if headers is None:
        return None
    suffix, mode = _config(body.pop(CONFIG_FIELD, None))
    return InvokeGuardrailRequest(headers.identifier, headers.version, headers.trace, suffix, mode)


def refuse_unused_config(body: dict[str, Any]) -> None:
    """A body that still carries the guardrail config (no guardrail was enabled, and the
    family's schema let the member through): the error the API reference promises, in the
    schema's words (wording unverified)."""
    if CONFIG_FIELD in body:
        raise malformed([f"#: extraneous key [{CONFIG_FIELD}] is not permitted"])


def _config(config: Any) -> tuple[str | None, StreamMode]:
    if config is None:
        return None, "SYNCHRONOUS"
    if not isinstance(config, dict) or set(config) - {"tagSuffix", "streamProcessingMode"}:
        raise ValidationException(INCORRECT_FORMAT)
    suffix = config.get("tagSuffix")
    if suffix is not None and (not isinstance(suffix, str) or not _SUFFIX.match(suffix)):
        raise ValidationException(INCORRECT_FORMAT)
    mode = config.get("streamProcessingMode", "SYNCHRONOUS")
    if mode not in ("SYNCHRONOUS", "ASYNCHRONOUS"):
        raise ValidationException(INCORRECT_FORMAT)
    return suffix, mode


@dataclass(frozen=True, slots=True)
class Tagged:
    """A prompt text with its guard tags taken out, and what they enclosed."""

    text: str
    """The text without the tag markup (what the model sees)."""
    sections: tuple[tuple[int, int], ...]
    """Spans of `text` that were inside tags."""


def untag(text: str, suffix: str) -> Tagged:
    """Remove `suffix`'s guard tags from `text`, remembering what they enclosed.

    Nested or unbalanced tags are refused, as AWS documents that tags do not nest."""
    opening = f"<{TAG_PREFIX}{suffix}>"
    closing = f"</{TAG_PREFIX}{suffix}>"
    out: list[str] = []
    sections: list[tuple[int, int]] = []
    position = 0
    length = 0
    while True:
        start = text.find(opening, position)
        stray_close = text.find(closing, position)
        if start == -1:
            if stray_close != -1:
                raise ValidationException(INCORRECT_FORMAT)
            out.append(text[position:])
            break
        if stray_close != -1 and stray_close < start:
            raise ValidationException(INCORRECT_FORMAT)
        end = text.find(closing, start + len(opening))
        if end == -1 or text.find(opening, start + len(opening), end) != -1:
            raise ValidationException(INCORRECT_FORMAT)
        before = text[position:start]
        inside = text[start + len(opening) : end]
        out.append(before)
        length += len(before)
        sections.append((length, length + len(inside)))
        out.append(inside)
        length += len(inside)
        position = end + len(closing)
    return Tagged("".join(out), tuple(sections))
