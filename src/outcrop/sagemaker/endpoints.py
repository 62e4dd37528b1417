"""SageMaker endpoints as configured, and the routing rules of an invocation.

Pure data and decisions, no I/O: `EndpointRegistry` turns `SageMakerSettings` into endpoints,
each with production variants (weights, instance counts, one container or several in Direct
invocation mode) and inference components, and `route` applies SageMaker's rules to an
invocation's headers (TargetModel, InferenceComponentName, TargetVariant,
TargetContainerHostname), raising the `ValidationError` a real endpoint answers. Without
configured endpoints, any endpoint name is served by the default engine.

Messages marked "unverified" below are Outcrop's wording where real SageMaker's is not known;
the SDKs key on the error type and status, which are SageMaker's.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from outcrop.config import ContainerSettings, EndpointSettings, SageMakerSettings
from outcrop.wire.errors import SageMakerValidationError

PRIMARY = "primary"
"""The hostname SageMaker names a variant's only container by in ModelError messages."""

DialectChoice = Literal["auto", "tgi", "lmi", "openai"]

# Seen from real SageMaker (copied by third parties; wording as they quote it).
IC_REQUIRED = (
    "Inference Component Name header is required for endpoints to which you plan to deploy "
    "inference components. Please include Inference Component Name header or consider using "
    "SageMaker models."
)
IC_NOT_ALLOWED = (
    "Inference Component Name header is not allowed for endpoints to which you dont plan to "
    "deploy inference components. Please remove the Inference Component Name header and try "
    "again."
)


def endpoint_not_found(name: str, account: str) -> SageMakerValidationError:
    # Real SageMaker's wording.
    return SageMakerValidationError(f"Endpoint {name} of account {account} not found.")


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container: an engine behind a dialect, or real containers' URLs (per instance)."""

    hostname: str
    engine: str | None = None
    dialect: DialectChoice = "auto"
    urls: tuple[str, ...] = ()
    models_dir: Path | None = None
    """A multi-model container (its engine is the template; sagemaker/multi_model.py)."""
    max_loaded_models: int = 4

    @property
    def kind(self) -> str:
        return "engine" if self.engine is not None else "container"


@dataclass(frozen=True, slots=True)
class VariantSpec:
    name: str
    weight: float
    instance_count: int
    per_instance: int | None
    containers: Mapping[str, ContainerSpec]
    direct: bool
    """Several containers in Direct invocation mode: TargetContainerHostname picks one."""


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    name: str
    variant: str
    copies: int
    container: ContainerSpec


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    name: str
    variants: tuple[VariantSpec, ...]
    components: Mapping[str, ComponentSpec]
    invocation_timeout_s: float
    session_ttl_s: float
    async_output_path: str | None = None
    async_failure_path: str | None = None
    configured: bool = True
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def variant(self, name: str) -> VariantSpec | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def multi_model(self) -> bool:
        """A multi-model endpoint: its variants' containers load models by TargetModel."""
        return any(c.models_dir is not None for v in self.variants for c in v.containers.values())


