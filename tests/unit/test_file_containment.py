"""File escapes: InvokeEndpointAsync locations and multi-model targets stay under their roots.

Each attack below wrote or read outside the local S3 root before containment (issue 13, item 1);
now it is refused with SageMaker's ValidationError before the 202, and nothing is written.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from outcrop.config import SageMakerSettings, ScriptedSettings, Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.sagemaker.async_inference import AsyncStorage
from outcrop.wire.errors import SageMakerValidationError
from tests.asgi_driver import Result, call


def app_at(root: Path) -> OutcropApp:
    settings = Settings(
        engines={"default": ScriptedSettings(type="scripted")},
        sagemaker=SageMakerSettings(async_local_root=root),
    )
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


async def invoke_async(
    app: OutcropApp, headers: list[tuple[str, str]], endpoint: str = "lmi"
) -> Result:
    result = await call(
        app,
        "POST",
        f"/endpoints/{endpoint}/async-invocations",
        json.dumps({"inputs": "secret-payload"}).encode() if not _has_input(headers) else b"",
        headers=[("content-type", "application/json"), *headers],
    )
    await asyncio.gather(*app.sagemaker._async_tasks, return_exceptions=True)
    return result


def _has_input(headers: list[tuple[str, str]]) -> bool:
    return any(k.lower() == "x-amzn-sagemaker-inputlocation" for k, _ in headers)


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "s3"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    return root, outside


ESCAPES = [
    [("X-Amzn-SageMaker-S3OutputPathExtension", "../../../../outside")],
    [("X-Amzn-SageMaker-S3OutputPathExtension", "a/../../../../../outside")],
    [("X-Amzn-SageMaker-Inference-Id", "../../../../outside/pwned")],
    [("X-Amzn-SageMaker-Inference-Id", "..")],
    [("X-Amzn-SageMaker-Inference-Id", "a%2F..%2F..%2F..%2F..%2Foutside%2Fx")],
]


@pytest.mark.parametrize("headers", ESCAPES)
async def test_output_escapes_are_refused(layout: tuple[Path, Path], headers: list[Any]) -> None:
    root, outside = layout
    app = app_at(root)
    result = await invoke_async(app, headers)
    assert result.status == 400, result.body
    assert result.headers["x-amzn-errortype"].startswith("ValidationError")
    assert files_under(outside) == set()
    assert files_under(root.parent) == set()


async def test_encoded_slashes_in_the_endpoint_name_are_refused(
    layout: tuple[Path, Path],
) -> None:
    root, _ = layout
    app = app_at(root)
    result = await invoke_async(app, [], endpoint="x%2F..%2F..%2F..%2F..%2Foutside")
    assert result.status == 400, result.body
    assert result.headers["x-amzn-errortype"].startswith("ValidationError")
    assert b"regular expression pattern" in result.body
    assert files_under(root.parent) == set()


@pytest.mark.parametrize(
    "location",
    [
        "s3://../outside/secret.json",
        "s3://bucket/../../outside/secret.json",
        "s3://bucket/a/%2e%2e/%2e%2e/%2e%2e/outside/secret.json",
        "https://bucket/../../outside/secret.json",
    ],
)
async def test_input_location_escapes_are_refused(layout: tuple[Path, Path], location: str) -> None:
    root, outside = layout
    (outside / "secret.json").write_text(json.dumps({"inputs": "stolen"}))
    app = app_at(root)
    result = await invoke_async(app, [("X-Amzn-SageMaker-InputLocation", location)])
    assert result.status == 400, result.body
    assert result.headers["x-amzn-errortype"].startswith("ValidationError")
    assert files_under(root) == set()  # no output carrying the stolen input


async def test_symlinked_folder_inside_the_root_does_not_lead_out(
    layout: tuple[Path, Path],
) -> None:
    root, outside = layout
    (root / "bucket").mkdir()
    (root / "bucket" / "link").symlink_to(outside, target_is_directory=True)
    (outside / "secret.json").write_text(json.dumps({"inputs": "stolen"}))
    app = app_at(root)
    result = await invoke_async(
        app, [("X-Amzn-SageMaker-InputLocation", "s3://bucket/link/secret.json")]
    )
    assert result.status == 400, result.body


async def test_contained_locations_still_work(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "inputs").mkdir()
    (root / "inputs" / "req.json").write_text(json.dumps({"inputs": "from a file"}))
    app = app_at(root)
    result = await invoke_async(
        app,
        [
            ("X-Amzn-SageMaker-InputLocation", "s3://inputs/req.json"),
            ("X-Amzn-SageMaker-S3OutputPathExtension", "batch/7"),
            ("X-Amzn-SageMaker-Inference-Id", "job.1"),
        ],
    )
    assert result.status == 202, result.body
    written = root / "outcrop-sagemaker-async" / "lmi" / "output" / "batch" / "7" / "job.1.out"
    assert b"from a file" in written.read_bytes()


def test_configured_directories_contain_request_parts(tmp_path: Path) -> None:
    storage = AsyncStorage(tmp_path / "s3")
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path, target_is_directory=True)
    locations = storage.locations(
        "ep", "id1", output_path=str(out), failure_path=None, extension="x", filename=None
    )
    assert locations.output == (out / "x" / "id1.out").as_uri()
    with pytest.raises(SageMakerValidationError):
        storage.locations(
            "ep", "id1", output_path=str(out), failure_path=None, extension="link", filename=None
        )
    with pytest.raises(SageMakerValidationError):
        storage.locations(
            "ep",
            "id1",
            output_path=str(out),
            failure_path=None,
            extension=None,
            filename="..",
        )
