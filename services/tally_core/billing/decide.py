"""The billing worker's decisions: `decide(book, command, usage) -> Decision`, pure and deterministic.

A decision first lets time act on the book up to the command's time (renewals, grace periods ending,
payment retries, each at the moment it falls due, so it makes no difference how often time arrives), then
carries out the command. Every change is an event, applied to the book as it is emitted (`book.apply`), so
the book is always the fold of the events. Ids derive from the command id, and every usage value read is
recorded as a `tally.usage_observed` record: re-deciding from the same commands and observations gives the
same events, byte for byte.

Commands are plain dicts: `{"id", "type", "account", "key", "at", "grace", ...}` (schemas/billing_command.v1.json).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Callable

from ..errors import ApiError, InvalidRequest, ResourceMissing, invalid, missing_reference
from . import invoices as inv_
from . import params as p
from .book import INCOMPLETE_EXPIRES, RENEWING, USAGE_OBSERVED, Book, apply, due_at
from .customers import Customer, create_customer, update_customer
from .invoices import Invoice, LineSpec
from .payments import NO_PAYMENT_METHOD, PaymentOutcome, card_error, charge
from .periods import add_interval
from .prices import Price
from .pricing import price_amount, to_minor
from .subscriptions import Item, Subscription, create_subscription, roll_over
from .test_clocks import TestClock, advance_target, create_test_clock

UsageReader = Callable[[str, str, int, int], Decimal]  # (meter, customer, start, end) → aggregated value
DEFAULT_GRACE = 3600        # "default finalization grace period of 1 hour" (§1.10)
MAX_GRACE = 72 * 3600       # "up to 72 hours (3 days)"
# After a failed renewal payment: retry 3, 5 and 7 days later (a Stripe custom retry schedule allows up to
# 3 retries, §3.6); when the last one fails the subscription becomes `unpaid`.
RETRY_DELAYS = (3 * 86_400, 5 * 86_400, 7 * 86_400)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass
class Decision:
    book: Book
    events: list[dict] = field(default_factory=list)
    result: dict | None = None       # the object the API answers with
    error: ApiError | None = None    # the command was refused (events may still hold what time did first)


class _Run:
    """One decision in progress: the book so far, the events emitted, deterministic ids."""

    def __init__(self, book: Book, command: dict, usage: UsageReader):
        self.book = book
        self.command = command
        self.usage_reader = usage
        self.events: list[dict] = []
        self._n = 0
        self.grace = min(max(int(command.get("grace", DEFAULT_GRACE)), 0), MAX_GRACE)
        self.request = {"id": command.get("request_id"), "idempotency_key": command.get("idempotency_key")}
        self.caused = False  # True while the command itself acts (its events name the request)
        self._observed: dict[tuple, Decimal] = {}
        self.error: ApiError | None = None
        self.last_outcome: PaymentOutcome | None = None

    def new_id(self, prefix: str) -> str:
        self._n += 1
        # One tick decides for many books: the book's key keeps their ids apart.
        digest = hashlib.blake2b(f"{self.command['id']}/{self.book.key}/{self._n}".encode(), digest_size=18).digest()
        n = int.from_bytes(digest, "big")
        chars = []
        for _ in range(24):
            n, r = divmod(n, 62)
            chars.append(_ALPHABET[r])
        return f"{prefix}_{''.join(chars)}"

    def emit(self, kind: str, obj: dict, created: int, previous: dict | None = None) -> None:
        data = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        event = {
            "id": self.new_id("evt"), "object": "event", "type": kind, "created": created, "api_version": None,
            "livemode": False, "pending_webhooks": 0, "data": data,
            "request": self.request if self.caused else {"id": None, "idempotency_key": None},
            "account": self.book.account, "key": self.book.key, "command": self.command["id"],
        }
        self.events.append(event)
        self.book = apply(self.book, event)

    def usage(self, meter: str, customer: str, start: int, end: int) -> Decimal:
        key = (meter, customer, start, end)
        if key not in self._observed:
            value = Decimal(self.usage_reader(meter, customer, start, end))
            self._observed[key] = value
            self.events.append({
                "id": self.new_id("obs"), "type": USAGE_OBSERVED, "account": self.book.account,
                "key": self.book.key, "command": self.command["id"], "data": {"object": {
                    "meter": meter, "customer": customer, "start": start, "end": end, "value": str(value)}}})
        return self._observed[key]

    # --- objects ---------------------------------------------------------------------------------------------

    def sub(self, sub_id: str, param: str = "id") -> Subscription:
        sub = self.book.subscriptions.get(sub_id)
        if sub is None:
            raise _missing("subscription", sub_id, param)
        return sub

    def customer(self, customer_id: str, param: str = "id") -> Customer:
        cus = self.book.customers.get(customer_id)
        if cus is None or cus.deleted:
            raise _missing("customer", customer_id, param)
        return cus

    def invoice(self, invoice_id: str) -> Invoice:
        inv = self.book.invoices.get(invoice_id)
        if inv is None:
            raise ResourceMissing("invoice", invoice_id, param="id")
        return inv

    def save_sub(self, kind: str, new: Subscription, old: Subscription | None, at: int) -> None:
        self.emit(kind, new.to_stripe(), at, _changed(old.to_stripe(), new.to_stripe()) if old else None)

    def save_invoice(self, kind: str, inv: Invoice, at: int) -> None:
        self.emit(kind, inv_.to_stripe(inv), at)

    def set_balance(self, customer_id: str, balance: int, at: int) -> None:
        cus = self.book.customers[customer_id]
        if cus.balance != balance:
            self.emit("customer.updated", replace(cus, balance=balance).to_stripe(), at, {"balance": cus.balance})


def _missing(kind: str, id_: str, param: str) -> ResourceMissing:
    return ResourceMissing(kind, id_) if param == "id" else missing_reference(kind, id_, param)


def _changed(old: dict, new: dict) -> dict:
    """Stripe's `previous_attributes`: the old values of top-level fields that changed."""
    return {k: v for k, v in old.items() if new.get(k) != v}