@dataclass(frozen=True, slots=True)
class Route:
    """Where one invocation goes."""

    endpoint: EndpointSpec
    variant: VariantSpec
    container: ContainerSpec
    component: ComponentSpec | None = None

    @property
    def pool_key(self) -> tuple[str, str]:
        """The capacity pool serving this route (a variant's instances, or a component's
        copies)."""
        if self.component is not None:
            return self.endpoint.name, f"component:{self.component.name}"
        return self.endpoint.name, f"variant:{self.variant.name}"

    @property
    def capacity(self) -> tuple[int, int | None]:
        """(instances, concurrent invocations per instance) of the pool."""
        if self.component is not None:
            return self.component.copies, 1
        return self.variant.instance_count, self.variant.per_instance


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The routing headers of one invocation."""

    endpoint: str
    target_variant: str | None = None
    target_container: str | None = None
    inference_component: str | None = None
    target_model: str | None = None


class EndpointRegistry:
    """The endpoints served, configured or (without configuration) made on first use."""

    def __init__(self, settings: SageMakerSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.on_created: Callable[[EndpointSpec], None] | None = None
        """Called with each endpoint made on first use (unconfigured mode)."""
        self.on_evicted: list[Callable[[EndpointSpec], None]] = []
        """Called with each endpoint made on first use that was dropped to stay under
        `max_unconfigured_endpoints` (names are the client's choice: never unbounded)."""
        self._configured = {
            name: _endpoint(name, cfg, settings) for name, cfg in settings.endpoints.items()
        }
        self._defaults: OrderedDict[str, EndpointSpec] = OrderedDict()

    @property
    def serves_any_name(self) -> bool:
        return not self._configured

    def known(self, name: str) -> EndpointSpec | None:
        """The endpoint if configured or already made, without making one."""
        return self._configured.get(name) or self._defaults.get(name)

    def endpoints(self) -> list[EndpointSpec]:
        return [*self._configured.values(), *self._defaults.values()]

    def get(self, name: str) -> EndpointSpec:
        """The endpoint `name`, or SageMaker's not-found ValidationError."""
        found = self._configured.get(name)
        if found is not None:
            return found
        found = self._defaults.get(name)
        if found is not None:
            self._defaults.move_to_end(name)
            return found
        if not self.serves_any_name:
            raise endpoint_not_found(name, self.settings.account_id)
        while len(self._defaults) >= self.settings.max_unconfigured_endpoints:
            _, evicted = self._defaults.popitem(last=False)  # the least recently used
            for forget in self.on_evicted:
                forget(evicted)
        spec = self._default_endpoint(name)
        self._defaults[name] = spec
        if self.on_created is not None:
            self.on_created(spec)
        return spec

    def route(self, request: RouteRequest) -> Route:
        endpoint = self.get(request.endpoint)
        if request.target_model is not None and not endpoint.multi_model:
            # Real SageMaker's wording for endpoints that are not multi-model endpoints.
            raise SageMakerValidationError(
                f"Endpoint {endpoint.name} is not a multi-model endpoint and does not support "
                "target model header."
            )
        if request.target_model is None and endpoint.multi_model:
            # Unverified wording.
            raise SageMakerValidationError(
                f"Endpoint {endpoint.name} is a multi-model endpoint: the request must name a "
                "model with the TargetModel header."
            )
        if endpoint.components:
            if request.inference_component is None:
                raise SageMakerValidationError(IC_REQUIRED)
            component = endpoint.components.get(request.inference_component)
            if component is None:
                # Unverified wording.
                raise SageMakerValidationError(
                    f"Inference component {request.inference_component} not found for endpoint "
                    f"{endpoint.name}."
                )
            variant = endpoint.variant(component.variant) or endpoint.variants[0]
            return Route(endpoint, variant, component.container, component)
        if request.inference_component is not None:
            raise SageMakerValidationError(IC_NOT_ALLOWED)
        variant = self._variant(endpoint, request.target_variant)
        return Route(endpoint, variant, self._container(endpoint, variant, request))

    def _variant(self, endpoint: EndpointSpec, target: str | None) -> VariantSpec:
        if target is not None:
            variant = endpoint.variant(target)
            if variant is None:
                # Unverified wording.
                raise SageMakerValidationError(
                    f"Target variant {target} not found for endpoint {endpoint.name}."
                )
            return variant
        variants = endpoint.variants
        weights = [v.weight for v in variants]
        if len(variants) == 1:
            return variants[0]
        if sum(weights) <= 0:
            return self.rng.choice(variants)
        return self.rng.choices(variants, weights=weights)[0]

    @staticmethod
    def _container(
        endpoint: EndpointSpec, variant: VariantSpec, request: RouteRequest
    ) -> ContainerSpec:
        hostname = request.target_container
        if not variant.direct:
            if hostname is not None:
                # Unverified wording.
                raise SageMakerValidationError(
                    f"Endpoint {endpoint.name} is not a multi-container endpoint in Direct "
                    "invocation mode and does not support target container hostname header."
                )
            return next(iter(variant.containers.values()))
        if hostname is None:
            # Unverified wording.
            raise SageMakerValidationError(
                f"Endpoint {endpoint.name} is a multi-container endpoint in Direct invocation "
                "mode; the target container hostname header is required."
            )
        container = variant.containers.get(hostname)
        if container is None:
            # Unverified wording.
            raise SageMakerValidationError(
                f"Target container hostname {hostname} not found for endpoint {endpoint.name} "
                f"variant {variant.name}."
            )
        return container

    def _default_endpoint(self, name: str) -> EndpointSpec:
        container = ContainerSpec(PRIMARY, engine=self.settings.default_engine)
        variant = VariantSpec("AllTraffic", 1.0, 1, None, {PRIMARY: container}, direct=False)
        return EndpointSpec(
            name,
            (variant,),
            {},
            self.settings.invocation_timeout_s,
            self.settings.session_ttl_s,
            configured=False,
        )


def _container(hostname: str, cfg: ContainerSettings) -> ContainerSpec:
    urls: tuple[str, ...] = ()
    if cfg.url is not None:
        urls = tuple([cfg.url] if isinstance(cfg.url, str) else cfg.url)
        urls = tuple(u.rstrip("/") for u in urls)
    return ContainerSpec(
        hostname, cfg.engine, cfg.dialect, urls, cfg.models_dir, cfg.max_loaded_models
    )


def _endpoint(name: str, cfg: EndpointSettings, settings: SageMakerSettings) -> EndpointSpec:
    variants = []
    for v in cfg.variants:
        if v.containers:
            containers = {h: _container(h, c) for h, c in v.containers.items()}
            direct = len(containers) > 1
        else:
            containers = {PRIMARY: _container(PRIMARY, v)}
            direct = False
        variants.append(
            VariantSpec(
                v.name,
                v.weight,
                v.instance_count,
                v.max_concurrent_invocations_per_instance,
                containers,
                direct,
            )
        )
    components = {
        ic_name: ComponentSpec(
            ic_name, ic.variant or variants[0].name, ic.copies, _container(PRIMARY, ic)
        )
        for ic_name, ic in cfg.inference_components.items()
    }
    return EndpointSpec(
        name,
        tuple(variants),
        components,
        cfg.invocation_timeout_s or settings.invocation_timeout_s,
        cfg.session_ttl_s or settings.session_ttl_s,
        cfg.async_output_path,
        cfg.async_failure_path,
    )
