"""Bring the guardrail snapshot up to date before a call that names a guardrail.

Guardrails are read from a snapshot in memory (`guardrails.store`); this interceptor, run after
authentication and before the policy check (which evaluates the guardrail's ARN), refreshes it
for the calls that name one: InvokeModel and its stream with guardrail headers, Converse and
ConverseStream with `guardrailConfig`, ApplyGuardrail and the control plane's guardrail
operations. A refresh is one small read of the store's generation when nothing changed, so a
guardrail created, versioned, changed or deleted through another replica applies to the next
call here; calls that name no guardrail never touch the store.

When the store does not answer, a model invocation goes on with the guardrails as last read
(logged; health and metrics show the store's state), and is refused with the
ServiceUnavailableException these operations model only if they were never read at all. The
control plane's operations report the failure themselves (InternalServerException).
"""

from __future__ import annotations

import logging

from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.gateway.policies import guardrail_applied
from outcrop.guardrails.store import GuardrailStore
from outcrop.services.base import RequestContext
from outcrop.state.store import StateUnavailable
from outcrop.wire.errors import ServiceUnavailableException

log = logging.getLogger("outcrop.guardrails")


def names_guardrail(ctx: RequestContext) -> bool:
    if ctx.service == "bedrock":
        return "guardrailIdentifier" in ctx.params or ctx.operation == "CreateGuardrail"
    if ctx.service != "bedrock-runtime":
        return False
    return "guardrailIdentifier" in ctx.params or guardrail_applied(ctx) is not None


class GuardrailFreshness(BaseInterceptor):
    def __init__(self, store: GuardrailStore) -> None:
        self.store = store

    async def before(self, ctx: RequestContext) -> None:
        if not names_guardrail(ctx):
            return
        try:
            await self.store.refresh()
        except StateUnavailable as exc:
            if ctx.service == "bedrock":
                return  # the operation reads the store itself and reports the failure
            if not self.store.loaded:
                # Outcrop's wording.
                raise ServiceUnavailableException(
                    f"Guardrails are unavailable: the state store does not answer ({exc})."
                ) from None
            log.warning(
                "state store unavailable; guardrails as last read serve %s: %s", ctx.request_id, exc
            )
