"""Seed 004 (changing a subscription's price: upgrades, downgrades, proration) end to end through the official
`stripe` SDK against a running `tally run`, changing only the base URL and key: each of the seed's curl
examples, and the update paths (the three proration behaviours, `proration_date`, billing-period resets,
downgrade credits, a failed immediate payment, a pending update).

The money, worked by hand. A test clock starts at Jun 1 2026; June has 30 days. The changes happen on Jun 11
00:00, with 20 of the period's 30 days left: every proration line is the full period's amount × 20/30,
rounded half-up once (reference §4.1, A.1):
    Basic 10 USD:     1000 × 2/3 =  666.67 →  667       2 × Basic: 2000 × 2/3 = 1333.33 → 1333
    Premium 25 USD:   2500 × 2/3 = 1666.67 → 1667       3 × Basic: 3000 × 2/3 = 2000
    Add-on 6 USD × 2: 1200 × 2/3 =  800
With `proration_date` on Jun 16 (15 of 30 days left, 1/2): 1 × Basic −500, 2 × Basic +1000.
Subscriptions are `flexible` (the default for the API version the SDK sends): a credit is for what was billed.
"""

import calendar
import time

import pytest
import stripe

from tests.test_stripe_sdk_billing import advance


@pytest.fixture
def client(server):
    base, key = server
    return stripe.StripeClient(key, base_addresses={"api": base, "meter_events": base})


def ts(y, m, d, h=0):
    return calendar.timegm((y, m, d, h, 0, 0))


JUN_1, JUN_11, JUN_16, JUL_1, AUG_1 = ts(2026, 6, 1), ts(2026, 6, 11), ts(2026, 6, 16), ts(2026, 7, 1), ts(2026, 8, 1)
HOUR = 3600


# --- helpers -------------------------------------------------------------------------------------------------

def catalog(client) -> dict:
    """Nicknamed prices, so that the proration descriptions read as the docs' ("Unused time on Basic …")."""
    def price(nickname, amount, interval="month"):
        return client.v1.prices.create({"currency": "usd", "unit_amount": amount, "nickname": nickname,
                                        "product_data": {"name": nickname}, "recurring": {"interval": interval}})
    return {"basic": price("Basic", 1000), "premium": price("Premium", 2500), "addon": price("Add-on", 600),
            "basic_yearly": price("Basic yearly", 10000, "year"), "free": price("Free", 0)}


def customer(client, clock, payment_method="pm_card_visa"):
    return client.v1.customers.create({"name": "Jenny Rosen", "test_clock": clock.id, "payment_method": payment_method})


def subscribe(client, cus, price, quantity=1):
    return client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id, "quantity": quantity}]})


def pending(client, cus):
    """(description, amount, period start, period end) of the customer's pending invoice items, oldest first."""
    items = client.v1.invoice_items.list({"customer": cus.id, "pending": True}).data
    return sorted((i.description, i.amount, i.period.start, i.period.end) for i in items)


def lines(invoice):
    return [(line.amount, line.parent.subscription_item_details.proration) for line in invoice.lines.data]


def renewal(client, sub):
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert invoices[0].billing_reason == "subscription_cycle"
    return invoices[0]


def unused(name, amount, start=JUN_11):
    return (f"Unused time on {name} after {time.strftime('%d %b %Y', time.gmtime(start))}", amount, start, JUL_1)


def remaining(name, amount, start=JUN_11):
    return (f"Remaining time on {name} after {time.strftime('%d %b %Y', time.gmtime(start))}", amount, start, JUL_1)


# --- 1. the identifiers to update: list subscriptions by customer ----------------------------------------------

