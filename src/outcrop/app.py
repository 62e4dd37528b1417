"""The composition root: `build_app(settings)` builds everything a server runs, once.

Engines (wrapped in the generation time limit), the model resolver, the embedding engine,
guardrails, the services and their operations, the interceptors (in AWS's order), the local
routes (health, metrics, admin APIs) and the gateway that dispatches to them. Nothing else
builds components or wires them together; nothing is added to them at run time.

Interceptor order mirrors AWS: refuse oversized headers, authenticate, authorize, then inject
faults (so a fault rule can name the principal, and a denied call is denied before anything is
injected), then quotas (a call refused by a fault consumes no quota), then scripted responses
(only a call every other interceptor let through can consume one; the invocation picks it once
the call is admitted). Metrics and the invocation log come first, so that they see every call.

`load_settings` is the configuration file's settings with the checks that need the layers
above `outcrop.config` (policy documents, configured guardrails), errors naming the line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from outcrop import config
from outcrop.catalog.foundation import configured_models
from outcrop.catalog.resolver import ModelRoute, Resolver
from outcrop.config import Settings
from outcrop.config.scripted import ScriptedResponseSettings
from outcrop.config.security import FaultRuleSettings, principal_arn
from outcrop.console.calls import CallRecorder, CallRing
from outcrop.console.routes import ConsoleRoutes
from outcrop.engines.base import Engine
from outcrop.engines.deadline import DeadlineEngine
from outcrop.engines.embeddings import BertEmbedder
from outcrop.engines.factory import build_engine
from outcrop.engines.pool_metrics import PoolCollector
from outcrop.gateway.access_log import AccessLog
from outcrop.gateway.admin_guard import AdminGuard, host_name, is_loopback
from outcrop.gateway.auth import Authenticator
from outcrop.gateway.dispatch import (
    Gateway,
    LocalHandler,
    LocalRequest,
    ServiceBinding,
    service_binding,
)
from outcrop.gateway.fault_admin import FaultAdmin
from outcrop.gateway.faults import FaultInjector, FaultRegistry
from outcrop.gateway.guardrail_freshness import GuardrailFreshness
from outcrop.gateway.interceptors import Interceptor
from outcrop.gateway.invocation_log import InvocationLog
from outcrop.gateway.limits import HeaderLimit
from outcrop.gateway.metrics import Metrics
from outcrop.gateway.policies import Policy, PolicyEnforcer, PolicyError, parse_policy
from outcrop.gateway.quota_admin import QuotaAdmin
from outcrop.gateway.quotas import QuotaEnforcer
from outcrop.gateway.request_limits import RequestLimits, request_limits, transport_limits
from outcrop.gateway.rules import RuleRegistry
from outcrop.gateway.scripted_responses import ResponseAdmin, ResponseRegistry, ScriptedResponses
from outcrop.gateway.state_metrics import StateCollector
from outcrop.guardrails.runtime import check_definitions, open_guardrails
from outcrop.recording.admin import RecordingAdmin
from outcrop.recording.operations import RecordingOperations
from outcrop.sagemaker.async_jobs import AsyncJobs
from outcrop.server import TransportLimits
from outcrop.services.apply_guardrail import ApplyGuardrail
from outcrop.services.base import Response
from outcrop.services.bedrock import BedrockControlPlane
from outcrop.services.bedrock_runtime import BedrockRuntime
from outcrop.services.converse import ConverseOperations
from outcrop.services.guardrail_checks import GuardrailChecks
from outcrop.services.guardrails_admin import GuardrailAdmin
from outcrop.services.openai_chat import CHAT_COMPLETIONS, OpenAIChatCompletions
from outcrop.services.sagemaker_admin import EndpointAdmin
from outcrop.services.sagemaker_runtime import SageMakerRuntime
from outcrop.shared.client import SharedState, default_replica_id
from outcrop.shared.metrics import ReplicaCollector
from outcrop.shared.quotas import SharedQuotaEnforcer
from outcrop.shared.rules import SharedRuleRegistry
from outcrop.shared.sessions import SharedSessionTable
from outcrop.state.backends import open_state
from outcrop.state.store import probe
from outcrop.wire.errors import InternalStreamFailure
from outcrop.wire.jsonbody import set_max_json_depth

log = logging.getLogger("outcrop")


# -- settings ----------------------------------------------------------------------------------


def load_settings(path: Path | None) -> Settings:
    """`config.load_settings` plus `check_settings`, errors naming the file's line."""
    settings = config.load_settings(path)
    if path is not None:
        try:
            check_settings(settings)
        except ValueError as exc:
            raise config.located_error(path, str(exc)) from None
    return settings


