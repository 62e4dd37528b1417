"""Admin views of the SageMaker endpoints served, shaped like the control plane's answers.

`GET /_outcrop/endpoints` answers like `ListEndpoints` (`{"Endpoints": [EndpointSummary]}`) and
`GET /_outcrop/endpoints/<name>` like `DescribeEndpoint` (production variants with weights and
instance counts), plus an `Outcrop` member saying what backs each container, its readiness,
the instances' in-flight invocations and the open sessions. Endpoints made on first use
(unconfigured mode) appear once invoked.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from outcrop.sagemaker.endpoints import ContainerSpec, Destination, EndpointSpec, VariantSpec
from outcrop.sagemaker.sessions import Session
from outcrop.services.base import Response
from outcrop.services.sagemaker_runtime import SageMakerRuntime
from outcrop.wire.errors import UnknownOperationException

PREFIX = "/_outcrop/endpoints"


class _LocalRequest(Protocol):
    method: str
    path: str


Handler = Callable[[Any], Awaitable[Response]]


class EndpointAdmin:
    def __init__(self, runtime: SageMakerRuntime) -> None:
        self.runtime = runtime

    def routes(self) -> dict[tuple[str, str], Handler]:
        """The list view, by its exact path."""
        return {("GET", PREFIX): self._list}

    def prefix_routes(self) -> dict[tuple[str, str], Handler]:
        """The per-endpoint views, under `PREFIX/` (endpoints made on first use included)."""
        return {("GET", PREFIX + "/"): self._describe}

    async def _describe(self, request: _LocalRequest) -> Response:
        name = request.path[len(PREFIX) + 1 :]
        endpoint = self.runtime.registry.known(name)
        if endpoint is None or "/" in name:
            raise UnknownOperationException(f"No operation matches GET {request.path}.")
        return _json(self.describe(endpoint, await self.runtime.sessions.listed(endpoint.name)))

    async def _list(self, request: _LocalRequest) -> Response:
        endpoints = sorted(self.runtime.registry.endpoints(), key=lambda e: e.name)
        return _json({"Endpoints": [self.summary(e) for e in endpoints]})

    def arn(self, endpoint: EndpointSpec) -> str:
        settings = self.runtime.settings
        return (
            f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:endpoint/"
            f"{endpoint.name.lower()}"
        )

    def summary(self, endpoint: EndpointSpec) -> dict[str, Any]:
        return {
            "EndpointName": endpoint.name,
            "EndpointArn": self.arn(endpoint),
            "CreationTime": _time(endpoint.created),
            "LastModifiedTime": _time(endpoint.created),
            "EndpointStatus": "InService",
        }

    def describe(
        self, endpoint: EndpointSpec, sessions: list[Session] | None = None
    ) -> dict[str, Any]:
        if sessions is None:
            sessions = self.runtime.sessions.open_sessions(endpoint.name)
        answer = {
            **self.summary(endpoint),
            "EndpointConfigName": endpoint.name,
            "ProductionVariants": [self._variant(endpoint, v) for v in endpoint.variants],
        }
        answer["Outcrop"] = {
            "Configured": endpoint.configured,
            "InvocationTimeoutSeconds": endpoint.invocation_timeout_s,
            "InferenceComponents": [
                {
                    "InferenceComponentName": c.name,
                    "VariantName": c.variant,
                    "Copies": c.copies,
                    "Container": self._container(
                        Destination(
                            endpoint,
                            endpoint.variant(c.variant) or endpoint.variants[0],
                            c.container,
                            c,
                        ),
                    ),
                    "InFlight": self._in_flight(
                        Destination(endpoint, endpoint.variants[0], c.container, c)
                    ),
                }
                for c in endpoint.components.values()
            ],
            "OpenSessions": [
                {
                    "SessionId": s.session_id,
                    "VariantName": s.route.variant.name,
                    "Instance": s.instance,
                    "Expires": _time(datetime.fromtimestamp(s.expires_at).astimezone()),
                }
                for s in sessions
            ],
        }
        return answer

    def _variant(self, endpoint: EndpointSpec, variant: VariantSpec) -> dict[str, Any]:
        first = next(iter(variant.containers.values()))
        route = Destination(endpoint, variant, first)
        return {
            "VariantName": variant.name,
            "CurrentWeight": variant.weight,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": variant.instance_count,
            "DesiredInstanceCount": variant.instance_count,
            "Outcrop": {
                "MaxConcurrentInvocationsPerInstance": variant.per_instance,
                "InvocationMode": "Direct" if variant.direct else "Single",
                "Containers": [
                    self._container(Destination(endpoint, variant, c))
                    for c in variant.containers.values()
                ],
                "InFlight": self._in_flight(route),
            },
        }

    def _container(self, route: Destination) -> dict[str, Any]:
        container: ContainerSpec = route.container
        backend = self.runtime.backend(route)
        return {"ContainerHostname": container.hostname, **backend.describe()}

    def _in_flight(self, route: Destination) -> list[int]:
        return list(self.runtime.pool(route).in_flight)


def _time(moment: datetime) -> str:
    return moment.isoformat()


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")])
