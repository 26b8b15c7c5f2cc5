"""The invoice's wire form (reference §6.3, §6.4): Stripe's basil+ invoice object and back, as the billing
events carry it. Every event renders an invoice and every fold reads one back, so the empty cases (an invoice
without discounts or taxes) cost one truth test each."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from ..strings import decimal_text as _text
from .invoices import DiscountAmount, Invoice, InvoiceLine, TaxAmount, balance_amounts
from .object_fields import invoice_fields


def _line_to_stripe(line: InvoiceLine, invoice: Invoice) -> dict:
    # basil+ shape (reference §6.4): price under pricing.price_details, item under parent.subscription_item_details.
    return {
        "id": line.id, "object": "line_item", "amount": line.amount, "subtotal": line.amount,
        "currency": invoice.currency, "description": line.description, "discountable": line.discountable,
        "discounts": _discount_ids(line.discount_amounts) if line.discount_amounts else [],
        "discount_amounts": _discounts_to_stripe(line.discount_amounts) if line.discount_amounts else [],
        "invoice": invoice.id,
        "livemode": False, "metadata": {},
        "period": {"start": line.period_start, "end": line.period_end},
        "quantity": line.quantity, "quantity_decimal": _text(line.quantity_decimal),
        "pricing": {"type": "price_details", "price_details": {"price": line.price_id, "product": line.product},
                    "unit_amount_decimal": _text(line.unit_amount_decimal)},
        "parent": _parent(line, invoice),
        "pretax_credit_amounts": [], "taxes": _taxes_to_stripe(line.taxes) if line.taxes else [],
        "subscription": invoice.subscription,
    }


def _parent(line: InvoiceLine, invoice: Invoice) -> dict:
    """§6.4: a line of a subscription item (its cycle line or its proration) has `subscription_item_details`;
    an invoice item that is no subscription item's has `invoice_item_details`."""
    if line.subscription_item is None and line.invoice_item is not None:
        return {"type": "invoice_item_details", "subscription_item_details": None, "invoice_item_details": {
            "invoice_item": line.invoice_item, "proration": line.proration, "proration_details": {
                "credited_items": None}, "subscription": invoice.subscription}}
    return {"type": "subscription_item_details", "invoice_item_details": None, "subscription_item_details": {
        "subscription": invoice.subscription, "subscription_item": line.subscription_item,
        "invoice_item": line.invoice_item, "proration": line.proration, "proration_details": {
            "credited_items": None}}}


# The wire forms below are on every event's path (each invoice is rendered and folded many times): the empty
# case, every invoice until coupons and tax rates exist, costs one truth test.

def _discount_ids(amounts: tuple[DiscountAmount, ...]) -> list[str]:
    return list(dict.fromkeys(d.discount for d in amounts)) if amounts else []


def _discounts_to_stripe(amounts: tuple[DiscountAmount, ...]) -> list[dict]:
    return [{"amount": d.amount, "discount": d.discount} for d in amounts] if amounts else []


def _taxes_to_stripe(taxes: tuple[TaxAmount, ...]) -> list[dict]:
    return [_tax_to_stripe(t) for t in taxes] if taxes else []


def _discounts_from_stripe(objs) -> tuple[DiscountAmount, ...]:
    return tuple(DiscountAmount(amount=o["amount"], discount=o["discount"]) for o in objs) if objs else ()


def _taxes_from_stripe(objs) -> tuple[TaxAmount, ...]:
    return tuple(_tax_from_stripe(o) for o in objs) if objs else ()


def _tax_to_stripe(t: TaxAmount) -> dict:
    # basil+ tax shape (stripe-python `InvoiceLineItem.Tax` / `Invoice.TotalTax`).
    return {"amount": t.amount, "tax_behavior": "inclusive" if t.inclusive else "exclusive",
            "tax_rate_details": {"tax_rate": t.tax_rate}, "taxability_reason": t.taxability_reason,
            "taxable_amount": t.taxable_amount, "type": "tax_rate_details"}


def _tax_from_stripe(obj: dict) -> TaxAmount:
    return TaxAmount(amount=obj["amount"], tax_rate=obj["tax_rate_details"]["tax_rate"],
                     taxable_amount=obj["taxable_amount"], inclusive=obj["tax_behavior"] == "inclusive",
                     taxability_reason=obj.get("taxability_reason"))