def test_listing_a_customers_subscriptions_gives_the_ids_to_update(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    cus, other = customer(client, clock), customer(client, clock)
    sub = subscribe(client, cus, prices["basic"])
    subscribe(client, other, prices["premium"])
    # curl -G /v1/subscriptions -d customer={{CUSTOMER_ID}}
    listed = client.v1.subscriptions.list({"customer": cus.id})
    assert (listed.object, listed.url, listed.has_more, [s.id for s in listed.data]) == (
        "list", "/v1/subscriptions", False, [sub.id])
    found = listed.data[0]
    item = found["items"].data[0]
    assert (item.object, item.id, item.price.id, item.quantity) == (
        "subscription_item", sub["items"].data[0].id, prices["basic"].id, 1)
    assert found["items"].url == f"/v1/subscription_items?subscription={sub.id}"


# --- 2. swap the price: items[0][id] + items[0][price] ---------------------------------------------------------

def test_a_price_swap_keeps_the_item_and_puts_the_quantity_back_to_1(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    cus = customer(client, clock)
    sub = subscribe(client, cus, prices["basic"], quantity=3)
    item = sub["items"].data[0]
    advance(client, clock.id, JUN_11)
    # curl /v1/subscriptions/sub_… -d items[0][id]={{SUB_ITEM_ID}} -d items[0][price]={{NEW_PRICE_ID}}
    updated = client.v1.subscriptions.update(sub.id, {"items": [{"id": item.id, "price": prices["premium"].id}]})
    # the seed's warning: the quantity is back to 1, since the request did not give it
    assert [(i.id, i.price.id, i.quantity) for i in updated["items"].data] == [(item.id, prices["premium"].id, 1)]
    # create_prorations (the default): unused time on 3 × Basic −2000, remaining time on Premium +1667, pending
    assert pending(client, cus) == [remaining("Premium", 1667), unused("3 × Basic", -2000)]
    items = client.v1.invoice_items.list({"customer": cus.id, "pending": True}).data
    assert all(i.proration and not i.discountable for i in items)

    # July's invoice takes them first, then Premium for July: −2000 + 1667 + 2500 = 2167
    advance(client, clock.id, JUL_1 + 2 * HOUR)
    cycle = renewal(client, sub)
    assert lines(cycle) == [(-2000, True), (1667, True), (2500, False)]
    assert (cycle.total, cycle.status, cycle.amount_paid) == (2167, "paid", 2167)
    assert pending(client, cus) == []


# --- 3. delete the item and add the new price; the seed's "common mistake" -------------------------------------

def test_deleting_the_item_and_adding_the_new_price(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    cus, mistaken = customer(client, clock), customer(client, clock)
    sub, both = subscribe(client, cus, prices["basic"]), subscribe(client, mistaken, prices["basic"])
    item = sub["items"].data[0]
    advance(client, clock.id, JUN_11)
    # curl … -d items[0][id]={{SUB_ITEM_ID}} -d items[0][deleted]=true -d items[1][price]={{NEW_PRICE_ID}}
    updated = client.v1.subscriptions.update(sub.id, {"items": [{"id": item.id, "deleted": True},
                                                                {"price": prices["premium"].id}]})
    assert [(i.price.id, i.quantity) for i in updated["items"].data] == [(prices["premium"].id, 1)]
    assert updated["items"].data[0].id != item.id  # a new item
    assert pending(client, cus) == [remaining("Premium", 1667), unused("Basic", -667)]

    # The common mistake: a new price without the item's id adds an item, and both prices are active.
    added = client.v1.subscriptions.update(both.id, {"items": [{"price": prices["premium"].id}],
                                                     "proration_behavior": "none"})
    assert sorted(i.price.nickname for i in added["items"].data) == ["Basic", "Premium"]
    assert pending(client, mistaken) == []

    advance(client, clock.id, JUL_1 + 2 * HOUR)
    # −667 + 1667 + 2500 = 3500; the mistaken customer pays both prices for July: 2500 + 1000 = 3500 too
    cycle = renewal(client, sub)
    assert (lines(cycle), cycle.total) == ([(-667, True), (1667, True), (2500, False)], 3500)
    # subscription items newest first: Premium (added Jun 11), then Basic (since Jun 1)
    assert [line.amount for line in renewal(client, both).lines.data] == [2500, 1000]


# --- 4. update the item itself: /v1/subscription_items -----------------------------------------------------------

def test_the_subscription_items_endpoint(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    cus = customer(client, clock)
    sub = subscribe(client, cus, prices["basic"])
    item = sub["items"].data[0]
    advance(client, clock.id, JUN_11)
    listed = client.v1.subscription_items.list({"subscription": sub.id})
    assert (listed.url, [i.id for i in listed.data]) == ("/v1/subscription_items", [item.id])

    # curl /v1/subscription_items/si_… -d price={{NEW_PRICE_ID}}
    swapped = client.v1.subscription_items.update(item.id, {"price": prices["premium"].id})
    assert (swapped.object, swapped.id, swapped.price.id, swapped.quantity, swapped.subscription) == (
        "subscription_item", item.id, prices["premium"].id, 1, sub.id)
    assert pending(client, cus) == [remaining("Premium", 1667), unused("Basic", -667)]

    # an item added, read back, listed and removed: its remaining time charged, then credited (flexible: what
    # was billed for it, 800)
    addon = client.v1.subscription_items.create({"subscription": sub.id, "price": prices["addon"].id, "quantity": 2,
                                                 "metadata": {"seats": "support"}})
    assert (addon.price.id, addon.quantity, addon.metadata.to_dict(), addon.current_period_end) == (
        prices["addon"].id, 2, {"seats": "support"}, JUL_1)
    assert client.v1.subscription_items.retrieve(addon.id).to_dict() == addon.to_dict()
    assert [i.id for i in client.v1.subscription_items.list({"subscription": sub.id}).data] == [item.id, addon.id]
    page = client.v1.subscription_items.list({"subscription": sub.id, "limit": 1})
    assert ([i.id for i in page.data], page.has_more) == ([item.id], True)
    deleted = client.v1.subscription_items.delete(addon.id)
    assert (deleted.id, deleted.deleted) == (addon.id, True)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscription_items.retrieve(addon.id)
    assert (err.value.http_status, err.value.code, err.value.param) == (404, "resource_missing", "id")
    assert pending(client, cus) == [remaining("2 × Add-on", 800), remaining("Premium", 1667),
                                    unused("2 × Add-on", -800), unused("Basic", -667)]
    # a refusal names this endpoint's parameter
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscription_items.update(item.id, {"price": "price_missing"})
    assert (err.value.param, err.value.code) == ("price", "resource_missing")

    advance(client, clock.id, JUL_1 + 2 * HOUR)
    # −667 + 1667 + 800 − 800 + 2500 = 3500
    cycle = renewal(client, sub)
    assert (cycle.total, cycle.status) == (3500, "paid")
    assert [line.amount for line in cycle.lines.data] == [-667, 1667, 800, -800, 2500]


# --- 5. clear_usage on a meter-backed price ----------------------------------------------------------------------

def test_clear_usage_has_no_effect_on_a_price_with_a_billing_meter(client):
    meter = client.v1.billing.meters.create({
        "display_name": "API calls", "event_name": "api_calls", "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"}})

    def metered(nickname, cents):
        return client.v1.prices.create({"currency": "usd", "unit_amount": cents, "nickname": nickname,
                                        "product_data": {"name": nickname},
                                        "recurring": {"interval": "month", "usage_type": "metered",
                                                      "meter": meter.id}})
    old, new = metered("Calls", 2), metered("Calls v2", 3)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    cus = customer(client, clock)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": old.id}]})
    item = sub["items"].data[0]

    def calls(value, counted):
        client.v1.billing.meter_events.create({"event_name": "api_calls",
                                               "payload": {"stripe_customer_id": cus.id, "value": str(value)}})
        deadline = time.time() + 20  # aggregation is asynchronous, as Stripe's
        while time.time() < deadline:
            summary = client.v1.billing.meters.event_summaries.list(meter.id, {
                "customer": cus.id, "start_time": JUN_1, "end_time": JUL_1}).data
            if summary and summary[0].aggregated_value == counted:
                return
            time.sleep(0.2)
        raise AssertionError("usage never aggregated")

    advance(client, clock.id, ts(2026, 6, 5))
    calls(100, 100)
    advance(client, clock.id, JUN_11)
    # curl … -d items[0][id] -d items[0][price] -d items[0][clear_usage]=true
    updated = client.v1.subscriptions.update(sub.id, {"items": [{"id": item.id, "price": new.id,
                                                                 "clear_usage": True}]})
    assert [(i.id, i.price.id, i.quantity) for i in updated["items"].data] == [(item.id, new.id, None)]
    # The usage so far is not cleared: it is billed at the old price, 100 × 2 = 200 (flexible mode, §1.11).
    assert [(d[1], d[2], d[3]) for d in pending(client, cus)] == [(200, JUN_1, JUN_11)]
    advance(client, clock.id, ts(2026, 6, 20))
    calls(50, 150)
    advance(client, clock.id, JUL_1 + 2 * HOUR)
    # The new price counts from the change on: 50 × 3 = 150; July's invoice 200 + 150 = 350.
    cycle = renewal(client, sub)
    assert [(line.amount, line.period.start, line.period.end) for line in cycle.lines.data] == [
        (200, JUN_1, JUN_11), (150, JUN_11, JUL_1)]
    assert (cycle.total, cycle.status) == (350, "paid")


# --- 6. the update paths: proration behaviours, proration_date -----------------------------------------------------

def test_the_three_proration_behaviours_and_proration_date(client):
    prices = catalog(client)
    basic = prices["basic"]
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    up, now_, none, dated = (customer(client, clock) for _ in range(4))
    subs = {c.id: subscribe(client, c, basic) for c in (up, now_, none, dated)}

    def change(cus, **params):
        sub = subs[cus.id]
        return client.v1.subscriptions.update(sub.id, {"items": [{"id": sub["items"].data[0].id, **params.pop(
            "item")}], **params, "expand": ["latest_invoice"]})

    advance(client, clock.id, JUN_11)
    # create_prorations (the default): 1 → 3 seats, −667 and +2000 wait for July's invoice
    assert change(up, item={"quantity": 3})["items"].data[0].quantity == 3
    assert pending(client, up) == [remaining("3 × Basic", 2000), unused("Basic", -667)]

    # always_invoice: 1 → 2 seats, invoiced and paid at once: −667 + 1333 = 666
    billed = change(now_, item={"quantity": 2}, proration_behavior="always_invoice")
    inv = billed.latest_invoice
    assert (inv.billing_reason, inv.status, inv.total, inv.amount_paid) == ("subscription_update", "paid", 666, 666)
    assert [(line.description, line.amount) for line in inv.lines.data] == [
        ("Unused time on Basic after 11 Jun 2026", -667), ("Remaining time on 2 × Basic after 11 Jun 2026", 1333)]
    assert (inv.period_start, inv.period_end) == (JUN_1, JUN_11)
    assert pending(client, now_) == []

    # none: 1 → 2 seats, shown at once, nothing billed until July
    quiet = change(none, item={"quantity": 2}, proration_behavior="none")
    assert quiet["items"].data[0].quantity == 2 and quiet.latest_invoice.billing_reason == "subscription_create"
    assert pending(client, none) == []

    # proration_date: as though changed on Jun 16 (half the period left): −500 and +1000
    change(dated, item={"quantity": 2}, proration_date=JUN_16)
    assert pending(client, dated) == [remaining("2 × Basic", 1000, JUN_16), unused("Basic", -500, JUN_16)]
    with pytest.raises(stripe.InvalidRequestError) as err:  # §4.6: within the current period
        change(dated, item={"quantity": 3}, proration_date=JUL_1 + 1)
    assert err.value.param == "proration_date"
    with pytest.raises(stripe.InvalidRequestError) as err:
        change(dated, item={"quantity": 3}, proration_behavior="sometimes")
    assert err.value.param == "proration_behavior"

    advance(client, clock.id, JUL_1 + 2 * HOUR)
    # July: up −667 + 2000 + 3000 = 4333; always_invoice 2000; none 2000; proration_date −500 + 1000 + 2000 = 2500
    assert [renewal(client, subs[c.id]).total for c in (up, now_, none, dated)] == [4333, 2000, 2000, 2500]
    assert lines(renewal(client, subs[up.id])) == [(-667, True), (2000, True), (3000, False)]


# --- 7. billing periods, downgrade credits, a failed immediate payment, a pending update ---------------------------

def test_interval_change_and_zero_to_paid_reset_the_period_and_invoice_at_once(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    monthly, free, zero = customer(client, clock), customer(client, clock), customer(client, clock)
    to_yearly = subscribe(client, monthly, prices["basic"])
    to_paid = subscribe(client, free, prices["free"])
    zero_seats = subscribe(client, zero, prices["basic"], quantity=0)
    advance(client, clock.id, JUN_11)

    # Monthly → yearly: the anchor moves to the change, invoiced at once: −667 for June's unused time, 10000 for
    # the year in advance: 9333.
    yearly = client.v1.subscriptions.update(to_yearly.id, {"items": [
        {"id": to_yearly["items"].data[0].id, "price": prices["basic_yearly"].id}], "expand": ["latest_invoice"]})
    assert (yearly.billing_cycle_anchor, yearly.current_period_start, yearly.current_period_end) == (
        JUN_11, JUN_11, ts(2027, 6, 11))
    inv = yearly.latest_invoice
    assert (inv.billing_reason, inv.total, inv.status) == ("subscription_update", 9333, "paid")
    assert sorted(line.amount for line in inv.lines.data) == [-667, 10000]

    # Free → paid resets the period too: 1000 for Jun 11 – Jul 11, nothing to credit.
    paid = client.v1.subscriptions.update(to_paid.id, {"items": [
        {"id": to_paid["items"].data[0].id, "price": prices["basic"].id}], "expand": ["latest_invoice"]})
    assert (paid.billing_cycle_anchor, paid.current_period_end) == (JUN_11, ts(2026, 7, 11))
    assert (paid.latest_invoice.total, paid.latest_invoice.status) == (1000, "paid")

    # A zero quantity becoming non-zero does not: the anchor stays, 0 → 1 seat prorates +667.
    seated = client.v1.subscriptions.update(zero_seats.id, {"items": [
        {"id": zero_seats["items"].data[0].id, "quantity": 1}]})
    assert (seated.billing_cycle_anchor, seated.current_period_end) == (JUN_1, JUL_1)
    assert pending(client, zero) == [remaining("Basic", 667)]


def test_downgrade_credits_failed_payment_and_pending_update(client):
    prices = catalog(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": JUN_1})
    down, declined, waiting = customer(client, clock), customer(client, clock), customer(client, clock)
    premium = subscribe(client, down, prices["premium"])
    failing = subscribe(client, declined, prices["basic"])
    held = subscribe(client, waiting, prices["basic"])
    for cus in (declined, waiting):  # the card declines from now on
        client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": "pm_card_chargeDeclined"}})
    advance(client, clock.id, JUN_11)

    # Downgrade credits: Premium → Basic invoiced at once, −1667 + 667 = −1000, goes to the customer's balance.
    cheaper = client.v1.subscriptions.update(premium.id, {"items": [
        {"id": premium["items"].data[0].id, "price": prices["basic"].id}], "proration_behavior": "always_invoice",
        "expand": ["latest_invoice"]})
    assert (cheaper.latest_invoice.total, cheaper.latest_invoice.amount_due) == (-1000, 0)
    assert client.v1.customers.retrieve(down.id).balance == -1000

    # The immediate payment fails: the change stands, the subscription is past_due.
    more = client.v1.subscriptions.update(failing.id, {"items": [
        {"id": failing["items"].data[0].id, "quantity": 2}], "proration_behavior": "always_invoice",
        "expand": ["latest_invoice"]})
    assert (more.status, more["items"].data[0].quantity) == ("past_due", 2)
    assert (more.latest_invoice.status, more.latest_invoice.amount_remaining) == ("open", 666)

    # pending_if_incomplete: the change waits for its invoice to be paid (23 hours), then applies.
    item = held["items"].data[0]
    kept = client.v1.subscriptions.update(held.id, {"items": [{"id": item.id, "quantity": 2}],
                                                    "proration_behavior": "always_invoice",
                                                    "payment_behavior": "pending_if_incomplete"})
    assert (kept.status, kept["items"].data[0].quantity) == ("active", 1)
    assert kept.pending_update.expires_at == JUN_11 + 23 * HOUR
    assert [i.quantity for i in kept.pending_update.subscription_items] == [2]
    paid = client.v1.invoices.pay(kept.latest_invoice, {"payment_method": "pm_card_visa"})
    assert (paid.status, paid.amount_paid) == ("paid", 666)
    applied = client.v1.subscriptions.retrieve(held.id)
    assert (applied.pending_update, applied["items"].data[0].quantity) == (None, 2)
    assert {e.type for e in client.v1.events.list({"limit": 100}).data} >= {
        "customer.subscription.pending_update_applied", "invoiceitem.created", "customer.subscription.updated"}

    # July: the downgraded customer's 1000 is paid from the 1000 credit.
    advance(client, clock.id, JUL_1 + 2 * HOUR)
    cycle = renewal(client, cheaper)
    assert (cycle.total, cycle.amount_due, cycle.starting_balance, cycle.ending_balance, cycle.status) == (
        1000, 0, -1000, 0, "paid")
    assert client.v1.customers.retrieve(down.id).balance == 0


# --- 8. previewing a change: the docs' example ------------------------------------------------------------------

def test_a_preview_reproduces_the_docs_example_to_the_cent(client):
    """§4.6: period 1596749288–1599427688, `proration_date` 1598982148, Silver 10 USD → Gold 32.52 USD. The
    share left is (1599427688 − 1598982148) / (1599427688 − 1596749288) = 445540 / 2678400 = 0.16635: credit
    −1000 × 0.16635 = −166.35 → −166, debit 3252 × 0.16635 = 540.97 → +541, then Gold for the next period 3252:
    the next invoice is 3627."""
    start, end, at = 1596749288, 1599427688, 1598982148

    def price(nickname, amount):
        return client.v1.prices.create({"currency": "usd", "unit_amount": amount, "nickname": nickname,
                                        "product_data": {"name": nickname}, "recurring": {"interval": "month"}})
    silver, gold = price("Silver", 1000), price("Gold", 3252)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": start})
    cus = customer(client, clock)
    sub = subscribe(client, cus, silver)
    assert (sub.current_period_start, sub.current_period_end) == (start, end)
    advance(client, clock.id, at)
    item = sub["items"].data[0]
    preview = client.v1.invoices.create_preview({"subscription": sub.id, "subscription_details": {
        "items": [{"id": item.id, "price": gold.id}], "proration_date": at}})
    assert [(line.amount, line.parent.subscription_item_details.proration) for line in preview.lines.data] == [
        (-166, True), (541, True), (3252, False)]
    assert [line.description for line in preview.lines.data][:2] == [
        "Unused time on Silver after 01 Sep 2020", "Remaining time on Gold after 01 Sep 2020"]
    assert preview.total == 3627
    # nothing was changed by looking
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == silver.id
    assert pending(client, cus) == []
    # Stripe's refusal rules: the proration date must fall within the current period
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create_preview({"subscription": sub.id, "subscription_details": {
            "items": [{"id": item.id, "price": gold.id}], "proration_date": end + 1}})
    assert err.value.param == "subscription_details[proration_date]"
    # and the change made for real bills what the preview showed
    client.v1.subscriptions.update(sub.id, {"items": [{"id": item.id, "price": gold.id}], "proration_date": at})
    assert sorted(i.amount for i in client.v1.invoice_items.list({"customer": cus.id, "pending": True}).data) == [
        -166, 541]
