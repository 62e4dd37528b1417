"""Guardrails at run time: finding the version a request names and assessing text with it.

`Guardrails` is shared by the model invocations (InvokeModel, Converse and their streams) and
ApplyGuardrail. It resolves an identifier (ID or ARN) and version (DRAFT or a number) in the
store, and runs an assessment: the denied-topic classifier (which needs the embedding engine)
first, then the rule-based policies (`assess`), timing the whole as the trace's
`guardrailProcessingLatency`. `open_guardrails` builds them for a server from its settings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from outcrop.config import ConfigError
from outcrop.config.guardrails import GuardrailSettings
from outcrop.config.security import DEFAULT_ACCOUNT
from outcrop.engines.base import EngineError
from outcrop.engines.embeddings import EmbeddingEngine
from outcrop.guardrails.assess import Assessment, Segment, assess
from outcrop.guardrails.model import Definition, Direction
from outcrop.guardrails.shapes import AppliedGuardrail
from outcrop.guardrails.store import GuardrailStore, LegacyFile, StateFileError
from outcrop.guardrails.topics import TopicClassifier
from outcrop.state.sqlite import DATABASE_FILE, SQLiteStore
from outcrop.state.store import StateStore
from outcrop.wire.errors import AwsError, ServiceUnavailableException, ValidationException
from outcrop.wire.jsonbody import body_violations
from outcrop.wire.restjson import ServiceSpec


@dataclass(frozen=True, slots=True)
class ResolvedGuardrail:
    applied: AppliedGuardrail
    definition: Definition


class Guardrails:
    """The guardrail store plus what assessing needs (topic classifier, chunk size)."""

    def __init__(
        self, store: GuardrailStore, classifier: TopicClassifier, stream_chunk_chars: int = 1000
    ) -> None:
        self.store = store
        self.classifier = classifier
        self.stream_chunk_chars = stream_chunk_chars

    def resolve(self, identifier: str, version: str) -> ResolvedGuardrail | None:
        """The guardrail version, or None when the ID or the version does not exist."""
        try:
            record, found = self.store.get_version(identifier, version)
        except AwsError:
            return None
        applied = AppliedGuardrail(record.guardrail_id, found.version, record.arn)
        return ResolvedGuardrail(applied, self.store.definition(record, found))

    async def assess(
        self, guardrail: ResolvedGuardrail, segments: Sequence[Segment], direction: Direction
    ) -> Assessment:
        started = time.perf_counter()
        definition = guardrail.definition
        topics = [t for t in definition.topics if t.switch.on(direction) is not None]
        scores: list[float] = []
        if topics:
            texts = [s.text for s in segments if s.guarded and s.text.strip()]
            try:
                topic_scores = await self.classifier.scores(topics, texts)
            except EngineError as exc:  # no embedding model: the 503 the SDKs retry
                raise ServiceUnavailableException(
                    f"Bedrock is unable to process your request. {exc}"
                ) from None
            by_topic = dict(zip(topics, topic_scores, strict=True))
            scores = [by_topic.get(t, 0.0) for t in definition.topics]
        result = assess(definition, segments, direction, scores)
        return result.with_latency(round((time.perf_counter() - started) * 1000))


def open_guardrails(
    settings: GuardrailSettings,
    region: str,
    embedder: EmbeddingEngine,
    account_id: str = DEFAULT_ACCOUNT,
    state: StateStore | None = None,
) -> Guardrails:
    """The guardrails of a server: those in the state store (`state`; default: SQLite in the
    state directory), plus the configured ones (ARNs in `account_id`, configured ones in
    `region`). A `guardrails.json` in the state directory is imported into the store once."""
    state_dir = settings.resolved_state_dir()
    documents = state if state is not None else SQLiteStore(state_dir / DATABASE_FILE)
    try:
        legacy = LegacyFile.find(state_dir)
    except StateFileError as exc:
        raise ConfigError(f"guardrails: {exc}") from None
    store = GuardrailStore(documents, account_id, legacy)
    for entry in settings.define:
        spec = {k: v for k, v in entry.items() if k != "id"}
        store.add_configured(spec, entry.get("id"), region)
    return Guardrails(store, TopicClassifier(embedder), settings.stream_chunk_chars)


def check_definitions(settings: GuardrailSettings) -> None:
    """Refuse configured guardrails that are not valid CreateGuardrail bodies (ValueError naming
    `guardrails.define[i]` first, so that the configuration's line can be found)."""
    for index, entry in enumerate(settings.define):
        problem = definition_problem(entry)
        if problem:
            raise ValueError(f"guardrails.define[{index}]: {problem}")


def definition_problem(entry: dict[str, Any]) -> str | None:
    """Why a configured guardrail is not a valid CreateGuardrail body (None when it is)."""
    spec = {k: v for k, v in entry.items() if k != "id"}
    problems = list(body_violations(_create_shape(), spec))
    unknown = sorted(set(spec) - set(_create_shape().members))
    if unknown:
        problems.append(f"unknown member(s) {', '.join(unknown)}")
    if problems:
        return "; ".join(problems)
    try:
        Definition.parse(spec)
    except ValidationException as exc:
        return exc.message
    return None


@cache
def _create_shape() -> Any:
    return ServiceSpec.load("bedrock").model.operation_model("CreateGuardrail").input_shape
