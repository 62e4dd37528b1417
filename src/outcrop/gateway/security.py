"""Assembles the security, quota, fault and scripted-response interceptors (and the admin APIs
of faults and scripted responses) from settings.

Order matters and mirrors AWS: refuse oversized headers, authenticate, authorize, then inject
faults (so a fault rule can name the principal, and a denied call is denied before anything is
injected), then quotas (a call refused by a fault consumes no quota). Engines get the
generation time limit.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from outcrop.config import Settings
from outcrop.engines.base import Engine
from outcrop.engines.deadline import DeadlineEngine
from outcrop.gateway.auth import Authenticator
from outcrop.gateway.fault_admin import FaultAdmin
from outcrop.gateway.faults import FaultInjector, FaultRegistry
from outcrop.gateway.interceptors import Interceptor
from outcrop.gateway.limits import HeaderLimit
from outcrop.gateway.policies import GuardrailArns, Policy, PolicyEnforcer, parse_policy
from outcrop.gateway.quotas import QuotaEnforcer
from outcrop.gateway.scripted_responses import ResponseAdmin, ResponseRegistry, ScriptedResponses
from outcrop.security_settings import load_policy_document, principal_arn


def attached_policies(settings: Settings) -> dict[str, list[Policy]]:
    """Principal ARN → its parsed policies."""
    parsed = {
        name: parse_policy(name, load_policy_document(source, None))
        for name, source in settings.policies.items()
    }
    account = settings.auth.account_id
    return {
        principal_arn(principal, account): [parsed[name] for name in attached.policies]
        for principal, attached in settings.principals.items()
    }


def build_interceptors(
    settings: Settings, faults: FaultRegistry, guardrail_arns: GuardrailArns | None = None
) -> list[Interceptor]:
    auth = settings.auth
    return [
        HeaderLimit(settings.limits.max_header_bytes),
        Authenticator(auth),
        PolicyEnforcer(
            attached_policies(settings),
            default_deny=auth.mode == "verify",
            account_id=auth.account_id,
            aliases=settings.aliases,
            region=auth.region,
            regions=auth.regions,
            guardrail_arns=guardrail_arns,
        ),
        FaultInjector(faults, settings.aliases),
        QuotaEnforcer(
            settings.quotas,
            aliases=settings.aliases,
            max_counters=settings.limits.max_quota_counters,
        ),
    ]


def install(
    settings: Settings,
    interceptors: list[Interceptor],
    local_routes: MutableMapping[tuple[str, str], Any],
    engines: MutableMapping[str, Engine],
    guardrail_arns: GuardrailArns | None = None,
) -> FaultRegistry:
    """Wire everything into an app's extension points; returns the fault registry.
    `guardrail_arns` resolves a guardrail identifier to its ARN, for policies."""
    registry = FaultRegistry()
    for rule in settings.faults:
        registry.add(rule)
    interceptors.extend(build_interceptors(settings, registry, guardrail_arns))
    enabled = settings.admin.faults_api
    if enabled is None:
        enabled = settings.auth.mode == "open"
    local_routes.update(FaultAdmin(registry, enabled, settings.admin).routes())
    # Scripted responses come last: only a call every other interceptor let through can
    # consume one (and the operation picks it only once the call is admitted).
    responses = ResponseRegistry()
    timeout = settings.limits.model_timeout_s
    interceptors.append(ScriptedResponses(responses, settings.aliases, timeout))
    responses_enabled = settings.admin.responses_api
    if responses_enabled is None:
        responses_enabled = settings.auth.mode == "open"
    local_routes.update(ResponseAdmin(responses, responses_enabled, settings.admin).routes())
    if timeout is not None:
        for name, engine in list(engines.items()):
            engines[name] = DeadlineEngine(engine, timeout)
    return registry
