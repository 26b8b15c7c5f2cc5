"""Accounts and their secret keys. Every object and every usage row belongs to exactly one account.

Revocation takes effect at once on every process: a trigger on `api_keys` NOTIFYs `tally_keys` with the
SHA-256 of a key that is deleted or changed (rolled), and every process's KeyRing LISTENs on a connection
of its own and drops that key from its cache. While that connection is down the cache is not trusted: each
lookup reads `api_keys` first, and the KeyRing re-listens with capped backoff, then starts from an empty
cache. A cached key is also re-read after KEY_CACHE_SECONDS, the safety net for a notification lost on a
connection that looks alive. If `api_keys` cannot be read at all (the database is down, so no key can be
revoked either), a key confirmed before keeps working and an unknown one gets a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time

import asyncpg

from tally_core.ids import new_id

from .health import unavailable

log = logging.getLogger(__name__)

CHANNEL = "tally_keys"
LISTENER = "tally-keys-listener"  # application_name of the listening connection (pg_stat_activity)
KEY_CACHE_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0  # how often the listening connection is checked, so a silent loss is seen
MAX_ROLL_EXPIRY = 7 * 86400  # Stripe lets a rolled key live on for at most 7 days

SCHEMA = """
create table if not exists accounts (
  id text primary key,
  created bigint not null
);
create table if not exists api_keys (
  key text primary key,
  account text not null references accounts(id)
);
-- Columns added since, and the revocation trigger.
alter table api_keys add column if not exists created bigint;
alter table api_keys add column if not exists expires_at bigint;
create or replace function tally_keys_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('tally_keys', encode(sha256(convert_to(old.key, 'UTF8')), 'hex'));
  return null;
end $$;
create or replace trigger api_keys_notify after update or delete on api_keys
  for each row execute function tally_keys_notify();
"""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sk_test_" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


def handle(key: str) -> str:
    """How a key is shown after its creation: enough to tell keys apart, not enough to use one."""
    return f"{key[:12]}...{key[-4:]}"


async def create_account(pool: asyncpg.Pool, *, now: int, key: str | None = None, account_id: str | None = None) -> tuple[str, str]:
    """Create an account with one test secret key; return (account id, key)."""
    account_id = account_id or new_id("acct", 16)
    key = key or new_key()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("insert into accounts (id, created) values ($1, $2) on conflict do nothing", account_id, now)
        await conn.execute("insert into api_keys (key, account, created) values ($1, $2, $3) on conflict do nothing",
                           key, account_id, now)
    return account_id, key


async def first_key(pool: asyncpg.Pool) -> tuple[str, str] | None:
    row = await pool.fetchrow("select account, key from api_keys where expires_at is null or expires_at > $1 "
                              "order by account, key limit 1", int(time.time()))
    return (row[0], row[1]) if row else None


async def create_key(pool: asyncpg.Pool, account: str, *, now: int) -> str:
    key = new_key()
    await pool.execute("insert into api_keys (key, account, created) values ($1, $2, $3)", key, account, now)
    return key


async def list_keys(pool: asyncpg.Pool, account: str | None = None) -> list[tuple[str, str, int | None, int | None]]:
    """(account, key, created, expires_at) of every key, or of one account's, oldest first."""
    rows = await pool.fetch("select account, key, created, expires_at from api_keys where $1::text is null "
                            "or account = $1 order by account, created nulls first, key", account)
    return [tuple(r) for r in rows]


async def find_key(pool: asyncpg.Pool, given: str) -> str | None:
    """The key named by its full text or by its handle (as `list_keys` callers show it), if exactly one."""
    if "..." not in given:
        return await pool.fetchval("select key from api_keys where key = $1", given)
    head, _, tail = given.partition("...")
    rows = await pool.fetch("select key from api_keys where left(key, 12) = $1 and right(key, 4) = $2 limit 2",
                            head, tail)
    return rows[0][0] if len(rows) == 1 else None


async def roll_key(pool: asyncpg.Pool, key: str, *, now: int, expires_in: int = 0) -> str:
    """Stripe's roll: a new key for the same account; the old one keeps working for `expires_in` seconds."""
    if not 0 <= expires_in <= MAX_ROLL_EXPIRY:
        raise ValueError(f"expires_in must be between 0 and {MAX_ROLL_EXPIRY} seconds")
    fresh = new_key()
    async with pool.acquire() as conn, conn.transaction():
        account = await conn.fetchval(
            "update api_keys set expires_at = least(coalesce(expires_at, $2), $2) where key = $1 returning account",
            key, now + expires_in)
        if account is None:
            raise LookupError("no such key")
        await conn.execute("insert into api_keys (key, account, created) values ($1, $2, $3)", fresh, account, now)
    return fresh


async def delete_key(pool: asyncpg.Pool, key: str) -> bool:
    return await pool.fetchval("with d as (delete from api_keys where key = $1 returning 1) select count(*) from d",
                               key) == 1


class KeyRing:
    """Secret key → account, cached while this process listens for revocations (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, *, clock=time.time, ttl: float = KEY_CACHE_SECONDS):
        self.pool = pool
        self._clock = clock
        self._ttl = ttl
        self._keys: dict[str, tuple[str, int | None, float]] = {}  # digest → (account, expires_at, read at)
        self._epoch = 0  # bumped by every revocation, so a read that raced one is not cached
        self._listening = False
        self._task: asyncio.Task | None = None

    @property
    def listening(self) -> bool:
        return self._listening

    async def account_for(self, key: str) -> str | None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="tally-keys-listener")
        digest, now = key_digest(key), self._clock()
        hit = self._keys.get(digest)
        if hit is None or not self._listening or now - hit[2] > self._ttl:
            epoch = self._epoch
            try:
                row = await self.pool.fetchrow("select account, expires_at from api_keys where key = $1", key)
            except Exception as exc:
                lost = unavailable(exc)
                if lost is None:
                    raise
                if hit is None:
                    raise lost from exc
                # The database is out of reach, so no one can revoke a key through it either: the key
                # last confirmed keeps working (requests that need the database fail with their own 503).
                row = (hit[0], hit[1])
            else:
                if row is None:
                    self._keys.pop(digest, None)
                    return None
            hit = (row[0], row[1], now)
            if epoch == self._epoch:
                self._keys[digest] = hit
        account, expires_at, _ = hit
        if expires_at is not None and now >= expires_at:
            return None
        return account

    def _revoke(self, _conn, _pid, _channel, payload: str) -> None:
        self._epoch += 1
        self._keys.pop(payload, None)

    def _forget_all(self) -> None:
        self._epoch += 1
        self._keys.clear()

    async def _listen(self) -> None:
        delay = 0.05
        while True:
            conn = None
            try:
                # A connection of its own: LISTEN state must not leak into the pool, nor hold a pool slot.
                kwargs = dict(self.pool._connect_kwargs)
                kwargs["server_settings"] = {**(kwargs.get("server_settings") or {}), "application_name": LISTENER}
                conn = await asyncpg.connect(*self.pool._connect_args, **kwargs)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, self._revoke)
                self._forget_all()
                self._listening, delay = True, 0.05
                while not lost.is_set():
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(lost.wait(), HEARTBEAT_SECONDS)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("select 1"), HEARTBEAT_SECONDS)
                log.warning("key revocation listener lost its connection; re-listening")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: trust no cached key, retry with backoff
                log.warning("key revocation listener failed (%s: %s); every key is re-read until it listens again",
                            type(exc).__name__, exc)
            finally:
                # Cached keys stay, unconfirmed: until it listens again each lookup reads `api_keys` first.
                self._listening = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
