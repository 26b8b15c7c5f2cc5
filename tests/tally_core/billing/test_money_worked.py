"""Money worked by hand: every pricing rule as a table, each row's number computed on paper beside it, in cents.

Prices are built the way the API builds them (`create_price` from Stripe form params, all strings). Rules from
reference §2 (tiers, transform_quantity, rounding), §3.3 / A.3 (anchors), §6.3 / §6.5 / A.5 (amounts).
Boundaries: `up_to` is inclusive ("the lower bound of a tier is the upper bound of the previous tier adding one"),
so each boundary is tested exactly at `up_to` and at `up_to + 1`.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal

import pytest

from tally_core.billing.commands import parse
from tally_core.billing.invoices import LineSpec, build_lines, draft, finalize
from tally_core.billing.periods import add_interval, next_period_end, period_containing
from tally_core.billing.prices import Price, create_price
from tally_core.billing.pricing import line_detail, price_amount
from tally_core.billing.subscriptions import create_subscription, roll_over

D = Decimal
CREATED = 1_700_000_000


def ts(iso: str) -> int:
    """'2028-01-31' or '2028-01-31T15:30:00' (UTC) → unix seconds."""
    return calendar.timegm(datetime.fromisoformat(iso).timetuple())


def price(currency: str = "usd", id: str = "price_money", **params) -> Price:
    return create_price({"currency": currency, "product": "prod_money", **params}, id=id, now=CREATED)


def tier(up_to: str, **amounts: str) -> dict:
    """One `tiers[n]` hash: up_to plus any of unit_amount, unit_amount_decimal, flat_amount, flat_amount_decimal."""
    return {"up_to": up_to, **amounts}


def tiered(mode: str, *tiers: dict) -> Price:
    return price(billing_scheme="tiered", tiers_mode=mode, tiers=list(tiers))


# ----------------------------------------------------------------------------------------------------------------
# Tier boundaries: graduated and volume on the same tiers, at 0, at each up_to and one past it.
# ----------------------------------------------------------------------------------------------------------------

# 1–10 at 100¢ + 500¢ flat; 11–50 at 80¢ + 300¢ flat; 51+ at 50¢, no flat.
STEPS = (tier("10", unit_amount="100", flat_amount="500"), tier("50", unit_amount="80", flat_amount="300"),
         tier("inf", unit_amount="50"))
# Docs' workaround "to bill 0 when there's no usage": an up_to=1 tier whose unit_amount is the fee, no flat_amount.
# 1 at 1000¢; 2–10 at 400¢ + 2000¢ flat; 11+ at 100¢ + 5000¢ flat.
WORKAROUND = (tier("1", unit_amount="1000"), tier("10", unit_amount="400", flat_amount="2000"),
              tier("inf", unit_amount="100", flat_amount="5000"))
# A flat-only first tier: "first 5 for 10 USD", then 150¢ each.
FLAT_FIRST = (tier("5", flat_amount="1000"), tier("inf", unit_amount="150"))
# Seed 000 with its optional 100 USD platform fee on the free tier: 0–1,000 at 0¢ + 10000¢ flat, 1,001+ at 4¢.
ALPACA_FEE = (tier("1000", unit_amount="0", flat_amount="10000"), tier("inf", unit_amount_decimal="4"))


@pytest.mark.parametrize(("tiers", "mode", "qty", "cents", "charged"), [
    # STEPS, graduated: each tier bills the units inside it, plus its flat fee if any unit falls in it.
    pytest.param(STEPS, "graduated", 0, 500, [0], id="steps-grad-0"),         # 0×100 + 500 first flat = 500
    pytest.param(STEPS, "graduated", 1, 600, [0], id="steps-grad-1"),         # 1×100 + 500 = 600
    pytest.param(STEPS, "graduated", 10, 1500, [0], id="steps-grad-10-at"),   # 10×100 + 500 = 1500; tier 2 untouched
    pytest.param(STEPS, "graduated", 11, 1880, [0, 1], id="steps-grad-11-past"),  # 1500 + 1×80 + 300 = 1880
    pytest.param(STEPS, "graduated", 50, 5000, [0, 1], id="steps-grad-50-at"),    # 1500 + 40×80 + 300 = 5000
    pytest.param(STEPS, "graduated", 51, 5050, [0, 1, 2], id="steps-grad-51-past"),  # 5000 + 1×50 = 5050
    pytest.param(STEPS, "graduated", 100, 7500, [0, 1, 2], id="steps-grad-100"),     # 5000 + 50×50 = 7500
    # STEPS, volume: the whole quantity at the one tier holding it, plus that tier's flat fee.
    pytest.param(STEPS, "volume", 0, 500, [0], id="steps-vol-0"),             # 0×100 + 500 = 500 (tier 1 holds 0)
    pytest.param(STEPS, "volume", 1, 600, [0], id="steps-vol-1"),             # 1×100 + 500 = 600
    pytest.param(STEPS, "volume", 10, 1500, [0], id="steps-vol-10-at"),       # 10×100 + 500 = 1500
    pytest.param(STEPS, "volume", 11, 1180, [1], id="steps-vol-11-past"),     # 11×80 + 300 = 1180 (cheaper than 10)
    pytest.param(STEPS, "volume", 50, 4300, [1], id="steps-vol-50-at"),       # 50×80 + 300 = 4300
    pytest.param(STEPS, "volume", 51, 2550, [2], id="steps-vol-51-past"),     # 51×50 = 2550, no flat on tier 3
    pytest.param(STEPS, "volume", 100, 5000, [2], id="steps-vol-100"),        # 100×50 = 5000
    # WORKAROUND: no first-tier flat_amount, so quantity 0 bills 0 in both modes (later tiers' flats don't count).
    pytest.param(WORKAROUND, "graduated", 0, 0, [0], id="workaround-grad-0"),     # 0×1000, no flat = 0
    pytest.param(WORKAROUND, "graduated", 1, 1000, [0], id="workaround-grad-1-at"),  # 1×1000 = 1000
    pytest.param(WORKAROUND, "graduated", 2, 3400, [0, 1], id="workaround-grad-2-past"),  # 1000 + 1×400 + 2000 = 3400
    pytest.param(WORKAROUND, "graduated", 10, 6600, [0, 1], id="workaround-grad-10-at"),  # 1000 + 9×400 + 2000 = 6600
    pytest.param(WORKAROUND, "graduated", 11, 11700, [0, 1, 2], id="workaround-grad-11-past"),  # 6600 + 100 + 5000
    pytest.param(WORKAROUND, "volume", 0, 0, [0], id="workaround-vol-0"),         # 0×1000, no flat = 0
    pytest.param(WORKAROUND, "volume", 1, 1000, [0], id="workaround-vol-1-at"),   # 1×1000 = 1000
    pytest.param(WORKAROUND, "volume", 2, 2800, [1], id="workaround-vol-2-past"),  # 2×400 + 2000 = 2800
    pytest.param(WORKAROUND, "volume", 10, 6000, [1], id="workaround-vol-10-at"),  # 10×400 + 2000 = 6000
    pytest.param(WORKAROUND, "volume", 11, 6100, [2], id="workaround-vol-11-past"),  # 11×100 + 5000 = 6100
    # FLAT_FIRST: a tier with only a flat amount.
    pytest.param(FLAT_FIRST, "graduated", 0, 1000, [0], id="flatfirst-grad-0"),     # first flat 1000 at quantity 0
    pytest.param(FLAT_FIRST, "graduated", 5, 1000, [0], id="flatfirst-grad-5-at"),  # 1000 flat, no unit amount
    pytest.param(FLAT_FIRST, "graduated", 6, 1150, [0, 1], id="flatfirst-grad-6-past"),  # 1000 + 1×150 = 1150
    pytest.param(FLAT_FIRST, "volume", 0, 1000, [0], id="flatfirst-vol-0"),         # tier 1 holds 0: 1000 flat
    pytest.param(FLAT_FIRST, "volume", 5, 1000, [0], id="flatfirst-vol-5-at"),      # 1000 flat
    pytest.param(FLAT_FIRST, "volume", 6, 900, [1], id="flatfirst-vol-6-past"),     # 6×150 = 900, tier 1's flat gone
    # ALPACA_FEE: seed 000's 1,000 free units with a 100 USD first-tier fee.
    pytest.param(ALPACA_FEE, "graduated", 0, 10000, [0], id="alpaca-grad-0"),        # first flat 10000 at 0
    pytest.param(ALPACA_FEE, "graduated", 1000, 10000, [0], id="alpaca-grad-1000-at"),  # 1000×0 + 10000 = 10000
    pytest.param(ALPACA_FEE, "graduated", 1001, 10004, [0, 1], id="alpaca-grad-1001-past"),  # 10000 + 1×4 = 10004
    pytest.param(ALPACA_FEE, "volume", 0, 10000, [0], id="alpaca-vol-0"),            # 0×0 + 10000 = 10000
    pytest.param(ALPACA_FEE, "volume", 1000, 10000, [0], id="alpaca-vol-1000-at"),   # 1000×0 + 10000 = 10000
    pytest.param(ALPACA_FEE, "volume", 1001, 4004, [1], id="alpaca-vol-1001-past"),  # 1001×4 = 4004, no fee
])
def test_tier_boundaries(tiers, mode, qty, cents, charged):
    # given a tiered price created from form params
    p = tiered(mode, *tiers)
    # when the line is priced
    detail = line_detail(p, qty)
    # then the amount matches the hand computation and only the expected tiers were charged
    assert (detail.amount, price_amount(p, qty)) == (cents, cents)
    assert [c.tier for c in detail.tiers] == charged


# ----------------------------------------------------------------------------------------------------------------
# Decimal unit amounts: exact math, then ONE half-up rounding per line (§2.2, A.1).
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("unit", "qty", "cents"), [
    pytest.param("0.05", 30, 2, id="docs-0.05x30"),            # 0.05 × 30 = 1.5 → 2 (docs)
    pytest.param("0.5", 1, 1, id="0.5x1-half-up"),             # 0.5 → 1 (half-even would give 0)
    pytest.param("2.5", 1, 3, id="2.5x1-half-up"),             # 2.5 → 3 (half-even would give 2)
    pytest.param("0.5", 3, 2, id="0.5x3-line-not-unit"),       # 1.5 → 2 (per unit: 1×3 = 3)
    pytest.param("1.5", 3, 5, id="1.5x3-line-not-unit"),       # 4.5 → 5 (per unit: 2×3 = 6)
    pytest.param("0.25", 2, 1, id="0.25x2"),                   # 0.5 → 1 (per unit: 0×2 = 0)
    pytest.param("0.25", 6, 2, id="0.25x6"),                   # 1.5 → 2 (per unit: 0)
    pytest.param("0.25", 5, 1, id="0.25x5"),                   # 1.25 → 1
    pytest.param("0.49", 1, 0, id="0.49-down"),                # 0.49 < 0.5 → 0
    pytest.param("0.125", 4, 1, id="0.125x4"),                 # 0.5 → 1
    pytest.param("0.125", 3, 0, id="0.125x3"),                 # 0.375 → 0
    pytest.param("1.005", 100, 101, id="1.005x100-no-float"),  # 100.5 → 101 (binary float gives 100.4999… → 100)
    pytest.param("12.345", 2, 25, id="12.345x2"),              # 24.69 → 25
    pytest.param("33.333333333333", 3, 100, id="thirds-12dp"),  # 99.999999999999 → 100
    pytest.param("0.000000000005", 10**11, 1, id="12dp-half"),  # 5e-12 × 1e11 = 0.5 → 1
    pytest.param("0.000000000005", 10**11 - 1, 0, id="12dp-just-below-half"),  # 0.499999999995 → 0
    pytest.param("0.5", D("2.5"), 1, id="decimal-usage"),      # 0.5 × 2.5 = 1.25 → 1
    pytest.param("0.5", D("3"), 2, id="decimal-usage-half"),   # 0.5 × 3 = 1.5 → 2
])
def test_unit_amount_decimal_rounds_half_up_once(unit, qty, cents):
    p = price(unit_amount_decimal=unit)
    detail = line_detail(p, qty)
    assert detail.amount_decimal == D(unit) * qty  # exact, nothing rounded before the line total
    assert detail.amount == cents


# Graduated 1–2 at 0.75¢, 3+ at 0.25¢. Volume the same tiers.
DEC_UNITS = (tier("2", unit_amount_decimal="0.75"), tier("inf", unit_amount_decimal="0.25"))
# 1–10 at 1¢ + 0.5¢ flat; 11+ at 0.5¢ + 0.25¢ flat.
DEC_FLATS = (tier("10", unit_amount="1", flat_amount_decimal="0.5"),
             tier("inf", unit_amount_decimal="0.5", flat_amount_decimal="0.25"))


@pytest.mark.parametrize(("tiers", "mode", "qty", "exact", "cents"), [
    pytest.param(DEC_UNITS, "graduated", 0, "0", 0, id="units-grad-0"),            # 0, no flat
    pytest.param(DEC_UNITS, "graduated", 1, "0.75", 1, id="units-grad-1"),         # 0.75 → 1
    pytest.param(DEC_UNITS, "graduated", 2, "1.5", 2, id="units-grad-2-at"),       # 2×0.75 = 1.5 → 2
    pytest.param(DEC_UNITS, "graduated", 3, "1.75", 2, id="units-grad-3-past"),    # 1.5 + 0.25 = 1.75 → 2
    # 1.5 + 2×0.25 = 2.0 → 2; rounding each tier would give round(1.5) + round(0.5) = 2 + 1 = 3.
    pytest.param(DEC_UNITS, "graduated", 4, "2.0", 2, id="units-grad-4-once-per-line"),
    pytest.param(DEC_UNITS, "graduated", 6, "2.5", 3, id="units-grad-6-half"),     # 1.5 + 4×0.25 = 2.5 → 3
    pytest.param(DEC_UNITS, "volume", 2, "1.5", 2, id="units-vol-2-at"),           # 2×0.75 = 1.5 → 2
    pytest.param(DEC_UNITS, "volume", 3, "0.75", 1, id="units-vol-3-past"),        # 3×0.25 = 0.75 → 1
    pytest.param(DEC_UNITS, "volume", 4, "1.0", 1, id="units-vol-4"),              # 4×0.25 = 1
    pytest.param(DEC_UNITS, "volume", 10, "2.5", 3, id="units-vol-10-half"),       # 10×0.25 = 2.5 → 3
    pytest.param(DEC_FLATS, "graduated", 0, "0.5", 1, id="flats-grad-0"),          # first flat 0.5 → 1
    pytest.param(DEC_FLATS, "graduated", 10, "10.5", 11, id="flats-grad-10-at"),   # 10×1 + 0.5 = 10.5 → 11
    # 10.5 + 1×0.5 + 0.25 = 11.25 → 11; rounding each tier would give 11 + round(0.75) = 12.
    pytest.param(DEC_FLATS, "graduated", 11, "11.25", 11, id="flats-grad-11-past"),
    pytest.param(DEC_FLATS, "graduated", 12, "11.75", 12, id="flats-grad-12"),     # 10.5 + 2×0.5 + 0.25 = 11.75 → 12
    pytest.param(DEC_FLATS, "volume", 0, "0.5", 1, id="flats-vol-0"),              # 0×1 + 0.5 = 0.5 → 1
    pytest.param(DEC_FLATS, "volume", 10, "10.5", 11, id="flats-vol-10-at"),       # 10×1 + 0.5 = 10.5 → 11
    pytest.param(DEC_FLATS, "volume", 11, "5.75", 6, id="flats-vol-11-past"),      # 11×0.5 + 0.25 = 5.75 → 6
    pytest.param(DEC_FLATS, "volume", 12, "6.25", 6, id="flats-vol-12"),           # 12×0.5 + 0.25 = 6.25 → 6
    pytest.param(DEC_FLATS, "volume", 13, "6.75", 7, id="flats-vol-13"),           # 13×0.5 + 0.25 = 6.75 → 7
])
def test_decimal_tiers_round_once_per_line(tiers, mode, qty, exact, cents):
    detail = line_detail(tiered(mode, *tiers), qty)
    assert (detail.amount_decimal, detail.amount) == (D(exact), cents)


HALF_A = price(id="price_half_a", unit_amount_decimal="0.5")
HALF_B = price(id="price_half_b", unit_amount_decimal="0.5")
THIRD = price(id="price_third", unit_amount_decimal="0.333333333333")


@pytest.mark.parametrize(("specs", "amounts", "subtotal"), [
    # Docs: "each [line] is rounded … before summing": 3×0.5 = 1.5 → 2 on each line; 2 + 2 = 4 (not round(3.0) = 3).
    pytest.param([(HALF_A, 3), (HALF_B, 3)], [2, 2], 4, id="two-half-lines"),
    # 1×0.5 = 0.5 → 1 and 1×0.5 → 1: 2 (summing first: round(1.0) = 1).
    pytest.param([(HALF_A, 1), (HALF_B, 1)], [1, 1], 2, id="two-tiny-lines"),
    # 1 × 0.333333333333 → 0 on each of two lines: 0 + 0 = 0 (summing first: 0.666666666666 → 1).
    pytest.param([(THIRD, 1), (THIRD, 1)], [0, 0], 0, id="two-third-lines-round-to-0"),
    # STEPS graduated 11 = 1880 (see above) + 0.5×5 = 2.5 → 3: 1883.
    pytest.param([(tiered("graduated", *STEPS), 11), (HALF_A, 5)], [1880, 3], 1883, id="tiered-plus-decimal"),
])
def test_invoice_rounds_each_line_then_sums(specs, amounts, subtotal):
    lines = build_lines(LineSpec(f"il_{i}", p, q, JAN1, FEB1) for i, (p, q) in enumerate(specs))
    inv = draft(id="in_r", customer="cus_money", currency="usd", billing_reason="manual", created=FEB1,
                period_start=JAN1, period_end=FEB1, lines=lines)
    assert ([line.amount for line in lines], inv.subtotal, inv.total) == (amounts, subtotal, subtotal)


# ----------------------------------------------------------------------------------------------------------------
# transform_quantity: ceil or floor of quantity / divide_by, then × unit amount (§2.4).
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("divide_by", "rnd", "unit", "qty", "billed", "cents"), [
    # 250¢ per pack of 10, any started pack (round up).
    pytest.param("10", "up", "250", 0, 0, 0, id="up-0"),              # ceil(0/10) = 0 → 0
    pytest.param("10", "up", "250", 1, 1, 250, id="up-1"),            # ceil(0.1) = 1 → 250
    pytest.param("10", "up", "250", 9, 1, 250, id="up-9"),            # ceil(0.9) = 1 → 250
    pytest.param("10", "up", "250", 10, 1, 250, id="up-10-exact"),    # 10/10 = 1 exactly → 250
    pytest.param("10", "up", "250", 11, 2, 500, id="up-11"),          # ceil(1.1) = 2 → 500
    pytest.param("10", "up", "250", 20, 2, 500, id="up-20-exact"),    # 20/10 = 2 → 500
    pytest.param("10", "up", "250", 21, 3, 750, id="up-21"),          # ceil(2.1) = 3 → 750
    pytest.param("10", "up", "250", D("10.0001"), 2, 500, id="up-decimal-usage"),  # ceil(1.00001) = 2 → 500
    # 250¢ per full pack of 10 (round down).
    pytest.param("10", "down", "250", 0, 0, 0, id="down-0"),          # floor(0/10) = 0 → 0
    pytest.param("10", "down", "250", 1, 0, 0, id="down-1"),          # floor(0.1) = 0 → 0
    pytest.param("10", "down", "250", 9, 0, 0, id="down-9"),          # floor(0.9) = 0 → 0
    pytest.param("10", "down", "250", 10, 1, 250, id="down-10-exact"),  # floor(1) = 1 → 250
    pytest.param("10", "down", "250", 11, 1, 250, id="down-11"),      # floor(1.1) = 1 → 250
    pytest.param("10", "down", "250", 19, 1, 250, id="down-19"),      # floor(1.9) = 1 → 250
    pytest.param("10", "down", "250", 20, 2, 500, id="down-20-exact"),  # floor(2) = 2 → 500
    pytest.param("10", "down", "250", D("9.9999"), 0, 0, id="down-decimal-usage"),  # floor(0.99999) = 0 → 0
    # divide_by 1 is the identity either way.
    pytest.param("1", "up", "250", 7, 7, 1750, id="by-1-up"),         # 7/1 = 7 → 7×250 = 1750
    pytest.param("1", "down", "250", 7, 7, 1750, id="by-1-down"),     # 7/1 = 7 → 1750
    # Transform first, then the decimal unit amount, then one half-up rounding.
    pytest.param("3", "up", "0.5", 7, 3, 2, id="up-then-half-cent"),      # ceil(7/3) = 3 → 3×0.5 = 1.5 → 2
    pytest.param("3", "down", "0.5", 7, 2, 1, id="down-then-whole-cent"),  # floor(7/3) = 2 → 2×0.5 = 1.0 → 1
    pytest.param("3", "up", "0.5", 3, 1, 1, id="exact-then-half-cent"),    # 3/3 = 1 → 0.5 → 1
    pytest.param("1000", "down", "0.25", 2999, 2, 1, id="down-quarter-cent"),  # floor(2.999) = 2 → 0.5 → 1
    pytest.param("1000", "down", "0.25", 5000, 5, 1, id="down-1.25"),         # floor(5) = 5 → 1.25 → 1
    # Negative metered usage is billed as 0 before the transform: ceil(0/10) = 0 (A.2).
    pytest.param("10", "up", "250", -5, 0, 0, id="up-negative-usage"),
])
def test_transform_quantity_both_ways(divide_by, rnd, unit, qty, billed, cents):
    p = price(unit_amount_decimal=unit, transform_quantity={"divide_by": divide_by, "round": rnd})
    detail = line_detail(p, qty)
    assert (detail.billed_quantity, detail.amount) == (billed, cents)


# ----------------------------------------------------------------------------------------------------------------
# Leap years and month ends (§3.3, A.3): boundaries from the anchor, day = min(anchor day, days in month).
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("anchor", "interval", "count", "dom", "boundaries"), [
    # Jan 31 anchor: min(31, 29) = Feb 29 in 2028; then min(31, 31) = Mar 31.
    pytest.param("2028-01-31", "month", 1, None, ["2028-02-29", "2028-03-31", "2028-04-30"], id="jan31-2028-leap"),
    # Jan 31 anchor: min(31, 28) = Feb 28 in 2027; then Mar 31 (not Mar 28: never chained).
    pytest.param("2027-01-31", "month", 1, None, ["2027-02-28", "2027-03-31", "2027-04-30"], id="jan31-2027-common"),
    # Anchor time of day is kept: Feb 28 2027 23:59:59, Mar 31 23:59:59.
    pytest.param("2027-01-31T23:59:59", "month", 1, None, ["2027-02-28T23:59:59", "2027-03-31T23:59:59"],
                 id="jan31-2027-end-of-day"),
    # Feb 29 anchor is "day 29", not "last day": Mar 29, Apr 29.
    pytest.param("2028-02-29", "month", 1, None, ["2028-03-29", "2028-04-29"], id="feb29-monthly-day-29"),
    # Feb 28 2027 anchor is "day 28": Mar 28, not Mar 31 …
    pytest.param("2027-02-28", "month", 1, None, ["2027-03-28", "2027-04-28"], id="feb28-monthly-day-28"),
    # … unless billing_cycle_anchor_config[day_of_month]=31: min(31, 31) = Mar 31, min(31, 30) = Apr 30.
    pytest.param("2027-02-28", "month", 1, 31, ["2027-03-31", "2027-04-30", "2027-05-31"], id="feb28-day-of-month-31"),
    # Yearly from Feb 29 2028: Feb 28 in 2029/2030/2031, Feb 29 again in 2032.
    pytest.param("2028-02-29", "year", 1, None, ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"],
                 id="feb29-yearly"),
    # Yearly from Feb 28 2027 stays on the 28th, also in leap 2028 (not Feb 29).
    pytest.param("2027-02-28", "year", 1, None, ["2028-02-28", "2029-02-28"], id="feb28-yearly-stays-28"),
    # 2-month from Dec 31 2027: Feb 29 2028 (leap), Apr 30, Jun 30, Aug 31, Oct 31, Dec 31.
    pytest.param("2027-12-31", "month", 2, None,
                 ["2028-02-29", "2028-04-30", "2028-06-30", "2028-08-31", "2028-10-31", "2028-12-31"],
                 id="bimonthly-dec31-leap"),
    # 2-month from Dec 31 2026: Feb 28 2027 (common), Apr 30, Jun 30.
    pytest.param("2026-12-31", "month", 2, None, ["2027-02-28", "2027-04-30", "2027-06-30"], id="bimonthly-dec31"),
    # 2-month from Jan 31 2028: Mar 31, May 31, Jul 31, Sep 30 and Nov 30 (clamped), back to Jan 31 2029.
    pytest.param("2028-01-31", "month", 2, None,
                 ["2028-03-31", "2028-05-31", "2028-07-31", "2028-09-30", "2028-11-30", "2029-01-31"],
                 id="bimonthly-jan31"),
    # 2-month from Aug 31 2027 (day_of_month=31 example, §3.3): Oct 31, Dec 31, Feb 29 2028, Apr 30.
    pytest.param("2027-08-31", "month", 2, None, ["2027-10-31", "2027-12-31", "2028-02-29", "2028-04-30"],
                 id="bimonthly-aug31-through-leap-feb"),
])
def test_month_end_and_leap_boundaries(anchor, interval, count, dom, boundaries):
    a = ts(anchor)
    got = [add_interval(a, interval, count, k, day_of_month=dom) for k in range(1, len(boundaries) + 1)]
    assert got == [ts(b) for b in boundaries]


DAY = 86_400


@pytest.mark.parametrize(("anchor", "interval", "count", "at", "start", "end", "days"), [
    # Jan 31 2028 anchor, leap Feb: [Jan 31, Feb 29) is 29 days, [Feb 29, Mar 31) is 31 days.
    pytest.param("2028-01-31", "month", 1, "2028-02-15", "2028-01-31", "2028-02-29", 29, id="jan31-2028-first"),
    pytest.param("2028-01-31", "month", 1, "2028-02-29", "2028-02-29", "2028-03-31", 31, id="jan31-2028-on-leap-day"),
    pytest.param("2028-01-31", "month", 1, "2028-02-28T23:59:59", "2028-01-31", "2028-02-29", 29,
                 id="jan31-2028-last-second-before-leap-day"),
    # Jan 31 2027 anchor, common Feb: [Jan 31, Feb 28) is 28 days, [Feb 28, Mar 31) is 31 days.
    pytest.param("2027-01-31", "month", 1, "2027-02-27", "2027-01-31", "2027-02-28", 28, id="jan31-2027-first"),
    pytest.param("2027-01-31", "month", 1, "2027-03-01", "2027-02-28", "2027-03-31", 31, id="jan31-2027-second"),
    # Feb 29 2028 yearly: [Feb 29 2028, Feb 28 2029) is 365 days; [Feb 28 2031, Feb 29 2032) is 366.
    pytest.param("2028-02-29", "year", 1, "2029-02-27", "2028-02-29", "2029-02-28", 365, id="feb29-yearly-first"),
    pytest.param("2028-02-29", "year", 1, "2029-02-28", "2029-02-28", "2030-02-28", 365, id="feb29-yearly-at-boundary"),
    pytest.param("2028-02-29", "year", 1, "2031-12-01", "2031-02-28", "2032-02-29", 366, id="feb29-yearly-into-leap"),
    # 2-month from Dec 31 2027: [Dec 31, Feb 29) = 31 + 29 = 60 days; [Feb 29, Apr 30) = 31 + 30 = 61 days.
    pytest.param("2027-12-31", "month", 2, "2028-01-15", "2027-12-31", "2028-02-29", 60, id="bimonthly-first"),
    pytest.param("2027-12-31", "month", 2, "2028-04-29", "2028-02-29", "2028-04-30", 61, id="bimonthly-second"),
])
def test_period_lengths_across_month_ends(anchor, interval, count, at, start, end, days):
    bounds = period_containing(ts(anchor), interval, count, ts(at))
    assert bounds == (ts(start), ts(end))
    assert (bounds[1] - bounds[0]) // DAY == days
    assert next_period_end(ts(anchor), interval, count, ts(at)) == ts(end)


MONTHLY = price(id="price_monthly", unit_amount="1000", recurring={"interval": "month"})
BIMONTHLY = price(id="price_bimonthly", unit_amount="1000", recurring={"interval": "month", "interval_count": "2"})
YEARLY = price(id="price_yearly", unit_amount="10000", recurring={"interval": "year"})
SUB_PRICES = {p.id: p for p in (MONTHLY, BIMONTHLY, YEARLY)}


@pytest.mark.parametrize(("price_id", "created", "extra", "ends"), [
    # Created Jan 31 2027: Feb 28 (min(31, 28)), then back to Mar 31, Apr 30.
    pytest.param("price_monthly", "2027-01-31", {}, ["2027-02-28", "2027-03-31", "2027-04-30"], id="jan31-2027"),
    # Created Jan 31 2028 15:30: Feb 29 (leap) keeping 15:30, then Mar 31.
    pytest.param("price_monthly", "2028-01-31T15:30:00", {}, ["2028-02-29T15:30:00", "2028-03-31T15:30:00"],
                 id="jan31-2028-time-kept"),
    # Future anchor Jan 31 2028 from Jan 10: first period ends at the anchor, then Feb 29, Mar 31.
    pytest.param("price_monthly", "2028-01-10", {"billing_cycle_anchor": str(ts("2028-01-31"))},
                 ["2028-01-31", "2028-02-29", "2028-03-31"], id="future-anchor-jan31"),
    # day_of_month=31 created Feb 15 2027: first (short) period to Feb 28 = min(31, 28), then Mar 31, Apr 30.
    pytest.param("price_monthly", "2027-02-15", {"billing_cycle_anchor_config": {"day_of_month": "31"}},
                 ["2027-02-28", "2027-03-31", "2027-04-30"], id="day-of-month-31"),
    # Yearly created Feb 29 2028: Feb 28 2029, 2030, 2031, then Feb 29 2032.
    pytest.param("price_yearly", "2028-02-29", {}, ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"],
                 id="yearly-feb29"),
    # Every 2 months from Dec 31 2027: Feb 29 2028, Apr 30, Jun 30, Aug 31.
    pytest.param("price_bimonthly", "2027-12-31", {}, ["2028-02-29", "2028-04-30", "2028-06-30", "2028-08-31"],
                 id="bimonthly-dec31-2027"),
    # Every 2 months from Dec 31 2026: Feb 28 2027, Apr 30, Jun 30.
    pytest.param("price_bimonthly", "2026-12-31", {}, ["2027-02-28", "2027-04-30", "2027-06-30"],
                 id="bimonthly-dec31-2026"),
    # §3.3: 2-month, created in Feb with day_of_month=31 → a short period to Feb 29 2028, then Apr 30, Jun 30, Aug 31.
    pytest.param("price_bimonthly", "2028-02-15", {"billing_cycle_anchor_config": {"day_of_month": "31"}},
                 ["2028-02-29", "2028-04-30", "2028-06-30", "2028-08-31"], id="bimonthly-day-of-month-31"),
])
def test_subscription_periods_roll_over_month_ends(price_id, created, extra, ends):
    # given a subscription created at `created`
    params = parse("subscription.create", {"customer": "cus_money", "items": [{"price": price_id}], **extra},
                   object_id="sub_money", account="acct_money", now=ts(created))
    sub = create_subscription(params, id="sub_money", customer="cus_money", prices=SUB_PRICES,
                              item_ids=["si_money"], now=ts(created))
    assert sub.current_period_start == ts(created)
    # when it rolls over period after period
    got = []
    for _ in ends:
        got.append(sub.current_period_end)
        nxt = roll_over(sub)
        assert nxt.current_period_start == sub.current_period_end  # periods are contiguous
        sub = nxt
    # then each period ends on the anchored, month-end-clamped boundary
    assert got == [ts(e) for e in ends]


# ----------------------------------------------------------------------------------------------------------------
# Invoice amounts against the customer balance (§4.7, §6.3, §6.5, A.5): credit < 0, debt > 0.
# x = total + balance; amount_due = max(0, x); ending_balance = min(0, x); 0 < due < minimum → carried, paid.
# ----------------------------------------------------------------------------------------------------------------

JAN1, FEB1, MAR1 = ts("2025-01-01"), ts("2025-02-01"), ts("2025-03-01")
# The invoice under test: STEPS graduated at 11 = 1880 + 0.5¢ × 3 = 1.5 → 2; total 1882.
STEPS_GRAD = tiered("graduated", *STEPS)
CYCLE = [LineSpec("il_steps", STEPS_GRAD, 11, JAN1, FEB1), LineSpec("il_half", HALF_A, 3, FEB1, MAR1)]
# A downgrade credit (precomputed proration, A.4) of −2000 on top: 1882 − 2000 = −118.
WITH_CREDIT = CYCLE + [LineSpec("il_credit", HALF_B, 1, JAN1, FEB1, amount=-2000, proration=True)]


def cents_line(currency: str, cents: int) -> list[LineSpec]:
    """One line worth exactly `cents`: 1 minor unit × cents."""
    unit = price(currency=currency, id=f"price_{currency}_1", unit_amount="1")
    return [LineSpec(f"il_{currency}", unit, cents, FEB1, MAR1)]


@pytest.mark.parametrize(("currency", "specs", "balance", "total", "due", "ending", "too_small", "status"), [
    pytest.param("usd", CYCLE, 0, 1882, 1882, 0, 0, "open", id="no-balance"),             # x = 1882
    pytest.param("usd", CYCLE, -500, 1882, 1382, 0, 0, "open", id="credit-part"),         # 1882 − 500 = 1382
    pytest.param("usd", CYCLE, -1882, 1882, 0, 0, 0, "paid", id="credit-exact"),          # 1882 − 1882 = 0 → paid
    pytest.param("usd", CYCLE, -2000, 1882, 0, -118, 0, "paid", id="credit-left-over"),   # 1882 − 2000 = −118 credit
    pytest.param("usd", CYCLE, 118, 1882, 2000, 0, 0, "open", id="debt-added"),           # 1882 + 118 = 2000
    pytest.param("usd", CYCLE, -1832, 1882, 50, 0, 0, "open", id="credit-leaves-50"),     # 1882 − 1832 = 50 = minimum
    pytest.param("usd", CYCLE, -1833, 1882, 0, 49, 49, "paid", id="credit-leaves-49"),    # 49 < 50 → carried as debt
    pytest.param("usd", CYCLE, -1850, 1882, 0, 32, 32, "paid", id="credit-leaves-32"),    # 32 < 50 → carried
    pytest.param("usd", WITH_CREDIT, 0, -118, 0, -118, 0, "paid", id="negative-total"),   # x = −118 → credit 118
    pytest.param("usd", WITH_CREDIT, 100, -118, 0, -18, 0, "paid", id="negative-total-vs-debt"),  # −118 + 100 = −18
    pytest.param("usd", WITH_CREDIT, 168, -118, 50, 0, 0, "open", id="negative-total-debt-50"),   # −118 + 168 = 50
    pytest.param("usd", WITH_CREDIT, -100, -118, 0, -218, 0, "paid", id="negative-total-more-credit"),  # −118 − 100
    # USD 0.50 minimum (§6.5) on tiny invoices.
    pytest.param("usd", cents_line("usd", 49), 0, 49, 0, 49, 49, "paid", id="usd-49-too-small"),  # 0 < 49 < 50
    pytest.param("usd", cents_line("usd", 50), 0, 50, 50, 0, 0, "open", id="usd-50-charged"),     # 50 ≥ 50
    pytest.param("usd", cents_line("usd", 51), 0, 51, 51, 0, 0, "open", id="usd-51-charged"),     # 51 ≥ 50
    pytest.param("usd", cents_line("usd", 1), 0, 1, 0, 1, 1, "paid", id="usd-1-too-small"),       # 0 < 1 < 50
    pytest.param("usd", cents_line("usd", 0), 0, 0, 0, 0, 0, "paid", id="usd-0-not-too-small"),   # 0 is free, not small
    pytest.param("usd", cents_line("usd", 20), 30, 20, 50, 0, 0, "open", id="usd-20-plus-debt-30"),  # 20 + 30 = 50
    pytest.param("usd", cents_line("usd", 0), 49, 0, 0, 49, 49, "paid", id="usd-debt-49-carried-again"),  # 0 + 49 < 50
    pytest.param("usd", cents_line("usd", 100), -60, 100, 0, 40, 40, "paid", id="usd-credit-leaves-40"),  # 100−60 = 40
    pytest.param("usd", cents_line("usd", 100), -101, 100, 0, -1, 0, "paid", id="usd-credit-leaves-minus-1"),  # −1
    # Other currencies' minimums: GBP 0.30, EUR 0.50, JPY ¥50 (zero-decimal).
    pytest.param("gbp", cents_line("gbp", 29), 0, 29, 0, 29, 29, "paid", id="gbp-29-too-small"),  # 29 < 30
    pytest.param("gbp", cents_line("gbp", 30), 0, 30, 30, 0, 0, "open", id="gbp-30-charged"),     # 30 ≥ 30
    pytest.param("eur", cents_line("eur", 49), 0, 49, 0, 49, 49, "paid", id="eur-49-too-small"),  # 49 < 50
    pytest.param("jpy", cents_line("jpy", 49), 0, 49, 0, 49, 49, "paid", id="jpy-49-too-small"),  # ¥49 < ¥50
    pytest.param("jpy", cents_line("jpy", 50), 0, 50, 50, 0, 0, "open", id="jpy-50-charged"),     # ¥50 ≥ ¥50
])
def test_customer_balance_and_minimum(currency, specs, balance, total, due, ending, too_small, status):
    # given a draft with hand-priced lines and the customer's balance
    d = draft(id="in_money", customer="cus_money", subscription="sub_money", currency=currency,
              billing_reason="subscription_cycle", created=FEB1, period_start=JAN1, period_end=FEB1,
              lines=build_lines(specs), customer_balance=balance)
    assert (d.total, d.starting_balance, d.ending_balance) == (total, balance, None)
    # when it is finalized
    inv, new_balance = finalize(d, customer_balance=balance, now=FEB1)
    # then amount_due, ending_balance and the status follow x = total + balance and the minimum rule
    assert (inv.amount_due, inv.amount_remaining, inv.ending_balance, inv.too_small_amount, inv.status) == (
        due, due, ending, too_small, status)
    assert new_balance == ending
    # and the ledger adds up: old balance + applied_to_invoice + invoice_too_small = new balance
    assert balance + inv.applied_balance + inv.too_small_amount == new_balance


def test_too_small_amount_is_billed_on_the_next_invoice():
    # given a 30¢ invoice: below the USD 50¢ minimum, so nothing is charged and 30 is carried as debt
    first, balance = finalize(draft(id="in_1", customer="cus_money", currency="usd", billing_reason="manual",
                                    created=JAN1, period_start=JAN1, period_end=JAN1,
                                    lines=build_lines(cents_line("usd", 30))), customer_balance=0, now=JAN1)
    assert (first.status, first.amount_due, balance) == ("paid", 0, 30)
    # when the next cycle invoice (1882) is finalized against that balance
    second, balance = finalize(draft(id="in_2", customer="cus_money", currency="usd",
                                     billing_reason="subscription_cycle", created=FEB1, period_start=JAN1,
                                     period_end=FEB1, lines=build_lines(CYCLE)), customer_balance=balance, now=FEB1)
    # then the 30 is added: 1882 + 30 = 1912 due, balance back to 0
    assert (second.starting_balance, second.amount_due, second.ending_balance, balance) == (30, 1912, 0, 0)
