"""Build llama.cpp's ``llama-server`` once, into a cache shared by every venv and clone.

The default engine runs llama.cpp's own HTTP server as a child process (see
``engines/llama_server.py``). Its binary is compiled from a pinned llama.cpp source tree that
PyPI serves: the ``llama-cpp-python`` sdist vendors the whole of llama.cpp under
``vendor/llama.cpp`` (MIT licence, like llama.cpp itself). Only the ``llama-server`` target is
built, statically linked, with the portable CPU flags the Makefile has always used (llama.cpp's
native build crashes on some CPUs at the first decode), into

    ~/.cache/outcrop/llama.cpp/<key>/bin/llama-server   ($OUTCROP_LLAMA_CACHE_DIR/<key>/...)

where ``<key>`` names the source version and a digest of the CMake flags, so a second venv, a
second clone or a second ``make`` reuses the binary; a different version or flag set builds
beside it. Concurrent builds of one key wait on a file lock instead of racing.

This module uses the standard library only, so the Makefile can run it right after the
package's own install: ``python -m outcrop.engines.llama_build``. It prints one line that says
what is happening and roughly how long it takes, then lets CMake's own ``[ NN%]`` progress
through. ``OUTCROP_LLAMA_CMAKE_ARGS`` adds flags (e.g. ``-DGGML_CUDA=ON`` on a GPU machine);
``OUTCROP_LLAMA_SOURCE`` points at an already downloaded sdist (``.tar.gz``) or an unpacked
llama.cpp tree instead of fetching the pinned sdist with pip.

The same sdist also supplies the one piece of upstream Python the engine uses: llama.cpp's
JSON-schema -> GBNF converter as ported by llama-cpp-python, ``llama_cpp/llama_grammar.py``
(standard library only; tool-call and structured-output grammars, ``engines/tool_grammar.py``,
load it through ``engines/json_schema_grammar.py``). ``build`` extracts it, with the sdist's
licence, into a folder keyed by the version alone (the CMake flags do not matter to it),

    ~/.cache/outcrop/llama.cpp/<version>-python/llama_grammar.py

even when the binary is already cached; ``--grammar`` extracts only that file (the command to
run where llama-server comes from elsewhere, ``OUTCROP_LLAMA_SERVER``). From an unpacked bare
llama.cpp tree, which lacks the file, the pinned sdist is fetched for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: The llama-cpp-python release whose sdist supplies the llama.cpp source tree.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

#: Portable CPU flags (the Makefile's historical LLAMA_CMAKE_ARGS) plus what a lean, offline,
#: self-contained server build needs: no curl/OpenSSL, no web-UI download, static libraries.
BASE_CMAKE_ARGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)

#: Parallel compile jobs; two keeps a shared two-core machine usable while it builds.
DEFAULT_JOBS = 2

#: Measured on a shared 2-core machine (see README "Set-up"); printed as the expectation.
EXPECTED_MINUTES = "10-15"

BINARY_NAME = "llama-server"

#: Where the sdist holds the converter and its licence (below its top folder).
GRAMMAR_MEMBER = ("llama_cpp", "llama_grammar.py")
LICENSE_MEMBER = "LICENSE.md"

#: The command that installs the converter alone (named by errors about it).
GRAMMAR_COMMAND = "python -m outcrop.engines.llama_build --grammar"


class LlamaBuildError(RuntimeError):
    """The llama-server binary could not be fetched or built; the message says what to do."""


def cache_root() -> Path:
    """Where built llama.cpp binaries live: ``$OUTCROP_LLAMA_CACHE_DIR``, else the XDG cache
    (not ``$OUTCROP_CACHE_DIR``, the model cache, which tests point at empty folders)."""
    explicit = os.environ.get("OUTCROP_LLAMA_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "outcrop" / "llama.cpp"


def cmake_args() -> tuple[str, ...]:
    """The full CMake flag set: the portable base plus ``OUTCROP_LLAMA_CMAKE_ARGS``."""
    extra = tuple(shlex.split(os.environ.get("OUTCROP_LLAMA_CMAKE_ARGS", "")))
    return BASE_CMAKE_ARGS + extra


def build_key(args: tuple[str, ...] | None = None) -> str:
    """Cache key: the source version plus a digest of the flags (different flags, new key)."""
    flags = cmake_args() if args is None else args
    digest = hashlib.sha256("\n".join(flags).encode()).hexdigest()[:12]
    return f"{LLAMA_CPP_PYTHON_VERSION}-{digest}"


def cached_binary(args: tuple[str, ...] | None = None) -> Path:
    """The path the binary for this version and flag set has (whether or not built yet)."""
    return cache_root() / build_key(args) / "bin" / BINARY_NAME


def find_binary() -> Path | None:
    """The binary to run: ``$OUTCROP_LLAMA_SERVER`` if set, else the cached build, else none."""
    explicit = os.environ.get("OUTCROP_LLAMA_SERVER")
    if explicit:
        return Path(explicit).expanduser()
    path = cached_binary()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def grammar_module_path() -> Path:
    """Where the extracted ``llama_grammar.py`` lives (whether or not extracted yet)."""
    return cache_root() / f"{LLAMA_CPP_PYTHON_VERSION}-python" / GRAMMAR_MEMBER[-1]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"another build of {path.parent.name} is running; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(f"outcrop: {message}", file=sys.stderr, flush=True)


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, check=False)
    if result.returncode != 0:
        raise LlamaBuildError(
            f"`{shlex.join(command)}` failed (exit {result.returncode}); see its output above"
        )


def _fetch_sdist(work: Path) -> Path:
    """Download the pinned llama-cpp-python sdist (source only, no dependencies) with pip."""
    _say(f"fetching the llama.cpp source (llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} sdist)")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}",
            "-d",
            str(work),
        ]
    )
    found = sorted(work.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise LlamaBuildError("pip download produced no llama_cpp_python sdist")
    return found[0]


def _source_tree(work: Path) -> Path:
    """An unpacked llama.cpp tree: from OUTCROP_LLAMA_SOURCE, or the pinned sdist (whose
    grammar converter is installed on the way, when missing, to spare a second download)."""
    given = os.environ.get("OUTCROP_LLAMA_SOURCE")
    archive = Path(given).expanduser() if given else _fetch_sdist(work)
    if archive.is_dir():
        vendored = archive / "vendor" / "llama.cpp"
        return vendored if vendored.is_dir() else archive
    with tarfile.open(archive) as tar:
        members = [
            m
            for m in tar.getmembers()
            if "/vendor/llama.cpp/" in f"{m.name}/" or _is_grammar_member(m.name)
        ]
        tar.extractall(work, members=members, filter="data")
    trees = sorted(work.glob("*/vendor/llama.cpp"))
    if not trees:
        raise LlamaBuildError(f"{archive} holds no vendor/llama.cpp tree")
    sdist = _sdist_root(trees[0])
    if sdist is not None and not grammar_module_path().is_file():
        with _locked(grammar_module_path().parent / ".lock"):
            if not grammar_module_path().is_file():
                _install_grammar(sdist)
    return trees[0]


def _is_grammar_member(name: str) -> bool:
    """Whether a tar member is the converter or the licence, below the sdist's top folder."""
    below = tuple(name.split("/")[1:])
    return below in (GRAMMAR_MEMBER, (LICENSE_MEMBER,))


