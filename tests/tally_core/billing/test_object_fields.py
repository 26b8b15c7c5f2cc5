"""Every top-level field of Stripe's subscription, subscription item, invoice and invoice line is on tally's
objects, with Stripe's type (issue 10 item 7): a typed client (Go, Java, .NET) expects each one, if only as
null. The names and types are facts of Stripe's API, written here (a user's clone has no ../shared)."""

import pytest

from tally_core.billing import invoice_wire
from tally_core.billing.subscriptions import Subscription

from .test_decide import seed_000

# name:type, `?` when Stripe allows null. Types are JSON's: string, integer, number, boolean, object, array.
SUBSCRIPTION = """
application:string? application_fee_percent:number? automatic_tax:object billing_cycle_anchor:integer
billing_cycle_anchor_config:object? billing_mode:object billing_schedules:array billing_thresholds:object?
cancel_at:integer? cancel_at_period_end:boolean canceled_at:integer? cancellation_details:object?
collection_method:string created:integer currency:string customer:string customer_account:string?
days_until_due:integer? default_payment_method:string? default_source:string? default_tax_rates:array?
description:string? discounts:array ended_at:integer? id:string invoice_settings:object items:object
latest_invoice:string? livemode:boolean managed_payments:object? metadata:object
next_pending_invoice_item_invoice:integer? object:string on_behalf_of:string? pause_collection:object?
payment_settings:object? pending_invoice_item_interval:object? pending_setup_intent:string? pending_update:object?
schedule:string? start_date:integer status:string test_clock:string? transfer_data:object? trial_end:integer?
trial_settings:object? trial_start:integer?
"""
SUBSCRIPTION_ITEM = """
billing_thresholds:object? created:integer current_period_end:integer current_period_start:integer
discounts:array id:string metadata:object object:string plan:object price:object quantity:integer?
subscription:string tax_rates:array?
"""
INVOICE = """
account_country:string? account_name:string? account_tax_ids:array? amount_due:integer amount_overpaid:integer
amount_paid:integer amount_remaining:integer amount_shipping:integer application:string? attempt_count:integer
attempted:boolean auto_advance:boolean automatic_tax:object automatically_finalizes_at:integer?
billing_reason:string? collection_method:string created:integer currency:string custom_fields:array?
customer:string customer_account:string? customer_address:object? customer_email:string? customer_name:string?
customer_phone:string? customer_shipping:object? customer_tax_exempt:string? customer_tax_ids:array?
default_payment_method:string? default_source:string? default_tax_rates:array description:string?
discounts:array due_date:integer? effective_at:integer? ending_balance:integer? footer:string?
from_invoice:object? hosted_invoice_url:string? id:string invoice_pdf:string? issuer:object
last_finalization_error:object? latest_revision:string? lines:object livemode:boolean metadata:object?
next_payment_attempt:integer? number:string? object:string on_behalf_of:string? parent:object?
payment_settings:object period_end:integer period_start:integer post_payment_credit_notes_amount:integer
pre_payment_credit_notes_amount:integer receipt_number:string? rendering:object? shipping_cost:object?
shipping_details:object? starting_balance:integer statement_descriptor:string? status:string?
status_transitions:object subscription:string? subtotal:integer subtotal_excluding_tax:integer? test_clock:string?
total:integer total_discount_amounts:array? total_excluding_tax:integer? total_pretax_credit_amounts:array?
total_taxes:array? webhooks_delivered_at:integer?
"""
LINE_ITEM = """
amount:integer currency:string description:string? discount_amounts:array? discountable:boolean discounts:array
id:string invoice:string? livemode:boolean metadata:object object:string parent:object? period:object
pretax_credit_amounts:array? pricing:object? quantity:integer? quantity_decimal:string? subscription:string?
subtotal:integer taxes:array?
"""

