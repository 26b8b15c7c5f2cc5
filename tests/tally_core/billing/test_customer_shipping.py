"""A customer's `shipping` (issue 10 item 7) as worked examples: what a request parses to, what the log
carries and reads back, the object it makes (Stripe's shape) and that a replay of that object gives it again."""

import pytest

from tally_core.billing.command_params import CustomerShipping
from tally_core.billing.commands import load, parse, to_params
from tally_core.billing.customers import Customer, create_customer, invoice_prefix, update_customer
from tally_core.errors import InvalidRequest

JAN1 = 1_767_225_600  # 2026-01-01T00:00:00Z
SEED_000_SHIPPING = {"name": "Jenny Rosen", "address": {
    "city": "Brothers", "country": "US", "line1": "27 Fredrick Ave", "postal_code": "97712", "state": "CA"}}
STRIPE_SHAPE = {"name": "Jenny Rosen", "phone": None, "address": {
    "city": "Brothers", "country": "US", "line1": "27 Fredrick Ave", "line2": None, "postal_code": "97712",
    "state": "CA"}}


def parsed(kind, params):
    return parse(kind, params, object_id="cus_1", account="acct_1", now=JAN1)


def test_shipping_goes_through_the_log_and_makes_stripes_shape():
    # given: seed 000's shipping, parsed at the edge
    params = parsed("customer.create", {"shipping": SEED_000_SHIPPING})
    assert isinstance(params.shipping, CustomerShipping)
    # the log carries it as sent (no null keys), and reads it back typed
    record = {"type": "customer.create", "version": 1, "id": "cmd_1", "object_id": "cus_1",
              "params": to_params(params)}
    assert record["params"] == {"shipping": SEED_000_SHIPPING}
    loaded = load(record).params
    # when: the customer is made from what the worker reads
    cus = create_customer(loaded.sent(), id="cus_1", account="acct_1", now=JAN1)
    # then: Stripe's shape, and the object a replay folds gives the same customer
    assert cus.to_stripe()["shipping"] == STRIPE_SHAPE
    assert Customer.from_stripe(cus.to_stripe(), "acct_1") == cus


def test_an_update_replaces_shipping_whole_and_an_empty_value_clears_it():
    cus = create_customer({"shipping": SEED_000_SHIPPING}, id="cus_1", account="acct_1", now=JAN1)
    moved = update_customer(cus, parsed("customer.update", {"shipping": {
        "name": "J. Rosen", "phone": "+15555550100", "address": {"city": "Bend"}}}).sent())
    assert moved.to_stripe()["shipping"] == {"name": "J. Rosen", "phone": "+15555550100", "address": {
        "city": "Bend", "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}}
    cleared = update_customer(moved, parsed("customer.update", {"shipping": ""}).sent())
    assert cleared.to_stripe()["shipping"] is None


@pytest.mark.parametrize("shipping, param, code", [
    ({"address": {"city": "Bend"}}, "shipping[name]", "parameter_missing"),
    ({"name": "Jenny"}, "shipping[address]", "parameter_missing"),
    ({"name": "Jenny", "address": "Bend"}, "shipping[address]", "parameter_invalid"),
    ({"name": "x" * 201, "address": {"city": "Bend"}}, "shipping[name]", "parameter_invalid"),
    ({"name": "Jenny", "address": {"planet": "Mars"}}, "shipping[address][planet]", "parameter_unknown"),
    ({"name": "Jenny", "address": {}, "carrier": "UPS"}, "shipping[carrier]", "parameter_unknown"),
], ids=["no-name", "no-address", "address-not-a-hash", "name-too-long", "unknown-address-key", "unknown-key"])
def test_a_shipping_stripe_refuses_is_refused_naming_the_param(shipping, param, code):
    with pytest.raises(InvalidRequest) as err:
        parsed("customer.create", {"shipping": shipping})
    assert (err.value.param, err.value.code) == (param, code)


def test_the_invoice_prefix_is_the_customers_own_and_fixed():
    # 8 hex digits of the id's blake2b (collection._number numbers invoices `PREFIX-0001`)
    prefix = invoice_prefix("cus_1")
    assert len(prefix) == 8 and prefix == prefix.upper() and prefix == invoice_prefix("cus_1")
    assert prefix != invoice_prefix("cus_2")
    cus = create_customer({}, id="cus_1", account="acct_1", now=JAN1).to_stripe()
    assert cus["invoice_prefix"] == prefix
