"""What each route accepts and answers, as JSON Schema: one declaration that both refuses a request's unknown
top-level parameters or wrong shapes before its handler runs (`check`) and becomes `/openapi.json`
(`openapi.py`; response schemas from `responses.py`).

The top-level names are the core's own sets (`customers._CREATE`, `prices._CREATE`, …) wherever the core has
one (`_keys` refuses at import a contract out of step with them), so the edge and the core cannot drift. The
handlers and the pure core still decide values (bounds, formats, cross-field rules) and name the param; the
schemas here state those rules for clients and fuzzers, and the edge enforces only names and shapes, and
which `expand[]` fields each route performs (`expand`): nothing is accepted that is then silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from tally_core import meter_events as core_events, meters as core_meters
from tally_core.billing import (
    balance_edge as core_balance,
    customers as core_customers,
    invoice_item_edge as core_item_edge,
    params as p,
    prices as core_prices,
    products as core_products,
    subscriptions as core_subscriptions,
)
from tally_core.billing.balance_transactions import MAX_DESCRIPTION as MAX_TXN_DESCRIPTION
from tally_core.errors import invalid, unknown
from tally_core.strings import INT64_MAX, INT64_MIN, MAX_ID, MAX_STRING, MAX_TIMESTAMP, MIN_TIMESTAMP

from .responses import B, I, O, S, deleted, list_of, own, stripe_object

# --- schema vocabulary ------------------------------------------------------------------------------------

def string(max_len: int = MAX_STRING, **extra) -> dict:
    return {"type": "string", "maxLength": max_len, **extra}


def enum(*choices: str) -> dict:
    return {"type": "string", "enum": list(choices)}


def integer(minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


BOOLEAN = {"type": "boolean"}
TIMESTAMP = integer(MIN_TIMESTAMP, MAX_TIMESTAMP)
AMOUNT = integer(0, p.MAX_UNIT_AMOUNT)
QUANTITY = integer(0, p.MAX_QUANTITY)
DECIMAL = string(40, pattern=r"^[0-9]{1,8}(\.[0-9]{1,12})?$")
ID = string(MAX_ID)


def hash_(properties: dict | None = None, *, values: dict | None = None, max_keys: int | None = None) -> dict:
    """A nested hash: fixed keys (`properties`) or free keys whose values follow `values`."""
    out: dict = {"type": "object"}
    if properties is not None:
        out["properties"] = properties
        out["additionalProperties"] = False
    if values is not None:
        out["additionalProperties"] = values
    if max_keys is not None:
        out["maxProperties"] = max_keys
    return out


def array(items: dict, *, max_items: int | None = None, single: bool = False) -> dict:
    """`single`: the core also takes one bare string for a one-element list (`expand=x`)."""
    out: dict = {"type": "array", "items": items}
    if max_items is not None:
        out["maxItems"] = max_items
    if single:
        out["x-tally-single"] = True
    return out


METADATA = {"type": "object", "maxProperties": p.MAX_METADATA_KEYS,
            "propertyNames": {"maxLength": p.MAX_METADATA_KEY},
            "additionalProperties": string(p.MAX_METADATA_VALUE)}


def expand(*fields: str) -> dict:
    """`expand[]` taking exactly the `fields` the route's handler expands (Stripe documents more per object; an
    expansion tally does not perform is refused, not answered unexpanded, so no caller reads an id believing it
    got the object). No fields: the route expands nothing, and any `expand[]` entry is refused."""
    if not fields:
        return array(string(), max_items=0, single=True)
    return array(enum(*fields), single=True)


EXPAND = expand()


def paging(*fields: str) -> dict:
    return {"limit": integer(1, 100), "starting_after": ID, "ending_before": ID, "expand": expand(*fields)}


PAGING = paging()
CREATED = {"anyOf": [TIMESTAMP, hash_({k: TIMESTAMP for k in ("gt", "gte", "lt", "lte")})]}


# --- the declarations ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contract:
    params: dict
    response: dict
    required: tuple[str, ...] = ()
    # Content types the route documents in /openapi.json (the edge decides what it parses: tally_edge/http.py).
    content_types: tuple[str, ...] = ("application/x-www-form-urlencoded", "application/json")


def _keys(names, **schemas) -> dict:
    """Schemas for exactly the core's `names`: a name without a schema here is a bug caught at import."""
    missing_schema = set(names) - schemas.keys()
    surplus = schemas.keys() - set(names)
    if missing_schema or surplus:
        raise AssertionError(f"contract out of step with the core: missing {missing_schema}, surplus {surplus}")
    return {k: schemas[k] for k in sorted(names)}


