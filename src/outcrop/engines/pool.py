"""An engine pool: one engine name served by several upstream engines (the I/O around
`pool_routing.Router`).

The members are ordinary engines, one per upstream: `OpenAICompatEngine`s for the `upstreams`
of an `openai` engine, `LlamaServerEngine`s for the `replicas` (children) or `upstreams`
(servers running elsewhere) of a `llamacpp` engine. Each
implements `PoolMember.probe`, the active health check the pool runs every
`health_interval_s` (more often while no upstream has answered yet).

A request is routed by the router (prefix affinity on the conversation's start, least
outstanding requests otherwise). If its upstream fails before the first event (unreachable,
HTTP 5xx, a stream cut before any token, a child that died), the failure counts against that
upstream's circuit and the request is tried on another upstream, up to `max_attempts` in all;
the client never sees that failure. A failure of the request itself (`EngineRequestError`: a
prompt over the context window, a 400) is passed on at once and does not count against the
upstream. Once the first event has been passed on, a failure ends the stream with the
member's own error (`ModelStreamErrorException` on the wire, see `invocation.errors`): the
tokens already sent cannot be taken back. With no upstream available the request fails with
`EngineUnavailable` (`ServiceUnavailableException`, which the SDKs retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Protocol

from outcrop.engines.base import Engine, EngineError, EngineRequestError, EngineUnavailable
from outcrop.engines.pool_routing import PoolPolicy, Router, Ticket, Upstream
from outcrop.types import EngineHealth, Finish, GenerationEvent, GenerationRequest

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.5
"""Health-check interval while no upstream has answered yet (at most `health_interval_s`)."""


class PoolMember(Protocol):
    """What the pool needs of a member engine beyond `Engine`."""

    name: str

    async def probe(self, timeout_s: float) -> str | None:
        """One active health check: None when healthy, else what is wrong."""
        ...


def affinity_key(request: GenerationRequest, chars: int) -> str | None:
    """The conversation's stable start: its system text and first user turn (or the raw
    prompt's start), at most `chars` characters; None when affinity is off."""
    if chars <= 0:
        return None
    if request.raw_prompt is not None:
        return request.raw_prompt[:chars]
    system = request.system or ""
    first = next((m.text for m in request.messages if m.role == "user"), "")
    return f"{system}\x00{first}"[:chars]