def to_stripe(invoice: Invoice) -> dict:
    """Stripe's basil+ invoice object (`parent.subscription_details`, lines as a list object)."""
    parent = None if invoice.subscription is None else {
        "type": "subscription_details", "quote_details": None,
        "subscription_details": {"subscription": invoice.subscription, "metadata": {}}}
    return {
        **invoice_fields(), "subscription": invoice.subscription, "test_clock": invoice.test_clock,
        "id": invoice.id, "object": "invoice", "customer": invoice.customer, "currency": invoice.currency,
        "status": invoice.status, "billing_reason": invoice.billing_reason,
        "collection_method": invoice.collection_method, "created": invoice.created,
        "period_start": invoice.period_start, "period_end": invoice.period_end,
        "subtotal": invoice.subtotal,
        "subtotal_excluding_tax": invoice.subtotal_excluding_tax if invoice.total_taxes else invoice.subtotal,
        "total": invoice.total,
        "total_excluding_tax": invoice.total_excluding_tax if invoice.total_taxes else invoice.total,
        "total_discount_amounts": _discounts_to_stripe(invoice.total_discount_amounts)
        if invoice.total_discount_amounts else [],
        "total_taxes": _taxes_to_stripe(invoice.total_taxes) if invoice.total_taxes else [],
        "total_pretax_credit_amounts": [], "discounts": [],
        "amount_due": invoice.amount_due, "amount_paid": invoice.amount_paid,
        "amount_remaining": invoice.amount_remaining, "amount_overpaid": 0, "amount_shipping": 0,
        "starting_balance": invoice.starting_balance, "ending_balance": invoice.ending_balance,
        "attempt_count": invoice.attempt_count, "attempted": invoice.attempted, "auto_advance": invoice.auto_advance,
        "next_payment_attempt": invoice.next_payment_attempt, "due_date": invoice.due_date, "number": invoice.number,
        "automatically_finalizes_at": invoice.automatically_finalizes_at,
        "effective_at": invoice.finalized_at, "status_transitions": {
            "finalized_at": invoice.finalized_at, "marked_uncollectible_at": invoice.marked_uncollectible_at,
            "paid_at": invoice.paid_at, "voided_at": invoice.voided_at},
        "parent": parent, "description": None, "metadata": {}, "livemode": False,
        "lines": {"object": "list", "data": [_line_to_stripe(line, invoice) for line in invoice.lines],
                  "has_more": False, "total_count": len(invoice.lines), "url": f"/v1/invoices/{invoice.id}/lines"},
    }


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _line_from_stripe(obj: dict) -> InvoiceLine:
    details = obj["parent"]["subscription_item_details"] or obj["parent"].get("invoice_item_details") or {}
    pricing = obj["pricing"]
    return InvoiceLine(
        id=obj["id"], subscription_item=details.get("subscription_item"),
        price_id=pricing["price_details"]["price"], description=obj["description"], quantity=obj["quantity"],
        quantity_decimal=Decimal(obj["quantity_decimal"]), amount=obj["amount"],
        period_start=obj["period"]["start"], period_end=obj["period"]["end"],
        proration=bool(details.get("proration")), product=pricing["price_details"]["product"],
        unit_amount_decimal=_dec(pricing["unit_amount_decimal"]), invoice_item=details.get("invoice_item"),
        discount_amounts=_discounts_from_stripe(d) if (d := obj.get("discount_amounts")) else (),
        taxes=_taxes_from_stripe(t) if (t := obj.get("taxes")) else (),
    )


def from_stripe(obj: dict) -> Invoice:
    """Rebuild an Invoice from `to_stripe` output (a billing event's `data.object`)."""
    t = obj["status_transitions"]
    parent = obj.get("parent") or {}
    inv = Invoice(
        id=obj["id"], customer=obj["customer"], currency=obj["currency"], status=obj["status"],
        subscription=(parent.get("subscription_details") or {}).get("subscription"),
        billing_reason=obj["billing_reason"], created=obj["created"], period_start=obj["period_start"],
        period_end=obj["period_end"], lines=tuple(_line_from_stripe(x) for x in obj["lines"]["data"]),
        subtotal=obj["subtotal"], total=obj["total"], amount_due=obj["amount_due"], amount_paid=obj["amount_paid"],
        amount_remaining=obj["amount_remaining"], starting_balance=obj["starting_balance"],
        ending_balance=obj["ending_balance"], attempt_count=obj["attempt_count"], attempted=obj["attempted"],
        auto_advance=obj["auto_advance"], collection_method=obj["collection_method"],
        finalized_at=t["finalized_at"], paid_at=t["paid_at"], voided_at=t["voided_at"],
        marked_uncollectible_at=t["marked_uncollectible_at"], next_payment_attempt=obj["next_payment_attempt"],
        due_date=obj["due_date"], number=obj["number"], automatically_finalizes_at=obj.get("automatically_finalizes_at"),
        total_discount_amounts=_discounts_from_stripe(d) if (d := obj.get("total_discount_amounts")) else (),
        total_taxes=_taxes_from_stripe(tx) if (tx := obj.get("total_taxes")) else (),
        test_clock=obj.get("test_clock"),  # absent from events written before it was rendered
    )
    if inv.finalized_at is None:
        return inv
    # The balance transactions are not on the wire; they follow from total and starting_balance (see finalize).
    _, _, applied, too_small = balance_amounts(inv.total, inv.starting_balance, inv.currency)
    return replace(inv, applied_balance=applied, too_small_amount=too_small)
