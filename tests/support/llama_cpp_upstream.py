"""llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server ARGS`), with each
request evaluated on an empty KV cache: `python tests/support/llama_cpp_upstream.py ARGS`.

The stock server keeps one `Llama` and reuses the longest prompt prefix it still holds from the
previous request, decoding only the rest (and at least the prompt's last token again). Logits
computed in those smaller batches differ in the last bits from a whole-prompt decode, and at
temperature 0 a tiny model's near-ties then tip: the same request answered differently after
another one (in the openai engine tests: a Converse answer of blank tokens, an InvokeModel
stream that no longer matched its non-streamed twin). Resetting the model's state before each
generation makes every answer depend on its request alone, whatever ran before it.
"""

from __future__ import annotations

import runpy
from collections.abc import Generator, Sequence
from typing import Any

from llama_cpp import Llama

_generate = Llama.generate


def _generate_from_empty_cache(
    self: Llama, tokens: Sequence[int], *args: Any, **kwargs: Any
) -> Generator[int, Sequence[int] | None, None]:
    # No tokens held, so no prefix to reuse; eval() then drops every KV cell from position 0.
    self.reset()  # type: ignore[no-untyped-call]
    return _generate(self, tokens, *args, **kwargs)


if __name__ == "__main__":
    Llama.generate = _generate_from_empty_cache  # type: ignore[method-assign]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
