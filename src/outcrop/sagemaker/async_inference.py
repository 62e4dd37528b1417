"""InvokeEndpointAsync's storage: where inputs are read and results written, locally.

AWS reads the request from S3 (`InputLocation`) or the inline body, and writes the answer to
`<S3OutputPath>/<S3OutputPathExtension>/<Filename or InferenceId.out>`, or an error to
`<S3FailurePath>/.../<InferenceId>-error.out`, reporting both URIs in the 202 response. Here an
`s3://bucket/key` location is the file `<local root>/bucket/key`; `file://` URIs and plain
paths (only from the endpoint's configuration, never from a request) are local files, reported
as `file://` URIs.

Containment (docs/security.md, "Files"): every local path is made canonical (symlinks
resolved) and must lie under its root: `<local root>/<bucket>` for an `s3://` location, the
configured output or failure directory for the others. A key segment `.` or `..`, a NUL, a
bucket that is not an S3 bucket name, or an `InputLocation` that is not `s3://` is refused with
SageMaker's ValidationError before the 202 is sent, so a request never reads or writes outside.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from outcrop.wire.errors import SageMakerValidationError

DEFAULT_BUCKET = "outcrop-sagemaker-async"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
"""S3's bucket naming rules (3 to 63 characters; adjacent periods are refused separately)."""


@dataclass(frozen=True, slots=True)
class AsyncLocations:
    output: str
    failure: str


def _refuse(what: str, value: str) -> SageMakerValidationError:
    # Outcrop's wording: AWS stores such keys in S3 verbatim, which a file system cannot.
    return SageMakerValidationError(
        f"{what} {value!r} does not name a location under the local S3 root: path segments "
        "'.' and '..', empty segments and NUL characters are not accepted."
    )


def _segments(what: str, value: str, *, allow_empty: bool = False) -> list[str]:
    """`value` split on `/`, refusing segments that would leave or alias a directory."""
    parts = value.split("/")
    if allow_empty:
        parts = [p for p in parts if p]
    if not parts or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise _refuse(what, value)
    return parts


def _single(what: str, value: str) -> str:
    """A value that becomes one file name: no `/`, not `.` or `..`, no NUL."""
    if "/" in value:
        raise _refuse(what, value)
    return _segments(what, value)[0]


def _contained(root: Path, parts: list[str], what: str, value: str) -> Path:
    """`root/parts...` made canonical, or ValidationError when it resolves outside `root`."""
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if not path.is_relative_to(base) or path == base:
        raise _refuse(what, value)
    return path


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
        """The output and failure URIs, each checked to stay under its root (ValidationError
        otherwise)."""
        parts = _segments("S3OutputPathExtension", extension, allow_empty=True) if extension else []
        _single("InferenceId", inference_id)
        name = _single("Filename", filename) if filename else f"{inference_id}.out"
        output_root = output_path or f"s3://{DEFAULT_BUCKET}/{endpoint}/output"
        failure_root = failure_path or f"s3://{DEFAULT_BUCKET}/{endpoint}/failures"
        output = _join(output_root, [*parts, name])
        failure = _join(failure_root, [*parts, f"{inference_id}-error.out"])
        self._check_under(output, output_root)
        self._check_under(failure, failure_root)
        return AsyncLocations(output, failure)

    def _check_under(self, location: str, root: str) -> None:
        """`location`'s local file must lie under `root`'s (s3:// locations are kept inside
        their bucket by `local_path`; configured directories are checked here)."""
        path = self.local_path(location)
        if not _is_s3(root) and not path.is_relative_to(self.local_path(root)):
            raise _refuse("Output location", location)

    def local_path(self, location: str) -> Path:
        """The canonical local file standing for `location` (an s3:// or file:// URI, or a
        configured path); an `s3://` location must stay inside its bucket's directory."""
        if _is_s3(location):
            # Split by hand: `?` and `#` are ordinary characters of an S3 key.
            bucket, _, key = location[len("s3://") :].partition("/")
            if not _BUCKET.fullmatch(bucket) or ".." in bucket:
                raise _refuse("Bucket", bucket)
            key = unquote(key)
            parts = _segments("Key", key, allow_empty=True)
            return _contained(self.local_root / bucket, parts, "Key", key)
        parsed = urlparse(location)
        if parsed.scheme == "file":
            return Path(os.path.normpath(unquote(parsed.path))).resolve()
        return Path(os.path.normpath(location)).resolve()

    def input_path(self, location: str) -> Path:
        """Where an `InputLocation` (from the request) is read: only `s3://` under the root."""
        if not _is_s3(location):
            # Outcrop serves inputs from its local S3 root only (https:// URLs are not fetched).
            raise SageMakerValidationError(
                f"InputLocation {location!r} is not an s3:// URI; Outcrop reads inputs from its "
                "local S3 root only."
            )
        return self.local_path(location)

    def write(self, location: str, data: bytes) -> None:
        path = self.local_path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".partial")
        temporary.write_bytes(data)
        temporary.replace(path)

    def read(self, location: str) -> bytes:
        return self.input_path(location).read_bytes()


def _is_s3(location: str) -> bool:
    return location[:5].lower() == "s3://"


def _join(root: str, parts: list[str]) -> str:
    if _is_s3(root) or urlparse(root).scheme == "file":
        return "/".join([root.rstrip("/"), *parts])
    return Path(root, *parts).resolve().as_uri()
