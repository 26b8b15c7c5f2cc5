"""Issue 9's money, worked by hand: every number below is computed in its comment from the Stripe rule first
(reference §4.1 and A.4: f = (period end − change) / (period end − period start), by the second; each line is
the full period's amount × f, rounded half-up once, A.1), then asserted as the code decides it.

Most rows run through `decide` on a test clock (`Clocked`); the first table calls proration.py directly, where
a period and an item are clearer than the commands that lead to them. Changes invoiced at once, resets, payments,
metered items and cancellations are in test_proration_invoiced.py, on the same catalog and factories.
Times are 00:00 UTC unless a row says otherwise; a month of 31 days is 2,678,400 s, so "f = 17/31" means 17 days
of 86,400 s out of 31.
"""

from __future__ import annotations

import pytest

from tally_core.billing.book import Book, apply
from tally_core.billing.invoice_wire import to_stripe as invoice_to_stripe
from tally_core.billing.prices import create_price
from tally_core.billing.proration import item_prorations
from tally_core.billing.subscriptions import Item, Subscription

from .test_decide import Clocked, ts


def _price(key, amount, *, nickname=None, interval="month", metered=False):
    recurring = {"interval": interval}
    if metered:
        recurring.update(usage_type="metered", meter="mtr_tokens")
    params = {"currency": "usd", "unit_amount": str(amount), "product": f"prod_{key}", "recurring": recurring}
    if nickname:
        params["nickname"] = nickname
    return create_price(params, id=f"price_{key}", now=0)


# The catalog of these examples (amounts in cents; descriptions use the nickname, §4.1).
CATALOG = [
    _price("silver", 1000, nickname="Silver plan"), _price("gold", 3252, nickname="Gold plan"),  # §4.1's preview
    _price("ten", 1000, nickname="Ten"), _price("twenty", 2000, nickname="Twenty"),
    _price("fifty", 5000, nickname="Fifty"), _price("basic", 10000, nickname="Basic"),
    _price("pro", 20000, nickname="Pro"), _price("max", 30000, nickname="Max"),
    _price("seat", 5000, nickname="Seat"), _price("addon", 3000, nickname="Addon"),
    _price("free", 0, nickname="Free"),
    _price("annual", 100000, nickname="Annual", interval="year"),
    _price("yearly", 12000, nickname="Yearly", interval="year"),  # §3.5's 120 USD/year
    _price("team", 120000, nickname="Team", interval="year"), _price("business", 240000, nickname="Business",
                                                                       interval="year"),
    _price("tokens_a", 2, nickname="Tokens A", metered=True), _price("tokens_b", 3, nickname="Tokens B", metered=True),
]
PRICES = {p.id: p.to_stripe(expand=["tiers"]) for p in CATALOG}
BY_ID = {p.id: p for p in CATALOG}


# --- factories ------------------------------------------------------------------------------------------------

def started(at, *items, mode="flexible", pm="pm_card_visa", **params):
    """A customer on a test clock frozen at `at`, subscribed to `items` (price key, or (key, quantity)) then."""
    c = Clocked(frozen=at)
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": pm})
    wanted = [{"price": f"price_{i}"} if isinstance(i, str) else {"price": f"price_{i[0]}", "quantity": str(i[1])}
              for i in items]
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": wanted, "billing_mode": {"type": mode},
                                            **params}, prices=PRICES)
    return c


def sub(c) -> Subscription:
    return c.book.subscriptions["sub_1"]


def item(c, n=0) -> str:
    return sub(c).items[n].id


def change(c, **params):
    return c.send("subscription.update", "sub_1", params, prices=PRICES)


def swap(c, key, n=0, quantity=None, **params):
    """items[n][id] + items[n][price]: the item's price swapped (its quantity back to 1 unless given)."""
    swapped = {"id": item(c, n), "price": f"price_{key}"}
    if quantity is not None:
        swapped["quantity"] = quantity
    return change(c, items=[swapped], **params)


def pending(c):
    """The customer's pending invoice items as (amount, description), in the order they were made."""
    return [(it.amount, it.description) for it in c.book.pending_items.values()]


