"""Request-rate schedules: parsing and arrival times."""

from __future__ import annotations

import itertools

import pytest

from outcrop.cli.bench.schedule import (
    Stage,
    arrivals,
    parse_duration,
    parse_rate,
    schedule_length,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("1.5m", 90.0), ("250ms", 0.25), ("1h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-1s", "3 days", "1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_rate_specs() -> None:
    assert parse_rate("20") == [Stage(20.0, None)]
    assert parse_rate("5:10s, 20:30s") == [Stage(5.0, 10.0), Stage(20.0, 30.0)]
    assert schedule_length(parse_rate("5:10s,20:30s")) == pytest.approx(40.0)
    assert schedule_length(parse_rate("5:10s,20")) is None


@pytest.mark.parametrize("text", ["0", "-3", "x", "5,10", "5:zz", ""])
def test_bad_rate_specs(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_uniform_arrivals_follow_each_stage() -> None:
    times = list(itertools.islice(arrivals(parse_rate("2:1s,10:1s")), 12))
    assert times[:2] == pytest.approx([0.0, 0.5])
    assert times[2:12] == pytest.approx([1.0 + i / 10 for i in range(10)])
    # The last stage goes on past its duration at its rate.
    after = list(itertools.islice(arrivals(parse_rate("2:1s,10:1s")), 14))[-1]
    assert after == pytest.approx(2.1)


def test_poisson_arrivals_have_the_mean_rate_and_are_seeded() -> None:
    stages = parse_rate("50")
    times = list(itertools.islice(arrivals(stages, poisson=True, seed=3), 5000))
    assert times == sorted(times)
    assert 5000 / times[-1] == pytest.approx(50, rel=0.05)
    again = list(itertools.islice(arrivals(stages, poisson=True, seed=3), 5000))
    assert again == times
    other = list(itertools.islice(arrivals(stages, poisson=True, seed=4), 50))
    assert other != times[:50]
