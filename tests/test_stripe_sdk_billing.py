"""Billing end to end through the official `stripe` SDK against a running `tally run`: customers, subscriptions,
invoices, test clocks, usage and events, changing only the base URL and key.

Seed 000 (usage-based pricing guide: Alpaca AI, a 100 USD license plus 0.04 USD per token over 1,000) and seed
001 (multiple products, quantities, `transform_quantity`, several subscriptions per customer). All amounts in
cents, worked out by hand in the comments.
"""

import calendar
import time

import pytest
import stripe



@pytest.fixture
def client(server):
    base, key = server
    return stripe.StripeClient(key, base_addresses={"api": base, "meter_events": base})


def ts(y, m, d, h=0, mi=0):
    return calendar.timegm((y, m, d, h, mi, 0))


MAY_1, JUN_1, JUL_1 = ts(2026, 5, 1), ts(2026, 6, 1), ts(2026, 7, 1)
HOUR = 3600


# --- helpers -------------------------------------------------------------------------------------------------

def advance(client, clock_id, to):
    """Advance a test clock and poll until it is `ready` at the target time."""
    moving = client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": to})
    assert moving.status == "advancing"
    assert moving.status_details.advancing.target_frozen_time == to
    deadline = time.time() + 30
    clock = moving
    while time.time() < deadline:
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
        if clock.status == "ready":
            break
        time.sleep(0.1)
    assert (clock.status, clock.frozen_time) == ("ready", to)
    return clock


def poll(fetch, done, timeout=20):
    """Usage aggregation is asynchronous (as Stripe's): poll a read until `done(value)`; return the last value."""
    deadline = time.time() + timeout
    value = fetch()
    while not done(value) and time.time() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def alpaca_catalog(client):
    """Seed 000: the `alpaca_ai_tokens` sum meter; a graduated metered usage price (tokens 0–1,000 at 0 USD,
    1,001+ at 0.04 USD = 4 cents) and a 100 USD monthly licensed fee."""
    meter = client.v1.billing.meters.create({
        "display_name": "Alpaca AI tokens", "event_name": "alpaca_ai_tokens",
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"}})
    usage_product = client.v1.products.create({"name": "Alpaca AI usage"})
    usage = client.v1.prices.create({
        "product": usage_product.id, "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": 1000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": "4"}],
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id}})
    assert (usage.recurring.usage_type, usage.recurring.meter, usage.tiers_mode) == ("metered", meter.id, "graduated")
    fee_product = client.v1.products.create({"name": "Alpaca AI license fee"})
    fee = client.v1.prices.create({
        "product": fee_product.id, "currency": "usd", "unit_amount": 10000, "recurring": {"interval": "month"}})
    assert (fee.unit_amount, fee.recurring.usage_type) == (10000, "licensed")
    return meter, usage, fee


def clock_customer(client, frozen_time, payment_method, name="Jenny Rosen"):
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": frozen_time, "name": name})
    assert (clock.status, clock.frozen_time) == ("ready", frozen_time)
    cus = client.v1.customers.create({
        "name": name, "email": "jenny.rosen@example.com", "test_clock": clock.id, "payment_method": payment_method})
    assert cus.test_clock == clock.id and cus.created == frozen_time
    return clock, cus


def tokens(client, customer, value, **extra):
    return client.v1.billing.meter_events.create({
        "event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": customer, "value": str(value)}, **extra})


def by_price(invoice):
    """{price id: (amount, quantity, period start, period end)} of an invoice's lines."""
    out = {}
    for line in invoice.lines.data:
        price = line.pricing.price_details.price
        assert price not in out, f"two lines for {price}"
        out[price] = (line.amount, line.quantity, line.period.start, line.period.end)
    return out


def list_events(client, **params):
    events = client.v1.events.list({"limit": 100, **params})
    return events.data


# --- 1. seed 000: fixed fee and overages on a test clock -----------------------------------------------------

