"""The fault-rule admin API under `/_outcrop/faults` (local routes, outside AWS's API).

    GET    /_outcrop/faults             every rule, with how often each matched and fired
    POST   /_outcrop/faults             add a rule (JSON, the `[[faults]]` schema); 201 + rule
    DELETE /_outcrop/faults             remove every rule
    GET    /_outcrop/faults/rule?id=ID  one rule
    DELETE /_outcrop/faults/rule?id=ID  remove one rule

Misuse (a body that is not JSON, an unknown field, an unknown error name, a missing or unknown
id) gets a 400 or 404 with `{"message": ...}` naming the problem; nothing else changes. When
the API is disabled (by default in auth mode `verify`) every route answers 403 saying so.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from outcrop.gateway.faults import FaultRegistry
from outcrop.security_settings import FaultRuleSettings
from outcrop.services.base import Response

PREFIX = "/_outcrop/faults"


class FaultAdmin:
    """Handlers for the routes above, bound to one registry."""

    def __init__(self, registry: FaultRegistry, enabled: bool) -> None:
        self.registry = registry
        self.enabled = enabled

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("GET", PREFIX): self.list_rules,
            ("POST", PREFIX): self.add_rule,
            ("DELETE", PREFIX): self.clear_rules,
            ("GET", f"{PREFIX}/rule"): self.get_rule,
            ("DELETE", f"{PREFIX}/rule"): self.delete_rule,
        }

    async def list_rules(self, request: Any) -> Response:
        if not self.enabled:
            return _disabled()
        return _json(200, {"rules": [r.describe() for r in self.registry.rules()]})

    async def add_rule(self, request: Any) -> Response:
        if not self.enabled:
            return _disabled()
        try:
            data = json.loads(request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _json(400, {"message": f"The body is not JSON: {exc}"})
        if not isinstance(data, dict):
            return _json(400, {"message": "The body must be a JSON object (one fault rule)."})
        try:
            settings = FaultRuleSettings.model_validate(data)
            rule = self.registry.add(settings)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors()
            ]
            return _json(400, {"message": "Invalid fault rule: " + "; ".join(problems)})
        except ValueError as exc:
            return _json(400, {"message": f"Invalid fault rule: {exc}"})
        return _json(201, rule.describe())

    async def clear_rules(self, request: Any) -> Response:
        if not self.enabled:
            return _disabled()
        return _json(200, {"cleared": self.registry.clear()})

    async def get_rule(self, request: Any) -> Response:
        if not self.enabled:
            return _disabled()
        rule_id, error = _rule_id(request.query)
        if error is not None:
            return error
        rule = self.registry.get(rule_id)
        if rule is None:
            return _json(404, {"message": f"No fault rule with id {rule_id!r}."})
        return _json(200, rule.describe())

    async def delete_rule(self, request: Any) -> Response:
        if not self.enabled:
            return _disabled()
        rule_id, error = _rule_id(request.query)
        if error is not None:
            return error
        if not self.registry.remove(rule_id):
            return _json(404, {"message": f"No fault rule with id {rule_id!r}."})
        return _json(200, {"deleted": rule_id})


def _rule_id(query: str) -> tuple[str, Response | None]:
    ids = parse_qs(query).get("id", [])
    if len(ids) != 1 or not ids[0]:
        return "", _json(400, {"message": "Name exactly one rule: ?id=RULE_ID."})
    return ids[0], None


def _disabled() -> Response:
    return _json(
        403,
        {
            "message": "The fault-injection API is disabled (auth mode verify). "
            "Set faults_api = true under [admin] in the configuration to enable it."
        },
    )


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)
