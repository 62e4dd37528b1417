"""The `[guardrails]` section of the configuration file.

    [guardrails]
    state_dir = "/var/lib/outcrop"   # where guardrails created through the API persist
                                     # (guardrails.json); default: $OUTCROP_STATE_DIR, else
                                     # $XDG_STATE_HOME/outcrop, else ~/.local/state/outcrop
    stream_chunk_chars = 1000        # streamed output is checked in chunks of this many characters

    [[guardrails.define]]            # a guardrail served with a DRAFT and a version 1
    id = "supportbot01"              # optional (12 lowercase letters/digits); default: from name
    name = "support-bot"             # then any CreateGuardrail member, spelled as in the API
    blockedInputMessaging = "Sorry, I can't help with that."
    blockedOutputsMessaging = "Sorry, I can't answer that."
    [guardrails.define.wordPolicyConfig]
    managedWordListsConfig = [{ type = "PROFANITY" }]

Each `define` entry is checked where the app is built (`guardrails.runtime.check_definitions`,
called by `outcrop.app.load_settings`) against the CreateGuardrail request shape of botocore's
`bedrock` service model (the same check the API applies) and against what Bedrock refuses beyond
it, so a mistake stops the server at start with the member's path in the message. Here only the
IDs and names are checked (well formed, none twice).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

"""The account in guardrail ARNs when none is configured (`[auth] account_id` sets it)."""

_ID = re.compile(r"^[a-z0-9]{1,64}$")


class GuardrailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state_dir: Path | None = None
    stream_chunk_chars: int = Field(1000, ge=1, le=100_000)
    define: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("define")
    @classmethod
    def _valid_definitions(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids: set[str] = set()
        names: set[str] = set()
        for index, entry in enumerate(value):
            gid = entry.get("id")
            if gid is not None and (not isinstance(gid, str) or not _ID.match(gid)):
                raise ValueError(f"define[{index}].id: must be 1-64 lowercase letters or digits")
            key = gid if isinstance(gid, str) else str(entry.get("name"))
            if key in ids or entry.get("name") in names:
                raise ValueError(
                    f"define[{index}]: a guardrail with this id or name is defined twice"
                )
            ids.add(key)
            names.add(str(entry.get("name")))
        return value

    def resolved_state_dir(self) -> Path:
        """Where the state file lives (see the module docstring for the defaults)."""
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        env = os.environ.get("OUTCROP_STATE_DIR")
        if env:
            return Path(env).expanduser()
        xdg = os.environ.get("XDG_STATE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".local" / "state"
        return base / "outcrop"