_METER = stripe_object("billing.meter")
_PRODUCT = stripe_object("product")
_PRICE = stripe_object("price")
_CUSTOMER = stripe_object("customer")
_SUBSCRIPTION = stripe_object("subscription")
_INVOICE = stripe_object("invoice")
_CLOCK = stripe_object("test_helpers.test_clock")
_EVENT = stripe_object("event")
_INVOICE_ITEM = stripe_object("invoiceitem")
_BALANCE_TXN = stripe_object("customer_balance_transaction")
_SUB_ITEM = stripe_object("subscription_item")
_SUB_ITEM_CHANGE = {"proration_behavior": enum(*core_subscriptions.PRORATION_BEHAVIORS), "proration_date": TIMESTAMP}
_SUMMARY = stripe_object("billing.meter_event_summary", dimensions={"type": "object"})
_ONLY_EXPAND = {"expand": EXPAND}
_PRODUCT_EXPAND = expand("default_price")
_PRICE_EXPAND = expand("tiers", "product")
_SUB_EXPAND = expand("latest_invoice")

_TIER = hash_({"up_to": {"anyOf": [integer(1), {"const": "inf"}]}, "unit_amount": AMOUNT,
               "unit_amount_decimal": DECIMAL, "flat_amount": AMOUNT, "flat_amount_decimal": DECIMAL})
_RECURRING = hash_({"interval": enum(*core_prices.INTERVALS), "interval_count": integer(1, 1095),
                    "usage_type": enum("licensed", "metered"), "meter": ID,
                    "trial_period_days": integer(0, core_prices.MAX_TRIAL_DAYS)})
_PRODUCT_FIELDS = dict(
    active=BOOLEAN, id=string(core_products.MAX_ID), metadata=METADATA, name=string(core_products.MAX_NAME),
    statement_descriptor=string(core_products.MAX_STATEMENT_DESCRIPTOR), tax_code=string(),
    tax_details=hash_(), unit_label=string(core_products.MAX_UNIT_LABEL),
)
_PRODUCT_CHANGES = dict(
    _PRODUCT_FIELDS, description=string(core_products.MAX_DESCRIPTION), expand=_PRODUCT_EXPAND,
    images=array(string(2048), max_items=core_products.MAX_IMAGES),
    marketing_features=array(hash_({"name": string(core_products.MAX_FEATURE_NAME)}),
                             max_items=core_products.MAX_MARKETING_FEATURES),
    package_dimensions=hash_(), shippable=BOOLEAN, url=string(),
)
_PRICE_DATA = dict(currency=string(3), currency_options=hash_(), custom_unit_amount=hash_(), metadata=METADATA,
                   tax_behavior=enum(*core_products.TAX_BEHAVIORS), unit_amount=AMOUNT, unit_amount_decimal=DECIMAL)
