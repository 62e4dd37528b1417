"""Assessments and traces against recorded real Bedrock traffic.

The recordings are in tests/fixtures/guardrail_recordings. Outcrop's traces must have every
member a recorded trace of the same situation has, with values of the same JSON types, and no
member that no recorded trace or the service model has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest

from outcrop.guardrails.assess import Segment, assess
from outcrop.guardrails.model import Definition
from outcrop.guardrails.shapes import (
    AppliedGuardrail,
    apply_guardrail_response,
    converse_trace,
    invoke_trace,
)

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "guardrail_recordings"
GID = "5zwrmdlsra2e"
APPLIED = AppliedGuardrail(GID, "DRAFT", f"arn:aws:bedrock:us-east-1:123456789012:guardrail/{GID}")


def bodies(name: str) -> list[dict[str, Any]]:
    """Every JSON body, chunk or event payload of a recording, in order."""
    out = []
    for line in (RECORDINGS / name).read_text().splitlines():
        for marker in ("RESP BODY: ", "BYTES: ", "PAYLOAD: "):
            if line.lstrip().startswith(marker):
                out.append(json.loads(line.lstrip()[len(marker) :]))
    return out


_ASSESSMENT_ROOTS = (
    ".guardrail.input.<id>",
    ".guardrail.inputAssessment.<id>",
    ".guardrail.outputs[].<id>",
    ".guardrail.outputAssessments.<id>[]",
)


def paths(value: Any, prefix: str = "") -> dict[str, str]:
    """Every member path of a JSON value with its JSON type (map keys that are guardrail IDs
    become `<id>`, list items `[]`)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        out[prefix or "."] = "object"
        for key, item in value.items():
            name = "<id>" if key in (GID, "xbgw7g293v7o", "v9kpg6yrwhs2") else key
            out.update(paths(item, f"{prefix}.{name}"))
    elif isinstance(value, list):
        out[prefix] = "array"
        for item in value:
            out.update(paths(item, f"{prefix}[]"))
    else:
        kind = {bool: "boolean", str: "string", int: "number", float: "number"}
        out[prefix] = kind.get(type(value), "null")
    return out


def normalized(path: str) -> str:
    """A path with the assessment's place in the trace (Invoke or Converse form) factored out."""
    for root in _ASSESSMENT_ROOTS:
        if path.startswith(root):
            return "<assessment>" + path[len(root) :]
    return path


def all_recorded_paths() -> set[str]:
    seen: set[str] = set()
    for f in RECORDINGS.glob("*.txt"):
        for body in bodies(f.name):
            for key in ("amazon-bedrock-trace", "trace"):
                if key in body:
                    seen |= {normalized(p) for p in paths(body[key])}
    return seen


def assert_shape(mine: Any, recorded: Any) -> None:
    ours, theirs = paths(mine), paths(recorded)
    missing = {p: t for p, t in theirs.items() if ours.get(p) != t}
    assert not missing, f"members recorded but not produced (or of another type): {missing}"
    known = all_recorded_paths()
    # `detected` is a member of every finding shape of the service model (GuardrailTopic,
    # GuardrailRegexFilter, ...), though only newer recordings show it.
    unknown = {
        p
        for p in map(normalized, ours)
        if p not in known and not (p.endswith("[].detected") and p.rsplit(".", 1)[0] in known)
    }
    assert not unknown, f"members no recording has: {sorted(unknown)}"


PII_SPEC = {
    "name": "recorded",
    "blockedInputMessaging": "Input blocked",
    "blockedOutputsMessaging": "Output blocked",
    "topicPolicyConfig": {
        "topicsConfig": [{"name": "topic-1", "definition": "tennis in Japan", "type": "DENY"}]
    },
    "contentPolicyConfig": {
        "filtersConfig": [{"type": "HATE", "inputStrength": "HIGH", "outputStrength": "HIGH"}]
    },
    "wordPolicyConfig": {"managedWordListsConfig": [{"type": "PROFANITY"}]},
    "sensitiveInformationPolicyConfig": {
        # The recorded guardrail masked places and account numbers in answers only (its input
        # assessments found nothing and used no free units) and checked some PII on input.
        "piiEntitiesConfig": [
            {"type": "ADDRESS", "action": "ANONYMIZE", "inputEnabled": False},
            {"type": "EMAIL", "action": "ANONYMIZE"},
        ],
        "regexesConfig": [
            {
                "name": "Account Number",
                "pattern": r"\b\d{6}\d{4}\b",
                "action": "ANONYMIZE",
                "inputEnabled": False,
            }
        ],
    },
}


def test_converse_masked_output_matches_the_recording() -> None:
    recorded = bodies("traceloop__test_guardrail_converse.txt")[0]
    definition = Definition.parse(PII_SPEC)
    prompt = [Segment("what is the capital of Italy?"), Segment("what is the capital of Japan?")]
    original = "\nThe capital of Italy is Rome, and the capital of Japan is Tokyo."
    inbound = assess(definition, prompt, "INPUT", [0.0])
    outbound = assess(definition, [Segment(original)], "OUTPUT", [0.0])
    assert outbound.output_text == recorded["output"]["message"]["content"][0]["text"]
    mine = converse_trace(APPLIED, inbound, [outbound], [original], full=False)
    theirs = recorded["trace"]
    for side, key in ((mine, "inputAssessment"), (theirs, "inputAssessment")):
        side["guardrail"][key][GID]["invocationMetrics"]["guardrailProcessingLatency"] = 0
    assert (
        mine["guardrail"]["inputAssessment"][GID]["invocationMetrics"]
        == theirs["guardrail"]["inputAssessment"][GID]["invocationMetrics"]
    )
    assert mine["guardrail"]["actionReason"] == theirs["guardrail"]["actionReason"]
    assert (
        mine["guardrail"]["outputAssessments"][GID][0]["sensitiveInformationPolicy"]
        == theirs["guardrail"]["outputAssessments"][GID][0]["sensitiveInformationPolicy"]
    )
    assert (
        inbound.guarded_chars
        == 58
        == theirs["guardrail"]["inputAssessment"][GID]["invocationMetrics"]["guardrailCoverage"][
            "textCharacters"
        ]["guarded"]
    )
    assert_shape(mine, theirs)