def latest(c):
    return c.book.invoices[sub(c).latest_invoice]


def amounts(inv):
    return [line.amount for line in inv.lines]


def balance(c) -> int:
    return c.book.customers["cus_1"].balance


def replays(c) -> bool:
    """The book is the fold of its events: what the projections hold came from them."""
    folded = Book("acct_1", "acct_1:clock_1")
    for event in c.events:
        folded = apply(folded, event)
    return folded == c.book


# --- A.4 directly: one period, one item, the lines it gives -----------------------------------------------------

def _period_sub(start, end, price, quantity, *, mode="classic", billed=None):
    item_ = Item("si_1", BY_ID[f"price_{price}"], quantity, start, billed=billed)
    return Subscription(id="sub_1", customer="cus_1", items=(item_,), anchor=start, created=start,
                        current_period_start=start, current_period_end=end, billing_mode=mode)


@pytest.mark.parametrize(("start", "end", "at", "old", "new", "mode", "billed", "lines"), [
    # §4.1's preview: 1596749288 → 1599427688 is 2,678,400 s; 1599427688 − 1598982148 = 445,540 s left;
    # f = 445540/2678400 = 0.16634558; Silver 1000 × f = 166.35 → −166, Gold 3252 × f = 540.96 → +541.
    pytest.param(1596749288, 1599427688, 1598982148, ("silver", 1), ("gold", 1), "classic", None,
                 [(-166, "Unused time on Silver plan after 01 Sep 2020"),
                  (541, "Remaining time on Gold plan after 01 Sep 2020")], id="docs-preview-silver-to-gold"),
    # "+5 USD at half a period": April has 30 days, Apr 16 leaves 15: f = 1/2 → −500, +1000 (net +500).
    pytest.param(ts(2026, 4, 1), ts(2026, 5, 1), ts(2026, 4, 16), ("ten", 1), ("twenty", 1), "classic", None,
                 [(-500, "Unused time on Ten after 16 Apr 2026"), (1000, "Remaining time on Twenty after 16 Apr 2026")],
                 id="half-period-plus-5-usd"),
    # §4.5 classic: the current price (Twenty, never billed) is credited: 2000/3 = 666.67 → −667; Ten 1000/3 =
    # 333.33 → +333 (April 21 → May 1 is 10 of 30 days, f = 1/3 exactly). Net −334: each line rounds alone.
    pytest.param(ts(2026, 4, 1), ts(2026, 5, 1), ts(2026, 4, 21), ("twenty", 1), ("ten", 1), "classic", 1000,
                 [(-667, "Unused time on Twenty after 21 Apr 2026"), (333, "Remaining time on Ten after 21 Apr 2026")],
                 id="classic-credits-the-current-price"),
    # §4.5 flexible: what was billed (Ten, 1000) is credited: 1000/3 = 333.33 → −333; +333. Net 0. (Which
    # price the credit's description names in flexible mode the reference does not say: not asserted.)
    pytest.param(ts(2026, 4, 1), ts(2026, 5, 1), ts(2026, 4, 21), ("twenty", 1), ("ten", 1), "flexible", 1000,
                 [(-333, None), (333, "Remaining time on Ten after 21 Apr 2026")],
                 id="flexible-credits-what-was-billed"),
    # At the period's first second f = 1: the whole period credited and charged again.
    pytest.param(ts(2026, 1, 1), ts(2026, 2, 1), ts(2026, 1, 1), ("basic", 1), ("pro", 1), "classic", None,
                 [(-10000, "Unused time on Basic after 01 Jan 2026"),
                  (20000, "Remaining time on Pro after 01 Jan 2026")],
                 id="at-the-period-start-f-is-1"),
    # In the last second f = 1/2678400: 10000 × f = 0.0037 and 20000 × f = 0.0075 both round to 0: no lines.
    pytest.param(ts(2026, 1, 1), ts(2026, 2, 1), ts(2026, 2, 1) - 1, ("basic", 1), ("pro", 1), "classic", None,
                 [], id="last-second-rounds-to-nothing"),
    # ... and with 1000 → 2000 seats: 10,000,000 × f = 3.73 → −4 and 20,000,000 × f = 7.47 → +7: net +3, where
    # rounding the net (3.73) would give 4.
    pytest.param(ts(2026, 1, 1), ts(2026, 2, 1), ts(2026, 2, 1) - 1, ("basic", 1000), ("basic", 2000), "classic",
                 None, [(-4, "Unused time on 1000 × Basic after 31 Jan 2026"),
                        (7, "Remaining time on 2000 × Basic after 31 Jan 2026")], id="last-second-tiny-lines"),
    # February 2024 has 29 days: Feb 15 leaves 15, f = 15/29; 10000 × f = 5172.41 → −5172, 20000 × f = 10344.83
    # → +10345.
    pytest.param(ts(2024, 2, 1), ts(2024, 3, 1), ts(2024, 2, 15), ("basic", 1), ("pro", 1), "classic", None,
                 [(-5172, "Unused time on Basic after 15 Feb 2024"),
                  (10345, "Remaining time on Pro after 15 Feb 2024")],
                 id="leap-february-15-of-29"),
    # February 2026 has 28: Feb 15 leaves 14, f = 1/2 → −5000, +10000.
    pytest.param(ts(2026, 2, 1), ts(2026, 3, 1), ts(2026, 2, 15), ("basic", 1), ("pro", 1), "classic", None,
                 [(-5000, "Unused time on Basic after 15 Feb 2026"),
                  (10000, "Remaining time on Pro after 15 Feb 2026")],
                 id="common-february-14-of-28"),
])
def test_proration_lines_by_the_second(start, end, at, old, new, mode, billed, lines):
    # given: one licensed item for the period [start, end)
    before = _period_sub(start, end, *old, mode=mode, billed=billed)
    after = _period_sub(start, end, *new, mode=mode, billed=billed)
    # when: it changes at `at`
    got = item_prorations(before, after, at)
    # then: a credit for the unused time, a debit for the remaining time, both over [at, end)
    assert [(line.amount, line.description if text else None) for line, (_, text) in zip(got, lines)] == lines
    assert len(got) == len(lines)
    assert all((line.period_start, line.period_end) == (at, end) for line in got)


