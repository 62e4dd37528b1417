"""Guardrails and their versions, as the Bedrock control plane keeps them, in the state store.

A guardrail has an ID (12 lowercase letters and digits, like Bedrock's `5zwrmdlsra2e`), an ARN
(`arn:aws:bedrock:<region>:<account>:guardrail/<id>`, the region being the one it was created
in), a working DRAFT and numbered versions 1, 2, ... that CreateGuardrailVersion snapshots from
the DRAFT and nothing changes afterwards. Each version holds its definition in the
CreateGuardrail request shape (see `model`).

Guardrails created through the API live in the state store (`outcrop.state`, SQLite or
PostgreSQL), one `guardrail` document each, with a `guardrail-name` document per name and a
`guardrail-token` document per creation token, so that names and tokens stay unique across
replicas. Every change is a compare-and-set on the guardrail's document: read it, change a
copy, write it expecting the version read; a writer that lost the race to another (on any
replica) reads again and retries. Version numbers come from the document's `nextVersion`, so two
replicas versioning one guardrail at once get distinct, consecutive numbers. A write is either
committed (durably) and acknowledged, or refused and not applied. Text that cannot be stored (a
lone surrogate such as `"\\ud800"`, which JSON escapes allow but UTF-8 cannot encode) is refused
with a ValidationException before anything changes.

Reads are served from a snapshot in memory; `refresh` (called before every call that names a
guardrail, and by the control plane's reads) checks the store's `guardrail` generation, one
small read, and reloads the guardrails only when it moved, so a change made through any replica
applies to the next call on every replica. Parsed definitions are cached per version.

A `guardrails.json` from before the store (`LegacyFile`) is imported once and renamed
`guardrails.json.imported`.

Guardrails defined in the configuration file are loaded at every start, with a DRAFT and a
version 1 equal to their definition; they are not written to the store, and the API cannot
change or delete them (they change by editing the configuration).

Errors carry the control plane's modelled shapes; their messages are Outcrop's (AWS's wording
for these is unverified).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from outcrop.guardrails.model import Definition
from outcrop.state.store import Delete, Put, StateConflict, StateStore, Write
from outcrop.wire.errors import (
    AwsError,
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ThrottlingException,
    ValidationException,
)

log = logging.getLogger("outcrop.guardrails")

KIND = "guardrail"
NAME_KIND = "guardrail-name"
TOKEN_KIND = "guardrail-token"
MAX_ATTEMPTS = 64
"""Compare-and-set attempts of one change before it is refused as throttled."""
STATE_FILE = "guardrails.json"
"""The state file of Outcrop before the state store (imported once)."""
IMPORTED_FILE = "guardrails.json.imported"
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
    """Idempotency tokens already used, to the version they produced (CREATE: the guardrail)."""
    row_version: int = 0
    """The version of its document in the state store (0: not stored, configured)."""

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
    """All guardrails: configured ones (in memory) and those created through the API (in the
    state store, with a snapshot here that `refresh` brings up to date)."""

    def __init__(
        self,
        documents: StateStore,
        account_id: str,
        legacy: LegacyFile | None = None,
    ) -> None:
        self.documents = documents
        self.account_id = account_id
        self._configured: dict[str, GuardrailRecord] = {}
        self._records: dict[str, GuardrailRecord] = {}
        self._generation: int | None = None
        """The store's `guardrail` generation the snapshot reflects; None: reload."""
        self._definitions: dict[tuple[str, str], tuple[int, Definition]] = {}
        self._legacy = legacy
        self.loaded = False
        """Whether the snapshot was read from the store at least once."""
        self._queued: asyncio.Future[None] | None = None
        self._running: asyncio.Task[None] | None = None

    # -- the snapshot ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Bring the snapshot up to date: one small read (the generation) when nothing
        changed, the guardrails again when something did. StateUnavailable when the store
        cannot answer (the snapshot then stays as it was).

        Calls share checks: a call joins the next check to start (never one already under
        way, which may have read the generation before a change this call must see), so however
        many calls arrive at once, at most one check runs and one waits."""
        queued = self._queued
        if queued is None:
            queued = self._queued = asyncio.get_running_loop().create_future()
            if self._running is None:
                self._start_check()
        await asyncio.shield(queued)

    def _start_check(self) -> None:
        done, self._queued = self._queued, None
        assert done is not None
        self._running = asyncio.create_task(self._check(done))

    async def _check(self, done: asyncio.Future[None]) -> None:
        try:
            await self._refresh_now()
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as exc:
            done.set_exception(exc)
            done.exception()  # marked retrieved: waiters that left early must not warn
        else:
            done.set_result(None)
        finally:
            self._running = None
            if self._queued is not None:
                self._start_check()

    async def _refresh_now(self) -> None:
        if self._legacy is not None:
            await self._import(self._legacy)
            self._legacy = None
        generation = await self.documents.generation(KIND)
        if generation == self._generation:
            return
        documents = await self.documents.list(KIND)
        stored: dict[str, GuardrailRecord] = {}
        for document in documents:
            try:
                record = GuardrailRecord.from_json(document.body)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("state: guardrail %s is unreadable (%s); skipped", document.key, exc)
                continue
            record.row_version = document.version
            stored[record.guardrail_id] = record
        self._records = {**stored, **self._configured}
        self._generation = generation
        self.loaded = True
        live = {(gid, v) for gid, r in self._records.items() for v in ("DRAFT", *r.versions)}
        self._definitions = {k: v for k, v in self._definitions.items() if k in live}

    def _applied(self, record: GuardrailRecord | None, guardrail_id: str) -> None:
        """A write of ours committed: show it at once, and reload at the next refresh (other
        replicas' writes may have advanced the generation too)."""
        records = dict(self._records)
        if record is None:
            records.pop(guardrail_id, None)
        else:
            records[guardrail_id] = record
        self._records = records
        self._generation = None

    async def _import(self, legacy: LegacyFile) -> None:
        """Copy the guardrails of a pre-database state file into the store, once: each is
        written only where its ID is free (a replica that imported it first, or an import cut
        short, is no conflict), then the file is renamed so it is not read again."""
        for record in legacy.records:
            try:
                await self.documents.commit(_creation_writes(record))
            except StateConflict:
                log.info(
                    "state: guardrail %s already in the store; not imported again",
                    record.guardrail_id,
                )
        legacy.retire()

    # -- configured guardrails ---------------------------------------------------------------

    def add_configured(self, spec: Mapping[str, Any], guardrail_id: str | None, region: str) -> str:
        """Serve a guardrail from the configuration file (DRAFT and version 1)."""
        clean = _spec(spec)
        Definition.parse(clean)
        gid = guardrail_id or config_guardrail_id(str(clean["name"]))
        stamp = now_iso()
        draft = VersionRecord("DRAFT", clean, stamp, stamp)
        first = VersionRecord("1", copy.deepcopy(clean), stamp, stamp, clean.get("description"))
        record = GuardrailRecord(
            gid,
            guardrail_arn(region, self.account_id, gid),
            draft,
            {"1": first},
            next_version=2,
            configured=True,
        )
        self._configured[gid] = record
        self._records = {**self._records, gid: record}
        return gid

    # -- control-plane operations ------------------------------------------------------------

    async def create(
        self,
        spec: Mapping[str, Any],
        region: str,
        tags: list[dict[str, str]] | None = None,
        token: str | None = None,
    ) -> GuardrailRecord:
        await self.refresh()
        clean = _spec(spec)
        Definition.parse(clean)
        _check_text(tags)
        for _ in _attempts():
            if token is not None:
                for record in self._records.values():
                    if record.tokens.get(token) == "CREATE":
                        return record
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
            try:
                versions = await self.documents.commit(_creation_writes(record))
            except StateConflict:
                await self.refresh()  # another replica took the name, token or ID first
                continue
            record.row_version = versions[(KIND, gid)]
            self._applied(record, gid)
            return record
        raise _busy(str(clean["name"]))

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

    async def update(self, identifier: str, spec: Mapping[str, Any]) -> GuardrailRecord:
        clean = _spec(spec)
        Definition.parse(clean)
        gid = self._mutable_id(identifier)
        name = str(clean["name"])
        for _ in _attempts():
            current = await self._stored(identifier, gid)
            record = copy.deepcopy(current)
            record.draft = VersionRecord("DRAFT", clean, record.draft.created_at, now_iso())
            writes: list[Write] = [Put(KIND, gid, record.to_json(), current.row_version)]
            if name != current.name:
                if any(r.name == name for r in self._configured.values()):
                    raise ConflictException(f"A guardrail named {name} already exists.")
                old = await self.documents.get(NAME_KIND, current.name)
                if old is not None and old.body.get("id") == gid:
                    writes.append(Delete(NAME_KIND, current.name, old.version))
                writes.append(Put(NAME_KIND, name, {"id": gid}, 0))
            try:
                versions = await self.documents.commit(writes)
            except StateConflict as conflict:
                if conflict.kind == NAME_KIND and conflict.key == name:
                    holder = await self.documents.get(NAME_KIND, name)
                    if holder is not None and holder.body.get("id") != gid:
                        raise ConflictException(
                            f"A guardrail named {name} already exists."
                        ) from None
                continue
            record.row_version = versions[(KIND, gid)]
            self._applied(record, gid)
            return record
        raise _busy(identifier)

    async def create_version(
        self, identifier: str, description: str | None, token: str | None
    ) -> tuple[GuardrailRecord, str]:
        gid = self._mutable_id(identifier)
        _check_text(description)
        for _ in _attempts():
            current = await self._stored(identifier, gid)
            if token is not None and token in current.tokens:
                return current, current.tokens[token]
            if len(current.versions) >= MAX_VERSIONS:
                raise ServiceQuotaExceededException(
                    f"Guardrail {identifier} already has {MAX_VERSIONS} versions, the most allowed."
                )
            record = copy.deepcopy(current)
            version = str(record.next_version)
            record.next_version += 1
            stamp = now_iso()
            record.versions[version] = VersionRecord(
                version, copy.deepcopy(record.draft.spec), stamp, stamp, description
            )
            if token is not None:
                record.tokens[token] = version
            try:
                versions = await self.documents.commit(
                    [Put(KIND, gid, record.to_json(), current.row_version)]
                )
            except StateConflict:
                continue  # another writer versioned or changed it first: number again
            record.row_version = versions[(KIND, gid)]
            self._applied(record, gid)
            return record, version
        raise _busy(identifier)

    async def delete(self, identifier: str, version: str | None) -> None:
        gid = self._mutable_id(identifier)
        for _ in _attempts():
            current = await self._stored(identifier, gid)
            writes: list[Write]
            record: GuardrailRecord | None
            if version is None:
                record = None
                writes = [Delete(KIND, gid, current.row_version)]
                name = await self.documents.get(NAME_KIND, current.name)
                if name is not None and name.body.get("id") == gid:
                    writes.append(Delete(NAME_KIND, current.name, name.version))
                for token, made in current.tokens.items():
                    held = await self.documents.get(TOKEN_KIND, token) if made == "CREATE" else None
                    if held is not None and held.body.get("id") == gid:
                        writes.append(Delete(TOKEN_KIND, token, held.version))
            elif version not in current.versions:
                raise version_not_found(identifier, version)
            else:
                record = copy.deepcopy(current)
                del record.versions[version]
                writes = [Put(KIND, gid, record.to_json(), current.row_version)]
            try:
                versions = await self.documents.commit(writes)
            except StateConflict:
                continue
            if record is not None:
                record.row_version = versions[(KIND, gid)]
            self._applied(record, gid)
            return
        raise _busy(identifier)

    def is_configured(self, identifier: str) -> bool:
        """Whether the identifier names a guardrail of the configuration file."""
        return id_of(identifier) in self._configured

    def records(self) -> list[GuardrailRecord]:
        return sorted(self._records.values(), key=lambda r: r.draft.created_at)

    def _mutable_id(self, identifier: str) -> str:
        gid = id_of(identifier)
        if gid in self._configured:
            # Outcrop-specific: configured guardrails change with the configuration file.
            raise ConflictException(
                f"Guardrail {identifier} is defined in the Outcrop configuration file; "
                "change it there."
            )
        return gid

    async def _stored(self, identifier: str, gid: str) -> GuardrailRecord:
        """The guardrail as the store has it now (not the snapshot: a write must start from
        the latest version to pass its compare-and-set)."""
        document = await self.documents.get(KIND, gid)
        if document is None:
            self._applied(None, gid)
            raise not_found(identifier)
        record = GuardrailRecord.from_json(document.body)
        record.row_version = document.version
        return record

    # -- runtime -----------------------------------------------------------------------------

    def definition(self, record: GuardrailRecord, version: VersionRecord) -> Definition:
        """The parsed definition of one version, parsed once per change: numbered versions
        never change, the DRAFT is parsed again when its guardrail's row version moves (so
        repeated updates neither grow the cache nor, within one millisecond, serve a stale
        parse)."""
        key = (record.guardrail_id, version.version)
        stamp = record.row_version if version.version == "DRAFT" else 0
        cached = self._definitions.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        found = Definition.parse(version.spec)
        self._definitions[key] = (stamp, found)
        return found


def _creation_writes(record: GuardrailRecord) -> list[Write]:
    """A new guardrail: its document, and the documents that keep its name and its creation
    token unique fleet-wide (each must not exist yet)."""
    writes: list[Write] = [
        Put(KIND, record.guardrail_id, record.to_json(), 0),
        Put(NAME_KIND, record.name, {"id": record.guardrail_id}, 0),
    ]
    writes += [
        Put(TOKEN_KIND, token, {"id": record.guardrail_id}, 0)
        for token, made in record.tokens.items()
        if made == "CREATE"
    ]
    return writes


def _attempts() -> range:
    return range(MAX_ATTEMPTS)


def _busy(identifier: str) -> ThrottlingException:
    # Outcrop's wording: every attempt lost its compare-and-set to a concurrent writer.
    return ThrottlingException(
        f"Guardrail {identifier} is being changed by too many requests at once. Try again."
    )


class LegacyFile:
    """A pre-database `guardrails.json` to import once (read, and checked, when opened)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = _read_state_file(path)

    @classmethod
    def find(cls, state_dir: Path) -> LegacyFile | None:
        """The state directory's guardrails.json, if there is one (StateFileError when it
        cannot be read); temporary files a crash of an older Outcrop left are removed."""
        _remove_stale_temporaries(state_dir)
        path = state_dir / STATE_FILE
        return cls(path) if path.exists() else None

    def retire(self) -> None:
        """Imported: renamed to guardrails.json.imported, kept for the user to remove."""
        with contextlib.suppress(FileNotFoundError):
            self.path.replace(self.path.with_name(IMPORTED_FILE))


def _read_state_file(path: Path) -> list[GuardrailRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateFileError(f"{path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        records = []
        for item in data["guardrails"]:
            record = GuardrailRecord.from_json(item)
            Definition.parse(record.draft.spec)
            records.append(record)
    except (ValueError, KeyError, TypeError, AwsError) as exc:
        raise StateFileError(f"{path}: not a guardrail state file ({exc})") from None
    return records


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
