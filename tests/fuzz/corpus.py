"""Seed requests for the fuzz suite: one valid request per operation and body format.

The seeds are what a real client sends: every InvokeModel family of the conformance tests
(`tests/conformance/dialect_cases.py`), the request bodies of the recorded real traffic under
`tests/fixtures/` (tools, reasoning, guardrails, CountTokens), the embedding bodies, ApplyGuardrail
and CreateGuardrail, and the SageMaker container bodies (TGI, LMI, OpenAI chat); and one text
session of InvokeModelWithBidirectionalStream as input events and as a signed request body. The
fuzzers mutate these, so that most mutants get past the outer checks and reach the deep parsers.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from smithy_aws_event_stream.events import EventMessage

from outcrop.wire.event_signing import sign_frame
from tests.conformance.dialect_cases import FAMILIES
from tests.support.speech import NovaInput

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GUARDRAIL_ID = "fuzzguard001"
"""The guardrail the fuzz app defines (`harness.fuzz_app`), named by the guardrail seeds."""
LMI_ENDPOINT = "fuzz-lmi"
"""A SageMaker endpoint configured with the LMI container dialect (others choose by body)."""


@dataclass(frozen=True, slots=True)
class Seed:
    """One valid request: where it goes and its JSON body."""

    name: str
    method: str
    path: str
    body: Any
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def _model_path(model_id: str, action: str) -> str:
    return f"/model/{quote(model_id, safe='')}/{action}"


def _invoke_seeds() -> list[Seed]:
    seeds: list[Seed] = []
    for family in FAMILIES:
        for action in ("invoke", "invoke-with-response-stream"):
            seeds.append(
                Seed(f"{family.name}:{action}", "POST", _model_path(family.model_id, action),
                     family.body(16))
            )  # fmt: skip
    return seeds


_URL = re.compile(r"^=== (?:interaction )?\d+:? ?(?P<method>[A-Z]+) (?P<url>\S+)", re.M)


def _recorded_seeds() -> list[Seed]:
    seeds: list[Seed] = []
    for file in sorted(FIXTURES.glob("*recordings/*.txt")):
        request: tuple[str, str] | None = None
        for line in file.read_text(encoding="utf-8").splitlines():
            found = _URL.match(line)
            if found:
                path = re.sub(r"^https?://[^/]+", "", found["url"])
                request = (found["method"], path)
            elif line.startswith("REQ BODY: ") and request is not None:
                try:
                    body = json.loads(line.removeprefix("REQ BODY: "))
                except json.JSONDecodeError:
                    continue
                path = _served_path(request[1])
                seeds.append(Seed(f"{file.stem}:{path}", request[0], path, _our_guardrail(body)))
                request = None
    return seeds


def _served_path(path: str) -> str:
    """A recorded path with a model that Bedrock serves only through an inference profile
    (Claude 4 and later) given its `us.` profile, as the recording's date required."""
    return re.sub(r"^/model/(anthropic\.claude-(?:sonnet|opus)-4)", r"/model/us.\1", path)


def _our_guardrail(body: Any) -> Any:
    """A recorded body's guardrail replaced by the one the fuzz app serves."""
    if isinstance(body, dict) and isinstance(body.get("guardrailConfig"), dict):
        config = {**body["guardrailConfig"], "guardrailIdentifier": GUARDRAIL_ID}
        return {**body, "guardrailConfig": {**config, "guardrailVersion": "DRAFT"}}
    return body


def _embedding_seeds() -> list[Seed]:
    bodies = {
        "amazon.titan-embed-text-v1": {"inputText": "granite and basalt"},
        "amazon.titan-embed-text-v2:0": {
            "inputText": "granite and basalt",
            "dimensions": 256,
            "normalize": True,
            "embeddingTypes": ["float", "binary"],
        },
        "cohere.embed-english-v3": {
            "texts": ["granite", "basalt"],
            "input_type": "search_document",
            "truncate": "END",
            "embedding_types": ["float", "int8"],
        },
        "cohere.embed-v4:0": {
            "texts": ["granite"],
            "input_type": "search_query",
            "output_dimension": 256,
        },
    }
    return [
        Seed(f"embed:{model}", "POST", _model_path(model, "invoke"), body)
        for model, body in bodies.items()
    ]


