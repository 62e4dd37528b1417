"""The state store's schema, as ordered migration steps shared by SQLite and PostgreSQL.

`outcrop_schema` records each step applied (its number, when, what). Opening a store applies
the steps past the highest recorded number, in order, each in the transaction that records it,
under a lock (SQLite's write lock, a PostgreSQL advisory lock) so that replicas starting
together migrate once. A database recording a step this Outcrop does not know (a newer Outcrop
migrated it) is refused rather than used: its schema may not mean what this code expects.

Steps are only ever appended; a released step never changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    description: str
    statements: tuple[str, ...]
    """SQL run in order; written in the subset SQLite and PostgreSQL share."""


SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS outcrop_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "versioned documents and per-kind generations",
        (
            """
            CREATE TABLE outcrop_documents (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                body TEXT NOT NULL,
                version BIGINT NOT NULL CHECK (version > 0),
                updated_at TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            )
            """,
            """
            CREATE TABLE outcrop_generations (
                kind TEXT PRIMARY KEY,
                value BIGINT NOT NULL
            )
            """,
        ),
    ),
)

LATEST = MIGRATIONS[-1].number


class SchemaTooNew(Exception):
    """The database was migrated by a newer Outcrop."""


def pending(applied: int) -> list[Migration]:
    """The steps to run on a database whose highest applied step is `applied`."""
    if applied > LATEST:
        raise SchemaTooNew(
            f"the state database is at schema version {applied}, newer than this Outcrop "
            f"knows ({LATEST}); upgrade Outcrop or use another database"
        )
    return [m for m in MIGRATIONS if m.number > applied]
