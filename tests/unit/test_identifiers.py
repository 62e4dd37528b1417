"""Model identifiers in every form Bedrock accepts, and their resolution to engines."""

from __future__ import annotations

import pytest

from outcrop.catalog.identifiers import parse_identifier
from outcrop.catalog.resolver import ModelRoute, OnDemandNotSupported, Resolver, UnknownModel

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"


@pytest.mark.parametrize(
    "identifier",
    [
        HAIKU,
        f"us.{HAIKU}",
        f"eu.{HAIKU}",
        f"apac.{HAIKU}",
        f"global.{HAIKU}",
        f"us-gov.{HAIKU}",
        f"jp.{HAIKU}",
        f"au.{HAIKU}",
        f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{HAIKU}",
        f"arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/us-gov.{HAIKU}",
    ],
)
def test_forms_resolve_to_the_base_model(identifier: str) -> None:
    resolved = Resolver().resolve(identifier)
    assert resolved.model.model_id == HAIKU
    assert resolved.engine == "default"


def test_profile_only_models_refuse_on_demand_ids() -> None:
    with pytest.raises(OnDemandNotSupported):
        Resolver().resolve(SONNET37)
    with pytest.raises(OnDemandNotSupported):
        Resolver().resolve(f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET37}")
    assert Resolver().resolve(f"us.{SONNET37}").model.model_id == SONNET37


@pytest.mark.parametrize(
    "identifier",
    [
        "anthropic.claude-nonexistent-v9:0",
        "us.anthropic.claude-nonexistent-v9:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
        "nonsense",
    ],
)
def test_unknown_identifiers(identifier: str) -> None:
    with pytest.raises(UnknownModel):
        Resolver().resolve(identifier)


def test_aliases_map_opaque_arns() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456"
    resolver = Resolver(aliases={arn: HAIKU})
    assert resolver.resolve(arn).model.model_id == HAIKU


def test_routes_pick_engines_first_match_wins() -> None:
    resolver = Resolver(
        routes=[ModelRoute("anthropic.claude-3-haiku*", "fast"), ModelRoute("anthropic.*", "big")]
    )
    assert resolver.resolve(HAIKU).engine == "fast"
    assert resolver.resolve(f"us.{SONNET37}").engine == "big"
    with pytest.raises(UnknownModel):
        resolver.resolve("amazon.titan-text-express-v1")


def test_geo_prefix_is_not_confused_with_provider() -> None:
    ref = parse_identifier("us.amazon.nova-lite-v1:0", {})
    assert ref is not None
    assert (ref.geo, ref.base_model_id, ref.provider) == ("us", "amazon.nova-lite-v1:0", "amazon")
