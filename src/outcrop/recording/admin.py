"""The recording admin API, a local route behind the admin guard (Host, Origin, and in verify
mode authentication, as every `/_outcrop/` route):

    GET /_outcrop/recording   the cassette in use, the mode and counts
    PUT /_outcrop/recording   {"cassette": "name" | null, "mode": "none|once|new_episodes|all"}
                              selects <dir>/<name>.json (null: the session default); 200 + state

A body that is not a JSON object, an unknown key, a bad name or mode, or a cassette file that
does not load gets a 400 with `{"message": ...}`; when recording is off every call gets a 404.
"""

from __future__ import annotations

import json
from typing import Any

from outcrop.gateway.dispatch import LocalHandler, LocalRequest
from outcrop.recording.cassette import CassetteError
from outcrop.recording.library import Library, SelectionError
from outcrop.services.base import Response

PATH = "/_outcrop/recording"


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), [("Content-Type", "application/json")], status)


class RecordingAdmin:
    def __init__(self, library: Library | None) -> None:
        self.library = library

    def routes(self) -> dict[tuple[str, str], LocalHandler]:
        return {("GET", PATH): self.get, ("PUT", PATH): self.put}

    async def get(self, request: LocalRequest) -> Response:
        if self.library is None:
            return _off()
        return _json(200, self.library.status())

    async def put(self, request: LocalRequest) -> Response:
        if self.library is None:
            return _off()
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _json(400, {"message": "the body must be a JSON object"})
        if not isinstance(body, dict):
            return _json(400, {"message": "the body must be a JSON object"})
        unknown = sorted(set(body) - {"cassette", "mode"})
        if unknown:
            return _json(400, {"message": f"unknown keys {unknown}; use cassette, mode"})
        name, mode = body.get("cassette"), body.get("mode")
        if (name is not None and not isinstance(name, str)) or (
            mode is not None and not isinstance(mode, str)
        ):
            return _json(400, {"message": "cassette and mode are strings (cassette may be null)"})
        try:
            self.library.select(name, mode)
        except (SelectionError, CassetteError) as exc:
            return _json(400, {"message": str(exc)})
        return _json(200, self.library.status())


def _off() -> Response:
    return _json(404, {"message": "recording is off (outcrop serve --record DIR or --replay DIR)"})
