"""restJson1 request binding driven by botocore's service models.

`ServiceSpec` loads a service model (e.g. `bedrock-runtime`) and answers three questions for the
gateway: which operation a method and path name (`match`), what the operation's input members
are once the URI labels, headers and query-string parameters are bound and checked against the
model's constraints (`bind`), and whether its output is an event stream. Constraint failures raise
the service's validation error (Bedrock's `ValidationException`, SageMaker's `ValidationError`,
see `wire.errors.SERVICE_ERRORS`) with the Coral message format ("1 validation error
detected: ...").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

import botocore.loaders
from botocore.model import OperationModel, ServiceModel, Shape, StringShape

from outcrop.wire.errors import SERVICE_ERRORS, ServiceErrors


@dataclass(frozen=True, slots=True)
class Route:
    """One operation's URI template compiled to a regex over the still-encoded path."""

    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    literal_length: int
    """Characters of literal text in the template: the more, the more specific the route."""


@dataclass(frozen=True, slots=True)
class BoundRequest:
    """An operation matched and its URI and header members bound (still unvalidated body)."""

    operation: OperationModel
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.operation.name)


class ServiceSpec:
    """Routing and binding for one AWS service, from botocore's model of it."""

    def __init__(self, service_model: ServiceModel) -> None:
        self.model = service_model
        self.errors: ServiceErrors = SERVICE_ERRORS.get(
            str(service_model.service_name), ServiceErrors()
        )
        routes = [
            self._compile(service_model.operation_model(n)) for n in service_model.operation_names
        ]
        self._routes = sorted(routes, key=lambda r: -r.literal_length)

    @classmethod
    @cache
    def load(cls, service_name: str) -> ServiceSpec:
        loader = botocore.loaders.Loader()
        data = loader.load_service_model(service_name, "service-2")
        return cls(ServiceModel(data, service_name=service_name))

    @property
    def signing_name(self) -> str:
        return str(self.model.signing_name)

    def match(self, method: str, raw_path: str) -> tuple[OperationModel, dict[str, str]] | None:
        """The operation for `method` and the raw (percent-encoded) path, with decoded labels."""
        path = raw_path.split("?", 1)[0]
        for route in self._routes:
            if route.method != method:
                continue
            m = route.pattern.fullmatch(path)
            if m:
                return route.operation, {k: unquote(v) for k, v in m.groupdict().items()}
        return None

    def path_matches_other_method(self, raw_path: str) -> bool:
        path = raw_path.split("?", 1)[0]
        return any(route.pattern.fullmatch(path) for route in self._routes)

    def bind(
        self,
        operation: OperationModel,
        labels: Mapping[str, str],
        headers: Iterable[tuple[str, str]],
        query: Mapping[str, Sequence[str]] | None = None,
    ) -> BoundRequest:
        """Bind URI labels, header and query-string members of `operation`'s input, checking
        constraints. `query` maps decoded names to decoded values (`urllib.parse.parse_qs`)."""
        params: dict[str, Any] = {}
        shape = operation.input_shape
        if shape is None:
            return BoundRequest(operation, params)
        lowered: dict[str, str] = {}
        for name, value in headers:
            lowered.setdefault(name.lower(), value)
        problems: list[str] = []
        for member_name, member in shape.members.items():
            location = member.serialization.get("location")
            if location == "uri":
                key = member.serialization.get("name", member_name)
                if key in labels:
                    params[member_name] = labels[key]
            elif location == "header":
                header = member.serialization.get("name", member_name).lower()
                if header in lowered:
                    params[member_name] = lowered[header]
            elif location == "querystring":
                key = member.serialization.get("name", member_name)
                values = (query or {}).get(key)
                if values:
                    if member.type_name == "list":
                        params[member_name] = list(values)
                        continue
                    params[member_name] = values[0]
            else:
                continue
            if member_name in params:
                problems.extend(_check_string(member_name, member, params[member_name]))
        if problems:
            raise self.errors.validation(_coral_message(problems))
        return BoundRequest(operation, params)

    def check_payload_length(self, operation: OperationModel, size: int) -> None:
        """Raise the Coral length error if a blob payload exceeds the model's `max`."""
        limit = self.payload_max(operation)
        if limit is not None and size > limit:
            if self.errors.oversize is not None:
                refusal = self.errors.oversize(str(operation.name), limit)
                if refusal is not None:
                    raise refusal
            member = operation.input_shape.serialization.get("payload", "body")
            raise self.errors.validation(
                _coral_message(
                    [
                        f"Value at '{member}' failed to satisfy constraint: "
                        f"Member must have length less than or equal to {limit}"
                    ]
                )
            )

    @staticmethod
    def payload_max(operation: OperationModel) -> int | None:
        shape = operation.input_shape
        if shape is None:
            return None
        payload = shape.serialization.get("payload")
        if payload is None:
            return None
        member = shape.members[payload]
        limit = member.metadata.get("max")
        return int(limit) if limit is not None else None

    @staticmethod
    def has_streaming_output(operation: OperationModel) -> bool:
        return operation.get_event_stream_output() is not None

    @staticmethod
    def _compile(operation: OperationModel) -> Route:
        uri = operation.http["requestUri"].split("?", 1)[0]
        labels: list[str] = []
        regex = ""
        literal = 0
        for part in re.split(r"(\{[^}]+\})", uri):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1].rstrip("+")
                labels.append(name)
                # A label is one percent-encoded path segment; SDKs encode '/' inside IDs.
                # Greedy labels ({name+}) may span segments.
                regex += f"(?P<{name}>.+)" if part.endswith("+}") else f"(?P<{name}>[^/]+)"
            else:
                literal += len(part)
                regex += re.escape(part)
        return Route(operation, operation.http["method"], re.compile(regex), tuple(labels), literal)


