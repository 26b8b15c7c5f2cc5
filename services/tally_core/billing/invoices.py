"""Invoices (Stripe `invoice`, reference §6): lines, totals, customer balance at finalization and the status machine.

Pure: ids and `now` come from the caller; every transition returns a new frozen Invoice (`dataclasses.replace`).
The wire form (Stripe's invoice object and back) is invoice_wire.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from ..errors import InvalidRequest
from ..strings import decimal_text as _text
from .payments import PaymentOutcome
from .prices import Price
from .pricing import line_detail

Status = Literal["draft", "open", "paid", "void", "uncollectible"]
BillingReason = Literal["subscription_create", "subscription_cycle", "subscription_cancel", "subscription_update",
                        "manual"]
UsageType = Literal["licensed", "metered"]

# Minimum chargeable amounts in minor units (reference §6.5); currencies not listed have no minimum here.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "cad": 50, "aud": 50, "sgd": 50, "nzd": 50, "chf": 50, "gbp": 30, "jpy": 50}


@dataclass(frozen=True, slots=True)
class DiscountAmount:
    """`{amount, discount}`: what one discount (`di_…`) took off a line or an invoice (§6.4, A.5 step 2)."""

    amount: int
    discount: str


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """One item of basil's `taxes[]` (line) / `total_taxes[]` (invoice): a tax rate's share (§6.4, §6.7)."""

    amount: int
    tax_rate: str                  # txr_…
    taxable_amount: int
    inclusive: bool = False        # inclusive tax is inside `amount`; exclusive tax is added to the total (A.5)
    taxability_reason: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One `line_item` (`il_…`); `amount` in minor units, period [start, end)."""

    id: str
    subscription_item: str | None
    price_id: str | None           # None: an invoice item of a bare amount
    description: str | None
    quantity: int                  # Stripe: "integer format, with any decimal precision truncated"
    quantity_decimal: Decimal
    amount: int
    period_start: int
    period_end: int
    proration: bool = False
    usage_type: UsageType = "licensed"
    product: str | None = None
    unit_amount_decimal: Decimal | None = None
    invoice_item: str | None = None
    discount_amounts: tuple[DiscountAmount, ...] = ()  # item-level discounts (A.5 step 2, discounts.py)
    taxes: tuple[TaxAmount, ...] = ()                   # the line's taxes (A.5 step 3, tax.py)

    @property
    def discountable(self) -> bool:
        return not self.proration  # "Always false for prorations" (reference §4.4)

    @property
    def net(self) -> int:
        return self.amount - sum(d.amount for d in self.discount_amounts) if self.discount_amounts else self.amount


@dataclass(frozen=True, slots=True)
class LineSpec:
    """What to bill: a price at a licensed quantity or a period's aggregated usage (Decimal) over a period."""

    id: str
    price: Price
    quantity: int | Decimal
    period_start: int
    period_end: int
    subscription_item: str | None = None
    description: str | None = None
    proration: bool = False
    amount: int | None = None  # precomputed (proration, reference A.4); None → price_amount(price, quantity)
    invoice_item: str | None = None


def _describe(price: Price, quantity: Decimal) -> str:
    return f"{_text(quantity)} × {price.nickname or price.product or price.id}"


def _line(spec: LineSpec) -> InvoiceLine:
    price = spec.price
    usage = price.recurring.usage_type if price.recurring else "licensed"
    # line_detail clamps a negative quantity to 0: a metered period whose usage sums below zero bills 0 (A.2, D.6).
    detail = line_detail(price, spec.quantity)
    return InvoiceLine(
        id=spec.id, subscription_item=spec.subscription_item, price_id=price.id,
        description=spec.description or _describe(price, detail.quantity),
        quantity=int(detail.quantity), quantity_decimal=detail.quantity,
        amount=detail.amount if spec.amount is None else spec.amount,
        period_start=spec.period_start, period_end=spec.period_end, proration=spec.proration, usage_type=usage,
        product=price.product, unit_amount_decimal=price.unit_amount_decimal, invoice_item=spec.invoice_item,
    )


def build_lines(specs: Iterable[LineSpec]) -> tuple[InvoiceLine, ...]:
    """Lines in the caller's order (Stripe: pending items/prorations first, then subscription items, §4.4)."""
    specs = tuple(specs)
    currencies = {s.price.currency for s in specs}
    if len(currencies) > 1:
        # One invoice, one payment: all prices on it "must use the same currency" (seed 001).
        raise ValueError(f"lines mix currencies: {sorted(currencies)}")
    return tuple(_line(s) for s in specs)


