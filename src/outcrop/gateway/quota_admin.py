"""The live quota counters, `GET /_outcrop/quotas` (behind the admin guard like every
`/_outcrop/` route; docs/limits.md, "Quotas").

Lists each configured quota rule with its busiest counters now: requests and tokens left in
each bucket, streams in flight; from the process's counters or, with `[shared] url`, from
Redis. At most `[limits] max_quota_counters_listed` counters per rule (100 by default);
`?limit=N` asks for fewer. A bad `limit` gets a 400, Redis unreachable a 503, both with
`{"message": ...}`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from outcrop.gateway.dispatch import LocalHandler, LocalRequest
from outcrop.gateway.quotas import QuotaEnforcer, QuotaView
from outcrop.services.base import Response
from outcrop.shared.client import SharedUnavailable
from outcrop.shared.quotas import SharedQuotaEnforcer

PATH = "/_outcrop/quotas"


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)


class QuotaAdmin:
    def __init__(self, quotas: QuotaEnforcer | SharedQuotaEnforcer, max_listed: int) -> None:
        self.quotas = quotas
        self.max_listed = max_listed

    def routes(self) -> dict[tuple[str, str], LocalHandler]:
        return {("GET", PATH): self.get}

    async def get(self, request: LocalRequest) -> Response:
        raw = parse_qs(request.query).get("limit", [str(self.max_listed)])[-1]
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_listed:
            return _json(400, {"message": f"limit must be an integer from 1 to {self.max_listed}"})
        limit = int(raw)
        views: list[QuotaView]
        if isinstance(self.quotas, SharedQuotaEnforcer):
            backend = "redis"
            try:
                views = await self.quotas.snapshot(limit)
            except SharedUnavailable as exc:
                return _json(503, {"message": f"Redis is unreachable: {exc}"})
        else:
            backend = "process"
            views = self.quotas.snapshot(limit)
        return _json(
            200,
            {
                "backend": backend,
                "limit": limit,
                "quotas": [
                    {
                        "rule": view.settings.model_dump(mode="json"),
                        "counters": view.counters,
                        "total": view.total,
                        "truncated": view.truncated,
                    }
                    for view in views
                ],
            },
        )