# --- invoices ------------------------------------------------------------------------------------------------

def _metered_spec(run: _Run, sub: Subscription, item: Item, start: int, end: int, line_id: str) -> LineSpec:
    quantity = run.usage(item.price.recurring.meter, sub.customer, start, end)
    return LineSpec(id=line_id, price=item.price, quantity=quantity, period_start=start, period_end=end,
                    subscription_item=item.id)


def _licensed_spec(run: _Run, item: Item, start: int, end: int, *, factor: Decimal | None = None) -> LineSpec:
    spec = LineSpec(id=run.new_id("il"), price=item.price, quantity=item.quantity, period_start=start,
                    period_end=end, subscription_item=item.id)
    if factor is None:
        return spec
    # A.4: the partial first period before a future anchor bills the full amount × time left / period length.
    return replace(spec, proration=True, amount=to_minor(Decimal(price_amount(item.price, item.quantity)) * factor))


def _draft(run: _Run, sub: Subscription, specs: list[LineSpec], *, reason: str, at: int, start: int, end: int,
           finalizes_at: int | None, auto_advance: bool = True) -> Invoice:
    cus = run.book.customers[sub.customer]
    return replace(inv_.draft(
        id=run.new_id("in"), customer=sub.customer, currency=sub.currency, billing_reason=reason, created=at,
        period_start=start, period_end=end, lines=inv_.build_lines(specs), subscription=sub.id,
        customer_balance=cus.balance, auto_advance=auto_advance), automatically_finalizes_at=finalizes_at)


def _refresh_usage(run: _Run, inv: Invoice) -> Invoice:
    """Re-read the metered lines' usage: late usage for the period counts until finalization (§1.10)."""
    sub = run.book.subscriptions.get(inv.subscription) if inv.subscription else None
    if sub is None:
        return inv
    metered = {it.id: it for it in sub.items if it.metered}
    if not any(line.subscription_item in metered for line in inv.lines):
        return inv
    fresh = [line if line.subscription_item not in metered else inv_.build_lines([_metered_spec(
        run, sub, metered[line.subscription_item], line.period_start, line.period_end, line.id)])[0]
        for line in inv.lines]
    return inv_.set_lines(inv, fresh, customer_balance=run.book.customers[inv.customer].balance)


def _number(run: _Run, customer: str) -> str:
    prefix = hashlib.blake2b(customer.encode(), digest_size=4).hexdigest().upper()
    return f"{prefix}-{run.book.sequences.get(customer, 0) + 1:04d}"


def _finalize(run: _Run, inv: Invoice, at: int, *, collect: bool = True) -> None:
    inv = _refresh_usage(run, inv)
    cus = run.book.customers[inv.customer]
    inv, balance = inv_.finalize(inv, customer_balance=cus.balance, now=at, number=_number(run, inv.customer))
    inv = replace(inv, automatically_finalizes_at=None)
    run.save_invoice("invoice.finalized", inv, at)
    run.set_balance(inv.customer, balance, at)
    if inv.status == "paid":
        run.save_invoice("invoice.paid", inv, at)
        _after_payment(run, inv, at)
    elif collect and inv.collection_method == "charge_automatically":
        _collect(run, inv, at)


def _attempt(cus: Customer, payment_method: str | None, amount: int) -> PaymentOutcome:
    try:
        return charge(payment_method or cus.default_payment_method, amount)
    except ResourceMissing as err:  # a payment method we do not know declines like a bad card
        return PaymentOutcome(False, None, err.message or NO_PAYMENT_METHOD)


def _collect(run: _Run, inv: Invoice, at: int, payment_method: str | None = None, *, retry: bool = True) -> bool:
    """One payment attempt; on failure schedule the next retry (renewals only) and mark the subscription."""
    cus = run.book.customers[inv.customer]
    outcome = _attempt(cus, payment_method, inv.amount_remaining)
    if outcome.succeeded:
        paid = inv_.pay(inv, outcome, at)
        run.save_invoice("invoice.paid", paid, at)
        run.save_invoice("invoice.payment_succeeded", paid, at)
        _after_payment(run, paid, at)
        return True
    run.last_outcome = outcome
    attempt = inv.attempt_count + 1
    renewal = inv.billing_reason != "subscription_create"  # a first invoice is not retried; it expires (§3.6)
    if not retry:
        later = inv.next_payment_attempt  # a manual /pay keeps the automatic schedule
    else:
        later = at + RETRY_DELAYS[attempt - 1] if renewal and attempt <= len(RETRY_DELAYS) else None
    failed = inv_.pay(inv, outcome, at, next_payment_attempt=later)
    if not retry and inv.attempt_count > 0:
        # attempt_count: "Any payment attempt counts as the first attempt, and subsequently only automatic
        # retries increment the attempt count" (Invoice.attempt_count, stripe-python).
        failed = replace(failed, attempt_count=inv.attempt_count)
    run.save_invoice("invoice.payment_failed", failed, at)
    sub = run.book.subscriptions.get(inv.subscription) if inv.subscription else None
    if renewal and sub is not None and sub.latest_invoice == inv.id and sub.status in ("active", "past_due"):
        status = "unpaid" if retry and later is None else "past_due"
        if status != sub.status:
            run.save_sub("customer.subscription.updated", replace(sub, status=status), sub, at)
    return False


def _after_payment(run: _Run, inv: Invoice, at: int) -> None:
    """Paying (or marking uncollectible) the latest invoice makes its subscription active again (§3.6)."""
    sub = run.book.subscriptions.get(inv.subscription) if inv.subscription else None
    if sub is not None and sub.latest_invoice == inv.id and sub.status in ("past_due", "unpaid", "incomplete"):
        run.save_sub("customer.subscription.updated", replace(sub, status="active"), sub, at)


# --- time ----------------------------------------------------------------------------------------------------

