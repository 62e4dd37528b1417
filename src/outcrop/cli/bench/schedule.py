"""When a benchmark sends its requests: the request-rate schedule, as pure functions.

A schedule is a list of stages, each a rate (requests per second) held for a duration:
`--rate 20` is one stage at 20 req/s for the whole run; `--rate 5:10s,20:30s,50:10s` ramps
through three stages (the last one repeats until the run ends). Arrivals within a stage are
evenly spaced, or exponentially spaced (a Poisson process, as real traffic is) with
`--arrivals poisson`, seeded for repeatability.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_DURATION = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Stage:
    rate: float
    """Requests per second."""
    duration: float | None
    """Seconds; None for the last stage when it runs until the run ends."""


def parse_duration(text: str) -> float:
    """`90`, `90s`, `1.5m`, `250ms`, `1h` → seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 2m, 500ms)")
    return float(match.group("value")) * _UNITS[match.group("unit")]


def parse_rate(spec: str) -> list[Stage]:
    """`20` or `5:10s,20:30s` → stages; every stage but the last needs a duration."""
    stages: list[Stage] = []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty rate schedule")
    for index, part in enumerate(parts):
        rate_text, _, duration_text = part.partition(":")
        try:
            rate = float(rate_text)
        except ValueError:
            raise ValueError(f"not a rate: {rate_text!r} (requests per second)") from None
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be positive: {rate_text!r}")
        duration = parse_duration(duration_text) if duration_text else None
        if duration is None and index < len(parts) - 1:
            raise ValueError(f"stage {part!r} needs a duration (RATE:DURATION) before the next")
        stages.append(Stage(rate, duration))
    return stages


def arrivals(stages: Sequence[Stage], *, poisson: bool = False, seed: int = 0) -> Iterator[float]:
    """Send times in seconds from the start, without end (the caller stops taking them)."""
    rng = random.Random(seed)
    stage_start = 0.0
    t = 0.0
    for index, stage in enumerate(stages):
        last = index == len(stages) - 1
        stage_end = math.inf if last or stage.duration is None else stage_start + stage.duration
        origin = max(t, stage_start)
        t = origin
        count = 0
        while t < stage_end:
            yield t
            count += 1
            # Uniform times are computed, not accumulated, so that rounding never adds one.
            t = t + rng.expovariate(stage.rate) if poisson else origin + count / stage.rate
        stage_start = stage_end


def schedule_length(stages: Sequence[Stage]) -> float | None:
    """Seconds covered by stages with a duration, or None if the last one is open-ended."""
    if stages[-1].duration is None:
        return None
    return sum(s.duration or 0.0 for s in stages)
