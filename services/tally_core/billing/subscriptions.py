"""Subscriptions (`sub_`) and their items (`si_`): what a customer pays for and when periods turn over.

Each item pins a snapshot of its price (ARCHITECTURE §5), so re-deciding from the log never sees a changed
catalog. Classic billing mode: every item shares one interval; periods come from the anchor (periods.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Mapping

from .. import metadata as _metadata
from ..errors import InvalidRequest, invalid, missing
from ..strings import MAX_TIMESTAMP
from . import params as p
from .periods import add_interval, period_index
from .prices import Price

MAX_ITEMS = 20


class SubscriptionStatus(StrEnum):
    """Stripe's subscription statuses (reference §3.6); a str, so the wire form and old events stay as they are."""

    INCOMPLETE = "incomplete"                  # first invoice not paid yet (23 hours, then incomplete_expired)
    INCOMPLETE_EXPIRED = "incomplete_expired"  # terminal
    ACTIVE = "active"
    PAST_DUE = "past_due"                      # a renewal payment failed; retries are scheduled
    UNPAID = "unpaid"                          # the last retry failed; drafts stop advancing
    CANCELED = "canceled"                      # terminal
    TRIALING = "trialing"                      # not produced yet (trials come with issue 10)
    PAUSED = "paused"                          # not produced yet


S = SubscriptionStatus
# Statuses whose periods keep turning over (renewal invoices keep coming, §3.6).
RENEWING = (S.ACTIVE, S.PAST_DUE, S.UNPAID)
# Terminal statuses (§3.6): the subscription has ended and time no longer acts on it.
ENDED = (S.CANCELED, S.INCOMPLETE_EXPIRED)
# Paying (or marking uncollectible) the latest invoice makes these active again (§3.6).
REACTIVATES = (S.PAST_DUE, S.UNPAID, S.INCOMPLETE)

PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete")
PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
_CREATE = {"customer", "items", "billing_cycle_anchor", "cancel_at_period_end", "metadata", "expand",
           "collection_method", "default_payment_method", "payment_behavior", "proration_behavior",
           "billing_cycle_anchor_config"}


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    price: Price
    quantity: int | None  # None for metered prices: usage decides
    created: int
    next_quantity: int | None = None  # a quantity change waiting for the next period (no proration yet)

    @property
    def metered(self) -> bool:
        return self.price.recurring is not None and self.price.recurring.usage_type == "metered"


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    customer: str
    items: tuple[Item, ...]
    anchor: int
    created: int
    current_period_start: int
    current_period_end: int
    status: SubscriptionStatus = S.ACTIVE
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    latest_invoice: str | None = None
    day_of_month: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def interval(self) -> tuple[str, int]:
        r = self.items[0].price.recurring
        return r.interval, r.interval_count

    @property
    def currency(self) -> str:
        return self.items[0].price.currency

    def period_end_after(self, start: int) -> int:
        """The boundary after `start`, always counted from the anchor (month-end clamping stays right)."""
        interval, count = self.interval
        n = period_index(self.anchor, interval, count, start, day_of_month=self.day_of_month)
        return add_interval(self.anchor, interval, count, n + 1, day_of_month=self.day_of_month)

    def to_stripe(self) -> dict:
        items = [{
            "id": it.id, "object": "subscription_item", "created": it.created, "metadata": {},
            "price": it.price.to_stripe(expand=["tiers"]), "quantity": it.quantity, "subscription": self.id,
            "current_period_start": self.current_period_start, "current_period_end": self.current_period_end,
        } for it in self.items]
        return {
            "id": self.id, "object": "subscription", "customer": self.customer, "status": str(self.status),
            "billing_cycle_anchor": self.anchor, "cancel_at_period_end": self.cancel_at_period_end,
            "billing_cycle_anchor_config": {"day_of_month": self.day_of_month} if self.day_of_month else None,
            "canceled_at": self.canceled_at, "ended_at": self.ended_at, "created": self.created,
            "start_date": self.created, "currency": self.currency, "collection_method": "charge_automatically",
            "billing_mode": {"type": "classic"}, "latest_invoice": self.latest_invoice, "livemode": False,
            "metadata": dict(self.metadata),
            "items": {"object": "list", "data": items, "has_more": False,
                      "url": f"/v1/subscription_items?subscription={self.id}"},
            # pre-basil readers still look for these on the subscription itself
            "current_period_start": self.current_period_start, "current_period_end": self.current_period_end,
            "pending_update": None,
            "x_next_quantities": {it.id: it.next_quantity for it in self.items if it.next_quantity is not None},
        }

    @classmethod
    def from_stripe(cls, obj: dict) -> "Subscription":
        nxt = obj.get("x_next_quantities") or {}
        return cls(
            id=obj["id"], customer=obj["customer"], anchor=obj["billing_cycle_anchor"], created=obj["created"],
            current_period_start=obj["current_period_start"], current_period_end=obj["current_period_end"],
            status=SubscriptionStatus(obj["status"]), cancel_at_period_end=obj["cancel_at_period_end"],
            canceled_at=obj["canceled_at"],
            ended_at=obj["ended_at"], latest_invoice=obj["latest_invoice"], metadata=dict(obj.get("metadata") or {}),
            day_of_month=(obj.get("billing_cycle_anchor_config") or {}).get("day_of_month"),
            items=tuple(Item(i["id"], Price.from_stripe(i["price"]), i["quantity"], i["created"], nxt.get(i["id"]))
                        for i in obj["items"]["data"]),
        )


