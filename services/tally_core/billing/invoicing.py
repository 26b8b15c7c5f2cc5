"""The invoicing pipeline: specs → lines → discounts → tax → totals → balance, one path for every invoice.

Renewal (advance.py), the subscription's first invoice and cancel with `invoice_now`
(handlers/subscriptions.py), the finalization refresh of late usage (collection.py) and the preview
(handlers/invoices.py) all build invoices here:

1. specs (this module): what to bill. Licensed items in advance for the new period, metered items in arrears
   for the ended one (§6.6, A.5 step 1); a partial first period's amount comes from proration.py (A.4).
   Pending invoice items will come first here (A.5 step 1, invoice_items.py).
2. lines (`invoices.build_lines`): each spec priced (A.2), in the caller's order.
3. discounts (discounts.py, A.5 step 2).
4. tax (tax.py, A.5 step 3).
5. totals and 6. balance (`invoices.set_lines`): subtotal, total, then amount_due against the customer's
   balance (§6.3); finalization applies the balance for good (`invoices.finalize`, A.5 step 4).

Ids are taken in the order the specs are built (a line id, then the usage read it needs), then the invoice's:
the determinism of re-decided events depends on it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable

from . import discounts, invoices as inv_, tax
from .context import Run
from .invoices import BillingReason, DiscountAmount, Invoice, InvoiceLine, LineSpec, TaxAmount
from .proration import prorated_amount
from .subscriptions import Item, Subscription

DiscountStage = Callable[[Iterable[InvoiceLine]], tuple[tuple[InvoiceLine, ...], tuple[DiscountAmount, ...]]]
TaxStage = Callable[[Iterable[InvoiceLine], Iterable[DiscountAmount]],
                    tuple[tuple[InvoiceLine, ...], tuple[TaxAmount, ...]]]


# --- 1. specs ------------------------------------------------------------------------------------------------

def metered_spec(run: Run, sub: Subscription, item: Item, start: int, end: int, line_id: str) -> LineSpec:
    """A metered item bills its meter's usage over [start, end) in arrears (§1.10, §6.6)."""
    quantity = run.usage(item.price.recurring.meter, sub.customer, start, end)
    return LineSpec(id=line_id, price=item.price, quantity=quantity, period_start=start, period_end=end,
                    subscription_item=item.id)


def licensed_spec(run: Run, item: Item, start: int, end: int, *, factor=None) -> LineSpec:
    """A licensed item bills its quantity in advance; `factor` prorates a partial first period (A.4)."""
    spec = LineSpec(id=run.new_id("il"), price=item.price, quantity=item.quantity, period_start=start,
                    period_end=end, subscription_item=item.id)
    if factor is None:
        return spec
    return replace(spec, proration=True, amount=prorated_amount(item.price, item.quantity, factor))


def cycle_specs(run: Run, sub: Subscription, new: Subscription, *, licensed: bool = True) -> list[LineSpec]:
    """A period ends (§6.6): metered items for the ended period of `sub`, licensed items for `new`'s period
    (left out when `licensed` is false: a subscription ending at period end bills only its last usage)."""
    start, end = sub.current_period_start, sub.current_period_end
    return [metered_spec(run, sub, it, start, end, run.new_id("il")) if it.metered
            else licensed_spec(run, it, new.current_period_start, new.current_period_end)
            for it in new.items if it.metered or licensed]


def usage_specs(run: Run, sub: Subscription, start: int, end: int) -> list[LineSpec]:
    """The metered items' usage over [start, end) (a final invoice at cancel, §1.10)."""
    return [metered_spec(run, sub, it, start, end, run.new_id("il")) for it in sub.items if it.metered]


# --- 2.–6. lines, discounts, tax, totals, balance ------------------------------------------------------------

def assemble(invoice: Invoice, lines: Iterable[InvoiceLine], *, customer_balance: int,
             discount_stage: DiscountStage = discounts.apply, tax_stage: TaxStage = tax.apply) -> Invoice:
    """A draft's lines through discounts, then tax, then totals and the balance preview (A.5 steps 2–3)."""
    lines, invoice_discounts = discount_stage(lines)
    lines, taxes = tax_stage(lines, invoice_discounts)
    return inv_.set_lines(invoice, lines, customer_balance=customer_balance, invoice_discounts=invoice_discounts,
                          taxes=taxes)


def draft(run: Run, sub: Subscription, specs: list[LineSpec], *, reason: BillingReason | str, at: int, start: int,
          end: int, finalizes_at: int | None, auto_advance: bool = True) -> Invoice:
    """A new draft of `sub` billing `specs`, priced through the whole pipeline."""
    cus = run.book.customers[sub.customer]
    empty = inv_.draft(id=run.new_id("in"), customer=sub.customer, currency=sub.currency, billing_reason=reason,
                       created=at, period_start=start, period_end=end, subscription=sub.id,
                       customer_balance=cus.balance, auto_advance=auto_advance)
    inv = assemble(empty, inv_.build_lines(specs), customer_balance=cus.balance)
    return replace(inv, automatically_finalizes_at=finalizes_at)


def refresh_usage(run: Run, inv: Invoice) -> Invoice:
    """Re-read the metered lines' usage: late usage for the period counts until finalization (§1.10)."""
    sub = run.subscription_of(inv)
    if sub is None:
        return inv
    metered = {it.id: it for it in sub.items if it.metered}
    if not any(line.subscription_item in metered for line in inv.lines):
        return inv
    fresh = [line if line.subscription_item not in metered else inv_.build_lines([metered_spec(
        run, sub, metered[line.subscription_item], line.period_start, line.period_end, line.id)])[0]
        for line in inv.lines]
    return assemble(inv, fresh, customer_balance=run.book.customers[inv.customer].balance)
