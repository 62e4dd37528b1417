"""How a local model is told about a structured-output schema (`GenerationRequest.response_schema`).

The grammar (`tool_grammar.response_grammar`) guarantees the answer's shape; telling the model
the schema in its system text lets it fill the shape with sensible values. Engines that send
the schema to a server that handles it (the `openai` engine's `response_format`) do not need this.
"""

from __future__ import annotations

import json
from dataclasses import replace

from outcrop.types import ChatMessage, GenerationRequest


def schema_instruction(request: GenerationRequest) -> str | None:
    """The system-prompt section describing the schema, or None without one."""
    if request.response_schema is None:
        return None
    schema = json.dumps(dict(request.response_schema), ensure_ascii=False)
    return f"Answer with only a JSON value that follows this JSON schema:\n{schema}"


def schema_prompt_request(request: GenerationRequest) -> GenerationRequest:
    """`request` with the schema instruction added to its system text (unchanged without one)."""
    section = schema_instruction(request)
    if section is None:
        return request
    messages = list(request.messages)
    if messages and messages[0].role == "system":
        messages[0] = replace(messages[0], text=messages[0].text + "\n\n" + section)
    else:
        messages.insert(0, ChatMessage("system", section))
    return replace(request, messages=tuple(messages))