def _renew(run: _Run, sub: Subscription, at: int) -> None:
    """A period ends: bill metered usage in arrears and licensed items in advance on one draft (§6.6)."""
    start, end = sub.current_period_start, sub.current_period_end
    metered = [it for it in sub.items if it.metered]
    if sub.cancel_at_period_end:
        ended = replace(sub, status="canceled", ended_at=at)
        if metered:
            specs = [_metered_spec(run, sub, it, start, end, run.new_id("il")) for it in metered]
            draft = _draft(run, sub, specs, reason="subscription_cycle", at=at, start=start, end=end,
                           finalizes_at=at + run.grace)
            ended = replace(ended, latest_invoice=draft.id)
            run.save_invoice("invoice.created", draft, at)
        run.save_sub("customer.subscription.deleted", ended, sub, at)
        return
    new = roll_over(sub)
    specs = [_metered_spec(run, sub, it, start, end, run.new_id("il")) if it.metered
             else _licensed_spec(run, it, new.current_period_start, new.current_period_end) for it in new.items]
    draft = _draft(run, new, specs, reason="subscription_cycle", at=at, start=start, end=end,
                   finalizes_at=at + run.grace, auto_advance=sub.status != "unpaid")
    run.save_sub("customer.subscription.updated", replace(new, latest_invoice=draft.id), sub, at)
    run.save_invoice("invoice.created", draft, at)


def _expire(run: _Run, sub: Subscription, at: int) -> None:
    """An incomplete subscription whose first invoice stayed unpaid for 23 hours (§3.6)."""
    first = run.book.invoices.get(sub.latest_invoice) if sub.latest_invoice else None
    if first is not None and first.status in ("open", "uncollectible"):
        _void(run, first, at)
    sub = run.book.subscriptions[sub.id]
    run.save_sub("customer.subscription.updated", replace(sub, status="incomplete_expired", ended_at=at), sub, at)


def advance(run: _Run, now: int) -> None:
    """Let time act on the book up to `now`, each change at the moment it falls due."""
    for _ in range(100_000):
        due = due_at(run.book)
        if due is None or due > now:
            return
        for sub_id in sorted(run.book.subscriptions):
            sub = run.book.subscriptions[sub_id]
            if sub.status in RENEWING and sub.current_period_end == due:
                _renew(run, sub, due)
            elif sub.status == "incomplete" and sub.created + INCOMPLETE_EXPIRES == due:
                _expire(run, sub, due)
        for inv in sorted(run.book.invoices.values(), key=lambda i: i.id):
            inv = run.book.invoices[inv.id]
            if inv.status == "draft" and inv.auto_advance and inv.automatically_finalizes_at == due:
                _finalize(run, inv, due)
            elif inv.status == "open" and inv.auto_advance and inv.next_payment_attempt == due:
                _collect(run, inv, due)
    raise RuntimeError(f"time did not settle in book {run.book.key}")


# --- commands ------------------------------------------------------------------------------------------------

def _customer_create(run: _Run, now: int) -> dict:
    params = run.command["params"]
    clock = params.get("test_clock") or None
    if clock is not None and (run.book.clock is None or run.book.clock.id != clock or run.book.clock.deleted):
        raise missing_reference("test_clock", str(clock), "test_clock")
    cus = create_customer(params, id=run.command["object_id"], account=run.book.account, now=now,
                          test_clock_time=run.book.clock.frozen_time if clock else None)
    run.emit("customer.created", cus.to_stripe(), now)
    return cus.to_stripe()


def _customer_update(run: _Run, now: int) -> dict:
    cus = run.customer(run.command["object_id"])
    new = update_customer(cus, run.command["params"])
    run.emit("customer.updated", new.to_stripe(), now, _changed(cus.to_stripe(), new.to_stripe()))
    return new.to_stripe()


