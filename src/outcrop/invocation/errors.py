"""Engine failures as Bedrock's modelled errors: the one place they are translated.

Before the first event an engine failure is an HTTP error; after it (`started`), an exception
frame (`ModelStreamErrorException`). Timeouts, a model still loading, a prompt over the context
window, a request the engine refuses and an engine that cannot be reached have their own errors
whenever they happen.
"""

from __future__ import annotations

from outcrop.engines.base import (
    ContextWindowExceeded,
    EngineError,
    EngineNotReady,
    EngineRequestError,
    EngineTimeout,
    EngineUnavailable,
)
from outcrop.wire.errors import (
    AwsError,
    ModelErrorException,
    ModelNotReadyException,
    ModelStreamErrorException,
    ModelTimeoutException,
    ServiceUnavailableException,
    ValidationException,
)

# AWS's documented description of ModelTimeoutException.
MODEL_TIMEOUT = (
    "The request took too long to process. Processing time exceeded the model timeout length."
)


def translate_engine_error(exc: EngineError, *, started: bool, resource: str) -> AwsError:
    """The Bedrock error for an engine failure, before (HTTP error) or after the first event
    (exception frame)."""
    if isinstance(exc, EngineTimeout):
        return ModelTimeoutException(MODEL_TIMEOUT)
    if isinstance(exc, EngineNotReady):
        return ModelNotReadyException(
            "Model is not ready for inference. Wait and try your request again."
        )
    if isinstance(exc, ContextWindowExceeded):
        return ValidationException("Input is too long for requested model.")
    if isinstance(exc, EngineRequestError):
        return ValidationException(str(exc))
    if isinstance(exc, EngineUnavailable):
        return ServiceUnavailableException(f"Bedrock is unable to process your request. {exc}")
    if started:
        return ModelStreamErrorException(
            f"The model failed while streaming: {exc}",
            original_status_code=500,
            original_message=str(exc),
        )
    return ModelErrorException(
        f"The model failed to process the request: {exc}",
        original_status_code=500,
        resource_name=resource,
    )