def totals(lines: Iterable[InvoiceLine], *, invoice_discounts: Iterable[int] = (), tax: int = 0) -> tuple[int, int]:
    """(subtotal, total) in A.5 order: item discounts are inside subtotal; invoice discounts then exclusive tax."""
    # §6.3: subtotal is "before any invoice level discount or exclusive tax… Item discounts are already incorporated".
    subtotal = sum(line.net for line in lines)
    return subtotal, subtotal - sum(invoice_discounts) + tax


@dataclass(frozen=True, slots=True)
class Invoice:
    """A Stripe invoice (`in_…`); amounts in minor units of `currency`."""

    id: str
    customer: str
    subscription: str | None
    currency: str
    status: Status
    billing_reason: BillingReason
    created: int
    period_start: int
    period_end: int
    lines: tuple[InvoiceLine, ...] = ()
    subtotal: int = 0
    total: int = 0
    amount_due: int = 0
    amount_paid: int = 0
    amount_remaining: int = 0
    starting_balance: int = 0
    ending_balance: int | None = None  # "null" until finalized (§6.3)
    applied_balance: int = 0           # amount of the `applied_to_invoice` balance transaction (new − old balance)
    too_small_amount: int = 0          # amount of the `invoice_too_small` balance transaction (§6.5)
    attempt_count: int = 0
    attempted: bool = False
    auto_advance: bool = True
    collection_method: str = "charge_automatically"
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    marked_uncollectible_at: int | None = None
    next_payment_attempt: int | None = None
    due_date: int | None = None
    number: str | None = None
    automatically_finalizes_at: int | None = None  # end of the grace period of a cycle draft (§1.10)
    # §6.3: every discount's amount across the lines and the invoice level, and every tax rate's amount.
    total_discount_amounts: tuple[DiscountAmount, ...] = ()
    total_taxes: tuple[TaxAmount, ...] = ()
    test_clock: str | None = None  # the customer's clock (Stripe's invoice `test_clock`)

    @property
    def total_excluding_tax(self) -> int:
        """§6.3: "all discounts, no tax": exclusive tax was added to the total, inclusive tax is inside it."""
        return self.total - sum(t.amount for t in self.total_taxes)

    @property
    def subtotal_excluding_tax(self) -> int:
        """The subtotal without the inclusive tax inside it (exclusive tax is not in the subtotal)."""
        return self.subtotal - sum(t.amount for t in self.total_taxes if t.inclusive)


def balance_amounts(total: int, balance: int, currency: str) -> tuple[int, int, int, int]:
    """(amount_due, ending_balance, applied_balance, too_small_amount) for `total` against a customer balance."""
    # §4.7: balance < 0 is credit owed to the customer, > 0 an amount they owe, added to the next invoice.
    # §6.3/A.5 [INFERRED]: x = total + starting_balance; amount_due = max(0, x); ending_balance = min(0, x).
    x = total + balance
    due, left = max(0, x), min(0, x)
    # §6.5/A.5: 0 < amount_due < minimum → not charged, carried to the balance (`invoice_too_small`); §6.3: below
    # "the minimum charge amount… the amount_due may be 0".
    too_small = due if 0 < due < MINIMUM_CHARGE.get(currency.lower(), 0) else 0
    return due - too_small, left + too_small, left - balance, too_small


def draft(*, id: str, customer: str, currency: str, billing_reason: BillingReason, created: int, period_start: int,
          period_end: int, lines: Iterable[InvoiceLine] = (), subscription: str | None = None,
          customer_balance: int = 0, auto_advance: bool = True,
          collection_method: str = "charge_automatically", due_date: int | None = None) -> Invoice:
    """A new draft invoice; amounts preview the customer's current balance (nothing is applied until finalize)."""
    inv = Invoice(id=id, customer=customer, subscription=subscription, currency=currency, status="draft",
                  billing_reason=billing_reason, created=created, period_start=period_start, period_end=period_end,
                  auto_advance=auto_advance, collection_method=collection_method, due_date=due_date)
    return set_lines(inv, lines, customer_balance=customer_balance)


def _refuse(message: str, code: str = "status_transition_invalid") -> InvalidRequest:
    return InvalidRequest(message, code=code)


def _per_discount(amounts: Iterable[DiscountAmount]) -> tuple[DiscountAmount, ...]:
    """§6.3 `total_discount_amounts`: one entry per discount, summed over the lines and the invoice level."""
    out: dict[str, int] = {}
    for d in amounts:
        out[d.discount] = out.get(d.discount, 0) + d.amount
    return tuple(DiscountAmount(amount, discount) for discount, amount in out.items())


