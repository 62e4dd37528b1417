"""Instances bounding concurrency: each pool has N instances of K concurrent invocations.

A variant's pool has `instance_count` instances (an inference component's, one per copy);
an invocation holds a slot on one instance for as long as its response lasts, waiting while
every slot is busy. Sessions pin their invocations to one instance. Releasing is synchronous
and idempotent, so a stream abandoned before it started can still give its slot back from a
finalizer (which may run on another thread: the release then hops to the pool's loop).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque


class Slot:
    """A held slot on one instance; `release()` gives it back (once)."""

    def __init__(self, pool: InstancePool, instance: int) -> None:
        self.pool = pool
        self.instance = instance
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.pool._release(self.instance)


class InstancePool:
    def __init__(self, instances: int, per_instance: int | None) -> None:
        self.in_flight = [0] * instances
        self.per_instance = per_instance
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._turn = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def instances(self) -> int:
        return len(self.in_flight)

    async def acquire(self, instance: int | None = None) -> Slot:
        """A slot (on `instance` if given), waiting until one is free."""
        self._loop = asyncio.get_running_loop()
        while True:
            chosen = self._free(instance)
            if chosen is not None:
                self.in_flight[chosen] += 1
                return Slot(self, chosen)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _free(self, instance: int | None) -> int | None:
        limit = self.per_instance
        if instance is not None:
            index = instance % self.instances
            if limit is None or self.in_flight[index] < limit:
                return index
            return None
        start = next(self._turn) % self.instances
        order = [(start + i) % self.instances for i in range(self.instances)]
        candidates = [i for i in order if limit is None or self.in_flight[i] < limit]
        if not candidates:
            return None
        return min(candidates, key=lambda i: self.in_flight[i])

    def _release(self, instance: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._release_now, instance)
                return
        self._release_now(instance)

    def _release_now(self, instance: int) -> None:
        self.in_flight[instance] -= 1
        # Wake every waiter: each re-checks (waiters pinned to other instances stay waiting).
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
