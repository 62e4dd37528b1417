"""What `outcrop serve` tells a person while it starts.

While engines load (the embedded model is assembled from its package, then loaded), progress
goes to standard error: a live spinner on a terminal, one line per change of state otherwise.
Once every engine has finished loading, one line goes to standard output with the URL and the
environment variable to export; tools (tests/support/server.py) wait for its
`AWS_ENDPOINT_URL` text. An engine that failed to load is reported on standard error first; the
server keeps running and `/_outcrop/health` says `failed`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from rich.console import Console

from outcrop.engines.base import Engine
from outcrop.types import EngineHealth

POLL_SECONDS = 0.1


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


def failures(states: Mapping[str, EngineHealth]) -> list[str]:
    return [
        f"outcrop: engine {name} failed to load: {h.detail or 'unknown error'}"
        for name, h in states.items()
        if h.state == "failed"
    ]


async def announce(
    engines: Mapping[str, Engine],
    urls: list[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Show loading progress until no engine is loading, then print the URL line."""
    out = out or sys.stdout
    console = Console(file=err or sys.stderr, highlight=False, markup=False, soft_wrap=True)
    started = time.monotonic()

    def states() -> dict[str, EngineHealth]:
        return {name: engine.health() for name, engine in engines.items()}

    def loading(now: dict[str, EngineHealth]) -> bool:
        return any(h.state == "loading" for h in now.values())

    now = states()
    if loading(now):
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
        console.print(f"Models loaded in {time.monotonic() - started:.1f}s")
    for line in failures(now):
        console.print(line)
    print(url_line(urls), file=out, flush=True)