def test_seed_000_fixed_fee_and_overages_renews_on_the_test_clock(client):
    _, usage, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")  # seed 000's 4242 4242 4242 4242
    sub = client.v1.subscriptions.create({
        "customer": cus.id, "items": [{"price": fee.id}, {"price": usage.id}], "expand": ["latest_invoice"]})
    assert sub.status == "active"
    assert (sub.current_period_start, sub.current_period_end) == (MAY_1, JUN_1)
    metered = [it for it in sub["items"].data if it.price.id == usage.id][0]
    assert metered.quantity is None  # usage decides a metered item's quantity
    # The first invoice: the license fee in advance for May, 100 USD = 10000; no usage yet. Paid at creation.
    first = sub.latest_invoice
    assert (first.status, first.billing_reason, first.total, first.amount_paid) == (
        "paid", "subscription_create", 10000, 10000)
    assert by_price(first) == {fee.id: (10000, 1, MAY_1, JUN_1)}

    advance(client, clock.id, ts(2026, 5, 10))
    # Without a timestamp the events get the clock's time (May 10th, inside the May period).
    e1 = tokens(client, cus.id, 1200)
    assert e1.timestamp == ts(2026, 5, 10)
    tokens(client, cus.id, 800, timestamp=ts(2026, 5, 9, 12))  # an explicit time in the clock's past
    # Preview with the usage so far: 2,000 tokens → (2,000 − 1,000) × 4 = 4000, plus June's license 10000 = 14000.
    preview = poll(lambda: client.v1.invoices.create_preview({"subscription": sub.id}),
                   lambda inv: inv.total == 14000)
    assert preview.total == 14000
    assert by_price(preview) == {fee.id: (10000, 1, JUN_1, JUL_1), usage.id: (4000, 2000, MAY_1, JUN_1)}
    tokens(client, cus.id, 1500)  # 3,500 tokens in May

    # The period ends June 1st; the cycle invoice is a draft for the 1-hour grace period, then charged.
    advance(client, clock.id, JUN_1 + 2 * HOUR)
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.id for i in invoices][1:] == [first.id]  # newest first
    cycle = invoices[0]
    # License 10000 for June in advance; usage for May in arrears: (3,500 − 1,000) × 4 = 10000. Total 20000.
    assert by_price(cycle) == {fee.id: (10000, 1, JUN_1, JUL_1), usage.id: (10000, 3500, MAY_1, JUN_1)}
    assert (cycle.billing_reason, cycle.status, cycle.subtotal, cycle.total, cycle.amount_due, cycle.amount_paid,
            cycle.amount_remaining) == ("subscription_cycle", "paid", 20000, 20000, 20000, 20000, 0)
    assert (cycle.period_start, cycle.period_end) == (MAY_1, JUN_1)
    assert cycle.status_transitions.finalized_at == JUN_1 + HOUR  # after the grace hour
    assert client.v1.invoices.retrieve(cycle.id).total == 20000
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert (renewed.status, renewed.current_period_start, renewed.current_period_end, renewed.latest_invoice) == (
        "active", JUN_1, JUL_1, cycle.id)

    paid = list_events(client, type="invoice.paid")
    assert {e.data.object.id for e in paid} == {first.id, cycle.id}
    types = {e.type for e in list_events(client)}
    assert {"invoice.created", "invoice.finalized", "invoice.payment_succeeded",
            "test_helpers.test_clock.ready"} <= types
    # A clock moves at most two intervals of its shortest subscription at once (June 1st 02:00 → August 1st 02:00).
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": ts(2026, 8, 2)})
    assert err.value.param == "frozen_time"


# --- 2. seed 000: a declined card ----------------------------------------------------------------------------

