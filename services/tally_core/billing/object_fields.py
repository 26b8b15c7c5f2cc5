"""The fields of Stripe's subscription, subscription item and invoice objects that tally has nothing of its own
to say about (ARCHITECTURE: every object carries every top-level field of Stripe's, null or empty where tally
has nothing). The values are the ones Stripe returns for "not set"; the objects are rendered on every event, so
the constant parts are built once here and copied per render (the dicts are mutable, a caller may change them).
"""

from __future__ import annotations

# Stripe's subscription when nothing was asked for: no tax automation, the account itself as the invoices'
# issuer, the trial-end default `create_invoice`, no thresholds, schedules, Connect or pausing.
_SUBSCRIPTION = {
    "application": None, "application_fee_percent": None,
    "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
    "billing_thresholds": None, "billing_schedules": [], "customer_account": None,
    # `reason` would say why a canceled subscription ended; tally does not keep it yet, so it stays null.
    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
    "days_until_due": None,  # only for collection_method=send_invoice, which tally subscriptions never use
    "default_payment_method": None,  # refused on create (subscription_edge): the customer's one pays
    "default_source": None, "default_tax_rates": [], "description": None, "discounts": [],
    "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}, "custom_fields": None,
                         "description": None, "footer": None},
    "managed_payments": {"enabled": False},
    "next_pending_invoice_item_invoice": None, "pending_invoice_item_interval": None, "on_behalf_of": None,
    "pause_collection": None,
    "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                         "save_default_payment_method": "off"},
    "pending_setup_intent": None, "schedule": None, "transfer_data": None,
    "trial_end": None, "trial_start": None,
    "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
}

# Stripe's invoice of an account without Connect, tax automation, credit notes, custom fields or a hosted page.
_INVOICE = {
    "account_country": None, "account_name": None, "account_tax_ids": None, "application": None,
    "automatic_tax": {"enabled": False, "liability": None, "status": None, "disabled_reason": None,
                      "provider": None},
    "custom_fields": None, "customer_account": None,
    "default_payment_method": None, "default_source": None, "default_tax_rates": [],
    "footer": None, "from_invoice": None, "hosted_invoice_url": None, "invoice_pdf": None,
    "issuer": {"type": "self"}, "last_finalization_error": None, "latest_revision": None, "on_behalf_of": None,
    "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
    "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0, "receipt_number": None,
    "rendering": None, "shipping_cost": None, "shipping_details": None, "statement_descriptor": None,
    "webhooks_delivered_at": None,
    # The customer's details as the invoice saw them; rendered from the invoice alone, tally has no copy yet.
    "customer_address": None, "customer_email": None, "customer_name": None, "customer_phone": None,
    "customer_shipping": None, "customer_tax_exempt": None, "customer_tax_ids": None,
}


def _fresh(value):
    # Cheaper than copy.deepcopy for plain JSON (these are copied on every render).
    if type(value) is dict:
        return {k: _fresh(v) for k, v in value.items()}
    return [_fresh(v) for v in value] if type(value) is list else value


# Only the mutable values need copying; the scalars are shared.
_SUBSCRIPTION_MUTABLE = tuple(k for k, v in _SUBSCRIPTION.items() if isinstance(v, (dict, list)))
_INVOICE_MUTABLE = tuple(k for k, v in _INVOICE.items() if isinstance(v, (dict, list)))


def subscription_fields() -> dict:
    out = _SUBSCRIPTION.copy()
    for k in _SUBSCRIPTION_MUTABLE:
        out[k] = _fresh(out[k])
    return out


def invoice_fields() -> dict:
    out = _INVOICE.copy()
    for k in _INVOICE_MUTABLE:
        out[k] = _fresh(out[k])
    return out


def plan_of(price: dict) -> dict:
    """The legacy Plan mirror of a recurring price (Stripe's `subscription_item.plan`), from the price's
    own wire form: `amount` is `unit_amount`, `transform_usage` is `transform_quantity`."""
    r = price["recurring"] or {}
    tq = price["transform_quantity"]
    return {
        "id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"], "billing_scheme": price["billing_scheme"],
        "created": price["created"], "currency": price["currency"], "interval": r.get("interval"),
        "interval_count": r.get("interval_count"), "livemode": price["livemode"],
        "metadata": dict(price["metadata"]), "meter": r.get("meter"), "nickname": price["nickname"],
        "product": price["product"], "tiers_mode": price["tiers_mode"],
        "transform_usage": None if tq is None else dict(tq), "trial_period_days": r.get("trial_period_days"),
        "usage_type": r.get("usage_type"),
    }
