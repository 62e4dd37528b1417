"""Parsing of every model identifier form Bedrock accepts into a base foundation-model ID.

Forms: base IDs (`anthropic.claude-3-haiku-20240307-v1:0`), cross-region inference profiles
(`us.` / `eu.` / `apac.` / `global.` / ... + base ID), foundation-model and inference-profile ARNs,
and ARNs whose model cannot be read off the identifier (application inference profiles,
provisioned, custom and imported models), which the user maps with aliases in the config.
Pure functions; the decoded path segment comes in, a `ModelRef` comes out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# AWS CDK CrossRegionInferenceProfileRegion plus the prefixes langchain-aws strips.
GEO_PREFIXES = ("us-gov", "us", "eu", "apac", "global", "jp", "au", "ca", "sa", "amer")

_ARN = re.compile(
    r"^arn:aws(?:-[a-z-]+)?:bedrock:(?P<region>[a-z0-9-]*):(?P<account>[0-9]*):"
    r"(?P<kind>[a-z-]+)/(?P<rest>.+)$"
)

REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
"""A well-formed AWS region name (`us-east-1`, `us-gov-west-1`, `cn-north-1`, ...)."""

_PARTITIONS = (
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("us-gov-", "aws-us-gov"),
    ("cn-", "aws-cn"),
)


def partition_of(region: str) -> str:
    """The ARN partition a region belongs to (`aws` for the commercial regions)."""
    for prefix, partition in _PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


IdentifierKind = Literal[
    "base", "inference-profile", "foundation-model-arn", "inference-profile-arn", "alias"
]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What an identifier names: a base model ID, reached through `kind`."""

    identifier: str
    base_model_id: str
    kind: IdentifierKind
    geo: str | None = None

    @property
    def provider(self) -> str:
        """The provider segment (`anthropic`, `amazon`, ...), which picks the body dialect."""
        return self.base_model_id.split(".", 1)[0]

    @property
    def through_profile(self) -> bool:
        return self.kind in ("inference-profile", "inference-profile-arn") or (self.kind == "alias")


def strip_geo(profile_id: str) -> tuple[str | None, str]:
    """Split `us.anthropic.x` into (`us`, `anthropic.x`); (None, id) when there is no prefix."""
    head, _, rest = profile_id.partition(".")
    if rest and head in GEO_PREFIXES and "." in rest:
        return head, rest
    return None, profile_id


def parse_identifier(identifier: str, aliases: Mapping[str, str]) -> ModelRef | None:
    """Resolve `identifier` to a base model ID, or None if its form names no model."""
    if identifier in aliases:
        return ModelRef(identifier, aliases[identifier], "alias")
    m = _ARN.match(identifier)
    if m:
        kind, rest = m.group("kind"), m.group("rest")
        if kind == "foundation-model":
            return ModelRef(identifier, rest, "foundation-model-arn")
        if kind == "inference-profile":
            geo, base = strip_geo(rest)
            return ModelRef(identifier, base, "inference-profile-arn", geo)
        return None  # application profiles, provisioned/custom/imported models need aliases
    geo, base = strip_geo(identifier)
    if geo is not None:
        return ModelRef(identifier, base, "inference-profile", geo)
    return ModelRef(identifier, identifier, "base")
