"""Count how N mutated request bodies fare against the whole app (the figures of issue 13).

    python -m tests.fuzz.census --examples 2000 --seed 1

Each example is a random seed request (`tests.fuzz.corpus`) with its body mutated
(`tests.fuzz.mutate`), sent in process through the app (`tests.fuzz.harness`). Prints how many
broke the invariant, by verdict and by seed, and one example of each distinct failure.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import random
import tempfile
from pathlib import Path

from tests.fuzz.corpus import seeds
from tests.fuzz.harness import exchange, fuzz_app, where
from tests.fuzz.mutate import mutant


class _LastError(logging.Handler):
    """Remembers the last exception logged (what a 500 hides behind its generic message)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            self.last = f"{type(exc).__name__}: {str(exc)[:100]} at {where(exc)}"


async def census(examples: int, seed: int) -> int:
    logged = _LastError()
    logging.getLogger().addHandler(logged)
    logging.getLogger().setLevel(logging.ERROR)
    rng = random.Random(seed)
    corpus = seeds()
    verdicts: collections.Counter[str] = collections.Counter()
    by_seed: collections.Counter[str] = collections.Counter()
    samples: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as state:
        app = fuzz_app(Path(state))
        for _ in range(examples):
            chosen = rng.choice(corpus)
            body = mutant(chosen.body, rng)
            logged.last = ""
            outcome = await exchange(app, chosen.method, chosen.path, body, list(chosen.headers))
            verdicts[outcome.verdict] += 1
            if not outcome.ok:
                by_seed[chosen.name] += 1
                detail = f"{outcome.detail} [{logged.last}]" if logged.last else outcome.detail
                key = (outcome.verdict, detail[:100])
                samples.setdefault(key, f"{chosen.name}: {body[:160]!r} -> {detail}")
        await app.close()
    failures = examples - verdicts["ok"]
    print(f"{examples} mutated bodies (seed {seed}): {failures} broke the invariant")
    for verdict, count in verdicts.most_common():
        print(f"  {verdict}: {count}")
    print("by seed:")
    for name, count in by_seed.most_common(30):
        print(f"  {name}: {count}")
    print("distinct failures:")
    for text in samples.values():
        print(f"  {text[:500]}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(handlers=[logging.NullHandler()])
    failures = asyncio.run(census(args.examples, args.seed))
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
