"""Configuration of authentication, policies, quotas, fault rules and generation limits.

The `[auth]`, `[principals]`, `[policies]`, `[[quotas]]`, `[[faults]]` and `[limits]` sections
of the TOML file (see `outcrop.config`). Validated strictly: an unknown key or a value that
does not parse stops the server at start with a message naming the key.

    [auth]
    mode = "verify"                # open (default): any well-formed signature or bearer token
    account_id = "123456789012"    # account of principals and resources Outcrop names
    region = "us-east-1"           # region of resources when a request names none (bearer)
    regions = ["us-east-1"]        # verify: credential-scope regions accepted (default: any)
    clock_skew_seconds = 900
    allow_bearer_over_http = false # verify: bearer tokens only over TLS unless true

    [[auth.credentials]]
    access_key_id = "AKIDEXAMPLE"
    secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    session_token = "..."          # optional; then requests must carry it
    principal = "alice"            # a name (user/alice in account_id) or a full IAM ARN

    [[auth.api_keys]]              # long-term Bedrock API keys (Authorization: Bearer ...);
                                   # short-term keys need none: they are checked against the
                                   # credentials above (gateway/auth.py)
    key = "..."
    principal = "ci-bot"

    [principals.alice]             # identity policies attached to a principal
    policies = ["invoke-claude"]

    [policies.invoke-claude]       # an IAM policy document, inline ...
    Version = "2012-10-17"
    [[policies.invoke-claude.Statement]]
    Effect = "Allow"
    Action = "bedrock:InvokeModel*"
    Resource = "arn:aws:bedrock:*::foundation-model/anthropic.*"
    # Optional conditions (gateway/conditions.py), e.g. only with guardrail abc123 version 1:
    # Condition = { StringEquals = { "bedrock:GuardrailIdentifier" =
    #     "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc123:1" } }
    [policies.from-file]           # ... or a JSON file (relative to the config file)
    file = "policies/readonly.json"

    [[quotas]]                     # requests and tokens per minute, streams at once
    model = "anthropic.*"          # glob over base model IDs / endpoint names (default *)
    principal = "*"                # glob over principal ARNs (default *)
    per = "model"                  # one counter per: model | principal | model+principal | all
    requests_per_minute = 60
    tokens_per_minute = 200000
    concurrent_streams = 4

    [[faults]]                     # see outcrop.gateway.faults for every field
    operation = "InvokeModel"
    action = "error"
    error = "ThrottlingException"
    times = 2

    [limits]                       # every key and what the client sees: docs/limits.md
    model_timeout_s = 60           # ModelTimeoutException when generation takes longer
    max_header_bytes = 16384       # larger header blocks get 431
    max_connections = 4096         # per listener; more wait in the listen backlog
    max_requests_in_flight = 2048  # more get 503 ServiceUnavailableException
    body_read_timeout_s = 30       # a body not received whole by then: 408, connection closed
    max_metric_label_values = 200  # distinct model labels in /metrics (LRU, then "other")
    max_quota_counters = 10000     # counters per quota rule, per model/principal (LRU)
    max_quota_counters_listed = 100  # counters per rule listed by GET /_outcrop/quotas

    [admin]                        # the /_outcrop/ admin API (docs/security.md)
    faults_api = true              # default: on in mode open, off in verify
    responses_api = true           # default: on in mode open, off in verify
    allowed_hosts = ["devbox"]     # Host names answered besides loopback ("*": any)
    principals = ["alice"]         # verify: who may call it (default: any authenticated)
    max_rules = 1000               # rules in force per kind (faults, responses)
    max_body_bytes = 1048576       # one admin request's body
    max_token_count = 100000       # a scripted response's token_count
    max_text_chars = 1000000       # text, reasoning, message, prompt: each
    max_tool_calls = 64            # a scripted response's tool_calls
    max_delay_s = 600              # delay_ms, first_token_delay_ms, latency_ms, stall_seconds
    # Admin API limits apply to admin calls only; prompt patterns are RE2 (linear time)
    # wherever they come from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ACCOUNT = "123456789012"
"""AWS's documentation account ID; what principals and resources use unless configured."""

_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/:-]+$")


