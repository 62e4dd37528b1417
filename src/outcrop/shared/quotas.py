"""Quotas enforced across replicas: the counters of gateway/quotas.py in Redis, taken atomically.

The same quotas, errors and order of checks as the in-process `QuotaEnforcer` (see
gateway/quotas.py), with every counter in Redis and every decision one Lua script, so that N
replicas admit what one would:

* rates (requests and tokens per minute) are token buckets in a hash per counter (level and
  time of the last update, Redis's own clock, so replicas' clocks do not matter); a counter
  untouched for `IDLE_TTL_MS` has refilled and expires.
* concurrent streams are leases: a sorted set per counter of lease id -> expiry. Admitting a
  stream drops the lapsed leases, counts the rest and adds one; the replica renews the leases
  it holds every third of `[shared] lease_s`, and removes each when its stream ends. A replica
  that dies stops renewing: its slots lapse within `lease_s`.
* the token reservation at admission and its settlement after the call are scripts too.

Redis unreachable (`shared/client.py`): `[shared] quotas_on_failure = "open"` (default) admits
calls with no quota; `"closed"` refuses every call a quota matches with
ServiceUnavailableException (SageMaker's ServiceUnavailable on its endpoints). A call admitted
without Redis holds nothing, so nothing needs releasing when Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from weakref import WeakKeyDictionary

from redis.commands.core import AsyncScript

from outcrop.config.security import QuotaSettings
from outcrop.gateway.call_facts import is_streaming, model_key, principal_of
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.gateway.quotas import (
    QUOTA_EXCEEDED,
    TOO_MANY_REQUESTS,
    TOO_MANY_TOKENS,
    QuotaRule,
    QuotaView,
    busiest,
    counter_row,
)
from outcrop.invocation.context import RequestContext
from outcrop.shared.client import SharedState, SharedUnavailable
from outcrop.wire.errors import (
    ServiceQuotaExceededException,
    ServiceUnavailable,
    ServiceUnavailableException,
    ThrottlingException,
)

log = logging.getLogger("outcrop.shared")

IDLE_TTL_MS = 10 * 60 * 1000
"""A rate counter untouched this long has refilled (a minute does it) and is dropped."""
SETTLE_DELAY_S = 0.005
"""A finished call's settlement waits this long for the next quota script of this replica to
carry it (under load: no round trip of its own), then goes alone."""
SCAN_FACTOR = 10
"""GET /_outcrop/quotas reads at most this many times its `limit` counters per rule."""
UNAVAILABLE = "The quota service is unavailable. Try your request again."

# Shared by the scripts: Redis's clock in milliseconds, and a bucket's level now.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, f, cap)
  local v = redis.call('HMGET', key, f, f .. '_at')
  local lvl, at = tonumber(v[1]), tonumber(v[2])
  if lvl == nil then return cap end
  local l = lvl + math.max(0, now - at) * cap / 60000
  if l > cap then l = cap end
  return l
end
"""

# Settlements of finished calls, carried by the next script this replica runs (or by SETTLE
# alone when none comes within SETTLE_DELAY_S): KEYS[1..ARGV[1]] and ARGV[3..ARGV[2] + 2] are
# theirs; the script's own KEYS and ARGV follow, as K and A.
_SETTLEMENTS = """
local sk, sa = tonumber(ARGV[1]), tonumber(ARGV[2])
local ki, ai = 1, 3
while ai < sa + 3 do
  local lease, nb, ns = ARGV[ai], tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 2])
  ai = ai + 3
  for j = 1, nb do
    local cap, delta = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
    ai = ai + 2
    local l = level(KEYS[ki], 't', cap) + delta
    if l > cap then l = cap end
    redis.call('HSET', KEYS[ki], 't', l, 't_at', now)
    redis.call('PEXPIRE', KEYS[ki], IDLE_TTL_MS)
    ki = ki + 1
  end
  for j = 1, ns do
    redis.call('ZREM', KEYS[ki], lease)
    ki = ki + 1
  end
end
local K, A = {}, {}
for i = sk + 1, #KEYS do K[#K + 1] = KEYS[i] end
for i = sa + 3, #ARGV do A[#A + 1] = ARGV[i] end
""".replace("IDLE_TTL_MS", str(IDLE_TTL_MS))

