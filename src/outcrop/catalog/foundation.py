"""The catalog of Bedrock foundation models (IDs and public metadata), loaded from package data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any


@dataclass(frozen=True, slots=True)
class FoundationModel:
    """One Bedrock foundation model as ListFoundationModels describes it."""

    model_id: str
    provider_name: str
    model_name: str
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    streaming: bool
    inference_types: tuple[str, ...]
    lifecycle_status: str
    provider_model_name: str | None
    """The provider's own name for it (Anthropic's `model` field), where it differs."""
    inferred: bool = False
    """True for an ID that no catalog entry describes, its metadata inferred (catalog/inference)."""

    @property
    def provider(self) -> str:
        return self.model_id.split(".", 1)[0]

    @property
    def on_demand(self) -> bool:
        """False for models that Bedrock serves only through an inference profile."""
        return "ON_DEMAND" in self.inference_types

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FoundationModel:
        return cls(
            model_id=d["modelId"],
            provider_name=d["providerName"],
            model_name=d["modelName"],
            input_modalities=tuple(d["inputModalities"]),
            output_modalities=tuple(d["outputModalities"]),
            streaming=bool(d["responseStreamingSupported"]),
            inference_types=tuple(d["inferenceTypesSupported"]),
            lifecycle_status=d["modelLifecycle"]["status"],
            provider_model_name=d.get("providerModelName"),
        )


@cache
def foundation_model_records() -> dict[str, dict[str, Any]]:
    """The catalog's entries as written (the FoundationModelSummary members), by model ID."""
    raw = json.loads(files("outcrop.catalog").joinpath("foundation_models.json").read_text())
    return {d["modelId"]: d for d in raw["models"]}


@cache
def foundation_models() -> dict[str, FoundationModel]:
    """All known foundation models by model ID."""
    return {k: FoundationModel.from_json(d) for k, d in foundation_model_records().items()}
