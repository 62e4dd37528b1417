"""Which dialect reads the bodies of which provider's models."""

from __future__ import annotations

from typing import Any

from outcrop.dialects import anthropic
from outcrop.dialects.base import InvokeDialect, StreamEncoder
from outcrop.types import Finish, GenerationRequest


class AnthropicDialect:
    """Claude Messages and legacy Text Completions (chosen per body)."""

    def parse(self, body: dict[str, Any], request_id: str) -> GenerationRequest:
        return anthropic.parse(body, request_id).request

    def response(
        self, request: GenerationRequest, model_name: str, text: str, finish: Finish
    ) -> dict[str, Any]:
        parsed = anthropic.ParsedBody(request, legacy=request.raw_prompt is not None)
        return anthropic.complete(parsed, model_name, text, finish)

    def stream(
        self, request: GenerationRequest, model_name: str, input_tokens: int
    ) -> StreamEncoder:
        if request.raw_prompt is not None:
            return anthropic.CompletionStream()
        return anthropic.MessagesStream(model_name, input_tokens)


DIALECTS: dict[str, InvokeDialect] = {"anthropic": AnthropicDialect()}
"""Dialects by provider segment of the model ID."""
