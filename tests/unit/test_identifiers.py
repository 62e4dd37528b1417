"""Model identifiers in every form Bedrock accepts, and their resolution to engines."""

from __future__ import annotations

import pytest

from outcrop.catalog.identifiers import parse_identifier
from outcrop.catalog.resolver import ModelRoute, OnDemandNotSupported, Resolver, UnknownModel
from outcrop.catalog.settings import CatalogSettings
from outcrop.dialects.registry import dialect_for

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
        "acme.model-v1:0",
        "us.acme.model-v1:0",
        "anthropic.Claude With Spaces",
        "anthropic.",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abcdef123456",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
        "nonsense",
    ],
)
def test_unknown_identifiers(identifier: str) -> None:
    with pytest.raises(UnknownModel):
        Resolver().resolve(identifier)


NEW_IDS = [
    ("global.anthropic.claude-sonnet-5-5", "anthropic.claude-sonnet-5-5", "Anthropic"),
    ("us.anthropic.claude-opus-4-9-v1:0", "anthropic.claude-opus-4-9-v1:0", "Anthropic"),
    (
        "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku-6",
        "anthropic.claude-haiku-6",
        "Anthropic",
    ),
    ("qwen.qwen4-coder-999b-v1:0", "qwen.qwen4-coder-999b-v1:0", "Qwen"),
    ("apac.deepseek.v4", "deepseek.v4", "DeepSeek"),
    ("minimax.minimax-m3.1", "minimax.minimax-m3.1", "MiniMax"),
    ("arn:aws:bedrock:us-west-2::foundation-model/zai.glm-6", "zai.glm-6", "Z.AI"),
    ("amazon.nova-3-pro-v1:0", "amazon.nova-3-pro-v1:0", "Amazon"),
]


@pytest.mark.parametrize(("identifier", "base", "provider"), NEW_IDS)
def test_new_ids_of_known_providers_are_inferred(identifier: str, base: str, provider: str) -> None:
    resolved = Resolver().resolve(identifier)
    assert resolved.model.model_id == base
    assert resolved.model.inferred
    assert resolved.model.provider_name == provider
    assert resolved.model.model_name.endswith(" (inferred by Outcrop)")
    assert resolved.model.output_modalities == ("TEXT",)
    assert dialect_for(base) is not None
    with pytest.raises(UnknownModel):
        Resolver(strict=True).resolve(identifier)


def test_inferred_claude_needs_a_profile_as_current_claude_does() -> None:
    with pytest.raises(OnDemandNotSupported):
        Resolver().resolve("anthropic.claude-opus-4-9")
    assert Resolver().resolve("us.anthropic.claude-opus-4-9").model.provider_model_name == (
        "claude-opus-4-9"
    )
    assert Resolver().resolve("qwen.qwen9").model.on_demand


def test_inferred_embedding_models_are_embedding_models() -> None:
    model = Resolver().resolve("cohere.embed-v9:0").model
    assert model.output_modalities == ("EMBEDDING",)
    assert not model.streaming


def test_catalog_ids_are_not_inferred_and_strict_serves_them() -> None:
    for model_id in ("qwen.qwen3-coder-480b-a35b-v1:0", "deepseek.v3.2", "minimax.minimax-m2.1"):
        model = Resolver(strict=True).resolve(model_id).model
        assert not model.inferred
    assert Resolver(strict=True).resolve("us.anthropic.claude-opus-4-7").model.model_name == (
        "Claude Opus 4.7"
    )


def test_configured_models_extend_the_catalog_in_strict_mode() -> None:
    settings = CatalogSettings.model_validate(
        {
            "strict": True,
            "models": [
                {
                    "id": "acme.rocket-v1:0",
                    "provider": "Acme",
                    "name": "Rocket",
                    "inference_types": ["ON_DEMAND"],
                }
            ],
        }
    )
    resolver = Resolver(extra_models=settings.extra_models(), strict=settings.strict)
    model = resolver.resolve("acme.rocket-v1:0").model
    assert (model.provider_name, model.model_name, model.inferred) == ("Acme", "Rocket", False)
    assert "acme.rocket-v1:0" in resolver.served_models()
    with pytest.raises(UnknownModel):
        resolver.resolve("qwen.qwen9")


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