_CUSTOMER_FIELDS = dict(
    email=string(512), name=string(256), description=string(350), phone=string(20), metadata=METADATA,
    address=hash_({k: string(200) for k in sorted(core_customers._ADDRESS)}),
    shipping=dict(hash_({"name": string(200), "phone": string(200),
                         "address": hash_({k: string(200) for k in sorted(core_customers._ADDRESS)})}),
                  required=["address", "name"]),
    balance=integer(-p.MAX_BALANCE, p.MAX_BALANCE),
    payment_method=ID, invoice_settings=hash_({"default_payment_method": ID}), expand=expand("test_clock"),
)
_EVENT_FIELDS = _keys(
    core_events._EVENT_PARAMS, event_name=string(100),
    payload=hash_(values={"type": "string", "maxLength": core_events.MAX_PAYLOAD_VALUE},
                  max_keys=core_events.MAX_PAYLOAD_KEYS),
    identifier=string(core_events.MAX_IDENTIFIER), timestamp=TIMESTAMP,
)
_V2_EVENT_FIELDS = dict(_EVENT_FIELDS, timestamp={"anyOf": [TIMESTAMP, string(40, format="date-time")]})
_ADJUSTMENT_FIELDS = dict(event_name=string(100), type=enum("cancel"),
                          cancel=hash_({"identifier": string(core_events.MAX_IDENTIFIER)}))
_JSON = ("application/json",)
_SUB_CREATE_KEYS = core_subscriptions._CREATE
_ITEM_CHANGES = dict(
    amount=integer(-core_item_edge.MAX_AMOUNT, core_item_edge.MAX_AMOUNT), price=ID, pricing=hash_({"price": ID}),
    unit_amount_decimal=DECIMAL, quantity=QUANTITY, description=string(), metadata=METADATA,
    period=hash_({"start": TIMESTAMP, "end": TIMESTAMP}), discountable=BOOLEAN, expand=EXPAND)

