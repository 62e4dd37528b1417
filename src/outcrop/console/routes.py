"""The console's local routes: the single-page app and its JSON API (docs/console.md).

    GET    /_outcrop/console                  the app (index.html), /_outcrop/console/ too
    GET    /_outcrop/console/assets/NAME      its scripts and styles (built, package data)
    GET    /_outcrop/console/api/overview     engines (health, queue depth), settings in force
    GET    /_outcrop/console/api/calls        recent calls' rows, oldest first (?after=SEQ,
                                              ?limit=N, default and most: [console] max_calls)
    DELETE /_outcrop/console/api/calls        forget every recorded call
    GET    /_outcrop/console/api/call?id=ID   one call decoded: request, events, assembly
    GET    /_outcrop/console/api/feed         server-sent events: `call` (a new call's row),
                                              a comment every 15 s to keep proxies open

Everything here is behind the admin guard (gateway/admin_guard.py): Host and Origin checks for
all, authentication (auth mode verify) for the API; the app and its assets carry no data and
are served without credentials, so that a browser can load the page that then asks for them.
The rest of what the console does goes through the APIs that already exist: the fault and
scripted-response admin APIs, Bedrock's guardrail operations, the runtime's operations.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from outcrop.console.assemble import details
from outcrop.console.calls import CallRing
from outcrop.gateway.admin_guard import CONSOLE_ASSETS, CONSOLE_PAGES
from outcrop.services.base import Response, StreamResponse

PREFIX = "/_outcrop/console"
API = PREFIX + "/api"
ASSETS = CONSOLE_ASSETS
STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0

SECURITY_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


def is_public_asset(method: str, path: str) -> bool:
    """The app's own files: no data in them, so no credentials needed to load them."""
    return method in ("GET", "HEAD") and (path in (PREFIX, PREFIX + "/") or path.startswith(ASSETS))


class ConsoleRoutes:
    """Handlers of the routes above, over the ring of recent calls."""

    def __init__(
        self,
        ring: CallRing,
        overview: Callable[[], dict[str, Any]],
        static: Path = STATIC,
    ) -> None:
        self.ring = ring
        self.overview = overview
        self.static = static

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            **{("GET", page): self.index for page in sorted(CONSOLE_PAGES)},
            ("GET", API + "/overview"): self.get_overview,
            ("GET", API + "/calls"): self.list_calls,
            ("DELETE", API + "/calls"): self.clear_calls,
            ("GET", API + "/call"): self.get_call,
            ("GET", API + "/feed"): self.feed,
        }

    def prefix_routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", ASSETS): self.asset}

    # -- the app -------------------------------------------------------------------------------

    async def index(self, request: Any) -> Response:
        page = self.static / "index.html"
        if not page.is_file():
            return _json(404, {"message": "The console is not built (make console)."})
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")]
        return Response(page.read_bytes(), [*headers, *SECURITY_HEADERS])

    async def asset(self, request: Any) -> Response:
        name = request.path.removeprefix(ASSETS)
        root = (self.static / "assets").resolve()
        path = (root / name).resolve()
        if "/" in name or name.startswith(".") or path.parent != root or not path.is_file():
            return _json(404, {"message": f"No console asset {name!r}."})
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if media.startswith("text/") or media == "application/javascript":
            media += "; charset=utf-8"
        headers = [
            ("Content-Type", media),
            ("Cache-Control", "public, max-age=31536000, immutable"),
        ]
        return Response(path.read_bytes(), [*headers, *SECURITY_HEADERS])

    # -- the API -------------------------------------------------------------------------------

    async def get_overview(self, request: Any) -> Response:
        body = self.overview()
        body["console"] = {
            "calls": len(self.ring),
            "capacity": self.ring.capacity,
            "feeds": self.ring.feeds,
        }
        return _json(200, body)

    async def list_calls(self, request: Any) -> Response:
        query = parse_qs(request.query)
        after = _int(query, "after", 0)
        limit = _int(query, "limit", self.ring.capacity)
        if after is None or limit is None or limit < 1:
            return _json(400, {"message": "after and limit are whole numbers (limit >= 1)."})
        calls = self.ring.since(after, limit)
        return _json(
            200,
            {
                "calls": [c.summary() for c in calls],
                "total": len(self.ring),
                "capacity": self.ring.capacity,
            },
        )

    async def clear_calls(self, request: Any) -> Response:
        return _json(200, {"cleared": self.ring.clear()})

    async def get_call(self, request: Any) -> Response:
        ids = parse_qs(request.query).get("id", [])
        if len(ids) != 1:
            return _json(400, {"message": "Name exactly one call: ?id=REQUEST_ID."})
        call = self.ring.get(ids[0])
        if call is None:
            return _json(
                404,
                {
                    "message": f"No recorded call {ids[0]!r} (the ring keeps the "
                    f"last {self.ring.capacity}: [console] max_calls)."
                },
            )
        return _json(200, details(call))

    async def feed(self, request: Any) -> Response | StreamResponse:
        queue = self.ring.open_feed()
        if queue is None:
            return _json(
                429,
                {
                    "message": f"{self.ring.max_feeds} live feeds are open ([console] "
                    "max_feed_clients)."
                },
            )
        headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ]
        return StreamResponse(headers, self._events(queue))

    async def _events(
        self, queue: asyncio.Queue[dict[str, Any] | None]
    ) -> AsyncGenerator[bytes, None]:
        try:
            yield b": outcrop console feed\n\n"
            while True:
                try:
                    row = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if row is None:
                    return
                yield b"event: call\ndata: " + json.dumps(row).encode() + b"\n\n"
        finally:
            self.ring.close_feed(queue)


def _int(query: dict[str, list[str]], name: str, default: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        return None


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body).encode(),
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        status,
    )
