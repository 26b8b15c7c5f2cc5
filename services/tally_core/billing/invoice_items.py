"""Pending invoice items (`ii_…`, reference §4.4, A.5 step 1): amounts waiting for a customer's next invoice.

Prorations are invoice items: `proration_behavior=create_prorations` leaves them pending, and the next
invoice picks them up first ("pending invoice items (including prorations) in reverse chronological order").
`/v1/invoiceitems` creates them by hand (handlers/invoice_items.py). Stripe has no `invoiceitem.updated`
event type (§8.3 lists created|deleted), so an update is logged as the internal record `UPDATED`, which carries
the whole new item and never reaches /v1/events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Callable, Mapping

from ..strings import decimal_text as _text

UPDATED = "tally.invoiceitem_updated"  # internal record: an item's new state (Stripe has no such event type)


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    """A Stripe `invoiceitem`; `amount` in minor units; pending while `invoice` is None."""

    id: str
    customer: str
    currency: str
    amount: int
    period_start: int
    period_end: int
    date: int
    description: str | None = None
    price_id: str | None = None
    product: str | None = None
    quantity: int = 1
    proration: bool = False
    subscription: str | None = None
    subscription_item: str | None = None
    invoice: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    unit_amount_decimal: Decimal | None = None  # `amount` = unit × quantity, rounded half-up once (A.1)
    discountable_choice: bool | None = None     # set at creation (sent, or Stripe's default); None: the default
    test_clock: str | None = None
    tax_rates: tuple[str, ...] = ()
    quantity_decimal: Decimal | None = None  # metered usage billed as an item (changes.usage_item); None: quantity

    @property
    def pending(self) -> bool:
        return self.invoice is None

    @property
    def discountable(self) -> bool:
        # "Always false for prorations" (§4.4); otherwise as sent, by default "false for prorations or negative
        # invoice items, and true for all other invoice items" (Stripe's `discountable` parameter).
        if self.proration:
            return False
        return self.amount >= 0 if self.discountable_choice is None else self.discountable_choice

    def to_stripe(self) -> dict:
        return {
            "id": self.id, "object": "invoiceitem", "customer": self.customer, "currency": self.currency,
            "amount": self.amount, "date": self.date, "description": self.description,
            "discountable": self.discountable, "discounts": [], "invoice": self.invoice, "livemode": False,
            "metadata": dict(self.metadata), "period": {"start": self.period_start, "end": self.period_end},
            "pricing": {"type": "price_details", "price_details": {"price": self.price_id, "product": self.product},
                        "unit_amount_decimal": _text(self.unit_amount_decimal)},
            "proration": self.proration, "quantity": self.quantity, "quantity_decimal": _text(self.quantity_decimal) if self.quantity_decimal is not None
            else str(self.quantity),
            # No discounts or credits exist yet: the net amount is the amount.
            "net_amount": self.amount, "tax_rates": list(self.tax_rates), "test_clock": self.test_clock,
            "customer_account": None,
            "parent": None if self.subscription is None else {
                "type": "subscription_details", "subscription_details": {
                    "subscription": self.subscription, "subscription_item": self.subscription_item}},
        }

    @classmethod
    def from_stripe(cls, obj: dict) -> "InvoiceItem":
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        pricing = obj.get("pricing") or {}
        price = pricing.get("price_details") or {}
        unit = pricing.get("unit_amount_decimal")
        return cls(
            id=obj["id"], customer=obj["customer"], currency=obj["currency"], amount=obj["amount"],
            period_start=obj["period"]["start"], period_end=obj["period"]["end"], date=obj["date"],
            description=obj.get("description"), price_id=price.get("price"), product=price.get("product"),
            quantity=obj.get("quantity", 1), proration=bool(obj.get("proration")),
            subscription=details.get("subscription"), subscription_item=details.get("subscription_item"),
            invoice=obj.get("invoice"), metadata=dict(obj.get("metadata") or {}),
            unit_amount_decimal=None if unit is None else Decimal(unit),
            # The choice (made at creation, or by an update) is what the wire shows, except on a proration.
            discountable_choice=None if obj.get("proration") else obj.get("discountable"),
            test_clock=obj.get("test_clock"),
            tax_rates=tuple(obj.get("tax_rates") or ()),
            quantity_decimal=_decimal_quantity(obj),
        )


def _decimal_quantity(obj: dict) -> Decimal | None:
    text = obj.get("quantity_decimal")
    if text is None or Decimal(text) == obj.get("quantity", 1):
        return None
    return Decimal(text)


# --- the fold (book.py applies these to `Book.pending_items` and `Book.draft_items`) --------------------------

Items = Mapping[str, InvoiceItem]


def fold_item(pending: Items, drafted: Items, draft_invoices: Callable[[str | None], bool], kind: str,
              obj: dict) -> tuple[dict, dict]:
    """(pending, drafted) after an `invoiceitem.*` event or an `UPDATED` record (each carries the whole item).

    An item stays pending until an invoice takes it or it is deleted (§4.4); one on a draft invoice stays
    editable until that invoice is finalized (§6.1). A deleted item's event may carry only `{id, deleted}`.
    An update keeps the item's place: the pending items keep the order of their creation in the log."""
    item = None if kind == "invoiceitem.deleted" else InvoiceItem.from_stripe(obj)
    pending = {k: v for k, v in pending.items() if k != obj["id"] or (item is not None and item.pending)}
    drafted = {k: v for k, v in drafted.items() if k != obj["id"]}
    if item is not None and item.pending:
        pending[item.id] = item
    elif item is not None and draft_invoices(item.invoice):
        drafted[item.id] = item
    return pending, drafted


def take_items(pending: Items, drafted: Items, invoice_id: str, lines, is_draft: bool) -> tuple[dict, dict] | None:
    """(pending, drafted) once an invoice holds `lines`: the pending items its lines name (`invoice_item`) are
    on it; they leave `drafted` when the invoice is no longer a draft. None: nothing changes."""
    taken = [line.invoice_item for line in lines if line.invoice_item in pending]
    if not taken and not any(it.invoice == invoice_id for it in drafted.values()):
        return None
    out = dict(drafted)
    for item_id in taken:
        out[item_id] = replace(pending[item_id], invoice=invoice_id)
    if not is_draft:
        out = {k: v for k, v in out.items() if v.invoice != invoice_id}
    return {k: v for k, v in pending.items() if k not in taken}, out
