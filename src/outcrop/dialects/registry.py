"""Which dialect reads the InvokeModel bodies of which foundation model.

A model ID (after profiles and ARNs are resolved) picks its dialect by the longest matching
prefix in `BY_MODEL_PREFIX`, falling back to `DIALECTS` by provider segment. One provider can
have several body formats (Amazon Nova vs Titan, Mistral text vs chat, Cohere Command R vs
legacy Command), hence the prefixes. Embedding models are served by services/embeddings.py.

Every provider Outcrop infers models for (catalog/inference.py) has a provider-wide dialect
here, so that an ID AWS added later reads its provider's current body format: Amazon's newest
text models take Nova's body, Cohere's Command R's, and the open-weight providers the Chat
Completions body that Bedrock documents for gpt-oss and its other open-weight models.
"""

from __future__ import annotations

from outcrop.dialects.ai21 import JambaDialect
from outcrop.dialects.anthropic import AnthropicDialect
from outcrop.dialects.base import InvokeDialect
from outcrop.dialects.cohere import CommandDialect, CommandRDialect
from outcrop.dialects.deepseek import DeepSeekDialect
from outcrop.dialects.meta import LlamaDialect
from outcrop.dialects.mistral import MistralChatDialect, MistralTextDialect
from outcrop.dialects.nova import NovaDialect
from outcrop.dialects.openai import GptOssDialect
from outcrop.dialects.titan import TitanDialect
from outcrop.dialects.writer import PalmyraDialect

DIALECTS: dict[str, InvokeDialect] = {
    "anthropic": AnthropicDialect(),
    "meta": LlamaDialect(),
    "mistral": MistralTextDialect(),
    "ai21": JambaDialect(),
    "openai": GptOssDialect(),
    # Provider-wide formats for IDs newer than the prefixes below (see the module docstring).
    "amazon": NovaDialect(),
    "cohere": CommandRDialect(),
    "deepseek": GptOssDialect(reasons=False),
    "qwen": GptOssDialect(reasons=False),
    "google": GptOssDialect(reasons=False),
    "nvidia": GptOssDialect(reasons=False),
    "minimax": GptOssDialect(reasons=False),
    "moonshot": GptOssDialect(reasons=False),
    "moonshotai": GptOssDialect(reasons=False),
    "zai": GptOssDialect(reasons=False),
    "writer": PalmyraDialect(),
}
"""Dialects by provider segment of the model ID, where one format serves the whole provider."""

BY_MODEL_PREFIX: dict[str, InvokeDialect] = {
    "amazon.nova-": NovaDialect(),
    "amazon.titan-text-": TitanDialect(),
    "amazon.titan-tg1-": TitanDialect(),
    "mistral.mistral-large-2407": MistralChatDialect(),
    "mistral.pixtral-": MistralChatDialect(),
    "cohere.command-r": CommandRDialect(),
    "cohere.command-": CommandDialect(),
    "deepseek.r1": DeepSeekDialect(reasons=True),
    "deepseek.v3": DeepSeekDialect(reasons=False),
    # Newer open-weight models take the OpenAI Chat Completions body on InvokeModel, as gpt-oss
    # does. The reference documents only gpt-oss's; these are unverified and follow it.
    "qwen.": GptOssDialect(reasons=False),
    "google.gemma-": GptOssDialect(reasons=False),
    "nvidia.nemotron-": GptOssDialect(reasons=False),
    "minimax.": GptOssDialect(reasons=False),
    "moonshot.kimi-k2-thinking": GptOssDialect(reasons=True),
    "moonshot.": GptOssDialect(reasons=False),
}
"""Dialects by model-ID prefix; the longest matching prefix wins over `DIALECTS`."""

# Models whose InvokeModel body no dialect reads: Nova Sonic speaks only the bidirectional
# stream, so InvokeModel on it is refused like any model without a dialect. TwelveLabs Pegasus
# (video input) has no dialect: its body is not served.
NOT_INVOKABLE: tuple[str, ...] = ("amazon.nova-sonic-", "amazon.nova-2-sonic-")


def dialect_for(model_id: str) -> InvokeDialect | None:
    """The dialect of a foundation model's InvokeModel bodies, or None if none is served."""
    if model_id.startswith(NOT_INVOKABLE):
        return None
    matches = [prefix for prefix in BY_MODEL_PREFIX if model_id.startswith(prefix)]
    if matches:
        return BY_MODEL_PREFIX[max(matches, key=len)]
    return DIALECTS.get(model_id.split(".", 1)[0])