def test_seed_000_declined_card_leaves_the_subscription_incomplete_until_paid(client):
    _, usage, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_chargeDeclined")  # seed 000's 4000 0000 0000 0002
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": fee.id}, {"price": usage.id}]})
    assert sub.status == "incomplete"
    inv = client.v1.invoices.retrieve(sub.latest_invoice)
    # 10000 due, one failed attempt, still open.
    assert (inv.status, inv.amount_due, inv.amount_paid, inv.attempt_count) == ("open", 10000, 0, 1)
    # Paying with an insufficient-funds card (seed 000's 4000 0000 0000 9995) is a card error.
    with pytest.raises(stripe.CardError) as err:
        client.v1.invoices.pay(inv.id, {"payment_method": "pm_card_chargeDeclinedInsufficientFunds"})
    assert (err.value.code, err.value.error.decline_code) == ("card_declined", "insufficient_funds")
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    # Paying the open invoice with a good card activates the subscription.
    paid = client.v1.invoices.pay(inv.id, {"payment_method": "pm_card_visa"})
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 10000, 0)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(inv.id)  # a paid invoice cannot be voided
    failed = list_events(client, type="invoice.payment_failed")
    assert len(failed) == 2 and {e.data.object.id for e in failed} == {inv.id}

    # The renewal: the default card still declines, so the subscription goes past_due; /pay with a good card.
    cus = client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": "pm_card_chargeDeclined"}})
    assert cus.invoice_settings.default_payment_method == "pm_card_chargeDeclined"
    advance(client, clock.id, JUN_1 + 2 * HOUR)
    cycle = client.v1.invoices.list({"subscription": sub.id, "status": "open"}).data
    assert len(cycle) == 1
    cycle = cycle[0]
    # June's license 10000 + May's usage 0 tokens (first tier, 0 USD) = 10000.
    assert by_price(cycle) == {fee.id: (10000, 1, JUN_1, JUL_1), usage.id: (0, 0, MAY_1, JUN_1)}
    assert (cycle.total, cycle.amount_remaining, cycle.attempt_count) == (10000, 10000, 1)
    assert cycle.next_payment_attempt is not None and cycle.next_payment_attempt > JUN_1 + HOUR
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    assert client.v1.invoices.pay(cycle.id, {"payment_method": "pm_card_visa"}).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_manual_pay_attempts_do_not_shorten_the_retry_schedule(client):
    # Stripe, Invoice.attempt_count: "Any payment attempt counts as the first attempt, and subsequently only
    # automatic retries increment the attempt count. In other words, manual payment attempts after the first
    # attempt do not affect the retry schedule."
    _, _, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": fee.id}]})
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": "pm_card_chargeDeclined"}})
    advance(client, clock.id, JUN_1 + 2 * HOUR)
    inv = client.v1.invoices.list({"subscription": sub.id, "status": "open"}).data[0]
    first_retry = JUN_1 + HOUR + 3 * 86400  # finalized and first charged at 01:00; retried 3 days later
    assert (inv.attempt_count, inv.next_payment_attempt) == (1, first_retry)
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            client.v1.invoices.pay(inv.id, {"payment_method": "pm_card_chargeDeclined"})
    inv = client.v1.invoices.retrieve(inv.id)
    assert (inv.attempt_count, inv.next_payment_attempt) == (1, first_retry)
    # The first automatic retry fails too: the second automatic attempt, the schedule goes on (5 days later).
    advance(client, clock.id, first_retry + HOUR)
    inv = client.v1.invoices.retrieve(inv.id)
    assert (inv.attempt_count, inv.next_payment_attempt) == (2, first_retry + 5 * 86400)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"


def test_an_incomplete_subscription_expires_when_its_first_invoice_stays_unpaid(client):
    _, _, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_chargeDeclined")
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": fee.id}]})
    assert sub.status == "incomplete"
    advance(client, clock.id, MAY_1 + 24 * HOUR)  # 23 hours to pay the first invoice
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert expired.status == "incomplete_expired"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "void"


# --- 3. seed 001: multiple products, quantities and transform_quantity ---------------------------------------

def seed_001_catalog(client):
    emails_meter = client.v1.billing.meters.create({
        "display_name": "Emails sent", "event_name": "emails_sent", "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"}})
    plan = client.v1.products.create({"name": "Basic plan"})
    hosting = client.v1.products.create({"name": "Site hosting"})
    suite = client.v1.products.create({"name": "Productivity suite"})
    emails = client.v1.products.create({"name": "Marketing emails"})
    month = {"interval": "month"}
    prices = {
        # the seed's 29.95 USD price
        "plan": client.v1.prices.create({"product": plan.id, "currency": "usd", "unit_amount": 2995,
                                         "recurring": month}),
        # "1 site per month for 9.99 USD", billed per site as the quantity
        "hosting": client.v1.prices.create({"product": hosting.id, "currency": "usd", "unit_amount": 999,
                                            "recurring": month}),
        # "Standard Cost Per 5 Users": 10 USD per 5 users (or part thereof), divide by 5 and round up
        "per5": client.v1.prices.create({
            "product": suite.id, "nickname": "Standard Cost Per 5 Users", "currency": "usd", "unit_amount": 1000,
            "transform_quantity": {"divide_by": 5, "round": "up"},
            "recurring": {"interval": "month", "usage_type": "licensed"}}),
        # "Metered Emails": 0.10 USD per full 1,000 emails, divide by 1000 and round down
        "emails": client.v1.prices.create({
            "product": emails.id, "nickname": "Metered Emails", "currency": "usd", "unit_amount": 10,
            "transform_quantity": {"divide_by": 1000, "round": "down"},
            "recurring": {"interval": "month", "usage_type": "metered", "meter": emails_meter.id}}),
    }
    assert prices["per5"].transform_quantity.divide_by == 5 and prices["per5"].transform_quantity.round == "up"
    return prices