MAX_PATTERN_CHARS = 4096
"""A `prompt` pattern's length (RE2 compiles in time and memory linear in it)."""


def compile_prompt_pattern(pattern: str) -> Any:
    """A rule's `prompt` compiled with RE2, whose matching is linear in the text (no
    catastrophic backtracking on `(a|aa)+$`); ValueError when RE2 does not take it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern of at most {MAX_PATTERN_CHARS} characters")
    options = re2.Options()
    options.log_errors = False  # the ValueError says it; nothing on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise ValueError(f"not a regular expression RE2 accepts: {exc}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def principal_arn(name: str, account_id: str) -> str:
    """A configured principal as an IAM ARN (a bare name is a user of `account_id`)."""
    return name if name.startswith("arn:") else f"arn:aws:iam::{account_id}:user/{name}"


class _PrincipalName(_Strict):
    principal: str | None = None

    @field_validator("principal")
    @classmethod
    def _principal_form(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("arn:") and not _PRINCIPAL_ARN.match(value):
            raise ValueError(
                f"{value!r} is not an IAM principal ARN (arn:aws:iam::ACCOUNT:user/NAME, "
                "role/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION)"
            )
        if not value.startswith("arn:") and not re.fullmatch(r"[A-Za-z0-9+=,.@_-]{1,64}", value):
            raise ValueError(f"{value!r} is not a valid IAM user name")
        return value


class CredentialSettings(_PrincipalName):
    access_key_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9]+$")
    secret_access_key: str = Field(min_length=1)
    session_token: str | None = None


class ApiKeySettings(_PrincipalName):
    key: str = Field(min_length=8)


class AuthSettings(_Strict):
    mode: Literal["open", "verify"] = "open"
    account_id: str = Field(DEFAULT_ACCOUNT, pattern=r"^\d{12}$")
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    regions: list[str] | None = None
    clock_skew_seconds: int = Field(900, ge=1, le=7 * 24 * 3600)
    allow_bearer_over_http: bool = False
    credentials: list[CredentialSettings] = Field(default_factory=list)
    api_keys: list[ApiKeySettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AuthSettings:
        ids = [c.access_key_id for c in self.credentials]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"credentials: access_key_id {duplicates[0]!r} is listed twice")
        if self.mode == "verify" and not self.credentials and not self.api_keys:
            raise ValueError(
                'mode "verify" needs at least one [[auth.credentials]] or [[auth.api_keys]] entry'
            )
        return self


class PrincipalSettings(_Strict):
    policies: list[str] = Field(default_factory=list)


PolicySettings = dict[str, Any]
"""A policy document inline, or `{file = "path.json"}` naming a JSON file that holds one."""


class QuotaSettings(_Strict):
    model: str = "*"
    principal: str = "*"
    operation: str = "*"
    per: Literal["model", "principal", "model+principal", "all"] = "model"
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    concurrent_streams: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _some_limit(self) -> QuotaSettings:
        if (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.concurrent_streams is None
        ):
            raise ValueError(
                "a quota needs requests_per_minute, tokens_per_minute or concurrent_streams"
            )
        return self


FaultAction = Literal["error", "stream_error", "cut", "stall", "latency", "corrupt_crc", "drop"]


class RuleMatchSettings(_Strict):
    """What calls a test-control rule (a fault, a scripted response) applies to, how often."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    operation: str = "*"
    model: str = "*"
    principal: str = "*"
    prompt: str | None = None
    """A regular expression searched in the request body's text (RE2 syntax: linear-time
    matching, no backreferences or lookaround)."""
    times: int | None = Field(None, ge=1)
    probability: float = Field(1.0, gt=0.0, le=1.0)

    @field_validator("prompt")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_prompt_pattern(value)
        return value


class FaultRuleSettings(RuleMatchSettings):
    """One fault rule, from the config file or the admin API (same schema)."""

    action: FaultAction
    error: str | None = None
    message: str | None = None
    after_events: int = Field(0, ge=0)
    stall_seconds: float | None = Field(None, gt=0)
    latency_ms: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _action_fields(self) -> FaultRuleSettings:
        if self.action in ("error", "stream_error") and not self.error:
            raise ValueError(f'action "{self.action}" needs error (an error shape name)')
        if self.action not in ("error", "stream_error") and self.error is not None:
            raise ValueError('error applies only to action "error" or "stream_error"')
        if self.action == "latency" and self.latency_ms <= 0:
            raise ValueError('action "latency" needs latency_ms > 0')
        return self