def _sdist_root(tree: Path) -> Path | None:
    """The unpacked sdist that holds the converter: `tree` itself, or the sdist around a
    ``vendor/llama.cpp`` tree; None for a bare llama.cpp tree."""
    candidates = [tree]
    if tree.name == "llama.cpp" and tree.parent.name == "vendor":
        candidates.append(tree.parent.parent)
    return next((c for c in candidates if c.joinpath(*GRAMMAR_MEMBER).is_file()), None)


def _unpack_grammar(archive: Path, work: Path) -> Path | None:
    """Extract the converter and licence from an sdist archive; its unpacked top folder, or
    None when the archive holds no converter."""
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if _is_grammar_member(m.name)]
            tar.extractall(work, members=members, filter="data")
    except tarfile.TarError as error:
        raise LlamaBuildError(f"{archive} is not a readable sdist archive: {error}") from error
    roots = sorted(p.parents[1] for p in work.glob(f"*/{'/'.join(GRAMMAR_MEMBER)}"))
    return roots[0] if roots else None


def _install_grammar(root: Path) -> Path:
    """Copy the converter (and the sdist's licence) from the unpacked sdist `root` into the
    cache, atomically; the caller holds the grammar folder's lock."""
    target = grammar_module_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    license_file = root / LICENSE_MEMBER
    if license_file.is_file():
        shutil.copy2(license_file, target.parent / LICENSE_MEMBER)
    staged = target.with_suffix(".partial")
    shutil.copy2(root.joinpath(*GRAMMAR_MEMBER), staged)
    staged.replace(target)
    return target


