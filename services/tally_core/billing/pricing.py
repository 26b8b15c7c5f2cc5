"""One invoice line's amount for a price and a quantity (reference A.2), in integer minor units.

Rounding: exact Decimal math, then ONE half-up (.5 away from zero) rounding per line, never per unit or tier —
Stripe "Rounding occurs on the line item level": 0.05¢ × 30 = 1.5¢ → 2¢ (reference §2.2, A.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

from .prices import Price, Tier

# Inputs are bounded (≤15 integer + 12 fractional digits), so 200 digits never round; trapping Inexact proves it.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_ROUND = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])
_ZERO, _ONE = Decimal(0), Decimal(1)


def to_minor(x: Decimal) -> int:
    """Round an exact minor-unit amount to an integer, half up (1.5 → 2, 166.346 → 166, -2.5 → -3)."""
    return int(x.quantize(_ONE, context=_ROUND))


@dataclass(frozen=True, slots=True)
class TierCharge:
    tier: int                      # index into price.tiers
    quantity: Decimal              # units charged at this tier's unit amount
    unit_amount_decimal: Decimal
    flat_amount_decimal: Decimal
    amount_decimal: Decimal        # quantity × unit + flat, not rounded


@dataclass(frozen=True, slots=True)
class LineDetail:
    quantity: Decimal              # usage or licensed quantity, negatives clamped to 0
    billed_quantity: Decimal       # after transform_quantity (equals quantity without one)
    amount_decimal: Decimal        # exact line amount before rounding
    amount: int                    # the line amount in minor units
    tiers: tuple[TierCharge, ...] = ()


def _quantity(quantity: Decimal | int) -> Decimal:
    if isinstance(quantity, bool) or not isinstance(quantity, (int, Decimal)):
        raise TypeError(f"quantity must be an int or Decimal, not {type(quantity).__name__}")
    q = Decimal(quantity)
    if not q.is_finite():
        raise ValueError(f"quantity must be finite, got {q}")
    # A metered period whose usage sums below zero is billed as quantity 0 (reference A.2, Appendix D.6).
    return max(q, _ZERO)


def billed_quantity(price: Price, quantity: Decimal | int) -> Decimal:
    """The quantity the unit amount applies to: `ceil` or `floor` of quantity / divide_by (reference §2.4)."""
    q = _quantity(quantity)
    tq = price.transform_quantity
    if tq is None:
        return q
    whole, rest = _EXACT.divmod(q, Decimal(tq.divide_by))  # q ≥ 0, so truncation is floor
    return whole + 1 if tq.round == "up" and rest else whole


def _charge(i: int, tier: Tier, n: Decimal) -> TierCharge:
    unit = tier.unit_amount_decimal or _ZERO
    flat = tier.flat_amount_decimal or _ZERO
    return TierCharge(i, n, unit, flat, _EXACT.add(_EXACT.multiply(unit, n), flat))


def _graduated(tiers: tuple[Tier, ...], q: Decimal) -> list[TierCharge]:
    # Each tier bills the units that fall into it plus its flat fee if any unit does; up_to is inclusive.
    out, prev = [], _ZERO
    for i, tier in enumerate(tiers):
        upper = q if tier.up_to is None else min(q, Decimal(tier.up_to))
        n = max(_ZERO, _EXACT.subtract(upper, prev))
        # "We always bill the first flat fee tier when quantity=0" (reference §2.3).
        if n > 0 or (i == 0 and q == 0):
            out.append(_charge(i, tier, n))
        if tier.up_to is None or q <= tier.up_to:
            break
        prev = Decimal(tier.up_to)
    return out


def _volume(tiers: tuple[Tier, ...], q: Decimal) -> list[TierCharge]:
    # The whole quantity is billed at the one tier that contains it (inclusive up_to), plus that tier's flat fee.
    for i, tier in enumerate(tiers):
        if tier.up_to is None or q <= tier.up_to:
            return [_charge(i, tier, q)]
    raise ValueError("tiers must end with an up_to=inf tier")


def line_detail(price: Price, quantity: Decimal | int) -> LineDetail:
    """The line amount with its per-tier breakdown (tiered) or billed quantity (per_unit)."""
    q = _quantity(quantity)
    if price.billing_scheme == "per_unit":
        if price.unit_amount_decimal is None:
            raise ValueError(f"per_unit price {price.id} has no unit amount")
        billed = billed_quantity(price, q)
        exact = _EXACT.multiply(price.unit_amount_decimal, billed)
        return LineDetail(q, billed, exact, to_minor(exact))
    charges = _graduated(price.tiers, q) if price.tiers_mode == "graduated" else _volume(price.tiers, q)
    exact = _ZERO
    for c in charges:
        exact = _EXACT.add(exact, c.amount_decimal)
    return LineDetail(q, q, exact, to_minor(exact), tuple(charges))


def price_amount(price: Price, quantity: Decimal | int) -> int:
    """Minor units for one invoice line of `price` at `quantity` (licensed quantity or aggregated usage)."""
    return line_detail(price, quantity).amount
