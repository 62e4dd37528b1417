"""Turn-taking for engines that serve one generation at a time.

`PriorityTurn` is a lock whose waiters are served by priority (lower first) and, at equal
priority, in arrival order, so the default behaviour is a FIFO. A waiter cancelled while
queued leaves the queue; one cancelled just after being granted the turn passes it on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PriorityTurn:
    """An asyncio lock granted by (priority, arrival)."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    def locked(self) -> bool:
        return self._held

    async def acquire(self, priority: int = 0) -> None:
        if not self._held and not self.waiting:
            self._held = True
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
                future.set_result(None)
                return
        self._held = False