CONTRACTS: dict[tuple[str, str], Contract] = {
    # meters
    ("POST", "/v1/billing/meters"): Contract(_keys(
        core_meters._CREATE_PARAMS, display_name=string(250), event_name=string(100),
        default_aggregation=hash_({"formula": enum("sum", "count", "last")}),
        customer_mapping=hash_({"event_payload_key": string(100), "type": enum("by_id")}),
        value_settings=hash_({"event_payload_key": string(100)}), event_time_window=enum("hour", "day"),
        dimension_payload_keys=array(string(100), max_items=core_meters.MAX_DIMENSIONS, single=True),
        expand=EXPAND), _METER, required=("display_name", "event_name", "default_aggregation")),
    ("GET", "/v1/billing/meters"): Contract({**PAGING, "status": enum("active", "inactive")}, list_of(_METER)),
    ("GET", "/v1/billing/meters/{id}"): Contract(_ONLY_EXPAND, _METER),
    ("POST", "/v1/billing/meters/{id}"): Contract({"display_name": string(250), "expand": EXPAND}, _METER),
    ("POST", "/v1/billing/meters/{id}/deactivate"): Contract(_ONLY_EXPAND, _METER),
    ("POST", "/v1/billing/meters/{id}/reactivate"): Contract(_ONLY_EXPAND, _METER),
    ("GET", "/v1/billing/meters/{id}/event_summaries"): Contract(
        {**PAGING, "customer": ID, "start_time": TIMESTAMP, "end_time": TIMESTAMP,
         "value_grouping_window": enum("hour", "day"),
         "dimension_group_by_keys": array(string(100), single=True),
         "dimension_filters": hash_(values=string(500))},
        list_of(_SUMMARY), required=("customer", "start_time", "end_time")),
    # products
    ("POST", "/v1/products"): Contract(_keys(
        core_products._CREATE, **_PRODUCT_CHANGES, type=enum("good", "service"),
        default_price_data=hash_({**_PRICE_DATA, "recurring": hash_(
            {"interval": enum(*core_prices.INTERVALS), "interval_count": integer(1, 1095)})})),
        _PRODUCT, required=("name",)),
    ("GET", "/v1/products"): Contract({**paging("data.default_price"), "active": BOOLEAN, "created": CREATED,
                                       "ids": array(string(), single=True), "shippable": BOOLEAN, "url": string()},
                                      list_of(_PRODUCT)),
    ("GET", "/v1/products/{id}"): Contract({"expand": _PRODUCT_EXPAND}, _PRODUCT),
    ("POST", "/v1/products/{id}"): Contract(_keys(
        core_products._UPDATE, **{k: v for k, v in _PRODUCT_CHANGES.items() if k != "id"},
        default_price=ID), _PRODUCT),
    ("DELETE", "/v1/products/{id}"): Contract({}, deleted("product")),
    # prices
    ("POST", "/v1/prices"): Contract(_keys(
        core_prices._CREATE, **_PRICE_DATA, active=BOOLEAN, billing_scheme=enum("per_unit", "tiered"),
        expand=_PRICE_EXPAND, lookup_key=string(200), nickname=string(), product=ID,
        product_data=hash_({k: v for k, v in _PRODUCT_FIELDS.items() if k in core_prices._PRODUCT_DATA}),
        recurring=_RECURRING, tiers=array(_TIER), tiers_mode=enum("graduated", "volume"),
        transfer_lookup_key=BOOLEAN,
        transform_quantity=hash_({"divide_by": integer(1), "round": enum("up", "down")})),
        _PRICE, required=("currency",)),
    ("GET", "/v1/prices"): Contract(
        {**paging("data.tiers", "data.product"), "active": BOOLEAN, "created": CREATED, "currency": string(3),
         "lookup_keys": array(string(200), max_items=10, single=True), "product": ID,
         "recurring": hash_({"interval": enum(*core_prices.INTERVALS), "usage_type": enum("licensed", "metered"),
                             "meter": ID}),
         "type": enum("one_time", "recurring")}, list_of(_PRICE)),
    ("GET", "/v1/prices/{id}"): Contract({"expand": _PRICE_EXPAND}, _PRICE),
    ("POST", "/v1/prices/{id}"): Contract(_keys(
        core_products._PRICE_UPDATE, active=BOOLEAN, currency_options=hash_(), expand=_PRICE_EXPAND,
        lookup_key=string(200), metadata=METADATA, nickname=string(),
        tax_behavior=enum(*core_products.TAX_BEHAVIORS), transfer_lookup_key=BOOLEAN), _PRICE),
    # customers
    ("POST", "/v1/customers"): Contract(_keys(core_customers._CREATE, **_CUSTOMER_FIELDS, test_clock=ID),
                                        _CUSTOMER),
    ("GET", "/v1/customers"): Contract({**PAGING, "email": string(), "test_clock": ID},
                                       list_of(_CUSTOMER)),
    ("GET", "/v1/customers/{id}"): Contract({"expand": expand("test_clock")}, {"anyOf": [_CUSTOMER, deleted("customer")]}),
    ("POST", "/v1/customers/{id}"): Contract(_keys(core_customers._UPDATE, **_CUSTOMER_FIELDS), _CUSTOMER),
    ("DELETE", "/v1/customers/{id}"): Contract({}, deleted("customer")),
    # the customer balance ledger (§4.7)
    ("POST", "/v1/customers/{id}/balance_transactions"): Contract(_keys(
        core_balance._CREATE, amount=integer(-p.MAX_BALANCE, p.MAX_BALANCE), currency=string(3),
        description=string(MAX_TXN_DESCRIPTION), metadata=METADATA, expand=EXPAND),
        _BALANCE_TXN, required=("amount", "currency")),
    ("GET", "/v1/customers/{id}/balance_transactions"): Contract(PAGING, list_of(_BALANCE_TXN)),
    ("GET", "/v1/customers/{id}/balance_transactions/{transaction}"): Contract(_ONLY_EXPAND, _BALANCE_TXN),
    ("POST", "/v1/customers/{id}/balance_transactions/{transaction}"): Contract(_keys(
        core_balance._UPDATE, description=string(MAX_TXN_DESCRIPTION), metadata=METADATA, expand=EXPAND),
        _BALANCE_TXN),
    # subscriptions
    ("POST", "/v1/subscriptions"): Contract(_keys(
        _SUB_CREATE_KEYS, customer=ID, metadata=METADATA, expand=_SUB_EXPAND, cancel_at_period_end=BOOLEAN,
        items=array(hash_({"price": ID, "quantity": QUANTITY, "metadata": METADATA}), max_items=20),
        billing_cycle_anchor=TIMESTAMP, billing_cycle_anchor_config=hash_({"day_of_month": integer(1, 31)}),
        collection_method=enum("charge_automatically", "send_invoice"), default_payment_method=ID,
        payment_behavior=enum("allow_incomplete", "default_incomplete", "error_if_incomplete"),
        proration_behavior=enum("create_prorations", "none", "always_invoice"),
        billing_mode=hash_({"type": enum(*core_subscriptions.BILLING_MODES)}), cancel_at=TIMESTAMP),
        _SUBSCRIPTION, required=("customer", "items")),
    ("GET", "/v1/subscriptions"): Contract(
        {**PAGING, "customer": ID, "test_clock": ID,
         "status": enum(*(str(s) for s in core_subscriptions.SubscriptionStatus), "all", "ended")},
        list_of(_SUBSCRIPTION)),
    ("GET", "/v1/subscriptions/{id}"): Contract({"expand": _SUB_EXPAND}, _SUBSCRIPTION),
    ("POST", "/v1/subscriptions/{id}"): Contract(
        {"items": array(hash_({"id": ID, "quantity": QUANTITY, "price": ID, "deleted": BOOLEAN,
                               "clear_usage": BOOLEAN, "metadata": METADATA}), max_items=20),
         "cancel_at_period_end": BOOLEAN, "cancel_at": TIMESTAMP, "metadata": METADATA, "expand": _SUB_EXPAND,
         "proration_behavior": enum(*core_subscriptions.PRORATION_BEHAVIORS), "proration_date": TIMESTAMP,
         "payment_behavior": enum(*core_subscriptions.UPDATE_PAYMENT_BEHAVIORS),
         "billing_cycle_anchor": enum("now", "unchanged")}, _SUBSCRIPTION),
    ("DELETE", "/v1/subscriptions/{id}"): Contract(
        {"invoice_now": BOOLEAN, "prorate": BOOLEAN, "expand": _SUB_EXPAND,
         "cancellation_details": hash_({"comment": string(), "feedback": string()})}, _SUBSCRIPTION),
    # invoices
    ("POST", "/v1/invoices/create_preview"): Contract(
        {"customer": ID, "subscription": ID, "expand": EXPAND, "subscription_details": hash_({
            "items": array(hash_({"id": ID, "quantity": QUANTITY, "price": ID, "deleted": BOOLEAN,
                                  "clear_usage": BOOLEAN, "metadata": METADATA}), max_items=20),
            "proration_behavior": enum(*core_subscriptions.PRORATION_BEHAVIORS), "proration_date": TIMESTAMP,
            "billing_cycle_anchor": enum("now", "unchanged"), "cancel_at": TIMESTAMP,
            "cancel_at_period_end": BOOLEAN, "cancel_now": BOOLEAN})}, _INVOICE),
    ("GET", "/v1/invoices"): Contract(
        {**PAGING, "customer": ID, "subscription": ID, "test_clock": ID,
         "status": enum("draft", "open", "paid", "uncollectible", "void")}, list_of(_INVOICE)),
    ("GET", "/v1/invoices/{id}"): Contract(_ONLY_EXPAND, _INVOICE),
    ("GET", "/v1/invoices/{id}/lines"): Contract(PAGING, list_of(stripe_object("line_item"))),
    ("POST", "/v1/invoices/{id}/finalize"): Contract({"auto_advance": BOOLEAN, "expand": EXPAND}, _INVOICE),
    ("POST", "/v1/invoices/{id}/pay"): Contract(
        {"payment_method": ID, "paid_out_of_band": BOOLEAN, "off_session": BOOLEAN, "expand": EXPAND},
        _INVOICE),
    ("POST", "/v1/invoices/{id}/void"): Contract(_ONLY_EXPAND, _INVOICE),
    ("POST", "/v1/invoices/{id}/mark_uncollectible"): Contract(_ONLY_EXPAND, _INVOICE),
    # test clocks
    ("POST", "/v1/test_helpers/test_clocks"): Contract(
        {"frozen_time": TIMESTAMP, "name": string(300), "expand": EXPAND}, _CLOCK, required=("frozen_time",)),
    ("GET", "/v1/test_helpers/test_clocks"): Contract(PAGING, list_of(_CLOCK)),
    ("GET", "/v1/test_helpers/test_clocks/{id}"): Contract(_ONLY_EXPAND, _CLOCK),
    ("DELETE", "/v1/test_helpers/test_clocks/{id}"): Contract({}, deleted("test_helpers.test_clock")),
    ("POST", "/v1/test_helpers/test_clocks/{id}/advance"): Contract(
        {"frozen_time": TIMESTAMP, "expand": EXPAND}, _CLOCK, required=("frozen_time",)),
    # invoice items (§4.4)
    ("POST", "/v1/invoiceitems"): Contract(_keys(
        core_item_edge.CREATE_KEYS, **_ITEM_CHANGES, customer=ID, currency=string(3), subscription=ID,
        invoice=ID), _INVOICE_ITEM, required=("customer",)),
    ("GET", "/v1/invoiceitems"): Contract({**PAGING, "customer": ID, "invoice": ID, "pending": BOOLEAN},
                                          list_of(_INVOICE_ITEM)),
    ("GET", "/v1/invoiceitems/{id}"): Contract(_ONLY_EXPAND, _INVOICE_ITEM),
    ("POST", "/v1/invoiceitems/{id}"): Contract(_keys(core_item_edge.UPDATE_KEYS, **_ITEM_CHANGES),
                                                _INVOICE_ITEM),
    ("DELETE", "/v1/invoiceitems/{id}"): Contract({}, deleted("invoiceitem")),
    # subscription items: each change a `subscription.update` of the item's subscription (seed 004)
    ("POST", "/v1/subscription_items"): Contract(
        {"subscription": ID, "price": ID, "quantity": QUANTITY, "metadata": METADATA, **_SUB_ITEM_CHANGE,
         "payment_behavior": enum(*core_subscriptions.UPDATE_PAYMENT_BEHAVIORS), "expand": EXPAND},
        _SUB_ITEM, required=("subscription", "price")),
    ("GET", "/v1/subscription_items"): Contract({**PAGING, "subscription": ID}, list_of(_SUB_ITEM),
                                                required=("subscription",)),
    ("GET", "/v1/subscription_items/{id}"): Contract(_ONLY_EXPAND, _SUB_ITEM),
    ("POST", "/v1/subscription_items/{id}"): Contract(
        {"price": ID, "quantity": QUANTITY, "metadata": METADATA, **_SUB_ITEM_CHANGE, "clear_usage": BOOLEAN,
         "payment_behavior": enum(*core_subscriptions.UPDATE_PAYMENT_BEHAVIORS), "expand": EXPAND}, _SUB_ITEM),
    ("DELETE", "/v1/subscription_items/{id}"): Contract({**_SUB_ITEM_CHANGE, "clear_usage": BOOLEAN},
                                                        deleted("subscription_item")),
    # events
    ("GET", "/v1/events"): Contract({**PAGING, "type": string(), "types": array(string(), max_items=20),
                                     "delivery_success": BOOLEAN}, list_of(_EVENT)),
    ("GET", "/v1/events/{id}"): Contract(_ONLY_EXPAND, _EVENT),
    # ingest
    ("POST", "/v1/billing/meter_events"): Contract(_EVENT_FIELDS, stripe_object("billing.meter_event"),
                                                   required=("event_name", "payload")),
    ("POST", "/v1/billing/meter_event_adjustments"): Contract(
        _ADJUSTMENT_FIELDS, stripe_object("billing.meter_event_adjustment"), required=("event_name", "cancel")),
    ("POST", "/v2/billing/meter_events"): Contract(
        _V2_EVENT_FIELDS, own("v2.billing.meter_event", created=S, event_name=S, identifier=S,
                               livemode=B, payload=O, timestamp=S),
        required=("event_name", "payload"), content_types=_JSON),
    ("POST", "/v2/billing/meter_event_adjustments"): Contract(
        _ADJUSTMENT_FIELDS, own("v2.billing.meter_event_adjustment", id=S, created=S, event_name=S,
                                 livemode=B, status=S, type=S, cancel=O),
        required=("event_name", "cancel"), content_types=_JSON),
    ("POST", "/v2/billing/meter_event_session"): Contract(
        {}, own("v2.billing.meter_event_session", id=S, authentication_token=S, created=S, expires_at=S,
                 livemode=B), content_types=_JSON),
    ("POST", "/v2/billing/meter_event_stream"): Contract(
        {"events": array(hash_(_V2_EVENT_FIELDS), max_items=100)},
        own("meter_event_batch_result", accepted=I, duplicates={"type": "array"}, errors={"type": "array"}),
        required=("events",), content_types=_JSON + ("application/x-ndjson",)),
}