# --- §4.1's preview example, through the commands --------------------------------------------------------------

def test_the_docs_preview_example_to_the_cent():
    # given: Silver (10 USD/month) from 2020-08-06T21:28:08Z, so the period ends 2020-09-06T21:28:08Z (A.3)
    c = started(1596749288, "silver")
    assert (sub(c).current_period_start, sub(c).current_period_end) == (1596749288, 1599427688)
    # when: an hour after 2020-09-01T17:42:28Z the item moves to Gold, prorated as of that moment (§4.6)
    c.advance(1598982148 + 3600)
    swap(c, "gold", proration_date=str(1598982148))
    # then: f = 445540/2678400: 1000 × f = 166.35 → −166; 3252 × f = 540.96 → +541, both pending (§4.2)
    assert pending(c) == [(-166, "Unused time on Silver plan after 01 Sep 2020"),
                          (541, "Remaining time on Gold plan after 01 Sep 2020")]
    for obj in (it.to_stripe() for it in c.book.pending_items.values()):
        assert (obj["proration"], obj["discountable"]) == (True, False)
        assert obj["period"] == {"start": 1598982148, "end": 1599427688}
    # and the renewal takes them first, credit then debit, then Gold for the new period: −166 + 541 + 3252 = 3627
    c.advance(1599427688)
    renewal = invoice_to_stripe(latest(c))
    assert [(l["amount"], l["period"]["start"], l["period"]["end"], l["discountable"],
             l["parent"]["subscription_item_details"]["proration"]) for l in renewal["lines"]["data"]] == [
        (-166, 1598982148, 1599427688, False, True),
        (541, 1598982148, 1599427688, False, True),
        (3252, 1599427688, 1602019688, True, False)]
    assert [l["description"] for l in renewal["lines"]["data"][:2]] == [
        "Unused time on Silver plan after 01 Sep 2020", "Remaining time on Gold plan after 01 Sep 2020"]
    assert (renewal["subtotal"], renewal["total"], renewal["amount_due"]) == (3627, 3627, 3627)
    assert not c.book.pending_items


