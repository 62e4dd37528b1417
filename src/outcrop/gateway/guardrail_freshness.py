"""Bring the guardrail snapshot up to date before a call that names a guardrail.

Guardrails are read from a snapshot in memory (`guardrails.store`); this interceptor, run after
authentication and before the policy check (which evaluates the guardrail's ARN), refreshes it
for the calls that name one: InvokeModel and its stream with guardrail headers, Converse and
ConverseStream with `guardrailConfig`, ApplyGuardrail and the control plane's guardrail
operations. A refresh is one small read of the store's generation when nothing changed, so a
guardrail created, versioned, changed or deleted through another replica applies to the next
call here; calls that name no guardrail never touch the store.

When the store does not answer, a model invocation goes on with the guardrails as last read
(logged; health and metrics show the store's state): always for a guardrail defined in the
configuration file, and for the others once they were read at least once; else it is refused
with the ServiceUnavailableException these operations model. The control plane's operations
report the failure themselves (InternalServerException).
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


def named_guardrail(ctx: RequestContext) -> str | None:
    """The guardrail identifier a call names ("" for CreateGuardrail), or None."""
    if ctx.service == "bedrock":
        if "guardrailIdentifier" in ctx.params:
            return str(ctx.params["guardrailIdentifier"])
        return "" if ctx.operation == "CreateGuardrail" else None
    if ctx.service != "bedrock-runtime":
        return None
    if "guardrailIdentifier" in ctx.params:
        return str(ctx.params["guardrailIdentifier"])
    applied = guardrail_applied(ctx)
    return applied[0] if applied is not None else None


class GuardrailFreshness(BaseInterceptor):
    def __init__(self, store: GuardrailStore) -> None:
        self.store = store

    async def before(self, ctx: RequestContext) -> None:
        identifier = named_guardrail(ctx)
        if identifier is None:
            return
        try:
            await self.store.refresh()
        except StateUnavailable as exc:
            if ctx.service == "bedrock":
                return  # the operation reads the store itself and reports the failure
            if not self.store.loaded and not self.store.is_configured(identifier):
                # Outcrop's wording.
                raise ServiceUnavailableException(
                    f"Guardrails are unavailable: the state store does not answer ({exc})."
                ) from None
            log.warning(
                "state store unavailable; guardrails as last read serve %s: %s", ctx.request_id, exc
            )
