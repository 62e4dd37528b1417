"""The console's sources and its committed build: its own unit tests (Vitest) and type check
pass, the committed build under src/outcrop/console/static/ is byte for byte what the
sources build (so it is reproducible and never stale), and the bundle stays within budget.

The toolchain is the pinned one in console/package-lock.json (`make console-deps`)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSOLE = REPO / "console"
STATIC = REPO / "src" / "outcrop" / "console" / "static"
pytestmark = pytest.mark.console

JS_BUDGET_GZIP = 100 * 1024
CSS_BUDGET_GZIP = 16 * 1024


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        pytest.skip("npm is not installed (Node.js >= 20 builds and tests the console)")
    if not (CONSOLE / "node_modules" / "vite").is_dir():
        pytest.fail("console/node_modules is missing: run `make console-deps`")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=CONSOLE,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": os.environ["PATH"],
            "CI": "true",
            "NO_COLOR": "1",
            "HOME": os.environ.get("HOME", "/root"),
        },
    )


def test_the_console_unit_tests_pass() -> None:
    result = run(npm(), "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_the_console_type_checks() -> None:
    result = run(npm(), "run", "typecheck")
    assert result.returncode == 0, result.stdout + result.stderr


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_the_committed_build_is_what_the_sources_build(tmp_path: Path) -> None:
    out = tmp_path / "static"
    result = run(npm(), "exec", "--", "vite", "build", "--outDir", str(out), "--emptyOutDir")
    assert result.returncode == 0, result.stdout + result.stderr
    built, committed = _tree(out), _tree(STATIC)
    assert sorted(built) == sorted(committed), "stale build: run `make console` and commit"
    for name, content in built.items():
        assert content == committed[name], f"{name} differs: run `make console` and commit"


def test_the_bundle_stays_within_its_size_budget() -> None:
    assets = list((STATIC / "assets").iterdir())
    scripts = sum(len(gzip.compress(p.read_bytes(), 9)) for p in assets if p.suffix == ".js")
    styles = sum(len(gzip.compress(p.read_bytes(), 9)) for p in assets if p.suffix == ".css")
    assert 0 < scripts < JS_BUDGET_GZIP, f"{scripts} bytes of gzipped JavaScript"
    assert 0 < styles < CSS_BUDGET_GZIP, f"{styles} bytes of gzipped CSS"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = (STATIC / "index.html").read_text()
    for reference in ("src=", "href="):
        for part in page.split(reference)[1:]:
            assert part[1:].startswith("/_outcrop/console/assets/"), part[:80]
