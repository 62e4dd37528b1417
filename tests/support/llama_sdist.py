"""A tiny stand-in for the llama-cpp-python sdist: the member layout `llama_build` reads."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from outcrop.engines import llama_build

TOP = f"llama_cpp_python-{llama_build.LLAMA_CPP_PYTHON_VERSION}"

#: The stand-in converter: a module the loader can import, with a marker to recognise it by.
CONVERTER = 'ORIGIN = "sdist"\n\n\nclass SchemaConverter:\n    pass\n'


def make_sdist(folder: Path, converter: str = CONVERTER) -> Path:
    """Write `<folder>/llama_cpp_python-<version>.tar.gz` with the converter, the licence, a
    vendored llama.cpp file and a module the extraction must leave alone; return its path."""
    members = {
        f"{TOP}/llama_cpp/llama_grammar.py": converter,
        f"{TOP}/llama_cpp/llama.py": "raise ImportError('not extracted')\n",
        f"{TOP}/LICENSE.md": "MIT License (stand-in)\n",
        f"{TOP}/vendor/llama.cpp/CMakeLists.txt": "project(llama.cpp)\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{TOP}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive
