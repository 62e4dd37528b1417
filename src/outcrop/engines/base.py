"""The narrow interface every engine implements, and the errors engines raise.

Engines take a `GenerationRequest` and yield `TokenEvent`s followed by exactly one `Finish`.
They import nothing from the wire, gateway or dialect layers. Closing the async iterator
(`aclose()`, which the gateway does when a client disconnects) aborts the generation.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator

from outcrop.types import EngineHealth, GenerationEvent, GenerationRequest


class EngineError(Exception):
    """An engine failed to produce output for a reason of its own."""


class EngineNotReady(EngineError):
    """The engine is still loading its model."""


class EngineUnavailable(EngineError):
    """The engine (or its upstream) cannot be reached or failed to load."""


class EngineTimeout(EngineError):
    """Generation took longer than the configured limit and was aborted."""


class Engine(abc.ABC):
    """A source of tokens. Implementations: scripted, llama.cpp (in-process), ..."""

    name: str

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        """Stream the answer to `request`; the last event is a `Finish`.

        Raises `EngineNotReady` before the model is loaded and `EngineError` on failure.
        Closing the returned iterator early aborts the generation and frees its slot.
        """

    @abc.abstractmethod
    def count_tokens(self, request: GenerationRequest) -> int:
        """How many input tokens `request`'s prompt takes on this engine."""

    @abc.abstractmethod
    def health(self) -> EngineHealth:
        """Whether the engine can serve now."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Load models or open connections; called once in the background at start-up."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what `start` acquired."""

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the engine (0 for engines without a queue)."""
        return 0


class EngineRequestError(EngineError):
    """The request, not the engine, is at fault (e.g. a conversation the template rejects)."""


class ContextWindowExceeded(EngineRequestError):
    """The prompt plus the requested output does not fit the model's context window."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_window: int) -> None:
        super().__init__(
            f"prompt of {prompt_tokens} tokens plus max_tokens {max_tokens} exceeds the "
            f"context window of {context_window} tokens"
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_window = context_window
