"""Builds engines from their configuration (the llama.cpp engine is imported only when used)."""

from __future__ import annotations

from outcrop.config import EngineSettings, LlamaCppSettings, OpenAISettings, ScriptedSettings
from outcrop.engines.base import Engine
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine, ScriptedToolCall


def build_engine(name: str, settings: EngineSettings) -> Engine:
    if isinstance(settings, ScriptedSettings):
        return ScriptedEngine(
            ScriptedConfig(
                text=settings.text,
                token_count=settings.token_count,
                delay_ms=settings.delay_ms,
                first_token_delay_ms=settings.first_token_delay_ms,
                reasoning=settings.reasoning,
                tool_calls=None
                if settings.tool_calls is None
                else tuple(ScriptedToolCall(c.name, c.arguments) for c in settings.tool_calls),
                fail_after_tokens=settings.fail_after_tokens,
                load_ms=settings.load_ms,
                load_error=settings.load_error,
            ),
            name=name,
        )
    if isinstance(settings, OpenAISettings):
        from outcrop.engines.openai_compat import OpenAICompatEngine

        def openai(upstream: str, member: str) -> OpenAICompatEngine:
            return OpenAICompatEngine(
                upstream,
                model=settings.model,
                api_key=settings.api_key,
                timeout_s=settings.timeout_s,
                name=member,
            )

        if settings.upstreams is None:
            assert settings.upstream is not None
            return openai(settings.upstream, name)
        from outcrop.engines.pool import PoolEngine
        from outcrop.engines.pool_routing import PoolPolicy

        return PoolEngine(
            name,
            [(url, openai(url, f"{name}[{url}]")) for url in settings.upstreams],
            PoolPolicy(**settings.pool.model_dump()),
        )
    assert isinstance(settings, LlamaCppSettings)
    if settings.upstreams is not None:
        from outcrop.engines.pool import PoolEngine
        from outcrop.engines.pool_routing import PoolPolicy

        external = [
            (url, _llama_server(f"{name}[{url}]", settings, url)) for url in settings.upstreams
        ]
        return PoolEngine(
            name, external, PoolPolicy(**settings.pool.model_dump()), start_members=True
        )
    if settings.replicas > 1:
        from outcrop.engines.pool import PoolEngine
        from outcrop.engines.pool_routing import PoolPolicy

        replicas = [
            (f"replica-{i}", _llama_server(f"{name}/{i}", settings))
            for i in range(settings.replicas)
        ]
        return PoolEngine(
            name, replicas, PoolPolicy(**settings.pool.model_dump()), start_members=True
        )
    return _llama_server(name, settings)


def _llama_server(name: str, settings: LlamaCppSettings, external: str | None = None) -> Engine:
    from outcrop.engines.llama_server import LlamaServerEngine, LlamaServerOptions

    return LlamaServerEngine(
        external_url=external,
        model_path=settings.model,
        options=LlamaServerOptions(
            n_ctx=settings.n_ctx,
            parallel=settings.parallel,
            n_threads=settings.n_threads,
            n_threads_batch=settings.n_threads_batch,
            n_gpu_layers=settings.n_gpu_layers,
            batch_size=settings.batch_size,
            ubatch_size=settings.ubatch_size,
            token_timeout_s=settings.token_timeout_s,
            repeat_penalty=settings.repeat_penalty,
            repeat_last_n=settings.repeat_last_n,
            binary=settings.binary,
        ),
        name=name,
    )
