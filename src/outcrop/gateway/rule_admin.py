"""The admin API of a kind of test-control rule (fault rules, scripted responses), as local
routes under `/_outcrop/` outside AWS's API. For PREFIX = /_outcrop/faults, /_outcrop/responses:

    GET    PREFIX             every rule, with how often each matched and fired
    POST   PREFIX             add a rule (JSON, the rule's settings schema); 201 + rule
    DELETE PREFIX             remove every rule
    GET    PREFIX/rule?id=ID  one rule
    DELETE PREFIX/rule?id=ID  remove one rule

Misuse (a body that is not JSON, an unknown field, a value that does not validate, a missing
or unknown id, a size or count beyond the `[admin]` limits of gateway/admin_limits.py) gets a
400 or 404 with `{"message": ...}` naming the problem; nothing else
changes. With rules shared through Redis (shared/rules.py), a route answers 503 while Redis is
unreachable. When the API is disabled (by default in auth mode `verify`) every route answers 403
saying so.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from outcrop.config.security import AdminSettings, RuleMatchSettings
from outcrop.gateway.admin_limits import body_problem, count_problem, rule_problem
from outcrop.gateway.rules import RuleRegistry
from outcrop.services.base import Response
from outcrop.shared.client import SharedUnavailable


@dataclass(frozen=True, slots=True)
class RuleApi:
    """How one kind of rule is named in its API."""

    prefix: str
    """e.g. /_outcrop/faults"""
    noun: str
    """e.g. "fault rule" (in messages)"""
    disabled: str
    """The 403 message while the API is off."""


class RuleAdmin[S: RuleMatchSettings]:
    """Handlers for the routes above, bound to one registry and its settings schema."""

    def __init__(
        self,
        registry: RuleRegistry[S],
        schema: type[S],
        api: RuleApi,
        enabled: bool,
        limits: AdminSettings | None = None,
    ) -> None:
        self.registry = registry
        self.schema = schema
        self.api = api
        self.enabled = enabled
        self.limits = limits or AdminSettings()
        """Sizes and counts one call may ask (gateway/admin_limits.py)."""

    def routes(self) -> dict[tuple[str, str], Any]:
        prefix = self.api.prefix
        return {
            ("GET", prefix): _shared(self.list_rules),
            ("POST", prefix): _shared(self.add_rule),
            ("DELETE", prefix): _shared(self.clear_rules),
            ("GET", f"{prefix}/rule"): _shared(self.get_rule),
            ("DELETE", f"{prefix}/rule"): _shared(self.delete_rule),
        }

    async def list_rules(self, request: Any) -> Response:
        if not self.enabled:
            return self._disabled()
        return _json(200, {"rules": await self.registry.describe_rules()})

    async def add_rule(self, request: Any) -> Response:
        if not self.enabled:
            return self._disabled()
        noun = self.api.noun
        too_much = body_problem(len(request.body), self.limits) or count_problem(
            await self.registry.count_rules(), self.limits
        )
        if too_much is not None:
            return _json(400, {"message": too_much})
        try:
            data = json.loads(request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _json(400, {"message": f"The body is not JSON: {exc}"})
        if not isinstance(data, dict):
            return _json(400, {"message": f"The body must be a JSON object (one {noun})."})
        try:
            settings = self.schema.model_validate(data)
            too_much = rule_problem(settings, self.limits)
            if too_much is not None:
                return _json(400, {"message": f"Invalid {noun}: {too_much}"})
            described = await self.registry.add_rule(settings)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors()
            ]
            return _json(400, {"message": f"Invalid {noun}: " + "; ".join(problems)})
        except ValueError as exc:
            return _json(400, {"message": f"Invalid {noun}: {exc}"})
        return _json(201, described)

    async def clear_rules(self, request: Any) -> Response:
        if not self.enabled:
            return self._disabled()
        return _json(200, {"cleared": await self.registry.clear_rules()})

    async def get_rule(self, request: Any) -> Response:
        if not self.enabled:
            return self._disabled()
        rule_id, error = _rule_id(request.query)
        if error is not None:
            return error
        described = await self.registry.describe_rule(rule_id)
        if described is None:
            return _json(404, {"message": f"No {self.api.noun} with id {rule_id!r}."})
        return _json(200, described)

    async def delete_rule(self, request: Any) -> Response:
        if not self.enabled:
            return self._disabled()
        rule_id, error = _rule_id(request.query)
        if error is not None:
            return error
        if not await self.registry.remove_rule(rule_id):
            return _json(404, {"message": f"No {self.api.noun} with id {rule_id!r}."})
        return _json(200, {"deleted": rule_id})

    def _disabled(self) -> Response:
        return _json(403, {"message": self.api.disabled})


def _shared(
    handler: Callable[[Any], Awaitable[Response]],
) -> Callable[[Any], Awaitable[Response]]:
    """`handler`, answering 503 while the shared store is unreachable."""

    async def handle(request: Any) -> Response:
        try:
            return await handler(request)
        except SharedUnavailable as exc:
            return _json(503, {"message": f"The shared rule store (Redis) is unreachable: {exc}"})

    return handle


def _rule_id(query: str) -> tuple[str, Response | None]:
    ids = parse_qs(query).get("id", [])
    if len(ids) != 1 or not ids[0]:
        return "", _json(400, {"message": "Name exactly one rule: ?id=RULE_ID."})
    return ids[0], None


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)
