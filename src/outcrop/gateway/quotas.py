"""Quotas: requests per minute, tokens per minute and concurrent streams, per model and/or per
principal, with AWS's throttling errors.

Each configured quota matches calls by model (glob over the base model ID, or the SageMaker
endpoint name), principal (glob over its ARN) and operation, and keeps one set of counters per
model, per principal, per both, or for all matched calls (`per`). Rates are token buckets that
hold a minute's worth and refill continuously, as AWS's per-minute quotas behave.

* requests per minute: one per call, taken before the operation runs.
* tokens per minute: the operation reports the request's input tokens and max output tokens
  (`invocation.pipeline.admit`) before generating; that much is reserved, and once the call is over
  the reservation is settled with the usage the operation recorded (`ctx.record`). A bucket
  already in deficit refuses calls at once.
* concurrent streams: streaming calls in flight; released when the stream ends.

Counters are kept per rule for at most `[limits] max_quota_counters` models/principals (10,000
by default), least recently used first: model IDs and endpoint names are the client's choice.
Past the cap the least recently used counters with no stream in flight are dropped (a dropped
counter has usually refilled: it is the one unused longest); when every counter has a stream
in flight, new keys share one overflow counter.

Over a rate: ThrottlingException with AWS's texts ("Too many requests, please wait before
trying again." / "Too many tokens, please wait before trying again."), which the SDKs retry.
A single call that could never fit the per-minute token quota, and streams beyond the
concurrency quota, get ServiceQuotaExceededException, which they do not retry. (Which of the
two AWS sends for concurrency is unverified; the quota-exceeded shape describes it.)
"""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from outcrop.config.security import QuotaSettings
from outcrop.gateway.call_facts import is_streaming, model_key, principal_of
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.invocation.context import RequestContext
from outcrop.wire.errors import ServiceQuotaExceededException, ThrottlingException

TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."
QUOTA_EXCEEDED = (
    "Your request exceeds the service quota for your account. You can view your quotas at "
    "https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html. "
    "You can resubmit your request later."
)

Clock = Callable[[], float]
DEFAULT_MAX_COUNTERS = 10_000
OVERFLOW_KEY = ("other", "other")


@dataclass(slots=True)
class TokenBucket:
    """`capacity` units that refill at `capacity` per minute; the level may go negative."""

    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(self.capacity, self.level + elapsed * self.capacity / 60.0)
        self.updated = now

    def try_take(self, amount: float, now: float) -> bool:
        self.refill(now)
        if self.level < amount:
            return False
        self.level -= amount
        return True

    def level_at(self, now: float) -> float:
        """The level at `now`, without updating the bucket."""
        elapsed = max(0.0, now - self.updated)
        return min(self.capacity, self.level + elapsed * self.capacity / 60.0)

    def adjust(self, amount: float, now: float) -> None:
        """Give back (positive) or charge (negative) units after the fact."""
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)


@dataclass(slots=True)
class Counters:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    streams: int = 0


@dataclass(slots=True)
class Lease:
    """What one call holds, so `after` releases exactly that."""

    counters: list[Counters] = field(default_factory=list)
    streams: list[Counters] = field(default_factory=list)
    reserved: list[tuple[Counters, int]] = field(default_factory=list)


@dataclass(slots=True)
class QuotaView:
    """One quota rule and its busiest counters, as GET /_outcrop/quotas lists them."""

    settings: QuotaSettings
    counters: list[dict[str, object]]
    total: int | None
    """Counters this rule holds (None where unknown: Redis lists those it scanned)."""
    truncated: bool


def counter_row(
    model: str,
    principal: str,
    requests: float | None,
    tokens: float | None,
    streams: int,
    settings: QuotaSettings,
) -> dict[str, object]:
    """One counter as listed: what is left in each bucket now, and streams in flight."""
    return {
        "model": model or None,
        "principal": principal or None,
        "requestsLeft": None if requests is None else round(float(requests), 3),
        "requestsPerMinute": settings.requests_per_minute,
        "tokensLeft": None if tokens is None else round(float(tokens), 3),
        "tokensPerMinute": settings.tokens_per_minute,
        "streamsInFlight": streams,
        "concurrentStreams": settings.concurrent_streams,
    }


def busiest(row: dict[str, object]) -> tuple[float, float, float]:
    """Sort key: most streams in flight first, then the emptiest request and token buckets."""

    def used(left: object, cap: object) -> float:
        if isinstance(left, float) and isinstance(cap, int) and cap > 0:
            return left / cap
        return 1.0

    streams = row["streamsInFlight"]
    return (
        -float(streams) if isinstance(streams, int) else 0.0,
        used(row["requestsLeft"], row["requestsPerMinute"]),
        used(row["tokensLeft"], row["tokensPerMinute"]),
    )


