"""Secret keys: every process's KeyRing refuses a deleted, rolled-out or expired key at once.

Each KeyRing here has its own pool, as separate processes would, and a one-hour cache TTL, so only the
revocation notification can explain a refusal within a second.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tally_cli.database import open_pool as create_pool
from tally_core.errors import ServiceUnavailable
from tally_edge.accounts import (
    LISTENER,
    KeyRing,
    create_account,
    create_key,
    delete_key,
    find_key,
    handle,
    list_keys,
    roll_key,
)
from tests.tally_cli.outage import OwnPostgres


@pytest.fixture
async def pools(db_url):
    opened = [await create_pool(db_url, min_size=1, max_size=3) for _ in range(2)]
    yield opened
    for pool in opened:
        await pool.close()


@pytest.fixture
async def rings(pools):
    made = [KeyRing(pool, ttl=3600) for pool in pools]
    yield made
    for ring in made:
        await ring.close()


async def listening(ring: KeyRing, key: str) -> None:
    """The first lookup starts the listener; wait until it listens (and so caches)."""
    await ring.account_for(key)
    for _ in range(100):
        if ring.listening:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the key listener never started")


async def refused_within(ring: KeyRing, key: str, seconds: float) -> float:
    start = time.monotonic()
    while await ring.account_for(key) is not None:
        assert time.monotonic() - start < seconds, "the key is still accepted"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_deleted_key_is_refused_by_every_process_at_once(pools, rings):
    account, key = await create_account(pools[0], now=int(time.time()))
    for ring in rings:
        await listening(ring, key)
        assert await ring.account_for(key) == account  # now served from the cache
    assert await delete_key(pools[0], key)
    for ring in rings:
        assert await refused_within(ring, key, 1.0) < 1.0
    assert not await delete_key(pools[0], key)


async def test_rolled_key_works_and_the_old_one_stops_at_its_expiry(pools, rings):
    ring = rings[1]
    account, old = await create_account(pools[0], now=int(time.time()))
    await listening(ring, old)
    new = await roll_key(pools[0], old, now=int(time.time()), expires_in=2)
    assert await ring.account_for(new) == account
    assert await ring.account_for(old) == account  # still inside its expiry
    waited = await refused_within(ring, old, 4.0)
    assert 0.5 < waited < 4.0
    assert await ring.account_for(new) == account
    immediate = await roll_key(pools[0], new, now=int(time.time()))  # default: the old key expires now
    assert await refused_within(ring, new, 1.0) < 1.0
    assert await ring.account_for(immediate) == account


async def test_keys_are_listed_by_handle_and_found_by_it(pools):
    now = int(time.time())
    account, first = await create_account(pools[0], now=now)
    second = await create_key(pools[0], account, now=now + 1)
    listed = await list_keys(pools[0], account)
    assert [(a, k, c) for a, k, c, _ in listed] == [(account, first, now), (account, second, now + 1)]
    assert handle(first) == first[:12] + "..." + first[-4:]
    assert await find_key(pools[0], handle(second)) == second
    assert await find_key(pools[0], second) == second
    assert await find_key(pools[0], "sk_test_nope...nope") is None


async def test_a_lost_listener_connection_clears_the_cache_and_listens_again(pools, rings):
    ring = rings[0]
    account, key = await create_account(pools[0], now=int(time.time()))
    await listening(ring, key)
    assert await ring.account_for(key) == account
    # Kill the listener's backend, as a PostgreSQL restart or a network cut would.
    killed = await pools[1].fetchval(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity "
        "where datname = current_database() and application_name = $1", LISTENER)
    assert killed == 1
    for _ in range(200):
        if not ring.listening:
            break
        await asyncio.sleep(0.01)
    for _ in range(300):
        if ring.listening:
            break
        await asyncio.sleep(0.02)
    assert ring.listening
    assert await ring.account_for(key) == account
    await delete_key(pools[1], key)
    assert await refused_within(ring, key, 1.0) < 1.0


async def test_without_its_listener_a_keyring_trusts_no_cached_key(pools, rings):
    ring = rings[0]
    account, key = await create_account(pools[0], now=int(time.time()))
    await listening(ring, key)
    assert await ring.account_for(key) == account
    ring._task.cancel()  # the listener is gone (as between a lost connection and the next LISTEN)
    for _ in range(100):
        if not ring.listening:
            break
        await asyncio.sleep(0.01)
    assert not ring.listening
    await delete_key(pools[1], key)  # no notification can reach this ring now
    assert await ring.account_for(key) is None  # refused at its very next use, read from api_keys


async def test_while_the_database_is_down_a_confirmed_key_keeps_working(tmp_path):
    pg = OwnPostgres(tmp_path / "db")  # a PostgreSQL of this test's own, to kill
    pool = await create_pool(pg.url, connect_timeout=1.0)
    ring = KeyRing(pool, ttl=3600)
    try:
        account, key = await create_account(pool, now=int(time.time()))
        await listening(ring, key)
        assert await ring.account_for(key) == account  # confirmed, and cached
        pg.kill()
        for _ in range(300):
            if not ring.listening:
                break
            await asyncio.sleep(0.01)
        assert not ring.listening
        # Nobody can revoke a key in a database that is down: the key confirmed before still works ...
        assert await ring.account_for(key) == account
        # ... and a key never seen gets a 503 to retry, not a 401 (it may well be valid) nor a 500.
        with pytest.raises(ServiceUnavailable):
            await ring.account_for("sk_test_never_seen_before")
        pg.start()
        for _ in range(400):  # the listener retries with a backoff capped at 5 s
            if ring.listening:
                break
            await asyncio.sleep(0.02)
        assert ring.listening
        assert await ring.account_for(key) == account
        await delete_key(pool, key)
        assert await refused_within(ring, key, 1.0) < 1.0
    finally:
        await ring.close()
        pool.terminate()
        pg.stop()
