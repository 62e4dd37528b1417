"""Client-side knowledge of native Bedrock bodies, for `outcrop invoke` and `outcrop bench`.

Pure functions: the request body a plain text prompt becomes for a model family, the text a
streamed chunk carries (InvokeModelWithResponseStream chunks of each family, ConverseStream
events), and the usage a stream reports at its end (`amazon-bedrock-invocationMetrics` in the
last chunk of every family; `metadata` in ConverseStream). Shapes follow
shared/reference/dialects.md §2 and §3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outcrop.catalog.foundation import foundation_models
from outcrop.catalog.identifiers import parse_identifier

ANTHROPIC_VERSION = "bedrock-2023-05-31"
CHAT_COMPLETIONS = frozenset(
    {
        "openai",
        "ai21",
        "qwen",
        "google",
        "nvidia",
        "minimax",
        "moonshot",
        "moonshotai",
        "zai",
        "writer",
    }
)
"""Providers whose InvokeModel body is OpenAI Chat Completions (`messages`, `max_tokens`)."""
KNOWN_PROVIDERS = frozenset(model_id.split(".", 1)[0] for model_id in foundation_models()) | {
    "amazon.nova",
    "amazon.titan",
}


@dataclass(frozen=True, slots=True)
class StreamUsage:
    """What a stream reported about itself at the end (server-measured)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None
    first_byte_ms: int | None = None


class NoDefaultBody(ValueError):
    """Outcrop knows no native body for the model's family; the user must supply one."""


def family(model_id: str) -> str:
    """The body family of an identifier: `anthropic`, `amazon.nova`, `amazon.titan`, `meta`..."""
    ref = parse_identifier(model_id, {})
    base = ref.base_model_id if ref is not None else model_id
    provider, _, rest = base.partition(".")
    if provider == "amazon":
        if rest.startswith("nova"):
            return "amazon.nova"
        if rest.startswith("titan-text") or rest.startswith("titan-tg1"):
            return "amazon.titan"
    return provider


