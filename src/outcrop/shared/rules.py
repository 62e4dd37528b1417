"""Fault rules and scripted responses shared by replicas: the rule registry in Redis.

The admin API on any replica writes the rules to Redis (`<prefix>:<kind>:*`: the settings by
id, their order, how often each matched and fired, a version counter bumped by every change);
every replica matches calls against its local copy of them, so matching (globs, the RE2 prompt
pattern, the probability roll) costs no network. Before matching, a call reads the version (one
`GET`, at most once per `[shared] rules_refresh_s`, 0.1 s by default) and reloads the copy
when it moved. A change through the admin API answers only `rules_refresh_s` after it is
written: by then every replica's next call reads the version again, so a rule added through
replica A applies to the very next call on replica C. When a rule matches, one Lua script
counts the match and claims the firing: it fires only while `fired < times`, so `times`
counts once fleet-wide.

Redis unreachable (shared/client.py): `[shared] rules_on_failure = "last_known"` (default)
keeps matching the copy last read, with the counts last read, counting `times` on this replica
alone until Redis returns (a rule may then fire up to `times` more times per replica);
`"none"` applies no rule. The admin API answers 503 while Redis is unreachable.

Rules from the configuration file are added to Redis at start-up under their id (default
`<kind>-config-N`) unless a rule with that id is there already, so that replicas started with
the same file add them once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from outcrop.config.security import RuleMatchSettings
from outcrop.gateway.call_facts import prompt_text
from outcrop.gateway.rules import Rule, RuleRegistry
from outcrop.shared.client import SharedState, SharedUnavailable

ADD = """
-- KEYS: rules, order, sequence, version. ARGV: id ('' for a new one), id prefix, settings JSON
-- (the id spliced in for a new id), created. Returns {1, id} or {0, id} when the id is taken.
local id = ARGV[1]
if id == '' then
  repeat
    id = ARGV[2] .. '-' .. redis.call('INCR', KEYS[3])
  until redis.call('HEXISTS', KEYS[1], id) == 0
elseif redis.call('HEXISTS', KEYS[1], id) == 1 then
  return {0, id}
