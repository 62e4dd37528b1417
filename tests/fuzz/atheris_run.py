"""Run one atheris target (`tests.fuzz.atheris_targets`) under libFuzzer, with Outcrop's
parsers and botocore's event-stream decoder instrumented for coverage (only those: instrumenting
every loaded module takes minutes).

    python -m tests.fuzz.atheris_run eventstream -max_total_time=60

Arguments after the target name go to libFuzzer; the target's seeds start the corpus.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports(include=["outcrop", "botocore.eventstream"]):
    from tests.fuzz import atheris_targets


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else ""
    if target not in atheris_targets.TARGETS:
        names = ",".join(atheris_targets.TARGETS)
        raise SystemExit(f"usage: python -m tests.fuzz.atheris_run {{{names}}} [libFuzzer flags]")
    corpus = Path(tempfile.mkdtemp(prefix=f"outcrop-fuzz-{target}-"))
    for index, seed in enumerate(atheris_targets.seeds(target)):
        (corpus / f"seed{index}").write_bytes(seed)
    flags = sys.argv[2:]
    if not any(flag.startswith("-max_len=") for flag in flags):
        flags.append("-max_len=65536")  # a session's request body is several kilobytes
    atheris.Setup([sys.argv[0], *flags, str(corpus)], atheris_targets.TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
