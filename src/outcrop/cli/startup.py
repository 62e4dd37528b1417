"""What `outcrop serve` tells a person while it starts.

While engines load (the embedded model is assembled from its package, then loaded), progress
goes to standard error: a live spinner on a terminal, one line per change of state otherwise.
Once every engine has finished loading, one line goes to standard output with the URL and the
environment variable to export; tools (tests/support/server.py) wait for its
`AWS_ENDPOINT_URL` text.

An engine that failed to load is reported on standard error. If it is an essential engine (the
one named `default`, or one a catch-all `*` route names) there is nothing useful to serve:
`announce` returns the failure and `outcrop serve` stops with it as its one error line and exit
status 1, without printing the URL line. Any other engine may stay failed: the server keeps
running and `/_outcrop/health` says `failed` for it. This holds for every engine type, since it
reads only `Engine.health()`.

While engines load, their own tracebacks would bury that line; `StartupTracebacks` keeps them
off standard error (OUTCROP_LOG_LEVEL=DEBUG shows them).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Collection, Mapping
from typing import TextIO

from rich.console import Console

from outcrop.config import Settings
from outcrop.engines.base import Engine
from outcrop.types import EngineHealth

POLL_SECONDS = 0.1
ENGINE_LOGGERS = ("outcrop.engines",)
"""Loggers whose error records during start-up repeat what `Engine.health()` reports."""


class StartupFailed(Exception):
    """An essential engine could not load; the message is the one line to print."""


def essential_engines(settings: Settings) -> frozenset[str]:
    """The engines without which `outcrop serve` has nothing to serve: `default`, if defined,
    and any engine a catch-all (`*`) model route names."""
    names = {r.engine for r in settings.models if r.match == "*"}
    if "default" in settings.engines:
        names.add("default")
    return frozenset(names)


class StartupTracebacks(logging.Filter):
    """Until start-up is over, engine errors are reported by `announce`, one line each:
    drops the engines' own error records (and their tracebacks) meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.starting = True

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.starting or record.levelno < logging.ERROR:
            return True
        return not record.name.startswith(ENGINE_LOGGERS)


def url_line(urls: list[str]) -> str:
    """The one line that says where the server is and what to export."""
    extra = f" and {urls[1]}" if len(urls) > 1 else ""
    return (
        f"Outcrop is serving Bedrock Runtime and SageMaker Runtime at {urls[0]}{extra}"
        f"  (export AWS_ENDPOINT_URL={urls[0]})"
    )


def progress_text(states: Mapping[str, EngineHealth], elapsed: float) -> str:
    """One line describing the engines still loading."""
    parts = []
    for name, health in states.items():
        if health.state != "loading":
            continue
        what = health.detail or "loading"
        fraction = health.extra.get("progress")
        if isinstance(fraction, int | float) and 0 <= fraction <= 1:
            what += f" {fraction:.0%}"
        parts.append(f"engine {name}: {what}")
    return f"{'; '.join(parts)} ({elapsed:.1f}s)"


def failure_text(name: str, health: EngineHealth) -> str:
    return f"engine {name} failed to load: {health.detail or 'unknown error'}"


def failures(states: Mapping[str, EngineHealth]) -> list[str]:
    failed = [(name, h) for name, h in states.items() if h.state == "failed"]
    return [f"outcrop: {failure_text(name, h)}" for name, h in failed]


async def announce(
    engines: Mapping[str, Engine],
    urls: list[str],
    *,
    essential: Collection[str] = (),
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> str | None:
    """Show loading progress until no engine is loading, then print the URL line.

    Returns the failure of the first `essential` engine that failed to load (and prints no URL
    line then), else None.
    """
    out = out or sys.stdout
    console = Console(file=err or sys.stderr, highlight=False, markup=False, soft_wrap=True)
    started = time.monotonic()

    def states() -> dict[str, EngineHealth]:
        return {name: engine.health() for name, engine in engines.items()}

    def loading(now: dict[str, EngineHealth]) -> bool:
        return any(h.state == "loading" for h in now.values())

    now = states()
    was_loading = loading(now)
    if was_loading:
        console.print(f"Outcrop is starting at {urls[0]}; loading models…")
        if console.is_terminal:
            with console.status(progress_text(now, 0.0)) as status:
                while loading(now):
                    await asyncio.sleep(POLL_SECONDS)
                    now = states()
                    status.update(progress_text(now, time.monotonic() - started))
        else:
            shown = ""
            while loading(now):
                text = progress_text(now, 0).rsplit(" (", 1)[0]
                if text != shown:
                    console.print(text)
                    shown = text
                await asyncio.sleep(POLL_SECONDS)
                now = states()
    fatal = sorted(name for name in essential if name in now and now[name].state == "failed")
    if fatal:
        return failure_text(fatal[0], now[fatal[0]])
    if was_loading:
        console.print(f"Models loaded in {time.monotonic() - started:.1f}s")
    for line in failures(now):
        console.print(line)
    print(url_line(urls), file=out, flush=True)
    return None