def ensure_grammar_module(force: bool = False) -> Path:
    """Extract ``llama_cpp/llama_grammar.py`` into the cache unless it is there; its path.

    From ``OUTCROP_LLAMA_SOURCE`` when that holds it (an sdist archive or unpacked sdist),
    else from the pinned sdist, fetched with pip.
    """
    target = grammar_module_path()
    if target.is_file() and not force:
        return target
    with _locked(target.parent / ".lock"):
        if target.is_file() and not force:
            return target
        _say(
            "extracting llama.cpp's JSON-schema grammar converter (llama_cpp/llama_grammar.py "
            f"of llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}) into {target.parent}"
        )
        with tempfile.TemporaryDirectory(prefix="extract-", dir=target.parent) as tmp:
            work = Path(tmp)
            given = os.environ.get("OUTCROP_LLAMA_SOURCE")
            root: Path | None = None
            if given:
                source = Path(given).expanduser()
                if not source.exists():
                    raise LlamaBuildError(f"OUTCROP_LLAMA_SOURCE={source} does not exist")
                root = _sdist_root(source) if source.is_dir() else _unpack_grammar(source, work)
                if root is None:
                    _say(f"{source} holds no {'/'.join(GRAMMAR_MEMBER)}; fetching the sdist")
            if root is None:
                try:
                    archive = _fetch_sdist(work)
                except LlamaBuildError as error:
                    raise LlamaBuildError(
                        f"{error}; to install the grammar converter without network access, "
                        f"point OUTCROP_LLAMA_SOURCE at the llama-cpp-python=="
                        f"{LLAMA_CPP_PYTHON_VERSION} sdist (`pip download --no-deps --no-binary "
                        f":all: llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}`) and run "
                        f"`{GRAMMAR_COMMAND}`"
                    ) from error
                root = _unpack_grammar(archive, work)
            if root is None:
                raise LlamaBuildError(f"the sdist holds no {'/'.join(GRAMMAR_MEMBER)}")
            _install_grammar(root)
    return target


def build(jobs: int = DEFAULT_JOBS, force: bool = False) -> Path:
    """Build ``llama-server`` into the cache unless it is already there, and extract the
    grammar converter unless that is there; return the binary's path."""
    binary = _build_binary(jobs, force)
    ensure_grammar_module()
    return binary


def _build_binary(jobs: int, force: bool) -> Path:
    args = cmake_args()
    target = cached_binary(args)
    if target.is_file() and not force:
        return target
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        raise LlamaBuildError(
            f"building llama-server needs {' and '.join(missing)}: install them "
            "(Debian: apt-get install cmake g++) or set OUTCROP_LLAMA_SERVER to a built binary"
        )
    with _locked(target.parent.parent / ".lock"):
        if target.is_file() and not force:
            return target
        started = time.monotonic()
        _say(
            f"building llama-server (llama.cpp from llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}) "
            f"into {target.parent.parent}; about {EXPECTED_MINUTES} minutes on 2 cores, "
            "once: later installs reuse it"
        )
        target.parent.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="build-", dir=target.parent.parent) as tmp:
            work = Path(tmp)
            source = _source_tree(work)
            build_dir = work / "build"
            _say("configuring (cmake)")
            _run(["cmake", "-S", str(source), "-B", str(build_dir), *args, "-Wno-dev"])
            _say(f"compiling the llama-server target with {jobs} jobs (cmake progress follows)")
            _run(
                [
                    "cmake",
                    "--build",
                    str(build_dir),
                    "--config",
                    "Release",
                    "--target",
                    BINARY_NAME,
                    f"-j{jobs}",
                ]
            )
            built = build_dir / "bin" / BINARY_NAME
            if not built.is_file():
                raise LlamaBuildError(f"the build finished but {built} is missing")
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_suffix(".partial")
            shutil.copy2(built, staged)
            staged.replace(target)
            license_file = source / "LICENSE"
            if license_file.is_file():
                shutil.copy2(license_file, target.parent.parent / "LICENSE")
        minutes = (time.monotonic() - started) / 60
        _say(f"llama-server built in {minutes:.1f} min: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m outcrop.engines.llama_build [--print-path] [--grammar] [--force] [-jN]``."""
    args = sys.argv[1:] if argv is None else argv
    if "--print-path" in args:
        print(cached_binary())
        return 0
    if "--grammar" in args:
        try:
            path = ensure_grammar_module(force="--force" in args)
        except LlamaBuildError as error:
            _say(f"error: {error}")
            return 1
        _say(f"grammar converter ready: {path}")
        return 0
    jobs = DEFAULT_JOBS
    for arg in args:
        if arg.startswith("-j") and arg[2:].isdigit():
            jobs = int(arg[2:])
    try:
        path = build(jobs=jobs, force="--force" in args)
    except LlamaBuildError as error:
        _say(f"error: {error}")
        return 1
    _say(f"llama-server ready: {path}; grammar converter: {grammar_module_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
