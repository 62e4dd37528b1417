"""What a call carries from the gateway down to the engine, typed.

`RequestContext` holds the request as the gateway bound it (frozen), the `InvocationRecord` the
operation fills in as it learns what the call did (read by metrics, invocation logs and quotas
once the call is over), and the `CallState`: what the gateway's interceptors learnt for the
layers below (the caller's `Identity`, the admission checks quotas registered, the scripted
answer queued for the call) and what an operation learnt for the gateway (the request
metadata for the invocation log). Every field has one writer and a type; interceptors keep
their own per-call state to themselves (keyed weakly by the context).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from outcrop.config.scripted import ScriptedResponseSettings
from outcrop.wire import sigv4

if TYPE_CHECKING:
    from outcrop.wire.errors import AwsError
    from outcrop.wire.stream_units import StreamUnits


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller, as authentication established it (gateway/auth.py)."""

    principal: str
    """An IAM ARN: arn:aws:iam::ACCOUNT:user/NAME, role/..., or sts assumed-role/...."""
    kind: Literal["sigv4", "bearer", "anonymous"]
    region: str
    """The region the request was signed for (else the configured default)."""
    access_key_id: str | None = None
    verified: sigv4.Verified | None = None
    """Verify mode, SigV4: what an input event-stream chain is seeded with."""

    @property
    def account_id(self) -> str:
        parts = self.principal.split(":")
        return parts[4] if len(parts) > 4 and parts[4].isdigit() else ""


@dataclass(frozen=True, slots=True)
class ScriptedAnswer:
    """A scripted response picked for a call (gateway/scripted_responses.py), and the
    generation time limit engines have (`[limits] model_timeout_s`)."""

    settings: ScriptedResponseSettings
    timeout_s: float | None = None


AdmissionCheck = Callable[[int, int], None]
"""Raises an AwsError to refuse a call once its size is known: (input tokens, max output)."""

ScriptedPick = Callable[[], ScriptedAnswer | None]
"""Picks, when called, the scripted answer queued for this call, if any (called once the call
is admitted, so that a call refused by a quota consumes none)."""


@dataclass(slots=True)
class CallState:
    """What the gateway learnt about a call for the layers below, and what they tell it."""

    identity: Identity | None = None
    """Set by authentication; None when the call was refused before it or carries none."""
    admission: list[AdmissionCheck] = field(default_factory=list)
    """Checks run by `invocation.pipeline.admit` (token quotas reserve here)."""
    scripted: ScriptedPick | None = None
    """Registered by the scripted-responses interceptor for a generating call."""
    request_metadata: dict[str, str] | None = None
    """The request's metadata (InvokeModel's header, Converse's member), for the log."""
    matched_rules: list[str] = field(default_factory=list)
    """The test-control rules applied to the call (`fault:ID`, `response:ID`), for the web
    console."""
    stream_units: StreamUnits | None = None
    """How a streamed answer's units are written when they are not AWS event-stream frames
    (wire/stream_units.py), for the interceptors that look inside them."""


@dataclass(slots=True)
class InvocationRecord:
    """What an invocation did, filled in by the operation as it learns it.

    Interceptors (metrics, invocation logs, quotas) read it once the call is over.
    """

    model_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    """Prompt tokens read from the prompt cache (requests with a cache point only)."""
    cache_write_input_tokens: int | None = None
    """Prompt tokens written to the prompt cache (requests with a cache point only)."""
    first_byte_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_fault: str | None = None
    """`client` or `server`, as the error's service model says (see `AwsError.fault`)."""
    status: int = 200
    max_output_tokens: int | None = None
    response_body: bytes | None = None
    """The body of a complete (non-streaming) response; streams pass through `wrap_stream`."""

    def failed(self, err: AwsError) -> None:
        """Record the modelled error the call ended with."""
        self.error_code = err.code
        self.error_message = err.message
        self.error_fault = err.fault


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class RequestContext:
    """Per-request facts the gateway established before calling an operation.

    Compared and hashed by identity, and weakly referenceable: interceptors key their own
    per-call state by it (`weakref.WeakKeyDictionary`).
    """

    request_id: str
    operation: str
    params: Mapping[str, Any]
    body: bytes
    service: str = "bedrock-runtime"
    headers: tuple[tuple[str, str], ...] = ()
    started: float = field(default_factory=time.monotonic)
    record: InvocationRecord = field(default_factory=InvocationRecord)
    call: CallState = field(default_factory=CallState)
    method: str = "POST"
    raw_path: str = ""
    """The request path still percent-encoded, as received (what SigV4 signs)."""
    query: str = ""
    """The raw query string, without `?`."""
    scheme: str = "http"
    """`https` on the TLS listener."""

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None
