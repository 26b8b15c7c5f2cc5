"""Top-level fields of Stripe's example objects and the JSON type of each example value.

Derived once from Stripe's OpenAPI fixtures (`reference/stripe-openapi-fixtures3.json` in the shared
reference, outside the package) so that the served `/openapi.json` needs no file at run time; regenerate it
from that file when the reference changes. Codes: s string, i integer, b boolean, o object, a array, z null
(the example says nothing about the type).
"""

FIELDS: dict[str, str] = {
    "billing.meter": (
        "created:i customer_mapping:o default_aggregation:o display_name:s event_name:s event_time_window:z "
        "id:s livemode:b object:s status:s status_transitions:o updated:i value_settings:o"
    ),
    "billing.meter_event": (
        "created:i event_name:s identifier:s livemode:b object:s payload:o timestamp:i"
    ),
    "billing.meter_event_adjustment": (
        "cancel:o event_name:s livemode:b object:s status:s type:s"
    ),
    "billing.meter_event_summary": (
        "aggregated_value:i end_time:i id:s livemode:b meter:s object:s start_time:i"
    ),
    "product": (
        "active:b created:i default_price:s description:s id:s images:a livemode:b marketing_features:a "
        "metadata:o name:s object:s package_dimensions:o shippable:z statement_descriptor:z tax_code:z "
        "unit_label:z updated:i url:z type:s"
    ),
    "price": (
        "active:b billing_scheme:s created:i currency:s custom_unit_amount:o id:s livemode:b lookup_key:z "
        "metadata:o nickname:z object:s product:s recurring:o tax_behavior:s tiers_mode:z "
        "transform_quantity:o type:s unit_amount:i unit_amount_decimal:s"
    ),
    "customer": (
        "address:o balance:i created:i currency:s default_source:z delinquent:b description:z discount:o "
        "email:z id:s invoice_prefix:s invoice_settings:o livemode:b metadata:o name:z "
        "next_invoice_sequence:i object:s phone:z preferred_locales:a shipping:o tax_exempt:s test_clock:z"
    ),
    "subscription": (
        "application:z application_fee_percent:z automatic_tax:o billing_cycle_anchor:i "
        "billing_cycle_anchor_config:o cancel_at:i canceled_at:i cancellation_details:o collection_method:s "
        "created:i currency:s customer:s days_until_due:z default_payment_method:z default_source:z "
        "default_tax_rates:a description:z discounts:a ended_at:i id:s invoice_settings:o items:o "
        "latest_invoice:z livemode:b metadata:o next_pending_invoice_item_invoice:i object:s on_behalf_of:z "
        "pause_collection:o payment_settings:o pending_invoice_item_interval:o pending_setup_intent:z "
        "pending_update:o schedule:z start_date:i status:s test_clock:z transfer_data:o trial_end:i "
        "trial_settings:o trial_start:i cancel_at_period_end:b billing_thresholds:o billing_mode:o "
        "customer_account:z managed_payments:o billing_schedules:a"
    ),
    "invoice": (
        "account_country:s account_name:z account_tax_ids:z amount_due:i amount_paid:i amount_remaining:i "
        "amount_shipping:i application:z attempt_count:i attempted:b auto_advance:b automatic_tax:o "
        "billing_reason:s collection_method:s created:i currency:s custom_fields:z customer:s "
        "customer_address:o customer_email:z customer_name:z customer_phone:z customer_shipping:o "
        "customer_tax_exempt:s customer_tax_ids:a default_payment_method:z default_source:z "
        "default_tax_rates:a description:z discounts:a due_date:i effective_at:i ending_balance:z footer:z "
        "from_invoice:o hosted_invoice_url:z id:s invoice_pdf:z issuer:o last_finalization_error:o "
        "latest_revision:z lines:o livemode:b metadata:o next_payment_attempt:i number:z object:s "
        "on_behalf_of:z payment_settings:o period_end:i period_start:i post_payment_credit_notes_amount:i "
        "pre_payment_credit_notes_amount:i receipt_number:z rendering:o shipping_cost:o shipping_details:o "
        "starting_balance:i statement_descriptor:z status:s status_transitions:o subscription:z subtotal:i "
        "subtotal_excluding_tax:i test_clock:z total:i total_discount_amounts:a total_excluding_tax:i "
        "webhooks_delivered_at:i automatically_finalizes_at:z total_pretax_credit_amounts:z total_taxes:z "
        "amount_overpaid:i parent:o customer_account:z"
    ),
    "line_item": (
        "amount:i currency:s description:s discount_amounts:a discountable:b discounts:a id:s invoice:s "
        "livemode:b metadata:o object:s period:o quantity:i subscription:z pretax_credit_amounts:z taxes:z "
        "parent:o pricing:o subtotal:i quantity_decimal:z"
    ),
    "customer_balance_transaction": (
        "amount:i created:i credit_note:z currency:s customer:s description:z ending_balance:i id:s invoice:z "
        "livemode:b metadata:z object:s type:s checkout_session:z customer_account:z"
    ),
    "subscription_item": (
        "created:i discounts:a id:s metadata:o object:s price:o quantity:i subscription:s tax_rates:a plan:o "
        "current_period_end:i current_period_start:i billing_thresholds:o"
    ),
    "test_helpers.test_clock": (
        "created:i deletes_after:i frozen_time:i id:s livemode:b name:z object:s status:s status_details:o"
    ),
    "invoiceitem": (
        "amount:i currency:s customer:s date:i description:s discountable:b discounts:a id:s invoice:z "
        "livemode:b metadata:o object:s period:o proration:b quantity:i tax_rates:a test_clock:z parent:o "
        "pricing:o net_amount:i customer_account:z quantity_decimal:s"
    ),
    "event": (
        "api_version:z created:i data:o id:s livemode:b object:s pending_webhooks:i request:o type:s"
    ),
}
