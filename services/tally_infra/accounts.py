"""Accounts and their secret keys. Every object and every usage row belongs to exactly one account."""

from __future__ import annotations

import secrets

import asyncpg

from tally_core.ids import new_id


async def create_account(pool: asyncpg.Pool, *, now: int, key: str | None = None, account_id: str | None = None) -> tuple[str, str]:
    """Create an account with one test secret key; return (account id, key)."""
    account_id = account_id or new_id("acct", 16)
    key = key or "sk_test_" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("insert into accounts (id, created) values ($1, $2) on conflict do nothing", account_id, now)
        await conn.execute("insert into api_keys (key, account) values ($1, $2) on conflict do nothing", key, account_id)
    return account_id, key


async def first_key(pool: asyncpg.Pool) -> tuple[str, str] | None:
    row = await pool.fetchrow("select account, key from api_keys order by account, key limit 1")
    return (row[0], row[1]) if row else None


class KeyRing:
    """Secret key → account, cached; an unknown key is looked up once more in the database."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self._keys: dict[str, str] = {}

    async def account_for(self, key: str) -> str | None:
        account = self._keys.get(key)
        if account is None:
            account = await self.pool.fetchval("select account from api_keys where key = $1", key)
            if account is not None:
                self._keys[key] = account
        return account
