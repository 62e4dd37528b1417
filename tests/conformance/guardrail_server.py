"""The Outcrop server the guardrail conformance tests share: scripted engines whose fixed answers
trip each kind of filter, routed to different Claude model IDs, and guardrails in its config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.server import ServerProcess, running_server

ECHO = "anthropic.claude-3-haiku-20240307-v1:0"  # echoes the prompt
PII = "anthropic.claude-3-sonnet-20240229-v1:0"
INSULT = "anthropic.claude-3-opus-20240229-v1:0"
LATE_VIOLENCE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFANITY = "anthropic.claude-3-5-sonnet-20241022-v2:0"
TOPIC = "anthropic.claude-3-5-haiku-20241022-v1:0"
WORD = "anthropic.claude-v2:1"
CARD = "anthropic.claude-instant-v1"
LEGACY = "anthropic.claude-v2"  # echo, for the legacy Text Completions body
TITAN = "amazon.titan-text-express-v1"  # echo
NOVA_PII = "amazon.nova-lite-v1:0"

ANSWERS = {
    PII: "Sure. Write to mary.major@example.com or call (206) 555-0100. Account 1234561666.",
    INSULT: "Honestly, you are a worthless idiot and nobody likes you.",
    LATE_VIOLENCE: (
        "Here is a calm story about a quiet garden where the flowers grow in the sun. "
        "The gardener waters them every morning and hums a tune. "
        "Then the stranger said I will kill you all, and the story ends."
    ),
    PROFANITY: "Well, that was a damn good idea.",
    TOPIC: "You should buy Tesla stock right now, it is a great investment.",
    WORD: "I recommend Competitor Bank for your savings.",
    CARD: "Your card number is 4111 1111 1111 1111, keep it safe.",
}
ANSWERS[NOVA_PII] = ANSWERS[PII]

GUARDRAIL_ID = "filters01"
DETECT_ID = "detect01"
BLOCKED_INPUT = "Sorry, I can't help with that request."
BLOCKED_OUTPUT = "Sorry, I can't provide that answer."

STRONG = {"inputStrength": "HIGH", "outputStrength": "HIGH"}
FILTERS = {
    "name": "filters",
    "description": "every filter type",
    "blockedInputMessaging": BLOCKED_INPUT,
    "blockedOutputsMessaging": BLOCKED_OUTPUT,
    "topicPolicyConfig": {
        "topicsConfig": [
            {
                "name": "Investment advice",
                "definition": "Personalized recommendations about buying or selling stocks, "
                "funds or cryptocurrency.",
                "examples": ["Should I buy Tesla stock?", "Is bitcoin a good investment?"],
                "type": "DENY",
            }
        ]
    },
    "contentPolicyConfig": {
        "filtersConfig": [
            {"type": t, **STRONG} for t in ("HATE", "INSULTS", "SEXUAL", "VIOLENCE", "MISCONDUCT")
        ]
        + [{"type": "PROMPT_ATTACK", "inputStrength": "HIGH", "outputStrength": "NONE"}]
    },
    "wordPolicyConfig": {
        "wordsConfig": [{"text": "competitor bank"}],
        "managedWordListsConfig": [{"type": "PROFANITY"}],
    },
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [
            {"type": "EMAIL", "action": "ANONYMIZE"},
            {"type": "PHONE", "action": "ANONYMIZE"},
            {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"},
            {"type": "CREDIT_DEBIT_CARD_NUMBER", "action": "BLOCK"},
        ],
        "regexesConfig": [
            {"name": "Account Number", "pattern": r"\b\d{6}\d{4}\b", "action": "ANONYMIZE"}
        ],
    },
}
DETECT = {
    "name": "detect-only",
    "blockedInputMessaging": BLOCKED_INPUT,
    "blockedOutputsMessaging": BLOCKED_OUTPUT,
    "contentPolicyConfig": {
        "filtersConfig": [
            {"type": "INSULTS", **STRONG, "inputAction": "NONE", "outputAction": "NONE"}
        ]
    },
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [{"type": "EMAIL", "action": "NONE"}]
    },
}


def _toml_value(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, arrays and inline tables are valid TOML


def _toml_table(data: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {_inline(value)}" for key, value in data.items())


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _toml_value(value)


def config(state_dir: Path, chunk_chars: int = 40) -> str:
    engines = ["[engines.default]", 'type = "scripted"', ""]
    routes = []
    for index, (model, text) in enumerate(ANSWERS.items()):
        engines += [f"[engines.e{index}]", 'type = "scripted"', f"text = {_toml_value(text)}"]
        if model == LATE_VIOLENCE:
            engines.append("delay_ms = 20")
        engines.append("")
        routes += ["[[models]]", f'match = "{model}"', f'engine = "e{index}"', ""]
    routes += ["[[models]]", 'match = "*"', 'engine = "default"', ""]
    guardrails = [
        "[invocation_log]",
        f"destination = {_toml_value(str(state_dir.parent / 'invocations.jsonl'))}",
        "",
        "[guardrails]",
        f"state_dir = {_toml_value(str(state_dir))}",
        f"stream_chunk_chars = {chunk_chars}",
        "",
    ]
    for gid, spec in ((GUARDRAIL_ID, FILTERS), (DETECT_ID, DETECT)):
        guardrails += ["[[guardrails.define]]", _toml_table({"id": gid, **spec}), ""]
    return "\n".join(engines + routes + guardrails)


@contextmanager
def guardrail_server(
    tmp: Path, state_dir: Path | None = None, chunk_chars: int = 40
) -> Iterator[ServerProcess]:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "outcrop.toml"
    path.write_text(config(state_dir or tmp / "state", chunk_chars))
    with running_server(["--config", str(path)]) as server:
        yield server
