"""Coercing Stripe form values (strings after bracket parsing) into typed values, naming the param on error."""

from __future__ import annotations

import re
from decimal import Decimal

from ..errors import InvalidRequest, invalid, unknown

# Stripe: decimal amounts have "at most 12 decimal places". The 15 integer digits are our own overflow guard
# (same bound as meter event values), not a documented Stripe limit.
MAX_DECIMAL_PLACES = 12
MAX_INTEGER_DIGITS = 15
_DECIMAL = re.compile(r"^\d+(?:\.(\d+))?$")
_INTEGER = re.compile(r"^-?\d+$")
# Stripe metadata limits (reference §9): ≤50 keys, key ≤40 chars, value ≤500 chars.
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 50, 40, 500


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
    if raw == "":
        raise empty(param)
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and _INTEGER.match(raw))):
        raise invalid(param, f"{raw!r} is not an integer.", code="parameter_invalid_integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise invalid(param, f"must be greater than or equal to {minimum}.", code="parameter_invalid_integer")
    if maximum is not None and value > maximum:
        raise invalid(param, f"must be less than or equal to {maximum}.", code="parameter_invalid_integer")
    return value


def amount(raw, param: str) -> Decimal:
    """An integer minor-unit amount: Stripe's "positive integer … (or 0 for a free price)"."""
    return Decimal(integer(raw, param, minimum=0, maximum=10**MAX_INTEGER_DIGITS - 1))


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
    if len(s.split(".")[0].lstrip("0")) > MAX_INTEGER_DIGITS:
        raise invalid(param, f"must have at most {MAX_INTEGER_DIGITS} integer digits.", code="parameter_invalid_decimal")
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


def metadata(raw, param: str = "metadata") -> dict[str, str]:
    if raw in (None, ""):
        return {}  # `metadata=` unsets all keys
    if not isinstance(raw, dict):
        raise invalid(param, "must be a hash.")
    out = {}
    for key, value in raw.items():
        if value == "":
            continue  # `metadata[k]=` unsets one key
        if len(key) > MAX_METADATA_KEY:
            raise invalid(f"{param}[{key}]", f"keys must be at most {MAX_METADATA_KEY} characters.")
        if not isinstance(value, str):
            raise invalid(f"{param}[{key}]", "values must be strings.")
        if len(value) > MAX_METADATA_VALUE:
            raise invalid(f"{param}[{key}]", f"values must be at most {MAX_METADATA_VALUE} characters.")
        out[key] = value
    if len(out) > MAX_METADATA_KEYS:
        raise invalid(param, f"can have at most {MAX_METADATA_KEYS} keys.")
    return out