def test_seed_001_multiple_items_quantities_and_transform_quantity(client):
    prices = seed_001_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")
    sub = client.v1.subscriptions.create({"customer": cus.id, "expand": ["latest_invoice"], "items": [
        {"price": prices["plan"].id},                   # quantity defaults to 1
        {"price": prices["hosting"].id, "quantity": 2},  # the seed's items[1][quantity]=2
        {"price": prices["per5"].id, "quantity": 6},     # 6 users
        {"price": prices["emails"].id},                  # metered: no quantity
    ]})
    assert sub.status == "active"
    items = {it.price.id: it for it in sub["items"].data}
    assert [items[prices[k].id].quantity for k in ("plan", "hosting", "per5", "emails")] == [1, 2, 6, None]
    first = sub.latest_invoice
    # One invoice for all items: 1 × 2995 + 2 × 999 = 1998 + ceil(6 / 5) = 2 × 1000 = 2000 → 6993.
    assert by_price(first) == {prices["plan"].id: (2995, 1, MAY_1, JUN_1),
                               prices["hosting"].id: (1998, 2, MAY_1, JUN_1),
                               prices["per5"].id: (2000, 6, MAY_1, JUN_1)}
    assert (first.status, first.total, first.amount_paid) == ("paid", 6993, 6993)

    advance(client, clock.id, ts(2026, 5, 15))
    # 12,345 emails in May: floor(12,345 / 1,000) = 12 × 10 = 120.
    for value in (5000, 7000, 345):
        client.v1.billing.meter_events.create({
            "event_name": "emails_sent", "payload": {"stripe_customer_id": cus.id, "value": str(value)}})
    # More sites and users: no proration, the new quantities are billed from the next period on.
    updated = client.v1.subscriptions.update(sub.id, {"proration_behavior": "none", "items": [
        {"id": items[prices["hosting"].id].id, "quantity": 5},
        {"id": items[prices["per5"].id].id, "quantity": 11}]})
    assert updated.status == "active"
    assert [i.id for i in client.v1.invoices.list({"subscription": sub.id}).data] == [first.id]  # nothing billed now
    assert client.v1.invoices.retrieve(first.id).total == 6993
    # Next invoice: 2995 + 5 × 999 = 4995 + ceil(11 / 5) = 3 × 1000 = 3000 + 120 of May's emails = 11110.
    expected = {prices["plan"].id: (2995, 1, JUN_1, JUL_1), prices["hosting"].id: (4995, 5, JUN_1, JUL_1),
                prices["per5"].id: (3000, 11, JUN_1, JUL_1), prices["emails"].id: (120, 12345, MAY_1, JUN_1)}
    preview = poll(lambda: client.v1.invoices.create_preview({"subscription": sub.id}),
                   lambda inv: inv.total == 11110)
    assert by_price(preview) == expected and preview.total == 11110

    advance(client, clock.id, JUN_1 + 2 * HOUR)
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert len(invoices) == 2 and invoices[1].id == first.id
    cycle = invoices[0]
    assert by_price(cycle) == expected
    assert (cycle.billing_reason, cycle.status, cycle.total, cycle.amount_paid) == (
        "subscription_cycle", "paid", 11110, 11110)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert {it.price.id: it.quantity for it in renewed["items"].data} == {
        prices["plan"].id: 1, prices["hosting"].id: 5, prices["per5"].id: 11, prices["emails"].id: None}