def check_items(raw_items) -> list[dict]:
    """The API edge's check of `items[n]` on a create: its shape, keys, price id and quantity (what needs no
    catalog). Returns the items with their quantity as an int."""
    if raw_items in (None, "", []):
        raise missing("items")
    if isinstance(raw_items, dict):
        raw_items = list(raw_items.values())
    if not isinstance(raw_items, list):
        raise invalid("items", "must be an array of items.")
    if len(raw_items) > MAX_ITEMS:
        raise invalid("items", f"a subscription can have at most {MAX_ITEMS} items.")
    items, seen = [], set()
    for i, raw in enumerate(raw_items):
        raw = p.hash_(raw, f"items[{i}]")
        p.check_keys(raw, {"price", "quantity", "metadata"}, f"items[{i}]")
        if not raw.get("price"):
            raise missing(f"items[{i}][price]")
        if raw["price"] in seen:
            raise invalid(f"items[{i}][price]", "a price can appear only once on a subscription.")
        seen.add(raw["price"])
        item = {"price": raw["price"]}
        if "quantity" in raw:
            item["quantity"] = p.quantity(raw["quantity"], f"items[{i}][quantity]")
        items.append(item)
    return items


def subscription_items(items, prices: Mapping[str, Price], item_ids: list[str], now: int) -> tuple[Item, ...]:
    """The items of a new subscription from the typed `items[n]`, checked against the pinned catalog: the
    price exists, is recurring and active, metered prices take no quantity (usage decides it), and every item
    shares one currency and one interval (classic billing mode)."""
    out = []
    for i, item in enumerate(items):
        price = prices.get(item.price)
        if price is None:
            raise InvalidRequest(f"No such price: '{item.price}'", param=f"items[{i}][price]", code="resource_missing")
        if price.recurring is None:
            raise invalid(f"items[{i}][price]", "a subscription item needs a recurring price.")
        if not price.active:
            raise invalid(f"items[{i}][price]", "the price is not active.")
        sent = "quantity" in item.model_fields_set
        metered = price.recurring.usage_type == "metered"
        if sent and metered:
            raise invalid(f"items[{i}][quantity]", "metered prices take no quantity; usage decides it.")
        if sent and item.quantity is None:
            # `quantity=` on a licensed price: a quantity cannot be unset (whether it may be sent at all
            # depends on the price, so the edge leaves it to here).
            raise p.empty(f"items[{i}][quantity]")
        quantity = None if metered else (item.quantity if sent else 1)
        out.append(Item(item_ids[i], price, quantity, now))
    first = out[0].price
    for i, it in enumerate(out):
        if it.price.currency != first.currency:
            raise invalid(f"items[{i}][price]", "all items must share one currency.")
        r, f = it.price.recurring, first.recurring
        if (r.interval, r.interval_count) != (f.interval, f.interval_count):
            raise invalid(f"items[{i}][price]", "all items must share one billing interval (classic billing mode).")
    return tuple(out)


def create_subscription(params, *, id: str, customer: str, prices: Mapping[str, Price], item_ids: list[str],
                        now: int) -> Subscription:
    """`POST /v1/subscriptions` from its typed params (commands.SubscriptionCreateParams, checked at the edge):
    the first period starts now and ends at the anchor's next boundary."""
    items = subscription_items(params.items, prices, item_ids, now)
    anchor = now if params.billing_cycle_anchor is None else params.billing_cycle_anchor
    if anchor < now:  # `now` is the book's time (a test clock's), so only the worker can tell
        raise invalid("billing_cycle_anchor", "must be now or in the future.")
    config = params.billing_cycle_anchor_config
    day = None if config is None else config.day_of_month
    sub = Subscription(id=id, customer=customer, items=items, anchor=anchor, created=now, current_period_start=now,
                       current_period_end=now, cancel_at_period_end=bool(params.cancel_at_period_end),
                       day_of_month=day, metadata=_metadata.check(params.metadata))
    interval, count = sub.interval
    if day is not None and interval != "month":
        raise invalid("billing_cycle_anchor_config", "is only for monthly prices.")
    try:
        natural = add_interval(now, interval, count, 1)
    except (ValueError, OverflowError):
        natural = MAX_TIMESTAMP + 1
    if natural > MAX_TIMESTAMP:  # no date (Stripe's or a datetime's) can name the period's end
        raise invalid("items", "the first billing period would end after 9999-12-31T23:59:59Z.")
    if anchor > natural:
        # Stripe: "billing_cycle_anchor cannot be later than next natural billing date … for plan".
        raise invalid("billing_cycle_anchor", f"cannot be later than the next natural billing date ({natural}).")
    end = anchor if anchor > now else sub.period_end_after(now)
    return replace(sub, current_period_end=end)


def roll_over(sub: Subscription) -> Subscription:
    """The next period; waiting quantity changes take effect now (proration comes in a later issue)."""
    start = sub.current_period_end
    items = tuple(replace(it, quantity=it.next_quantity, next_quantity=None) if it.next_quantity is not None else it
                  for it in sub.items)
    return replace(sub, items=items, current_period_start=start, current_period_end=sub.period_end_after(start))
