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
from .object_fields import plan_of, subscription_fields
from .periods import add_interval, period_containing, period_index
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
# An update may also keep the change pending until its invoice is paid (§3.6, seed 004 "pending updates").
UPDATE_PAYMENT_BEHAVIORS = (*PAYMENT_BEHAVIORS, "pending_if_incomplete")
PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
# §3.1: "If no value is passed, the default is `flexible`" (the API version the official SDK sends).
BILLING_MODES = ("classic", "flexible")
_CREATE = {"customer", "items", "billing_cycle_anchor", "cancel_at_period_end", "metadata", "expand",
           "collection_method", "default_payment_method", "payment_behavior", "proration_behavior",
           "billing_cycle_anchor_config", "billing_mode", "cancel_at"}


@dataclass(frozen=True, slots=True)
class Item:
    """A subscription item. `since` and `billed` are tally's bookkeeping, kept beside the Stripe object in
    the event (`Subscription.state`), never on the wire:
    - `since`: a metered item counts usage from here in the current period (a price swapped in or an item
      added mid-period bills only the usage after the change, §1.11); None means the period's start;
    - `billed`: the full-period amount last billed for the current period (its cycle line or its last
      proration debit); flexible billing mode credits unused time from it (§4.5, A.4); None: nothing billed."""

    id: str
    price: Price
    quantity: int | None  # None for metered prices: usage decides
    created: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    since: int | None = None
    billed: int | None = None

    @property
    def metered(self) -> bool:
        return self.price.recurring is not None and self.price.recurring.usage_type == "metered"

    @property
    def interval(self) -> tuple[str, int]:
        return self.price.recurring.interval, self.price.recurring.interval_count


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
    billing_mode: str = "classic"
    cancel_at: int | None = None  # §3.5: the period holding it ends there, and the subscription with it
    pending_update: "PendingUpdate | None" = None
    test_clock: str | None = None  # the customer's clock at creation (a customer never changes clocks)

    @property
    def interval(self) -> tuple[str, int]:
        return self.items[0].interval

    @property
    def currency(self) -> str:
        return self.items[0].price.currency

    @property
    def flexible(self) -> bool:
        return self.billing_mode == "flexible"

    def boundary_after(self, start: int) -> int:
        """The anchor's next boundary after `start`, always counted from the anchor (month ends stay right)."""
        interval, count = self.interval
        n = period_index(self.anchor, interval, count, start, day_of_month=self.day_of_month)
        return add_interval(self.anchor, interval, count, n + 1, day_of_month=self.day_of_month)

    def period_end_after(self, start: int) -> int:
        """Where a period starting at `start` ends: the next boundary, or `cancel_at` when that comes first."""
        end = self.boundary_after(start)
        return end if self.cancel_at is None or self.cancel_at <= start else min(end, self.cancel_at)

    def natural_period(self) -> tuple[int, int]:
        """The full period (boundary to boundary) holding the current one: a partial first period before a
        future anchor, or one cut short by `cancel_at`, is a share of it (A.4)."""
        interval, count = self.interval
        return period_containing(self.anchor, interval, count, self.current_period_start,
                                 day_of_month=self.day_of_month)

    def state(self) -> dict:
        """tally's bookkeeping for this subscription, carried beside its Stripe object in every event."""
        out: dict = {"items": {it.id: {"since": it.since, "billed": it.billed} for it in self.items}}
        if self.pending_update is not None:
            out["pending_update"] = self.pending_update.to_state()
        return out

    def to_stripe(self) -> dict:
        items = [item_to_stripe(self, it) for it in self.items]
        return {
            **subscription_fields(), "test_clock": self.test_clock,
            "id": self.id, "object": "subscription", "customer": self.customer, "status": str(self.status),
            "billing_cycle_anchor": self.anchor, "cancel_at_period_end": self.cancel_at_period_end,
            "billing_cycle_anchor_config": {"day_of_month": self.day_of_month, "month": None, "hour": None,
                                            "minute": None, "second": None} if self.day_of_month else None,
            "cancel_at": self.cancel_at,
            "canceled_at": self.canceled_at, "ended_at": self.ended_at, "created": self.created,
            "start_date": self.created, "currency": self.currency, "collection_method": "charge_automatically",
            "billing_mode": {"type": self.billing_mode, "flexible": {"proration_discounts": "included"}
                             if self.flexible else None, "updated_at": None},
            "latest_invoice": self.latest_invoice, "livemode": False,
            "metadata": dict(self.metadata),
            "items": {"object": "list", "data": items, "has_more": False, "total_count": len(items),
                      "url": f"/v1/subscription_items?subscription={self.id}"},
            # pre-basil readers still look for these on the subscription itself
            "current_period_start": self.current_period_start, "current_period_end": self.current_period_end,
            "pending_update": None if self.pending_update is None else self.pending_update.to_stripe(),
        }

    @classmethod
    def from_stripe(cls, obj: dict, state: dict | None = None) -> "Subscription":
        state = state or {}
        kept = state.get("items") or {}
        # Events written before quantity changes applied at once carried the waiting quantity here: it is
        # the item's quantity now (the renewal billed it in advance either way, so the money is the same).
        waiting = obj.get("x_next_quantities") or {}
        mode = (obj.get("billing_mode") or {}).get("type") or "classic"
        pending = state.get("pending_update")
        return cls(
            id=obj["id"], customer=obj["customer"], anchor=obj["billing_cycle_anchor"], created=obj["created"],
            current_period_start=obj["current_period_start"], current_period_end=obj["current_period_end"],
            status=SubscriptionStatus(obj["status"]), cancel_at_period_end=obj["cancel_at_period_end"],
            canceled_at=obj["canceled_at"],
            ended_at=obj["ended_at"], latest_invoice=obj["latest_invoice"], metadata=dict(obj.get("metadata") or {}),
            day_of_month=(obj.get("billing_cycle_anchor_config") or {}).get("day_of_month"),
            billing_mode=mode, cancel_at=obj.get("cancel_at"),
            pending_update=None if pending is None else PendingUpdate.from_state(pending),
            test_clock=obj.get("test_clock"),  # absent from events written before it was rendered
            items=tuple(Item(i["id"], Price.from_stripe(i["price"]), waiting.get(i["id"], i["quantity"]), i["created"],
                             dict(i.get("metadata") or {}), (kept.get(i["id"]) or {}).get("since"),
                             (kept.get(i["id"]) or {}).get("billed"))
                        for i in obj["items"]["data"]),
        )


