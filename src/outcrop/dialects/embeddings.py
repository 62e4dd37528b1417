"""Embedding model bodies: Amazon Titan Text Embeddings (G1, V2) and Cohere Embed (v3, v4).

Pure translation (reference/dialects.md §2.10, §2.11): `parse` checks a request body the way
Bedrock's schema for that model does (raising its "Malformed input request" ValidationException)
and turns it into an `EmbeddingPlan` (the neutral `EmbeddingRequest` plus how to shape the
answer); `response` turns the engine's native vectors into the family's response body. How
vectors are resized, normalized and quantized is `dialects.vectors`.

Shapes, per family:

* Titan G1 (`amazon.titan-embed-text-v1`, `amazon.titan-embed-g1-text-02`): `{"inputText"}` →
  `{"embedding": [1536 floats], "inputTextTokenCount"}`; G1 vectors are not unit length.
* Titan V2 (`amazon.titan-embed-text-v2:0`): `inputText`, `dimensions` 1024|512|256 (default
  1024), `normalize` (default true), `embeddingTypes` ⊆ {float, binary} (default [float]) →
  `embedding` (always the floats), `inputTextTokenCount`, `embeddingsByType` (always present,
  holding exactly the requested types).
* Cohere Embed v3 (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`): `texts`,
  `input_type`, `truncate` NONE|START|END, `embedding_types` → without types
  `{"embeddings": [[1024 floats]...], "id", "response_type": "embeddings_floats", "texts"}`,
  with types `{"embeddings": {"float": [...], "int8": [...]}, ..., "response_type":
  "embeddings_by_type"}`; `id` is the request ID and `texts` are echoed lower-cased (both as
  captured from real traffic).
* Cohere Embed v4 (`cohere.embed-v4:0`): also `output_dimension` 256|512|1024|1536 (default
  1536), `max_tokens`, `truncate` NONE|LEFT|RIGHT and `inputs` (interleaved content; text parts
  only here); the answer is always the by-type form [unverified beyond client libraries].

`input_type` is validated but does not change the vector: the local model has no such prompts.
Images cannot be embedded by the local text model and are refused with a ValidationException.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from outcrop.dialects import vectors
from outcrop.dialects.schema import Field, check_object, items, malformed, type_name
from outcrop.types import EmbeddingRequest, TextEmbedding, Truncation
from outcrop.wire.errors import ValidationException

TITAN_MAX_TOKENS = 8192
"""Titan Text Embeddings' input limit (both generations)."""
COHERE_V3_MAX_TOKENS = 512
COHERE_V4_DEFAULT_MAX_TOKENS = 128_000
COHERE_MAX_TEXTS = 96
COHERE_MAX_TEXT_CHARS = 2048

# Bedrock's message for a Cohere text over the model's token limit with truncate NONE
# (issue run-llama/llama_index#14118).
INPUT_TOO_LONG = "Input is too long for requested model."

# Wording unverified: Bedrock embeds images with these models; the local text model cannot.
IMAGES_UNSUPPORTED = (
    "Outcrop's local embedding model embeds text only; image inputs are not supported."
)

OutputType = Literal["float", "binary", "int8", "uint8", "ubinary"]


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    """A checked embedding request: what to embed and how to shape the answer."""

    request: EmbeddingRequest
    dimensions: int
    normalize: bool
    types: tuple[OutputType, ...]
    by_type: bool
    """Cohere: answer in the `embeddings_by_type` form (types were asked for, or v4)."""
    echo_texts: tuple[str, ...] = ()


class EmbeddingDialect(Protocol):
    """Body format of one embedding model family (InvokeModel only)."""

    def parse(self, body: dict[str, Any]) -> EmbeddingPlan:
        """Check and translate a request body; raise ValidationException as Bedrock would."""
        ...

    def response(
        self, plan: EmbeddingPlan, embeddings: Sequence[TextEmbedding], request_id: str
    ) -> dict[str, Any]:
        """The response body for the engine's native vectors."""
        ...

    def input_too_long(self, tokens: int, limit: int) -> ValidationException:
        """The error for a text over the token limit (when truncation is not allowed)."""
        ...


