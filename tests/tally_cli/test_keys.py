"""`tally keys` create / list / roll / delete, and what a running `tally run` makes of each at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from typer.testing import CliRunner

from tally_cli.__main__ import app
from tally_cli.database import open_pool as create_pool
from tally_edge.accounts import create_account, handle


@pytest.fixture
def keys(db_url, tmp_path):
    """Run `tally keys ...` against the test's database; returns (exit code, stdout, stderr)."""
    runner = CliRunner()
    env = {"TALLY_DATABASE_URL": db_url, "TALLY_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["keys", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    return run


def status(base: str, key: str) -> int:
    return httpx.get(base + "/v1/billing/meters", auth=(key, "")).status_code


def refused_within(base: str, key: str, seconds: float) -> float:
    start = time.monotonic()
    while status(base, key) != 401:
        assert time.monotonic() - start < seconds, "the key is still accepted"
        time.sleep(0.02)
    return time.monotonic() - start


def test_create_list_roll_delete_round_trip(keys):
    code, out, _ = keys("create")  # no account yet: one is created with the key
    assert code == 0
    account, first = out.split()
    assert first.startswith("sk_test_")
    code, out, _ = keys("create", "--account", account)
    second = out.split()[1]
    code, out, _ = keys("list")
    assert code == 0 and first not in out and second not in out  # never a full key after creation
    assert sorted(line.split()[:2] for line in out.splitlines()) == sorted([[handle(first), account],
                                                                        [handle(second), account]])
    assert all(line.endswith("expires -  active") for line in out.splitlines())

    code, out, err = keys("roll", handle(first), "--expires-in", "3600")
    assert code == 0 and out.strip().startswith("sk_test_") and handle(first) in err
    rolled = out.strip()
    code, out, _ = keys("list", "--account", account)
    assert handle(rolled) in out and len(out.splitlines()) == 3
    assert keys("roll", first, "--expires-in", str(8 * 86400))[0] != 0  # Stripe's longest is 7 days

    code, out, _ = keys("delete", second)
    assert (code, out.strip()) == (0, f"deleted {handle(second)}")
    code, _, err = keys("delete", second)
    assert code == 1 and "no such key" in err and second not in err
    assert keys("create", "--account", "acct_missing")[0] == 1


def test_several_accounts_need_an_explicit_account(keys, db_url):
    keys("create")
    account = keys("list")[1].split()[1]

    async def second_account():
        pool = await create_pool(db_url)
        try:
            await create_account(pool, now=0)
        finally:
            await pool.close()

    asyncio.run(second_account())
    code, _, err = keys("create")
    assert code == 1 and "--account" in err
    assert keys("create", "--account", account)[0] == 0


def test_a_running_server_refuses_a_deleted_key_at_once_and_keeps_serving(server, keys):
    base, key = server
    assert status(base, key) == 200
    account = keys("list")[1].split()[1]
    spare = keys("create", "--account", account)[1].split()[1]
    assert status(base, spare) == 200
    assert keys("delete", handle(key))[0] == 0
    assert refused_within(base, key, 1.0) < 1.0
    assert status(base, spare) == 200 and httpx.get(base + "/healthz").status_code == 200


def test_a_rolled_key_works_and_the_old_one_stops_at_its_expiry(server, keys):
    base, key = server
    assert status(base, key) == 200  # cached by the server from here on
    code, out, _ = keys("roll", key, "--expires-in", "2")
    rolled = out.strip()
    assert code == 0 and status(base, rolled) == 200 and status(base, key) == 200
    waited = refused_within(base, key, 4.0)
    assert 0.3 < waited < 4.0
    assert status(base, rolled) == 200
    immediate = keys("roll", rolled)[1].strip()  # the default expiry is now
    assert refused_within(base, rolled, 1.0) < 1.0
    assert status(base, immediate) == 200
