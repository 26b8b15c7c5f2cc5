"""Customers (`cus_`): who is billed, their balance, payment method and (optionally) test clock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Mapping

from .. import metadata as _metadata
from ..errors import invalid, missing
from . import params as p

_CREATE = {"email", "name", "description", "address", "metadata", "balance", "test_clock", "payment_method",
           "invoice_settings", "phone", "shipping", "expand"}
_UPDATE = _CREATE - {"test_clock"}
_ADDRESS = {"line1", "line2", "city", "state", "postal_code", "country"}
_SHIPPING = {"name", "phone", "address"}
# A balance set on a customer without a currency is in the account's default currency (tally's accounts: USD),
# as tally always showed it; a balance transaction or an invoice sets the currency otherwise (§4.7).
DEFAULT_CURRENCY = "usd"


def invoice_prefix(customer_id: str) -> str:
    """The prefix of the customer's invoice numbers (`PREFIX-0001`, collection.py), shown as Stripe's
    `invoice_prefix`: derived from the id alone, so it is the same in every decision and replay."""
    return hashlib.blake2b(customer_id.encode(), digest_size=4).hexdigest().upper()


def _shipping_object(shipping: Mapping | None) -> dict | None:
    """Stripe's shape of a customer's `shipping`: every address key, null where not given. `shipping` is a
    mapping or the command's typed `shipping` (a pydantic model: `dict()` of it gives its fields)."""
    if not shipping:
        return None
    shipping = shipping if isinstance(shipping, Mapping) else dict(shipping)
    address = shipping.get("address") or {}
    return {"address": {k: address.get(k) for k in sorted(_ADDRESS)}, "name": shipping.get("name"),
            "phone": shipping.get("phone")}


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    account: str
    created: int
    email: str | None = None
    name: str | None = None
    description: str | None = None
    phone: str | None = None
    address: Mapping[str, str] | None = None
    shipping: Mapping | None = None  # Stripe's shape (`_shipping_object`)
    metadata: Mapping[str, str] = field(default_factory=dict)
    balance: int = 0  # Stripe's sign: negative is credit owed to the customer, positive is owed by them
    # Set once, by the first balance transaction or finalized invoice (§4.7: the balance is in this currency).
    currency: str | None = None
    test_clock: str | None = None
    default_payment_method: str | None = None
    deleted: bool = False

    def to_stripe(self) -> dict:
        if self.deleted:
            return {"id": self.id, "object": "customer", "deleted": True}
        return {
            "id": self.id, "object": "customer", "address": dict(self.address) if self.address else None,
            "balance": self.balance, "created": self.created, "currency": self.currency,
            "description": self.description, "email": self.email, "livemode": False,
            "metadata": dict(self.metadata), "name": self.name, "phone": self.phone, "test_clock": self.test_clock,
            "invoice_settings": {"custom_fields": None, "default_payment_method": self.default_payment_method,
                                 "footer": None, "rendering_options": None},
            "shipping": _shipping_object(self.shipping), "invoice_prefix": invoice_prefix(self.id),
            # Fields of Stripe's customer tally has nothing for: no sources, discounts (issue 10 item 3), locales
            # or tax exemptions. `delinquent` stays false: it depends on the customer's invoices, which this
            # object is rendered without (Stripe: true when an invoice's payment failed).
            "default_source": None, "delinquent": False, "discount": None, "preferred_locales": [],
            "tax_exempt": "none",
        }

    @classmethod
    def from_stripe(cls, obj: dict, account: str) -> "Customer":
        if obj.get("deleted"):
            return cls(id=obj["id"], account=account, created=0, deleted=True)
        return cls(
            id=obj["id"], account=account, created=obj["created"], email=obj.get("email"), name=obj.get("name"),
            description=obj.get("description"), phone=obj.get("phone"), address=obj.get("address"),
            shipping=obj.get("shipping"),
            metadata=dict(obj.get("metadata") or {}), balance=obj["balance"], currency=obj.get("currency"),
            test_clock=obj.get("test_clock"),
            default_payment_method=(obj.get("invoice_settings") or {}).get("default_payment_method"),
        )


