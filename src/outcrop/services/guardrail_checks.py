"""Bedrock Runtime's InvokeGuardrailChecks: inline checks on messages, without a guardrail.

`POST /guardrail-checks/invoke` with `messages` (role and text blocks) and `checks`
(`contentFilter` categories, `promptAttack` categories, `sensitiveInformation` entity types).
The answer has, per requested check, its results and its usage in text units (1,000
characters of the messages' text, at least one), with Outcrop's own detectors:

- contentFilter / promptAttack: one entry per requested category, `severityScore` from the
  keyword and pattern rules of guardrails/content.py (their confidence NONE, LOW, MEDIUM,
  HIGH as 0.0, 0.3, 0.6, 0.9: our scale; AWS's classifier scores are not reproducible); the
  prompt-attack rules are split into JAILBREAK, PROMPT_INJECTION and PROMPT_LEAKAGE.
- sensitiveInformation: every detected entity (guardrails/pii.py) with its message and
  content-block index and character offsets (end exclusive, unverified), `confidenceScore`
  1.0 (rule matches), at most 1,000 (then `truncated`).

Every message is checked, whatever its role. A request with no check gets a
ValidationException (wording unverified).
"""

from __future__ import annotations

import json
from typing import Any

from outcrop.guardrails import content, pii
from outcrop.guardrails.assess import text_units
from outcrop.services.base import Operation, RequestContext, Response
from outcrop.wire.errors import ValidationException
from outcrop.wire.jsonbody import parse_json_body
from outcrop.wire.restjson import ServiceSpec

SEVERITY = {"NONE": 0.0, "LOW": 0.3, "MEDIUM": 0.6, "HIGH": 0.9}
MAX_ENTITIES = 1000
NO_CHECK = "At least one guardrail check must be specified in checks."


class GuardrailChecks:
    def __init__(self) -> None:
        self.spec = ServiceSpec.load("bedrock-runtime")

    def operations(self) -> dict[str, Operation]:
        return {"InvokeGuardrailChecks": self.invoke_guardrail_checks}

    async def invoke_guardrail_checks(self, ctx: RequestContext) -> Response:
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        checks: dict[str, Any] = body["checks"]
        if not any(
            checks.get(k) for k in ("contentFilter", "promptAttack", "sensitiveInformation")
        ):
            raise ValidationException(NO_CHECK)
        blocks = [
            (m_index, c_index, str(block["text"]))
            for m_index, message in enumerate(body["messages"])
            for c_index, block in enumerate(message["content"])
            if "text" in block
        ]
        text = "\n".join(t for _, _, t in blocks)
        units = text_units(sum(len(t) for _, _, t in blocks))
        results: dict[str, Any] = {}
        usage: dict[str, Any] = {}
        if checks.get("contentFilter"):
            categories = [c["category"] for c in checks["contentFilter"]["categories"]]
            results["contentFilter"] = {
                "results": [
                    {"category": c, "severityScore": SEVERITY[content.score(c, text).confidence]}
                    for c in categories
                ]
            }
            usage["contentFilter"] = {"textUnits": units}
        if checks.get("promptAttack"):
            kinds = [c["category"] for c in checks["promptAttack"]["categories"]]
            results["promptAttack"] = {
                "results": [
                    {
                        "category": k,
                        "severityScore": SEVERITY[content.score_prompt_attack(k, text).confidence],
                    }
                    for k in kinds
                ]
            }
            usage["promptAttack"] = {"textUnits": units}
        if checks.get("sensitiveInformation"):
            types = [e["type"] for e in checks["sensitiveInformation"]["entities"]]
            found = [
                {
                    "type": kind,
                    "confidenceScore": 1.0,
                    "beginOffset": match.start,
                    "endOffset": match.end,
                    "messageIndex": m_index,
                    "contentIndex": c_index,
                }
                for m_index, c_index, block_text in blocks
                for kind in dict.fromkeys(types)
                for match in pii.detect(kind, block_text)
            ]
            results["sensitiveInformation"] = {
                "results": found[:MAX_ENTITIES],
                "truncated": len(found) > MAX_ENTITIES,
            }
            usage["sensitiveInformation"] = {"textUnits": units}
        answer = {"results": results, "usage": usage}
        return Response(
            json.dumps(answer, ensure_ascii=False).encode(),
            [("Content-Type", "application/json")],
        )
