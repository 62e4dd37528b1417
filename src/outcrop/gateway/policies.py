"""Authorization: IAM-style identity policies, the actions operations need, the resources they
touch, and the interceptor that refuses calls no policy allows.

The policy language is the subset of IAM that identity policies on Bedrock and SageMaker
invocations use: statements with `Effect` Allow/Deny, `Action`/`NotAction` and
`Resource`/`NotResource` (strings or lists, `*` and `?` wildcards; actions match without
regard to case, resources with), an optional `Sid` and an optional `Condition`
(gateway/conditions.py: string, boolean and null operators on the keys an invocation has,
`bedrock:GuardrailIdentifier` among them). An explicit Deny wins over any Allow; what no
statement allows is denied. `Principal`, and conditions on operators or keys not supported,
are refused when the configuration loads rather than ignored, so a policy never grants more
than it says.

Which principals are evaluated: in auth mode `verify` every principal (one without policies
is denied everything); in `open` only principals with policies attached, so a local setup
can exercise deny paths without managing credentials.

Actions follow AWS's names: Converse needs bedrock:InvokeModel and ConverseStream needs
bedrock:InvokeModelWithResponseStream (so denying those denies Converse too). Invoking through
an inference profile needs the action on the profile and on the foundation model behind it,
as on AWS. An invocation that applies a guardrail (InvokeModel's `guardrailIdentifier`, Converse's
`guardrailConfig`) also needs bedrock:ApplyGuardrail on that guardrail, as AWS's guardrail
permissions page documents.

Resources are canonical (docs/security.md, "Policies are evaluated on the canonical
resource"): what Outcrop serves, in the served partition and region, whatever partition,
region or account an ARN identifier spells; the region is the signed one only when
`[auth] regions` lists it, else `[auth] region`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from outcrop.catalog.identifiers import parse_identifier, partition_of
from outcrop.gateway.auth import Identity
from outcrop.gateway.conditions import (
    Condition,
    ConditionError,
    Context,
    guardrail_key,
    iam_like,
    parse_conditions,
    request_context,
)
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.services.base import RequestContext
from outcrop.wire.errors import AccessDeniedException, AwsError
from outcrop.wire.jsonbody import decode_json_body

VERSIONS = ("2012-10-17", "2008-10-17")

OPERATION_ACTIONS: dict[tuple[str, str], str] = {
    ("bedrock-runtime", "InvokeModel"): "bedrock:InvokeModel",
    ("bedrock-runtime", "InvokeModelWithResponseStream"): "bedrock:InvokeModelWithResponseStream",
    ("bedrock-runtime", "InvokeModelWithBidirectionalStream"): (
        "bedrock:InvokeModelWithBidirectionalStream"
    ),
    ("bedrock-runtime", "Converse"): "bedrock:InvokeModel",
    ("bedrock-runtime", "ConverseStream"): "bedrock:InvokeModelWithResponseStream",
    ("bedrock-runtime", "StartAsyncInvoke"): "bedrock:InvokeModel",
    ("sagemaker-runtime", "InvokeEndpoint"): "sagemaker:InvokeEndpoint",
    # Unverified: AWS documents InvokeEndpoint as the permission response streaming needs.
    ("sagemaker-runtime", "InvokeEndpointWithResponseStream"): "sagemaker:InvokeEndpoint",
    ("sagemaker-runtime", "InvokeEndpointAsync"): "sagemaker:InvokeEndpointAsync",
}
"""Operations whose IAM action is not simply `<service prefix>:<operation>`."""

_PREFIX = {"bedrock-runtime": "bedrock", "sagemaker-runtime": "sagemaker"}

APPLY_GUARDRAIL = "bedrock:ApplyGuardrail"


class PolicyError(ValueError):
    """A policy document that does not parse; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...]
    not_actions: bool
    resources: tuple[str, ...]
    not_resources: bool
    sid: str | None = None
    conditions: tuple[Condition, ...] = ()

    def matches(self, action: str, resource: str, context: Context | None = None) -> bool:
        hit = any(iam_like(p.lower(), action.lower()) for p in self.actions)
        if hit == self.not_actions:
            return False
        hit = any(iam_like(p, resource) for p in self.resources)
        if hit == self.not_resources:
            return False
        keys: Context = context or {}
        return all(condition.holds(keys) for condition in self.conditions)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    statements: tuple[Statement, ...]


def parse_policy(name: str, document: Mapping[str, Any]) -> Policy:
    """A policy document (the JSON IAM takes) as a `Policy`, or PolicyError naming the key."""
    where = f"policies.{name}"
    unknown = set(document) - {"Version", "Statement", "Id"}
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    version = document.get("Version", VERSIONS[0])
    if version not in VERSIONS:
        raise PolicyError(f"{where}.Version: must be one of {', '.join(VERSIONS)}")
    raw = document.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{where}.Statement: a statement or a non-empty list of statements")
    return Policy(name, tuple(_statement(f"{where}.Statement[{i}]", s) for i, s in enumerate(raw)))


