"""Which cassette a server plays and records now, in which mode, and writing it durably.

By default (no cassette selected) replay answers from every cassette under the folder
(`**/*.json`; JSON files without an `outcrop_cassette` key are skipped with one warning, a file
that claims to be a cassette and is broken stops the server) and new recordings go to
`session-<UTC timestamp>.json` there. Selecting a cassette by name (`PUT /_outcrop/recording`,
what the pytest plugin does per test) plays and records `<dir>/<name>.json` only. Modes, as
VCR's (docs/cassettes.md):

* `none`: replay only; a call no interaction matches is refused.
* `once`: replay only when the cassette existed, else record every call (the default session's
  cassette is always new: `outcrop serve --record DIR` records every call).
* `new_episodes`: replay what matches, record the rest.
* `all`: every call goes upstream and is recorded (a selected cassette starts empty).

Each new interaction is appended and the file rewritten atomically; a cassette holds at most
`max_interactions` interactions and about `max_cassette_bytes` bytes, calls beyond that are
answered but not recorded.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outcrop.config import ConfigError
from outcrop.config.recording import RecordingSettings, RecordMode
from outcrop.recording.cassette import (
    Call,
    Cassette,
    CassetteError,
    Interaction,
    Matcher,
    NotACassette,
    Redaction,
    Tape,
)

log = logging.getLogger("outcrop.recording")

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
MODES: tuple[RecordMode, ...] = ("none", "once", "new_episodes", "all")


class SelectionError(ValueError):
    """A cassette name or mode the admin API refuses (the message says why)."""


def check_name(name: str) -> str:
    """A cassette name: letters, digits, `_ . -`, folders separated by `/`, no `..`."""
    stem = name.removesuffix(".json")
    if len(stem) > 200 or not _NAME.match(stem) or ".." in stem.split("/"):
        raise SelectionError(
            f"cassette name {name!r}: use letters, digits, '_', '.', '-' and '/' between "
            "folders (at most 200 characters, no '..')"
        )
    return stem


@dataclass(slots=True)
class Decision:
    """What to do with a call: the interaction to replay, else whether to go upstream."""

    replay: Interaction | None
    upstream: bool


class Library:
    """The cassette in use, its tape and the recording mode; one per server."""

    def __init__(self, settings: RecordingSettings) -> None:
        assert settings.dir is not None
        self.dir = Path(settings.dir)
        self.settings = settings
        self.matcher = Matcher.build(settings.match_on, settings.match_ignore, settings.match_paths)
        self.redaction = Redaction.build(
            settings.redact_headers,
            settings.redact_paths,
            settings.redact_patterns,
            settings.default_redaction,
        )
        self.mode: RecordMode = settings.mode
        self.name: str | None = None
        self.session_name = "session-" + datetime.datetime.now(datetime.UTC).strftime(
            "%Y%m%dT%H%M%S%fZ"
        )
        self.tape = Tape(matcher=self.matcher)
        self.cassette = Cassette()
        """What is written to `path`: the loaded file plus what was recorded since."""
        self.existed = False
        self._bytes = 0
        self._lock = asyncio.Lock()
        try:
            self._load()
        except CassetteError as exc:
            raise ConfigError(f"recording: {exc}") from None

    @property
    def path(self) -> Path:
        return self.dir / f"{self.name or self.session_name}.json"

    def _load(self) -> None:
        if self.name is None:
            files = (
                sorted(p for p in self.dir.rglob("*.json") if p.is_file())
                if self.dir.is_dir()
                else []
            )
            interactions: list[Interaction] = []
            foreign: list[str] = []
            for file in files:
                try:
                    interactions += Cassette.load(file).interactions
                except NotACassette:
                    foreign.append(str(file.relative_to(self.dir)))
            if foreign:
                log.warning(
                    "recording: skipped %d JSON file(s) under %s that are not cassettes "
                    "(no outcrop_cassette key): %s",
                    len(foreign),
                    self.dir,
                    ", ".join(foreign),
                )
            self.existed = False  # the session's own cassette is always new
            self.cassette = Cassette()
        else:
            self.existed = self.path.is_file()
            self.cassette = Cassette.load(self.path) if self.existed else Cassette()
            if self.mode == "all":
                self.cassette = Cassette()
            interactions = list(self.cassette.interactions)
        self.tape = Tape(interactions if self.mode != "all" else (), self.matcher)
        self._bytes = sum(i.size() for i in self.cassette.interactions)

    def select(self, name: str | None, mode: str | None = None) -> None:
        """Use cassette `name` (None: back to the session default), in `mode` if given."""
        if mode is not None and mode not in MODES:
            raise SelectionError(f"mode {mode!r}: one of {', '.join(MODES)}")
        stem = check_name(name) if name is not None else None
        before = self.mode, self.name
        self.mode = mode if mode is not None else self.mode
        self.name = stem
        try:
            self._load()
        except Exception:
            self.mode, self.name = before
            self._load()
            raise

    def decide(self, call: Call) -> Decision:
        if self.mode == "all" or (self.mode == "once" and not self.existed):
            return Decision(None, True)
        found = self.tape.play(call)
        if found is not None:
            return Decision(found, False)
        return Decision(None, self.mode == "new_episodes")

    def nearest(self, call: Call) -> Any:
        return self.tape.nearest(call)

    async def record(self, interaction: Interaction) -> bool:
        """Append and write the cassette; False when its bounds leave no room."""
        async with self._lock:
            size = interaction.size()
            s = self.settings
            if (
                len(self.cassette.interactions) >= s.max_interactions
                or self._bytes + size > s.max_cassette_bytes
            ):
                log.warning(
                    "cassette %s is full (max_interactions %d, max_cassette_bytes %d): "
                    "%s not recorded",
                    self.path,
                    s.max_interactions,
                    s.max_cassette_bytes,
                    interaction.operation,
                )
                return False
            self.cassette.interactions.append(interaction)
            self._bytes += size
            self.tape.add(interaction)
            snapshot = Cassette(list(self.cassette.interactions))
            await asyncio.to_thread(snapshot.save, self.path)
            return True

    def status(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "cassette": self.name,
            "path": str(self.path),
            "mode": self.mode,
            "existed": self.existed,
            "interactions": len(self.tape.interactions),
            "recorded": len(self.cassette.interactions),
        }
