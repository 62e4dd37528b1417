"""State grown from names the client chooses stays bounded (issue 13, item 8).

20,000 random SageMaker endpoint names added 150 MiB and grew `/metrics` to 50 MB; quota
counters grew per model ID. Replayed here with a few hundred names against small caps.
"""

from __future__ import annotations

import json
import random
import string

from prometheus_client.parser import text_string_to_metric_families

from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.gateway.metrics import OTHER_MODEL, LabelLimiter
from outcrop.gateway.quotas import QuotaEnforcer
from tests.asgi_driver import call

BODY = json.dumps({"inputs": "hi"}).encode()
JSON = [("content-type", "application/json")]


def random_name(rng: random.Random) -> str:
    return "e" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=20))


def model_labels(app: OutcropApp) -> set[str]:
    text = app.metrics.exposition().decode()
    return {
        sample.labels["model"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "model" in sample.labels
    }


async def test_random_endpoint_names_do_not_grow_metrics_quotas_or_endpoints() -> None:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "limits": {"max_metric_label_values": 20, "max_quota_counters": 30},
            "quotas": [{"model": "*", "requests_per_minute": 100000}],
            "sagemaker": {"max_unconfigured_endpoints": 25},
        }
    )
    app = OutcropApp(settings, engines={"default": ScriptedEngine()})
    rng = random.Random(13)
    sizes = []
    for round_ in range(3):
        for _ in range(150):
            path = f"/endpoints/{random_name(rng)}/invocations"
            result = await call(app, "POST", path, BODY, JSON)
            assert result.status == 200, result.body
        sizes.append(len(app.metrics.exposition()))
        assert len(model_labels(app)) <= 20, round_
    assert sizes[2] <= sizes[0] * 1.05  # flat once the cap is reached
    quota = next(i for i in app.interceptors if isinstance(i, QuotaEnforcer))
    assert len(quota.rules[0]) <= 30
    assert len(app.sagemaker.registry.endpoints()) <= 25
    assert len(app.sagemaker._pools) <= 25 and len(app.sagemaker._backends) <= 25
    endpoint_routes = [p for _, p in app.local_routes if p.startswith("/_outcrop/endpoints/")]
    assert len(endpoint_routes) <= 25
    # The most recent names are still their own label, with their counts.
    last = random_name(random.Random(99))
    assert (await call(app, "POST", f"/endpoints/{last}/invocations", BODY, JSON)).status == 200
    assert last in model_labels(app)


def test_the_limiter_keeps_values_with_streams_in_flight() -> None:
    forgotten: list[str] = []
    labels = LabelLimiter(2, forgotten.append)
    assert labels.admit("a") == "a"
    labels.streaming("a", 1)
    assert labels.admit("b") == "b"
    labels.streaming("b", 1)
    assert labels.admit("c") == OTHER_MODEL  # both busy: nothing can make room
    labels.streaming("a", -1)
    assert labels.admit("c") == "c" and forgotten == ["a"]
    assert labels.admit("b") == "b" and len(labels) == 2
