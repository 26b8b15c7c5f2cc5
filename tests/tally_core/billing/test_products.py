"""Products (`POST /v1/products`, `POST /v1/products/{id}`) and price updates: each bad param names itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tally_core.billing.prices import create_price
from tally_core.billing.products import (
    Product, check_metadata, create_product, default_price_params, expand_of, merge_metadata, nested_error,
    update_price, update_product,
)
from tally_core.errors import InvalidRequest
from tally_core.forms import parse_form

NOW = 1_767_225_600


def new(params: dict, **kw) -> Product:
    return create_product(params, id="prod_gen", account="acct_1", now=NOW, **kw)


def error(fn, *args, **kw) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as exc:
        fn(*args, **kw)
    return exc.value


# --- create -----------------------------------------------------------------------------------------------

def test_seed_000_product_from_a_form_body():
    # given the form body of "create a product" for Alpaca AI (non-ASCII name, percent-encoded by the client)
    body = "name=Alpaca+AI+%E4%BD%BF%E7%94%A8%E7%8A%B6%E6%B3%81&description=LLM+tokens&metadata[team]=ml"
    # when it is validated
    product = new(parse_form(body))
    # then it is an active product with Stripe's shape
    assert product == Product(id="prod_gen", account="acct_1", name="Alpaca AI 使用状況", description="LLM tokens",
                              metadata={"team": "ml"}, created=NOW, updated=NOW)
    obj = product.to_stripe()
    assert obj["object"] == "product" and obj["active"] is True and obj["default_price"] is None
    assert obj["images"] == [] and obj["marketing_features"] == [] and obj["livemode"] is False
    assert set(obj) == {"id", "object", "active", "created", "default_price", "description", "images", "livemode",
                        "marketing_features", "metadata", "name", "package_dimensions", "shippable",
                        "statement_descriptor", "tax_code", "unit_label", "updated", "url"}


def test_stripe_object_round_trips():
    product = new({"name": "Suite", "active": "false", "unit_label": "seat", "statement_descriptor": "SUITE",
                   "images": ["https://x/a.png"], "marketing_features": [{"name": "SSO"}], "shippable": "false",
                   "url": "https://x", "tax_code": "txcd_10000000", "id": "suite"})
    assert product.id == "suite" and product.active is False
    assert Product.from_stripe(product.to_stripe(), "acct_1") == product
    assert product.to_stripe()["marketing_features"] == [{"name": "SSO"}]


@pytest.mark.parametrize("params, param, code", [
    ({}, "name", "parameter_missing"),
    ({"name": ""}, "name", "parameter_invalid_empty"),
    ({"name": "x" * 5001}, "name", "parameter_invalid"),
    ({"name": "a", "color": "red"}, "color", "parameter_unknown"),
    ({"name": "a", "active": "yes"}, "active", "parameter_invalid_boolean"),
    ({"name": "a", "description": "d" * 40001}, "description", "parameter_invalid"),
    ({"name": "a", "unit_label": "seats-and-more"}, "unit_label", "parameter_invalid"),
    ({"name": "a", "statement_descriptor": "x" * 23}, "statement_descriptor", "parameter_invalid"),
    ({"name": "a", "statement_descriptor": "BAD<>"}, "statement_descriptor", "parameter_invalid"),
    ({"name": "a", "statement_descriptor": "12345"}, "statement_descriptor", "parameter_invalid"),
    ({"name": "a", "images": ["u"] * 9}, "images", "parameter_invalid"),
    ({"name": "a", "marketing_features": [{"title": "x"}]}, "marketing_features[0][title]", "parameter_unknown"),
    ({"name": "a", "marketing_features": [{"name": "x"}] * 16}, "marketing_features", "parameter_invalid"),
    ({"name": "a", "id": "has space"}, "id", "parameter_invalid"),
    ({"name": "a", "id": "a/b"}, "id", "parameter_invalid"),
    ({"name": "a", "type": "thing"}, "type", "parameter_invalid_enum"),
    ({"name": "a", "package_dimensions": {"height": "1"}}, "package_dimensions", "parameter_invalid"),
    ({"name": "a", "metadata": {"k" * 41: "v"}}, "metadata[" + "k" * 41 + "]", "parameter_invalid"),
    ({"name": "a", "metadata": {"k": "v" * 501}}, "metadata[k]", "parameter_invalid"),
    ({"name": "a", "metadata": {f"k{i}": "v" for i in range(51)}}, "metadata", "parameter_invalid"),
    ({"name": "a", "metadata": {"a[b": "v"}}, "metadata[a[b]", "parameter_invalid"),
    ({"name": "a", "metadata": "x"}, "metadata", "parameter_invalid"),
])
def test_create_errors_name_the_param(params, param, code):
    err = error(new, params)
    assert (err.param, err.code) == (param, code)
    assert err.http_status == 400


def test_metadata_limits_are_inclusive():
    meta = {f"k{i:02d}" + "x" * 37: "v" * 500 for i in range(50)}  # 50 keys of 40 chars, 500-char values
    assert new({"name": "a", "metadata": meta}).metadata == meta


def test_product_data_errors_carry_the_prefix():
    # given a price's inline product_data (a smaller set of keys than POST /v1/products)
    err = error(new, {"name": "a", "description": "d"}, prefix="product_data")
    assert err.param == "product_data[description]" and err.code == "parameter_unknown"
    err = error(new, {"name": "a", "unit_label": "x" * 13}, prefix="product_data")
    assert err.param == "product_data[unit_label]"
    err = error(new, {}, prefix="product_data")
    assert err.param == "product_data[name]" and err.code == "parameter_missing"
    assert new({"name": "Seats", "id": "seats"}, prefix="product_data").id == "seats"


# --- update -----------------------------------------------------------------------------------------------

def base() -> Product:
    return new({"name": "Suite", "description": "All apps", "unit_label": "seat",
                "metadata": {"tier": "gold", "region": "eu"}})


def test_update_sets_given_fields_and_unsets_empty_ones():
    later = NOW + 60
    product = update_product(base(), parse_form("name=Suite+2&description=&metadata[tier]=&metadata[owner]=ops"),
                             now=later)
    assert product.name == "Suite 2" and product.description is None and product.unit_label == "seat"
    assert product.metadata == {"region": "eu", "owner": "ops"}
    assert product.updated == later and product.created == NOW


def test_update_without_changes_returns_the_same_object():
    product = base()
    assert update_product(product, {"name": "Suite", "expand": ["default_price"]}, now=NOW + 1) is product


def test_update_metadata_empty_clears_all_and_keeps_the_key_limit():
    assert update_product(base(), {"metadata": ""}, now=NOW + 1).metadata == {}
    full = new({"name": "a", "metadata": {f"k{i}": "v" for i in range(50)}})
    err = error(update_product, full, {"metadata": {"one_more": "v"}}, now=NOW + 1)
    assert err.param == "metadata"
    # replacing a key within the limit is fine
    assert update_product(full, {"metadata": {"k0": "w"}}, now=NOW + 1).metadata["k0"] == "w"


@pytest.mark.parametrize("params, param, code", [
    ({"name": ""}, "name", "parameter_invalid_empty"),
    ({"currency": "usd"}, "currency", "parameter_unknown"),
    ({"active": "maybe"}, "active", "parameter_invalid_boolean"),
    ({"unit_label": "x" * 13}, "unit_label", "parameter_invalid"),
    ({"metadata": {"a]": "b"}}, "metadata[a]]", "parameter_invalid"),
])
def test_update_errors_name_the_param(params, param, code):
    err = error(update_product, base(), params, now=NOW)
    assert (err.param, err.code) == (param, code)


def test_update_default_price_set_and_unset():
    product = update_product(base(), {"default_price": "price_1"}, now=NOW + 1)
    assert product.default_price == "price_1"
    assert update_product(product, {"default_price": ""}, now=NOW + 2).default_price is None


# --- price updates ----------------------------------------------------------------------------------------

def price():
    body = ("nickname=Standard+Cost+Per+5+Users&transform_quantity[divide_by]=5&transform_quantity[round]=up"
            "&unit_amount=1000&currency=usd&recurring[interval]=month&recurring[usage_type]=licensed"
            "&product=prod_ps&metadata[plan]=team")
    return create_price(parse_form(body), id="price_1", now=NOW)


def test_price_update_changes_only_the_mutable_fields():
    updated = update_price(price(), parse_form("active=false&nickname=&lookup_key=team_monthly&metadata[x]=1"),
                           now=NOW + 1)
    assert updated.active is False and updated.nickname is None and updated.lookup_key == "team_monthly"
    assert updated.metadata == {"plan": "team", "x": "1"}
    # amounts are untouched
    assert updated.unit_amount_decimal == Decimal(1000) and updated.transform_quantity == price().transform_quantity


def test_price_update_without_changes_returns_the_same_object():
    p = price()
    assert update_price(p, {"nickname": "Standard Cost Per 5 Users"}, now=NOW) is p


@pytest.mark.parametrize("params, param, code", [
    ({"unit_amount": "2000"}, "unit_amount", "parameter_unknown"),
    ({"recurring": {"interval": "year"}}, "recurring", "parameter_unknown"),
    ({"currency": "eur"}, "currency", "parameter_unknown"),
    ({"tiers": []}, "tiers", "parameter_unknown"),
    ({"active": "nope"}, "active", "parameter_invalid_boolean"),
    ({"lookup_key": "k" * 201}, "lookup_key", "parameter_invalid"),
    ({"tax_behavior": "sometimes"}, "tax_behavior", "parameter_invalid_enum"),
    ({"currency_options": {"eur": {"unit_amount": "1"}}}, "currency_options", "parameter_invalid"),
    ({"metadata": {"k" * 41: "v"}}, "metadata[" + "k" * 41 + "]", "parameter_invalid"),
])
def test_price_update_errors_name_the_param(params, param, code):
    err = error(update_price, price(), params, now=NOW)
    assert (err.param, err.code) == (param, code)
    if code == "parameter_unknown":
        assert "create a new price" in err.message


def test_tax_behavior_is_set_once():
    p = update_price(price(), {"tax_behavior": "exclusive"}, now=NOW)
    assert p.tax_behavior == "exclusive"
    assert update_price(p, {"tax_behavior": "exclusive"}, now=NOW) is p
    assert error(update_price, p, {"tax_behavior": "inclusive"}, now=NOW).param == "tax_behavior"


# --- helpers ----------------------------------------------------------------------------------------------

def test_default_price_data_becomes_price_params_and_errors_are_nested():
    raw = parse_form("default_price_data[currency]=usd&default_price_data[unit_amount]=2000"
                     "&default_price_data[recurring][interval]=month")["default_price_data"]
    params = default_price_params(raw, "prod_1")
    created = create_price(params, id="price_1", now=NOW)
    assert created.product == "prod_1" and created.unit_amount_decimal == 2000
    # recurring takes only interval and interval_count here
    err = error(default_price_params, {"currency": "usd", "recurring": {"usage_type": "metered"}}, "prod_1")
    assert err.param == "default_price_data[recurring][usage_type]"
    err = error(default_price_params, {"currency": "usd", "tiers": []}, "prod_1")
    assert err.param == "default_price_data[tiers]"
    # an error from create_price is renamed under the prefix
    bad = default_price_params({"currency": "usd", "unit_amount": "1", "recurring": {"interval": "fortnight"}},
                               "prod_1")
    with pytest.raises(InvalidRequest) as exc:
        create_price(bad, id="price_1", now=NOW)
    err = nested_error(exc.value, "default_price_data")
    assert err.param == "default_price_data[recurring][interval]" and err.code == "parameter_invalid_enum"
    assert "default_price_data[recurring][interval]" in err.message


def test_expand_accepts_form_lists_json_lists_and_one_string():
    assert expand_of(parse_form("expand[]=tiers&expand[]=product")) == {"tiers", "product"}
    assert expand_of(parse_form("expand[0]=tiers")) == {"tiers"}
    assert expand_of({"expand": "tiers"}) == {"tiers"}
    assert expand_of({}) == set()
    assert error(expand_of, {"expand": [1]}).param == "expand"


def test_check_metadata_drops_unset_keys_on_create():
    assert check_metadata({"a": "1", "b": ""}) == {"a": "1"}
    assert merge_metadata({"a": "1"}, {"b": "2"}) == {"a": "1", "b": "2"}
