"""Structured outputs: a JSON schema the answer must follow, in each of the forms Bedrock takes.

Bedrock's user guide ("Get validated JSON results from models", docs/structured-outputs.md)
names three request fields, all read here into `GenerationRequest.response_schema`:

- Converse and ConverseStream: `outputConfig.textFormat` =
  `{"type": "json_schema", "structure": {"jsonSchema": {"schema": "<JSON text>", "name", ...}}}`;
  Claude's own field also passes through `additionalModelRequestFields.output_config.format`.
- InvokeModel with Claude: `output_config.format` = `{"type": "json_schema", "schema": {...}}`.
- InvokeModel with the open-weight models (gpt-oss, Qwen, ... Chat Completions bodies):
  `response_format` = `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`;
  `{"type": "json_object"}` asks for any JSON object and `{"type": "text"}` for nothing.

The engines constrain generation with the schema's grammar (engines/tool_grammar.py), so the
answer text is JSON valid for the schema. Models Bedrock does not offer structured outputs for
are refused (`check_supported`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from outcrop.wire.errors import ValidationException

ANY_OBJECT: Mapping[str, Any] = {"type": "object"}

# Bedrock lists structured outputs for Claude Haiku 4.5, Sonnet 4.5, Opus 4.5 and later Claude
# models, and for its open-weight models (gpt-oss, Qwen, DeepSeek, Mistral, Gemma, Nemotron,
# MiniMax, Moonshot Kimi; a recorded call shows Z.AI GLM too): docs/structured-outputs.md.
_OLDER_CLAUDE = (
    "anthropic.claude-instant",
    "anthropic.claude-v2",
    "anthropic.claude-3",
    "anthropic.claude-sonnet-4-2",
    "anthropic.claude-opus-4-2",
    "anthropic.claude-opus-4-1",
)
_OPEN_WEIGHT = (
    "openai.",
    "qwen.",
    "deepseek.",
    "mistral.",
    "google.",
    "nvidia.",
    "minimax.",
    "moonshot.",
    "moonshotai.",
    "zai.",
)

# What Bedrock's Anthropic layer answers when Claude does not take `output_config.format`
# (quoted in vectorize-io/hindsight issue #3300, for a Claude that lacked it in that region).
CLAUDE_REFUSAL = (
    "The model returned the following errors: output_config.format: Extra inputs are not permitted"
)
# Wording unverified: what Converse answers for other models without structured outputs,
# phrased as its refusal of tool use for models without tools ("This model doesn't support
# tool use.").
CONVERSE_REFUSAL = "This model doesn't support structured output."


def supports_structured_output(model_id: str) -> bool:
    """Whether Bedrock offers structured outputs for this base model ID."""
    if model_id.startswith("anthropic."):
        return not model_id.startswith(_OLDER_CLAUDE)
    return model_id.startswith(_OPEN_WEIGHT)


def check_supported(model_id: str, schema: Mapping[str, Any] | None) -> None:
    """Refuse a schema for a model Bedrock does not offer structured outputs for."""
    if schema is None or supports_structured_output(model_id):
        return
    if model_id.startswith("anthropic."):
        raise ValidationException(CLAUDE_REFUSAL)
    raise ValidationException(CONVERSE_REFUSAL)


def converse_schema(output_config: Any) -> Mapping[str, Any] | None:
    """The schema of Converse's `outputConfig` (the service model checked its shape)."""
    if not isinstance(output_config, Mapping):
        return None
    text_format = output_config.get("textFormat")
    if not isinstance(text_format, Mapping):
        return None
    structure = text_format.get("structure") or {}
    definition = structure.get("jsonSchema") if isinstance(structure, Mapping) else None
    if not isinstance(definition, Mapping):
        return None
    text = definition.get("schema")
    try:
        schema = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        schema = None
    if not isinstance(schema, dict):
        # Wording unverified; the condition is the API reference's (a JSON schema string).
        raise ValidationException(
            "The value at outputConfig.textFormat.structure.jsonSchema.schema is not a valid "
            "JSON schema. Provide a JSON object as a string and try again."
        )
    return schema


def anthropic_schema(
    output_config: Any, pointer: str = "output_config"
) -> Mapping[str, Any] | None:
    """The schema of Claude's `output_config.format` (`{"type": "json_schema", "schema"}`)."""
    if output_config is None:
        return None
    if not isinstance(output_config, Mapping):
        raise ValidationException(f"{pointer}: Input should be a valid dictionary")
    fmt = output_config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        # Anthropic's validation wording, passed through by Bedrock (unverified on Bedrock).
        raise ValidationException(f"{pointer}.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise ValidationException(f"{pointer}.format.schema: Input should be a valid dictionary")
    return schema


def openai_schema(response_format: Any) -> Mapping[str, Any] | None:
    """The schema of a Chat Completions `response_format` (None for `text` or absent)."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise ValidationException("response_format: Input should be a valid dictionary")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ANY_OBJECT
    if kind != "json_schema":
        # OpenAI's wording (unverified on Bedrock).
        raise ValidationException(
            f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' and "
            "'json_schema'."
        )
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name", ""), str):
        raise ValidationException("response_format.json_schema: Field required")
    if schema is None:
        return ANY_OBJECT
    if not isinstance(schema, dict):
        raise ValidationException("response_format.json_schema.schema: Input should be an object")
    return schema