def _statement(where: str, raw: object) -> Statement:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: a statement is a table/object")
    for refused in ("Principal", "NotPrincipal"):
        if refused in raw:
            raise PolicyError(
                f"{where}.{refused}: not supported in Outcrop identity policies "
                "(refused rather than ignored)"
            )
    known = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}.Effect: must be Allow or Deny, got {effect!r}")
    actions, not_actions = _one_of(where, raw, "Action", "NotAction")
    for action in actions:
        if action != "*" and not re.fullmatch(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+", action):
            raise PolicyError(f"{where}.Action: {action!r} is not service:Action")
    resources, not_resources = _one_of(where, raw, "Resource", "NotResource")
    for resource in resources:
        if resource != "*" and not resource.startswith("arn:"):
            raise PolicyError(f"{where}.Resource: {resource!r} is not an ARN or *")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{where}.Sid: a string")
    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        try:
            conditions = parse_conditions(f"{where}.Condition", raw["Condition"])
        except ConditionError as exc:
            raise PolicyError(str(exc)) from None
    return Statement(effect, actions, not_actions, resources, not_resources, sid, conditions)


def _one_of(
    where: str, raw: Mapping[str, Any], key: str, negated: str
) -> tuple[tuple[str, ...], bool]:
    if (key in raw) == (negated in raw):
        raise PolicyError(f"{where}: exactly one of {key} and {negated} is required")
    name = key if key in raw else negated
    value = raw[name]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where}.{name}: a string or a non-empty list of strings")
    return tuple(values), name == negated


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    explicit_deny: bool = False
    resource: str = ""


def evaluate(
    policies: Sequence[Policy],
    action: str,
    resources: Iterable[str],
    context: Context | None = None,
) -> Decision:
    """IAM evaluation for one action on every resource: explicit deny, else allow, else deny.
    `context` holds the request's condition keys (conditions.request_context)."""
    for resource in resources:
        statements = [
            s for p in policies for s in p.statements if s.matches(action, resource, context)
        ]
        if any(s.effect == "Deny" for s in statements):
            return Decision(False, True, resource)
        if not any(s.effect == "Allow" for s in statements):
            return Decision(False, False, resource)
    return Decision(True)


def denial_message(principal: str, action: str, decision: Decision) -> str:
    """AccessDeniedException's text, in AWS's format for identity-based policies."""
    head = (
        f"User: {principal} is not authorized to perform: {action} "
        f"on resource: {decision.resource} "
    )
    if decision.explicit_deny:
        return head + "with an explicit deny in an identity-based policy"
    return head + f"because no identity-based policy allows the {action} action"


# -- what an operation does, and to what ----------------------------------------------------------


def action_for(service: str, operation: str) -> str:
    known = OPERATION_ACTIONS.get((service, operation))
    if known is not None:
        return known
    prefix = _PREFIX.get(service, service.split("-", 1)[0])
    return f"{prefix}:{operation}"


def resources_for(
    ctx: RequestContext,
    region: str,
    account: str,
    aliases: Mapping[str, str],
    guardrail_arns: GuardrailArns | None = None,
) -> list[str]:
    """The canonical resource ARNs a call touches (a profile and the model behind it, an
    endpoint, a guardrail), in the partition and region Outcrop serves."""
    params = ctx.params
    if "modelId" in params:
        return model_resources(str(params["modelId"]), region, account, aliases)
    if "EndpointName" in params:
        name = str(params["EndpointName"]).lower()
        return [f"arn:{partition_of(region)}:sagemaker:{region}:{account}:endpoint/{name}"]
    if "guardrailIdentifier" in params:
        identifier = str(params["guardrailIdentifier"])
        return [guardrail_resource(identifier, region, account, guardrail_arns)]
    return ["*"]


GuardrailArns = Callable[[str], str | None]
"""A guardrail identifier (ID or ARN of any form) → the ARN of the guardrail it resolves to,
or None when no guardrail has that ID."""

_GUARDRAIL_ID = re.compile(r"arn:[^:]*:bedrock:[^:]*:[^:]*:guardrail/([^:/]+)")


def guardrail_resource(
    identifier: str, region: str, account: str, known: GuardrailArns | None = None
) -> str:
    """A guardrail's canonical ARN: the ARN of the guardrail Outcrop resolves `identifier` to
    (whatever partition, region or account an ARN identifier spells: the store finds a
    guardrail by its ID), else one built from the ID in the served partition and region."""
    found = known(identifier) if known is not None else None
    if found is not None:
        return found
    matched = _GUARDRAIL_ID.fullmatch(identifier)
    guardrail_id = matched.group(1) if matched else identifier
    return f"arn:{partition_of(region)}:bedrock:{region}:{account}:guardrail/{guardrail_id}"


