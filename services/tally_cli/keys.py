"""`tally keys`: create, list, roll and delete secret keys (on TALLY_DATABASE_URL or the embedded PostgreSQL).

A full key is printed only by `create` and `roll`; everywhere else a key is shown, and may be named, by its
handle (`sk_test_AbCd...wxyz`). Deleting or rolling a key takes effect on every running process at once
(tally_edge.accounts).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import typer

from tally_edge.accounts import MAX_ROLL_EXPIRY, create_key, delete_key, find_key, handle, list_keys, roll_key
from tally_infra.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _run(job) -> None:
    async def main():
        from tally_infra.embedded import resolve_database_url

        from .database import open_pool as create_pool

        settings = Settings()
        pool = await create_pool(resolve_database_url(settings.database_url, settings.data_dir), min_size=1,
                                 max_size=2)
        try:
            return await job(pool)
        finally:
            await pool.close()

    asyncio.run(main())


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def _when(ts: int | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else "-"


async def _named(pool, key: str) -> str:
    found = await find_key(pool, key)
    if found is None:
        _fail(f"no such key: {handle(key) if '...' not in key and len(key) > 16 else key}")
    return found


@app.command()
def create(account: str = typer.Option(None, help="the account (default: the only account; created if none)")) -> None:
    """Create a secret key and print it (the only time it is shown in full)."""
    async def job(pool):
        from tally_edge.accounts import create_account

        now = int(time.time())
        target = account
        if target is None:
            ids = [r[0] for r in await pool.fetch("select id from accounts order by id limit 2")]
            if len(ids) > 1:
                _fail("there are several accounts: name one with --account")
            if not ids:
                target, key = await create_account(pool, now=now)
                typer.echo(f"{target} {key}")
                return
            target = ids[0]
        elif await pool.fetchval("select 1 from accounts where id = $1", target) is None:
            _fail(f"no such account: {target}")
        typer.echo(f"{target} {await create_key(pool, target, now=now)}")

    _run(job)


@app.command("list")
def list_(account: str = typer.Option(None, help="only this account's keys")) -> None:
    """List keys (by handle) with their account, creation time and expiry."""
    async def job(pool):
        now = int(time.time())
        for acct, key, created, expires_at in await list_keys(pool, account):
            state = "active" if expires_at is None or expires_at > now else "expired"
            typer.echo(f"{handle(key)}  {acct}  created {_when(created)}  expires {_when(expires_at)}  {state}")

    _run(job)


@app.command()
def roll(key: str = typer.Argument(..., help="the key, in full or by its handle"),
         expires_in: int = typer.Option(0, help=f"seconds the old key keeps working (0 to {MAX_ROLL_EXPIRY})")) -> None:
    """Replace a key with a new one (printed in full); the old one stops working after --expires-in seconds."""
    if not 0 <= expires_in <= MAX_ROLL_EXPIRY:
        raise typer.BadParameter(f"must be between 0 and {MAX_ROLL_EXPIRY} seconds (7 days)", param_hint="--expires-in")

    async def job(pool):
        old = await _named(pool, key)
        now = int(time.time())
        fresh = await roll_key(pool, old, now=now, expires_in=expires_in)
        typer.echo(fresh)
        typer.echo(f"{handle(old)} expires {_when(now + expires_in)}", err=True)

    _run(job)


@app.command()
def delete(key: str = typer.Argument(..., help="the key, in full or by its handle")) -> None:
    """Delete a key: every running process refuses it at once."""
    async def job(pool):
        old = await _named(pool, key)
        await delete_key(pool, old)
        typer.echo(f"deleted {handle(old)}")

    _run(job)