def check_settings(settings: Settings) -> None:
    """Policy documents parse, configured guardrails are valid CreateGuardrail bodies
    (ValueError whose message starts with the offending key)."""
    for name, document in settings.policies.items():
        try:
            parse_policy(name, dict(document))
        except PolicyError as exc:
            raise ValueError(str(exc)) from None
    check_definitions(settings.guardrails)


def attached_policies(settings: Settings) -> dict[str, list[Policy]]:
    """Principal ARN → its parsed policies."""
    parsed = {name: parse_policy(name, dict(doc)) for name, doc in settings.policies.items()}
    account = settings.auth.account_id
    return {
        principal_arn(principal, account): [parsed[name] for name in attached.policies]
        for principal, attached in settings.principals.items()
    }


# -- the application ---------------------------------------------------------------------------


def build_engines(settings: Settings) -> dict[str, Engine]:
    """Every configured engine, by name."""
    return {name: build_engine(name, s) for name, s in settings.engines.items()}


def build_app(settings: Settings, engines: Mapping[str, Engine] | None = None) -> OutcropApp:
    """The application for `settings` (`engines`: use these instead of building them)."""
    return OutcropApp(settings, engines)


class OutcropApp:
    """Everything a server runs, built once from settings; ASGI calls go to its gateway."""

    def __init__(self, settings: Settings, engines: Mapping[str, Engine] | None = None) -> None:
        self.settings = settings
        set_max_json_depth(settings.limits.max_json_depth)
        built = dict(engines) if engines is not None else build_engines(settings)
        timeout = settings.limits.model_timeout_s
        self.engines: dict[str, Engine] = (
            built
            if timeout is None
            else {name: DeadlineEngine(engine, timeout) for name, engine in built.items()}
        )
        """The engines by name, within the generation time limit (`[limits]`)."""
        routes = [ModelRoute(r.match, r.engine) for r in settings.models] or [
            ModelRoute("*", "default")
        ]
        self.resolver = Resolver(
            routes=routes,
            aliases=dict(settings.aliases),
            extra_models=configured_models(settings.catalog),
            strict=settings.catalog.strict,
        )
        self.embedder = BertEmbedder(settings.embeddings.model)
        region = settings.server.region
        self.state = open_state(settings.state, settings.guardrails.resolved_state_dir())
        """The durable state store (docs/state.md); connects on first use."""
        self.guardrails = open_guardrails(
            settings.guardrails, region, self.embedder, settings.auth.account_id, self.state
        )
        self.bedrock = BedrockRuntime(
            self.resolver, self.engines, self.embedder, settings.speech, self.guardrails
        )
        self.openai_chat = OpenAIChatCompletions(self.bedrock)
        self.control_plane = BedrockControlPlane(
            self.resolver.known_models, region, self.resolver.model_for
        )
        self.sagemaker = SageMakerRuntime(
            settings.sagemaker,
            self.engines,
            engine_settings=settings.engines,
            jobs=AsyncJobs(self.state, settings.state.job_lease_s),
        )
        self.metrics = Metrics(
            self.engines,
            settings.aliases,
            settings.limits.max_metric_label_values,
            collectors=[PoolCollector(self.engines)],
        )
        self.metrics.registry.register(StateCollector(self.state.health))
        self.invocation_log = InvocationLog.from_settings(settings.invocation_log)
        self.replica_id = settings.server.replica_id or default_replica_id()
        """This replica's name in logs, metrics and health."""
        self.shared: SharedState | None = None
        """Redis, when `[shared] url` is set: quotas and rules are the fleet's."""
        self.faults: RuleRegistry[FaultRuleSettings]
        self.responses: RuleRegistry[ScriptedResponseSettings]
        if settings.shared.url is None:
            self.faults = FaultRegistry()
            for rule in settings.faults:
                self.faults.add(rule)
            self.responses = ResponseRegistry()
        else:
            self.shared = SharedState(settings.shared, self.replica_id)
            self.sagemaker.sessions = SharedSessionTable(self.shared, self.sagemaker.registry)
            self.faults = SharedRuleRegistry(
                self.shared, "faults", FaultRuleSettings, "fault", FaultRegistry().check
            )
            self.responses = SharedRuleRegistry(
                self.shared, "responses", ScriptedResponseSettings, "response"
            )
        self.quotas: QuotaEnforcer | SharedQuotaEnforcer = (
            QuotaEnforcer(
                settings.quotas,
                aliases=settings.aliases,
                max_counters=settings.limits.max_quota_counters,
            )
            if self.shared is None
            else SharedQuotaEnforcer(settings.quotas, self.shared, settings.aliases)
        )
        self.endpoint_admin = EndpointAdmin(self.sagemaker)
        self.metrics.registry.register(ReplicaCollector(self.replica_id, self.shared))
        self.console = self._console()
        self.recording = (
            RecordingOperations(
                settings.recording, settings.server.region, settings.speech.event_signing_secret
            )
            if settings.recording.enabled
            else None
        )
        """Record and replay (`[recording]`): answers the recorded operations when on."""
        self.gateway = Gateway(
            self._services(),
            self._interceptors(),
            self._local_routes(),
            {
                **self.endpoint_admin.prefix_routes(),
                **(self.console.prefix_routes() if self.console is not None else {}),
            },
            {("POST", CHAT_COMPLETIONS): self.openai_chat.handle},
            admin_guard=AdminGuard(settings.auth, settings.admin),
            local_body_limit=settings.admin.max_body_bytes,
            on_startup=self._startup,
            on_shutdown=self.close,
        )
        self._start_tasks: list[asyncio.Task[None]] = []
        self._shared_started = False

    def _services(self) -> list[ServiceBinding]:
        """The AWS services served, matched in this order."""
        region = self.settings.server.region
        recording = self.recording
        return [
            service_binding(
                "bedrock-runtime",
                _recorded(
                    recording,
                    "bedrock-runtime",
                    {
                        **self.bedrock.operations(),
                        **ConverseOperations(self.bedrock).operations(),
                        **ApplyGuardrail(self.guardrails).operations(),
                        **GuardrailChecks().operations(),
                    },
                ),
            ),
            service_binding(
                "bedrock",
                {
                    **self.control_plane.operations(),
                    **GuardrailAdmin(self.guardrails.store, region).operations(),
                },
            ),
            service_binding(
                "sagemaker-runtime",
                _recorded(recording, "sagemaker-runtime", self.sagemaker.operations()),
                internal_error=InternalStreamFailure,
            ),
        ]

    def _local_routes(self) -> dict[tuple[str, str], LocalHandler]:
        """Health, metrics and the admin APIs, by exact path."""
        settings = self.settings
        return {
            ("GET", "/_outcrop/health"): self._health_route,
            ("GET", "/metrics"): self.metrics.route,
            **self.endpoint_admin.routes(),
            **FaultAdmin(
                self.faults, _admin_api(settings, settings.admin.faults_api), settings.admin
            ).routes(),
            **ResponseAdmin(
                self.responses, _admin_api(settings, settings.admin.responses_api), settings.admin
            ).routes(),
            **RecordingAdmin(self.recording.library if self.recording else None).routes(),
            **QuotaAdmin(self.quotas, settings.limits.max_quota_counters_listed).routes(),
            **(self.console.routes() if self.console is not None else {}),
        }

    def _console(self) -> ConsoleRoutes | None:
        """The web console (`[console]`; default: on when bound to a loopback host)."""
        configured = self.settings.console
        enabled = configured.enabled
        if enabled is None:
            enabled = is_loopback(host_name(self.settings.server.host))
        if not enabled:
            return None
        ring = CallRing(
            configured.max_calls, configured.max_feed_clients, configured.max_total_bytes
        )
        return ConsoleRoutes(ring, self._console_overview)

    def _console_overview(self) -> dict[str, Any]:
        """What the console's engines and settings views show."""
        settings = self.settings
        _, health = self.health()
        return {
            "health": health,
            "queueDepth": {name: engine.queue_depth for name, engine in self.engines.items()},
            "authMode": settings.auth.mode,
            "region": settings.server.region,
            "faultsApi": _admin_api(settings, settings.admin.faults_api),
            "responsesApi": _admin_api(settings, settings.admin.responses_api),
            "quotas": [quota.model_dump(mode="json") for quota in settings.quotas],
        }

    def _interceptors(self) -> list[Interceptor]:
        settings = self.settings
        auth = settings.auth
        interceptors: list[Interceptor] = [self.metrics]
        if self.invocation_log is not None:
            interceptors.append(self.invocation_log)
        access_log = AccessLog.from_settings(settings.server)
        fleet = settings.shared.url is not None or settings.server.replica_id is not None
        if self.invocation_log is not None and fleet:
            self.invocation_log.replica = self.replica_id
        if access_log is not None:
            if fleet:
                access_log.replica = self.replica_id
            interceptors.append(access_log)
        interceptors += [
            HeaderLimit(settings.limits.max_header_bytes),
            Authenticator(auth),
            GuardrailFreshness(self.guardrails.store),
            PolicyEnforcer(
                attached_policies(settings),
                default_deny=auth.mode == "verify",
                account_id=auth.account_id,
                aliases=settings.aliases,
                region=auth.region,
                regions=auth.regions,
                guardrail_arns=self.guardrails.store.arn_of,
            ),
            FaultInjector(self.faults, settings.aliases),
            self.quotas,
            ScriptedResponses(self.responses, settings.aliases, settings.limits.model_timeout_s),
        ]
        if self.console is not None:
            # Last, so that its stream wrapper sees the frames as sent (faults applied).
            interceptors.append(
                CallRecorder(
                    self.console.ring, settings.console.max_call_bytes, self.resolver.engine_for
                )
            )
        return interceptors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.gateway(scope, receive, send)

    def served(self) -> tuple[RequestLimits, TransportLimits]:
        """What a listener runs: this app within the per-request limits (`[limits]`: body and
        send timeouts), and the transport's own limits for the server."""
        limits = self.settings.limits
        return RequestLimits(self, request_limits(limits)), transport_limits(limits)

    @property
    def interceptors(self) -> list[Interceptor]:
        """The gateway's interceptors, in the order they run."""
        return self.gateway.interceptors

    @property
    def local_routes(self) -> dict[tuple[str, str], LocalHandler]:
        """The gateway's local routes by exact path (per-endpoint views are prefix routes)."""
        return self.gateway.local_routes

    # -- lifecycle ---------------------------------------------------------------------------

    async def _startup(self) -> None:
        self.start_engines()

    def start_engines(self) -> None:
        """Start loading every engine in the background; health reports progress. Also starts
        keeping async inference jobs (taking over those a stopped replica left)."""
        for engine in self.engines.values():
            self._start_tasks.append(asyncio.create_task(self._start(engine)))
        self.sagemaker.start()
        if self.shared is not None and not self._shared_started:
            self._shared_started = True
            self._start_tasks.append(asyncio.create_task(self._start_shared()))

    async def _start_shared(self) -> None:
        """Renew stream leases from now on; add the configuration file's fault rules."""
        if isinstance(self.quotas, SharedQuotaEnforcer):
            self.quotas.start()
        if isinstance(self.faults, SharedRuleRegistry) and self.settings.faults:
            try:
                await self.faults.preload(self.settings.faults)
            except Exception as exc:  # Redis down at start: the rules are added by a replica
                log.error("could not add the configured fault rules to Redis: %s", exc)

    async def _start(self, engine: Engine) -> None:
        try:
            await engine.start()
        except Exception as exc:
            # One line; the traceback at DEBUG (`outcrop serve` reports failures in one line).
            log.error("engine %s failed to start: %s", engine.name, exc)
            log.debug("engine %s failed to start", engine.name, exc_info=True)

    def stopping(self) -> None:
        """The server stops gracefully: end the responses that would otherwise never end (the
        console's live feeds), so that in-flight calls are all it waits for."""
        if self.console is not None:
            self.console.ring.end_feeds()

    async def wait_ready(self) -> None:
        if self._start_tasks:
            await asyncio.gather(*self._start_tasks)

    async def close(self) -> None:
        for task in self._start_tasks:
            task.cancel()
        await self.sagemaker.close()
        if self.recording is not None:
            await self.recording.close()
        self.bedrock.bidirectional.close()
        for engine in self.engines.values():
            await engine.close()
        if self.invocation_log is not None:
            self.invocation_log.close()
        await self.embedder.close()
        if isinstance(self.quotas, SharedQuotaEnforcer):
            await self.quotas.close()
        if self.shared is not None:
            await self.shared.close()
        await self.state.close()

    # -- health ------------------------------------------------------------------------------

    async def _health_route(self, request: LocalRequest) -> Response:
        if self.shared is not None:
            await self.shared.check()
        await probe(self.state, self.settings.state.health_timeout_s)
        status, body = self.health()
        return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 once every engine is ready, else 503; per-engine and per-model readiness."""
        engines = {name: engine.health() for name, engine in self.engines.items()}
        ready = all(h.ready for h in engines.values())
        served = self.resolver.served_models()
        body: dict[str, Any] = {
            "status": "ready" if ready else "loading",
            "replica": self.replica_id,
            "engines": {
                name: {"ready": h.ready, "state": h.state, "detail": h.detail, **h.extra}
                for name, h in engines.items()
            },
            "models": {
                model_id: {"engine": engine, "ready": engines[engine].ready}
                for model_id, engine in served.items()
                if engine in engines
            },
        }
        if any(h.state == "failed" for h in engines.values()):
            body["status"] = "failed"
        # Reported, not gating: text models serve without the embedding model.
        embedder = self.embedder.health()
        body["speech"] = self.bedrock.bidirectional.health()
        # Where live state lives; reported, not gating (each feature's failure mode applies).
        body["shared"] = {"backend": "in-process"} if self.shared is None else self.shared.health()
        body["embeddings"] = {
            "ready": embedder.ready,
            "state": embedder.state,
            "detail": embedder.detail,
        }
        # Reported, not gating: only guardrail changes and async jobs need the store.
        body["state"] = self.state.health.report()
        return (200 if ready else 503), body


def _recorded(
    recording: RecordingOperations | None, service: str, operations: dict[str, Any]
) -> dict[str, Any]:
    """A service's operations, the recorded ones answered by record/replay when it is on."""
    return operations if recording is None else recording.wrap(service, operations)


def _admin_api(settings: Settings, configured: bool | None) -> bool:
    """An admin API is on when configured so, else in auth mode open only."""
    return configured if configured is not None else settings.auth.mode == "open"
