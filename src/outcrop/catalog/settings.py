"""The `[catalog]` section of the configuration: strict model IDs and models the catalog lacks.

    [catalog]
    strict = true               # refuse IDs not in the catalog, as AWS does (default: false,
                                # a well-formed ID of a known provider is served, its
                                # metadata inferred; docs/models.md)

    [[catalog.models]]          # a model the packaged catalog does not list yet
    id = "anthropic.claude-opus-5-v1:0"
    provider = "Anthropic"      # providerName
    name = "Claude Opus 5"      # modelName
    input = ["TEXT", "IMAGE"]   # default ["TEXT"]
    output = ["TEXT"]           # default ["TEXT"]; ["EMBEDDING"] for an embedding model
    streaming = true            # default: true unless output is EMBEDDING
    inference_types = ["INFERENCE_PROFILE"]   # default ["ON_DEMAND"]
    provider_model_name = "claude-opus-5"     # the `model` field of Claude answers
    lifecycle = "ACTIVE"        # or LEGACY

A configured entry wins over the packaged one with the same ID.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from outcrop.catalog.foundation import FoundationModel

Modality = Literal["TEXT", "IMAGE", "EMBEDDING", "VIDEO", "SPEECH", "AUDIO"]
InferenceType = Literal["ON_DEMAND", "PROVISIONED", "INFERENCE_PROFILE"]


class CatalogModelSettings(BaseModel):
    """One foundation model added by the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+\.[A-Za-z0-9._:-]+$")
    provider: str
    name: str
    input: tuple[Modality, ...] = ("TEXT",)
    output: tuple[Modality, ...] = ("TEXT",)
    streaming: bool | None = None
    inference_types: tuple[InferenceType, ...] = ("ON_DEMAND",)
    provider_model_name: str | None = None
    lifecycle: Literal["ACTIVE", "LEGACY"] = "ACTIVE"

    def to_model(self) -> FoundationModel:
        streaming = self.streaming if self.streaming is not None else "EMBEDDING" not in self.output
        return FoundationModel(
            model_id=self.id,
            provider_name=self.provider,
            model_name=self.name,
            input_modalities=tuple(self.input),
            output_modalities=tuple(self.output),
            streaming=streaming,
            inference_types=tuple(self.inference_types),
            lifecycle_status=self.lifecycle,
            provider_model_name=self.provider_model_name,
        )


class CatalogSettings(BaseModel):
    """`[catalog]`: see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict: bool = False
    models: list[CatalogModelSettings] = Field(default_factory=list)

    def extra_models(self) -> dict[str, FoundationModel]:
        return {entry.id: entry.to_model() for entry in self.models}
