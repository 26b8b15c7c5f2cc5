"""`POST /v1/prices` validation (each bad param names itself) and the Stripe price object shape."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tally_core.billing.prices import Price, Recurring, Tier, TransformQuantity, create_price
from tally_core.billing.pricing import price_amount
from tally_core.errors import InvalidRequest
from tally_core.forms import parse_form

_DROP = object()


def pu(**over) -> dict:
    """A valid per_unit create body, with keys overridden (or dropped with _DROP)."""
    return _merge({"currency": "usd", "product": "prod_1", "unit_amount": "1000"}, over)


def tr(**over) -> dict:
    """A valid graduated body: first 1,000 units free, then 4¢ (seed 000)."""
    base = {
        "currency": "usd", "product": "prod_1", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": "inf", "unit_amount_decimal": "4"}],
    }
    return _merge(base, over)


def _merge(base: dict, over: dict) -> dict:
    out = {**base, **over}
    return {k: v for k, v in out.items() if v is not _DROP}


def create(params: dict) -> Price:
    return create_price(params, id="price_1", now=1_700_000_000)


def test_seed_000_usage_price_from_a_form_body():
    body = (
        "currency=usd&product=prod_alpaca&billing_scheme=tiered&tiers_mode=graduated"
        "&recurring[interval]=month&recurring[usage_type]=metered&recurring[meter]=mtr_alpaca"
        "&tiers[0][up_to]=1000&tiers[0][unit_amount]=0&tiers[1][up_to]=inf&tiers[1][unit_amount_decimal]=4"
        "&expand[0]=tiers"
    )
    price = create(parse_form(body))
    assert price.tiers == (Tier(1000, Decimal(0), None), Tier(None, Decimal(4), None))
    assert price.recurring == Recurring("month", 1, "metered", "mtr_alpaca")
    assert price_amount(price, 1500) == 2000  # 1000 free + 500 × 4¢ = 2000¢


def test_seed_001_seat_price_with_transform_quantity():
    body = ("nickname=Standard+Cost+Per+5+Users&transform_quantity[divide_by]=5&transform_quantity[round]=up"
            "&unit_amount=1000&currency=usd&recurring[interval]=month&recurring[usage_type]=licensed&product=prod_ps")
    price = create(parse_form(body))
    assert price.transform_quantity == TransformQuantity(5, "up")
    assert price.nickname == "Standard Cost Per 5 Users"
    assert price.to_stripe()["transform_quantity"] == {"divide_by": 5, "round": "up"}
    assert price_amount(price, 6) == 2000  # ceil(6/5) = 2 × 1000¢ = 2000¢


def test_per_unit_object_shape():
    obj = create(pu(recurring={"interval": "month"}, metadata={"plan": "pro"})).to_stripe()
    assert obj == {
        "id": "price_1", "object": "price", "active": True, "billing_scheme": "per_unit", "created": 1_700_000_000,
        "currency": "usd", "custom_unit_amount": None, "livemode": False, "lookup_key": None,
        "metadata": {"plan": "pro"}, "nickname": None, "product": "prod_1",
        "recurring": {"interval": "month", "interval_count": 1, "meter": None, "trial_period_days": None,
                      "usage_type": "licensed"},
        "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None, "type": "recurring",
        "unit_amount": 1000, "unit_amount_decimal": "1000",
    }
    json.dumps(obj)  # plain JSON types only (no Decimal)


@pytest.mark.parametrize(("given", "unit_amount", "unit_amount_decimal"), [
    pytest.param({"unit_amount": "1000"}, 1000, "1000", id="int"),
    pytest.param({"unit_amount": "0"}, 0, "0", id="free"),
    pytest.param({"unit_amount_decimal": "0.05"}, None, "0.05", id="fraction-has-no-int"),
    pytest.param({"unit_amount_decimal": "25.50"}, None, "25.5", id="trailing-zero-trimmed"),
    pytest.param({"unit_amount_decimal": "1000.000"}, 1000, "1000", id="whole-decimal-gets-int"),
    pytest.param({"unit_amount_decimal": "0.000000000001"}, None, "0.000000000001", id="12-places"),
])
def test_unit_amount_representation(given, unit_amount, unit_amount_decimal):
    obj = create(_merge(pu(unit_amount=_DROP), given)).to_stripe()
    assert (obj["unit_amount"], obj["unit_amount_decimal"]) == (unit_amount, unit_amount_decimal)


def test_tiered_object_shape_and_expand():
    price = create(tr(tiers=[
        {"up_to": "5", "unit_amount": "500", "flat_amount": "1000"},
        {"up_to": "10", "unit_amount_decimal": "400.5", "flat_amount_decimal": "2000"},
        {"up_to": "inf", "flat_amount": "5000"},
    ]))
    obj = price.to_stripe()
    assert (obj["unit_amount"], obj["unit_amount_decimal"], obj["tiers_mode"]) == (None, None, "graduated")
    assert "tiers" not in obj  # Stripe only includes tiers with expand[]=tiers
    assert price.to_stripe(expand=["tiers"])["tiers"] == [
        {"flat_amount": 1000, "flat_amount_decimal": "1000", "unit_amount": 500, "unit_amount_decimal": "500", "up_to": 5},
        {"flat_amount": 2000, "flat_amount_decimal": "2000", "unit_amount": None, "unit_amount_decimal": "400.5", "up_to": 10},
        {"flat_amount": 5000, "flat_amount_decimal": "5000", "unit_amount": None, "unit_amount_decimal": None, "up_to": None},
    ]
    assert create(pu()).to_stripe(expand=["tiers"])["tiers"] is None


@pytest.mark.parametrize("params", [
    pytest.param(pu(recurring={"interval": "month", "usage_type": "metered", "meter": "mtr_1"}), id="metered"),
    pytest.param(pu(unit_amount=_DROP, unit_amount_decimal="0.05", transform_quantity={"divide_by": "60", "round": "down"}),
                 id="decimal-transform"),
    pytest.param(tr(tiers_mode="volume", recurring={"interval": "year", "interval_count": "3"}), id="volume-3y"),
    pytest.param(pu(lookup_key="pro_monthly", nickname="Pro", tax_behavior="exclusive", active="false",
                    recurring={"interval": "week", "interval_count": "2", "trial_period_days": "14"}), id="extras"),
])
def test_from_stripe_round_trips(params):
    price = create(params)
    assert Price.from_stripe(json.loads(json.dumps(price.to_stripe(expand=["tiers"])))) == price


def test_from_stripe_needs_expanded_tiers():
    with pytest.raises(ValueError):
        Price.from_stripe(create(tr()).to_stripe())


@pytest.mark.parametrize(("params", "check"), [
    pytest.param(pu(), lambda p: (p.active, p.tax_behavior, p.type, p.recurring) == (True, "unspecified", "one_time", None),
                 id="defaults-one-time"),
    pytest.param(pu(recurring={"interval": "month"}), lambda p: p.recurring == Recurring("month", 1, "licensed", None),
                 id="recurring-defaults"),
    pytest.param(pu(currency="USD"), lambda p: p.currency == "usd", id="currency-lowercased"),
    pytest.param(pu(metadata=""), lambda p: p.metadata == {}, id="metadata-empty-unsets"),
    pytest.param(pu(metadata={"a": "1", "b": ""}), lambda p: p.metadata == {"a": "1"}, id="metadata-empty-value-dropped"),
    pytest.param(pu(product=_DROP, product_data={"name": "Seats", "unit_label": "seat"}),
                 lambda p: (p.product, p.product_data) == (None, {"name": "Seats", "unit_label": "seat"}), id="product-data"),
    pytest.param(tr(tiers=[{"up_to": "inf", "unit_amount": "7"}]), lambda p: p.tiers == (Tier(None, Decimal(7)),),
                 id="single-inf-tier"),
    pytest.param(pu(recurring={"interval": "month", "interval_count": "36"}), lambda p: p.recurring.interval_count == 36,
                 id="36-months-max"),
    pytest.param(pu(recurring={"interval": "week", "interval_count": "156"}), lambda p: p.recurring.interval_count == 156,
                 id="156-weeks-max"),
    pytest.param(pu(recurring={"interval": "day", "interval_count": "1095"}), lambda p: p.recurring.interval_count == 1095,
                 id="1095-days-max"),
    pytest.param(pu(expand=["tiers"], transfer_lookup_key="true", lookup_key="k"), lambda p: p.lookup_key == "k",
                 id="expand-and-transfer-accepted"),
    pytest.param({"currency": "usd", "product": "p", "unit_amount": 5}, lambda p: p.unit_amount_decimal == 5,
                 id="json-int-values"),
])
def test_valid_creates(params, check):
    assert check(create(params))


_LONG = "k" * 41
BAD = [
    # (params, param named in the error, error code)
    pytest.param(pu(currency=_DROP), "currency", "parameter_missing", id="currency-missing"),
    pytest.param(pu(currency="usdx"), "currency", "parameter_invalid", id="currency-4-letters"),
    pytest.param(pu(currency="us1"), "currency", "parameter_invalid", id="currency-digit"),
    pytest.param(pu(currency=""), "currency", "parameter_invalid_empty", id="currency-empty"),
    pytest.param(pu(product=_DROP), "product", "parameter_missing", id="product-missing"),
    pytest.param(pu(product_data={"name": "x"}), "product", "parameters_exclusive", id="product-and-product-data"),
    pytest.param(pu(product=_DROP, product_data={"unit_label": "x"}), "product_data[name]", "parameter_missing",
                 id="product-data-name-missing"),
    pytest.param(pu(product=_DROP, product_data={"name": "x", "color": "red"}), "product_data[color]", "parameter_unknown",
                 id="product-data-unknown"),
    pytest.param(pu(amount="5"), "amount", "parameter_unknown", id="unknown-top-level"),
    pytest.param(pu(currency_options={"eur": {"unit_amount": "1"}}), "currency_options", "parameter_invalid",
                 id="currency-options-unsupported"),
    pytest.param(pu(custom_unit_amount={"enabled": "true"}), "custom_unit_amount", "parameter_invalid",
                 id="custom-unit-amount-unsupported"),
    pytest.param(pu(unit_amount=_DROP), "unit_amount", "parameter_missing", id="per-unit-no-amount"),
    pytest.param(pu(unit_amount_decimal="5"), "unit_amount", "parameters_exclusive", id="unit-amount-and-decimal"),
    pytest.param(pu(unit_amount="-1"), "unit_amount", "parameter_invalid_integer", id="unit-amount-negative"),
    pytest.param(pu(unit_amount="12.5"), "unit_amount", "parameter_invalid_integer", id="unit-amount-fraction"),
    pytest.param(pu(unit_amount=""), "unit_amount", "parameter_invalid_empty", id="unit-amount-empty"),
    pytest.param(pu(unit_amount="1" + "0" * 15), "unit_amount", "parameter_invalid_integer", id="unit-amount-16-digits"),
    pytest.param(pu(unit_amount=_DROP, unit_amount_decimal="0.0000000000001"), "unit_amount_decimal",
                 "parameter_invalid_decimal", id="decimal-13-places"),
    pytest.param(pu(unit_amount=_DROP, unit_amount_decimal="-0.5"), "unit_amount_decimal", "parameter_invalid_decimal",
                 id="decimal-negative"),
    pytest.param(pu(unit_amount=_DROP, unit_amount_decimal="1e3"), "unit_amount_decimal", "parameter_invalid_decimal",
                 id="decimal-exponent"),
    pytest.param(pu(unit_amount=_DROP, unit_amount_decimal="NaN"), "unit_amount_decimal", "parameter_invalid_decimal",
                 id="decimal-nan"),
    pytest.param(pu(billing_scheme="flat"), "billing_scheme", "parameter_invalid_enum", id="billing-scheme-bad"),
    pytest.param(pu(tiers_mode="volume"), "tiers_mode", "parameter_invalid", id="per-unit-with-tiers-mode"),
    pytest.param(pu(tiers=[{"up_to": "inf", "unit_amount": "1"}]), "tiers", "parameter_invalid", id="per-unit-with-tiers"),
    pytest.param(tr(tiers_mode=_DROP), "tiers_mode", "parameter_missing", id="tiered-no-mode"),
    pytest.param(tr(tiers_mode="stairstep"), "tiers_mode", "parameter_invalid_enum", id="tiered-bad-mode"),
    pytest.param(tr(tiers=_DROP), "tiers", "parameter_missing", id="tiered-no-tiers"),
    pytest.param(tr(tiers=[]), "tiers", "parameter_missing", id="tiered-empty-tiers"),
    pytest.param(tr(tiers={"0": {"up_to": "inf", "unit_amount": "1"}, "2": {"up_to": "inf"}}), "tiers",
                 "parameter_invalid_array", id="tiers-gap-in-indexes"),
    pytest.param(tr(unit_amount="5"), "unit_amount", "parameter_invalid", id="tiered-with-unit-amount"),
    pytest.param(tr(transform_quantity={"divide_by": "5", "round": "up"}), "tiers", "parameters_exclusive",
                 id="tiers-with-transform"),
    pytest.param(tr(tiers=_DROP, transform_quantity={"divide_by": "5", "round": "up"}), "transform_quantity",
                 "parameter_invalid", id="tiered-scheme-with-transform"),
    pytest.param(tr(tiers=[{"up_to": "1000", "unit_amount": "0"}, {"up_to": "2000", "unit_amount": "4"}]),
                 "tiers[1][up_to]", "parameter_invalid", id="last-tier-not-inf"),
    pytest.param(tr(tiers=[{"up_to": "inf", "unit_amount": "0"}, {"up_to": "inf", "unit_amount": "4"}]),
                 "tiers[0][up_to]", "parameter_invalid", id="inf-before-last"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1"}, {"up_to": "10", "unit_amount": "2"},
                           {"up_to": "inf", "unit_amount": "3"}]), "tiers[1][up_to]", "parameter_invalid", id="up-to-equal"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "2"},
                           {"up_to": "inf", "unit_amount": "3"}]), "tiers[1][up_to]", "parameter_invalid", id="up-to-decreasing"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1"}, {"unit_amount": "2"}]), "tiers[1][up_to]",
                 "parameter_missing", id="up-to-missing"),
    pytest.param(tr(tiers=[{"up_to": "0", "unit_amount": "1"}, {"up_to": "inf", "unit_amount": "2"}]), "tiers[0][up_to]",
                 "parameter_invalid_integer", id="up-to-zero"),
    pytest.param(tr(tiers=[{"up_to": "ten", "unit_amount": "1"}, {"up_to": "inf", "unit_amount": "2"}]), "tiers[0][up_to]",
                 "parameter_invalid_integer", id="up-to-not-int"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1"}, {"up_to": "inf"}]), "tiers[1]", "parameter_missing",
                 id="tier-without-amount"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1", "unit_amount_decimal": "1"}, {"up_to": "inf", "unit_amount": "2"}]),
                 "tiers[0][unit_amount]", "parameters_exclusive", id="tier-unit-and-decimal"),
    pytest.param(tr(tiers=[{"up_to": "10", "flat_amount": "1", "flat_amount_decimal": "1"}, {"up_to": "inf", "unit_amount": "2"}]),
                 "tiers[0][flat_amount]", "parameters_exclusive", id="tier-flat-and-decimal"),
    pytest.param(tr(tiers=[{"up_to": "10", "unit_amount": "1"}, {"up_to": "inf", "unit_amount_decimal": "0.1234567890123"}]),
                 "tiers[1][unit_amount_decimal]", "parameter_invalid_decimal", id="tier-decimal-13-places"),
    pytest.param(tr(tiers=[{"up_to": "10", "amount": "1"}, {"up_to": "inf", "unit_amount": "2"}]), "tiers[0][amount]",
                 "parameter_unknown", id="tier-unknown-key"),
    pytest.param(tr(tiers=["x", {"up_to": "inf", "unit_amount": "2"}]), "tiers[0]", "parameter_invalid", id="tier-not-hash"),
    pytest.param(pu(transform_quantity={"round": "up"}), "transform_quantity[divide_by]", "parameter_missing",
                 id="transform-no-divide-by"),
    pytest.param(pu(transform_quantity={"divide_by": "0", "round": "up"}), "transform_quantity[divide_by]",
                 "parameter_invalid_integer", id="transform-divide-by-zero"),
    pytest.param(pu(transform_quantity={"divide_by": "5"}), "transform_quantity[round]", "parameter_missing",
                 id="transform-no-round"),
    pytest.param(pu(transform_quantity={"divide_by": "5", "round": "nearest"}), "transform_quantity[round]",
                 "parameter_invalid_enum", id="transform-bad-round"),
    pytest.param(pu(recurring="month"), "recurring", "parameter_invalid", id="recurring-not-hash"),
    pytest.param(pu(recurring={"usage_type": "licensed"}), "recurring[interval]", "parameter_missing",
                 id="recurring-no-interval"),
    pytest.param(pu(recurring={"interval": "fortnight"}), "recurring[interval]", "parameter_invalid_enum",
                 id="recurring-bad-interval"),
    pytest.param(pu(recurring={"interval": "month", "interval_count": "0"}), "recurring[interval_count]",
                 "parameter_invalid_integer", id="interval-count-zero"),
    pytest.param(pu(recurring={"interval": "month", "interval_count": "37"}), "recurring[interval_count]",
                 "parameter_invalid", id="interval-37-months"),
    pytest.param(pu(recurring={"interval": "week", "interval_count": "157"}), "recurring[interval_count]",
                 "parameter_invalid", id="interval-157-weeks"),
    pytest.param(pu(recurring={"interval": "year", "interval_count": "4"}), "recurring[interval_count]",
                 "parameter_invalid", id="interval-4-years"),
    pytest.param(pu(recurring={"interval": "day", "interval_count": "1096"}), "recurring[interval_count]",
                 "parameter_invalid", id="interval-1096-days"),
    pytest.param(pu(recurring={"interval": "month", "usage_type": "metered"}), "recurring[meter]", "parameter_missing",
                 id="metered-without-meter"),
    pytest.param(pu(recurring={"interval": "month", "meter": "mtr_1"}), "recurring[meter]", "parameter_invalid",
                 id="meter-on-licensed"),
    pytest.param(pu(recurring={"interval": "month", "usage_type": "pay_as_you_go"}), "recurring[usage_type]",
                 "parameter_invalid_enum", id="bad-usage-type"),
    pytest.param(pu(recurring={"interval": "month", "usage_type": "metered", "meter": "mtr_1", "aggregate_usage": "sum"}),
                 "recurring[aggregate_usage]", "parameter_unknown", id="aggregate-usage-removed-in-basil"),
    pytest.param(pu(recurring={"interval": "month", "trial_period_days": "731"}), "recurring[trial_period_days]",
                 "parameter_invalid_integer", id="trial-over-730"),
    pytest.param(pu(active="yes"), "active", "parameter_invalid_boolean", id="active-not-bool"),
    pytest.param(pu(transfer_lookup_key="maybe"), "transfer_lookup_key", "parameter_invalid_boolean", id="transfer-not-bool"),
    pytest.param(pu(tax_behavior="sometimes"), "tax_behavior", "parameter_invalid_enum", id="tax-behavior-bad"),
    pytest.param(pu(lookup_key="k" * 201), "lookup_key", "parameter_invalid", id="lookup-key-201"),
    pytest.param(pu(metadata={_LONG: "v"}), f"metadata[{_LONG}]", "parameter_invalid", id="metadata-key-41"),
    pytest.param(pu(metadata={"k": "v" * 501}), "metadata[k]", "parameter_invalid", id="metadata-value-501"),
    pytest.param(pu(metadata={f"k{i}": "v" for i in range(51)}), "metadata", "parameter_invalid", id="metadata-51-keys"),
    # The brief's union of every key at once: tiers and transform_quantity cannot be combined.
    pytest.param({"unit_amount": "1000", "currency": "usd", "product": "prod_1",
                  "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_x"},
                  "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": "inf", "unit_amount_decimal": "4"}],
                  "tiers_mode": "graduated", "billing_scheme": "tiered",
                  "transform_quantity": {"divide_by": "1000", "round": "up"}}, "tiers", "parameters_exclusive",
                 id="every-key-at-once"),
]


@pytest.mark.parametrize(("params", "param", "code"), BAD)
def test_bad_params_name_the_param(params, param, code):
    with pytest.raises(InvalidRequest) as info:
        create(params)
    err = info.value
    assert (err.param, err.code) == (param, code)
    assert err.http_status == 400
    assert err.to_dict()["error"]["param"] == param


def test_form_tier_error_names_the_bracket_param():
    body = "currency=usd&product=p&billing_scheme=tiered&tiers_mode=volume&tiers[0][up_to]=5&tiers[0][unit_amount]=1" \
           "&tiers[1][up_to]=3&tiers[1][unit_amount]=1&tiers[2][up_to]=inf&tiers[2][unit_amount]=1"
    with pytest.raises(InvalidRequest) as info:
        create(parse_form(body))
    assert info.value.param == "tiers[1][up_to]"
    assert "tiers[1][up_to]" in info.value.message
