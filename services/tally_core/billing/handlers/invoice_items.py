"""`invoiceitem.create`, `invoiceitem.update`, `invoiceitem.delete` (reference §4.4, §6.1; `/v1/invoiceitems`).

An item is a one-off charge or credit (a negative amount). It waits, pending, for the customer's next
invoice (with `subscription`: that subscription's), which takes it first (§4.4 line order); with `invoice` it
goes onto that draft at once, after the draft's own lines ("invoice items added after invoice creation in
chronological order", invoicing.add_items). It can change or be deleted while pending or on a draft: "Only
`draft` is editable" (§6.1), `invoice_not_editable` otherwise. Stripe has no `invoiceitem.updated` event
(§8.3), so an update is logged as the internal record `invoice_items.UPDATED`, with the whole new item.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from ... import metadata as _metadata
from ...errors import InvalidRequest, ResourceMissing, invalid, missing, missing_reference
from .. import invoicing
from ..context import Run
from ..invoice_item_edge import MAX_AMOUNT
from ..invoice_items import UPDATED, InvoiceItem
from ..invoices import Invoice
from ..prices import Price
from ..pricing import line_detail, to_minor
from ..subscriptions import ENDED


def invoiceitem_create(run: Run, now: int) -> dict:
    params = run.params
    sent = params.model_fields_set
    cus = run.customer(params.customer, "customer")
    sub = run.sub(params.subscription, "subscription") if params.subscription else None
    if sub is not None and sub.customer != cus.id:
        raise invalid("subscription", f"{sub.id} is not a subscription of customer {cus.id}.")
    if sub is not None and sub.status in ENDED:
        raise invalid("subscription", f"{sub.id} is {sub.status}: it has no next invoice to add the item to.")
    inv = _draft_of(run, params.invoice, cus.id, sub) if params.invoice else None
    price = _price(run, params.price) if params.price else None
    currency = _currency(run, cus, params.currency if "currency" in sent else None, price, sub, inv)
    quantity = params.quantity if "quantity" in sent else 1
    amount, unit = _priced(run, price, quantity, None)
    period = params.period
    item = InvoiceItem(
        id=run.command.object_id, customer=cus.id, currency=currency, amount=amount,
        period_start=period.start if period else now, period_end=period.end if period else now, date=now,
        description=params.description if "description" in sent else None,
        price_id=price.id if price else None, product=price.product if price else None, quantity=quantity,
        subscription=sub.id if sub else None, invoice=inv.id if inv else None,
        metadata=_metadata.check(params.metadata) if "metadata" in sent else {}, unit_amount_decimal=unit,
        # Stripe: "Defaults to false for prorations or negative invoice items, and true for all other".
        discountable_choice=params.discountable if "discountable" in sent else amount >= 0,
        test_clock=cus.test_clock)
    run.emit("invoiceitem.created", item.to_stripe(), now)
    if inv is not None:
        run.save_invoice("invoice.updated", invoicing.add_items(run, inv, [item]), now)
    return _answer(run, item.id)


def invoiceitem_update(run: Run, now: int) -> dict:
    item = _editable(run, run.command.object_id)
    params = run.params
    sent = params.model_fields_set
    new = item
    if sent & {"amount", "price", "unit_amount_decimal", "quantity"}:
        price = _price(run, params.price) if "price" in sent else None
        if price is not None and price.currency != item.currency:
            raise invalid("price", f"is in {price.currency}; this invoice item is in {item.currency}.")
        quantity = params.quantity if "quantity" in sent else (1 if "amount" in sent else item.quantity)
        amount, unit = _priced(run, price, quantity, item)
        if "amount" in sent or "unit_amount_decimal" in sent:
            new = replace(new, price_id=None, product=None)
        elif price is not None:
            new = replace(new, price_id=price.id, product=price.product)
        new = replace(new, amount=amount, unit_amount_decimal=unit, quantity=quantity)
    if "description" in sent:
        new = replace(new, description=params.description)
    if "metadata" in sent:
        new = replace(new, metadata=_metadata.merge(item.metadata, params.metadata))
    if "period" in sent:
        new = replace(new, period_start=params.period.start, period_end=params.period.end)
    if "discountable" in sent:
        new = replace(new, discountable_choice=params.discountable)
    if new == item:
        return _answer(run, item.id)
    run.emit(UPDATED, new.to_stripe(), now)
    if new.invoice is not None:
        # The draft is priced again with the item's new line, after its other lines (invoicing.add_items).
        inv = run.book.invoices[new.invoice]
        run.save_invoice("invoice.updated", invoicing.add_items(run, _without(inv, item.id), [new]), now)
    return _answer(run, item.id)


def invoiceitem_delete(run: Run, now: int) -> dict:
    item = _editable(run, run.command.object_id)
    run.emit("invoiceitem.deleted", item.to_stripe(), now)
    if item.invoice is not None:
        inv = _without(run.book.invoices[item.invoice], item.id)
        run.save_invoice("invoice.updated", invoicing.assemble(
            inv, inv.lines, customer_balance=run.book.customers[inv.customer].balance), now)
    return {"id": item.id, "object": "invoiceitem", "deleted": True}


# --- the rules that need the book ------------------------------------------------------------------------

def _answer(run: Run, item_id: str) -> dict:
    item = run.book.pending_items.get(item_id) or run.book.draft_items.get(item_id)
    return item.to_stripe()


def _editable(run: Run, item_id: str) -> InvoiceItem:
    item = run.book.pending_items.get(item_id) or run.book.draft_items.get(item_id)
    if item is not None:
        return item
    for inv_id in sorted(run.book.invoices):
        inv = run.book.invoices[inv_id]
        if any(line.invoice_item == item_id for line in inv.lines):
            # §6.1: "Only `draft` is editable".
            raise InvalidRequest(f"The invoice item {item_id} is on invoice {inv.id}, which is {inv.status}: an "
                                 "invoice item can change only while pending or on a draft invoice.",
                                 code="invoice_not_editable")
    raise ResourceMissing("invoiceitem", item_id)


def _draft_of(run: Run, invoice_id: str, customer: str, sub) -> Invoice:
    inv = run.book.invoices.get(invoice_id)
    if inv is None or inv.customer != customer:
        # An invoice of another customer is in another book, or the customer's is gone: Stripe's 400 either way.
        raise missing_reference("invoice", invoice_id, "invoice")
    if inv.status != "draft":
        raise InvalidRequest(f"You can only add invoice items to draft invoices; {inv.id} is {inv.status}.",
                             param="invoice", code="invoice_not_editable")
    if sub is not None and inv.subscription != sub.id:
        raise invalid("subscription", f"invoice {inv.id} is not an invoice of {sub.id}.")
    return inv


def _price(run: Run, price_id: str) -> Price:
    price = Price.from_stripe(run.command.prices[price_id])  # pinned by the API (a replay prices the same)
    if price.recurring is not None:
        raise invalid("price", f"{price.id} is a recurring price; an invoice item takes a one-time price.")
    if not price.active:
        raise invalid("price", f"{price.id} is inactive.")
    return price


def _currency(run: Run, cus, given: str | None, price: Price | None, sub, inv: Invoice | None) -> str:
    """The item's currency, which must be the one its invoice will be in: the subscription's, the draft's, the
    price's, the customer's (set by its first invoice or balance transaction, §4.7)."""
    known = [(name, cur) for name, cur in (
        ("price", price.currency if price else None), ("subscription", sub.currency if sub else None),
        ("invoice", inv.currency if inv else None), ("customer", cus.currency)) if cur]
    if given is None and not known:
        raise missing("currency")
    currency = given or known[0][1]
    for name, cur in known:
        if cur != currency:
            param = "currency" if given else known[0][0]  # what the request chose, never the customer
            raise invalid(param, f"the item would be in {currency}, but the {name} bills in {cur}: an invoice "
                                 "has one currency.")
    return currency


def _priced(run: Run, price: Price | None, quantity: int, item: InvoiceItem | None) -> tuple[int, Decimal | None]:
    """(amount, unit_amount_decimal) of an item: one half-up rounding of unit × quantity (A.1)."""
    params = run.params
    sent = params.model_fields_set
    if "amount" in sent:
        return params.amount, Decimal(params.amount)
    if price is None and "unit_amount_decimal" not in sent and item is not None and item.price_id is not None \
            and not item.proration and item.price_id in run.command.prices:
        price = Price.from_stripe(run.command.prices[item.price_id])  # a new quantity of the same price
    if price is not None:
        amount, unit = line_detail(price, quantity).amount, price.unit_amount_decimal
    else:
        unit = Decimal(params.unit_amount_decimal) if "unit_amount_decimal" in sent else item.unit_amount_decimal
        if unit is None:
            raise invalid("quantity", "this invoice item's amount was fixed when it was made; send amount.")
        amount = to_minor(unit * quantity)
    if abs(amount) > MAX_AMOUNT:
        param = "quantity" if "quantity" in sent else "price" if "price" in sent else "unit_amount_decimal"
        raise invalid(param, f"the item's amount would be {amount}; at most {MAX_AMOUNT} (8 digits).")
    return amount, unit


def _without(inv: Invoice, item_id: str) -> Invoice:
    return replace(inv, lines=tuple(line for line in inv.lines if line.invoice_item != item_id))