def item_to_stripe(sub: Subscription, it: Item) -> dict:
    """Stripe's `subscription_item` (basil+: the billing period lives on the item, §3.1)."""
    return {
        "id": it.id, "object": "subscription_item", "created": it.created, "metadata": dict(it.metadata),
        "price": (price := it.price.to_stripe(expand=["tiers"])), "quantity": it.quantity, "subscription": sub.id,
        "current_period_start": sub.current_period_start, "current_period_end": sub.current_period_end,
        "discounts": [], "tax_rates": [], "billing_thresholds": None, "plan": plan_of(price),
    }


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """§3.6 `payment_behavior=pending_if_incomplete`: a change that applies only once `invoice` is paid, and
    is dropped at `expires_at` (23 hours later, like an incomplete first invoice). `target` is the
    subscription as it will be (its Stripe object and state)."""

    invoice: str
    expires_at: int
    target: dict
    target_state: dict
    billing_cycle_anchor: int | None = None

    def to_stripe(self) -> dict:
        items = self.target["items"]["data"]
        return {"billing_cycle_anchor": self.billing_cycle_anchor, "expires_at": self.expires_at,
                "subscription_items": [{k: it[k] for k in ("id", "object", "created", "metadata", "price",
                                                           "quantity", "subscription")} for it in items],
                "trial_end": None, "trial_from_plan": None, "discounts": None}

    def to_state(self) -> dict:
        return {"invoice": self.invoice, "expires_at": self.expires_at, "target": self.target,
                "target_state": self.target_state, "billing_cycle_anchor": self.billing_cycle_anchor}

    @classmethod
    def from_state(cls, state: dict) -> "PendingUpdate":
        return cls(state["invoice"], state["expires_at"], state["target"], state["target_state"],
                   state.get("billing_cycle_anchor"))

    def subscription(self) -> Subscription:
        return Subscription.from_stripe(self.target, self.target_state)


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
        if "metadata" in raw:
            item["metadata"] = _metadata.check(raw["metadata"], f"items[{i}][metadata]")
        items.append(item)
    return items


def checked_price(prices: Mapping[str, Price], price_id: str, param: str) -> Price:
    """A subscription item's price from the pinned catalog: it exists, is recurring and active."""
    price = prices.get(price_id)
    if price is None:
        raise InvalidRequest(f"No such price: '{price_id}'", param=param, code="resource_missing")
    if price.recurring is None:
        raise invalid(param, "a subscription item needs a recurring price.")
    if not price.active:
        raise invalid(param, "the price is not active.")
    return price


