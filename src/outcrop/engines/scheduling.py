"""Admission for engines with a fixed number of generation slots.

`PriorityTurn` is a semaphore (a lock when `capacity` is 1) whose waiters are served by
priority (lower first) and, at equal priority, in arrival order, so the default behaviour is a
FIFO. A waiter cancelled while queued leaves the queue; one cancelled just after being granted
a slot passes it on. The managed llama-server engine puts one in front of the child's parallel
slots, because the child itself schedules first come, first served.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PriorityTurn:
    """An asyncio semaphore of `capacity` slots granted by (priority, arrival)."""

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._held = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    @property
    def held(self) -> int:
        """Slots granted and not yet released."""
        return self._held

    def locked(self) -> bool:
        return self._held >= self.capacity

    async def acquire(self, priority: int = 0) -> None:
        if self._held < self.capacity and not self.waiting:
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted, but the waiter is gone: pass the turn on
            raise

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("release of an unheld turn")
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes straight to the waiter
                return
        self._held -= 1
