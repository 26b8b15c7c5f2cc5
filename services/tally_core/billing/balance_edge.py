"""The API edge's state-free checks of the balance ledger's commands (reference §4.7): each `(params, now)`
gives the typed values by field name (command_params.BalanceTransaction*Params) or raises its first refusal.
Whether the customer exists, and whether the currency is the customer's, needs the book (handlers/balance.py).
"""

from __future__ import annotations

from ..errors import invalid, missing
from ..metadata import check as check_metadata
from . import params as p
from .balance_transactions import MAX_DESCRIPTION

_CREATE = {"amount", "currency", "description", "metadata", "expand"}
_UPDATE = {"description", "metadata", "expand"}


def _currency(raw) -> str:
    value = p.string(raw, "currency", max_len=3).lower()
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        raise invalid("currency", "must be a three-letter ISO currency code, in lowercase.")
    return value


def _common(params: dict, out: dict) -> dict:
    if "description" in params:
        raw = params["description"]
        out["description"] = None if raw in (None, "") else p.string(raw, "description", max_len=MAX_DESCRIPTION)
    if "metadata" in params:
        check_metadata(params["metadata"])  # an update's key limit counts what it merges into (the handler)
        out["metadata"] = None if params["metadata"] in (None, "") else dict(params["metadata"])
    return out


def check_create(params: dict, now: int) -> dict:
    """Only `adjustment` can be created (§4.7): a non-zero `amount` (negative credits the customer) and the
    `currency` it is in, both required."""
    p.check_keys(params, _CREATE)
    if params.get("amount") in (None, ""):
        raise missing("amount")
    amount = p.balance(params["amount"], "amount")
    if amount == 0:
        raise invalid("amount", "must not be zero (a balance transaction changes the balance).")
    if params.get("currency") in (None, ""):
        raise missing("currency")
    return _common(params, {"amount": amount, "currency": _currency(params["currency"])})


def check_update(params: dict, now: int) -> dict:
    """Only `description` and `metadata` of a transaction change (§4.7: immutable otherwise)."""
    p.check_keys(params, _UPDATE)
    return _common(params, {})
