"""The OpenAI-compatible engine's prefix-cache figures: `usage.prompt_tokens_details.
cached_tokens` read from the final chunk, totalled per upstream (what pool health reports)."""

from __future__ import annotations

import json

from outcrop.engines.openai_compat import ChunkMapper, PrefixCacheStats


def final_chunk(prompt: int, cached: int | None) -> str:
    usage: dict[str, object] = {"prompt_tokens": prompt, "completion_tokens": 3}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return json.dumps({"choices": [], "usage": usage})


def test_cached_tokens_are_read_and_totalled() -> None:
    stats = PrefixCacheStats()
    for prompt, cached in ((100, 0), (120, 99), (130, 64), (140, 70)):
        mapper = ChunkMapper()
        mapper.feed(final_chunk(prompt, cached))
        assert mapper.cached_tokens == cached
        stats.record(mapper)
    assert stats == PrefixCacheStats(reported=4, prompt_tokens=490, cached_tokens=233, warm=2)


def test_answers_without_the_figure_are_not_counted() -> None:
    stats = PrefixCacheStats()
    mapper = ChunkMapper()
    mapper.feed(final_chunk(50, None))
    assert mapper.cached_tokens is None
    stats.record(mapper)
    assert stats == PrefixCacheStats()
