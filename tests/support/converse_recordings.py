"""Recorded real Converse / ConverseStream traffic (tests/fixtures/converse_recordings/, copied
from the public recordings docs/recordings.md describes): reading it, and comparing our events'
keys and types with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "converse_recordings"


@dataclass
class Interaction:
    """One recorded HTTP exchange: the request body, the response body or its stream events."""

    url: str
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def interactions(name: str) -> list[Interaction]:
    """The interactions of one recording file; stream payloads lose their `p` padding."""
    found: list[Interaction] = []
    event_type: str | None = None
    for line in (FIXTURES / name).read_text().splitlines():
        if line.startswith("=== interaction"):
            found.append(Interaction(url=line.split()[-1]))
        elif line.startswith("REQ BODY: "):
            found[-1].request = _loads(line.removeprefix("REQ BODY: "))
        elif line.startswith("RESP BODY: "):
            found[-1].response = _loads(line.removeprefix("RESP BODY: "))
        elif line.startswith("  FRAME headers= "):
            event_type = json.loads(line.removeprefix("  FRAME headers= "))[":event-type"]
        elif line.startswith("    PAYLOAD: ") and event_type is not None:
            payload = _loads(line.removeprefix("    PAYLOAD: "))
            if payload is not None:
                payload.pop("p", None)
                found[-1].events.append((event_type, payload))
    return found


def _loads(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:  # bodies were cut at 4,000 characters when decoded
        return None
    return value if isinstance(value, dict) else None


def signature(value: Any) -> Any:
    """The keys and JSON value types of a value, recursively (what shape tests compare)."""
    if isinstance(value, dict):
        return {key: signature(item) for key, item in value.items() if key != "p"}
    if isinstance(value, list):
        return [signature(item) for item in value]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


NOT_SERVED = frozenset(
    {
        "serverToolUsage",
        "cacheReadInputTokens",
        "cacheWriteInputTokens",
        "cacheReadInputTokenCount",
        "cacheWriteInputTokenCount",
    }
)


def conforms(ours: Any, recorded: Any, where: str = "$") -> None:
    """`ours` has the recorded keys (less NOT_SERVED ones) and value types, recursively."""
    if isinstance(recorded, dict):
        assert isinstance(ours, dict), where
        assert set(ours) <= set(recorded), f"{where}: extra keys {set(ours) - set(recorded)}"
        missing = set(recorded) - set(ours) - NOT_SERVED
        assert not missing, f"{where}: missing keys {missing}"
        for key in ours:
            conforms(ours[key], recorded[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(ours, list) and len(ours) == len(recorded), where
        for index, (mine, theirs) in enumerate(zip(ours, recorded, strict=True)):
            conforms(mine, theirs, f"{where}[{index}]")
    else:
        assert ours == recorded, f"{where}: {ours} != {recorded}"
