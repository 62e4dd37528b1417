"""The interface every InvokeModel body dialect implements."""

from __future__ import annotations

from typing import Any, Protocol

from outcrop.types import Finish, GenerationRequest, Usage


class StreamEncoder(Protocol):
    """Turns engine output into the family's stream objects, in order."""

    def start(self) -> list[dict[str, Any]]: ...

    def text(self, piece: str) -> list[dict[str, Any]]: ...

    def finish(self, finish: Finish, usage: Usage) -> list[dict[str, Any]]: ...


class InvokeDialect(Protocol):
    """Body format of one model family for InvokeModel / InvokeModelWithResponseStream."""

    def parse(self, body: dict[str, Any], request_id: str) -> GenerationRequest:
        """Validate and translate; raise ValidationException as Bedrock would."""
        ...

    def response(
        self, request: GenerationRequest, model_name: str, text: str, finish: Finish
    ) -> dict[str, Any]:
        """The non-streaming response body."""
        ...

    def stream(
        self, request: GenerationRequest, model_name: str, input_tokens: int
    ) -> StreamEncoder:
        """An encoder for one streaming response."""
        ...