# --- one change in a period with create_prorations; the next renewal collects it --------------------------------

@pytest.mark.parametrize(("created", "at", "old", "new", "lines", "renewal_at", "renewal"), [
    # "+5 USD at half a period": 1000 → 2000 with 15 of April's 30 days left: −500 + 1000; May 1: +500 + 2000.
    pytest.param(ts(2026, 4, 1), ts(2026, 4, 16), ("ten", 1), ("twenty", 1),
                 [(-500, "Unused time on Ten after 16 Apr 2026"), (1000, "Remaining time on Twenty after 16 Apr 2026")],
                 ts(2026, 5, 1), 2500, id="half-period-plus-5-usd"),
    # "May 15 → 250 on June 1": 100 → 200 USD on May 15, 17 of May's 31 days left (f = 17/31):
    # 10000 × 17/31 = 5483.87 → −5484; 20000 × 17/31 = 10967.74 → +10968; June 1: 20000 + 5484 = 25484
    # (the docstring's "50 prorating adjustment" is half a month; by the second it is 54.84 USD).
    pytest.param(ts(2026, 5, 1), ts(2026, 5, 15), ("basic", 1), ("pro", 1),
                 [(-5484, "Unused time on Basic after 15 May 2026"),
                  (10968, "Remaining time on Pro after 15 May 2026")],
                 ts(2026, 6, 1), 25484, id="may-15-to-june-1"),
    # "Jan 16 → 12580": 50 → 100 USD, Jan 16 2024 leaves 16 of 31 days: 5000 × 16/31 = 2580.65 → −2581;
    # 10000 × 16/31 = 5161.29 → +5161; Feb 1: 10000 − 2581 + 5161 = 12580 (the docs round it to 125 USD).
    pytest.param(ts(2024, 1, 1), ts(2024, 1, 16), ("fifty", 1), ("basic", 1),
                 [(-2581, "Unused time on Fifty after 16 Jan 2024"),
                  (5161, "Remaining time on Basic after 16 Jan 2024")],
                 ts(2024, 2, 1), 12580, id="jan-16-12580"),
    # At the period start (the moment it was created): f = 1 → −10000, +20000; Feb 1: 20000 + 10000 = 30000.
    pytest.param(ts(2026, 1, 1), ts(2026, 1, 1), ("basic", 1), ("pro", 1),
                 [(-10000, "Unused time on Basic after 01 Jan 2026"),
                  (20000, "Remaining time on Pro after 01 Jan 2026")],
                 ts(2026, 2, 1), 30000, id="period-start-f-1"),
    # In the last second: 1000 → 2000 seats of 100 USD, f = 1/2678400: 3.73 → −4, 7.47 → +7; Feb 1:
    # 2000 × 10000 + 3 = 20000003.
    pytest.param(ts(2026, 1, 1), ts(2026, 2, 1) - 1, ("basic", 1000), ("basic", 2000),
                 [(-4, "Unused time on 1000 × Basic after 31 Jan 2026"),
                  (7, "Remaining time on 2000 × Basic after 31 Jan 2026")],
                 ts(2026, 2, 1), 20000003, id="last-second-tiny"),
    # ... one seat: 0.0037 and 0.0075 both round to 0, so no line at all; Feb 1 bills Pro alone.
    pytest.param(ts(2026, 1, 1), ts(2026, 2, 1) - 1, ("basic", 1), ("pro", 1), [], ts(2026, 2, 1), 20000,
                 id="last-second-zero"),
    # Leap February: 15 of 29 days: 10000 × 15/29 = 5172.41 → −5172; 20000 × 15/29 = 10344.83 → +10345;
    # Mar 1: 20000 + 5173 = 25173.
    pytest.param(ts(2024, 2, 1), ts(2024, 2, 15), ("basic", 1), ("pro", 1),
                 [(-5172, "Unused time on Basic after 15 Feb 2024"),
                  (10345, "Remaining time on Pro after 15 Feb 2024")],
                 ts(2024, 3, 1), 25173, id="leap-february"),
    # A yearly price changed mid-year, per second: 2026 has 31,536,000 s; Jul 2 12:34:56 leaves
    # 15,811,200 − 45,296 = 15,765,904 s (2,096 s less than half); 120000 × 15765904/31536000 = 59992.02 →
    # −59992; 240000 × the same = 119984.05 → +119984; Jan 1 2027: 240000 + 59992 = 299992.
    pytest.param(ts(2026, 1, 1), ts(2026, 7, 2, 12) + 34 * 60 + 56, ("team", 1), ("business", 1),
                 [(-59992, "Unused time on Team after 02 Jul 2026"),
                  (119984, "Remaining time on Business after 02 Jul 2026")],
                 ts(2027, 1, 1), 299992, id="yearly-per-second"),
    # Quantity up, 2 → 5 seats on Jan 11 (21 of 31 days left): 20000 × 21/31 = 13548.39 → −13548;
    # 50000 × 21/31 = 33870.97 → +33871; Feb 1: 50000 + 20323 = 70323.
    pytest.param(ts(2026, 1, 1), ts(2026, 1, 11), ("basic", 2), ("basic", 5),
                 [(-13548, "Unused time on 2 × Basic after 11 Jan 2026"),
                  (33871, "Remaining time on 5 × Basic after 11 Jan 2026")],
                 ts(2026, 2, 1), 70323, id="quantity-up"),
    # Quantity down, 5 → 2: −33871 + 13548 = −20323; Feb 1: 20000 − 20323 = −323 (January's five seats were
    # paid in advance).
    pytest.param(ts(2026, 1, 1), ts(2026, 1, 11), ("basic", 5), ("basic", 2),
                 [(-33871, "Unused time on 5 × Basic after 11 Jan 2026"),
                  (13548, "Remaining time on 2 × Basic after 11 Jan 2026")],
                 ts(2026, 2, 1), -323, id="quantity-down"),
])
@pytest.mark.parametrize("mode", ["classic", "flexible"])
def test_one_change_is_pending_until_the_next_renewal(mode, created, at, old, new, lines, renewal_at, renewal):
    # given
    c = started(created, old, mode=mode)
    # when
    if at > created:
        c.advance(at)
    if new[0] == old[0]:
        change(c, items=[{"id": item(c), "quantity": str(new[1])}])
    else:
        swap(c, new[0], quantity=str(new[1]))
    # then: the item shows its new price and quantity at once; the lines wait for the next invoice
    assert (sub(c).items[0].price.id, sub(c).items[0].quantity) == (f"price_{new[0]}", new[1])
    assert pending(c) == lines and len(c.book.invoices) == 1
    c.advance(renewal_at)
    inv = latest(c)
    assert amounts(inv) == [a for a, _ in lines] + [BY_ID[f"price_{new[0]}"].unit_amount_decimal * new[1]]
    assert inv.total == renewal and not c.book.pending_items


