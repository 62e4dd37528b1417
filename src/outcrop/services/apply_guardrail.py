"""Bedrock Runtime's ApplyGuardrail: assess content with a guardrail, without any model.

`POST /guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply` with `source` (INPUT:
the content is a prompt; OUTPUT: a model's answer), `content` (text blocks; `qualifiers`
`grounding_source` and `query` mark context for contextual grounding, which is counted in the
coverage but not checked by the other policies; `guard_content` or no qualifier: checked) and
`outputScope` (INTERVENTIONS, the default, lists what intervened; FULL also lists the policies
that detected nothing). The answer has the action, its reason, the text to use instead
(`outputs`: the blocked messaging, or the masked texts, one per checked block), the assessment
with its metrics, usage and coverage. Image blocks are accepted and not assessed (Outcrop's
content filters read text only).

Errors: an identifier that is neither a guardrail ID nor a guardrail ARN is refused when the
URI is bound (the model's pattern, matched against the whole value); one the pattern lets
through that is still not one gets Bedrock's "Guardrail was enabled but input is in incorrect
format." (public reports quote it for malformed identifiers); a well-formed but unknown
guardrail or version gets ResourceNotFoundException (the modelled error; its wording is
unverified).
"""

from __future__ import annotations

import json
import re
from typing import Any

from outcrop.guardrails.assess import Segment, guarded_by
from outcrop.guardrails.invoke import INCORRECT_FORMAT, UNKNOWN_GUARDRAIL
from outcrop.guardrails.runtime import Guardrails
from outcrop.guardrails.shapes import apply_guardrail_response
from outcrop.services.base import Operation, RequestContext, Response
from outcrop.wire.errors import ResourceNotFoundException, ValidationException
from outcrop.wire.jsonbody import parse_json_body
from outcrop.wire.restjson import ServiceSpec

_IDENTIFIER = re.compile(
    r"[a-z0-9]+|arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+"
)


class ApplyGuardrail:
    def __init__(self, guardrails: Guardrails) -> None:
        self.guardrails = guardrails
        self.spec = ServiceSpec.load("bedrock-runtime")

    def operations(self) -> dict[str, Operation]:
        return {"ApplyGuardrail": self.apply_guardrail}

    async def apply_guardrail(self, ctx: RequestContext) -> Response:
        identifier = str(ctx.params["guardrailIdentifier"])
        version = str(ctx.params["guardrailVersion"])
        if not _IDENTIFIER.fullmatch(identifier):
            raise ValidationException(INCORRECT_FORMAT)
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        guardrail = self.guardrails.resolve(identifier, version)
        if guardrail is None:
            raise ResourceNotFoundException(UNKNOWN_GUARDRAIL)
        source = body["source"]
        segments = [_segment(block, source) for block in body["content"] if "text" in block]
        assessment = await self.guardrails.assess(guardrail, segments, source)
        answer = apply_guardrail_response(
            assessment, guardrail.applied, full=body.get("outputScope") == "FULL"
        )
        return _json(answer)


def _segment(block: dict[str, Any], source: str) -> Segment:
    text = block["text"]
    qualifiers = set(text.get("qualifiers") or ())
    guarded = guarded_by(qualifiers)
    return Segment(str(text["text"]), guarded=guarded, prompt_attack=source == "INPUT")


def _json(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False).encode(), [("Content-Type", "application/json")]
    )