def _end_subscription(run: _Run, sub: Subscription, now: int, latest_invoice: str | None = None) -> None:
    """Cancel now: the subscription's open and draft invoices stop advancing (§3.5)."""
    for inv_id in sorted(run.book.invoices):
        inv = run.book.invoices[inv_id]
        if inv.subscription == sub.id and inv.status in ("draft", "open") and inv.auto_advance:
            run.save_invoice("invoice.updated", replace(inv, auto_advance=False, next_payment_attempt=None), now)
    ended = replace(sub, status="canceled", canceled_at=now, ended_at=now,
                    latest_invoice=latest_invoice or sub.latest_invoice)
    run.save_sub("customer.subscription.deleted", ended, sub, now)


def _delete_customer(run: _Run, cus: Customer, now: int) -> dict:
    for sub_id in sorted(run.book.subscriptions):
        sub = run.book.subscriptions[sub_id]
        if sub.customer == cus.id and sub.status not in ("canceled", "incomplete_expired"):
            _end_subscription(run, sub, now)
    run.emit("customer.deleted", cus.to_stripe(), now)
    return run.book.customers[cus.id].to_stripe()


def _customer_delete(run: _Run, now: int) -> dict:
    return _delete_customer(run, run.customer(run.command["object_id"]), now)


def _first_period_factor(sub: Subscription, now: int) -> Decimal | None:
    """With a future anchor the first period is partial: the share of a full period it covers (A.4)."""
    if sub.anchor <= now:
        return None
    interval, count = sub.interval
    full_start = add_interval(sub.anchor, interval, count, -1, day_of_month=sub.day_of_month)
    return Decimal(sub.anchor - now) / Decimal(sub.anchor - full_start)


def _subscription_create(run: _Run, now: int) -> dict:
    params = dict(run.command["params"])
    cus = run.customer(params.get("customer") or "", "customer")
    behaviour = p.enum(params.get("payment_behavior", "allow_incomplete"), "payment_behavior",
                       ("allow_incomplete", "default_incomplete", "error_if_incomplete"))
    if params.get("collection_method", "charge_automatically") != "charge_automatically":
        raise invalid("collection_method", "only `charge_automatically` is supported so far.")
    if params.get("default_payment_method") not in (None, ""):
        # Charging another method than the customer's default is not built: refuse rather than ignore it.
        raise invalid("default_payment_method", "set the customer's invoice_settings[default_payment_method] "
                                                "instead; a subscription's own payment method is not supported yet.")
    prices = {pid: Price.from_stripe(obj) for pid, obj in run.command["prices"].items()}
    sub = create_subscription(params, id=run.command["object_id"], customer=cus.id, prices=prices,
                              item_ids=[run.new_id("si") for _ in range(len(params.get("items") or []) or 1)],
                              now=now)
    factor = _first_period_factor(sub, now)
    specs = [_licensed_spec(run, it, now, sub.current_period_end, factor=factor) for it in sub.items
             if not it.metered]
    draft = _draft(run, sub, specs, reason="subscription_create", at=now, start=now, end=now, finalizes_at=None)
    sub = replace(sub, latest_invoice=draft.id, status="incomplete")
    # The first invoice "finalizes immediately, regardless of the rules" and is paid in the request (§3.6).
    run.save_sub("customer.subscription.created", sub, None, now)
    run.save_invoice("invoice.created", draft, now)
    _finalize(run, draft, now, collect=behaviour != "default_incomplete")
    if behaviour == "error_if_incomplete" and run.book.invoices[draft.id].status != "paid":
        raise card_error(run.last_outcome)  # and nothing of this command stays
    return run.book.subscriptions[sub.id].to_stripe()


