"""InvokeEndpointAsync's storage: where inputs are read and results written, locally.

AWS reads the request from S3 (`InputLocation`) or the inline body, and writes the answer to
`<S3OutputPath>/<S3OutputPathExtension>/<Filename or InferenceId.out>`, or an error to
`<S3FailurePath>/.../<InferenceId>-error.out`, reporting both URIs in the 202 response. Here an
`s3://bucket/key` location is the file `<local root>/bucket/key`; `file://` URIs and plain
paths are local files, reported as `file://` URIs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT_BUCKET = "outcrop-sagemaker-async"


@dataclass(frozen=True, slots=True)
class AsyncLocations:
    output: str
    failure: str


class AsyncStorage:
    def __init__(self, local_root: Path | None) -> None:
        self.local_root = local_root or Path(tempfile.gettempdir()) / "outcrop-s3"

    def locations(
        self,
        endpoint: str,
        inference_id: str,
        *,
        output_path: str | None,
        failure_path: str | None,
        extension: str | None,
        filename: str | None,
    ) -> AsyncLocations:
        output_root = output_path or f"s3://{DEFAULT_BUCKET}/{endpoint}/output"
        failure_root = failure_path or f"s3://{DEFAULT_BUCKET}/{endpoint}/failures"
        parts = [p for p in (extension or "").split("/") if p]
        name = filename or f"{inference_id}.out"
        return AsyncLocations(
            _join(output_root, [*parts, name]),
            _join(failure_root, [*parts, f"{inference_id}-error.out"]),
        )

    def local_path(self, location: str) -> Path:
        """The local file standing for `location` (an s3:// or file:// URI, or a path)."""
        parsed = urlparse(location)
        if parsed.scheme == "s3":
            key = unquote(parsed.path.lstrip("/"))
            return self.local_root / parsed.netloc / key
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        return Path(location)

    def write(self, location: str, data: bytes) -> None:
        path = self.local_path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".partial")
        temporary.write_bytes(data)
        temporary.replace(path)

    def read(self, location: str) -> bytes:
        return self.local_path(location).read_bytes()


def _join(root: str, parts: list[str]) -> str:
    parsed = urlparse(root)
    if parsed.scheme in ("s3", "file"):
        return "/".join([root.rstrip("/"), *parts])
    return Path(root, *parts).resolve().as_uri()