def guardrail_applied(ctx: RequestContext) -> tuple[str, str | None] | None:
    """The guardrail (identifier, version) a model invocation asks to apply, if any: the
    `guardrailIdentifier`/`guardrailVersion` headers of InvokeModel and its stream,
    `guardrailConfig` in a Converse body, read with the very decoder the operation uses
    (`wire.jsonbody.decode_json_body`), so that JSON escapes in the key
    (`"guardrail\\u0043onfig"`) or a lone surrogate elsewhere cannot hide it from the policy
    check. A body that does not decode names none here; the operation refuses it."""
    if ctx.service != "bedrock-runtime":
        return None
    if ctx.operation in ("InvokeModel", "InvokeModelWithResponseStream"):
        identifier, version = (
            ctx.params.get("guardrailIdentifier"),
            ctx.params.get("guardrailVersion"),
        )
        return (str(identifier), str(version) if version else None) if identifier else None
    if ctx.operation not in ("Converse", "ConverseStream"):
        return None
    if b"guardrailConfig" not in ctx.body and b"\\" not in ctx.body:
        return None  # without a backslash the key can only be spelt literally
    try:
        body = decode_json_body(ctx.body)
    except AwsError:
        return None
    config = body.get("guardrailConfig")
    if not isinstance(config, dict):
        return None
    identifier, version = config.get("guardrailIdentifier"), config.get("guardrailVersion")
    if not isinstance(identifier, str) or not identifier:
        return None
    return identifier, version if isinstance(version, str) and version else None


def model_resources(
    identifier: str, region: str, account: str, aliases: Mapping[str, str]
) -> list[str]:
    """The canonical ARNs an invocation of `identifier` touches: the foundation model it
    resolves to (and the inference profile or alias on the way), in the served partition and
    region. An ARN's own partition, region and account do not count (`arn:aws-cn:...`, a
    foundation-model ARN with an account ID): Outcrop serves the same model whatever they say,
    so a Deny on the model must apply to every spelling of it."""
    partition = partition_of(region)

    def foundation(model_id: str) -> str:
        return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"

    ref = parse_identifier(identifier, aliases)
    if ref is None:
        return [identifier]  # names no model Outcrop can serve; the operation refuses it
    if ref.kind == "inference-profile" or ref.kind == "inference-profile-arn":
        profile = ref.identifier.rsplit("/", 1)[-1] if ref.kind.endswith("arn") else identifier
        return [
            f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{profile}",
            foundation(ref.base_model_id),
        ]
    if ref.kind == "alias":
        return [identifier, foundation(ref.base_model_id)]
    return [foundation(ref.base_model_id)]


def served_region(signed: str, regions: Sequence[str] | None, default: str) -> str:
    """The region a call is authorized in: the one it was signed for when `[auth] regions`
    lists it, else the configured region Outcrop serves (so signing for another region, or
    naming one in an ARN, never escapes a policy written for the served one)."""
    return signed if regions is not None and signed in regions else default


class PolicyEnforcer(BaseInterceptor):
    """Refuses calls the caller's identity policies do not allow (AccessDeniedException)."""

    def __init__(
        self,
        attached: Mapping[str, Sequence[Policy]],
        *,
        default_deny: bool,
        account_id: str,
        aliases: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        regions: Sequence[str] | None = None,
        guardrail_arns: GuardrailArns | None = None,
    ) -> None:
        self.attached = {principal: tuple(p) for principal, p in attached.items()}
        self.default_deny = default_deny
        self.account_id = account_id
        self.aliases = dict(aliases or {})
        self.region = region
        """The region served when `[auth] regions` is unset."""
        self.regions = tuple(regions) if regions is not None else None
        self.guardrail_arns = guardrail_arns

    async def before(self, ctx: RequestContext) -> None:
        identity: Identity | None = ctx.state.get("identity")
        if identity is None:
            return
        policies = self.attached.get(identity.principal)
        if policies is None and not self.default_deny:
            return
        account = identity.account_id or self.account_id
        region = served_region(identity.region, self.regions, self.region)
        action = action_for(ctx.service, ctx.operation)
        resources = resources_for(ctx, region, account, self.aliases, self.guardrail_arns)
        guardrail = guardrail_applied(ctx)
        guardrail_arn: str | None = None
        guardrail_id: str | None = None
        if guardrail is not None:
            guardrail_arn = guardrail_resource(guardrail[0], region, account, self.guardrail_arns)
            guardrail_id = guardrail_key(guardrail_arn, guardrail[1])
        context = request_context(
            principal=identity.principal,
            region=region,
            secure=ctx.scheme == "https",
            guardrail=guardrail_id,
        )
        decision = evaluate(policies or (), action, resources, context)
        if not decision.allowed:
            raise AccessDeniedException(denial_message(identity.principal, action, decision))
        if guardrail_arn is None:
            return
        decision = evaluate(policies or (), APPLY_GUARDRAIL, [guardrail_arn], context)
        if not decision.allowed:
            raise AccessDeniedException(
                denial_message(identity.principal, APPLY_GUARDRAIL, decision)
            )
