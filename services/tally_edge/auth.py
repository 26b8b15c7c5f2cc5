"""Who is calling: Stripe's secret-key auth (Bearer, or Basic with the key as the user name)."""

from __future__ import annotations

import base64

from starlette.requests import Request

from tally_core.errors import AuthenticationFailed

from .accounts import KeyRing


def bearer_or_basic(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, cred = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and cred.strip():
        return cred.strip()
    if scheme == "basic" and cred.strip():
        try:
            user = base64.b64decode(cred.strip()).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise AuthenticationFailed(
        "You did not provide an API key. You need to provide your API key in the Authorization header, using "
        "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY') or Basic auth with the key as the user name."
    )


async def authenticate(request: Request, keys: KeyRing) -> str:
    key = bearer_or_basic(request)
    account = await keys.account_for(key)
    if account is None:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "***"
        raise AuthenticationFailed(f"Invalid API Key provided: {shown}")
    return account