def _subscription_update(run: _Run, now: int) -> dict:
    sub = run.sub(run.command["object_id"])
    params = run.command["params"]
    p.check_keys(params, {"items", "cancel_at_period_end", "metadata", "proration_behavior", "expand", "id"})
    if sub.status in ("canceled", "incomplete_expired"):
        raise InvalidRequest(f"A canceled subscription can only update its metadata; {sub.id} is {sub.status}.",
                             code="subscription_canceled" if sub.status == "canceled" else None)
    new = sub
    if "cancel_at_period_end" in params:
        flag = p.boolean(params["cancel_at_period_end"], "cancel_at_period_end")
        new = replace(new, cancel_at_period_end=flag, canceled_at=now if flag else None)
    if "metadata" in params:
        new = replace(new, metadata={**new.metadata, **p.metadata(params["metadata"])})
    raw_items = params.get("items")
    if raw_items not in (None, ""):
        raw_items = list(raw_items.values()) if isinstance(raw_items, dict) else raw_items
        items = {it.id: it for it in new.items}
        for i, raw in enumerate(p.array(raw_items, "items")):
            raw = p.hash_(raw, f"items[{i}]")
            p.check_keys(raw, {"id", "quantity", "price", "deleted", "metadata"}, f"items[{i}]")
            if not raw.get("id"):
                raise invalid(f"items[{i}][id]", "adding items comes with proration (a later release); "
                                                 "name an existing item by id.")
            item = items.get(raw["id"])
            if item is None:
                raise missing_reference("subscription_item", raw["id"], f"items[{i}][id]")
            if raw.get("price") not in (None, "", item.price.id) or raw.get("deleted"):
                raise invalid(f"items[{i}][price]", "changing or removing an item's price comes with proration "
                                                    "(a later release); only quantities can change so far.")
            if "quantity" in raw:
                if item.metered:
                    raise invalid(f"items[{i}][quantity]", "metered prices take no quantity; usage decides it.")
                q = p.quantity(raw["quantity"], f"items[{i}][quantity]")
                # No proration yet: the new quantity is billed from the next period on.
                items[item.id] = replace(item, next_quantity=None if q == item.quantity else q)
        new = replace(new, items=tuple(items[it.id] for it in new.items))
    if new != sub:
        run.save_sub("customer.subscription.updated", new, sub, now)
    return run.book.subscriptions[sub.id].to_stripe()


def _subscription_cancel(run: _Run, now: int) -> dict:
    sub = run.sub(run.command["object_id"])
    params = run.command["params"]
    p.check_keys(params, {"invoice_now", "prorate", "cancellation_details", "expand", "id"})
    if sub.status in ("canceled", "incomplete_expired"):
        raise InvalidRequest(f"This subscription is already canceled: {sub.id}.", param="id")
    invoice_now = p.boolean(params["invoice_now"], "invoice_now") if "invoice_now" in params else False
    metered = [it for it in sub.items if it.metered]
    if not (invoice_now and metered):
        _end_subscription(run, sub, now)  # "If you don't prorate the subscription, all metered usage gets discarded"
        return run.book.subscriptions[sub.id].to_stripe()
    # "a final invoice that invoices for any un-invoiced metered usage" (§1.10).
    specs = [_metered_spec(run, sub, it, sub.current_period_start, now, run.new_id("il")) for it in metered]
    final = _draft(run, sub, specs, reason="subscription_cycle", at=now, start=sub.current_period_start,
                   end=now, finalizes_at=None)
    _end_subscription(run, sub, now, latest_invoice=final.id)
    run.save_invoice("invoice.created", final, now)
    _finalize(run, final, now)
    return run.book.subscriptions[sub.id].to_stripe()


def _invoice_finalize(run: _Run, now: int) -> dict:
    inv = run.invoice(run.command["object_id"])
    params = run.command["params"]
    p.check_keys(params, {"auto_advance", "expand", "id"})
    if "auto_advance" in params:
        inv = replace(inv, auto_advance=p.boolean(params["auto_advance"], "auto_advance"))
    _finalize(run, inv, now, collect=inv.auto_advance)
    return inv_.to_stripe(run.book.invoices[inv.id])


