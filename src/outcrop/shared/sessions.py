"""SageMaker stateful sessions shared by replicas: the session table in Redis, with a TTL.

A session the model opened through replica A must route from replica C to the same variant,
container and instance (sagemaker/sessions.py). Each session is a Redis string
`<prefix>:session:<id>` holding where it goes (endpoint, variant, container or inference
component, instance) and its expiry, set to expire with the session (or after `[shared]
session_ttl_s`, when set); an endpoint's open sessions are also a sorted set by expiry, for
the endpoint view. Lookups rebuild the route from the endpoint registry, which every replica
builds from the same configuration (endpoints made on first use are made the same way).

Redis unreachable: sessions fail closed. A call naming a session, and a call whose model
opens or closes one, get SageMaker's ServiceUnavailable (503); calls without a session are
unaffected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from outcrop.sagemaker.endpoints import Destination, EndpointRegistry
from outcrop.sagemaker.sessions import Session, SessionTable, invalid_session
from outcrop.shared.client import SharedState, SharedUnavailable
from outcrop.wire.errors import ServiceUnavailable

UNAVAILABLE = "The session store is unavailable. Try your request again."


class SharedSessionTable(SessionTable):
    """The session table in Redis (the local dictionary of `SessionTable` stays empty)."""

    def __init__(
        self,
        shared: SharedState,
        registry: EndpointRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock)
        self.shared = shared
        self.registry = registry
        self.ttl_s = shared.settings.session_ttl_s

    def _key(self, session_id: str) -> str:
        return self.shared.key("session", session_id)

    def _index(self, endpoint: str) -> str:
        return self.shared.key("sessions", endpoint)

    async def _run(self, call: Callable[[], Any]) -> Any:
        try:
            return await self.shared.run("sessions", call)
        except SharedUnavailable:
            raise ServiceUnavailable(UNAVAILABLE) from None

    async def record(
        self, session_id: str, route: Destination, instance: int, expires_at: float
    ) -> Session:
        if self.ttl_s is not None:
            expires_at = min(expires_at, self.now() + self.ttl_s)
        doc = {
            "endpoint": route.endpoint.name,
            "variant": route.variant.name,
            "container": route.container.hostname,
            "component": None if route.component is None else route.component.name,
            "instance": instance,
            "expires_at": expires_at,
        }
        expire_ms = max(1, int(expires_at * 1000))
        index = self._index(route.endpoint.name)
        async with self.shared.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(session_id), json.dumps(doc), pxat=expire_ms)
            pipe.zadd(index, {session_id: expires_at})
            pipe.zremrangebyscore(index, "-inf", self.now())
            await self._run(pipe.execute)
        return Session(session_id, route, instance, expires_at)

    async def find(self, endpoint: str, session_id: str) -> Session:
        raw = await self._run(lambda: self.shared.redis.get(self._key(session_id)))
        if raw is None:
            raise invalid_session(session_id)
        session = self._decode(session_id, json.loads(raw))
        if (
            session is None
            or session.route.endpoint.name != endpoint
            or session.expires_at <= self.now()
        ):
            raise invalid_session(session_id)
        return session

    def _decode(self, session_id: str, doc: dict[str, Any]) -> Session | None:
        """The session's route rebuilt from the registry (None if it no longer exists)."""
        endpoint = self.registry.known(str(doc["endpoint"]))
        if endpoint is None:
            return None
        variant = endpoint.variant(str(doc["variant"]))
        if variant is None:
            return None
        component = None
        if doc.get("component") is not None:
            component = endpoint.components.get(str(doc["component"]))
            if component is None:
                return None
            container = component.container
        else:
            found = variant.containers.get(str(doc["container"]))
            if found is None:
                return None
            container = found
        route = Destination(endpoint, variant, container, component)
        return Session(session_id, route, int(doc["instance"]), float(doc["expires_at"]))

    async def forget(self, session_id: str) -> None:
        key = self._key(session_id)
        raw = await self._run(lambda: self.shared.redis.getdel(key))
        if raw is not None:
            endpoint = str(json.loads(raw)["endpoint"])
            await self._run(lambda: self.shared.redis.zrem(self._index(endpoint), session_id))

    async def listed(self, endpoint: str) -> list[Session]:
        index = self._index(endpoint)
        ids = await self._run(lambda: self.shared.redis.zrangebyscore(index, self.now(), "+inf"))
        if not ids:
            return []
        raws = await self._run(lambda: self.shared.redis.mget([self._key(i.decode()) for i in ids]))
        found = []
        for raw_id, raw in zip(ids, raws, strict=True):
            if raw is not None:
                session = self._decode(raw_id.decode(), json.loads(raw))
                if session is not None:
                    found.append(session)
        return found
