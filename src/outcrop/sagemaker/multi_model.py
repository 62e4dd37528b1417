"""Multi-model containers: `TargetModel` picks a model file, loaded on first use.

SageMaker's multi-model endpoints load the model a request names (`TargetModel`, a path
relative to the model's S3 prefix) on its first invocation, keep it while memory allows and
unload the least recently used. Here the prefix is a local directory (`models_dir` of the
container) and a model is built from the container's engine settings as a template (for
llama.cpp, `model` is replaced by the target's file). At most `max_loaded_models` stay
loaded: past that, the least recently used model not serving a request is unloaded. Loading
happens inside the invocation (a cold start, as on SageMaker), once however many requests
ask for the same model meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outcrop.config import EngineSettings, LlamaCppSettings
from outcrop.engines.base import Engine
from outcrop.sagemaker.backends import BackendBroken, BackendResponse, EngineBackend, Invocation
from outcrop.wire.errors import SageMakerValidationError

EngineBuilder = Callable[[str, EngineSettings], Engine]


@dataclass(slots=True)
class _Loaded:
    engine: Engine
    backend: EngineBackend
    in_use: int = 0


class MultiModelBackend:
    """One multi-model container: its loaded models, by target name, least recent first."""

    def __init__(
        self,
        name: str,
        models_dir: Path,
        template: EngineSettings,
        max_loaded: int,
        make_backend: Callable[[Engine], EngineBackend],
        build: EngineBuilder,
    ) -> None:
        self.name = name
        self.models_dir = models_dir
        self.template = template
        self.max_loaded = max_loaded
        self._make_backend = make_backend
        self._build = build
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Task[_Loaded]] = {}
        self._evicting: set[asyncio.Task[None]] = set()
        self.loads = 0
        """Models loaded so far (cold starts), for the admin API."""

    def ready(self) -> bool | None:
        return True  # models load on demand; the container itself is up

    def describe(self) -> dict[str, Any]:
        return {
            "MultiModel": True,
            "ModelsDirectory": str(self.models_dir),
            "LoadedModels": list(self._loaded),
            "MaxLoadedModels": self.max_loaded,
            "ModelLoads": self.loads,
        }

    def model_path(self, target: str) -> tuple[str, Path]:
        """The canonical name of the model `target` names (`./a.gguf` and `a.gguf/.` are both
        `a.gguf`, one model loaded once) and its file under the models directory, or the
        ValidationError an endpoint answers for a model it cannot load (wording unverified).

        The folders on the way must lie inside the models directory once symlinks are
        resolved (docs/security.md, "Files"); the file itself may be a symlink to elsewhere,
        as an operator places model files."""
        parts = [p for p in target.split("/") if p != "."]
        # An empty part also refuses an absolute path, `a//b` and a trailing `/`.
        if not parts or "\\" in target or "\x00" in target or any(p in ("..", "") for p in parts):
            raise SageMakerValidationError(
                f"TargetModel {target!r} is not a relative path of a model under the "
                "endpoint's model directory."
            )
        root = self.models_dir.resolve()
        folder = root.joinpath(*parts[:-1]).resolve()
        path = folder / parts[-1]
        if not folder.is_relative_to(root) or not path.is_file():
            raise SageMakerValidationError(
                f"Failed to load model {target!r}: no such model file under the endpoint's "
                "model directory."
            )
        return "/".join(parts), path

    async def invoke(self, invocation: Invocation) -> BackendResponse:
        target = invocation.target_model
        if target is None:  # the router requires TargetModel on multi-model endpoints
            raise SageMakerValidationError("TargetModel is required for a multi-model endpoint.")
        loaded = await self._get(target)
        loaded.in_use += 1
        try:
            response = await loaded.backend.invoke(invocation)
        except BaseException:
            loaded.in_use -= 1
            self._evict_later()
            raise
        response.chunks = self._releasing(response.chunks, loaded)
        return response

    async def _releasing(
        self, chunks: AsyncGenerator[bytes, None], loaded: _Loaded
    ) -> AsyncGenerator[bytes, None]:
        try:
            async with contextlib.aclosing(chunks) as body:
                async for chunk in body:
                    yield chunk
        finally:
            loaded.in_use -= 1
            self._evict_later()

    def _evict_later(self) -> None:
        """Unload what a finished request left over the limit (eviction waits for idle)."""
        if len(self._loaded) <= self.max_loaded:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._evict(keep=None))
        except RuntimeError:  # a body dropped without a loop: the next load evicts
            return
        self._evicting.add(task)
        task.add_done_callback(self._evicting.discard)

    async def _get(self, requested: str) -> _Loaded:
        target, path = self.model_path(requested)
        found = self._loaded.get(target)
        if found is not None:
            self._loaded.move_to_end(target)
            return found
        task = self._loading.get(target)
        if task is None:
            task = asyncio.ensure_future(self._load(target, path))
            self._loading[target] = task
            task.add_done_callback(lambda _: self._loading.pop(target, None))
        return await asyncio.shield(task)

    async def _load(self, target: str, path: Path) -> _Loaded:
        settings = self.template
        if isinstance(settings, LlamaCppSettings):
            settings = settings.model_copy(update={"model": path})
        engine = self._build(f"{self.name}/{target}", settings)
        await engine.start()
        health = engine.health()
        if not health.ready:
            await engine.close()
            raise BackendBroken(f"model {target} failed to load: {health.detail}")
        loaded = _Loaded(engine, self._make_backend(engine))
        self._loaded[target] = loaded
        self.loads += 1
        await self._evict(keep=target)
        return loaded

    async def _evict(self, keep: str | None) -> None:
        while len(self._loaded) > self.max_loaded:
            idle = next((t for t, m in self._loaded.items() if m.in_use == 0 and t != keep), None)
            if idle is None:
                return  # every other model is serving a request; unload later
            await self._loaded.pop(idle).engine.close()

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        for loaded in self._loaded.values():
            await loaded.engine.close()
        self._loaded.clear()
