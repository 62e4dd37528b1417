"""The Bedrock control plane's guardrail operations: CreateGuardrail, GetGuardrail,
ListGuardrails, UpdateGuardrail, DeleteGuardrail and CreateGuardrailVersion.

Bodies are checked against botocore's `bedrock` input shapes (`wire.jsonbody`); the guardrails
live in `guardrails.store` (persisted across restarts). Responses carry exactly the members of
the modelled output shapes, timestamps as ISO 8601 strings (the shapes' `timestampFormat`),
statuses READY (Outcrop creates and versions synchronously; Bedrock reports CREATING or
VERSIONING for a moment first) and the modelled 202 of the mutating operations.

ListGuardrails lists the DRAFT of every guardrail, or, given `guardrailIdentifier`, every
version of that one (DRAFT first), `maxResults` at a time (default and maximum 1000) with an
opaque `nextToken`. ARNs are built in the region the creating request was signed for.

The state store failing (PostgreSQL down, the pool exhausted, a time limit) is an
InternalServerException, the one server error these operations model (the control plane models
no ServiceUnavailableException); the write it interrupted was not acknowledged, and the SDKs
retry the 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from outcrop.guardrails.model import describe
from outcrop.guardrails.store import GuardrailRecord, GuardrailStore, VersionRecord
from outcrop.services.base import Operation, RequestContext, Response, StreamResponse
from outcrop.services.bedrock import request_region
from outcrop.state.store import StateUnavailable
from outcrop.wire.errors import InternalServerException, ValidationException
from outcrop.wire.jsonbody import coral_message, parse_json_body
from outcrop.wire.restjson import ServiceSpec

DEFAULT_PAGE = 1000

# Wording unverified (AWS answers a bad pagination token with a ValidationException).
BAD_TOKEN = "The nextToken provided is invalid."


class GuardrailAdmin:
    """Guardrail management over a `GuardrailStore`."""

    def __init__(self, store: GuardrailStore, default_region: str = "us-east-1") -> None:
        self.store = store
        self.default_region = default_region
        self.spec = ServiceSpec.load("bedrock")

    def operations(self) -> dict[str, Operation]:
        return {
            name: _state_errors(operation)
            for name, operation in {
                "CreateGuardrail": self.create_guardrail,
                "GetGuardrail": self.get_guardrail,
                "ListGuardrails": self.list_guardrails,
                "UpdateGuardrail": self.update_guardrail,
                "DeleteGuardrail": self.delete_guardrail,
                "CreateGuardrailVersion": self.create_guardrail_version,
            }.items()
        }

    def _body(self, ctx: RequestContext) -> dict[str, Any]:
        return parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)

    async def create_guardrail(self, ctx: RequestContext) -> Response:
        body = self._body(ctx)
        record = await self.store.create(
            body,
            request_region(ctx, self.default_region),
            tags=body.get("tags"),
            token=body.get("clientRequestToken"),
        )
        return _json(
            {
                "guardrailId": record.guardrail_id,
                "guardrailArn": record.arn,
                "version": "DRAFT",
                "createdAt": record.draft.created_at,
            },
            202,
        )

    async def get_guardrail(self, ctx: RequestContext) -> Response:
        identifier = str(ctx.params["guardrailIdentifier"])
        version = str(ctx.params.get("guardrailVersion") or "DRAFT")
        await self.store.refresh()
        record, found = self.store.get_version(identifier, version)
        spec = found.spec
        out: dict[str, Any] = {"name": spec["name"]}
        description = found.description if found.version != "DRAFT" else None
        description = description or spec.get("description")
        if description:
            out["description"] = description
        out.update(
            {
                "guardrailId": record.guardrail_id,
                "guardrailArn": record.arn,
                "version": found.version,
                "status": "READY",
                **describe(spec),
                "createdAt": found.created_at,
                "updatedAt": found.updated_at,
                "statusReasons": [],
                "failureRecommendations": [],
                "blockedInputMessaging": spec["blockedInputMessaging"],
                "blockedOutputsMessaging": spec["blockedOutputsMessaging"],
            }
        )
        return _json(out)

    async def list_guardrails(self, ctx: RequestContext) -> Response:
        identifier = ctx.params.get("guardrailIdentifier")
        await self.store.refresh()
        if identifier:
            record = self.store.get(str(identifier))
            rows = [(record, record.draft), *((record, v) for v in record.versions.values())]
        else:
            rows = [(r, r.draft) for r in self.store.records()]
        limit = _max_results(ctx.params.get("maxResults"))
        start = _offset(ctx.params.get("nextToken"))
        page = rows[start : start + limit]
        body: dict[str, Any] = {"guardrails": [_summary(r, v) for r, v in page]}
        if start + limit < len(rows):
            body["nextToken"] = base64.b64encode(str(start + limit).encode()).decode()
        return _json(body)

    async def update_guardrail(self, ctx: RequestContext) -> Response:
        body = self._body(ctx)
        record = await self.store.update(str(ctx.params["guardrailIdentifier"]), body)
        return _json(
            {
                "guardrailId": record.guardrail_id,
                "guardrailArn": record.arn,
                "version": "DRAFT",
                "updatedAt": record.draft.updated_at,
            },
            202,
        )

    async def delete_guardrail(self, ctx: RequestContext) -> Response:
        version = ctx.params.get("guardrailVersion")
        await self.store.delete(str(ctx.params["guardrailIdentifier"]), version and str(version))
        return _json({}, 202)

    async def create_guardrail_version(self, ctx: RequestContext) -> Response:
        body = self._body(ctx)
        record, version = await self.store.create_version(
            str(ctx.params["guardrailIdentifier"]),
            body.get("description"),
            body.get("clientRequestToken"),
        )
        return _json({"guardrailId": record.guardrail_id, "version": version}, 202)


def _state_errors(operation: Operation) -> Operation:
    """`operation` with the state store's failure as the control plane's 500."""

    async def run(ctx: RequestContext) -> Response | StreamResponse:
        try:
            return await operation(ctx)
        except StateUnavailable as exc:
            # Outcrop's wording.
            raise InternalServerException(
                f"The guardrail could not be read or saved: the state store is unavailable "
                f"({exc}). Try again."
            ) from None

    return run


def _summary(record: GuardrailRecord, version: VersionRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.guardrail_id,
        "arn": record.arn,
        "status": "READY",
        "name": version.spec["name"],
    }
    description = version.description or version.spec.get("description")
    if description:
        out["description"] = description
    out.update(
        {
            "version": version.version,
            "createdAt": version.created_at,
            "updatedAt": version.updated_at,
        }
    )
    return out


def _max_results(raw: object) -> int:
    if raw is None:
        return DEFAULT_PAGE
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if not 1 <= value <= DEFAULT_PAGE:
        bound = "greater than or equal to 1" if value < 1 else "less than or equal to 1000"
        raise ValidationException(
            coral_message(
                [
                    f"Value '{raw}' at 'maxResults' failed to satisfy constraint: Member must "
                    f"have value {bound}"
                ]
            )
        )
    return value


def _offset(token: object) -> int:
    if token is None:
        return 0
    try:
        return max(0, int(base64.b64decode(str(token), validate=True).decode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationException(BAD_TOKEN) from None


def _json(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False).encode(),
        [("Content-Type", "application/json")],
        status,
    )
