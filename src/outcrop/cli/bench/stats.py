"""The statistics of a benchmark run: pure functions over per-request results, no I/O.

Definitions (times in seconds, measured by the client):
- TTFT, time to first token: from sending the request to the first chunk that carries text.
- ITL, inter-token latency: the gaps between consecutive text chunks of one stream, pooled
  over all streams. (A chunk may carry more than one token; Outcrop's engines send one.)
- E2E latency: from sending the request to the end of its stream.
- Output tokens of a request: the server's count (`outputTokenCount` / ConverseStream usage)
  when it reports one, else the number of text chunks.
- Per-stream output rate: (output tokens - 1) / (E2E - TTFT), the decode speed one client
  sees; streams with fewer than two tokens have none.
- Aggregate output throughput: all output tokens / the run's duration.
- Requests per second: completed requests (errors excluded) / the run's duration.

Percentiles interpolate linearly between closest ranks (numpy's default "linear" method).
Failed requests count only in `errors`, by error type.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0)


@dataclass(frozen=True, slots=True)
class RequestResult:
    """One request as the client saw it; times are seconds since the run started."""

    start: float
    end: float
    first_token: float | None = None
    """Arrival of the first text chunk (absolute, like start/end)."""
    gaps: Sequence[float] = ()
    """Gaps between consecutive text chunks (an `array('d')` in runs, to keep memory low)."""
    chunks: int = 0
    output_tokens: int | None = None
    input_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.start

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def tokens(self) -> int:
        """Output tokens: the server's count, else the text chunks received."""
        return self.output_tokens if self.output_tokens is not None else self.chunks

    @property
    def decode_rate(self) -> float | None:
        """Tokens per second after the first token, as this stream's client saw them."""
        if self.first_token is None or self.tokens < 2:
            return None
        span = self.end - self.first_token
        return (self.tokens - 1) / span if span > 0 else None

    def chunk_times(self) -> list[float]:
        """Arrival time of every text chunk."""
        if self.first_token is None:
            return []
        times = [self.first_token]
        for gap in self.gaps:
            times.append(times[-1] + gap)
        return times


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, interpolating linearly."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    rank = (len(sorted_values) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(sorted_values[low])
    weight = rank - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary statistics of one latency (or rate) over a run."""

    count: int
    mean: float
    min: float
    max: float
    percentiles: dict[str, float]

    @classmethod
    def of(cls, values: Iterable[float], qs: Sequence[float] = PERCENTILES) -> Distribution | None:
        ordered = sorted(values)
        if not ordered:
            return None
        return cls(
            count=len(ordered),
            mean=math.fsum(ordered) / len(ordered),
            min=ordered[0],
            max=ordered[-1],
            percentiles={_pname(q): percentile(ordered, q) for q in qs},
        )

    def p(self, q: float) -> float:
        return self.percentiles[_pname(q)]

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
            **self.percentiles,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of a run."""

    duration: float
    requests: int
    """Requests that completed without error."""
    errors: dict[str, int]
    output_tokens: int
    input_tokens: int
    ttft: Distribution | None
    itl: Distribution | None
    e2e: Distribution | None
    stream_rate: Distribution | None
    output_tokens_per_s: float
    requests_per_s: float

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        def dist(d: Distribution | None) -> dict[str, Any] | None:
            return None if d is None else d.to_json()

        return {
            "duration_s": self.duration,
            "requests": self.requests,
            "failed": self.failed,
            "errors": dict(self.errors),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests_per_s": self.requests_per_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "ttft_s": dist(self.ttft),
            "itl_s": dist(self.itl),
            "e2e_s": dist(self.e2e),
            "stream_output_tokens_per_s": dist(self.stream_rate),
        }


def summarize(results: Sequence[RequestResult], duration: float) -> Summary:
    """The summary of `results` over a run that lasted `duration` seconds."""
    ok = [r for r in results if r.ok]
    errors = Counter(r.error for r in results if r.error is not None)
    output_tokens = sum(r.tokens for r in ok)
    span = duration if duration > 0 else math.nan
    return Summary(
        duration=duration,
        requests=len(ok),
        errors=dict(sorted(errors.items())),
        output_tokens=output_tokens,
        input_tokens=sum(r.input_tokens or 0 for r in ok),
        ttft=Distribution.of(t for r in ok if (t := r.ttft) is not None),
        itl=Distribution.of(g for r in ok for g in r.gaps),
        e2e=Distribution.of(r.e2e for r in ok),
        stream_rate=Distribution.of(v for r in ok if (v := r.decode_rate) is not None),
        output_tokens_per_s=output_tokens / span if duration > 0 else 0.0,
        requests_per_s=len(ok) / span if duration > 0 else 0.0,
    )


@dataclass(slots=True)
class Bucket:
    """One interval of the timeline: what completed or arrived during it."""

    start: float
    width: float
    completed: int = 0
    errors: int = 0
    output_tokens: float = 0.0
    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def ps(values: list[float]) -> dict[str, float] | None:
            d = Distribution.of(values)
            return None if d is None else d.percentiles

        return {
            "t": self.start,
            "requests_per_s": self.completed / self.width,
            "errors_per_s": self.errors / self.width,
            "output_tokens_per_s": self.output_tokens / self.width,
            "ttft_s": ps(self.ttft),
            "e2e_s": ps(self.e2e),
        }


def timeline(results: Sequence[RequestResult], duration: float, width: float) -> list[Bucket]:
    """Per-interval throughput and latency: requests and latencies by completion time,
    output tokens by arrival time (a request's tokens spread evenly over its text chunks).
    Intervals are `width` seconds; the last one also takes the run's remainder."""
    if width <= 0:
        raise ValueError("bucket width must be positive")
    end = max([duration, *(r.end for r in results)]) if results else duration
    count = max(1, math.floor(end / width + 1e-9))
    buckets = [Bucket(i * width, width) for i in range(count)]
    # The last bucket absorbs the remainder, so that no bucket is a sliver with wild rates.
    buckets[-1].width = max(width, end - buckets[-1].start)

    def at(t: float) -> Bucket:
        return buckets[min(count - 1, max(0, int(t / width)))]

    for r in results:
        bucket = at(r.end)
        if not r.ok:
            bucket.errors += 1
            continue
        bucket.completed += 1
        bucket.e2e.append(r.e2e)
        if r.ttft is not None:
            bucket.ttft.append(r.ttft)
        times = r.chunk_times()
        if times:
            share = r.tokens / len(times)
            for t in times:
                at(t).output_tokens += share
        elif r.tokens:
            bucket.output_tokens += r.tokens
    return buckets


def _pname(q: float) -> str:
    return f"p{q:g}"