ADMIT = (
    _PRELUDE
    + _SETTLEMENTS
    + """
-- K: per counter, its bucket hash and its stream-lease set.
-- A: lease id, lease ms, streaming (1/0), idle ttl ms; per counter rpm, tpm, streams ('' none)
local lease, lease_ms = A[1], tonumber(A[2])
local streaming, ttl = A[3] == '1', tonumber(A[4])
local n = #K / 2
local rl, tl = {}, {}
for i = 1, n do
  local tpm, conc = tonumber(A[3 * i + 3]), tonumber(A[3 * i + 4])
  if tpm then
    tl[i] = level(K[2 * i - 1], 't', tpm)
    if tl[i] <= 0 then return 1 end
  end
  if streaming and conc then
    redis.call('ZREMRANGEBYSCORE', K[2 * i], '-inf', now)
    if redis.call('ZCARD', K[2 * i]) >= conc then return 2 end
  end
end
for i = 1, n do
  local rpm = tonumber(A[3 * i + 2])
  if rpm then
    rl[i] = level(K[2 * i - 1], 'r', rpm)
    if rl[i] < 1 then return 3 end
  end
end
for i = 1, n do
  local b = K[2 * i - 1]
  if rl[i] then redis.call('HSET', b, 'r', rl[i] - 1, 'r_at', now) end
  if tl[i] then redis.call('HSET', b, 't', tl[i], 't_at', now) end
  if rl[i] or tl[i] then redis.call('PEXPIRE', b, ttl) end
  if streaming and tonumber(A[3 * i + 4]) then
    redis.call('ZADD', K[2 * i], now + lease_ms, lease)
    redis.call('PEXPIRE', K[2 * i], 2 * lease_ms)
  end
end
return 0
"""
)

RESERVE = (
    _PRELUDE
    + _SETTLEMENTS
    + """
-- K: bucket hashes with a token quota. A: tokens wanted, idle ttl ms, then each tpm.
local wanted, ttl = tonumber(A[1]), tonumber(A[2])
local levels = {}
for i = 1, #K do
  if wanted > tonumber(A[i + 2]) then return 2 end
end
for i = 1, #K do
  levels[i] = level(K[i], 't', tonumber(A[i + 2]))
  if levels[i] < wanted then return 1 end
end
for i = 1, #K do
  redis.call('HSET', K[i], 't', levels[i] - wanted, 't_at', now)
  redis.call('PEXPIRE', K[i], ttl)
end
return 0
"""
)

SETTLE = _PRELUDE + _SETTLEMENTS + "return 0\n"

READ = (
    _PRELUDE
    + """
-- KEYS: per counter, its bucket hash and its stream-lease set. ARGV: rpm, tpm ('' none).
-- Levels as strings (Lua numbers would reach the client truncated to integers).
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local r, t = '', ''
  if rpm then r = tostring(level(KEYS[2 * i - 1], 'r', rpm)) end
  if tpm then t = tostring(level(KEYS[2 * i - 1], 't', tpm)) end
  out[i] = {r, t, redis.call('ZCOUNT', KEYS[2 * i], '(' .. now, '+inf')}
end
return out
"""
)