def test_with_none_may_bills_100_and_june_200():
    # "billed 100 on May 1 and 200 on June 1" (§4.1, the update docstring)
    c = started(ts(2026, 5, 1), "basic")
    assert latest(c).total == 10000
    c.advance(ts(2026, 5, 15))
    swap(c, "pro", proration_behavior="none")
    assert not c.book.pending_items
    c.advance(ts(2026, 6, 1))
    assert amounts(latest(c)) == [20000]


# --- billing modes: §4.5's example and several changes in one period --------------------------------------------

@pytest.mark.parametrize(("mode", "lines", "total"), [
    # classic credits Twenty, the current price: 2000 × 1/3 = 666.67 → −667; +333: total −334
    ("classic", [-667, 333], -334),
    # flexible credits Ten, what was billed on Apr 1: 1000 × 1/3 = 333.33 → −333; +333: total 0
    ("flexible", [-333, 333], 0),
])
def test_docs_classic_versus_flexible(mode, lines, total):
    # given: 10 USD/month from Apr 1 (invoice 1000); Apr 11 Twenty with `none` (nothing billed)
    c = started(ts(2026, 4, 1), "ten", mode=mode)
    assert latest(c).total == 1000
    c.advance(ts(2026, 4, 11))
    swap(c, "twenty", proration_behavior="none")
    # when: Apr 21 back to Ten, invoiced at once: Apr 21 → May 1 is 10 of 30 days, f = 1/3 exactly
    c.advance(ts(2026, 4, 21))
    swap(c, "ten", proration_behavior="always_invoice")
    # then
    inv = latest(c)
    assert (inv.billing_reason, amounts(inv), inv.total, inv.status) == ("subscription_update", lines, total, "paid")
    # a negative total is credit on the customer's balance (§4.7)
    assert balance(c) == min(total, 0)


