"""Admin views of the SageMaker endpoints served, shaped like the control plane's answers.

`GET /_outcrop/endpoints` answers like `ListEndpoints` (`{"Endpoints": [EndpointSummary]}`) and
`GET /_outcrop/endpoints/<name>` like `DescribeEndpoint` (production variants with weights and
instance counts), plus an `Outcrop` member saying what backs each container, its readiness,
the instances' in-flight invocations and the open sessions. Endpoints made on first use
(unconfigured mode) appear once invoked.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any, Protocol

from outcrop.sagemaker.endpoints import ContainerSpec, EndpointSpec, Route, VariantSpec
from outcrop.services.base import Response
from outcrop.services.sagemaker_runtime import SageMakerRuntime

PREFIX = "/_outcrop/endpoints"


class _LocalRequest(Protocol):
    method: str
    path: str


Handler = Callable[[Any], Awaitable[Response]]


class EndpointAdmin:
    def __init__(self, runtime: SageMakerRuntime) -> None:
        self.runtime = runtime
        self._routes: MutableMapping[tuple[str, str], Handler] | None = None

    def attach(self, routes: MutableMapping[tuple[str, str], Handler]) -> None:
        """Serve the views from `routes` (the app's local routes), now and for new endpoints."""
        self._routes = routes
        routes[("GET", PREFIX)] = self._list
        for endpoint in self.runtime.registry.endpoints():
            self._add(endpoint)
        self.runtime.registry.on_created = self._add
        self.runtime.registry.on_evicted.append(self._remove)

    def _add(self, endpoint: EndpointSpec) -> None:
        if self._routes is None:
            return

        async def describe(request: _LocalRequest) -> Response:
            return _json(self.describe(endpoint))

        self._routes[("GET", f"{PREFIX}/{endpoint.name}")] = describe

    def _remove(self, endpoint: EndpointSpec) -> None:
        if self._routes is not None:
            self._routes.pop(("GET", f"{PREFIX}/{endpoint.name}"), None)

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

    def describe(self, endpoint: EndpointSpec) -> dict[str, Any]:
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
                        Route(
                            endpoint,
                            endpoint.variant(c.variant) or endpoint.variants[0],
                            c.container,
                            c,
                        ),
                    ),
                    "InFlight": self._in_flight(
                        Route(endpoint, endpoint.variants[0], c.container, c)
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
                for s in self.runtime.sessions.open_sessions(endpoint.name)
            ],
        }
        return answer

    def _variant(self, endpoint: EndpointSpec, variant: VariantSpec) -> dict[str, Any]:
        first = next(iter(variant.containers.values()))
        route = Route(endpoint, variant, first)
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
                    self._container(Route(endpoint, variant, c))
                    for c in variant.containers.values()
                ],
                "InFlight": self._in_flight(route),
            },
        }

    def _container(self, route: Route) -> dict[str, Any]:
        container: ContainerSpec = route.container
        backend = self.runtime.backend(route)
        return {"ContainerHostname": container.hostname, **backend.describe()}

    def _in_flight(self, route: Route) -> list[int]:
        return list(self.runtime.pool(route).in_flight)


def _time(moment: datetime) -> str:
    return moment.isoformat()


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")])