# -- Titan --------------------------------------------------------------------------------------


def _titan_malformed(problems: list[str]) -> ValidationException:
    # Titan's captured messages carry no JSON pointer ("extraneous key [textGenerationConfig]
    # is not permitted", "expected minLength: 1, actual: 0"): everit's getErrorMessage(), which
    # for several violations reads "N schema violations found" [inferred from everit].
    if len(problems) == 1:
        return malformed([problems[0].split(": ", 1)[1]])
    return malformed([f"{len(problems)} schema violations found"])


def _check_length(value: Any, pointer: str, minimum: int | None, maximum: int | None) -> list[str]:
    if not isinstance(value, str):
        return []
    if minimum is not None and len(value) < minimum:
        return [f"{pointer}: expected minLength: {minimum}, actual: {len(value)}"]
    if maximum is not None and len(value) > maximum:
        return [f"{pointer}: expected maxLength: {maximum}, actual: {len(value)}"]
    return []


def _check_enum_items(value: Any, pointer: str, allowed: Sequence[str]) -> list[str]:
    if not isinstance(value, list):
        return []
    problems: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(f"{pointer}/{i}: expected type: String, found: {type_name(item)}")
        elif item not in allowed:
            problems.append(f"{pointer}/{i}: {item} is not a valid enum value")
    return problems


def _check_int_enum(value: Any, pointer: str, allowed: Sequence[int]) -> list[str]:
    # An integral float (`1e308`) passes the integer type check, so it is checked here too.
    if isinstance(value, int | float) and not isinstance(value, bool) and value not in allowed:
        shown = int(value) if float(value).is_integer() else value
        return [f"{pointer}: {shown} is not a valid enum value"]
    return []


_TITAN_G1_FIELDS: dict[str, Field] = {"inputText": Field("string", required=True)}

_TITAN_V2_FIELDS: dict[str, Field] = {
    "inputText": Field("string", required=True),
    "dimensions": Field("integer"),
    "normalize": Field("boolean"),
    "embeddingTypes": Field("array"),
}


class TitanEmbeddings:
    """Amazon Titan Text Embeddings, G1 (`v2=False`) or V2."""

    def __init__(self, v2: bool) -> None:
        self.v2 = v2

    def parse(self, body: dict[str, Any]) -> EmbeddingPlan:
        fields = _TITAN_V2_FIELDS if self.v2 else _TITAN_G1_FIELDS
        problems = check_object(body, fields)
        problems += _check_length(
            body.get("inputText"), "#/inputText", 1, 50_000 if self.v2 else None
        )
        if self.v2:
            problems += _check_int_enum(body.get("dimensions"), "#/dimensions", (256, 512, 1024))
            problems += _check_enum_items(
                body.get("embeddingTypes"), "#/embeddingTypes", ("float", "binary")
            )
        if problems:
            raise _titan_malformed(problems)
        request = EmbeddingRequest((body["inputText"],), TITAN_MAX_TOKENS, "error")
        if not self.v2:
            return EmbeddingPlan(request, 1536, normalize=False, types=("float",), by_type=False)
        types: tuple[OutputType, ...] = tuple(
            dict.fromkeys(body.get("embeddingTypes") or ["float"])
        )
        return EmbeddingPlan(
            request,
            int(body.get("dimensions", 1024)),
            normalize=bool(body.get("normalize", True)),
            types=types,
            by_type=True,
        )

    def response(
        self, plan: EmbeddingPlan, embeddings: Sequence[TextEmbedding], request_id: str
    ) -> dict[str, Any]:
        shaped = _shaped(plan, embeddings)
        floats = vectors.floats(shaped)[0]
        body: dict[str, Any] = {
            "embedding": floats,
            "inputTextTokenCount": embeddings[0].input_tokens,
        }
        if self.v2:
            by_type: dict[str, Any] = {}
            for kind in plan.types:
                by_type[kind] = floats if kind == "float" else vectors.bits(shaped)[0]
            body["embeddingsByType"] = by_type
        return body

    def input_too_long(self, tokens: int, limit: int) -> ValidationException:
        # Verbatim from Bedrock (issue aws-samples/amazon-bedrock-workshop#136).
        return ValidationException(
            f"400 Bad Request: Too many input tokens. Max input tokens: {limit}, "
            f"request input token count: {tokens}"
        )