class QuotaRule:
    """One configured quota and its counters, at most `max_counters` of them (see the module
    docstring)."""

    def __init__(self, settings: QuotaSettings, max_counters: int = DEFAULT_MAX_COUNTERS) -> None:
        self.settings = settings
        self.max_counters = max_counters
        self._counters: OrderedDict[tuple[str, str], Counters] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counters)

    def matches(self, operation: str, model: str, principal: str) -> bool:
        s = self.settings
        return (
            fnmatch.fnmatchcase(operation, s.operation)
            and fnmatch.fnmatchcase(model, s.model)
            and fnmatch.fnmatchcase(principal, s.principal)
        )

    def counters(self, model: str, principal: str, now: float) -> Counters:
        per = self.settings.per
        key = (
            model if per in ("model", "model+principal") else "",
            principal if per in ("principal", "model+principal") else "",
        )
        found = self._counters.get(key)
        if found is not None:
            self._counters.move_to_end(key)
            return found
        if len(self._counters) >= self.max_counters:
            idle = next((k for k, c in self._counters.items() if c.streams == 0), None)
            if idle is None:
                key = OVERFLOW_KEY  # every counter has streams in flight: share one
                found = self._counters.get(key)
                if found is not None:
                    return found
            else:
                del self._counters[idle]
        rpm, tpm = self.settings.requests_per_minute, self.settings.tokens_per_minute
        found = Counters(
            TokenBucket(rpm, rpm, now) if rpm is not None else None,
            TokenBucket(tpm, tpm, now) if tpm is not None else None,
        )
        self._counters[key] = found
        return found


class QuotaEnforcer(BaseInterceptor):
    """Throttles calls beyond the configured quotas."""

    def __init__(
        self,
        quotas: Sequence[QuotaSettings],
        clock: Clock = time.monotonic,
        aliases: Mapping[str, str] | None = None,
        max_counters: int = DEFAULT_MAX_COUNTERS,
    ) -> None:
        self.rules = [QuotaRule(q, max_counters) for q in quotas]
        self.clock = clock
        self.aliases = dict(aliases or {})
        self._leases: WeakKeyDictionary[RequestContext, Lease] = WeakKeyDictionary()

    async def before(self, ctx: RequestContext) -> None:
        model = model_key(ctx, self.aliases)
        principal = principal_of(ctx)
        now = self.clock()
        matched = [
            (rule, rule.counters(model, principal, now))
            for rule in self.rules
            if rule.matches(ctx.operation, model, principal)
        ]
        if not matched:
            return
        lease = Lease()
        self._leases[ctx] = lease
        streaming = is_streaming(ctx)
        for rule, counters in matched:
            if counters.tokens is not None:
                counters.tokens.refill(now)
                if counters.tokens.level <= 0:
                    raise ThrottlingException(TOO_MANY_TOKENS)
            limit = rule.settings.concurrent_streams
            if streaming and limit is not None and counters.streams >= limit:
                raise ServiceQuotaExceededException(QUOTA_EXCEEDED)
        for _, counters in matched:
            if counters.requests is not None and not counters.requests.try_take(1, now):
                self._refund_requests(lease, now)
                raise ThrottlingException(TOO_MANY_REQUESTS)
            lease.counters.append(counters)
        if streaming:
            for _, counters in matched:
                counters.streams += 1
                lease.streams.append(counters)
        ctx.call.admission.append(
            lambda counted, max_output: self._reserve(lease, counted, max_output)
        )

    async def _reserve(self, lease: Lease, input_tokens: int, max_output: int) -> None:
        wanted = input_tokens + max_output
        now = self.clock()
        for counters in lease.counters:
            bucket = counters.tokens
            if bucket is None:
                continue
            if wanted > bucket.capacity:
                raise ServiceQuotaExceededException(QUOTA_EXCEEDED)
            if not bucket.try_take(wanted, now):
                raise ThrottlingException(TOO_MANY_TOKENS)
            lease.reserved.append((counters, wanted))

    def after(self, ctx: RequestContext) -> None:
        lease = self._leases.pop(ctx, None)
        if lease is None:
            return
        now = self.clock()
        for counters in lease.streams:
            counters.streams -= 1
        record = ctx.record
        # A call may reserve more than once (a speech session: once per turn): settle the sum.
        reserved: dict[int, int] = {}
        for c, n in lease.reserved:
            reserved[id(c)] = reserved.get(id(c), 0) + n
        for counters in lease.counters:
            bucket = counters.tokens
            if bucket is None:
                continue
            held = reserved.get(id(counters), 0)
            if record.output_tokens is None:
                # Usage unknown: a call that failed mid-way keeps its reservation; one refused
                # before generating (nothing reserved) costs no tokens.
                continue
            used = (record.input_tokens or 0) + (record.output_tokens or 0)
            bucket.adjust(held - used, now)

    def snapshot(self, limit: int) -> list[QuotaView]:
        """Each rule's busiest counters now, at most `limit` per rule (GET /_outcrop/quotas)."""
        now = self.clock()
        views = []
        for rule in self.rules:
            rows = [
                counter_row(
                    model,
                    principal,
                    c.requests.level_at(now) if c.requests else None,
                    c.tokens.level_at(now) if c.tokens else None,
                    c.streams,
                    rule.settings,
                )
                for (model, principal), c in rule._counters.items()
            ]
            rows.sort(key=busiest)
            views.append(QuotaView(rule.settings, rows[:limit], len(rows), len(rows) > limit))
        return views

    def _refund_requests(self, lease: Lease, now: float) -> None:
        for counters in lease.counters:
            if counters.requests is not None:
                counters.requests.adjust(1, now)
        lease.counters.clear()