def default_body(
    model_id: str,
    prompt: str,
    max_tokens: int,
    *,
    system: str | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The native InvokeModel body asking `model_id` to answer `prompt`."""
    kind = family(model_id)
    if kind == "anthropic":
        body: dict[str, Any] = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
        if system is not None:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = temperature
        return body
    if kind == "amazon.nova":
        config: dict[str, Any] = {"maxTokens": max_tokens}
        if temperature is not None:
            config["temperature"] = temperature
        body = {
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": config,
        }
        if system is not None:
            body["system"] = [{"text": system}]
        return body
    if kind == "amazon.titan":
        text_config: dict[str, Any] = {"maxTokenCount": max_tokens}
        if temperature is not None:
            text_config["temperature"] = temperature
        text = f"{system}\n\n" if system else ""
        return {"inputText": f"{text}User: {prompt}\nBot:", "textGenerationConfig": text_config}
    if kind == "meta":
        body = {"prompt": _llama3_prompt(prompt, system), "max_gen_len": max_tokens}
    elif kind in CHAT_COMPLETIONS or (kind == "mistral" and _mistral_chat(model_id)):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        limit = "max_completion_tokens" if kind == "openai" else "max_tokens"
        body = {"messages": messages, limit: max_tokens}
    elif kind == "mistral":
        text = f"{system}\n\n{prompt}" if system else prompt
        body = {"prompt": f"<s>[INST] {text} [/INST]", "max_tokens": max_tokens}
    elif kind == "cohere" and "command-r" in model_id:
        body = {"message": prompt, "max_tokens": max_tokens}
        if system:
            body["preamble"] = system
    elif kind == "cohere":  # legacy Command
        text = f"{system}\n\n{prompt}" if system else prompt
        body = {"prompt": text, "max_tokens": max_tokens}
    elif kind == "deepseek":
        body = {"prompt": prompt, "max_tokens": max_tokens}
    elif kind in KNOWN_PROVIDERS:
        raise NoDefaultBody(
            f"no default request body for {kind} models; pass --body FILE or use --converse"
        )
    else:
        # Not a provider Bedrock has: any body will do, the server judges the identifier.
        return default_body(
            "anthropic.x", prompt, max_tokens, system=system, temperature=temperature
        )
    if temperature is not None:
        body["temperature"] = temperature
    return body


def _mistral_chat(model_id: str) -> bool:
    return any(name in model_id for name in ("large-2407", "large-2411", "pixtral"))


def converse_request(
    prompt: str, max_tokens: int, *, system: str | None = None, temperature: float | None = None
) -> dict[str, Any]:
    """The Converse / ConverseStream members (without modelId) for a plain text prompt."""
    config: dict[str, Any] = {"maxTokens": max_tokens}
    if temperature is not None:
        config["temperature"] = temperature
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": config,
    }
    if system is not None:
        request["system"] = [{"text": system}]
    return request


def chunk_text(chunk: Mapping[str, Any]) -> str | None:
    """The generated text an InvokeModelWithResponseStream chunk carries, if any."""
    kind = chunk.get("type")
    if kind == "content_block_delta":  # Anthropic Messages
        delta = chunk.get("delta") or {}
        text = delta.get("text")
        return text if isinstance(text, str) else None
    if kind is not None and kind != "completion":
        return None
    for key in ("completion", "outputText", "generation", "text"):  # Claude v2, Titan, Llama
        value = chunk.get(key)
        if isinstance(value, str):
            return value
    nova = chunk.get("contentBlockDelta")
    if isinstance(nova, Mapping):
        return converse_text({"contentBlockDelta": nova})
    generations = chunk.get("generations")  # legacy Cohere Command: the whole answer at once
    if isinstance(generations, list) and generations and isinstance(generations[0], Mapping):
        value = generations[0].get("text")
        return value if isinstance(value, str) else None
    outputs = chunk.get("outputs")  # Mistral completions
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], Mapping):
        value = outputs[0].get("text")
        return value if isinstance(value, str) else None
    choices = chunk.get("choices")  # OpenAI-style families
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        choice = choices[0]
        for holder in (choice.get("delta"), choice.get("message"), choice):
            if isinstance(holder, Mapping):
                value = holder.get("content", holder.get("text"))
                if isinstance(value, str):
                    return value
    return None


def converse_text(event: Mapping[str, Any]) -> str | None:
    """The text a ConverseStream event carries (`{"contentBlockDelta": {...}}`), if any."""
    block = event.get("contentBlockDelta")
    if not isinstance(block, Mapping):
        return None
    delta = block.get("delta")
    if not isinstance(delta, Mapping):
        return None
    text = delta.get("text")
    return text if isinstance(text, str) else None


def chunk_usage(chunk: Mapping[str, Any]) -> StreamUsage | None:
    """Usage from a chunk's `amazon-bedrock-invocationMetrics` (the last chunk of a stream)."""
    metrics = chunk.get("amazon-bedrock-invocationMetrics")
    if not isinstance(metrics, Mapping):
        return None
    return StreamUsage(
        _int(metrics.get("inputTokenCount")),
        _int(metrics.get("outputTokenCount")),
        _int(metrics.get("invocationLatency")),
        _int(metrics.get("firstByteLatency")),
    )


def converse_usage(event: Mapping[str, Any]) -> StreamUsage | None:
    """Usage from a ConverseStream `metadata` event."""
    metadata = event.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    usage = metadata.get("usage") or {}
    metrics = metadata.get("metrics") or {}
    return StreamUsage(
        _int(usage.get("inputTokens")),
        _int(usage.get("outputTokens")),
        _int(metrics.get("latencyMs")),
        None,
    )


def _llama3_prompt(prompt: str, system: str | None) -> str:
    turns = "<|begin_of_text|>"
    if system:
        turns += f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
    turns += f"<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    return turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