RENEW = """
-- KEYS: stream-lease sets; ARGV: lease ms, then the lease id held in each set.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_ms = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + lease_ms, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], 2 * lease_ms)
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Counter:
    """One counter of one quota: its keys and limits."""

    bucket: str
    streams: str
    settings: QuotaSettings


@dataclass(slots=True)
class SharedLease:
    """What one call holds in Redis, so that `after` gives back exactly that."""

    lease_id: str
    counters: list[Counter]
    streams: list[Counter] = field(default_factory=list)
    reserved: int = 0
    """Tokens reserved in every token bucket of `counters`."""


def _rule_tag(settings: QuotaSettings) -> str:
    """The same quota names the same counters on every replica (same configuration)."""
    text = settings.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SharedQuotaEnforcer(BaseInterceptor):
    """Throttles calls beyond the configured quotas, counted fleet-wide in Redis."""

    def __init__(
        self,
        quotas: Sequence[QuotaSettings],
        shared: SharedState,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.rules = [(QuotaRule(q, 0), _rule_tag(q)) for q in quotas]
        self.shared = shared
        self.aliases = dict(aliases or {})
        settings = shared.settings
        self.lease_ms = int(settings.lease_s * 1000)
        self.fail_open = settings.quotas_on_failure == "open"
        self._admit = shared.script(ADMIT)
        self._reserve_script = shared.script(RESERVE)
        self._settle = shared.script(SETTLE)
        self._renew = shared.script(RENEW)
        self._read = shared.script(READ)
        self._leases: WeakKeyDictionary[RequestContext, SharedLease] = WeakKeyDictionary()
        self._held: dict[str, SharedLease] = {}
        """Leases with streams, by id: renewed until released."""
        self._releasing: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[list[str], list[str | int]]] = []
        """Settlements of finished calls not yet sent: the next script carries them."""
        self._flusher: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None

    def _counters(self, ctx: RequestContext) -> list[Counter]:
        model = model_key(ctx, self.aliases)
        principal = principal_of(ctx)
        found = []
        for rule, tag in self.rules:
            if not rule.matches(ctx.operation, model, principal):
                continue
            per = rule.settings.per
            key = json.dumps(
                [
                    model if per in ("model", "model+principal") else "",
                    principal if per in ("principal", "model+principal") else "",
                ]
            )
            base = self.shared.key("quota", tag, key)
            found.append(Counter(base + ":rate", base + ":streams", rule.settings))
        return found

    async def before(self, ctx: RequestContext) -> None:
        streaming = is_streaming(ctx)
        # A counter with only a concurrency quota has nothing to decide for a call that does
        # not stream: no round trip for it.
        counters = [
            c
            for c in self._counters(ctx)
            if streaming
            or c.settings.requests_per_minute is not None
            or c.settings.tokens_per_minute is not None
        ]
        if not counters:
            return
        lease = SharedLease(f"{self.shared.replica_id}:{ctx.request_id}", counters)
        keys: list[str] = []
        args: list[str | int] = [lease.lease_id, self.lease_ms, int(streaming), IDLE_TTL_MS]
        for c in counters:
            s = c.settings
            keys += [c.bucket, c.streams]
            args += [_opt(s.requests_per_minute), _opt(s.tokens_per_minute)]
            args.append(_opt(s.concurrent_streams))
        try:
            verdict = await self._carrying(self._admit, keys, args)
        except SharedUnavailable:
            self._unavailable(ctx.service)
            return
        if verdict == 1:
            raise ThrottlingException(TOO_MANY_TOKENS)
        if verdict == 2:
            raise ServiceQuotaExceededException(QUOTA_EXCEEDED)
        if verdict == 3:
            raise ThrottlingException(TOO_MANY_REQUESTS)
        self._leases[ctx] = lease
        if streaming:
            lease.streams = [c for c in counters if c.settings.concurrent_streams is not None]
            if lease.streams:
                self._held[lease.lease_id] = lease
        if any(c.settings.tokens_per_minute is not None for c in counters):
            ctx.call.admission.append(
                lambda counted, max_output: self._reserve(lease, counted, max_output)
            )

    def _unavailable(self, service: str = "bedrock-runtime") -> None:
        if self.fail_open:
            return
        if service.startswith("sagemaker"):
            raise ServiceUnavailable(UNAVAILABLE)
        raise ServiceUnavailableException(UNAVAILABLE)

    async def _reserve(self, lease: SharedLease, input_tokens: int, max_output: int) -> None:
        wanted = input_tokens + max_output
        buckets = [c for c in lease.counters if c.settings.tokens_per_minute is not None]
        keys = [c.bucket for c in buckets]
        args: list[str | int] = [
            wanted,
            IDLE_TTL_MS,
            *(c.settings.tokens_per_minute or 0 for c in buckets),
        ]
        try:
            verdict = await self._carrying(self._reserve_script, keys, args)
        except SharedUnavailable:
            self._unavailable()
            return
        if verdict == 2:
            raise ServiceQuotaExceededException(QUOTA_EXCEEDED)
        if verdict == 1:
            raise ThrottlingException(TOO_MANY_TOKENS)
        lease.reserved += wanted  # a speech session reserves once per turn: settle the sum

    def after(self, ctx: RequestContext) -> None:
        lease = self._leases.pop(ctx, None)
        if lease is None:
            return
        self._held.pop(lease.lease_id, None)
        record = ctx.record
        buckets: list[tuple[Counter, int]] = []
        if record.output_tokens is not None:
            # As in-process: usage unknown keeps the reservation (gateway/quotas.py).
            used = (record.input_tokens or 0) + (record.output_tokens or 0)
            buckets = [
                (c, lease.reserved - used)
                for c in lease.counters
                if c.settings.tokens_per_minute is not None
            ]
        if not buckets and not lease.streams:
            return
        keys = [c.bucket for c, _ in buckets] + [c.streams for c in lease.streams]
        args: list[str | int] = [lease.lease_id, len(buckets), len(lease.streams)]
        for c, delta in buckets:
            args += [c.settings.tokens_per_minute or 0, delta]
        self._pending.append((keys, args))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())
            self._releasing.add(self._flusher)
            self._flusher.add_done_callback(self._releasing.discard)

    def _settlements(self) -> tuple[list[str], list[str | int]]:
        """The pending settlements as a script's leading KEYS and ARGV (see `_SETTLEMENTS`)."""
        keys: list[str] = []
        args: list[str | int] = []
        for k, a in self._pending:
            keys += k
            args += a
        self._pending.clear()
        return keys, [len(keys), len(args), *args]

    async def _carrying(
        self, script: AsyncScript, keys: list[str], args: list[str | int]
    ) -> object:
        """Run `script` with the pending settlements ahead of its own keys and arguments: one
        round trip for both. Redis unreachable: SharedUnavailable (the settlements are lost:
        reservations are kept, stream leases lapse)."""
        pkeys, pargs = self._settlements()
        return await self.shared.run("quotas", partial(script, pkeys + keys, pargs + args))

    async def _flush_soon(self) -> None:
        """Send what no other script carried within SETTLE_DELAY_S."""
        try:
            await asyncio.sleep(SETTLE_DELAY_S)
        finally:
            self._flusher = None
        if self._pending:
            with contextlib.suppress(SharedUnavailable):  # leases lapse on their own
                await self._carrying(self._settle, [], [])

    async def snapshot(self, limit: int) -> list[QuotaView]:
        """Each rule's busiest counters in Redis now: at most `limit` per rule, among the first
        `SCAN_FACTOR * limit` counters SCAN finds (GET /_outcrop/quotas). SharedUnavailable
        when Redis is unreachable."""
        return [await self._snapshot_rule(rule.settings, tag, limit) for rule, tag in self.rules]

    async def _snapshot_rule(self, s: QuotaSettings, tag: str, limit: int) -> QuotaView:
        prefix = self.shared.key("quota", tag, "")
        pattern = _glob_escape(prefix) + "*"
        found: list[str] = []
        seen: set[str] = set()
        cursor = 0
        while True:
            cursor, keys = await self.shared.run(
                "quotas", partial(self.shared.redis.scan, cursor, match=pattern, count=1000)
            )
            for raw in keys:
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                base = key.rpartition(":")[0]  # without ":rate" / ":streams"
                if base not in seen:
                    seen.add(base)
                    found.append(base)
            if cursor == 0 or len(found) >= SCAN_FACTOR * limit:
                break
        rows = []
        if found:
            keys = [k for base in found for k in (base + ":rate", base + ":streams")]
            args = [_opt(s.requests_per_minute), _opt(s.tokens_per_minute)]
            read = await self.shared.run("quotas", partial(self._read, keys, args))
            for base, (r, t, streams) in zip(found, read, strict=True):
                model, principal = json.loads(base[len(prefix) :])
                rows.append(counter_row(model, principal, _num(r), _num(t), int(streams), s))
        rows.sort(key=busiest)
        complete = cursor == 0
        total = len(rows) if complete else None
        return QuotaView(s, rows[:limit], total, len(rows) > limit or not complete)

    # -- lease renewal -----------------------------------------------------------------------

    def start(self) -> None:
        if self._renewer is None and any(
            rule.settings.concurrent_streams is not None for rule, _ in self.rules
        ):
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        interval = self.shared.settings.lease_s / 3
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> None:
        """Extend every stream lease this replica holds by `lease_s` from now."""
        keys: list[str] = []
        args: list[str | int] = [self.lease_ms]
        for lease in list(self._held.values()):
            for c in lease.streams:
                keys.append(c.streams)
                args.append(lease.lease_id)
        if not keys:
            return
        with contextlib.suppress(SharedUnavailable):
            await self.shared.run("quotas", lambda: self._renew(keys, args))

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._flusher is not None:
            self._flusher.cancel()  # settle now rather than after the delay
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        if self._pending:
            with contextlib.suppress(SharedUnavailable):
                await self._carrying(self._settle, [], [])


def _opt(value: int | None) -> str | int:
    return "" if value is None else value


def _num(value: bytes | str) -> float | None:
    text = value.decode() if isinstance(value, bytes) else value
    return float(text) if text else None


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
