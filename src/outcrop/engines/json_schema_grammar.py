"""JSON schema -> GBNF: loads llama.cpp's converter from the pinned llama-cpp-python sdist.

This module owns one thing: handing `tool_grammar` the `SchemaConverter` class of
`llama_cpp/llama_grammar.py`, llama-cpp-python's Python port of llama.cpp's
json-schema-to-grammar (MIT, standard library only). The code is upstream's, not ours: it is
not kept in this repository and llama-cpp-python is not installed (its install compiles a
second copy of llama.cpp). `llama_build` extracts that one file, with the sdist's licence,
from the sdist it pins (`LLAMA_CPP_PYTHON_VERSION`, 0.3.36, the one llama-server is built from)
into `~/.cache/outcrop/llama.cpp/<version>-python/`, and this module imports it from there
with importlib. When the file is missing it is extracted on first use (the llama.cpp engine
does that at start-up, off the event loop); when that fails, `GrammarUnavailable` says what to
run. Only the surface `tool_grammar` uses is typed (`SchemaConverter`); `Any` stays here.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

from outcrop.engines import llama_build
from outcrop.engines.base import EngineUnavailable

logger = logging.getLogger(__name__)

_failed_fetches: set[Path] = set()
_fetch_lock = threading.Lock()


class GrammarUnavailable(EngineUnavailable):
    """The converter is not installed and could not be fetched; the message says what to run."""

    def __init__(self) -> None:
        super().__init__(
            "tool calls and structured output on the llama.cpp engine need llama.cpp's "
            "JSON-schema grammar converter (llama_cpp/llama_grammar.py of the llama-cpp-python "
            f"{llama_build.LLAMA_CPP_PYTHON_VERSION} sdist), which is not installed: run "
            f"`{llama_build.GRAMMAR_COMMAND}` (`make install` does it)"
        )


class SchemaConverter(Protocol):
    """The part of upstream's `SchemaConverter` that `tool_grammar` uses."""

    def __init__(
        self,
        *,
        prop_order: dict[str, int],
        allow_fetch: bool,
        dotall: bool,
        raw_pattern: bool,
    ) -> None: ...

    def resolve_refs(self, schema: dict[str, Any], url: str) -> Any:
        """`schema` with its `$ref`s resolved (local ones only without `allow_fetch`)."""

    def visit(self, schema: Any, name: str) -> str:
        """Add the rules for `schema` under `name`; the rule name to refer to it by."""

    def _add_rule(self, name: str, rule: str) -> str:
        """Add `name ::= rule` (renamed on a clash); the name it got."""

    def format_grammar(self) -> str:
        """Every rule added so far, one `name ::= rule` line each."""


def schema_converter_class() -> type[SchemaConverter]:
    """Upstream's `SchemaConverter`, extracted first if missing (`GrammarUnavailable` if that
    fails)."""
    return cast(type[SchemaConverter], load().SchemaConverter)


def preload() -> bool:
    """Load the converter ahead of the first request (extracting it first if missing; call it
    off the event loop). False when it is unavailable: plain answers still work, tool calls and
    structured output then fail with `GrammarUnavailable`."""
    try:
        load()
    except GrammarUnavailable as error:
        logger.warning("%s", error)
        return False
    return True


def load() -> ModuleType:
    """The upstream module, imported from the cache (extracted there first if missing; a
    failed extraction is not retried in this process, so requests do not wait on pip)."""
    path = llama_build.grammar_module_path()
    if not path.is_file():
        with _fetch_lock:
            if not path.is_file() and path not in _failed_fetches:
                try:
                    llama_build.ensure_grammar_module()
                except llama_build.LlamaBuildError as error:
                    _failed_fetches.add(path)
                    logger.error("cannot install the grammar converter at %s: %s", path, error)
    if not path.is_file():
        raise GrammarUnavailable()
    return _import(path)


@functools.cache
def _import(path: Path) -> ModuleType:
    # Not registered in sys.modules: nothing imports it by name, and a cache folder must not
    # shadow an installed llama_cpp package.
    spec = importlib.util.spec_from_file_location("outcrop_llama_grammar", path)
    if spec is None or spec.loader is None:
        raise GrammarUnavailable()
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
