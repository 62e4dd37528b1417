"""Hypothesis strategies of the fuzz suite: hostile JSON values and mutated seed requests."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.corpus import Seed, seeds
from tests.fuzz.mutate import mutant

_NASTY_TEXT = st.sampled_from(["", "\ud800", "a\udfffb", "\x00", "𝔘", "x" * 3000])
_NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_LEAVES = st.one_of(st.none(), st.booleans(), _NUMBERS, st.text(max_size=20), _NASTY_TEXT)

json_values: st.SearchStrategy[Any] = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=10), _NASTY_TEXT), children, max_size=4),
    ),
    max_leaves=20,
)
"""Any JSON value Python can write, NaN, Infinity, huge numbers and lone surrogates included."""


def encoded(value: Any) -> bytes:
    """A value as a client could send it (surrogates kept as `\\ud800` escapes)."""
    return json.dumps(value, allow_nan=True).encode()


def seeds_where(predicate: Any) -> st.SearchStrategy[Seed]:
    return st.sampled_from([s for s in seeds() if predicate(s)])


def mutated(seed_strategy: st.SearchStrategy[Seed]) -> st.SearchStrategy[tuple[Seed, bytes]]:
    """A seed request and a mutant of its body (replayable: the Random is hypothesis's)."""
    return st.tuples(seed_strategy, st.randoms(use_true_random=False)).map(
        lambda pair: (pair[0], _mutant(pair[0], pair[1]))
    )


def _mutant(seed: Seed, rng: random.Random) -> bytes:
    return mutant(seed.body, rng)
