"""Pending invoice items (`ii_…`, reference §4.4, A.5 step 1): amounts waiting for a customer's next invoice.

Prorations are invoice items: `proration_behavior=create_prorations` leaves them pending, and the next
invoice picks them up first ("pending invoice items (including prorations) in reverse chronological order").
Nothing creates them yet (proration is issue 9); the book folds them so that the fold is ready for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


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

    @property
    def pending(self) -> bool:
        return self.invoice is None

    @property
    def discountable(self) -> bool:
        return not self.proration  # "Always false for prorations" (§4.4)

    def to_stripe(self) -> dict:
        return {
            "id": self.id, "object": "invoiceitem", "customer": self.customer, "currency": self.currency,
            "amount": self.amount, "date": self.date, "description": self.description,
            "discountable": self.discountable, "discounts": [], "invoice": self.invoice, "livemode": False,
            "metadata": dict(self.metadata), "period": {"start": self.period_start, "end": self.period_end},
            "pricing": {"type": "price_details", "price_details": {"price": self.price_id, "product": self.product}},
            "proration": self.proration, "quantity": self.quantity,
            "parent": None if self.subscription is None else {
                "type": "subscription_details", "subscription_details": {
                    "subscription": self.subscription, "subscription_item": self.subscription_item}},
        }

    @classmethod
    def from_stripe(cls, obj: dict) -> "InvoiceItem":
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        price = (obj.get("pricing") or {}).get("price_details") or {}
        return cls(
            id=obj["id"], customer=obj["customer"], currency=obj["currency"], amount=obj["amount"],
            period_start=obj["period"]["start"], period_end=obj["period"]["end"], date=obj["date"],
            description=obj.get("description"), price_id=price.get("price"), product=price.get("product"),
            quantity=obj.get("quantity", 1), proration=bool(obj.get("proration")),
            subscription=details.get("subscription"), subscription_item=details.get("subscription_item"),
            invoice=obj.get("invoice"), metadata=dict(obj.get("metadata") or {}),
        )
