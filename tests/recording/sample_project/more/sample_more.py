"""A second folder of the user's tests: its cassettes go to `more/cassettes/`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def test_more(outcrop_bedrock_runtime: Any) -> None:
    reply = outcrop_bedrock_runtime.converse(
        modelId=MODEL,
        messages=[{"role": "user", "content": [{"text": "One more."}]}],
        inferenceConfig={"maxTokens": 8},
    )
    out = Path(os.environ["SAMPLE_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "more.test_more.json").write_text(json.dumps(reply["output"], sort_keys=True))
