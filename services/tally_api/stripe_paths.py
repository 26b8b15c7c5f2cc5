"""Which paths are Stripe's: an endpoint tally has not built answers that it is not built (app.py), not a typo."""

from __future__ import annotations

# Stripe's v1 and v2 resources, by their first path segment (and, for a namespace tally serves part of, the
# second): a request there names a real Stripe endpoint that tally has not built, so its 404 says so and points
# at what is built, instead of Stripe's "Unrecognized request URL", which reads like a typo. Taken from the
# resource objects of Stripe's OpenAPI fixtures (`billing.meter` → `/v1/billing/meters`).
_STRIPE_V1 = frozenset((
    "account", "account_links", "account_sessions", "accounts", "apple_pay", "application_fees", "apps", "balance",
    "balance_settings", "balance_transactions", "billing", "billing_portal", "charges", "checkout", "climate",
    "confirmation_tokens", "country_specs", "coupons", "credit_notes", "customer_sessions", "customers",
    "disputes", "entitlements", "ephemeral_keys", "events", "exchange_rates", "file_links", "files",
    "financial_connections", "forwarding", "identity", "invoice_payments", "invoice_rendering_templates",
    "invoiceitems", "invoices", "issuing", "mandates", "payment_attempt_records", "payment_intents",
    "payment_links", "payment_method_configurations", "payment_method_domains", "payment_methods",
    "payment_records", "payouts", "plans", "prices", "products", "promotion_codes", "quotes", "radar", "refunds",
    "reporting", "reserve", "reviews", "setup_attempts", "setup_intents", "shipping_rates", "sigma", "sources",
    "subscription_items", "subscription_schedules", "subscriptions", "tax", "tax_codes", "tax_ids", "tax_rates",
    "terminal", "test_helpers", "tokens", "topups", "transfers", "treasury", "webhook_endpoints"))
_STRIPE_V2 = frozenset(("billing", "core", "money_management", "payments", "reporting", "tax", "test_helpers"))
_NAMESPACES = {
    ("v1", "billing"): {"alerts", "credit_balance_summary", "credit_balance_transactions", "credit_grants",
                        "meter_event_adjustments", "meter_events", "meters"},
    ("v1", "test_helpers"): {"confirmation_tokens", "customers", "issuing", "refunds", "terminal", "test_clocks",
                             "treasury"},
    ("v2", "billing"): {"bill_settings", "cadences", "collection_settings", "meter_event_adjustments",
                        "meter_event_session", "meter_event_stream", "meter_events", "pricing_plans",
                        "rate_cards", "service_actions", "intent", "intents", "license_fees", "licensed_items",
                        "metered_items", "profiles", "custom_pricing_units"},
}
WHAT_WORKS = "the endpoints it serves are listed in the README (What works) and in GET /openapi.json."


def is_stripe_path(path: str) -> bool:
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("v1", "v2"):
        return False
    if parts[1] not in (_STRIPE_V1 if parts[0] == "v1" else _STRIPE_V2):
        return False
    children = _NAMESPACES.get((parts[0], parts[1]))
    return children is None or len(parts) == 2 or parts[2] in children