def set_lines(invoice: Invoice, lines: Iterable[InvoiceLine], *, customer_balance: int,
              invoice_discounts: Iterable[DiscountAmount] = (), taxes: Iterable[TaxAmount] = ()) -> Invoice:
    """Replace a draft's lines and recompute totals (e.g. late usage refreshed at finalization, §1.10).

    `invoice_discounts` are the invoice-level discounts (A.5 step 2, after the lines' own), `taxes` the
    invoice's taxes per rate (A.5 step 3); invoicing.py's pipeline computes both."""
    if invoice.status != "draft":
        # §6.1: "Only `draft` is editable"; error code `invoice_not_editable`.
        raise _refuse(f"You can only edit draft invoices; this invoice is {invoice.status}.", "invoice_not_editable")
    lines, invoice_discounts, taxes = tuple(lines), tuple(invoice_discounts), tuple(taxes)
    subtotal, total = totals(lines, invoice_discounts=[d.amount for d in invoice_discounts],
                             tax=sum(t.amount for t in taxes if not t.inclusive) if taxes else 0)
    discounted = [d for line in lines if line.discount_amounts for d in line.discount_amounts]
    due = balance_amounts(total, customer_balance, invoice.currency)[0]
    # §6.3: before finalization starting_balance "will be the current customer balance"; ending_balance is null.
    return replace(invoice, lines=lines, subtotal=subtotal, total=total, amount_due=due, amount_remaining=due,
                   starting_balance=customer_balance, ending_balance=None, total_taxes=taxes,
                   total_discount_amounts=_per_discount(discounted + list(invoice_discounts))
                   if discounted or invoice_discounts else ())


def finalize(invoice: Invoice, *, customer_balance: int, now: int, number: str | None = None) -> tuple[Invoice, int]:
    """draft → open (or paid when nothing is due); returns the invoice and the customer's new balance."""
    if invoice.status != "draft":
        raise _refuse(f"This invoice is already finalized (status {invoice.status}); only a draft can be finalized.")
    # §4.7: the balance "automatically applies toward the next invoice finalized"; A.5 step 4.
    due, ending, applied, too_small = balance_amounts(invoice.total, customer_balance, invoice.currency)
    inv = replace(invoice, status="open", finalized_at=now, number=number, amount_due=due, amount_paid=0,
                  amount_remaining=due, starting_balance=customer_balance, ending_balance=ending,
                  applied_balance=applied, too_small_amount=too_small)
    if due == 0:
        # §6.5: an invoice that "doesn't require payment" transitions to paid (A.5: amount_due == 0 → paid).
        inv = replace(inv, status="paid", paid_at=now, auto_advance=False, next_payment_attempt=None)
    elif inv.auto_advance and inv.collection_method == "charge_automatically":
        inv = replace(inv, next_payment_attempt=now)  # collected right away (first invoice: in the request, §3.6)
    return inv, ending


def pay(invoice: Invoice, outcome: PaymentOutcome, now: int, *, next_payment_attempt: int | None = None) -> Invoice:
    """Record one collection attempt: open/uncollectible → paid on success; on failure the status stays (retry)."""
    if invoice.status not in ("open", "uncollectible"):
        # §6.1: only open and uncollectible invoices can be paid; paid and void are terminal.
        raise _refuse(f"You can't pay an invoice with status {invoice.status}; it must be open or uncollectible.")
    inv = replace(invoice, attempt_count=invoice.attempt_count + 1, attempted=True)
    if not outcome.succeeded:
        return replace(inv, next_payment_attempt=next_payment_attempt)
    if outcome.amount != invoice.amount_remaining:
        raise ValueError(f"outcome charged {outcome.amount}, invoice {invoice.id} has {invoice.amount_remaining} due")
    return replace(inv, status="paid", amount_paid=invoice.amount_paid + outcome.amount, amount_remaining=0,
                   paid_at=now, next_payment_attempt=None, auto_advance=False)


def void(invoice: Invoice, now: int) -> Invoice:
    """open/uncollectible → void (terminal); see `unapplied_balance` for the balance to give back."""
    if invoice.status not in ("open", "uncollectible"):
        # §6.1: void only from open or uncollectible (a draft is deleted instead).
        raise _refuse(f"You can only void an open or uncollectible invoice; this invoice is {invoice.status}.")
    return replace(invoice, status="void", voided_at=now, next_payment_attempt=None, auto_advance=False)


def mark_uncollectible(invoice: Invoice, now: int) -> Invoice:
    """open → uncollectible (still payable or voidable later, §6.1)."""
    if invoice.status != "open":
        raise _refuse(f"You can only mark an open invoice uncollectible; this invoice is {invoice.status}.")
    return replace(invoice, status="uncollectible", marked_uncollectible_at=now, next_payment_attempt=None,
                   auto_advance=False)


def unapplied_balance(invoice: Invoice) -> int:
    """Balance to return to the customer when a finalized unpaid invoice is voided (`unapplied_from_invoice`)."""
    # [INFERRED from the cbtxn type `unapplied_from_invoice`, §4.7]: voiding undoes the `applied_to_invoice` entry.
    return -invoice.applied_balance if invoice.status == "void" else 0
