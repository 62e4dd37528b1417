"""The Amazon Bedrock control plane's model catalog: ListFoundationModels and GetFoundationModel.

Both answer from the foundation-model catalog (`catalog/foundation_models.json`, plus models
the configuration adds), serialized member by member from botocore's `bedrock` service model
(`FoundationModelSummary`, `FoundationModelDetails`), so the SDKs see exactly the modelled shape.
`modelArn` is `arn:aws:bedrock:<region>::foundation-model/<modelId>`, the region being the one
the request was signed for (its SigV4 credential scope) or the configured default.

ListFoundationModels filters as Bedrock does: `byProvider` (case-insensitive; the provider's
name, e.g. "Mistral AI", or the model ID's provider segment, e.g. "mistral"), `byOutputModality`,
`byInferenceType` and `byCustomizationType`; the enum-valued ones are checked by the service
model's constraints before the operation runs. Models are listed whether or not this server
routes them to an engine, as Bedrock lists models whatever one's access to them.

GetFoundationModel also answers for an ID that no entry lists but that Outcrop serves with
inferred metadata (catalog/inference.py, docs/models.md): its `modelName` ends in
" (inferred by Outcrop)" and the response carries `x-outcrop-model-inferred: true`. With
`[catalog] strict = true` such IDs are not found, as on AWS. ListFoundationModels lists only
catalogued and configured models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.model import Shape

from outcrop.catalog.foundation import FoundationModel, foundation_model_records, foundation_models
from outcrop.services.base import Operation, RequestContext, Response
from outcrop.wire.errors import ResourceNotFoundException
from outcrop.wire.restjson import ServiceSpec

# Bedrock's message when an identifier names no foundation model (captured on InvokeModel, issue
# aws-samples/bedrock-chat#91); assumed the same for GetFoundationModel.
MODEL_NOT_FOUND = "Could not resolve the foundation model from the provided model identifier."

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")
_FOUNDATION_MODEL_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]*::foundation-model/(.+)$")


def request_region(ctx: RequestContext, default: str) -> str:
    """The region of the request's SigV4 credential scope, else `default`."""
    auth = ctx.header("authorization") or ""
    m = _CREDENTIAL_SCOPE.search(auth)
    return m.group(1) if m else default


def foundation_model_arn(region: str, model_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def record_of(model: FoundationModel) -> dict[str, Any]:
    """The catalog entry for `model`, or one built from its fields (configured extra models)."""
    record = foundation_model_records().get(model.model_id)
    if record is not None and foundation_models().get(model.model_id) == model:
        return record
    return {
        "modelId": model.model_id,
        "modelName": model.model_name,
        "providerName": model.provider_name,
        "inputModalities": list(model.input_modalities),
        "outputModalities": list(model.output_modalities),
        "responseStreamingSupported": model.streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": list(model.inference_types),
        "modelLifecycle": {"status": model.lifecycle_status},
    }


def serialize(shape: Shape, value: Any) -> Any:
    """`value` restricted to what `shape` models; timestamps in the member's `timestampFormat`
    (iso8601 strings where the model says so, as the JS SDK parses them), else epoch seconds
    (restJson1's default)."""
    match shape.type_name:
        case "structure":
            return {
                name: serialize(member, value[name])
                for name, member in shape.members.items()
                if isinstance(value, Mapping) and value.get(name) is not None
            }
        case "list":
            return [serialize(shape.member, item) for item in value]
        case "timestamp":
            moment = (
                datetime.fromisoformat(value)
                if isinstance(value, str)
                else datetime.fromtimestamp(float(value), UTC)
            )
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            if shape.serialization.get("timestampFormat") == "iso8601":
                return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
            return moment.timestamp()
        case _:
            return value


def _matches_provider(record: Mapping[str, Any], wanted: str) -> bool:
    wanted = wanted.strip().lower()
    provider_segment = str(record["modelId"]).split(".", 1)[0].lower()
    return wanted in (str(record.get("providerName", "")).lower(), provider_segment)


class BedrockControlPlane:
    """ListFoundationModels and GetFoundationModel over the model catalog."""

    def __init__(
        self,
        models: Callable[[], Mapping[str, FoundationModel]],
        default_region: str = "us-east-1",
        lookup: Callable[[str], FoundationModel | None] | None = None,
    ) -> None:
        """`lookup` finds one model by ID (default: in `models()`), inferred ones included."""
        self.models = models
        self.lookup = lookup if lookup is not None else (lambda model_id: models().get(model_id))
        self.default_region = default_region
        service = ServiceSpec.load("bedrock").model
        self._summary = service.shape_for("FoundationModelSummary")
        self._details = service.shape_for("FoundationModelDetails")

    def operations(self) -> dict[str, Operation]:
        return {
            "ListFoundationModels": self.list_foundation_models,
            "GetFoundationModel": self.get_foundation_model,
        }

    async def list_foundation_models(self, ctx: RequestContext) -> Response:
        region = request_region(ctx, self.default_region)
        filters: list[tuple[str, str]] = [
            ("byOutputModality", "outputModalities"),
            ("byInferenceType", "inferenceTypesSupported"),
            ("byCustomizationType", "customizationsSupported"),
        ]
        provider = ctx.params.get("byProvider")
        summaries = []
        for model in self.models().values():
            record = record_of(model)
            if provider is not None and not _matches_provider(record, str(provider)):
                continue
            if any(
                ctx.params.get(param) is not None
                and ctx.params[param] not in (record.get(member) or [])
                for param, member in filters
            ):
                continue
            summaries.append(self._describe(self._summary, record, region))
        return _json({"modelSummaries": summaries})

    async def get_foundation_model(self, ctx: RequestContext) -> Response:
        identifier = str(ctx.params["modelIdentifier"])
        m = _FOUNDATION_MODEL_ARN.match(identifier)
        model = self.lookup(m.group(1) if m else identifier)
        if model is None:
            raise ResourceNotFoundException(MODEL_NOT_FOUND)
        region = request_region(ctx, self.default_region)
        answer = _json({"modelDetails": self._describe(self._details, record_of(model), region)})
        if model.inferred:
            answer.headers.append(("x-outcrop-model-inferred", "true"))
        return answer

    def _describe(self, shape: Shape, record: Mapping[str, Any], region: str) -> dict[str, Any]:
        value = {**record, "modelArn": foundation_model_arn(region, str(record["modelId"]))}
        described: dict[str, Any] = serialize(shape, value)
        return described


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")])