@pytest.mark.parametrize(("mode", "renewal_lines", "renewal"), [
    # classic credits the current price each time: Apr 16 −20000/2 = −10000, +15000; Apr 21 −30000/3 = −10000,
    # +3333 (10000/3 = 3333.33); May 1: newest first −10000, +3333, −10000, +15000, then 10000: total 8333.
    ("classic", [-10000, 3333, -10000, 15000, 10000], 8333),
    # flexible credits what was last billed: Apr 16 the 10000 of Apr 1 (Pro came with `none`): −5000, +15000;
    # Apr 21 the 30000 debited on Apr 16: −10000, +3333; May 1: −10000 + 3333 − 5000 + 15000 + 10000 = 13333.
    ("flexible", [-10000, 3333, -5000, 15000, 10000], 13333),
])
def test_several_changes_in_one_period(mode, renewal_lines, renewal):
    # given: Basic 100 USD/month from Apr 1 (30 days)
    c = started(ts(2026, 4, 1), "basic", mode=mode)
    # when: Apr 11 Pro with `none`; Apr 16 (f = 15/30 = 1/2) Max; Apr 21 (f = 10/30 = 1/3) back to Basic
    c.advance(ts(2026, 4, 11))
    swap(c, "pro", proration_behavior="none")
    c.advance(ts(2026, 4, 16))
    swap(c, "max")
    c.advance(ts(2026, 4, 21))
    swap(c, "basic")
    # then
    c.advance(ts(2026, 5, 1))
    assert amounts(latest(c)) == renewal_lines and latest(c).total == renewal
    assert replays(c)


@pytest.mark.parametrize(("update", "lines"), [
    # Removing Seat (5000) with 15 of 31 days left: 5000 × 15/31 = 2419.35 → a credit only, −2419
    pytest.param(lambda c: [{"id": item(c, 1), "deleted": "true"}],
                 [(-2419, "Unused time on Seat after 17 Jan 2026")], id="item-removed-credit-only"),
    # Adding Addon (3000): 3000 × 15/31 = 1451.61 → a debit only, +1452
    pytest.param(lambda c: [{"price": "price_addon"}],
                 [(1452, "Remaining time on Addon after 17 Jan 2026")], id="item-added-debit-only"),
])
@pytest.mark.parametrize("mode", ["classic", "flexible"])
def test_removing_or_adding_an_item(mode, update, lines):
    c = started(ts(2026, 1, 1), "basic", "seat", mode=mode)
    c.advance(ts(2026, 1, 17))
    change(c, items=update(c))
    assert pending(c) == lines


def test_the_hand_worked_fractions_are_exact():
    # The day counts the comments above rely on, checked once in seconds.
    day = 86_400
    assert ts(2026, 2, 1) - ts(2026, 1, 1) == 31 * day and ts(2024, 3, 1) - ts(2024, 2, 1) == 29 * day
    assert ts(2026, 5, 1) - ts(2026, 4, 21) == 10 * day and ts(2026, 5, 1) - ts(2026, 4, 1) == 30 * day
    assert ts(2026, 6, 1) - ts(2026, 5, 15) == 17 * day and ts(2024, 2, 1) - ts(2024, 1, 16) == 16 * day
    assert ts(2027, 1, 1) - ts(2026, 1, 1) == 365 * day and ts(2025, 1, 1) - ts(2024, 1, 1) == 366 * day
    assert ts(2027, 1, 1) - (ts(2026, 7, 2, 12) + 34 * 60 + 56) == 15_765_904 == 31_536_000 // 2 - 2_096
    assert ts(2024, 7, 1) - ts(2024, 1, 1) == 182 * day
