"""Catalog entries inferred for model IDs that AWS added after this catalog was written.

Bedrock keeps adding models (a new Claude, a new open-weight family) and frameworks hard-code the
newest IDs as their defaults. So a well-formed ID whose provider segment is a known text
provider (`anthropic.`, `qwen.`, `minimax.`, ...) is served without a catalog entry: its
metadata is inferred here from the ID alone and marked as inferred (`FoundationModel.inferred`),
and its body format is the provider's (dialects/registry.py). `[catalog] strict = true` turns
this off, so that, as on AWS, only catalogued IDs resolve. docs/models.md describes both.

What is inferred: the provider's display name, a model name made from the ID, text in and text
out (embeddings out when the ID names an embedding model), streaming (not for embeddings), and
the inference types: Anthropic's current models are served only through cross-region inference
profiles (`us.`, `global.`, ...), as every Claude since 3.7 is on Bedrock, so an inferred Claude
ID must be called through a profile as well; other providers' models on demand and through
profiles.
"""

from __future__ import annotations

import re

from outcrop.catalog.foundation import FoundationModel

PROVIDERS: dict[str, str] = {
    "anthropic": "Anthropic",
    "amazon": "Amazon",
    "meta": "Meta",
    "mistral": "Mistral AI",
    "cohere": "Cohere",
    "ai21": "AI21 Labs",
    "deepseek": "DeepSeek",
    "openai": "OpenAI",
    "qwen": "Qwen",
    "writer": "Writer",
    "minimax": "MiniMax",
    "moonshot": "Moonshot AI",
    "moonshotai": "Moonshot AI",
    "google": "Google",
    "nvidia": "NVIDIA",
    "zai": "Z.AI",
}
"""Provider segments of text-generating providers on Bedrock, and their `providerName`s."""

INFERRED_SUFFIX = " (inferred by Outcrop)"
"""Appended to an inferred model's `modelName`: the marker GetFoundationModel shows."""

# provider "." name, with an optional ":N" version (e.g. `-v1:0`); lowercase, as AWS's IDs are.
_WELL_FORMED = re.compile(
    r"^(?P<provider>[a-z0-9]+)\.(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*)(?::\d+)?$"
)
_VERSION_TAIL = re.compile(r"(?:-v\d+(?::\d+)?|:\d+)$")


def infer_model(model_id: str) -> FoundationModel | None:
    """A `FoundationModel` for a well-formed ID of a known provider, or None."""
    m = _WELL_FORMED.match(model_id)
    if m is None or m.group("provider") not in PROVIDERS:
        return None
    provider = m.group("provider")
    name = _VERSION_TAIL.sub("", model_id.split(".", 1)[1])
    embedding = "embed" in name
    profile_only = provider == "anthropic"
    return FoundationModel(
        model_id=model_id,
        provider_name=PROVIDERS[provider],
        model_name=_display_name(name) + INFERRED_SUFFIX,
        input_modalities=("TEXT",),
        output_modalities=("EMBEDDING",) if embedding else ("TEXT",),
        streaming=not embedding,
        inference_types=("INFERENCE_PROFILE",)
        if profile_only
        else ("ON_DEMAND", "INFERENCE_PROFILE"),
        lifecycle_status="ACTIVE",
        provider_model_name=name if provider == "anthropic" else None,
        inferred=True,
    )


def _display_name(name: str) -> str:
    """`claude-opus-4-7` → `Claude Opus 4 7`; good enough for a name nobody catalogued."""
    return " ".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)