def _invoice_pay(run: _Run, now: int) -> dict:
    inv = run.invoice(run.command["object_id"])
    params = run.command["params"]
    p.check_keys(params, {"payment_method", "paid_out_of_band", "expand", "id", "off_session"})
    if inv.status == "draft":
        _finalize(run, inv, now, collect=False)
        inv = run.book.invoices[inv.id]
    if inv.status not in ("open", "uncollectible"):
        raise InvalidRequest("Invoice is already paid." if inv.status == "paid"
                             else f"You can't pay an invoice with status {inv.status}.")
    if params.get("paid_out_of_band") and p.boolean(params["paid_out_of_band"], "paid_out_of_band"):
        paid = replace(inv, status="paid", paid_at=now, amount_paid=inv.amount_remaining, amount_remaining=0,
                       next_payment_attempt=None, auto_advance=False)
        run.save_invoice("invoice.paid", paid, now)
        _after_payment(run, paid, now)
    elif not _collect(run, inv, now, p.string(params["payment_method"], "payment_method", max_len=255)
                      if params.get("payment_method") not in (None, "") else None, retry=False):
        run.error = card_error(run.last_outcome)
    return inv_.to_stripe(run.book.invoices[inv.id])


def _void(run: _Run, inv: Invoice, at: int) -> None:
    voided = inv_.void(inv, at)
    run.save_invoice("invoice.voided", voided, at)
    back = inv_.unapplied_balance(voided)
    if back:
        run.set_balance(inv.customer, run.book.customers[inv.customer].balance + back, at)


def _invoice_void(run: _Run, now: int) -> dict:
    inv = run.invoice(run.command["object_id"])
    _void(run, inv, now)
    sub = run.book.subscriptions.get(inv.subscription) if inv.subscription else None
    if sub is not None and sub.status == "incomplete" and inv.billing_reason == "subscription_create":
        # "Voiding the first invoice of an incomplete sub → incomplete_expired" (§3.6).
        run.save_sub("customer.subscription.updated", replace(sub, status="incomplete_expired", ended_at=now),
                     sub, now)
    return inv_.to_stripe(run.book.invoices[inv.id])


def _invoice_uncollectible(run: _Run, now: int) -> dict:
    inv = inv_.mark_uncollectible(run.invoice(run.command["object_id"]), now)
    run.save_invoice("invoice.marked_uncollectible", inv, now)
    # "Invoices marked as uncollectable are treated as paid when determining subscription status" (§3.6).
    _after_payment(run, inv, now)
    return inv_.to_stripe(run.book.invoices[inv.id])


def _clock_create(run: _Run, now: int) -> dict:
    if run.book.clock is not None:
        raise InvalidRequest(f"Test clock {run.book.clock.id} already exists.")
    clock = create_test_clock(run.command["params"], id=run.command["object_id"], now=now)
    run.emit("test_helpers.test_clock.created", clock.to_stripe(), now)
    return clock.to_stripe()


def _live_clock(run: _Run) -> TestClock:
    clock = run.book.clock
    if clock is None or clock.deleted or clock.id != run.command["object_id"]:
        raise ResourceMissing("test_helpers.test_clock", run.command["object_id"], param="id")
    return clock


def _max_step(run: _Run, now: int) -> int | None:
    """Seconds in two intervals of the clock's shortest live subscription (Stripe's advance limit, §7)."""
    steps = [add_interval(now, *sub.interval, 2) - now for sub in run.book.subscriptions.values()
             if sub.status not in ("canceled", "incomplete_expired")]
    return min(steps) if steps else None


def _clock_advance(run: _Run, now: int) -> dict:
    clock = _live_clock(run)
    target = advance_target(clock, run.command["params"], max_step=_max_step(run, clock.frozen_time))
    moving = replace(clock, status="advancing", target=target)
    run.emit("test_helpers.test_clock.advancing", moving.to_stripe(), target)
    run.caused = False  # what the advance sets off is time's doing, as in Stripe (events with request null)
    advance(run, target)
    run.caused = True
    run.emit("test_helpers.test_clock.ready", replace(clock, frozen_time=target).to_stripe(), target)
    return moving.to_stripe()


def _clock_delete(run: _Run, now: int) -> dict:
    clock = _live_clock(run)
    # "deleting a clock deletes its customers and cancels their subscriptions" (§7).
    for cus_id in sorted(run.book.customers):
        if not run.book.customers[cus_id].deleted:
            _delete_customer(run, run.book.customers[cus_id], now)
    run.emit("test_helpers.test_clock.deleted", clock.to_stripe(), now)
    return run.book.clock.to_stripe()