end
local seq = redis.call('INCR', KEYS[3])
local doc = string.gsub(ARGV[3], '"id":null', '"id":' .. cjson.encode(id), 1)
redis.call('HSET', KEYS[1], id, '{"created":' .. ARGV[4] .. ',"settings":' .. doc .. '}')
redis.call('HSET', KEYS[2], id, seq)
redis.call('INCR', KEYS[4])
return {1, id}
"""

CLAIM = """
-- KEYS: rules, matched, fired. ARGV: id, times (-1: no limit), fire (1: the probability roll won).
-- Returns -1 when the rule is gone, else the times it has fired, negated (minus one) when this
-- call did not fire it.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {-1, 0} end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local fired = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local times = tonumber(ARGV[2])
if ARGV[3] ~= '1' or (times >= 0 and fired >= times) then return {0, fired} end
return {1, redis.call('HINCRBY', KEYS[3], ARGV[1], 1)}
"""

REMOVE = """
-- KEYS: rules, order, matched, fired, version. ARGV: id ('' for all). Returns how many went.
local n
if ARGV[1] == '' then
  n = redis.call('HLEN', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
else
  n = redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
if n > 0 then redis.call('INCR', KEYS[5]) end
return n
"""


class SharedRuleRegistry[S: RuleMatchSettings](RuleRegistry[S]):
    """A registry whose rules live in Redis; `_rules` is this replica's copy of them."""

    def __init__(
        self,
        shared: SharedState,
        kind: str,
        schema: type[S],
        id_prefix: str,
        check: Callable[[S], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(rng)
        self.shared = shared
        self.schema = schema
        self.id_prefix = id_prefix
        self._check = check
        self.use_last_known = shared.settings.rules_on_failure == "last_known"
        self.k_rules, self.k_order = shared.key(kind, "rules"), shared.key(kind, "order")
        self.k_seq, self.k_version = shared.key(kind, "seq"), shared.key(kind, "version")
        self.k_matched, self.k_fired = shared.key(kind, "matched"), shared.key(kind, "fired")
        self._add = shared.script(ADD)
        self._claim = shared.script(CLAIM)
        self._remove = shared.script(REMOVE)
        self._version: bytes | None = None
        """The version the local copy was read at (None: no rule was ever added)."""
        self.refresh_s = shared.settings.rules_refresh_s
        self._checked_at = 0.0
        self._loaded = False
        """Whether the local copy was ever read."""
        """When the version was last asked for (shared.clock, before asking)."""

    def __bool__(self) -> bool:
        # Another replica may have added a rule: every call asks (`take`).
        return True

    def check(self, settings: S) -> None:
        if self._check is not None:
            self._check(settings)

    async def _run(self, call: Callable[[], Any]) -> Any:
        return await self.shared.run("rules", call)

    # -- the local copy ----------------------------------------------------------------------

    async def refresh(self) -> None:
        """Reload the local copy if the rules changed since it was read."""
        now = self.shared.clock()
        if self._loaded and now - self._checked_at < self.refresh_s:
            return
        self._checked_at = now
        version = await self._run(lambda: self.shared.redis.get(self.k_version))
        if self._loaded and version == self._version:
            return
        async with self.shared.redis.pipeline(transaction=True) as pipe:
            pipe.get(self.k_version)
            pipe.hgetall(self.k_rules)
            pipe.hgetall(self.k_order)
            pipe.hgetall(self.k_matched)
            pipe.hgetall(self.k_fired)
            version, rules, order, matched, fired = await self._run(pipe.execute)
        self._rules = {r.id: r for r in self._decode(rules, order, matched, fired)}
        self._version = version
        self._loaded = True

    def _decode(
        self,
        rules: dict[bytes, bytes],
        order: dict[bytes, bytes],
        matched: dict[bytes, bytes],
        fired: dict[bytes, bytes],
    ) -> list[Rule[S]]:
        found: list[tuple[int, Rule[S]]] = []
        for raw_id, raw in rules.items():
            doc = json.loads(raw)
            settings = self.schema.model_validate(doc["settings"])
            rule = Rule(raw_id.decode(), settings, float(doc["created"]))
            rule.matched = int(matched.get(raw_id, 0))
            rule.fired = int(fired.get(raw_id, 0))
            found.append((int(order.get(raw_id, 0)), rule))
        found.sort(key=lambda pair: pair[0])
        return [rule for _, rule in found]

    # -- the hot path ------------------------------------------------------------------------

    async def take(self, operation: str, model: str, principal: str, body: bytes) -> Rule[S] | None:
        online = True
        try:
            await self.refresh()
        except SharedUnavailable:
            if not self.use_last_known:
                return None
            online = False
        prompt: str | None = None
        for rule in list(self._rules.values()):
            if rule.exhausted:
                continue
            if rule.settings.prompt is not None and prompt is None:
                prompt = prompt_text(body)
            if not rule.matches(operation, model, principal, prompt):
                continue
            p = rule.settings.probability
            fire = p >= 1.0 or self.rng.random() < p
            if online:
                try:
                    verdict = await self._claim_rule(rule, fire)
                except SharedUnavailable:
                    if not self.use_last_known:
                        return None
                    online = False
                else:
                    if verdict:
                        return rule
                    continue
            rule.matched += 1
            if fire:
                rule.fired += 1
                return rule
        return None

    async def _claim_rule(self, rule: Rule[S], fire: bool) -> bool:
        times = rule.settings.times
        keys = [self.k_rules, self.k_matched, self.k_fired]
        args: list[str | int] = [rule.id, -1 if times is None else times, int(fire)]
        verdict, fired = await self._run(lambda: self._claim(keys, args))
        rule.matched += 1
        rule.fired = int(fired)
        return bool(verdict == 1)

    # -- the admin API -----------------------------------------------------------------------

    async def add_rule(self, settings: S) -> dict[str, Any]:
        self.check(settings)
        created = time.time()
        rule_id = await self._store(settings, created)
        if rule_id is None:
            raise ValueError(f"a rule with id {settings.id!r} exists already")
        rule = Rule(rule_id, settings.model_copy(update={"id": rule_id}), created)
        return rule.describe()

    async def _store(self, settings: S, created: float) -> str | None:
        """Add the rule to Redis; its id, or None if its id is taken."""
        keys = [self.k_rules, self.k_order, self.k_seq, self.k_version]
        doc = settings.model_dump_json()
        args: list[str | float] = [settings.id or "", self.id_prefix, doc, created]
        added, rule_id = await self._run(lambda: self._add(keys, args))
        await self._settle()
        return rule_id.decode() if added == 1 else None

    async def _settle(self) -> None:
        """Wait until every replica's next call re-reads the version (module docstring)."""
        if self.refresh_s > 0:
            await asyncio.sleep(self.refresh_s)

    async def preload(self, rules: Sequence[S]) -> None:
        """Add the configuration file's rules unless their ids are in Redis already."""
        for n, settings in enumerate(rules, 1):
            if settings.id is None:
                settings = settings.model_copy(update={"id": f"{self.id_prefix}-config-{n}"})
            self.check(settings)
            await self._store(settings, time.time())

    async def _read_all(self) -> list[Rule[S]]:
        async with self.shared.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.k_rules)
            pipe.hgetall(self.k_order)
            pipe.hgetall(self.k_matched)
            pipe.hgetall(self.k_fired)
            rules, order, matched, fired = await self._run(pipe.execute)
        return self._decode(rules, order, matched, fired)

    async def count_rules(self) -> int:
        return int(await self._run(lambda: self.shared.redis.hlen(self.k_rules)))

    async def describe_rules(self) -> list[dict[str, Any]]:
        return [rule.describe() for rule in await self._read_all()]

    async def describe_rule(self, rule_id: str) -> dict[str, Any] | None:
        found = [rule for rule in await self._read_all() if rule.id == rule_id]
        return found[0].describe() if found else None

    async def remove_rule(self, rule_id: str) -> bool:
        return bool(await self._delete(rule_id))

    async def clear_rules(self) -> int:
        return await self._delete("")

    async def _delete(self, rule_id: str) -> int:
        keys = [self.k_rules, self.k_order, self.k_matched, self.k_fired, self.k_version]
        removed = int(await self._run(lambda: self._remove(keys, [rule_id])))
        await self._settle()
        return removed