def test_invoke_masked_output_matches_the_recording() -> None:
    recorded = bodies("traceloop__test_guardrail_invoke.txt")[0]
    theirs = recorded["amazon-bedrock-trace"]
    definition = Definition.parse(PII_SPEC)
    raw = json.loads(theirs["guardrail"]["modelOutput"][0])
    original = raw["results"][0]["outputText"]
    outbound = assess(definition, [Segment(original)], "OUTPUT")
    assert outbound.output_text == recorded["results"][0]["outputText"]
    inbound = assess(definition, [Segment("Tell me a joke about opentelemetry")], "INPUT")
    mine = invoke_trace(APPLIED, inbound, [outbound], [json.dumps(raw)], full=False)
    regexes = mine["guardrail"]["outputs"][0][GID]["sensitiveInformationPolicy"]["regexes"]
    assert [{k: r[k] for k in ("name", "regex", "match", "action")} for r in regexes] == (
        theirs["guardrail"]["outputs"][0][GID]["sensitiveInformationPolicy"]["regexes"]
    )
    assert_shape(mine, theirs)


def test_stream_blocked_input_matches_the_recording() -> None:
    recorded = bodies("traceloop__test_guardrail_invoke_stream.txt")[0]
    theirs = recorded["amazon-bedrock-trace"]
    definition = Definition.parse(PII_SPEC)
    # The recorded topic classifier found "How do I play tennis in Japan?" on topic-1.
    inbound = assess(definition, [Segment("How do I play tennis in Japan?")], "INPUT", [1.0])
    assert inbound.blocked and inbound.output_text == recorded["outputText"]
    mine = invoke_trace(APPLIED, inbound, [], None, full=False)
    assert mine["guardrail"]["actionReason"] == theirs["guardrail"]["actionReason"]
    assert (
        mine["guardrail"]["input"][GID]["topicPolicy"]
        == theirs["guardrail"]["input"][GID]["topicPolicy"]
    )
    assert_shape(mine, theirs)


def test_stream_masked_regex_matches_the_recording() -> None:
    chunks = bodies("traceloop__test_titan_invoke_stream_guardrail.txt")
    theirs = chunks[-1]["amazon-bedrock-trace"]
    original = theirs["guardrail"]["modelOutput"][0]
    outbound = assess(Definition.parse(PII_SPEC), [Segment(original)], "OUTPUT")
    assert outbound.output_text == "".join(c["outputText"] for c in chunks)
    assert all(c["amazon-bedrock-guardrailAction"] == "INTERVENED" for c in chunks)


def test_no_action_trace_matches_the_recording() -> None:
    recorded = bodies("pydai__test_bedrock_model_guardrail_config.txt")[0]["trace"]
    spec = {
        "name": "topics-only",
        "blockedInputMessaging": "no",
        "blockedOutputsMessaging": "no",
        "topicPolicyConfig": PII_SPEC["topicPolicyConfig"],
    }
    definition = Definition.parse(spec)
    inbound = assess(definition, [Segment("What is the capital of France?")], "INPUT", [0.1])
    outbound = assess(definition, [Segment("The capital of France is Paris.")], "OUTPUT", [0.1])
    applied = AppliedGuardrail(
        "xbgw7g293v7o", "DRAFT", "arn:aws:bedrock:us-east-1:353014496775:guardrail/xbgw7g293v7o"
    )
    mine = converse_trace(applied, inbound, [outbound], [], full=False)
    assert mine["guardrail"]["actionReason"] == recorded["guardrail"]["actionReason"]
    usage = mine["guardrail"]["inputAssessment"]["xbgw7g293v7o"]["invocationMetrics"]["usage"]
    recorded_usage = recorded["guardrail"]["inputAssessment"]["xbgw7g293v7o"]["invocationMetrics"][
        "usage"
    ]
    assert usage == recorded_usage
    assert (
        mine["guardrail"]["inputAssessment"]["xbgw7g293v7o"]["appliedGuardrailDetails"]
        == (recorded["guardrail"]["inputAssessment"]["xbgw7g293v7o"]["appliedGuardrailDetails"])
    )
    assert_shape(mine, recorded)


def _model_members(shape_name: str) -> set[str]:
    model = botocore.loaders.Loader().load_service_model("bedrock-runtime", "service-2")
    return set(model["shapes"][shape_name]["members"])


@pytest.mark.parametrize("full", [False, True])
def test_apply_guardrail_response_has_the_modelled_members(full: bool) -> None:
    definition = Definition.parse(PII_SPEC)
    assessment = assess(definition, [Segment("I live in Rome")], "OUTPUT", [0.0])
    answer = apply_guardrail_response(assessment, APPLIED, full=full)
    assert set(answer) <= _model_members("ApplyGuardrailResponse")
    assert {"usage", "action", "outputs", "assessments"} <= set(answer)
    assert set(answer["assessments"][0]) <= _model_members("GuardrailAssessment")
    assert answer["outputs"] == [{"text": "I live in {ADDRESS}"}]
    filters = answer["assessments"][0].get("contentPolicy", {}).get("filters", [])
    assert (
        filters
        == [
            {
                "type": "HATE",
                "confidence": "NONE",
                "filterStrength": "HIGH",
                "action": "NONE",
                "detected": False,
            }
        ]
    ) is full
