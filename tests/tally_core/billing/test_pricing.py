"""Line amounts (reference A.2): every expected number is worked by hand beside its case, in cents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tally_core.billing.prices import Price, Tier, TransformQuantity
from tally_core.billing.pricing import billed_quantity, line_detail, price_amount, to_minor

D = Decimal


def per_unit(unit: str, divide_by: int | None = None, round: str = "up") -> Price:
    tq = TransformQuantity(divide_by, round) if divide_by else None
    return Price(id="price_t", currency="usd", product="prod_t", unit_amount_decimal=D(unit), transform_quantity=tq)


def tiered(mode: str, *tiers: tuple) -> Price:
    """tiers as (up_to | None, unit | None, flat | None) with amounts as strings of cents."""
    built = tuple(Tier(up, D(u) if u is not None else None, D(f) if f is not None else None) for up, u, f in tiers)
    return Price(id="price_t", currency="usd", product="prod_t", billing_scheme="tiered", tiers_mode=mode, tiers=built)


# Docs' Tiers A: 7 / 6.50 / 6 USD for 1–5 / 6–10 / 11+ (reference §2.3).
TIERS_A = ((5, "700", None), (10, "650", None), (None, "600", None))
# Docs' Tiers B: up_to 5/10/15/20/inf at 5/4/3/2/1 USD, optionally with flat 10/20/30/40/50 USD.
TIERS_B = ((5, "500", None), (10, "400", None), (15, "300", None), (20, "200", None), (None, "100", None))
TIERS_B_FLAT = ((5, "500", "1000"), (10, "400", "2000"), (15, "300", "3000"), (20, "200", "4000"), (None, "100", "5000"))
# Seed 000 (Alpaca AI): units 0–1,000 at 0 USD, 1,001+ at 0.04 USD = 4¢ each, graduated.
ALPACA = ((1000, "0", None), (None, "4", None))
ALPACA_FLAT = ((1000, "0", "10000"), (None, "4", None))  # the optional 100 USD flat fee on the first row


@pytest.mark.parametrize(("exact", "cents"), [
    pytest.param("1.5", 2, id="half-up-0.05x30"),           # 0.05¢ × 30 = 1.5¢ → 2¢ (docs)
    pytest.param("540.956", 541, id="proration-debit"),      # .956 ≥ .5 → up
    pytest.param("166.346", 166, id="proration-credit"),     # .346 < .5 → down
    pytest.param("666.67", 667, id="two-thirds"),            # .67 → up
    pytest.param("333.33", 333, id="one-third"),             # .33 → down
    pytest.param("22.5", 23, id="tax-0.225-usd"),            # exactly .5 → away from zero
    pytest.param("0.4999999999999", 0, id="just-below-half"),  # < .5 → 0
    pytest.param("-2.5", -3, id="negative-half-away-from-zero"),  # ROUND_HALF_UP is away from zero
    pytest.param("7", 7, id="whole"),                        # no rounding needed
])
def test_to_minor_rounds_half_up(exact, cents):
    assert to_minor(D(exact)) == cents


@pytest.mark.parametrize(("qty", "cents"), [
    pytest.param(1, 500, id="1"),      # 1 × 500¢ = 500¢ (5 USD)
    pytest.param(5, 2500, id="5"),     # 5 × 500¢ = 2500¢
    pytest.param(6, 3000, id="6"),     # 6 × 500¢ = 3000¢
    pytest.param(20, 10000, id="20"),  # 20 × 500¢ = 10000¢
    pytest.param(25, 12500, id="25"),  # 25 × 500¢ = 12500¢
    pytest.param(0, 0, id="0"),        # 0 × 500¢ = 0¢
])
def test_per_unit_docs_table(qty, cents):
    assert price_amount(per_unit("500"), qty) == cents


@pytest.mark.parametrize(("unit", "qty", "cents"), [
    pytest.param("0.05", 30, 2, id="0.05x30=1.5->2"),          # docs: 0.05 × 30 = 1.5 → 2¢
    pytest.param("0.05", 29, 1, id="0.05x29=1.45->1"),         # 1.45 < 1.5 → 1¢
    pytest.param("0.05", 10, 1, id="0.05x10=0.5->1"),          # exactly half → up
    pytest.param("0.05", 9, 0, id="0.05x9=0.45->0"),           # 0.45 → 0¢
    pytest.param("0.1", 100_005, 10001, id="0.1x100005"),      # 10000.5 → 10001¢
    pytest.param("0.000000000001", 10**15, 1000, id="12-places-exact"),  # 1e-12 × 1e15 = 1000¢, no float drift
    pytest.param("4", D("2.5"), 10, id="decimal-usage"),       # 4¢ × 2.5 units = 10¢
    pytest.param("0.333333333333", 3, 1, id="thirds"),         # 0.999999999999 → 1¢
])
def test_unit_amount_decimal_rounds_once_per_line(unit, qty, cents):
    assert price_amount(per_unit(unit), qty) == cents


@pytest.mark.parametrize(("divide_by", "rnd", "unit", "qty", "cents"), [
    # Seed 001 table: 10 USD per 5 users (or part of 5), round up.
    pytest.param(5, "up", "1000", 1, 1000, id="seats-1"),    # ceil(1/5)=1 × 1000¢ = 1000¢
    pytest.param(5, "up", "1000", 3, 1000, id="seats-3"),    # ceil(3/5)=1 → 1000¢
    pytest.param(5, "up", "1000", 5, 1000, id="seats-5"),    # ceil(5/5)=1 → 1000¢
    pytest.param(5, "up", "1000", 6, 2000, id="seats-6"),    # ceil(6/5)=2 → 2000¢
    pytest.param(5, "up", "1000", 7, 2000, id="seats-7"),    # ceil(7/5)=2 → 2000¢
    pytest.param(5, "up", "1000", 0, 0, id="seats-0"),       # ceil(0/5)=0 → 0¢
    # Car rental, minutes billed per started hour at 10 USD: 150 min → ceil(2.5)=3 → 3000¢ (docs).
    pytest.param(60, "up", "1000", 150, 3000, id="minutes-150"),
    # Seed 001 emails: 0.10 USD per *full* 1,000 emails, round down.
    pytest.param(1000, "down", "10", 999, 0, id="emails-999"),      # floor(0.999)=0 → 0¢
    pytest.param(1000, "down", "10", 1000, 10, id="emails-1000"),   # floor(1)=1 → 10¢
    pytest.param(1000, "down", "10", 2999, 20, id="emails-2999"),   # floor(2.999)=2 → 20¢
    # Dashboard package pricing: 25 USD per 5 units, 8 units → ceil(1.6)=2 → 5000¢.
    pytest.param(5, "up", "2500", 8, 5000, id="package-8"),
    # Transform applies to the quantity before the unit amount: ceil(10.5/5)=3 × 0.5¢ = 1.5 → 2¢.
    pytest.param(5, "up", "0.5", D("10.5"), 2, id="decimal-usage-then-round-money"),
    pytest.param(5, "down", "0.5", D("10.5"), 1, id="decimal-usage-down"),  # floor(2.1)=2 × 0.5¢ = 1¢
])
def test_transform_quantity(divide_by, rnd, unit, qty, cents):
    assert price_amount(per_unit(unit, divide_by, rnd), qty) == cents


@pytest.mark.parametrize(("qty", "cents"), [
    pytest.param(1, 700, id="1"),        # 1 × 700¢
    pytest.param(5, 3500, id="5"),       # 5 × 700¢ = 3500¢ (up_to 5 is inclusive)
    pytest.param(6, 3900, id="6"),       # whole 6 at tier 2: 6 × 650¢ = 3900¢
    pytest.param(10, 6500, id="10"),     # 10 × 650¢ = 6500¢
    pytest.param(11, 6600, id="11"),     # 11 × 600¢ = 6600¢
    pytest.param(20, 12000, id="20"),    # 20 × 600¢ = 12000¢
    pytest.param(25, 15000, id="25"),    # 25 × 600¢ = 15000¢
])
def test_volume_docs_tiers_a(qty, cents):
    assert price_amount(tiered("volume", *TIERS_A), qty) == cents


@pytest.mark.parametrize(("qty", "cents"), [
    pytest.param(5, 3500, id="5-at-up_to"),       # 5 × 700¢ = 3500¢
    pytest.param(6, 4150, id="6-one-past"),       # 3500 + 1 × 650 = 4150¢
    pytest.param(10, 6750, id="10-at-up_to"),     # 3500 + 5 × 650 = 6750¢
    pytest.param(11, 7350, id="11-one-past"),     # 6750 + 1 × 600 = 7350¢
])
def test_graduated_docs_tiers_a(qty, cents):
    assert price_amount(tiered("graduated", *TIERS_A), qty) == cents


@pytest.mark.parametrize(("qty", "cents"), [
    pytest.param(1, 500, id="1"),           # 1 × 500¢
    pytest.param(5, 2500, id="5-at-up_to"),  # 5 × 500¢ = 2500¢
    pytest.param(6, 2900, id="6-one-past"),  # 2500 + 1 × 400 = 2900¢ (docs: 29 USD)
    pytest.param(10, 4500, id="10"),         # 2500 + 5 × 400 = 4500¢
    pytest.param(11, 4800, id="11"),         # 4500 + 1 × 300 = 4800¢
    pytest.param(20, 7000, id="20"),         # 2500 + 2000 + 1500 + 1000 = 7000¢ (docs: 70 USD)
    pytest.param(25, 7500, id="25"),         # 7000 + 5 × 100 = 7500¢ (docs: 75 USD)
])
def test_graduated_docs_tiers_b(qty, cents):
    assert price_amount(tiered("graduated", *TIERS_B), qty) == cents


@pytest.mark.parametrize(("mode", "qty", "cents"), [
    pytest.param("volume", 12, 6600, id="volume-12"),         # 12 × 300 + 3000 flat = 6600¢ (docs: 66 USD)
    # 5×500+1000 + 5×400+2000 + 2×300+3000 = 3500 + 4000 + 3600 = 11100¢ (docs: 111 USD)
    pytest.param("graduated", 12, 11100, id="graduated-12"),
    pytest.param("volume", 0, 1000, id="volume-0-first-flat"),        # docs: "10 USD regardless of tiers_mode"
    pytest.param("graduated", 0, 1000, id="graduated-0-first-flat"),  # first tier's flat fee at quantity 0
    pytest.param("graduated", 5, 3500, id="graduated-5-at-up_to"),    # 5×500 + 1000 = 3500¢; tier 2 untouched, no flat
    pytest.param("graduated", 6, 5900, id="graduated-6-one-past"),    # 3500 + 1×400 + 2000 = 5900¢
    pytest.param("volume", 5, 3500, id="volume-5-at-up_to"),          # 5×500 + 1000 = 3500¢
    pytest.param("volume", 6, 4400, id="volume-6-one-past"),          # 6×400 + 2000 = 4400¢
])
def test_flat_fees(mode, qty, cents):
    assert price_amount(tiered(mode, *TIERS_B_FLAT), qty) == cents


@pytest.mark.parametrize(("tiers", "qty", "cents"), [
    pytest.param(ALPACA, 0, 0, id="0"),                # nothing used, free tier has no flat fee → 0¢
    pytest.param(ALPACA, 1000, 0, id="1000-at-up_to"),  # all 1,000 free → 0¢
    pytest.param(ALPACA, 1001, 4, id="1001-one-past"),  # 1000 free + 1 × 4¢ = 4¢
    pytest.param(ALPACA, 1500, 2000, id="1500"),        # 1000 free + 500 × 4¢ = 2000¢
    pytest.param(ALPACA, 1_000_000, 3_996_000, id="1M"),  # 999,000 × 4¢ = 3,996,000¢
    pytest.param(ALPACA_FLAT, 0, 10000, id="flat-0"),      # first-tier flat 100 USD billed even at 0
    pytest.param(ALPACA_FLAT, 1500, 12000, id="flat-1500"),  # 10000 + 500 × 4¢ = 12000¢
])
def test_seed_000_alpaca_graduated(tiers, qty, cents):
    assert price_amount(tiered("graduated", *tiers), qty) == cents


@pytest.mark.parametrize(("qty", "cents"), [
    pytest.param(100_000, 0, id="100k-free"),          # all within the 0.00 tier
    pytest.param(100_001, 0, id="100001"),             # 1 × 0.1¢ = 0.1 → 0¢
    pytest.param(100_005, 1, id="100005-half-up"),     # 5 × 0.1¢ = 0.5 → 1¢
    pytest.param(150_000, 5000, id="150k"),            # 50,000 × 0.1¢ = 5000¢ (50 USD)
])
def test_usage_overage_model(qty, cents):
    # Docs' overage model: 0–100,000 at 0.00, then 0.001 USD = 0.1¢ per unit, graduated.
    assert price_amount(tiered("graduated", (100_000, "0", None), (None, "0.1", None)), qty) == cents


def test_graduated_rounds_the_line_once_not_each_tier():
    # Tier 1: 1 × 0.5¢, tier 2: 1 × 0.5¢. Per tier rounding would give 1 + 1 = 2¢; the line is 1.0 → 1¢.
    assert price_amount(tiered("graduated", (1, "0.5", None), (None, "0.5", None)), 2) == 1


@pytest.mark.parametrize(("price", "cents"), [
    pytest.param(per_unit("500"), 0, id="per-unit"),                             # clamped to 0 × 500¢
    pytest.param(per_unit("1000", 5), 0, id="transform"),                        # ceil(0/5) = 0
    pytest.param(tiered("graduated", *TIERS_B_FLAT), 1000, id="tiered-first-flat"),  # quantity 0 → first flat
])
def test_negative_metered_usage_bills_as_zero(price, cents):
    # Reference A.2: an aggregate of −40 is reported and billed as quantity 0.
    assert price_amount(price, -40) == cents
    assert line_detail(price, D(-40)).quantity == 0


def test_decimal_usage_crosses_tier_boundary():
    # 1000.5 units: graduated 1000 free + 0.5 × 4¢ = 2¢; volume 1000.5 > 1000 → 1000.5 × 4¢ = 4002¢.
    assert price_amount(tiered("graduated", *ALPACA), D("1000.5")) == 2
    assert price_amount(tiered("volume", *ALPACA), D("1000.5")) == 4002


def test_line_detail_breaks_down_graduated_tiers():
    d = line_detail(tiered("graduated", *TIERS_B_FLAT), 12)
    # 5×500+1000 = 3500, 5×400+2000 = 4000, 2×300+3000 = 3600; total 11100¢
    assert [(c.tier, c.quantity, c.amount_decimal) for c in d.tiers] == [(0, 5, 3500), (1, 5, 4000), (2, 2, 3600)]
    assert (d.quantity, d.billed_quantity, d.amount_decimal, d.amount) == (12, 12, 11100, 11100)


def test_line_detail_volume_and_transform():
    v = line_detail(tiered("volume", *TIERS_A), 6)
    assert [(c.tier, c.quantity, c.unit_amount_decimal) for c in v.tiers] == [(1, 6, 650)]  # 6 × 650¢ = 3900¢
    t = line_detail(per_unit("1000", 60), 150)
    assert (t.quantity, t.billed_quantity, t.amount) == (150, 3, 3000)  # ceil(150/60) = 3 × 1000¢
    assert t.tiers == ()


@pytest.mark.parametrize(("divide_by", "rnd", "qty", "billed"), [
    pytest.param(5, "up", 11, 3, id="up"),      # ceil(2.2) = 3
    pytest.param(5, "down", 11, 2, id="down"),  # floor(2.2) = 2
    pytest.param(5, "up", 10, 2, id="exact"),   # 10/5 = 2, nothing to round
    pytest.param(3, "up", 10**20 + 1, (10**20 + 1) // 3 + 1, id="huge-exact"),  # integer math, no float error
])
def test_billed_quantity(divide_by, rnd, qty, billed):
    assert billed_quantity(per_unit("1", divide_by, rnd), qty) == billed


@pytest.mark.parametrize("bad", [pytest.param(1.5, id="float"), pytest.param(True, id="bool"), pytest.param("3", id="str")])
def test_quantity_must_be_exact(bad):
    with pytest.raises(TypeError):
        price_amount(per_unit("1"), bad)


def test_quantity_must_be_finite():
    with pytest.raises(ValueError):
        price_amount(per_unit("1"), D("Infinity"))