def check_customer(params: dict, *, update: bool = False) -> dict:
    """The API edge's check of `POST /v1/customers` (or `/v1/customers/{id}`): the typed values by field name
    (command_params.CustomerCreateParams), `None` for a field sent empty (Stripe's "unset"), metadata as sent (on
    an update an empty value unsets its key)."""
    p.check_keys(params, _UPDATE if update else _CREATE)
    out: dict = {}
    if "test_clock" in params:
        clock = params["test_clock"] or None
        if clock is not None and not isinstance(clock, str):
            raise invalid("test_clock", "must be a test clock id.")
        out["test_clock"] = clock
    for name, limit in (("email", 512), ("name", 256), ("description", 350), ("phone", 20)):
        if name in params:
            out[name] = None if params[name] == "" else p.string(params[name], name, max_len=limit)
    if "address" in params:
        if params["address"] == "":
            out["address"] = None
        else:
            address = p.hash_(params["address"], "address")
            p.check_keys(address, _ADDRESS, "address")
            out["address"] = {k: p.string(v, f"address[{k}]", max_len=200) for k, v in address.items()}
    if "shipping" in params:
        out["shipping"] = None if params["shipping"] == "" else _check_shipping(params["shipping"])
    if "metadata" in params:
        _metadata.check(params["metadata"])  # an update's key limit counts what it merges into (update_customer)
        out["metadata"] = None if params["metadata"] in (None, "") else dict(params["metadata"])
    if "balance" in params:
        out["balance"] = p.balance(params["balance"])
    pm = params.get("payment_method")
    settings = params.get("invoice_settings")
    if settings not in (None, ""):
        settings = p.hash_(settings, "invoice_settings")
        p.check_keys(settings, {"default_payment_method"}, "invoice_settings")
        pm = settings.get("default_payment_method") or pm
    if pm:
        out["default_payment_method"] = p.string(pm, "payment_method", max_len=200)
    return out


def _check_shipping(raw) -> dict:
    """`shipping[...]`: Stripe requires `name` and `address` whenever shipping is sent; fields bounded as
    `address` (200 characters). The keys as sent: the customer holds `_shipping_object` of them."""
    shipping = p.hash_(raw, "shipping")
    p.check_keys(shipping, _SHIPPING, "shipping")
    for required in ("name", "address"):
        if required not in shipping:
            raise missing(f"shipping[{required}]")
    address = p.hash_(shipping["address"], "shipping[address]")
    p.check_keys(address, _ADDRESS, "shipping[address]")
    out: dict = {"name": p.string(shipping["name"], "shipping[name]", max_len=200),
                 "address": {k: p.string(v, f"shipping[address][{k}]", max_len=200) for k, v in address.items()}}
    if shipping.get("phone") not in (None, ""):
        out["phone"] = p.string(shipping["phone"], "shipping[phone]", max_len=200)
    return out


def create_customer(values: dict, *, id: str, account: str, now: int, test_clock_time: int | None = None) -> Customer:
    """A new customer from its typed values (`check_customer`); on a test clock, `created` is the clock's time."""
    clock = values.get("test_clock")
    created = test_clock_time if clock is not None and test_clock_time is not None else now
    fields = {k: v for k, v in values.items() if k != "test_clock"}
    fields["metadata"] = _metadata.check(values.get("metadata"))  # `metadata[k]=` on a create sets nothing
    fields["shipping"] = _shipping_object(values.get("shipping"))
    if fields.get("balance"):
        fields["currency"] = DEFAULT_CURRENCY
    return Customer(id=id, account=account, created=created, test_clock=clock, **fields)


def update_customer(customer: Customer, values: dict) -> Customer:
    """`POST /v1/customers/{id}` from its typed values: given fields are set; metadata merges key by key
    (tally_core/metadata.py; its key limit counts the merged result, so it is checked here)."""
    fields = {k: v for k, v in values.items() if k != "metadata"}
    if "metadata" in values:
        fields["metadata"] = _metadata.merge(customer.metadata, values["metadata"])
    if "shipping" in values:  # Stripe replaces the whole shipping (its `name` and `address` are required)
        fields["shipping"] = _shipping_object(values["shipping"])
    if fields.get("balance") and customer.currency is None:
        fields["currency"] = DEFAULT_CURRENCY
    return replace(customer, **fields)