def item_quantity(price: Price, sent: bool, quantity: int | None, param: str) -> int | None:
    """A new item's quantity: metered prices take none (usage decides), a licensed one defaults to 1."""
    metered = price.recurring.usage_type == "metered"
    if sent and metered:
        raise invalid(param, "metered prices take no quantity; usage decides it.")
    if sent and quantity is None:
        # `quantity=` on a licensed price: a quantity cannot be unset (whether it may be sent at all
        # depends on the price, so the edge leaves it to here).
        raise p.empty(param)
    return None if metered else (quantity if sent else 1)


def check_shared(items: tuple[Item, ...], param: str = "items") -> None:
    """One invoice per period: every item shares one currency and one billing interval. Stripe's flexible
    mode allows mixed intervals (§3.2, one invoice per diverging period); tally bills one period per
    subscription, so it refuses them and says so (put such prices on two subscriptions)."""
    first = items[0]
    for it in items:
        if it.price.currency != first.price.currency:
            raise invalid(_param(items, it, param), "all items must share one currency.")
        if it.interval != first.interval:
            raise invalid(_param(items, it, param),
                          "all items must share one billing interval: tally bills one period per subscription "
                          "and does not build mixed intervals; put prices of other intervals on a second "
                          "subscription.")


def _param(items, it: Item, param: str) -> str:
    return f"{param}[{items.index(it)}][price]" if param == "items" else param


def subscription_items(items, prices: Mapping[str, Price], item_ids: list[str], now: int) -> tuple[Item, ...]:
    """The items of a new subscription from the typed `items[n]`, checked against the pinned catalog: the
    price exists, is recurring and active, metered prices take no quantity (usage decides it), and every item
    shares one currency and one interval."""
    out = []
    for i, item in enumerate(items):
        price = checked_price(prices, item.price, f"items[{i}][price]")
        quantity = item_quantity(price, "quantity" in item.model_fields_set, item.quantity, f"items[{i}][quantity]")
        out.append(Item(item_ids[i], price, quantity, now, _metadata.check(item.metadata, f"items[{i}][metadata]")))
    check_shared(tuple(out))
    return tuple(out)


def create_subscription(params, *, id: str, customer: str, prices: Mapping[str, Price], item_ids: list[str],
                        now: int, billing_mode: str = "flexible") -> Subscription:
    """`POST /v1/subscriptions` from its typed params (command_params.SubscriptionCreateParams, checked at the edge):
    the first period starts now and ends at the anchor's next boundary (or at `cancel_at`)."""
    items = subscription_items(params.items, prices, item_ids, now)
    anchor = now if params.billing_cycle_anchor is None else params.billing_cycle_anchor
    if anchor < now:  # `now` is the book's time (a test clock's), so only the worker can tell
        raise invalid("billing_cycle_anchor", "must be now or in the future.")
    cancel_at = getattr(params, "cancel_at", None)
    if cancel_at is not None and cancel_at <= now:
        raise invalid("cancel_at", "must be in the future.")
    config = params.billing_cycle_anchor_config
    day = None if config is None else config.day_of_month
    sub = Subscription(id=id, customer=customer, items=items, anchor=anchor, created=now, current_period_start=now,
                       current_period_end=now, cancel_at_period_end=bool(params.cancel_at_period_end),
                       day_of_month=day, metadata=_metadata.check(params.metadata), billing_mode=billing_mode,
                       cancel_at=cancel_at)
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
    end = anchor if anchor > now else sub.boundary_after(now)
    if cancel_at is not None:
        end = min(end, cancel_at)
    return replace(sub, current_period_end=end)


def roll_over(sub: Subscription) -> Subscription:
    """The next period: metered items count usage from its start again."""
    start = sub.current_period_end
    items = tuple(replace(it, since=None) if it.since is not None else it for it in sub.items)
    return replace(sub, items=items, current_period_start=start, current_period_end=sub.period_end_after(start))


def zero_amount(price: Price) -> bool:
    """A price that charges nothing whatever the quantity (§4.3: moving from all-zero-amount prices to a paid
    one resets the period and invoices at once; a zero quantity is not a zero-amount price)."""
    if price.billing_scheme == "tiered":
        return all(not t.unit_amount_decimal and not t.flat_amount_decimal for t in price.tiers)
    return not price.unit_amount_decimal
