"""Subscriptions: item rules, anchors with month-end clamping, rollover (seeds 000 and 001).

Each request goes the way the API and the worker take it: checked at the edge into typed params
(commands.parse), then built against the catalog and the book's time (create_subscription)."""

from datetime import datetime, timezone

import pytest

from tally_core.billing.commands import parse
from tally_core.billing.customers import create_customer, update_customer
from tally_core.billing.prices import create_price
from tally_core.billing.subscriptions import Subscription, create_subscription, roll_over
from tally_core.errors import InvalidRequest

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
LICENSE = create_price({"currency": "usd", "unit_amount": "10000", "product": "prod_1",
                        "recurring": {"interval": "month"}}, id="price_license", now=0)
METERED = create_price({"currency": "usd", "product": "prod_1", "billing_scheme": "tiered", "tiers_mode": "graduated",
                        "tiers": [{"up_to": "1000", "unit_amount": "0"}, {"up_to": "inf", "unit_amount_decimal": "4"}],
                        "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_1"}},
                       id="price_tokens", now=0)
YEARLY = create_price({"currency": "usd", "unit_amount": "1000", "product": "prod_1",
                       "recurring": {"interval": "year"}}, id="price_year", now=0)
EUR = create_price({"currency": "eur", "unit_amount": "1000", "product": "prod_1",
                    "recurring": {"interval": "month"}}, id="price_eur", now=0)
PRICES = {p.id: p for p in (LICENSE, METERED, YEARLY, EUR)}


def ts(y, m, d):
    return int(datetime(y, m, d, tzinfo=timezone.utc).timestamp())


def typed(kind, params, now=NOW):
    return parse(kind, params, object_id="obj_1", account="acct", now=now)


def subscribe(items, now=NOW, **extra):
    return create_subscription(typed("subscription.create", {"customer": "cus_1", "items": items, **extra}, now),
                               id="sub_1", customer="cus_1", prices=PRICES,
                               item_ids=[f"si_{i}" for i in range(len(items))], now=now)


def test_licensed_and_metered_items():
    sub = subscribe([{"price": "price_license", "quantity": "2"}, {"price": "price_tokens"}])
    assert [(i.price.id, i.quantity, i.metered) for i in sub.items] == [
        ("price_license", 2, False), ("price_tokens", None, True)]
    assert (sub.current_period_start, sub.current_period_end) == (NOW, ts(2026, 2, 1))
    assert Subscription.from_stripe(sub.to_stripe()) == sub


def test_month_end_anchor_clamps_and_recovers():
    # given a subscription started on Jan 31
    sub = subscribe([{"price": "price_license"}], now=ts(2028, 1, 31))
    ends = []
    for _ in range(3):
        ends.append(datetime.fromtimestamp(sub.current_period_end, timezone.utc).date().isoformat())
        sub = roll_over(sub)
    # then Feb clamps to the 29th (2028 is a leap year) and March returns to the 31st
    assert ends == ["2028-02-29", "2028-03-31", "2028-04-30"]


def test_future_anchor_ends_the_first_period_at_the_anchor():
    sub = subscribe([{"price": "price_license"}], billing_cycle_anchor=str(ts(2026, 1, 15)))
    assert sub.current_period_end == ts(2026, 1, 15)
    assert roll_over(sub).current_period_end == ts(2026, 2, 15)


@pytest.mark.parametrize("items, extra, param", [
    ([], {}, "items"),
    ([{"price": "price_nope"}], {}, "items[0][price]"),
    ([{"price": "price_tokens", "quantity": "3"}], {}, "items[0][quantity]"),
    ([{"price": "price_license", "quantity": "-1"}], {}, "items[0][quantity]"),
    ([{"price": "price_license"}, {"price": "price_year"}], {}, "items[1][price]"),
    ([{"price": "price_license"}, {"price": "price_eur"}], {}, "items[1][price]"),
    ([{"price": "price_license"}, {"price": "price_license"}], {}, "items[1][price]"),
    ([{"price": "price_license"}] * 21, {}, "items"),
    ([{"price": "price_license"}], {"billing_cycle_anchor": str(NOW - 1)}, "billing_cycle_anchor"),
    ([{"price": "price_license"}], {"colour": "red"}, "colour"),
    # "Mutually exclusive with billing_cycle_anchor" (reference §3.3)
    ([{"price": "price_license"}], {"billing_cycle_anchor": str(NOW + 60),
                                    "billing_cycle_anchor_config": {"day_of_month": "31"}}, "billing_cycle_anchor"),
], ids=["no-items", "unknown-price", "metered-quantity", "negative-quantity", "mixed-intervals", "mixed-currency",
        "same-price-twice", "21-items", "past-anchor", "unknown-param", "anchor-and-config"])
def test_invalid_subscriptions_name_the_field(items, extra, param):
    with pytest.raises(InvalidRequest) as err:
        subscribe(items, **extra)
    assert err.value.param == param


def test_customer_on_a_test_clock_is_created_at_clock_time():
    c = create_customer(typed("customer.create", {"email": "a@b.c", "test_clock": "clock_1",
                                                  "payment_method": "pm_card_visa"}).sent(),
                        id="cus_1", account="acct", now=NOW, test_clock_time=NOW - 86400)
    assert c.created == NOW - 86400 and c.test_clock == "clock_1" and c.default_payment_method == "pm_card_visa"
    assert type(c).from_stripe(c.to_stripe(), "acct") == c
    c2 = update_customer(c, typed("customer.update", {"name": "Jenny", "balance": "-500",
                                                      "metadata": {"tier": "gold"}}).sent())
    assert (c2.name, c2.balance, dict(c2.metadata)) == ("Jenny", -500, {"tier": "gold"})
    with pytest.raises(InvalidRequest) as err:
        typed("customer.update", {"test_clock": "clock_2"})
    assert err.value.param == "test_clock"


def test_the_anchor_is_at_most_one_natural_period_away_and_periods_end_by_9999():
    """Stripe refuses an anchor later than the next natural billing date; a period that would end after
    9999-12-31 cannot be named by any date, so it is refused rather than left to fail in the worker."""
    with pytest.raises(InvalidRequest) as err:
        subscribe([{"price": "price_license"}], billing_cycle_anchor="10000000000000")
    assert err.value.param == "billing_cycle_anchor"
    with pytest.raises(InvalidRequest) as err:
        subscribe([{"price": "price_license"}], billing_cycle_anchor=str(NOW + 400 * 86_400))
    assert err.value.param == "billing_cycle_anchor" and "natural billing date" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        create_subscription(typed("subscription.create", {"customer": "cus_1", "items": [{"price": "price_license"}]}),
                            id="sub_9999", customer="cus_1", prices=PRICES, item_ids=["si_1"], now=253_402_300_000)
    assert err.value.param == "items"