# --- the edge check --------------------------------------------------------------------------------------------

def attach(routes) -> list[str]:
    """Give each API route's endpoint its contract; returns the `/v1`/`/v2` operations that have none (a test
    requires that list to be empty, so that no route ships undeclared)."""
    undeclared = []
    for route in routes:
        path = getattr(route, "path", "")
        if not path.startswith(("/v1/", "/v2/")):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            contract = CONTRACTS.get((method, path))
            if contract is None:
                undeclared.append(f"{method} {path}")
                continue
            route.endpoint.contracts = {**getattr(route.endpoint, "contracts", {}), method: contract}
    return undeclared


def contract_for(endpoint, method: str) -> Contract | None:
    return getattr(endpoint, "contracts", {}).get(method)


def check(contract: Contract | None, params: dict) -> None:
    """Refuse a top-level parameter the route does not declare, or a hash/array/scalar where another shape is
    declared. `""` passes: Stripe reads it as "unset", and the core decides whether the field may be unset."""
    if contract is None:
        return
    for name, value in params.items():
        schema = contract.params.get(name)
        if schema is None:
            raise unknown(name)
        _shape(schema, value, name)
        if name == "expand":
            core_products.check_expand(core_products.expand_of(params), schema["items"].get("enum", ()))


def check_route(endpoint, method: str, params: dict) -> None:
    """The edge's parameter check (`tally_edge.context.Edge.check_params`) for the routes `attach` declared."""
    check(contract_for(endpoint, method), params)


def _shape(schema: dict, value, param: str) -> None:
    kind = schema.get("type")
    if value is None or value == "" or kind is None:
        return
    if kind == "object" and not isinstance(value, dict):
        raise invalid(param, "must be a hash (e.g. `" + param + "[key]=value`).")
    if kind == "array" and not isinstance(value, (list, dict)):
        # forms.py leaves non-consecutive indexes as a hash; the core names the exact index.
        if not (schema.get("x-tally-single") and isinstance(value, str)):
            raise invalid(param, "must be an array (e.g. `" + param + "[0]=value`).", code="parameter_invalid_array")
    if kind in ("string", "integer", "boolean", "number") and isinstance(value, (dict, list)):
        raise invalid(param, f"must be a single {kind}, not a hash or an array.")
