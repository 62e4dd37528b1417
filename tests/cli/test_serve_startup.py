"""What `outcrop serve` prints as it starts: progress while models load, then the URL line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import running_server


def test_scripted_start_prints_just_the_url_line() -> None:
    with running_server(["--engine", "scripted"]) as server:
        lines = [line.strip() for line in server.output if line.strip()]
    url = server.url
    assert lines[0] == (
        f"Outcrop is serving Bedrock Runtime and SageMaker Runtime at {url}"
        f"  (export AWS_ENDPOINT_URL={url})"
    )


@pytest.mark.llamacpp
def test_default_model_start_shows_progress_then_the_url(tmp_path: Path) -> None:
    # An empty model cache makes the server assemble the embedded GGUF before loading it.
    with running_server([], ready_timeout=600, env={"OUTCROP_CACHE_DIR": str(tmp_path)}) as server:
        lines = [line.strip() for line in server.output if line.strip()]
    starting = next(i for i, line in enumerate(lines) if "loading models" in line)
    loaded = next(i for i, line in enumerate(lines) if line.startswith("Models loaded in "))
    url = next(i for i, line in enumerate(lines) if "AWS_ENDPOINT_URL" in line)
    assert starting < loaded < url
    assert any(line.startswith("engine default: ") for line in lines[starting:loaded])
