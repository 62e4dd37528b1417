"""AWS errors with their wire mapping, and their restJson1 / event-stream serialization.

Every error Outcrop sends is one of these classes. The class attributes say how it looks on the
wire: the shape name (`X-Amzn-ErrorType` and the SDKs' exception class), the HTTP status, the
fault side, the union member used in event-stream exception frames (the shape name with a
lowercase first letter for Bedrock, an explicit `stream_member_name` for SageMaker), and the Coral
namespace real AWS appends to the error type header. Foreign exceptions are translated into these
once, at the gateway boundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

BEDROCK_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CORAL_SERVICE_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
SAGEMAKER_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.sagemaker/"


class AwsError(Exception):
    """Base of all errors that go on the wire. Subclasses set the class attributes."""

    code: ClassVar[str] = "InternalServerException"
    status: ClassVar[int] = 500
    fault: ClassVar[Literal["client", "server"]] = "server"
    namespace: ClassVar[str] = BEDROCK_NAMESPACE
    message_key: ClassVar[str] = "message"
    """`message` for Bedrock (lowercase) and `Message` for SageMaker."""
    stream_member_name: ClassVar[str | None] = None
    """The event-stream union member naming this error, where it is not the lowerCamel shape
    name (SageMaker's `ResponseStream` members are PascalCase: `ModelStreamError`)."""

    def __init__(self, message: str, **members: Any) -> None:
        super().__init__(message)
        self.message = message
        self.members = members

    @classmethod
    def stream_member(cls) -> str:
        """The event-stream union member name (`:exception-type`): `stream_member_name` where
        set, else the shape name with a lowercase first letter (Bedrock's convention)."""
        if cls.stream_member_name is not None:
            return cls.stream_member_name
        return cls.code[0].lower() + cls.code[1:]

    def body(self) -> dict[str, Any]:
        """The JSON body members: the message plus any modelled extras."""
        return {self.message_key: self.message, **self.members}

    def to_http(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body of the restJson1 error response (as real AWS sends it)."""
        try:
            payload = json.dumps(self.body(), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the input: escape it
            payload = json.dumps(self.body()).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("X-Amzn-ErrorType", f"{self.code}:{self.namespace}"),
        ]
        return self.status, headers, payload

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# --- bedrock-runtime modelled errors (statuses checked against botocore's model in tests) ---


class ValidationException(AwsError):
    code = "ValidationException"
    status = 400
    fault = "client"


class AccessDeniedException(AwsError):
    code = "AccessDeniedException"
    status = 403
    fault = "client"


class ResourceNotFoundException(AwsError):
    code = "ResourceNotFoundException"
    status = 404
    fault = "client"


class ThrottlingException(AwsError):
    code = "ThrottlingException"
    status = 429
    fault = "client"


class ModelNotReadyException(AwsError):
    code = "ModelNotReadyException"
    status = 429
    fault = "client"


class ModelTimeoutException(AwsError):
    code = "ModelTimeoutException"
    status = 408
    fault = "client"


class ServiceQuotaExceededException(AwsError):
    code = "ServiceQuotaExceededException"
    status = 400
    fault = "client"


class ConflictException(AwsError):
    code = "ConflictException"
    status = 400
    fault = "client"


class ModelErrorException(AwsError):
    """The model failed before the first byte; carries `originalStatusCode` and `resourceName`."""

    code = "ModelErrorException"
    status = 424
    fault = "client"

    def __init__(
        self, message: str, *, original_status_code: int = 500, resource_name: str = ""
    ) -> None:
        super().__init__(
            message, originalStatusCode=original_status_code, resourceName=resource_name
        )


class ModelStreamErrorException(AwsError):
    """The model failed mid-stream; carries `originalStatusCode` and `originalMessage`."""

    code = "ModelStreamErrorException"
    status = 424
    fault = "client"

    def __init__(
        self, message: str, *, original_status_code: int = 500, original_message: str = ""
    ) -> None:
        super().__init__(
            message, originalStatusCode=original_status_code, originalMessage=original_message
        )


class InternalServerException(AwsError):
    code = "InternalServerException"
    status = 500
    fault = "server"


class ServiceUnavailableException(AwsError):
    code = "ServiceUnavailableException"
    status = 503
    fault = "server"


# --- unmodelled errors AWS's front door sends (they reach SDKs as generic exceptions) ---


class UnknownOperationException(AwsError):
    """No operation of the service matches the method and path."""

    code = "UnknownOperationException"
    status = 404
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class NotImplementedYet(AwsError):
    """An operation the service model defines that Outcrop does not serve yet.

    Real AWS never sends this; it tells a user clearly which operation is missing instead of
    answering with a 404 page. 501 is not retried by the SDKs.
    """

    code = "NotImplementedException"
    status = 501
    fault = "server"
    namespace = CORAL_SERVICE_NAMESPACE


class UnrecognizedClientException(AwsError):
    code = "UnrecognizedClientException"
    status = 403
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class InvalidSignatureException(AwsError):
    code = "InvalidSignatureException"
    status = 403
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class IncompleteSignatureException(AwsError):
    """The request's SigV4 signature is malformed (missing fields, bad date, bad scope)."""

    code = "IncompleteSignatureException"
    status = 403
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class MissingAuthenticationTokenException(AwsError):
    """The request carries neither a SigV4 signature nor a bearer token."""

    code = "MissingAuthenticationTokenException"
    status = 403
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class RequestHeaderFieldsTooLarge(AwsError):
    """The request's header block is larger than the front door accepts (Outcrop's limit)."""

    code = "RequestHeaderFieldsTooLargeException"
    status = 431
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class RequestEntityTooLarge(AwsError):
    """The HTTP front door refuses bodies far beyond any modelled limit before reading them."""

    code = "RequestEntityTooLargeException"
    status = 413
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


class RequestTimeout(AwsError):
    """The request body did not arrive whole in time (Outcrop's front-door limit,
    `[limits] body_read_timeout_s`). The code is one the SDKs' standard retry mode treats as
    transient (botocore: `RequestTimeoutException`); the exact front-door answer of AWS to a
    stalled body is unverified."""

    code = "RequestTimeoutException"
    status = 408
    fault = "client"
    namespace = CORAL_SERVICE_NAMESPACE


BEDROCK_RUNTIME_ERRORS: tuple[type[AwsError], ...] = (
    ValidationException,
    AccessDeniedException,
    ResourceNotFoundException,
    ThrottlingException,
    ModelNotReadyException,
    ModelTimeoutException,
    ServiceQuotaExceededException,
    ConflictException,
    ModelErrorException,
    ModelStreamErrorException,
    InternalServerException,
    ServiceUnavailableException,
)
"""The modelled bedrock-runtime error shapes, one class each."""

BEDROCK_RUNTIME_ERRORS_BY_CODE: dict[str, type[AwsError]] = {
    cls.code: cls for cls in BEDROCK_RUNTIME_ERRORS
}


# --- sagemaker-runtime modelled errors (statuses checked against botocore's model in tests) ---


class SageMakerError(AwsError):
    """SageMaker errors: capital-M `Message` body member, SageMaker's Coral namespace."""

    namespace = SAGEMAKER_NAMESPACE
    message_key = "Message"


class SageMakerValidationError(SageMakerError):
    code = "ValidationError"
    status = 400
    fault = "client"


class ModelError(SageMakerError):
    """The container answered 4xx/5xx (or not at all) before the first byte of the response."""

    code = "ModelError"
    status = 424
    fault = "client"

    def __init__(
        self,
        message: str,
        *,
        original_status_code: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
    ) -> None:
        members: dict[str, Any] = {}
        if original_status_code is not None:
            members["OriginalStatusCode"] = original_status_code
        if original_message is not None:
            members["OriginalMessage"] = original_message
        if log_stream_arn is not None:
            members["LogStreamArn"] = log_stream_arn
        super().__init__(message, **members)


class SageMakerModelNotReady(SageMakerError):
    code = "ModelNotReadyException"
    status = 429
    fault = "client"


class InternalFailure(SageMakerError):
    code = "InternalFailure"
    status = 500
    fault = "server"


class ServiceUnavailable(SageMakerError):
    code = "ServiceUnavailable"
    status = 503
    fault = "server"


class InternalDependencyException(SageMakerError):
    code = "InternalDependencyException"
    status = 530
    fault = "server"


class ModelStreamError(SageMakerError):
    """Stream-only: the container failed or timed out after the first byte."""

    code = "ModelStreamError"
    stream_member_name = "ModelStreamError"
    status = 424
    fault = "client"

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message, ErrorCode=error_code)


class InternalStreamFailure(SageMakerError):
    """Stream-only: anything else that breaks a stream after the HTTP 200."""

    code = "InternalStreamFailure"
    stream_member_name = "InternalStreamFailure"
    status = 500
    fault = "server"


class SageMakerPayloadTooLarge(SageMakerError):
    """SageMaker's front door refusing a body over the limit: a bare 413 with no error type.

    boto3 reports it as `ClientError` with code "413" and the message "HTTP content length
    exceeded N bytes." (seen from real SageMaker with the old 5 MiB limit: N = 5 MiB + 4096). The
    N for today's 6 MiB limit is unverified; 6 MiB + 4096 follows the same rule.
    """

    code = "413"
    status = 413
    fault = "client"

    def to_http(self) -> tuple[int, list[tuple[str, str]], bytes]:
        payload = json.dumps({"message": self.message}).encode()
        return self.status, [("Content-Type", "application/json")], payload


SAGEMAKER_RUNTIME_ERRORS: tuple[type[AwsError], ...] = (
    SageMakerValidationError,
    ModelError,
    SageMakerModelNotReady,
    InternalFailure,
    ServiceUnavailable,
    InternalDependencyException,
    ModelStreamError,
    InternalStreamFailure,
)
"""The modelled sagemaker-runtime error shapes, one class each."""


def _sagemaker_oversize(operation: str, limit: int) -> AwsError | None:
    # The synchronous operations' 6 MiB limit is enforced by the HTTP front door (a bare 413);
    # InvokeEndpointAsync's 128,000-byte inline body limit is a ValidationError (AWS's
    # announcement of inline async payloads says so), i.e. the Coral length message.
    if operation in ("InvokeEndpoint", "InvokeEndpointWithResponseStream"):
        return SageMakerPayloadTooLarge(f"HTTP content length exceeded {limit + 4096} bytes.")
    return None


@dataclass(frozen=True, slots=True)
class ServiceErrors:
    """How one service reports request-binding failures."""

    validation: type[AwsError] = ValidationException
    oversize: Callable[[str, int], AwsError | None] | None = None
    """Given the operation and its payload limit: the error for a body over it, or None for
    the Coral length message in `validation`."""


SERVICE_ERRORS: dict[str, ServiceErrors] = {
    "sagemaker-runtime": ServiceErrors(SageMakerValidationError, _sagemaker_oversize),
}
"""Per service model name; services not listed use Bedrock's `ValidationException`."""
