"""Resolution of a request's model identifier to a catalog entry and the engine that serves it.

The user's configuration supplies aliases (ARNs of application inference profiles, provisioned
or imported models → base model IDs), extra model IDs unknown to the catalog (`[[catalog.models]]`),
and routes (glob patterns over base model IDs → engine names). Without configuration every known
model is served by the engine named `default`. A well-formed ID of a known provider that no entry
describes resolves to an inferred entry (catalog/inference.py), unless `strict` (as on AWS).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from outcrop.catalog.foundation import FoundationModel, foundation_models
from outcrop.catalog.identifiers import ModelRef, parse_identifier
from outcrop.catalog.inference import infer_model


class UnknownModel(LookupError):
    """The identifier names no model this server knows."""


class OnDemandNotSupported(LookupError):
    """A profile-only model was invoked by its base ID (Bedrock refuses on-demand throughput)."""

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.model_id = model_id


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Models whose base ID matches `pattern` (a glob) are served by engine `engine`."""

    pattern: str
    engine: str


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    ref: ModelRef
    model: FoundationModel
    engine: str


@dataclass(slots=True)
class Resolver:
    """Maps identifiers to served models; immutable after construction."""

    routes: Sequence[ModelRoute] = (ModelRoute("*", "default"),)
    aliases: Mapping[str, str] = field(default_factory=dict)
    extra_models: Mapping[str, FoundationModel] = field(default_factory=dict)
    strict: bool = False
    """Refuse IDs that neither the catalog nor the configuration lists (no inference)."""

    def resolve(self, identifier: str) -> ResolvedModel:
        ref = parse_identifier(identifier, self.aliases)
        if ref is None:
            raise UnknownModel(identifier)
        model = self.model_for(ref.base_model_id)
        if model is None:
            raise UnknownModel(identifier)
        if ref.kind in ("base", "foundation-model-arn") and not model.on_demand:
            raise OnDemandNotSupported(model.model_id)
        engine = self.engine_for(model.model_id)
        if engine is None:
            raise UnknownModel(identifier)
        return ResolvedModel(ref, model, engine)

    def model_for(self, model_id: str) -> FoundationModel | None:
        """The configured or catalogued model with this base ID, else (unless strict) one
        inferred from the ID, else None."""
        model = self.extra_models.get(model_id) or foundation_models().get(model_id)
        if model is None and not self.strict:
            model = infer_model(model_id)
        return model

    def engine_for(self, model_id: str) -> str | None:
        for route in self.routes:
            if fnmatch.fnmatchcase(model_id, route.pattern):
                return route.engine
        return None

    def known_models(self) -> dict[str, FoundationModel]:
        """The catalog's models plus those the configuration adds, by model ID."""
        return {**foundation_models(), **self.extra_models}

    def served_models(self) -> dict[str, str]:
        """Every served base model ID and its engine name."""
        served: dict[str, str] = {}
        for model_id in self.known_models():
            engine = self.engine_for(model_id)
            if engine is not None:
                served[model_id] = engine
        return served
