"""The fault-rule admin API, `/_outcrop/faults` (gateway/rule_admin.py has the routes)."""

from __future__ import annotations

from outcrop.config.security import AdminSettings, FaultRuleSettings
from outcrop.gateway.rule_admin import RuleAdmin, RuleApi
from outcrop.gateway.rules import RuleRegistry

PREFIX = "/_outcrop/faults"

FAULTS_API = RuleApi(
    prefix=PREFIX,
    noun="fault rule",
    disabled="The fault-injection API is disabled (auth mode verify). "
    "Set faults_api = true under [admin] in the configuration to enable it.",
)


class FaultAdmin(RuleAdmin[FaultRuleSettings]):
    def __init__(
        self,
        registry: RuleRegistry[FaultRuleSettings],
        enabled: bool,
        limits: AdminSettings | None = None,
    ) -> None:
        super().__init__(registry, FaultRuleSettings, FAULTS_API, enabled, limits)
