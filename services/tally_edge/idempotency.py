"""Stripe's idempotent requests: the same `Idempotency-Key` with the same request replays the first answer.

The cache answers in memory; answers are written behind in batches (`flush`) to `idempotency_keys`, which this
package owns, so they survive restarts for 24 h and reach other processes after theirs restart.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

import asyncpg

from tally_core.errors import IdempotencyError, IdempotencyKeyInUse, ServiceUnavailable, invalid

SCHEMA = """
create table if not exists idempotency_keys (
  account text not null,
  key text not null,
  request_hash bytea not null,
  status int not null,
  body bytea not null,
  created_ms bigint not null,
  primary key (account, key)
);
"""


class CommandPending(ServiceUnavailable):
    """The command is in the log but its result did not arrive in time: a retry with the same Idempotency-Key
    waits for this command instead of appending another (`IdempotencyCache.pend`)."""

    def __init__(self, command_id: str, message: str):
        super().__init__(message)
        self.command_id = command_id


PENDING = 0  # status stored for a key whose command is in the log without a result yet (body: the command id)


class IdempotencyCache:
    """Stripe idempotency: same key + same request → the first response; same key + other request → error.

    Lookups are in memory (the SDK sends a fresh key with every POST, so a database read per request would
    bound ingestion); records are written behind in batches so they survive restarts for 24 h.
    """

    TTL_MS = 24 * 3600 * 1000

    def __init__(self, max_entries: int = 500_000):
        self._entries: OrderedDict[tuple[str, str], tuple[bytes, int, bytes, int] | None] = OrderedDict()
        self._max = max_entries
        self.unsaved: list[tuple[str, str, bytes, int, bytes, int]] = []

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> bytes:
        return hashlib.blake2b(method.encode() + b" " + path.encode() + b"\n" + body, digest_size=16).digest()

    def begin(self, account: str, key: str, fingerprint: bytes) -> "tuple[int, bytes] | str | None":
        """Return a stored (status, body) to replay, the id of a command still being carried out for this key
        (the caller waits for its result), or None after marking the key in flight."""
        if len(key) > 255:
            raise invalid("Idempotency-Key", "must be at most 255 characters.")
        slot = (account, key)
        if slot in self._entries:
            entry = self._entries[slot]
            if entry is None:
                raise IdempotencyKeyInUse(
                    "There is currently another in-progress request using this Idempotent Key. "
                    "Please try again later.", code="idempotency_key_in_use")
            fp, status, body, created = entry
            if created >= _now_ms() - self.TTL_MS:
                if fp != fingerprint:
                    raise IdempotencyError(
                        f"Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.")
                if status == PENDING:
                    self._entries[slot] = None
                    return body.decode()
                return status, body
        self._entries[slot] = None
        return None

    def finish(self, account: str, key: str, fingerprint: bytes, status: int, body: bytes) -> None:
        now = _now_ms()
        self._entries[(account, key)] = (fingerprint, status, body, now)
        self._entries.move_to_end((account, key))
        self.unsaved.append((account, key, fingerprint, status, body, now))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def pend(self, account: str, key: str, fingerprint: bytes, command_id: str) -> None:
        """The request's command is in the log but its answer did not come in time (a 503): a retry with the
        same key must wait for that command's result, never append a second command (which would, say,
        create a second customer). Kept like a result, so it survives restarts and reaches other processes."""
        self.finish(account, key, fingerprint, PENDING, command_id.encode())

    def abandon(self, account: str, key: str) -> None:
        """Validation failed before execution: Stripe does not save the key."""
        if self._entries.get((account, key), 1) is None:
            del self._entries[(account, key)]

    def restore(self, rows) -> None:
        for account, key, fp, status, body, created in rows:
            self._entries[(account, key)] = (bytes(fp), status, bytes(body), created)

    def take_unsaved(self) -> list:
        rows, self.unsaved = self.unsaved, []
        return rows

    def put_back(self, rows: list) -> None:
        """A flush failed (the database is away): keep the rows for the next one."""
        self.unsaved[:0] = rows


def _now_ms() -> int:
    return int(time.time() * 1000)


async def restore(cache: IdempotencyCache, pool: asyncpg.Pool, *, now_ms: int) -> None:
    """Load the answers of the last 24 h (a process's start-up)."""
    cache.restore(await pool.fetch(
        "select account, key, request_hash, status, body, created_ms from idempotency_keys where created_ms >= $1",
        now_ms - IdempotencyCache.TTL_MS))


async def flush(cache: IdempotencyCache, pool: asyncpg.Pool) -> None:
    rows = cache.take_unsaved()
    if not rows:
        return
    # A key's pending marker and its final result may meet in one flush: the last one wins.
    latest = list({(r[0], r[1]): r for r in rows}.values())
    try:
        # One statement per flush: the SDK sends a key with every POST, so this runs at ingest rates. Only a
        # pending marker (status 0) is ever replaced: a saved result is final.
        await pool.execute(
            "insert into idempotency_keys as k (account, key, request_hash, status, body, created_ms) "
            "select * from unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bytea[], $6::bigint[]) "
            "on conflict (account, key) do update set status = excluded.status, body = excluded.body "
            "where k.status = 0", *map(list, zip(*latest)))
    except BaseException:
        cache.put_back(rows)
        raise
