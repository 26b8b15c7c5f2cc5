"""v2 meter event sessions: stateless tokens (HMAC of account and expiry) valid for 15 minutes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import asyncpg

from tally_core.errors import AuthenticationFailed, SessionExpired

SESSION_SECONDS = 15 * 60
PREFIX = "mes_"


SCHEMA = "create table if not exists server_secrets (name text primary key, value bytea not null);"


async def load_secret(pool: asyncpg.Pool) -> bytes:
    """The signing secret every ingest process shares (made once, kept in `server_secrets`, ingest's table,
    created with the others at start-up: `SCHEMA`)."""
    await pool.execute("insert into server_secrets values ('meter_event_session', $1) on conflict do nothing",
                       secrets.token_bytes(32))
    return bytes(await pool.fetchval("select value from server_secrets where name = 'meter_event_session'"))


def issue(secret: bytes, account: str, now: int) -> tuple[str, int]:
    expires = now + SESSION_SECONDS
    body = f"{account}.{expires}".encode()
    sig = hmac.new(secret, body, hashlib.sha256).digest()[:18]
    return PREFIX + base64.urlsafe_b64encode(body + b"." + sig).decode().rstrip("="), expires


def verify(secret: bytes, token: str, now: int) -> str | None:
    """The token's account; None if it is not a session token; raises if forged or expired."""
    if not token.startswith(PREFIX):
        return None
    raw = token[len(PREFIX):]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        account, expires_s, sig = data.split(b".", 2)
        expires = int(expires_s)
    except (ValueError, TypeError):
        raise AuthenticationFailed("Invalid meter event session token.") from None
    good = hmac.new(secret, account + b"." + expires_s, hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(good, sig):
        raise AuthenticationFailed("Invalid meter event session token.")
    if expires < now:
        raise SessionExpired("The meter event session has expired; create a new one with "
                             "POST /v2/billing/meter_event_session.", code="session_expired")
    return account.decode()
