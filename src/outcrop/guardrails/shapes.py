"""Assessments written as AWS writes them: GuardrailAssessment, the two trace forms, and the
ApplyGuardrail response.

Member names and nesting follow botocore's `bedrock-runtime` shapes (`GuardrailAssessment`,
`GuardrailTraceAssessment`, `ApplyGuardrailResponse`) and the recorded real traffic in
tests/fixtures/guardrail_recordings (traceloop__*guardrail*,
pydai__test_bedrock_model_guardrail_config; docs/recordings.md):

- InvokeModel bodies carry `amazon-bedrock-trace: {"guardrail": {"modelOutput", "input":
  {id: assessment}, "outputs": [{id: assessment}, ...], "actionReason"}}`;
- Converse carries `trace: {"guardrail": {"actionReason", "inputAssessment": {id: assessment},
  "modelOutput", "outputAssessments": {id: [assessment, ...]}}}`.

A trace lists what the policies detected; the full form (trace ENABLED_FULL, outputScope FULL)
also lists the policies that detected nothing, with `detected: false` (for word filters and
regexes only detections are listed, as AWS documents for outputScope FULL). Empty policies are
left out, as in the recordings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from outcrop.guardrails.assess import Assessment, Finding

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AppliedGuardrail:
    """Which guardrail version produced an assessment (`appliedGuardrailDetails`)."""

    guardrail_id: str
    version: str
    arn: str

    def details(self) -> Obj:
        return {
            "guardrailArn": self.arn,
            "guardrailId": self.guardrail_id,
            "guardrailOrigin": ["REQUEST"],
            "guardrailOwnership": "SELF",
            "guardrailVersion": self.version,
        }


def _listed(finding: Finding, full: bool) -> bool:
    if finding.detected or finding.action != "NONE":
        return True
    return full and finding.policy not in ("word", "managed_word", "regex")


def usage_shape(assessment: Assessment) -> Obj:
    """GuardrailUsage (all members, in the order real traces list them)."""
    u = assessment.usage
    return {
        "topicPolicyUnits": u.topic,
        "contentPolicyUnits": u.content,
        "wordPolicyUnits": u.word,
        "sensitiveInformationPolicyUnits": u.sensitive,
        "sensitiveInformationPolicyFreeUnits": u.sensitive_free,
        "contextualGroundingPolicyUnits": 0,
        "contentPolicyImageUnits": 0,
        "automatedReasoningPolicyUnits": 0,
        "automatedReasoningPolicies": 0,
    }


def coverage_shape(assessment: Assessment) -> Obj:
    return {
        "textCharacters": {"guarded": assessment.guarded_chars, "total": assessment.total_chars}
    }


def metrics_shape(assessment: Assessment) -> Obj:
    return {
        "guardrailProcessingLatency": assessment.latency_ms,
        "usage": usage_shape(assessment),
        "guardrailCoverage": coverage_shape(assessment),
    }


def assessment_shape(
    assessment: Assessment, applied: AppliedGuardrail | None = None, *, full: bool = False
) -> Obj:
    """One `GuardrailAssessment`."""
    listed = [f for f in assessment.findings if _listed(f, full)]
    out: Obj = {}
    topics = [
        {"name": f.name, "type": "DENY", "action": f.action, "detected": f.detected}
        for f in listed
        if f.policy == "topic"
    ]
    if topics:
        out["topicPolicy"] = {"topics": topics}
    filters = [
        {
            "type": f.name,
            "confidence": f.confidence,
            "filterStrength": f.filter_strength,
            "action": f.action,
            "detected": f.detected,
        }
        for f in listed
        if f.policy == "content"
    ]
    if filters:
        out["contentPolicy"] = {"filters": filters}
    custom = [
        {"match": f.match, "action": f.action, "detected": f.detected}
        for f in listed
        if f.policy == "word"
    ]
    managed = [
        {"match": f.match, "type": f.name, "action": f.action, "detected": f.detected}
        for f in listed
        if f.policy == "managed_word"
    ]
    if custom or managed:
        out["wordPolicy"] = _non_empty(customWords=custom, managedWordLists=managed)
    entities = [
        {"match": f.match, "type": f.name, "action": f.action, "detected": f.detected}
        for f in listed
        if f.policy == "pii"
    ]
    regexes = [
        {
            "name": f.name,
            "match": f.match,
            "regex": f.regex,
            "action": f.action,
            "detected": f.detected,
        }
        for f in listed
        if f.policy == "regex"
    ]
    if entities or regexes:
        out["sensitiveInformationPolicy"] = _non_empty(piiEntities=entities, regexes=regexes)
    out["invocationMetrics"] = metrics_shape(assessment)
    if applied is not None:
        out["appliedGuardrailDetails"] = applied.details()
    return out


def _non_empty(**lists: list[Obj]) -> Obj:
    return {name: items for name, items in lists.items() if items}


def action_reason(assessments: Iterable[Assessment]) -> str:
    """`actionReason`: each assessment's reason, repeated reasons once, one per line
    ("No action.\\nGuardrail masked." when only the output was masked)."""
    reasons: list[str] = []
    for a in assessments:
        if a.reason not in reasons:
            reasons.append(a.reason)
    return "\n".join(reasons)


def invoke_trace(
    applied: AppliedGuardrail,
    input_assessment: Assessment | None,
    output_assessments: Sequence[Assessment],
    model_output: Sequence[str] | None,
    *,
    full: bool,
) -> Obj:
    """`amazon-bedrock-trace` of an InvokeModel body or final stream chunk."""
    gid = applied.guardrail_id
    guardrail: Obj = {}
    if model_output is not None:
        guardrail["modelOutput"] = list(model_output)
    if input_assessment is not None:
        guardrail["input"] = {gid: assessment_shape(input_assessment, applied, full=full)}
    if output_assessments:
        guardrail["outputs"] = [
            {gid: assessment_shape(a, applied, full=full)} for a in output_assessments
        ]
    everything = [*([input_assessment] if input_assessment else []), *output_assessments]
    guardrail["actionReason"] = action_reason(everything)
    return {"guardrail": guardrail}


def converse_trace(
    applied: AppliedGuardrail,
    input_assessment: Assessment | None,
    output_assessments: Sequence[Assessment],
    model_output: Sequence[str] | None,
    *,
    full: bool,
) -> Obj:
    """`trace` of a Converse response or ConverseStream `metadata` event."""
    gid = applied.guardrail_id
    everything = [*([input_assessment] if input_assessment else []), *output_assessments]
    guardrail: Obj = {"actionReason": action_reason(everything)}
    if input_assessment is not None:
        guardrail["inputAssessment"] = {gid: assessment_shape(input_assessment, applied, full=full)}
    if model_output is not None:
        guardrail["modelOutput"] = list(model_output)
    if output_assessments:
        guardrail["outputAssessments"] = {
            gid: [assessment_shape(a, applied, full=full) for a in output_assessments]
        }
    return {"guardrail": guardrail}


def apply_guardrail_response(
    assessment: Assessment, applied: AppliedGuardrail, *, full: bool
) -> Obj:
    """The ApplyGuardrail response body."""
    if assessment.blocked:
        outputs = [{"text": assessment.blocked_messaging}]
    elif assessment.masked:
        outputs = [{"text": text} for text in assessment.texts]
    else:
        outputs = []
    return {
        "usage": usage_shape(assessment),
        "action": assessment.action,
        "actionReason": assessment.reason,
        "outputs": outputs,
        "assessments": [assessment_shape(assessment, applied, full=full)],
        "guardrailCoverage": coverage_shape(assessment),
    }