def _converse_seeds() -> list[Seed]:
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "inputSchema": {
                        "json": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                            "required": ["city"],
                        }
                    },
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }
    body = {
        "messages": [{"role": "user", "content": [{"text": "Weather in Oslo?"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 16, "temperature": 0.5, "stopSequences": ["END"]},
        "toolConfig": tools,
    }
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    return [
        Seed("converse", "POST", _model_path(model, "converse"), body),
        Seed("converse-stream", "POST", _model_path(model, "converse-stream"), body),
        Seed(
            "count-tokens",
            "POST",
            _model_path(model, "count-tokens"),
            {"input": {"converse": {"messages": body["messages"], "toolConfig": tools}}},
        ),
    ]


def _guardrail_seeds() -> list[Seed]:
    apply = {
        "source": "INPUT",
        "content": [
            {"text": {"text": "My card is 4111 1111 1111 1111.", "qualifiers": ["guard_content"]}}
        ],
        "outputScope": "FULL",
    }
    create = {
        "name": "fuzz-created",
        "blockedInputMessaging": "Blocked.",
        "blockedOutputsMessaging": "Blocked.",
        "wordPolicyConfig": {
            "wordsConfig": [{"text": "basalt"}],
            "managedWordListsConfig": [{"type": "PROFANITY"}],
        },
        "sensitiveInformationPolicyConfig": {
            "piiEntitiesConfig": [{"type": "EMAIL", "action": "ANONYMIZE"}],
            "regexesConfig": [{"name": "code", "pattern": "X-[0-9]+", "action": "BLOCK"}],
        },
    }
    guarded_converse = {
        "messages": [{"role": "user", "content": [{"text": "Tell me about basalt."}]}],
        "guardrailConfig": {
            "guardrailIdentifier": GUARDRAIL_ID,
            "guardrailVersion": "DRAFT",
            "trace": "enabled",
        },
    }
    model = "amazon.nova-lite-v1:0"
    return [
        Seed("apply-guardrail", "POST", f"/guardrail/{GUARDRAIL_ID}/version/DRAFT/apply", apply),
        Seed("create-guardrail", "POST", "/guardrails", create),
        Seed("guarded-converse", "POST", _model_path(model, "converse"), guarded_converse),
        Seed(
            "guarded-converse-stream",
            "POST",
            _model_path(model, "converse-stream"),
            guarded_converse,
        ),
    ]


def _sagemaker_seeds() -> list[Seed]:
    bodies: dict[str, Any] = {
        "tgi": {
            "inputs": "Name three rocks.",
            "parameters": {"max_new_tokens": 16, "temperature": 0.5, "stop": ["\n\n"]},
        },
        "lmi": {"inputs": ["Name three rocks."], "parameters": {"max_new_tokens": 16}},
        "openai": {
            "messages": [{"role": "user", "content": "Name three rocks."}],
            "max_tokens": 16,
            "temperature": 0.5,
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "f", "parameters": {"type": "object"}},
                }
            ],
        },
    }
    seeds: list[Seed] = []
    for name, body in bodies.items():
        endpoint = LMI_ENDPOINT if name == "lmi" else "fuzz-endpoint"
        for action in ("invocations", "invocations-response-stream"):
            seeds.append(Seed(f"sagemaker-{name}:{action}", "POST",
                              f"/endpoints/{endpoint}/{action}", body))  # fmt: skip
    return seeds


_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "visitors": {"type": "integer", "minimum": 0}},
    "required": ["city", "visitors"],
    "additionalProperties": False,
}


def _client_seeds() -> list[Seed]:
    """What today's clients send (issue 14): structured outputs, Palmyra, the OpenAI endpoint."""
    question = [{"role": "user", "content": [{"text": "Where is the Eiffel Tower?"}]}]
    sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    text_format = {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"name": "City", "schema": json.dumps(_SCHEMA)}},
        }
    }
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Where is the Eiffel Tower?"}],
        "output_config": {"format": {"type": "json_schema", "schema": _SCHEMA}},
    }
    palmyra = {"messages": [{"role": "user", "content": {"text": "basalt"}}], "max_tokens": 16}
    chat = {
        "model": "qwen.qwen3-32b-v1:0",
        "messages": [{"role": "user", "content": "Name a rock."}],
        "max_tokens": 16,
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": _SCHEMA}},
    }
    bearer = (("content-type", "application/json"),
              ("authorization", "Bearer bedrock-api-key-" + "A" * 40))  # fmt: skip
    return [
        Seed("converse-output-config", "POST", _model_path(sonnet, "converse"),
             {"messages": question, "outputConfig": text_format}),
        Seed("claude-output-config", "POST", _model_path(sonnet, "invoke"), claude),
        Seed("palmyra", "POST", _model_path("us.writer.palmyra-x5-v1:0", "invoke"), palmyra),
        Seed("openai-chat", "POST", "/openai/v1/chat/completions", chat, bearer),
        Seed("openai-chat-stream", "POST", "/openai/v1/chat/completions",
             {**chat, "stream": True, "stream_options": {"include_usage": True}}, bearer),
    ]  # fmt: skip


@cache
def seeds() -> tuple[Seed, ...]:
    """Every seed request, in a stable order."""
    return tuple(
        _invoke_seeds()
        + _recorded_seeds()
        + _embedding_seeds()
        + _converse_seeds()
        + _guardrail_seeds()
        + _sagemaker_seeds()
        + _client_seeds()
    )


def guardrail_definition() -> dict[str, Any]:
    """The guardrail the fuzz app serves (words and PII only: no embedding model needed)."""
    return {
        "id": GUARDRAIL_ID,
        "name": "fuzz-guard",
        "blockedInputMessaging": "Blocked input.",
        "blockedOutputsMessaging": "Blocked output.",
        "wordPolicyConfig": {"wordsConfig": [{"text": "obsidian"}]},
        "sensitiveInformationPolicyConfig": {
            "piiEntitiesConfig": [{"type": "CREDIT_DEBIT_CARD_NUMBER", "action": "ANONYMIZE"}]
        },
    }


def signed_event(raw: bytes, date_ms: int = 1_700_000_000_000) -> bytes:
    """One outer input frame of a bidirectional stream carrying `raw` as its event JSON."""
    payload = json.dumps({"bytes": base64.b64encode(raw).decode()}).encode()
    headers = {":message-type": "event", ":event-type": "chunk",
               ":content-type": "application/json"}  # fmt: skip
    inner = bytes(EventMessage(headers=headers, payload=payload).encode())
    return sign_frame("0" * 64, inner, date_ms, b"k" * 32, "us-east-1")[0]


def session_events() -> list[dict[str, Any]]:
    """The input events of one text turn of a speech session, sessionStart to sessionEnd."""
    nova = NovaInput(prompt="fuzz-prompt")
    return [*nova.opening(), *nova.text("USER", "Hello there."), nova.prompt_end(),
            nova.session_end()]  # fmt: skip


def session_stream() -> bytes:
    """`session_events` as the request body a client sends (signed outer frames)."""
    return b"".join(signed_event(json.dumps(e).encode()) for e in session_events())
