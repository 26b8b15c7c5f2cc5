"""One metadata rule for every object, Stripe's (reference §9, "Empty string unsets", §9 conventions).

- `check(raw, param)`: what a create accepts. At most 50 keys, keys at most 40 characters and without `[`/`]`
  (the form encoding could not carry them back), values strings of at most 500 characters. `metadata[k]=`
  on a create sets nothing, and `metadata=` is no metadata at all.
- `merge(old, raw, param)`: what an update does. Stripe: "You can unset individual keys by posting an empty
  value to them. All keys can be unset by posting an empty value to metadata." Keys that are not named keep
  their value; named keys are set; an empty value unsets that key; `metadata=""` unsets them all. The key
  limit applies to the merged result.
"""

from __future__ import annotations

from typing import Mapping

from .errors import invalid

# Stripe metadata limits (reference §9): ≤50 keys, key ≤40 chars, value ≤500 chars.
MAX_KEYS, MAX_KEY, MAX_VALUE = 50, 40, 500


def _check_key(key, param: str) -> None:
    if not isinstance(key, str) or key == "":
        raise invalid(param, "keys must be non-empty strings.")
    if "[" in key or "]" in key:
        raise invalid(f"{param}[{key}]", "keys may not contain '[' or ']'.")
    if len(key) > MAX_KEY:
        raise invalid(f"{param}[{key}]", f"keys must be at most {MAX_KEY} characters.")


def _check_value(key: str, value, param: str) -> None:
    if not isinstance(value, str):
        raise invalid(f"{param}[{key}]", "values must be strings.")
    if len(value) > MAX_VALUE:
        raise invalid(f"{param}[{key}]", f"values must be at most {MAX_VALUE} characters.")


def _changes(raw, param: str) -> dict[str, str] | None:
    """The keys a request names, each checked; None for `metadata=` (unset all)."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, dict):
        raise invalid(param, "must be a hash.")
    for key, value in raw.items():
        _check_key(key, param)
        if value != "":
            _check_value(key, value, param)
    return dict(raw)


def _limit(out: dict[str, str], param: str) -> dict[str, str]:
    if len(out) > MAX_KEYS:
        raise invalid(param, f"can have at most {MAX_KEYS} keys.")
    return out


def check(raw, param: str = "metadata") -> dict[str, str]:
    """A create's metadata: the non-empty values of `raw`, checked against Stripe's limits."""
    changes = _changes(raw, param)
    return _limit({k: v for k, v in (changes or {}).items() if v != ""}, param)


def merge(old: Mapping[str, str], raw, param: str = "metadata") -> dict[str, str]:
    """An update's metadata: `old` with the named keys set, and unset where their value is empty."""
    changes = _changes(raw, param)
    if changes is None:
        return {}
    out = {k: v for k, v in old.items() if changes.get(k) != ""}
    out.update({k: v for k, v in changes.items() if v != ""})
    return _limit(out, param)
