"""Admission for generations an operation runs on its own: SageMaker's engine-backed containers
and the turns of a speech session.

Those operations parse their own bodies and speak their own error formats, so they do not go
through `Invoker.start`; they still meet the engine through this layer. `CallAdmission.admit`
is called once per generation, after the request is parsed and before the engine runs: it
records the call's model and size and runs the admission checks the gateway registered
(`pipeline.admit`: token quotas reserve the input plus the maximum output), then picks the
engine that answers (a scripted answer queued for the call, else the served engine), so a call
refused by a quota consumes no scripted answer. `finished` adds each generation's usage to the
call's record, which quotas settle against and metrics and the invocation log report; a speech
session, one call of many turns, reports the sum of its turns.

Scheduling needs nothing here: these generations carry the default priority
(`GenerationRequest.priority` 0, SageMaker and speech have no service tier) and wait in the
engine's queue like any other call.

Engine failures while counting the input (`EngineError`) are left to the caller, which answers
them in its own format (a container's error body, a speech stream's exception).
"""

from __future__ import annotations

from dataclasses import dataclass

from outcrop.engines.base import Engine
from outcrop.invocation.context import RequestContext
from outcrop.invocation.engines import answering_engine
from outcrop.invocation.pipeline import admit
from outcrop.types import Finish, GenerationRequest


@dataclass(slots=True)
class CallAdmission:
    """Admits each generation of one call and records what they used (see the module)."""

    ctx: RequestContext
    model_id: str
    """What the call is recorded and matched by: the model ID, or the SageMaker endpoint."""
    input_tokens: int = 0
    output_tokens: int = 0

    def admit(self, engine: Engine, request: GenerationRequest) -> Engine:
        """Run the call's admission checks for `request`; the engine that answers it."""
        admit(
            self.ctx,
            self.model_id,
            lambda: engine.count_tokens(request),
            request.sampling.max_tokens,
        )
        return answering_engine(self.ctx, engine)

    def finished(self, finish: Finish) -> None:
        """Add one generation's usage to the call's record."""
        self.input_tokens += finish.input_tokens
        self.output_tokens += finish.output_tokens
        record = self.ctx.record
        record.input_tokens = self.input_tokens
        record.output_tokens = self.output_tokens