def _check_string(name: str, shape: Shape, value: str) -> list[str]:
    """Coral-style constraint violations of a string member (enum, length, pattern)."""
    if not isinstance(shape, StringShape):
        return []
    problems: list[str] = []
    enum = shape.enum
    if enum and value not in enum:
        problems.append(
            f"Value '{value}' at '{name}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(enum)}]"
        )
    meta = shape.metadata
    if "min" in meta and len(value) < int(meta["min"]):
        problems.append(
            f"Value '{value}' at '{name}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {meta['min']}"
        )
    if "max" in meta and len(value) > int(meta["max"]):
        problems.append(
            f"Value '{value[:64]}' at '{name}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {meta['max']}"
        )
    pattern = meta.get("pattern")
    # The whole value must match (docs/security.md, "Service-model patterns"): AWS's services
    # apply a model's pattern to the entire value, as Java's `matches()` does.
    if pattern and _compiled(pattern).fullmatch(value) is None:
        problems.append(
            f"Value '{value}' at '{name}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern}"
        )
    return problems


_JAVA_CLASSES = {"ASCII": r"\x00-\x7F", "Print": r"\x20-\x7E", "Alnum": "a-zA-Z0-9"}
"""POSIX classes (`\\p{Name}`) that models' Java-flavoured patterns use, as ranges."""


def _python_pattern(pattern: str) -> str:
    """A service model's (Java) regular expression in Python's syntax."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            if pair == "\\p" and pattern.startswith("{", i + 2):
                end = pattern.index("}", i)
                ranges = _JAVA_CLASSES[pattern[i + 3 : end]]
                out.append(ranges if in_class else f"[{ranges}]")
                i = end + 1
                continue
            out.append("\\Z" if pair == "\\z" else pair)
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_python_pattern(pattern))


def _coral_message(problems: list[str]) -> str:
    # The Coral framework's format; seen on many AWS services. For Bedrock specifically the
    # exact wording is unverified; the SDKs key on the error type, not the text.
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(problems)
