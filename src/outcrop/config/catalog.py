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

A configured entry wins over the packaged one with the same ID
(`catalog.foundation.configured_models` turns the entries into catalog models).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class CatalogSettings(BaseModel):
    """`[catalog]`: see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict: bool = False
    models: list[CatalogModelSettings] = Field(default_factory=list)
