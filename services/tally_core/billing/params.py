"""Coercing Stripe form values (strings after bracket parsing) into typed values, naming the param on error."""

from __future__ import annotations

import re
from decimal import Decimal

from .. import metadata as _metadata
from ..errors import InvalidRequest, invalid, unknown
from ..strings import ASCII_INTEGER, INT64_MAX, INT64_MIN, MAX_TIMESTAMP, MIN_TIMESTAMP

# Stripe: decimal amounts have "at most 12 decimal places".
MAX_DECIMAL_PLACES = 12
# Stripe's bound on a unit amount (and tier amounts): 99,999,999 minor units, `unit_amount_decimal` below 10^8.
# With quantities ≤ MAX_QUANTITY and ≤ 20 items, unit amount × quantity × items stays below 2·10^18 < int64.
MAX_UNIT_AMOUNT = 99_999_999
MAX_QUANTITY = 1_000_000_000
# A customer's balance (credit or debt), in minor units: ±10^11 − 1, far from int64 whatever is added to it.
MAX_BALANCE = 99_999_999_999
_DECIMAL = re.compile(r"^[0-9]+(?:\.([0-9]+))?$", re.ASCII)
# Stripe metadata limits (reference §9), kept under their old names for the API's schemas.
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = _metadata.MAX_KEYS, _metadata.MAX_KEY, _metadata.MAX_VALUE


def empty(param: str) -> InvalidRequest:
    """Stripe reads `x=` as "unset"; a create param that cannot be unset is rejected with this code."""
    return InvalidRequest(
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to unset a parameter; "
        f"however '{param}' cannot be unset. You should remove '{param}' from your request or supply a non-empty value.",
        param=param, code="parameter_invalid_empty",
    )


def exclusive(*params: str) -> InvalidRequest:
    # Stripe names the first of the clashing params (seen: param "tiers[0][unit_amount]").
    return InvalidRequest(
        f"You may only specify one of these parameters: {', '.join(params)}.", param=params[0], code="parameters_exclusive",
    )


def check_keys(value: dict, allowed: set[str], prefix: str = "") -> None:
    for key in value:
        if key not in allowed:
            raise unknown(f"{prefix}[{key}]" if prefix else key)


def hash_(raw, param: str) -> dict:
    if raw == "":
        raise empty(param)
    if not isinstance(raw, dict):
        raise invalid(param, "must be a hash.")
    return raw


def string(raw, param: str, *, max_len: int = 5000) -> str:
    if not isinstance(raw, str):
        raise invalid(param, "must be a string.")
    if raw == "":
        raise empty(param)
    if len(raw) > max_len:
        raise invalid(param, f"must be at most {max_len} characters.")
    return raw


def integer(raw, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer from an int or an ASCII digit string, within [minimum, maximum] (int64 unless narrower)."""
    if raw == "":
        raise empty(param)
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and ASCII_INTEGER.fullmatch(raw))):
        shown = raw[:40] if isinstance(raw, str) else raw
        raise invalid(param, f"{shown!r} is not an integer.", code="parameter_invalid_integer")
    low = INT64_MIN if minimum is None else minimum
    high = INT64_MAX if maximum is None else maximum
    # Compare digit counts before int(): a 5,000-digit string costs no CPU and cannot hit int's digit limit.
    if isinstance(raw, str) and len(raw.lstrip("-").lstrip("0")) > 19:
        value = -(10**20) if raw.startswith("-") else 10**20
    else:
        value = int(raw)
    if value < low:
        raise invalid(param, f"must be greater than or equal to {low}.", code="parameter_invalid_integer")
    if value > high:
        raise invalid(param, f"must be less than or equal to {high}.", code="parameter_invalid_integer")
    return value


def timestamp(raw, param: str) -> int:
    """Unix seconds from 1970-01-01 to 9999-12-31T23:59:59Z (every time parameter of a request)."""
    return integer(raw, param, minimum=MIN_TIMESTAMP, maximum=MAX_TIMESTAMP)


def quantity(raw, param: str) -> int:
    """A non-negative item quantity, at most MAX_QUANTITY (so amount × quantity stays within int64)."""
    return integer(raw, param, minimum=0, maximum=MAX_QUANTITY)


def balance(raw, param: str = "balance") -> int:
    return integer(raw, param, minimum=-MAX_BALANCE, maximum=MAX_BALANCE)


def amount(raw, param: str) -> Decimal:
    """An integer minor-unit amount: Stripe's "positive integer … (or 0 for a free price)"."""
    return Decimal(integer(raw, param, minimum=0, maximum=MAX_UNIT_AMOUNT))


def decimal_amount(raw, param: str) -> Decimal:
    """A non-negative decimal string in minor units with at most 12 decimal places (no exponent, no sign)."""
    if raw == "":
        raise empty(param)
    s = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw
    m = _DECIMAL.match(s) if isinstance(s, str) else None
    if not m:
        raise invalid(param, f"{str(raw)[:40]!r} is not a non-negative decimal number.", code="parameter_invalid_decimal")
    if m.group(1) and len(m.group(1)) > MAX_DECIMAL_PLACES:
        raise invalid(param, f"must have at most {MAX_DECIMAL_PLACES} decimal places.", code="parameter_invalid_decimal")
    if len(s.split(".")[0].lstrip("0")) > len(str(MAX_UNIT_AMOUNT)):
        raise invalid(param, f"must be less than {MAX_UNIT_AMOUNT + 1}.", code="parameter_invalid_decimal")
    return Decimal(s)


def boolean(raw, param: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "":
        raise empty(param)
    raise invalid(param, "must be a boolean (true or false).", code="parameter_invalid_boolean")


def enum(raw, param: str, choices: tuple[str, ...]) -> str:
    if raw == "":
        raise empty(param)
    if raw not in choices:
        raise invalid(param, f"must be one of {', '.join(choices)}.", code="parameter_invalid_enum")
    return raw


def array(raw, param: str) -> list:
    if raw == "":
        raise empty(param)
    if not isinstance(raw, list):
        # forms.py leaves non-contiguous indexes (`tiers[0]`, `tiers[2]`) as a dict.
        raise invalid(param, "must be an array with consecutive indexes starting at 0.", code="parameter_invalid_array")
    return raw
