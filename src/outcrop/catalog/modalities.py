"""Which catalog models Outcrop cannot serve because of what they output.

Outcrop generates text (and tool calls), embeddings and speech. Bedrock's image and video
generation models (Nova Canvas, Titan Image Generator, the Stability models, Nova Reel) output
only IMAGE or VIDEO, which no engine here produces: their IDs are known (they resolve, and
`ListFoundationModels` lists them), but invoking them answers a ValidationException naming the
modality, and `outcrop models` lists them as unsupported.
"""

from __future__ import annotations

from outcrop.catalog.foundation import FoundationModel

SERVED_OUTPUTS = frozenset({"TEXT", "EMBEDDING", "SPEECH"})
"""Output modalities some Outcrop engine produces."""


def unserved_output(model: FoundationModel) -> str | None:
    """The output modality (`IMAGE`, `VIDEO`) that keeps `model` from being served, or None."""
    if SERVED_OUTPUTS.intersection(model.output_modalities):
        return None
    return model.output_modalities[0] if model.output_modalities else None


def unserved_message(model: FoundationModel, modality: str) -> str:
    """The ValidationException message for invoking a model of an unserved modality."""
    kind = modality.lower()
    return (
        f"Outcrop does not serve {kind} generation: {model.model_id} ({model.model_name}) "
        f"outputs {modality}, and Outcrop generates only text, embeddings and speech."
    )
