"""MultiModelBackend in process: concurrent first requests share one load, a model serving a
request is not unloaded, a model that fails to load is a broken backend, not a loaded one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from outcrop.config import ScriptedSettings
from outcrop.engines.base import Engine
from outcrop.engines.factory import build_engine
from outcrop.sagemaker.backends import BackendBroken, EngineBackend, Invocation
from outcrop.sagemaker.multi_model import MultiModelBackend
from outcrop.wire.errors import SageMakerValidationError


def backend(tmp_path: Path, max_loaded: int = 1, **template: object) -> MultiModelBackend:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"weights")
    settings = ScriptedSettings.model_validate({"type": "scripted", **template})

    def engine_backend(engine: Engine) -> EngineBackend:
        return EngineBackend(engine, "tgi")

    return MultiModelBackend(
        "ep/primary", tmp_path, settings, max_loaded, engine_backend, build_engine
    )


def invocation(target: str, stream: bool = False) -> Invocation:
    body = json.dumps({"inputs": "hi", "stream": stream}).encode()
    return Invocation("r", body, "application/json", target_model=target)


async def test_concurrent_first_requests_share_one_load(tmp_path: Path) -> None:
    models = backend(tmp_path, load_ms=100)
    replies = await asyncio.gather(*(models.invoke(invocation("a")) for _ in range(3)))
    assert [r.status for r in replies] == [200, 200, 200]
    for reply in replies:
        async for _ in reply.chunks:
            pass
    assert models.loads == 1


async def test_a_model_serving_a_request_is_not_unloaded(tmp_path: Path) -> None:
    models = backend(tmp_path, delay_ms=50, token_count=5)
    streaming = await models.invoke(invocation("a", stream=True))
    reply_b = await models.invoke(invocation("b"))  # over the limit, but a is busy
    assert models.describe()["LoadedModels"] == ["a", "b"]
    async for _ in reply_b.chunks:
        pass
    await asyncio.sleep(0.05)  # b is done and a still busy: the idle one goes
    assert models.describe()["LoadedModels"] == ["a"]
    async for _ in streaming.chunks:
        pass
    reply_a = await models.invoke(invocation("a"))  # still loaded: no cold start
    async for _ in reply_a.chunks:
        pass
    assert (models.loads, models.describe()["LoadedModels"]) == (2, ["a"])
    await models.close()
    assert models.describe()["LoadedModels"] == []


async def test_a_model_that_fails_to_load(tmp_path: Path) -> None:
    models = backend(tmp_path, load_error="corrupt file")
    with pytest.raises(BackendBroken, match="corrupt file"):
        await models.invoke(invocation("a"))
    assert models.describe()["LoadedModels"] == []


async def test_spellings_of_one_model_load_it_once(tmp_path: Path) -> None:
    models = backend(tmp_path)
    for target in ("a", "./a", "a/.", "./a/./."):
        reply = await models.invoke(invocation(target))
        async for _ in reply.chunks:
            pass
    assert (models.loads, models.describe()["LoadedModels"]) == (1, ["a"])
    await models.close()


@pytest.mark.parametrize("target", ["link/secret.gguf", "./link/./secret.gguf", "../a", "/a"])
async def test_symlinked_folders_do_not_lead_out(tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.gguf").write_bytes(b"weights")
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "link").symlink_to(outside, target_is_directory=True)
    models = backend(models_dir)
    with pytest.raises(SageMakerValidationError):
        await models.invoke(invocation(target))
    assert models.loads == 0


async def test_a_symlinked_model_file_is_served(tmp_path: Path) -> None:
    elsewhere = tmp_path / "store.gguf"
    elsewhere.write_bytes(b"weights")
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "m.gguf").symlink_to(elsewhere)
    models = backend(models_dir)
    reply = await models.invoke(invocation("m.gguf"))
    assert reply.status == 200
    async for _ in reply.chunks:
        pass
    await models.close()
