"""The interface every container dialect implements, and what it hands back.

A container dialect is pure: it parses the request body a container would receive into a
`ContainerRequest`, and turns engine output into the bytes that container would write, either
one complete reply or a stream of body chunks (one chunk per write the container makes, which
is what SageMaker turns into `PayloadPart` events). A body the container would refuse raises
`ContainerRejected` carrying the container's own error reply (status, body, content type).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from outcrop.types import Finish, GenerationRequest

JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class ContainerReply:
    """A complete HTTP answer of the emulated container."""

    status: int
    body: bytes
    content_type: str


class ContainerRejected(Exception):
    """The container would answer this request with an error instead of generating."""

    def __init__(self, reply: ContainerReply) -> None:
        super().__init__(reply.body.decode("utf-8", "replace"))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """A parsed container request: what to generate, and how the answer is to be shaped."""

    generation: GenerationRequest
    stream: bool
    """The body asked the container to stream (TGI/LMI `"stream": true`, OpenAI `stream`)."""
    prompt: str
    """The prompt text as the container echoes it (`return_full_text`, LMI `details.inputs`)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Dialect-specific answer flags (`details`, `return_full_text`, `model`, ...)."""


class ContainerStream(Protocol):
    """Encodes one streamed answer: each call returns the chunks the container writes."""

    content_type: str

    def start(self) -> list[bytes]: ...

    def token(self, text: str) -> list[bytes]: ...

    def finish(self, finish: Finish) -> list[bytes]: ...

    def failure(self, message: str) -> list[bytes]:
        """What the container writes when generation fails after the stream began."""
        ...


class ContainerDialect(Protocol):
    """One container's `/invocations` body format."""

    name: str

    def parse(self, content_type: str | None, body: bytes, request_id: str) -> ContainerRequest:
        """Read the body as the container does; raise `ContainerRejected` where it refuses."""
        ...

    def complete(
        self, request: ContainerRequest, pieces: Sequence[str], finish: Finish, input_tokens: int
    ) -> ContainerReply:
        """The container's non-streamed 200 answer, from the generated text pieces."""
        ...

    def stream(self, request: ContainerRequest, input_tokens: int) -> ContainerStream:
        """An encoder for the container's streamed 200 answer."""
        ...

    def failure(self, message: str) -> ContainerReply:
        """The container's answer when generation fails before anything was written."""
        ...

    def invalid(self, message: str) -> ContainerReply:
        """The container's answer to a request its model refuses (too long, bad template)."""
        ...


def is_json_content_type(content_type: str | None) -> bool:
    """Whether a request's Content-Type says JSON (absent counts as JSON, see below)."""
    # SageMaker forwards the request's ContentType to the container. boto3 sends none when
    # ContentType is unset; what SageMaker forwards then is unverified, and treating it as JSON
    # lets SageMaker code that never set ContentType work against Outcrop.
    if content_type is None or not content_type.strip():
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or (
        base.startswith("application/") and base.endswith("+json")
    )


def compact_json(obj: Any) -> bytes:
    """JSON as serde_json (Rust) and pydantic write it: no spaces, UTF-8 unescaped."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def python_json(obj: Any) -> bytes:
    """JSON as Python's `json.dumps(..., ensure_ascii=False)` writes it (", " and ": ")."""
    return json.dumps(obj, ensure_ascii=False).encode()


def token_id(text: str, vocabulary: int = 32000) -> int:
    """A stable stand-in token id for engines that report text only (same text, same id)."""
    return zlib.crc32(text.encode()) % vocabulary


def json_position(raw: bytes) -> tuple[int, int]:
    """Line and column (1-based) of the end of `raw`, as serde_json reports error positions."""
    text = raw.decode("utf-8", "replace")
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1)
    return line, column
