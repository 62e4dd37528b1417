"""InvokeModel on embedding models (Titan Text Embeddings, Cohere Embed).

Embedding model IDs are always computed by the embedding engine (a real sentence-embedding
model, see `engines/embeddings.py`), whatever engine serves the text models: a text engine
cannot embed, and the scripted engine's purpose (deterministic text) is served as well by a
deterministic model. The family's dialect checks the body and shapes the answer; engine
failures become Bedrock's errors here. Embedding models do not stream (the runtime service
refuses InvokeModelWithResponseStream for them before anything else).

Response headers, as captured for Cohere Embed: `X-Amzn-Bedrock-Invocation-Latency` and
`X-Amzn-Bedrock-Input-Token-Count` (the sum over the texts); no output token count.
"""

from __future__ import annotations

import json
from typing import Any

from outcrop.catalog.foundation import FoundationModel
from outcrop.catalog.resolver import ResolvedModel
from outcrop.dialects.embeddings import embedding_dialect
from outcrop.engines.base import EngineError, EngineUnavailable
from outcrop.engines.embeddings import EmbeddingEngine, EmbeddingInputTooLong
from outcrop.services.base import RequestContext, Response
from outcrop.wire.errors import (
    ModelErrorException,
    NotImplementedYet,
    ServiceUnavailableException,
)


def is_embedding_model(model: FoundationModel) -> bool:
    return "EMBEDDING" in model.output_modalities


class EmbeddingService:
    """Answers InvokeModel for embedding model IDs from one embedding engine."""

    def __init__(self, engine: EmbeddingEngine) -> None:
        self.engine = engine

    async def invoke(
        self, ctx: RequestContext, resolved: ResolvedModel, body: dict[str, Any]
    ) -> Response:
        model_id = resolved.model.model_id
        dialect = embedding_dialect(model_id)
        if dialect is None:
            raise NotImplementedYet(
                f"Outcrop does not serve the {resolved.model.provider_name} embedding body "
                f"format for {model_id} yet."
            )
        plan = dialect.parse(body)
        ctx.record.model_id = model_id
        try:
            embeddings = await self.engine.embed(plan.request)
        except EmbeddingInputTooLong as exc:
            raise dialect.input_too_long(exc.tokens, exc.limit) from None
        except EngineUnavailable as exc:
            raise ServiceUnavailableException(
                f"Bedrock is unable to process your request. {exc}"
            ) from None
        except EngineError as exc:
            raise ModelErrorException(
                f"The model failed to process the request: {exc}",
                original_status_code=500,
                resource_name=model_id,
            ) from None
        answer = dialect.response(plan, embeddings, ctx.request_id)
        input_tokens = sum(e.input_tokens for e in embeddings)
        ctx.record.input_tokens = input_tokens
        headers = [
            ("Content-Type", "application/json"),
            ("X-Amzn-Bedrock-Invocation-Latency", str(ctx.elapsed_ms())),
            ("X-Amzn-Bedrock-Input-Token-Count", str(input_tokens)),
        ]
        return Response(json.dumps(answer, ensure_ascii=False).encode(), headers)
