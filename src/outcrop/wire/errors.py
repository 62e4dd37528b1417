"""AWS errors with their wire mapping, and their restJson1 / event-stream serialization.

Every error Outcrop sends is one of these classes. The class attributes say how it looks on the
wire: the shape name (`X-Amzn-ErrorType` and the SDKs' exception class), the HTTP status, the
fault side, the lowerCamel union member used in event-stream exception frames, and the Coral
namespace real AWS appends to the error type header. Foreign exceptions are translated into these
once, at the gateway boundary.
"""

from __future__ import annotations

import json
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

    def __init__(self, message: str, **members: Any) -> None:
        super().__init__(message)
        self.message = message
        self.members = members

    @classmethod
    def stream_member(cls) -> str:
        """The event-stream union member name: the shape name with a lowercase first letter."""
        return cls.code[0].lower() + cls.code[1:]

    def body(self) -> dict[str, Any]:
        """The JSON body members: the message plus any modelled extras."""
        return {self.message_key: self.message, **self.members}

    def to_http(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body of the restJson1 error response (as real AWS sends it)."""
        payload = json.dumps(self.body(), ensure_ascii=False).encode()
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
