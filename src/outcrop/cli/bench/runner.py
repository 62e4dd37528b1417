"""Runs a benchmark: sends requests on a plan, times every text event, keeps every result.

Two plans:
- closed loop (`--concurrency N` alone): N workers each send their next request as soon as the
  previous one ended;
- open loop (`--rate`): requests are sent at the schedule's arrival times whatever the
  server's latency, with `--concurrency` (if given) capping how many are in flight. The lag
  between a scheduled and an actual send is recorded: a growing lag means the client, not the
  server, set the pace.

A run ends after `requests` requests have been sent or `duration` seconds have passed; requests
in flight then finish and count (`on_deadline` is told when the duration is up, so the command
can say that it drains them), or, with `cancel_at_deadline`, are cancelled at the deadline and
counted in `cancelled_at_deadline` only. Setting `stop` (Ctrl-C) cancels the requests in flight
and returns what completed. Timestamps come from `time.perf_counter()`; the run's CPU time is
recorded so that a report can show how busy the client itself was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outcrop.cli.bench.decode import StreamFailed
from outcrop.cli.bench.schedule import Stage, arrivals
from outcrop.cli.bench.stats import RequestResult
from outcrop.cli.native import StreamUsage

if TYPE_CHECKING:
    from outcrop.cli.bench.client import Payload, Transport

TICK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Plan:
    concurrency: int | None
    """Closed-loop workers; with `stages`, the cap on requests in flight (None: no cap)."""
    stages: Sequence[Stage] | None = None
    poisson: bool = False
    seed: int = 0
    duration: float | None = None
    requests: int | None = None
    cancel_at_deadline: bool = False
    """Cancel the requests still in flight when `duration` is up (default: let them finish)."""

    def __post_init__(self) -> None:
        if self.stages is None and (self.concurrency is None or self.concurrency < 1):
            raise ValueError("a closed-loop plan needs concurrency >= 1")
        if self.duration is None and self.requests is None:
            raise ValueError("a plan needs a duration or a request count")


@dataclass(slots=True)
class LiveState:
    """Counters the progress display reads while the run goes on."""

    started: float = 0.0
    sent: int = 0
    completed: int = 0
    failed: int = 0
    in_flight: int = 0
    output_tokens: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started if self.started else 0.0


@dataclass(slots=True)
class RunOutcome:
    results: list[RequestResult]
    duration: float
    interrupted: bool
    cpu_seconds: float
    send_lags: list[float] = field(default_factory=list)
    """Open loop: seconds each request was sent after its scheduled time."""
    cancelled_at_deadline: int = 0
    """Requests in flight when the duration was up, cancelled (`cancel_at_deadline`)."""


class Runner:
    """One benchmark run over `transport` with `payloads` taken round robin."""

    def __init__(
        self,
        transport: Transport,
        payloads: Sequence[Payload],
        plan: Plan,
        *,
        on_tick: Callable[[LiveState], None] | None = None,
        on_deadline: Callable[[LiveState], None] | None = None,
    ) -> None:
        if not payloads:
            raise ValueError("no payloads")
        self.transport = transport
        self.payloads = payloads
        self.plan = plan
        self.on_tick = on_tick
        self.on_deadline = on_deadline
        self.live = LiveState()
        self.results: list[RequestResult] = []
        self.send_lags: list[float] = []
        self._t0 = 0.0

    async def warm_up(self, count: int) -> None:
        """Send `count` requests one after the other, not recorded; raise on the first error."""
        for index in range(count):
            await self.transport.stream(self.payloads[index % len(self.payloads)], _ignore)

    async def run(self, stop: asyncio.Event) -> RunOutcome:
        cpu0 = time.process_time()
        self._t0 = time.perf_counter()
        self.live.started = self._t0
        body = self._closed_loop() if self.plan.stages is None else self._open_loop()
        work = asyncio.ensure_future(body)
        stopper = asyncio.ensure_future(stop.wait())
        ticker = asyncio.ensure_future(self._tick())
        deadline = asyncio.ensure_future(self._deadline())
        cutting = False
        cut = 0
        try:
            waiting = {work, stopper}
            if self.plan.cancel_at_deadline and self.plan.duration is not None:
                waiting.add(deadline)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cutting = deadline.done() and not stopper.done() and not work.done()
            if cutting:
                cut = self.live.in_flight  # cancelled below, at the deadline
            interrupted = not work.done() and not cutting
            for task in (work, stopper, ticker, deadline):
                task.cancel()
            for task in (work, stopper, ticker, deadline):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not interrupted and not cutting:
            work.result()
        ends = [r.end for r in self.results]
        duration = max(ends) if ends else time.perf_counter() - self._t0
        if self.on_tick is not None:
            self.on_tick(self.live)
        return RunOutcome(
            self.results,
            duration,
            interrupted,
            time.process_time() - cpu0,
            self.send_lags,
            cut,
        )

    async def _deadline(self) -> None:
        """Return when the plan's duration is up (never without one), telling `on_deadline`."""
        if self.plan.duration is None:
            await asyncio.Event().wait()
            return
        await asyncio.sleep(max(0.0, self._t0 + self.plan.duration - time.perf_counter()))
        if self.on_deadline is not None:
            self.on_deadline(self.live)

    # -- plans -------------------------------------------------------------------------------

    def _more(self, sent: int, scheduled: float | None = None) -> bool:
        plan = self.plan
        if plan.requests is not None and sent >= plan.requests:
            return False
        if plan.duration is not None:
            now = scheduled if scheduled is not None else time.perf_counter() - self._t0
            if now >= plan.duration:
                return False
        return True

    async def _closed_loop(self) -> None:
        async def worker() -> None:
            while True:
                index = self.live.sent
                if not self._more(index):
                    return
                self.live.sent += 1
                await self._one(index)

        assert self.plan.concurrency is not None
        await asyncio.gather(*(worker() for _ in range(self.plan.concurrency)))

    async def _open_loop(self) -> None:
        assert self.plan.stages is not None
        cap = asyncio.Semaphore(self.plan.concurrency) if self.plan.concurrency else None
        tasks: set[asyncio.Task[None]] = set()
        schedule = arrivals(self.plan.stages, poisson=self.plan.poisson, seed=self.plan.seed)
        try:
            for index, at in enumerate(schedule):
                if not self._more(index, at):
                    break
                delay = self._t0 + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if cap is not None:
                    await cap.acquire()
                self.send_lags.append(max(0.0, time.perf_counter() - self._t0 - at))
                self.live.sent += 1
                task = asyncio.create_task(self._one(index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if cap is not None:
                    task.add_done_callback(lambda _: cap.release())
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # -- one request -------------------------------------------------------------------------

    async def _one(self, index: int) -> None:
        payload = self.payloads[index % len(self.payloads)]
        live = self.live
        gaps = array("d")
        first: float | None = None
        last = 0.0
        chunks = 0

        def on_text() -> None:
            nonlocal first, last, chunks
            now = time.perf_counter()
            if first is None:
                first = now
            else:
                gaps.append(now - last)
            last = now
            chunks += 1

        live.in_flight += 1
        start = time.perf_counter()
        usage: StreamUsage | None = None
        error: str | None = None
        try:
            usage = await self.transport.stream(payload, on_text)
        except StreamFailed as exc:
            error = exc.error_type
        except (OSError, ValueError) as exc:  # anything the transport did not anticipate
            error = type(exc).__name__
        finally:
            live.in_flight -= 1
        end = time.perf_counter()
        t0 = self._t0
        result = RequestResult(
            start=start - t0,
            end=end - t0,
            first_token=None if first is None else first - t0,
            gaps=gaps,
            chunks=chunks,
            output_tokens=usage.output_tokens if usage is not None else None,
            input_tokens=usage.input_tokens if usage is not None else None,
            error=error,
        )
        self.results.append(result)
        if error is None:
            live.completed += 1
            live.output_tokens += result.tokens
        else:
            live.failed += 1

    async def _tick(self) -> None:
        if self.on_tick is None:
            return
        while True:
            self.on_tick(self.live)
            await asyncio.sleep(TICK_SECONDS)


def _ignore() -> None:
    return None
