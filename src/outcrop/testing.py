"""Test helpers for applications tested against Outcrop: fault rules and scripted responses.

`Faults` talks to a running server's fault API (`/_outcrop/faults`), `Responses` to its
scripted-response API (`/_outcrop/responses`: what the model answers next). `faults()` and
`responses()` are context managers that remove every rule they added when they end, which makes
each a pytest fixture in two lines:

    import pytest
    from outcrop.testing import faults

    @pytest.fixture
    def outcrop_faults():
        with faults("http://127.0.0.1:4590") as f:
            yield f

    def test_my_retry_logic(outcrop_faults):
        rule = outcrop_faults.inject("error", error="ThrottlingException", times=2)
        ...                              # call Bedrock through the SDK as usual
        assert outcrop_faults.get(rule).fired == 2

    def test_my_tool_handling():
        with responses() as r:
            r.queue(tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}])
            ...                          # the next Converse call gets that tool call

Standard library only; no dependency on the rest of Outcrop.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


class AdminApiError(Exception):
    """The admin API refused a call; `status` and the server's `message` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RuleState:
    """A rule as the server reports it."""

    id: str
    matched: int
    fired: int
    remaining: int | None
    raw: dict[str, Any]


FaultApiError = AdminApiError
"""The name this error had when only the fault API existed."""


class _Rules:
    """Add, inspect and remove one kind of rule on one Outcrop server."""

    path = ""

    def __init__(self, endpoint: str | None = None, timeout: float = 10.0) -> None:
        base = endpoint or os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4590"
        self.url = base.rstrip("/") + self.path
        self.timeout = timeout
        self.added: list[str] = []

    def _add(self, fields: dict[str, Any]) -> str:
        rule = self._call("POST", self.url, fields)
        rule_id = str(rule["id"])
        self.added.append(rule_id)
        return rule_id

    def get(self, rule_id: str) -> RuleState:
        raw = self._call("GET", f"{self.url}/rule?id={quote(rule_id)}")
        return RuleState(raw["id"], raw["matched"], raw["fired"], raw.get("remaining"), raw)

    def rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = self._call("GET", self.url)["rules"]
        return rules

    def remove(self, rule_id: str) -> None:
        self._call("DELETE", f"{self.url}/rule?id={quote(rule_id)}")
        if rule_id in self.added:
            self.added.remove(rule_id)

    def clear(self) -> int:
        """Remove every rule on the server (also those others added)."""
        self.added.clear()
        return int(self._call("DELETE", self.url)["cleared"])

    def remove_added(self) -> None:
        for rule_id in list(self.added):
            try:
                self.remove(rule_id)
            except AdminApiError as exc:
                if exc.status != 404:
                    raise

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                message = json.loads(payload).get("message", payload.decode())
            except (ValueError, AttributeError):
                message = payload.decode(errors="replace")
            raise AdminApiError(exc.code, str(message)) from None


class Faults(_Rules):
    """Fault rules: calls that fail on demand."""

    path = "/_outcrop/faults"

    def inject(self, action: str, **fields: Any) -> str:
        """Add a rule (`action` plus any `[[faults]]` field); returns its id."""
        return self._add({"action": action, **fields})


class Responses(_Rules):
    """Scripted responses: what the model answers next, whatever engine serves it."""

    path = "/_outcrop/responses"

    def queue(self, text: str | None = None, **fields: Any) -> str:
        """Queue an answer (`text` and/or `tool_calls`, `reasoning`, `model`, `times`, ...:
        the fields of gateway/scripted_responses.py); returns its id."""
        body = dict(fields) if text is None else {"text": text, **fields}
        return self._add(body)


@contextmanager
def faults(endpoint: str | None = None) -> Iterator[Faults]:
    """A `Faults` client whose rules are removed when the block ends."""
    client = Faults(endpoint)
    try:
        yield client
    finally:
        client.remove_added()


@contextmanager
def responses(endpoint: str | None = None) -> Iterator[Responses]:
    """A `Responses` client whose queued answers are removed when the block ends."""
    client = Responses(endpoint)
    try:
        yield client
    finally:
        client.remove_added()


class Recording:
    """The recording admin API (`/_outcrop/recording`) of a server started with `--record DIR`
    or `--replay DIR`: which cassette file (DIR/<name>.json) calls are recorded into or
    replayed from, and in which record mode."""

    path = "/_outcrop/recording"

    def __init__(self, endpoint: str | None = None, timeout: float = 10.0) -> None:
        base = endpoint or os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4590"
        self.url = base.rstrip("/") + self.path
        self._rules = _Rules(endpoint, timeout)

    def state(self) -> dict[str, Any]:
        """The server's answer to `GET /_outcrop/recording` (current cassette, mode, ...)."""
        state: dict[str, Any] = self._rules._call("GET", self.url)
        return state

    def select(self, cassette: str | None, mode: str | None = None) -> dict[str, Any]:
        """Make `cassette` (a name under the server's DIR, without `.json`; None: the session's
        default) the current one, in record `mode` (none, once, new_episodes, all) if given."""
        body: dict[str, Any] = {"cassette": cassette}
        if mode is not None:
            body["mode"] = mode
        state: dict[str, Any] = self._rules._call("PUT", self.url, body)
        return state


@contextmanager
def cassette(
    name: str, endpoint: str | None = None, mode: str | None = None
) -> Iterator[Recording]:
    """Record into or replay from cassette `name` for the duration of the block; the cassette
    that was current before is selected again when it ends."""
    client = Recording(endpoint)
    before = client.state()
    client.select(name, mode)
    try:
        yield client
    finally:
        client.select(before.get("cassette"), before.get("mode"))