# -- Cohere -------------------------------------------------------------------------------------

_COHERE_TYPES: tuple[OutputType, ...] = ("float", "int8", "uint8", "binary", "ubinary")
_V3_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
_V4_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")

_COHERE_V3_FIELDS: dict[str, Field] = {
    "texts": Field("array", required=True),
    "input_type": Field("string", required=True, enum=_V3_INPUT_TYPES),
    "truncate": Field("string", enum=("NONE", "START", "END")),
    "embedding_types": Field("array"),
    "images": Field("array"),
}

_COHERE_V4_FIELDS: dict[str, Field] = {
    "input_type": Field("string", required=True, enum=_V4_INPUT_TYPES),
    "texts": Field("array"),
    "images": Field("array"),
    "inputs": Field("array"),
    "embedding_types": Field("array"),
    "output_dimension": Field("integer"),
    "max_tokens": Field("integer", minimum=1),
    "truncate": Field("string", enum=("NONE", "LEFT", "RIGHT")),
}

_TRUNCATION: Mapping[str, Truncation] = {
    "NONE": "error",
    "START": "drop_start",
    "END": "drop_end",
    "LEFT": "drop_start",
    "RIGHT": "drop_end",
}


def _check_texts(value: Any, pointer: str, max_chars: int | None) -> list[str]:
    if not isinstance(value, list):
        return []
    problems: list[str] = []
    if len(value) > COHERE_MAX_TEXTS:
        problems.append(
            f"{pointer}: expected maximum item count: {COHERE_MAX_TEXTS}, found: {len(value)}"
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(f"{pointer}/{i}: expected type: String, found: {type_name(item)}")
        else:
            problems += _check_length(item, f"{pointer}/{i}", None, max_chars)
    return problems


def _input_texts(inputs: list[Any]) -> tuple[list[str], list[str]]:
    """The text of each v4 `inputs` item (its text parts joined), and any problems."""
    texts: list[str] = []
    problems: list[str] = []
    for i, item in enumerate(inputs):
        content = item.get("content") if isinstance(item, dict) else None
        if not isinstance(content, list):
            problems.append(f"#/inputs/{i}: required key [content] not found")
            continue
        parts: list[str] = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "image_url":
                raise ValidationException(IMAGES_UNSUPPORTED)
            if not (isinstance(part, dict) and part.get("type") == "text"):
                problems.append(f"#/inputs/{i}/content/{j}: required key [type] not found")
            elif not isinstance(part.get("text"), str):
                problems.append(f"#/inputs/{i}/content/{j}: required key [text] not found")
            else:
                parts.append(part["text"])
        texts.append("\n".join(parts))
    return texts, problems


class CohereEmbeddings:
    """Cohere Embed v3 (English, Multilingual) or v4."""

    def __init__(self, v4: bool) -> None:
        self.v4 = v4

    def parse(self, body: dict[str, Any]) -> EmbeddingPlan:
        problems = check_object(body, _COHERE_V4_FIELDS if self.v4 else _COHERE_V3_FIELDS)
        problems += _check_texts(
            body.get("texts"), "#/texts", None if self.v4 else COHERE_MAX_TEXT_CHARS
        )
        problems += _check_enum_items(
            body.get("embedding_types"), "#/embedding_types", _COHERE_TYPES
        )
        if self.v4:
            problems += _check_int_enum(
                body.get("output_dimension"), "#/output_dimension", (256, 512, 1024, 1536)
            )
        texts: list[str] = list(items(body.get("texts")))
        if self.v4 and isinstance(body.get("inputs"), list):
            input_texts, input_problems = _input_texts(body["inputs"])
            texts += input_texts
            problems += input_problems
        if body.get("images"):
            # `texts` is not required when images are given; the images themselves are refused.
            problems = [p for p in problems if p != "#: required key [texts] not found"]
            if not problems:
                raise ValidationException(IMAGES_UNSUPPORTED)
        if problems:
            raise malformed(problems)
        requested = body.get("embedding_types")
        types: tuple[OutputType, ...] = tuple(dict.fromkeys(requested or ["float"]))
        truncate = body.get("truncate", "NONE")
        limit = (
            int(body.get("max_tokens", COHERE_V4_DEFAULT_MAX_TOKENS))
            if self.v4
            else (COHERE_V3_MAX_TOKENS)
        )
        return EmbeddingPlan(
            EmbeddingRequest(tuple(texts), limit, _TRUNCATION[truncate]),
            int(body.get("output_dimension", 1536)) if self.v4 else 1024,
            normalize=True,
            types=types,
            by_type=self.v4 or bool(requested),
            # Real v3 answers echo the texts lower-cased [cap C6]; v4's echo is unverified.
            echo_texts=tuple(texts) if self.v4 else tuple(t.lower() for t in texts),
        )

    def response(
        self, plan: EmbeddingPlan, embeddings: Sequence[TextEmbedding], request_id: str
    ) -> dict[str, Any]:
        shaped = _shaped(plan, embeddings)
        if not plan.by_type:
            return {
                "embeddings": vectors.floats(shaped),
                "id": request_id,
                "response_type": "embeddings_floats",
                "texts": list(plan.echo_texts),
            }
        encoders = {
            "float": vectors.floats,
            "int8": vectors.int8,
            "uint8": vectors.uint8,
            "binary": vectors.binary,
            "ubinary": vectors.ubinary,
        }
        return {
            "embeddings": {kind: encoders[kind](shaped) for kind in plan.types},
            "id": request_id,
            # The by-type response_type string is Cohere's own; unverified on Bedrock.
            "response_type": "embeddings_by_type",
            "texts": list(plan.echo_texts),
        }

    def input_too_long(self, tokens: int, limit: int) -> ValidationException:
        return ValidationException(INPUT_TOO_LONG)


def _shaped(plan: EmbeddingPlan, embeddings: Sequence[TextEmbedding]) -> vectors.Vectors:
    native = np.array([e.vector for e in embeddings], dtype=np.float64)
    if native.size == 0:
        return np.zeros((0, plan.dimensions))
    return vectors.shape(native, plan.dimensions, plan.normalize)


# -- registry -----------------------------------------------------------------------------------

EMBEDDING_DIALECTS: dict[str, EmbeddingDialect] = {
    "amazon.titan-embed-text-v1": TitanEmbeddings(v2=False),
    "amazon.titan-embed-g1-text-02": TitanEmbeddings(v2=False),
    "amazon.titan-embed-text-v2:0": TitanEmbeddings(v2=True),
    "cohere.embed-english-v3": CohereEmbeddings(v4=False),
    "cohere.embed-multilingual-v3": CohereEmbeddings(v4=False),
    "cohere.embed-v4:0": CohereEmbeddings(v4=True),
}
"""Embedding dialects by base model ID (provisioned-throughput variants share the base's)."""


def embedding_dialect(model_id: str) -> EmbeddingDialect | None:
    """The dialect for a base model ID, also for provisioned-throughput variants of it.

    Variants append ":<version>:<context>" (`amazon.titan-embed-text-v1:2:8k`,
    `cohere.embed-english-v3:0:512`); their bodies are the base model's.
    """
    candidate = model_id
    while True:
        found = EMBEDDING_DIALECTS.get(candidate)
        if found is not None or ":" not in candidate:
            return found
        candidate = candidate.rsplit(":", 1)[0]
