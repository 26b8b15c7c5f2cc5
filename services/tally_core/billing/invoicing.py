"""The invoicing pipeline: specs → lines → discounts → tax → totals → balance, one path for every invoice.

Renewal (advance.py), the subscription's first invoice and cancel with `invoice_now`
(handlers/subscriptions.py), the finalization refresh of late usage (collection.py) and the preview
(handlers/invoices.py) all build invoices here:

1. specs (this module): what to bill. Licensed items in advance for the new period, metered items in arrears
   for the ended one (§6.6, A.5 step 1); a partial first period's amount comes from proration.py (A.4).
   Pending invoice items (prorations included) come first, newest first (`pending_lines`, §4.4: "pending
   invoice items (including prorations) in reverse chronological order, (2) subscription items in reverse
   chronological order, and (3) invoice items added after invoice creation in chronological order").
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
from decimal import Decimal
from typing import Callable, Iterable

from . import discounts, invoices as inv_, tax
from .context import Run
from .invoice_items import InvoiceItem
from .invoices import BillingReason, DiscountAmount, Invoice, InvoiceLine, LineSpec, TaxAmount
from .proration import prorated_amount, share
from .subscriptions import ENDED, Item, Subscription

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
    # A period cut short by `cancel_at` bills its share of the full one (§3.5: "final invoice subtotal … 60 USD").
    cut = new.cancel_at is not None and new.current_period_end < new.boundary_after(new.current_period_start)
    factor = share(new, new.current_period_start, new.current_period_end) if cut else None
    # A metered item bills the ended period from when its price came in (`since` of the ended period's item).
    ended = {it.id: it for it in sub.items}
    return [metered_spec(run, sub, it, usage_start(ended.get(it.id, it), start), end, run.new_id("il"))
            if it.metered else licensed_spec(run, it, new.current_period_start, new.current_period_end,
                                             factor=factor)
            for it in newest_first(new.items) if it.metered or licensed]


def newest_first(items: Iterable[Item]) -> list[Item]:
    """Subscription items "in reverse chronological order" (§4.4); items added together keep their order."""
    return sorted(items, key=lambda it: -it.created)


def usage_start(item: Item, period_start: int) -> int:
    """A metered item counts usage from the period's start, or from when its price came in (§1.11)."""
    return period_start if item.since is None else max(item.since, period_start)


def usage_specs(run: Run, sub: Subscription, start: int, end: int) -> list[LineSpec]:
    """The metered items' usage over [start, end) (a final invoice at cancel, §1.10)."""
    return [metered_spec(run, sub, it, usage_start(it, start), end, run.new_id("il"))
            for it in newest_first(sub.items) if it.metered]


def item_line(run: Run, item: InvoiceItem) -> InvoiceLine:
    """An invoice item as an invoice line: its amount is fixed when the item is made (a proration's at the
    change, §4.4), so nothing is priced again."""
    return InvoiceLine(
        id=run.new_id("il"), subscription_item=item.subscription_item, price_id=item.price_id,
        description=item.description, quantity=item.quantity,
        quantity_decimal=Decimal(item.quantity) if item.quantity_decimal is None else item.quantity_decimal,
        amount=item.amount, period_start=item.period_start, period_end=item.period_end, proration=item.proration,
        product=item.product, unit_amount_decimal=getattr(item, "unit_amount_decimal", None),
        invoice_item=item.id)


def pending_for(run: Run, sub: Subscription) -> list[InvoiceItem]:
    """The pending items the subscription's next invoice takes: its own, and the customer's that belong to no
    subscription or to one that has ended (a credit left by `DELETE … prorate=true`, §3.5), in its currency;
    newest first (items of one moment keep the order they were made in)."""
    subs = run.book.subscriptions

    def theirs(it: InvoiceItem) -> bool:
        if it.subscription in (sub.id, None):
            return True
        owner = subs.get(it.subscription)
        return owner is not None and owner.status in ENDED

    items = [it for it in run.book.pending_items.values()
             if it.customer == sub.customer and it.currency == sub.currency and theirs(it)]
    return sorted(items, key=lambda it: -it.date)


def pending_lines(run: Run, sub: Subscription) -> list[InvoiceLine]:
    return [item_line(run, it) for it in pending_for(run, sub)]


# --- 2.–6. lines, discounts, tax, totals, balance ------------------------------------------------------------

def assemble(invoice: Invoice, lines: Iterable[InvoiceLine], *, customer_balance: int,
             discount_stage: DiscountStage = discounts.apply, tax_stage: TaxStage = tax.apply) -> Invoice:
    """A draft's lines through discounts, then tax, then totals and the balance preview (A.5 steps 2–3)."""
    lines, invoice_discounts = discount_stage(lines)
    lines, taxes = tax_stage(lines, invoice_discounts)
    return inv_.set_lines(invoice, lines, customer_balance=customer_balance, invoice_discounts=invoice_discounts,
                          taxes=taxes)


def draft(run: Run, sub: Subscription, specs: list[LineSpec], *, reason: BillingReason | str, at: int, start: int,
          end: int, finalizes_at: int | None, auto_advance: bool = True,
          pending: list[InvoiceLine] = ()) -> Invoice:
    """A new draft of `sub`: the `pending` item lines first, then `specs`, priced through the whole pipeline."""
    cus = run.book.customers[sub.customer]
    empty = inv_.draft(id=run.new_id("in"), customer=sub.customer, currency=sub.currency, billing_reason=reason,
                       created=at, period_start=start, period_end=end, subscription=sub.id,
                       customer_balance=cus.balance, auto_advance=auto_advance)
    inv = assemble(empty, (*pending, *inv_.build_lines(specs)), customer_balance=cus.balance)
    return replace(inv, automatically_finalizes_at=finalizes_at, test_clock=cus.test_clock)


def add_items(run: Run, inv: Invoice, items: Iterable[InvoiceItem]) -> Invoice:
    """A draft with invoice items appended, "in chronological order" after its own lines (§4.4), re-priced."""
    lines = (*inv.lines, *(item_line(run, it) for it in sorted(items, key=lambda it: it.date)))
    return assemble(inv, lines, customer_balance=run.book.customers[inv.customer].balance)


def refresh_usage(run: Run, inv: Invoice) -> Invoice:
    """Re-read the metered lines' usage: late usage for the period counts until finalization (§1.10)."""
    sub = run.subscription_of(inv)
    if sub is None:
        return inv
    metered = {it.id: it for it in sub.items if it.metered}
    # An invoice item's line (a proration, or usage billed when a metered price left) is fixed when it is made.
    # A price swapped in since the draft was made bills from the swap on, never the period before it.
    usage = [line for line in inv.lines if line.subscription_item in metered and line.invoice_item is None
             and metered[line.subscription_item].price.id == line.price_id]
    if not usage:
        return inv
    fresh = [line if line not in usage else inv_.build_lines([metered_spec(
        run, sub, metered[line.subscription_item], line.period_start, line.period_end, line.id)])[0]
        for line in inv.lines]
    return assemble(inv, fresh, customer_balance=run.book.customers[inv.customer].balance)