def test_seed_001_several_subscriptions_for_one_customer_each_with_its_own_invoice(client):
    prices = seed_001_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")
    # The seed's transform_quantity table, one subscription per row: users → ceil(users / 5) × 10 USD.
    table = {1: 1000, 3: 1000, 5: 1000, 6: 2000, 7: 2000}
    subs = {}
    for users, amount in table.items():
        sub = client.v1.subscriptions.create({
            "customer": cus.id, "items": [{"price": prices["per5"].id, "quantity": users}],
            "expand": ["latest_invoice"]})
        assert (sub.status, sub.latest_invoice.total, sub.latest_invoice.status) == ("active", amount, "paid")
        subs[users] = sub
    # A later subscription for the same customer has its own period, anchored at its own start.
    advance(client, clock.id, ts(2026, 5, 15))
    later = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": prices["plan"].id}]})
    assert (later.current_period_start, later.current_period_end) == (ts(2026, 5, 15), ts(2026, 6, 15))
    listed = client.v1.subscriptions.list({"customer": cus.id, "limit": 10}).data
    assert {s.id for s in listed} == {s.id for s in subs.values()} | {later.id}
    invoices = client.v1.invoices.list({"customer": cus.id, "limit": 10}).data
    # six subscriptions, six first invoices: 1000 + 1000 + 1000 + 2000 + 2000 + 2995 = 9995
    assert len({i.id for i in invoices}) == 6 and sum(i.amount_paid for i in invoices) == 9995
    assert {i.parent.subscription_details.subscription for i in invoices} == {s.id for s in listed}

    # June 1st renews the five May subscriptions, each on its own invoice; the May 15th one is not due yet.
    advance(client, clock.id, JUN_1 + 2 * HOUR)
    for users, amount in table.items():
        cycle = client.v1.invoices.list({"subscription": subs[users].id}).data[0]
        assert (cycle.billing_reason, cycle.status, cycle.total) == ("subscription_cycle", "paid", amount)
        assert (cycle.lines.data[0].period.start, cycle.lines.data[0].period.end) == (JUN_1, JUL_1)
    assert len(client.v1.invoices.list({"subscription": later.id}).data) == 1
    advance(client, clock.id, ts(2026, 6, 15, 2))
    cycle = client.v1.invoices.list({"subscription": later.id}).data[0]
    assert (cycle.billing_reason, cycle.status, cycle.total) == ("subscription_cycle", "paid", 2995)
    assert (cycle.lines.data[0].period.start, cycle.lines.data[0].period.end) == (ts(2026, 6, 15), ts(2026, 7, 15))


# --- 4. cancellation -----------------------------------------------------------------------------------------

def test_cancel_at_period_end_then_advancing_past_the_period_end(client):
    _, usage, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": fee.id}, {"price": usage.id}]})
    advance(client, clock.id, ts(2026, 5, 20))
    tokens(client, cus.id, 1500)
    flagged = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert (flagged.status, flagged.cancel_at_period_end) == ("active", True)
    assert flagged.canceled_at == ts(2026, 5, 20)  # Stripe: the time of the request that set the flag
    # Still active until the period ends; the preview has no license line for June, only May's usage:
    # (1,500 − 1,000) × 4 = 2000.
    preview = poll(lambda: client.v1.invoices.create_preview({"subscription": sub.id}),
                   lambda inv: inv.total == 2000)
    assert by_price(preview) == {usage.id: (2000, 1500, MAY_1, JUN_1)}

    advance(client, clock.id, JUN_1 + 2 * HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", JUN_1)
    deleted = list_events(client, type="customer.subscription.deleted")
    assert [e.data.object.id for e in deleted] == [sub.id]
    assert deleted[0].data.object.status == "canceled"
    # The final invoice bills May's usage in arrears (2000) and no June license.
    final = client.v1.invoices.list({"subscription": sub.id}).data[0]
    assert by_price(final) == {usage.id: (2000, 1500, MAY_1, JUN_1)}
    assert (final.status, final.total, final.amount_paid) == ("paid", 2000, 2000)
    # Ended subscriptions are not in the default list; they are with status=canceled.
    assert client.v1.subscriptions.list({"customer": cus.id}).data == []
    assert [s.id for s in client.v1.subscriptions.list({"customer": cus.id, "status": "canceled"}).data] == [sub.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})


def test_cancel_now_with_invoice_now_bills_the_usage_so_far(client):
    _, usage, fee = alpaca_catalog(client)
    clock, cus = clock_customer(client, MAY_1, "pm_card_visa")
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": fee.id}, {"price": usage.id}]})
    advance(client, clock.id, ts(2026, 5, 10))
    tokens(client, cus.id, 2250, timestamp=ts(2026, 5, 9, 12))  # before the cancel: periods are [start, end)
    canceled = client.v1.subscriptions.cancel(sub.id, {"invoice_now": True})
    assert (canceled.status, canceled.canceled_at, canceled.ended_at) == ("canceled", ts(2026, 5, 10),
                                                                          ts(2026, 5, 10))
    # A final invoice for the un-invoiced usage: (2,250 − 1,000) × 4 = 5000, paid right away; no license line.
    final = client.v1.invoices.retrieve(canceled.latest_invoice)
    assert by_price(final) == {usage.id: (5000, 2250, MAY_1, ts(2026, 5, 10))}
    assert (final.status, final.total, final.amount_paid) == ("paid", 5000, 5000)
    assert [e.data.object.id for e in list_events(client, type="customer.subscription.deleted")] == [sub.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(sub.id)