_JSON = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def _wrong(obj: dict, facts: str) -> list[str]:
    """The fields of `facts` that `obj` lacks or carries with another type."""
    out = []
    for fact in facts.split():
        name, kind = fact.split(":")
        nullable = kind.endswith("?")
        kind = kind.rstrip("?")
        if name not in obj:
            out.append(f"{name}: missing")
            continue
        value = obj[name]
        if value is None and nullable:
            continue
        # a bool is an int to Python, never to JSON
        if isinstance(value, bool) != (kind == "boolean") or not isinstance(value, _JSON[kind]):
            out.append(f"{name}: {type(value).__name__}, not {kind}")
    return out


@pytest.fixture(scope="module")
def seeded():
    c, sub = seed_000()
    return c, sub, c.book.invoices[sub["latest_invoice"]]


def test_a_subscription_carries_every_field_of_stripes(seeded):
    _, sub, _ = seeded
    assert _wrong(sub, SUBSCRIPTION) == []
    # The customer is on clock_1, so its subscription is too; nothing else is set, as Stripe shows it.
    assert sub["test_clock"] == "clock_1"
    assert sub["automatic_tax"] == {"enabled": False, "liability": None, "disabled_reason": None}
    assert (sub["default_tax_rates"], sub["discounts"], sub["description"]) == ([], [], None)
    assert sub["invoice_settings"]["issuer"] == {"type": "self"}
    assert sub["trial_settings"] == {"end_behavior": {"missing_payment_method": "create_invoice"}}


def test_an_item_carries_every_field_and_its_plan_mirrors_the_price(seeded):
    _, sub, _ = seeded
    license, tokens = sub["items"]["data"]
    assert _wrong(license, SUBSCRIPTION_ITEM) == [] and _wrong(tokens, SUBSCRIPTION_ITEM) == []
    # The legacy plan: amount is the price's unit_amount, interval and usage type its recurring ones.
    plan = license["plan"]
    assert (plan["object"], plan["id"], plan["amount"], plan["amount_decimal"], plan["interval"],
            plan["usage_type"]) == ("plan", "price_license", 10000, "10000", "month", "licensed")
    assert (tokens["plan"]["billing_scheme"], tokens["plan"]["tiers_mode"], tokens["plan"]["usage_type"],
            tokens["plan"]["meter"]) == ("tiered", "graduated", "metered", "mtr_tokens")


def test_an_invoice_and_its_lines_carry_every_field_of_stripes(seeded):
    _, _, invoice = seeded
    obj = invoice_wire.to_stripe(invoice)
    assert _wrong(obj, INVOICE) == []
    assert (obj["subscription"], obj["test_clock"], obj["issuer"]) == ("sub_1", "clock_1", {"type": "self"})
    assert (obj["post_payment_credit_notes_amount"], obj["pre_payment_credit_notes_amount"]) == (0, 0)
    assert obj["lines"]["data"] and all(_wrong(line, LINE_ITEM) == [] for line in obj["lines"]["data"])


def test_renders_are_fresh_copies(seeded):
    # The constant parts are shared by every render; changing one answer must not change the next.
    c, _, invoice = seeded
    sub = c.book.subscriptions["sub_1"]
    first = sub.to_stripe()
    first["invoice_settings"]["issuer"]["type"] = "account"
    first["billing_schedules"].append("x")
    assert sub.to_stripe()["invoice_settings"]["issuer"] == {"type": "self"}
    assert sub.to_stripe()["billing_schedules"] == []
    inv = invoice_wire.to_stripe(invoice)
    inv["automatic_tax"]["enabled"] = True
    assert invoice_wire.to_stripe(invoice)["automatic_tax"]["enabled"] is False


def test_the_new_fields_survive_the_fold_and_old_events_still_read(seeded):
    c, _, invoice = seeded
    sub = c.book.subscriptions["sub_1"]
    obj = sub.to_stripe()
    assert Subscription.from_stripe(obj, sub.state()).to_stripe() == obj
    inv = invoice_wire.to_stripe(invoice)
    assert invoice_wire.to_stripe(invoice_wire.from_stripe(inv)) == inv
    # An event written before these fields existed has no test_clock: it reads as none.
    old = {k: v for k, v in obj.items() if k != "test_clock"}
    assert Subscription.from_stripe(old, sub.state()).test_clock is None
    assert invoice_wire.from_stripe({k: v for k, v in inv.items() if k != "test_clock"}).test_clock is None
