"""Benchmark statistics: percentiles, summaries and timelines over known results."""

from __future__ import annotations

import math
import random
from array import array

import numpy as np
import pytest

from outcrop.cli.bench.stats import Distribution, RequestResult, percentile, summarize, timeline


def test_percentile_matches_numpy_linear_method() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 101, 1000):
        values = sorted(rng.uniform(0, 5) for _ in range(size))
        for q in (0, 1, 10, 50, 90, 99, 99.9, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_percentiles_of_1_to_100() -> None:
    d = Distribution.of(float(v) for v in range(1, 101))
    assert d is not None
    assert d.p(50) == pytest.approx(50.5)
    assert d.p(90) == pytest.approx(90.1)
    assert d.p(99) == pytest.approx(99.01)
    assert (d.count, d.min, d.max, d.mean) == (100, 1.0, 100.0, 50.5)
    assert Distribution.of([]) is None


def _stream(start: float, ttft: float, gap: float, tokens: int) -> RequestResult:
    first = start + ttft
    return RequestResult(
        start=start,
        end=first + gap * (tokens - 1),
        first_token=first,
        gaps=array("d", [gap] * (tokens - 1)),
        chunks=tokens,
        output_tokens=tokens,
        input_tokens=3,
    )


def test_summary_of_identical_streams() -> None:
    results = [_stream(i * 0.5, 0.1, 0.02, 11) for i in range(20)]
    results.append(RequestResult(start=1.0, end=1.01, error="ThrottlingException"))
    results.append(RequestResult(start=1.0, end=1.01, error="ThrottlingException"))
    results.append(RequestResult(start=2.0, end=2.5, chunks=2, error="ModelStreamErrorException"))
    duration = max(r.end for r in results)
    s = summarize(results, duration)
    assert s.requests == 20
    assert s.errors == {"ModelStreamErrorException": 1, "ThrottlingException": 2}
    assert s.failed == 3
    assert s.output_tokens == 220
    assert s.input_tokens == 60
    assert s.ttft is not None and s.itl is not None and s.e2e is not None
    assert s.ttft.p(50) == pytest.approx(0.1) and s.ttft.p(99) == pytest.approx(0.1)
    assert s.itl.count == 200 and s.itl.p(90) == pytest.approx(0.02)
    assert s.e2e.p(50) == pytest.approx(0.3)
    assert s.stream_rate is not None and s.stream_rate.p(50) == pytest.approx(50.0)
    assert s.requests_per_s == pytest.approx(20 / duration)
    assert s.output_tokens_per_s == pytest.approx(220 / duration)


def test_tokens_fall_back_to_chunks_without_server_usage() -> None:
    r = RequestResult(start=0, end=1, first_token=0.5, gaps=array("d", [0.25, 0.25]), chunks=3)
    assert r.tokens == 3
    assert r.decode_rate == pytest.approx(4.0)
    assert r.chunk_times() == pytest.approx([0.5, 0.75, 1.0])


def test_timeline_places_tokens_at_arrival_and_requests_at_completion() -> None:
    # One stream of 4 tokens arriving at 0.5, 1.5, 2.5, 3.5; it completes at 3.5.
    r = RequestResult(
        start=0.0,
        end=3.5,
        first_token=0.5,
        gaps=array("d", [1.0] * 3),
        chunks=4,
        output_tokens=4,
    )
    buckets = timeline([r, RequestResult(start=0, end=0.2, error="X")], 4.0, 1.0)
    assert [b.output_tokens for b in buckets] == [1, 1, 1, 1]
    assert [b.completed for b in buckets] == [0, 0, 0, 1]
    assert [b.errors for b in buckets] == [1, 0, 0, 0]
    assert buckets[3].e2e == [3.5]
    doc = buckets[3].to_json()
    assert doc["requests_per_s"] == 1.0 and doc["output_tokens_per_s"] == 1.0


def test_timeline_last_bucket_absorbs_the_remainder() -> None:
    r = RequestResult(start=0.0, end=2.1, first_token=1.0, chunks=1, output_tokens=1)
    buckets = timeline([r], 2.1, 1.0)
    assert len(buckets) == 2
    assert buckets[-1].width == pytest.approx(1.1)
    assert math.isclose(sum(b.output_tokens for b in buckets), 1.0)
