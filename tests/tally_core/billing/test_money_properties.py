"""Properties of line amounts (reference A.2), checked against sums written here from the rules, not from
`pricing.py`: graduated is the sum of its tier slices, volume is one tier for the whole quantity,
transform_quantity is a ceil/floor division, and a line rounds half up once, to integer minor units; and of
the billing periods that proration and usage are measured against (reference A.3)."""

from __future__ import annotations

import calendar
from datetime import datetime, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tally_core.billing.params import MAX_QUANTITY, MAX_UNIT_AMOUNT
from tally_core.billing.periods import add_interval, period_containing, period_index
from tally_core.billing.prices import Price, Tier, TransformQuantity
from tally_core.billing.pricing import billed_quantity, line_detail, price_amount, to_minor

D = Decimal
PROPS = settings(max_examples=300, deadline=None)

# Decimal minor-unit amounts as Stripe takes them: 0 … 99,999,999, at most 12 decimal places.
unit_amounts = st.decimals(min_value=0, max_value=MAX_UNIT_AMOUNT, places=12, allow_nan=False, allow_infinity=False)
cents = st.integers(0, MAX_UNIT_AMOUNT).map(D)
maybe = lambda s: st.none() | s  # noqa: E731
quantities = st.integers(0, MAX_QUANTITY).map(D) | st.decimals(min_value=0, max_value=10**9, places=12,
                                                                 allow_nan=False, allow_infinity=False)


@st.composite
def tier_lists(draw) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**7), max_size=5)))
    return tuple(Tier(up, draw(maybe(unit_amounts)), draw(maybe(cents))) for up in [*bounds, None])


def tiered(mode: str, tiers: tuple[Tier, ...]) -> Price:
    return Price(id="price_p", currency="usd", product="prod_p", billing_scheme="tiered", tiers_mode=mode,
                 tiers=tiers)


def half_up(x: Decimal) -> int:
    return int(x.quantize(D(1), rounding=ROUND_HALF_UP))


def graduated_by_slices(tiers: tuple[Tier, ...], q: Decimal) -> Decimal:
    """Units in (lower, up_to] bill at that tier's unit amount; a tier with any unit adds its flat fee, and
    the first tier's flat fee is billed even at quantity 0 (reference §2.3)."""
    total, lower = D(0), D(0)
    with localcontext(prec=100):  # exact for these inputs: the default 28 digits would round
        for i, tier in enumerate(tiers):
            upper = q if tier.up_to is None else min(q, D(tier.up_to))
            units = max(D(0), upper - lower)
            if units > 0 or (i == 0 and q == 0):
                total += units * (tier.unit_amount_decimal or 0) + (tier.flat_amount_decimal or 0)
            if tier.up_to is None:
                break
            lower = D(tier.up_to)
    return total




@PROPS
@given(tiers=tier_lists(), q=quantities)
def test_graduated_is_the_sum_of_its_tier_slices_rounded_once(tiers, q):
    line = line_detail(tiered("graduated", tiers), q)
    assert line.amount_decimal == graduated_by_slices(tiers, q)
    assert sum((c.quantity for c in line.tiers), D(0)) == q
    # Rounded once, on the line: not the sum of per-tier roundings.
    assert isinstance(line.amount, int) and line.amount == half_up(line.amount_decimal)


@PROPS
@given(tiers=tier_lists(), a=quantities, b=quantities)
def test_graduated_never_charges_less_for_more(tiers, a, b):
    price = tiered("graduated", tiers)
    low, high = sorted((a, b))
    assert price_amount(price, low) <= price_amount(price, high)


@PROPS
@given(tiers=tier_lists(), q=quantities)
def test_volume_bills_the_whole_quantity_at_the_one_tier_that_holds_it(tiers, q):
    line = line_detail(tiered("volume", tiers), q)
    holder = next(t for t in tiers if t.up_to is None or q <= t.up_to)
    with localcontext(prec=100):
        expected = q * (holder.unit_amount_decimal or 0) + (holder.flat_amount_decimal or 0)
    assert line.amount_decimal == expected
    assert [c.quantity for c in line.tiers] == [q]
    assert line.amount == half_up(line.amount_decimal)


@PROPS
@given(unit=unit_amounts, q=quantities, divide_by=st.integers(1, 10**6), round_=st.sampled_from(["up", "down"]))
def test_transform_quantity_divides_then_rounds_the_quantity_not_the_amount(unit, q, divide_by, round_):
    price = Price(id="price_p", currency="usd", product="prod_p", unit_amount_decimal=unit,
                  transform_quantity=TransformQuantity(divide_by, round_))
    billed = billed_quantity(price, q)
    with localcontext(prec=100):
        expected = (q / divide_by).to_integral_value(rounding=ROUND_CEILING if round_ == "up" else ROUND_FLOOR)
        assert billed == expected and billed == billed.to_integral_value()
        assert billed * divide_by >= q if round_ == "up" else billed * divide_by <= q
        assert price_amount(price, q) == half_up(unit * billed)


@PROPS
@given(unit=unit_amounts, q=st.integers(-(10**9), 0))
def test_usage_below_zero_is_billed_as_zero(unit, q):
    price = Price(id="price_p", currency="usd", product="prod_p", unit_amount_decimal=unit)
    assert price_amount(price, q) == 0 and line_detail(price, q).quantity == 0


@PROPS
@given(x=st.decimals(min_value=-(10**18), max_value=10**18, places=12, allow_nan=False, allow_infinity=False))
@example(x=D("1.5")).via("the docs' 0.05¢ × 30")
@example(x=D("-2.5")).via("half away from zero")
@example(x=D("0.4999999999999")).via("just below a half")
def test_to_minor_rounds_half_away_from_zero_to_the_nearest_integer(x):
    n = to_minor(x)
    assert isinstance(n, int) and abs(D(n) - x) <= D("0.5")
    if abs(x - x.to_integral_value(rounding=ROUND_FLOOR)) == D("0.5"):
        assert abs(n) > abs(x)  # exactly half goes away from zero
    assert to_minor(-x) == -n


# Billing periods (what proration and usage windows are measured against): they tile time from the anchor.
anchors = st.integers(0, 4_102_444_800)  # 1970 … 2100
intervals = st.sampled_from([("day", 1), ("week", 1), ("month", 1), ("month", 3), ("year", 1), ("day", 30)])


@PROPS
@given(anchor=anchors, interval=intervals, ts=anchors, day=st.none() | st.integers(1, 31))
def test_billing_periods_tile_time_each_moment_in_exactly_one(anchor, interval, ts, day):
    name, count = interval
    start, end = period_containing(anchor, name, count, ts, day_of_month=day)
    assert start <= ts < end
    k = period_index(anchor, name, count, ts, day_of_month=day)
    assert add_interval(anchor, name, count, k, day_of_month=day) == start
    assert add_interval(anchor, name, count, k + 1, day_of_month=day) == end  # no gap, no overlap
    assert period_containing(anchor, name, count, end, day_of_month=day)[0] == end


@PROPS
@given(anchor=anchors, n=st.integers(-24, 240))
def test_monthly_boundaries_clamp_to_month_end_without_chaining(anchor, n):
    """Jan 31 → Feb 28/29 → Mar 31: each boundary is the anchor's day, clamped in its own month."""
    a = datetime.fromtimestamp(anchor, timezone.utc)
    b = datetime.fromtimestamp(add_interval(anchor, "month", 1, n), timezone.utc)
    assert (b.year * 12 + b.month) - (a.year * 12 + a.month) == n
    assert b.day == min(a.day, calendar.monthrange(b.year, b.month)[1])
    assert b.time() == a.time()