class LimitsSettings(_Strict):
    model_timeout_s: float | None = Field(None, gt=0)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    # Connections, request bodies and response buffers (docs/limits.md describes each).
    max_connections: int = Field(4096, ge=16)
    listen_backlog: int = Field(4096, ge=128)
    max_requests_in_flight: int = Field(2048, ge=1)
    header_read_timeout_s: float = Field(10.0, gt=0, le=60)
    body_read_timeout_s: float = Field(30.0, gt=0)
    send_stall_timeout_s: float = Field(60.0, gt=0)
    stream_send_buffer_bytes: int = Field(64 * 1024, ge=16 * 1024)
    h2_max_concurrent_streams: int = Field(128, ge=10)
    h2_receive_window_bytes: int = Field(1024 * 1024, ge=64 * 1024, le=2**31 - 1)
    max_json_depth: int = Field(100, ge=2, le=1000)
    """Objects and arrays one inside another in a client's JSON (wire.jsonbody.load_json)."""
    max_metric_label_values: int = Field(200, ge=1)
    """Distinct `model` label values in /metrics (LRU; gateway/metrics.py)."""
    max_quota_counters: int = Field(10_000, ge=1)
    """Counter sets per quota rule, one per model/principal (LRU; gateway/quotas.py)."""
    max_quota_counters_listed: int = Field(100, ge=1, le=10_000)
    """Counters per quota rule that GET /_outcrop/quotas lists (gateway/quota_admin.py)."""


class AdminSettings(_Strict):
    faults_api: bool | None = None
    """The fault-rule admin API; default: on in auth mode open, off in verify."""
    responses_api: bool | None = None
    """The scripted-response admin API (/_outcrop/responses); default: on in open, off in verify."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names the admin API answers besides loopback ones (gateway/admin_guard.py)."""
    principals: list[str] | None = None
    """Verify mode: the principals allowed to call the admin API (default: any authenticated)."""
    # What one admin API call may ask (gateway/admin_limits.py; config-file rules are exempt).
    max_rules: int = Field(1000, ge=1)
    """Rules in force per kind (fault rules, scripted responses)."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_token_count: int = Field(100_000, ge=1)
    """A scripted response's `token_count` (and a fault's `after_events`)."""
    max_text_chars: int = Field(1_000_000, ge=1)
    """`text`, `reasoning`, `message`, `prompt`: characters each."""
    max_tool_calls: int = Field(64, ge=1)
    max_delay_s: float = Field(600.0, gt=0)
    """`delay_ms`, `first_token_delay_ms`, `latency_ms`, `stall_seconds`: each at most this."""


def load_policy_document(source: PolicySettings, base: Path | None) -> dict[str, Any]:
    """The policy document itself: inline, or read from its JSON file (errors name the line)."""
    if set(source) == {"file"}:
        if not isinstance(source["file"], str):
            raise ValueError("file: a path to a JSON policy document")
        file = Path(source["file"])
        path = file if base is None or file.is_absolute() else base / file
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{path}: a policy document is a JSON object")
        return document
    return dict(source)


def resolved_policies(
    policies: dict[str, PolicySettings], principals: dict[str, PrincipalSettings], base: Path | None
) -> dict[str, dict[str, Any]]:
    """Every policy as its document (files read), and every attached policy defined; ValueError
    names the key. The documents' grammar is checked where the app is built (`outcrop.app`)."""
    documents: dict[str, dict[str, Any]] = {}
    for name, source in policies.items():
        try:
            documents[name] = load_policy_document(source, base)
        except ValueError as exc:
            raise ValueError(f"policies.{name}: {exc}") from None
    for principal, attached in principals.items():
        for name in attached.policies:
            if name not in documents:
                raise ValueError(
                    f"principals.{principal}.policies: no policy named {name!r} in [policies]"
                )
    return documents