HANDLERS = {
    "customer.create": _customer_create, "customer.update": _customer_update, "customer.delete": _customer_delete,
    "subscription.create": _subscription_create, "subscription.update": _subscription_update,
    "subscription.cancel": _subscription_cancel,
    "invoice.finalize": _invoice_finalize, "invoice.pay": _invoice_pay, "invoice.void": _invoice_void,
    "invoice.mark_uncollectible": _invoice_uncollectible,
    "test_clock.create": _clock_create, "test_clock.advance": _clock_advance, "test_clock.delete": _clock_delete,
}


def command_time(book: Book, command: dict) -> int:
    """A clock's customers live at the clock's time; everyone else at the time the command was written."""
    if book.on_clock and book.clock is not None and not book.clock.deleted:
        return book.clock.frozen_time
    return int(command["at"])


def decide(book: Book, command: dict, usage: UsageReader) -> Decision:
    """Apply time up to the command, then the command; a refused command keeps only what time did."""
    run = _Run(book, command, usage)
    now = command_time(book, command)
    advance(run, now)
    if command["type"] == "tick":
        return Decision(run.book, run.events)
    handler = HANDLERS.get(command["type"])
    if handler is None:
        raise ValueError(f"unknown billing command {command['type']!r}")
    settled, kept = run.book, len(run.events)
    run.caused, run.error = True, None
    try:
        result = handler(run, now)
    except ApiError as err:
        # Nothing the refused command did stays, except the usage it read (re-deciding will read it again).
        run.events[kept:] = [e for e in run.events[kept:] if e["type"] == USAGE_OBSERVED]
        return Decision(settled, run.events, None, err)
    return Decision(run.book, run.events, result, run.error)


def usage_needs(book: Book, at: int) -> set[tuple[str, str, int, int]]:
    """The (meter, customer, start, end) reads time will make in this book by `at`, as far as they are known
    now (the next renewal and drafts finishing their grace): the worker fetches them before deciding."""
    needs = set()
    for sub in book.subscriptions.values():
        if sub.status in RENEWING and sub.current_period_end <= at:
            needs.update((it.price.recurring.meter, sub.customer, sub.current_period_start, sub.current_period_end)
                         for it in sub.items if it.metered)
    for inv in book.invoices.values():
        sub = book.subscriptions.get(inv.subscription) if inv.subscription else None
        if (sub is None or inv.status != "draft" or not inv.auto_advance or inv.automatically_finalizes_at is None
                or inv.automatically_finalizes_at > at):
            continue
        meters = {it.id: it.price.recurring.meter for it in sub.items if it.metered}
        needs.update((meters[line.subscription_item], inv.customer, line.period_start, line.period_end)
                     for line in inv.lines if line.subscription_item in meters)
    return needs


def preview(book: Book, subscription_id: str, now: int, usage: UsageReader) -> dict:
    """`POST /v1/invoices/create_preview`: the subscription's next invoice with the usage so far (no events)."""
    run = _Run(book, {"id": f"preview/{subscription_id}/{now}", "at": now}, usage)
    advance(run, command_time(book, {"at": now}))
    sub = run.sub(subscription_id, "subscription")
    if sub.status not in RENEWING:
        raise invalid("subscription", f"has no upcoming invoice: it is {sub.status}.")
    start, end = sub.current_period_start, sub.current_period_end
    new = roll_over(sub)
    specs = [_metered_spec(run, sub, it, start, end, run.new_id("il")) if it.metered
             else _licensed_spec(run, it, new.current_period_start, new.current_period_end)
             for it in new.items if it.metered or not sub.cancel_at_period_end]
    draft = _draft(run, new, specs, reason="upcoming", at=end, start=start, end=end, finalizes_at=None)
    obj = inv_.to_stripe(draft)
    obj["id"] = None  # Stripe's preview invoices have no id
    return obj
