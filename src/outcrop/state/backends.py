"""`open_state`: the state store `[state]` asks for (not yet connected: stores connect on
first use, so building a server never waits on a database)."""

from __future__ import annotations

from pathlib import Path

from outcrop.config.state import StateSettings
from outcrop.state.postgres import PostgresStore
from outcrop.state.sqlite import DATABASE_FILE, SQLiteStore
from outcrop.state.store import StateStore


def open_state(settings: StateSettings, state_dir: Path | None) -> StateStore:
    """PostgreSQL for a `postgresql://` URL; else SQLite: the URL's file (`sqlite:///PATH`),
    memory for `sqlite://`, or `<state_dir>/outcrop-state.sqlite3` (memory when `state_dir` is
    None)."""
    url = settings.url
    if url is not None and settings.is_postgresql:
        return PostgresStore(
            url,
            pool_min_size=settings.pool_min_size,
            pool_max_size=settings.pool_max_size,
            pool_timeout_s=settings.pool_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            operation_timeout_s=settings.operation_timeout_s,
        )
    if url is not None:
        # SQLAlchemy's spelling: sqlite:///relative/path, sqlite:////absolute/path.
        rest = url[len("sqlite://") :]
        path = Path(rest[1:]).expanduser() if rest else None
        return SQLiteStore(path, busy_timeout_s=settings.operation_timeout_s)
    path = state_dir / DATABASE_FILE if state_dir is not None else None
    return SQLiteStore(path, busy_timeout_s=settings.operation_timeout_s)
