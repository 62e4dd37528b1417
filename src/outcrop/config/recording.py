"""The `[recording]` section: proxy to a real upstream and record cassettes, or replay them
(docs/cassettes.md). `outcrop serve --record DIR`, `--record-upstream URL`, `--replay DIR`,
`--replay-speed N` and `--record-mode MODE` set the same keys.

    [recording]
    dir = "cassettes"            # recording is on when set
    mode = "once"                # none | once | new_episodes | all (--replay: none)
    upstream = "https://..."     # omitted: AWS, for the service and region of each request
    replay_speed = 1.0           # 10 = ten times faster; 0 = no delays
    redact_headers = ["x-api-key"]
    redact_paths = ["requestMetadata.user"]
    redact_patterns = ["\\d{3}-\\d{2}-\\d{4}"]
    default_redaction = true     # also redact what looks like AWS keys and session tokens
    match_on = "body"            # body | last_user_message | paths
    match_ignore = ["inferenceConfig.temperature"]
    match_paths = []             # match_on = "paths": only these are compared
    max_interactions = 10000     # per cassette; more are served but not recorded
    max_cassette_bytes = 268435456
    upstream_timeout_s = 300
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\*|-?\d+)\]")

PathStep = str | int
"""A key, an index (negative counts from the end) or `*` (every key or item)."""


def parse_path(path: str) -> tuple[PathStep, ...]:
    """`messages[*].content[0].text`, with or without a leading `$.`; `*` matches any key."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[PathStep] = []
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"bad JSON path {path!r} at {text[pos:]!r}")
        if m.group(1) is not None:
            steps.append(m.group(1))
        else:
            index = m.group(2)
            steps.append("*" if index == "*" else int(index))
        pos = m.end()
    if not steps:
        raise ValueError(f"empty JSON path {path!r}")
    return tuple(steps)


RecordMode = Literal["none", "once", "new_episodes", "all"]
MatchOn = Literal["body", "last_user_message", "paths"]


class RecordModeFlag(StrEnum):
    """`--record-mode` choices (the same as `[recording] mode`)."""

    none = "none"
    once = "once"
    new_episodes = "new_episodes"
    all = "all"


class RecordingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: Path | None = None
    """Where cassettes are read and written; recording and replay are off without it."""
    mode: RecordMode = "once"
    upstream: str | None = None
    """The upstream's base URL; omitted: the AWS endpoint of each request's service and region."""
    replay_speed: float = Field(1.0, ge=0)
    redact_headers: list[str] = Field(default_factory=list)
    redact_paths: list[str] = Field(default_factory=list)
    redact_patterns: list[str] = Field(default_factory=list)
    default_redaction: bool = True
    match_on: MatchOn = "body"
    match_ignore: list[str] = Field(default_factory=list)
    match_paths: list[str] = Field(default_factory=list)
    max_interactions: int = Field(10_000, ge=1)
    """Interactions one cassette holds; calls beyond it are answered but not recorded."""
    max_cassette_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    """Bytes one cassette file holds (roughly, as JSON); calls beyond it are not recorded."""
    upstream_timeout_s: float = Field(300.0, gt=0)
    """The longest an upstream call (a stream included) may take."""

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact_patterns: {pattern!r}: {exc}") from None
        return value

    @field_validator("redact_paths", "match_ignore", "match_paths")
    @classmethod
    def _paths_parse(cls, value: list[str]) -> list[str]:
        for path in value:
            parse_path(path)
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("upstream: an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @property
    def enabled(self) -> bool:
        return self.dir is not None


def with_flags(
    settings: RecordingSettings,
    *,
    record: Path | None = None,
    upstream: str | None = None,
    replay: Path | None = None,
    replay_speed: float | None = None,
    mode: str | None = None,
) -> RecordingSettings:
    """The `[recording]` settings with `outcrop serve`'s flags laid over them: `--record DIR`
    records (mode `once` unless given), `--replay DIR` replays (mode `none` unless given)."""
    if record is not None and replay is not None:
        raise ValueError("--record and --replay: give one of them (--record-mode decides the rest)")
    data = settings.model_dump()
    if record is not None:
        data["dir"] = record
    if replay is not None:
        data["dir"] = replay
        data["mode"] = "none"
    if mode is not None:
        data["mode"] = mode
    if upstream is not None:
        data["upstream"] = upstream
    if replay_speed is not None:
        data["replay_speed"] = replay_speed
    if data["dir"] is None and (mode, upstream, replay_speed) != (None, None, None):
        raise ValueError(
            "--record-mode, --record-upstream and --replay-speed need --record or --replay"
        )
    return RecordingSettings.model_validate(data)
