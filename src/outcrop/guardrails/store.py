"""Guardrails and their versions, as the Bedrock control plane keeps them, persisted to a file.

A guardrail has an ID (12 lowercase letters and digits, like Bedrock's `5zwrmdlsra2e`), an ARN
(`arn:aws:bedrock:<region>:<account>:guardrail/<id>`, the region being the one it was created
in), a working DRAFT and numbered versions 1, 2, ... that CreateGuardrailVersion snapshots from
the DRAFT and nothing changes afterwards. Each version holds its definition in the
CreateGuardrail request shape (see `model`).

Guardrails created through the API are written to `<state_dir>/guardrails.json` at every
change and read back at start-up. A change is made on a copy, written (to a temporary file,
fsynced, then renamed over the old one, so a crash never leaves a half-written file) and only
then put in place in memory: a write is either durable and acknowledged, or refused and not
applied. Text that cannot be stored (a lone surrogate such as `"\\ud800"`, which JSON escapes
allow but UTF-8 cannot encode) is refused with a ValidationException before anything changes.
Temporary files a crash left behind (`.guardrails-*.json`) are removed at start-up.

Guardrails defined in the configuration file are loaded at every start, with a DRAFT and a
version 1 equal to their definition; they are not written to the state file, and the API cannot
change or delete them (they change by editing the configuration).

Errors carry the control plane's modelled shapes; their messages are Outcrop's (AWS's wording
for these is unverified).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import string
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from outcrop.guardrails.model import Definition
from outcrop.wire.errors import (
    AwsError,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)

STATE_FILE = "guardrails.json"
_TEMP_PREFIX = ".guardrails-"
# Outcrop's wording: AWS refuses JSON text with unpaired surrogates, its exact message is
# unverified.
NOT_UNICODE = (
    "The request contains text that is not valid Unicode (an unpaired UTF-16 surrogate). "
    "Correct the text and try again."
)
_FORMAT = 1
_ID_ALPHABET = string.ascii_lowercase + string.digits
MAX_VERSIONS = 20
"""Numbered versions per guardrail (Bedrock's default quota)."""

_ARN = re.compile(r"^arn:aws(?:-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/([a-z0-9]+)$")


class StateFileError(Exception):
    """The state file exists but cannot be read; the message says why."""


class ServiceQuotaExceededException(AwsError):
    code = "ServiceQuotaExceededException"
    status = 400
    fault = "client"


def now_iso() -> str:
    """The current time as the control plane writes timestamps (ISO 8601, ms, UTC)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_guardrail_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def config_guardrail_id(name: str) -> str:
    """A stable ID for a configured guardrail without one: derived from its name."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:10], "big")
    chars = []
    for _ in range(12):
        digest, rest = divmod(digest, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[rest])
    return "".join(chars)


def guardrail_arn(region: str, account: str, guardrail_id: str) -> str:
    return f"arn:aws:bedrock:{region}:{account}:guardrail/{guardrail_id}"


def id_of(identifier: str) -> str:
    """The guardrail ID in an identifier (an ID or a guardrail ARN)."""
    m = _ARN.match(identifier)
    return m.group(1) if m else identifier


@dataclass(slots=True)
class VersionRecord:
    version: str
    """`DRAFT` or a number."""
    spec: dict[str, Any]
    created_at: str
    updated_at: str
    description: str | None = None
    """The version's description (CreateGuardrailVersion); the DRAFT uses the spec's."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "spec": self.spec,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionRecord:
        return cls(
            str(data["version"]),
            dict(data["spec"]),
            str(data["createdAt"]),
            str(data["updatedAt"]),
            data.get("description"),
        )


@dataclass(slots=True)
class GuardrailRecord:
    guardrail_id: str
    arn: str
    draft: VersionRecord
    versions: dict[str, VersionRecord] = field(default_factory=dict)
    next_version: int = 1
    configured: bool = False
    tags: list[dict[str, str]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """Idempotency tokens already used, to the version (or DRAFT) they produced."""

    @property
    def name(self) -> str:
        return str(self.draft.spec["name"])

    def version(self, version: str) -> VersionRecord | None:
        return self.draft if version == "DRAFT" else self.versions.get(version)

    def to_json(self) -> dict[str, Any]:
        return {
            "guardrailId": self.guardrail_id,
            "arn": self.arn,
            "draft": self.draft.to_json(),
            "versions": [v.to_json() for v in self.versions.values()],
            "nextVersion": self.next_version,
            "tags": self.tags,
            "tokens": self.tokens,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GuardrailRecord:
        versions = [VersionRecord.from_json(v) for v in data.get("versions") or ()]
        return cls(
            guardrail_id=str(data["guardrailId"]),
            arn=str(data["arn"]),
            draft=VersionRecord.from_json(data["draft"]),
            versions={v.version: v for v in versions},
            next_version=int(data.get("nextVersion", 1)),
            tags=list(data.get("tags") or ()),
            tokens=dict(data.get("tokens") or {}),
        )


def not_found(identifier: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Guardrail {identifier} was not found.")


def version_not_found(identifier: str, version: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Version {version} of guardrail {identifier} was not found.")


class GuardrailStore:
    """All guardrails: configured ones and those created through the API."""

    def __init__(self, state_dir: Path | None, account_id: str) -> None:
        self.state_dir = state_dir
        self.account_id = account_id
        self._records: dict[str, GuardrailRecord] = {}
        self._definitions: dict[tuple[str, str], tuple[VersionRecord, Definition]] = {}
        if state_dir is not None:
            _remove_stale_temporaries(state_dir)
            self._load(state_dir / STATE_FILE)

    # -- persistence -------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateFileError(f"{path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if data.get("format") != _FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            for item in data["guardrails"]:
                record = GuardrailRecord.from_json(item)
                Definition.parse(record.draft.spec)
                self._records[record.guardrail_id] = record
        except (ValueError, KeyError, TypeError, AwsError) as exc:
            raise StateFileError(f"{path}: not a guardrail state file ({exc})") from None

    def _commit(self, records: dict[str, GuardrailRecord]) -> None:
        """Make `records` the guardrails: durable first (when there is a state file), then in
        memory. Raises, changing nothing, when they cannot be encoded or written."""
        data = {
            "format": _FORMAT,
            "guardrails": [r.to_json() for r in records.values() if not r.configured],
        }
        try:
            encoded = json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationException(NOT_UNICODE) from None
        if self.state_dir is not None:
            self._write(encoded)
        self._records = records

    def _write(self, encoded: bytes) -> None:
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".json", dir=self.state_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encoded)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_dir / STATE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # the rename itself durable, where supported
            directory = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _changed(self, record: GuardrailRecord) -> dict[str, GuardrailRecord]:
        """The guardrails with `record` (a changed copy) in place of its current version."""
        return {**self._records, record.guardrail_id: record}

    # -- configured guardrails ---------------------------------------------------------------

    def add_configured(self, spec: Mapping[str, Any], guardrail_id: str | None, region: str) -> str:
        """Serve a guardrail from the configuration file (DRAFT and version 1)."""
        clean = _spec(spec)
        Definition.parse(clean)
        gid = guardrail_id or config_guardrail_id(str(clean["name"]))
        stamp = now_iso()
        draft = VersionRecord("DRAFT", clean, stamp, stamp)
        first = VersionRecord("1", copy.deepcopy(clean), stamp, stamp, clean.get("description"))
        self._records[gid] = GuardrailRecord(
            gid,
            guardrail_arn(region, self.account_id, gid),
            draft,
            {"1": first},
            next_version=2,
            configured=True,
        )
        return gid

    # -- control-plane operations ------------------------------------------------------------

    def create(
        self,
        spec: Mapping[str, Any],
        region: str,
        tags: list[dict[str, str]] | None = None,
        token: str | None = None,
    ) -> GuardrailRecord:
        if token is not None:
            for record in self._records.values():
                if record.tokens.get(token) == "CREATE":
                    return record
        clean = _spec(spec)
        Definition.parse(clean)
        if any(r.name == clean["name"] for r in self._records.values()):
            raise ConflictException(f"A guardrail named {clean['name']} already exists.")
        gid = new_guardrail_id()
        while gid in self._records:
            gid = new_guardrail_id()
        stamp = now_iso()
        record = GuardrailRecord(
            gid,
            guardrail_arn(region, self.account_id, gid),
            VersionRecord("DRAFT", clean, stamp, stamp),
            tags=list(tags or ()),
        )
        if token is not None:
            record.tokens[token] = "CREATE"
        _check_text(record.tags)
        self._commit(self._changed(record))
        return record

    def get(self, identifier: str) -> GuardrailRecord:
        record = self._records.get(id_of(identifier))
        if record is None:
            raise not_found(identifier)
        return record

    def arn_of(self, identifier: str) -> str | None:
        """The ARN of the guardrail an identifier (its ID, or an ARN in any partition, region
        or account) resolves to; None when there is none. What policies are evaluated on."""
        record = self._records.get(id_of(identifier))
        return record.arn if record is not None else None

    def get_version(self, identifier: str, version: str) -> tuple[GuardrailRecord, VersionRecord]:
        record = self.get(identifier)
        found = record.version(version)
        if found is None:
            raise version_not_found(identifier, version)
        return record, found

    def update(self, identifier: str, spec: Mapping[str, Any]) -> GuardrailRecord:
        record = self._mutable(identifier)
        clean = _spec(spec)
        Definition.parse(clean)
        if any(
            r.name == clean["name"] and r.guardrail_id != record.guardrail_id
            for r in self._records.values()
        ):
            raise ConflictException(f"A guardrail named {clean['name']} already exists.")
        record = copy.deepcopy(record)
        record.draft = VersionRecord("DRAFT", clean, record.draft.created_at, now_iso())
        self._commit(self._changed(record))
        return record

    def create_version(
        self, identifier: str, description: str | None, token: str | None
    ) -> tuple[GuardrailRecord, str]:
        record = self._mutable(identifier)
        if token is not None and token in record.tokens:
            return record, record.tokens[token]
        if len(record.versions) >= MAX_VERSIONS:
            raise ServiceQuotaExceededException(
                f"Guardrail {identifier} already has {MAX_VERSIONS} versions, the most allowed."
            )
        _check_text(description)
        record = copy.deepcopy(record)
        version = str(record.next_version)
        record.next_version += 1
        stamp = now_iso()
        record.versions[version] = VersionRecord(
            version, copy.deepcopy(record.draft.spec), stamp, stamp, description
        )
        if token is not None:
            record.tokens[token] = version
        self._commit(self._changed(record))
        return record, version

    def delete(self, identifier: str, version: str | None) -> None:
        record = self._mutable(identifier)
        records = dict(self._records)
        if version is None:
            del records[record.guardrail_id]
        elif version not in record.versions:
            raise version_not_found(identifier, version)
        else:
            record = copy.deepcopy(record)
            del record.versions[version]
            records[record.guardrail_id] = record
        self._commit(records)

    def records(self) -> list[GuardrailRecord]:
        return sorted(self._records.values(), key=lambda r: r.draft.created_at)

    def _mutable(self, identifier: str) -> GuardrailRecord:
        record = self.get(identifier)
        if record.configured:
            # Outcrop-specific: configured guardrails change with the configuration file.
            raise ConflictException(
                f"Guardrail {identifier} is defined in the Outcrop configuration file; "
                "change it there."
            )
        return record

    # -- runtime -----------------------------------------------------------------------------

    def definition(self, record: GuardrailRecord, version: VersionRecord) -> Definition:
        """The parsed definition of one version (parsed once per change: one entry per
        guardrail version, replaced when the version record is, so repeated updates neither
        grow the cache nor, within one millisecond, serve a stale parse)."""
        key = (record.guardrail_id, version.version)
        cached = self._definitions.get(key)
        if cached is not None and cached[0] is version:
            return cached[1]
        found = Definition.parse(version.spec)
        self._definitions[key] = (version, found)
        return found


def _spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The definition members of a Create/UpdateGuardrail body (not its identifiers, tags or
    idempotency token); ValidationException for text that cannot be stored."""
    skip = {"guardrailIdentifier", "tags", "clientRequestToken"}
    clean = {k: copy.deepcopy(v) for k, v in spec.items() if k not in skip and v is not None}
    _check_text(clean)
    return clean


def _check_text(value: object) -> None:
    """ValidationException when `value` holds a string UTF-8 cannot encode (lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationException(NOT_UNICODE) from None


def _remove_stale_temporaries(state_dir: Path) -> None:
    """Temporary state files a crash left (never renamed into place) are garbage."""
    with contextlib.suppress(OSError):
        for stale in state_dir.glob(f"{_TEMP_PREFIX}*.json"):
            stale.unlink(missing_ok=True)