class PoolEngine(Engine):
    """`members` (one per upstream, same model) behind one engine name."""

    def __init__(
        self,
        name: str,
        members: Sequence[tuple[str, Engine]],
        policy: PoolPolicy,
        *,
        start_members: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`members`: (upstream name, engine) pairs, each engine also a `PoolMember`;
        `start_members`: whether `start` runs each member's own `start` first (managed
        llama.cpp children), else the pool's health checks alone bring members up."""
        self.name = name
        self.policy = policy
        self.members = [engine for _, engine in members]
        self.router = Router([label for label, _ in members], policy, clock)
        self._start_members = start_members
        self._answered = False
        self._closed = False
        self._checker: asyncio.Task[None] | None = None
        self._starting: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the members (if managed), check every upstream once, and leave the health
        checks running in the background until `close`."""
        if self._start_members:
            # Ready with the first member that is: one still loading (or an external server
            # still down) comes in later through the health checks.
            loop = asyncio.get_running_loop()
            self._starting = [loop.create_task(member.start()) for member in self.members]
            pending: set[asyncio.Task[None]] = set(self._starting)
            while pending and not any(member.health().ready for member in self.members):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await self.check_all()
        if self._checker is None and not self._closed:
            self._checker = asyncio.get_running_loop().create_task(self._check_forever())

    async def _check_forever(self) -> None:
        while not self._closed:
            interval = self.policy.health_interval_s
            await asyncio.sleep(interval if self._answered else min(interval, FIRST_POLL_S))
            await self.check_all()

    async def check_all(self) -> None:
        """One round of active health checks, all upstreams at once."""
        await asyncio.gather(*(self._check(u, m) for u, m in self._pairs()))

    async def _check(self, upstream: Upstream, member: Engine) -> None:
        probe: PoolMember = member  # type: ignore[assignment]
        try:
            async with asyncio.timeout(self.policy.health_timeout_s):
                problem = await probe.probe(self.policy.health_timeout_s)
        except TimeoutError:
            problem = f"no answer to the health check in {self.policy.health_timeout_s:g} s"
        except Exception as exc:  # a check must never stop the checking
            problem = f"health check failed: {exc or type(exc).__name__}"
        if upstream.healthy and problem is not None:
            log.warning("pool %s: upstream %s is unhealthy: %s", self.name, upstream.name, problem)
        elif not upstream.healthy and problem is None and self._answered:
            log.info("pool %s: upstream %s is healthy again", self.name, upstream.name)
        self.router.health_result(upstream, problem is None, problem or "")
        if problem is None:
            self._answered = True

    def _pairs(self) -> list[tuple[Upstream, Engine]]:
        return list(zip(self.router.upstreams, self.members, strict=True))

    async def close(self) -> None:
        self._closed = True
        for task in [self._checker, *self._starting]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(member.close() for member in self.members))

    # -- state ------------------------------------------------------------------------------

    def health(self) -> EngineHealth:
        upstreams = []
        for upstream, member in self._pairs():
            snapshot = upstream.snapshot()
            snapshot["available"] = self.router.available(upstream)
            member_extra = member.health().extra
            for name in ("model", "prefix_cache", "pid", "port", "restarts"):
                if member_extra.get(name) is not None:
                    snapshot[name] = member_extra[name]
            upstreams.append(snapshot)
        extra: dict[str, object] = {"upstreams": upstreams}
        if self._closed:
            return EngineHealth(False, "failed", "engine closed", extra)
        if self.router.any_available():
            return EngineHealth(ready=True, state="ready", extra=extra)
        failed = [m.health() for m in self.members]
        if all(h.state == "failed" for h in failed) and failed[0].detail.startswith("failed"):
            return EngineHealth(False, "failed", failed[0].detail, extra)  # managed: none loaded
        if self._answered:
            return EngineHealth(False, "failed", "no upstream of the pool is available", extra)
        return EngineHealth(False, "loading", "waiting for an upstream to answer", extra)

    @property
    def queue_depth(self) -> int:
        return sum(member.queue_depth for member in self.members)

    def count_tokens(self, request: GenerationRequest) -> int:
        """Counted by the upstream the request would go to, or by the next available one
        if that one cannot count now (it died since its last health check)."""
        key = affinity_key(request, self.policy.affinity_prefix_chars)
        tried: set[int] = set()
        while (upstream := self.router.pick(key, frozenset(tried))) is not None:
            try:
                return self.members[upstream.index].count_tokens(request)
            except EngineRequestError:
                raise
            except EngineError:
                tried.add(upstream.index)
        raise EngineUnavailable(f"engine {self.name!r}: no upstream of the pool is available")

    # -- generation -------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        key = affinity_key(request, self.policy.affinity_prefix_chars)
        tried: set[int] = set()
        last: EngineError | None = None
        while len(tried) < self.policy.max_attempts:
            upstream = self.router.pick(key, frozenset(tried))
            if upstream is None:
                break
            tried.add(upstream.index)
            ticket = self.router.begin(upstream)
            try:  # some engines check readiness when called, before their first event
                stream = self.members[upstream.index].generate(request)
            except EngineRequestError:
                self.router.succeed(ticket)
                raise
            except EngineError as exc:
                self.router.fail(ticket, early=True)
                last = exc
                continue
            first = await self._first(ticket, stream)
            if isinstance(first, EngineError):
                last = first
                continue
            async with contextlib.aclosing(self._rest(ticket, stream, first)) as events:
                async for event in events:
                    yield event
            return
        if last is not None:
            raise last
        raise EngineUnavailable(f"engine {self.name!r}: no upstream of the pool is available")

    async def _first(
        self, ticket: Ticket, stream: AsyncGenerator[GenerationEvent, None]
    ) -> GenerationEvent | EngineError:
        """The stream's first event, or the member's error before it (the request is retried
        unless the error is the request's own, which is raised)."""
        try:
            return await anext(stream)
        except EngineRequestError:
            self.router.succeed(ticket)  # the upstream answered; the request was refused
            await stream.aclose()
            raise
        except EngineError as exc:
            self.router.fail(ticket, early=True)
            await stream.aclose()
            log.info(
                "pool %s: %s failed before the first token: %s",
                self.name,
                ticket.upstream.name,
                exc,
            )
            return exc
        except StopAsyncIteration:
            self.router.fail(ticket, early=True)
            return EngineUnavailable(f"upstream {ticket.upstream.name} ended without an answer")
        except BaseException:
            self.router.release(ticket)
            await stream.aclose()
            raise

    async def _rest(
        self,
        ticket: Ticket,
        stream: AsyncGenerator[GenerationEvent, None],
        first: GenerationEvent,
    ) -> AsyncGenerator[GenerationEvent, None]:
        """The first event and the rest of the stream, recording how it ended."""
        verdict: Callable[[Ticket], None] = self.router.release
        try:
            async with contextlib.aclosing(stream):
                if isinstance(first, Finish):
                    verdict = self.router.succeed
                yield first
                async for event in stream:
                    # The answer is whole at its Finish (consumers may stop reading there).
                    if isinstance(event, Finish):
                        verdict = self.router.succeed
                    yield event
            verdict = self.router.succeed
        except EngineRequestError:
            verdict = self.router.succeed
            raise
        except EngineError:
            verdict = self.router.fail
            raise
        finally:
            verdict(ticket)
