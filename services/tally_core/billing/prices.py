"""Prices (Stripe `price`): `POST /v1/prices` validation (reference §2.1) and the wire shape.

Amounts are Decimal minor units (cents); an int `unit_amount` is kept as the equal Decimal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from .. import metadata as _metadata
from ..errors import InvalidRequest, invalid, missing
from ..strings import decimal_text as _text
from . import params as p

Interval = Literal["day", "week", "month", "year"]
UsageType = Literal["licensed", "metered"]
BillingScheme = Literal["per_unit", "tiered"]
TiersMode = Literal["graduated", "volume"]

INTERVALS = ("day", "week", "month", "year")
# Current spec: "Maximum of three years interval allowed (3 years, 36 months, or 156 weeks)"; days by the same cap.
MAX_INTERVAL_COUNT = {"day": 3 * 365, "week": 156, "month": 36, "year": 3}
MAX_TRIAL_DAYS = 730  # Stripe's trial_period_days ceiling
_CURRENCY = re.compile(r"^[a-z]{3}$")


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: int | None  # inclusive upper bound; None is Stripe's "inf"
    unit_amount_decimal: Decimal | None = None
    flat_amount_decimal: Decimal | None = None

    def to_stripe(self) -> dict:
        return {
            "flat_amount": _whole(self.flat_amount_decimal),
            "flat_amount_decimal": _text(self.flat_amount_decimal),
            "unit_amount": _whole(self.unit_amount_decimal),
            "unit_amount_decimal": _text(self.unit_amount_decimal),
            "up_to": self.up_to,
        }


@dataclass(frozen=True, slots=True)
class TransformQuantity:
    divide_by: int
    round: Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class Recurring:
    interval: Interval
    interval_count: int = 1
    usage_type: UsageType = "licensed"
    meter: str | None = None
    trial_period_days: int | None = None


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    currency: str
    product: str | None  # None only while `product_data` waits for the caller to create the product
    billing_scheme: BillingScheme = "per_unit"
    unit_amount_decimal: Decimal | None = None  # per_unit only
    tiers_mode: TiersMode | None = None
    tiers: tuple[Tier, ...] = ()
    transform_quantity: TransformQuantity | None = None
    recurring: Recurring | None = None
    active: bool = True
    created: int = 0
    nickname: str | None = None
    lookup_key: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    tax_behavior: str = "unspecified"
    product_data: Mapping | None = None

    @property
    def type(self) -> str:
        return "one_time" if self.recurring is None else "recurring"

    def to_stripe(self, *, expand: Iterable[str] = ()) -> dict:
        """Stripe's price object; `tiers` is only present with `expand[]=tiers`, as in Stripe."""
        r, tq = self.recurring, self.transform_quantity
        obj = {
            "id": self.id,
            "object": "price",
            "active": self.active,
            "billing_scheme": self.billing_scheme,
            "created": self.created,
            "currency": self.currency,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": self.lookup_key,
            "metadata": dict(self.metadata),
            "nickname": self.nickname,
            "product": self.product,
            "recurring": None if r is None else {
                "interval": r.interval, "interval_count": r.interval_count, "meter": r.meter,
                "trial_period_days": r.trial_period_days, "usage_type": r.usage_type,
            },
            "tax_behavior": self.tax_behavior,
            "tiers_mode": self.tiers_mode,
            "transform_quantity": None if tq is None else {"divide_by": tq.divide_by, "round": tq.round},
            "type": self.type,
            "unit_amount": _whole(self.unit_amount_decimal),
            "unit_amount_decimal": _text(self.unit_amount_decimal),
        }
        if "tiers" in expand:
            obj["tiers"] = [t.to_stripe() for t in self.tiers] if self.billing_scheme == "tiered" else None
        return obj

    @classmethod
    def from_stripe(cls, obj: dict) -> Price:
        """Inverse of `to_stripe(expand=["tiers"])` (the form kept in the event log)."""
        r, tq = obj.get("recurring"), obj.get("transform_quantity")
        if obj["billing_scheme"] == "tiered" and obj.get("tiers") is None:
            raise ValueError("a tiered price needs its expanded tiers to be rebuilt")
        return cls(
            id=obj["id"], currency=obj["currency"], product=obj["product"], billing_scheme=obj["billing_scheme"],
            unit_amount_decimal=_dec(obj.get("unit_amount_decimal")), tiers_mode=obj.get("tiers_mode"),
            tiers=tuple(
                Tier(t["up_to"], _dec(t.get("unit_amount_decimal")), _dec(t.get("flat_amount_decimal")))
                for t in obj.get("tiers") or ()
            ),
            transform_quantity=None if tq is None else TransformQuantity(tq["divide_by"], tq["round"]),
            recurring=None if r is None else Recurring(
                r["interval"], r["interval_count"], r["usage_type"], r.get("meter"), r.get("trial_period_days"),
            ),
            active=obj["active"], created=obj["created"], nickname=obj.get("nickname"),
            lookup_key=obj.get("lookup_key"), metadata=dict(obj.get("metadata") or {}),
            tax_behavior=obj.get("tax_behavior") or "unspecified",
        )


def _whole(d: Decimal | None) -> int | None:
    # Stripe: unit_amount is "represented as a whole integer if possible", else null beside the decimal string.
    return None if d is None or d != d.to_integral_value() else int(d)


def _dec(s) -> Decimal | None:
    return None if s is None else Decimal(s)


_CREATE = {
    "active", "billing_scheme", "currency", "currency_options", "custom_unit_amount", "expand", "lookup_key",
    "metadata", "nickname", "product", "product_data", "recurring", "tax_behavior", "tiers", "tiers_mode",
    "transfer_lookup_key", "transform_quantity", "unit_amount", "unit_amount_decimal",
}
_UNSUPPORTED = ("currency_options", "custom_unit_amount")
_PRODUCT_DATA = {"active", "id", "metadata", "name", "statement_descriptor", "tax_code", "tax_details", "unit_label"}
# `aggregate_usage` was removed in 2025-03-31.basil, so it is rejected as unknown like any other stray key.
_RECURRING = {"interval", "interval_count", "usage_type", "meter", "trial_period_days"}
_TIER = {"up_to", "unit_amount", "unit_amount_decimal", "flat_amount", "flat_amount_decimal"}


def create_price(params: dict, *, id: str, now: int) -> Price:
    """Validate `POST /v1/prices` params (parsed form, string values) into a new Price."""
    p.check_keys(params, _CREATE)
    for name in _UNSUPPORTED:
        if name in params:
            raise invalid(name, "is not supported by this server.")
    if "currency" not in params:
        raise missing("currency")
    # Stripe documents lowercase codes but accepts any case and answers in lowercase.
    currency = p.string(params["currency"], "currency").lower()
    if not _CURRENCY.match(currency):
        raise invalid("currency", "must be a three-letter ISO currency code.")
    product, product_data = _product(params)
    scheme = p.enum(params.get("billing_scheme", "per_unit"), "billing_scheme", ("per_unit", "tiered"))
    if "tiers" in params and "transform_quantity" in params:
        raise p.exclusive("tiers", "transform_quantity")  # "Cannot be combined with `tiers`"
    unit, mode, tiers, transform = None, None, (), None
    if scheme == "tiered":
        for name in ("unit_amount", "unit_amount_decimal", "transform_quantity"):
            if name in params:
                raise invalid(name, "cannot be used with billing_scheme=tiered.")
        if "tiers_mode" not in params:
            raise missing("tiers_mode")
        mode = p.enum(params["tiers_mode"], "tiers_mode", ("graduated", "volume"))
        if "tiers" not in params:
            raise missing("tiers")
        tiers = _tiers(params["tiers"])
    else:
        for name in ("tiers", "tiers_mode"):
            if name in params:
                raise invalid(name, "requires billing_scheme=tiered.")
        unit = _one_of(params, "unit_amount", "unit_amount_decimal")
        if unit is None:
            raise missing("unit_amount")
        if "transform_quantity" in params:
            transform = _transform(params["transform_quantity"])
    if "transfer_lookup_key" in params:
        p.boolean(params["transfer_lookup_key"], "transfer_lookup_key")  # acted on by the caller (needs the store)
    opt = params.get
    return Price(
        id=id, currency=currency, product=product, product_data=product_data, billing_scheme=scheme,
        unit_amount_decimal=unit, tiers_mode=mode, tiers=tiers, transform_quantity=transform,
        recurring=_recurring(params["recurring"]) if "recurring" in params else None,
        active=p.boolean(opt("active", True), "active"), created=now,
        nickname=p.string(opt("nickname"), "nickname") if opt("nickname") else None,
        lookup_key=p.string(opt("lookup_key"), "lookup_key", max_len=200) if opt("lookup_key") else None,
        metadata=_metadata.check(opt("metadata")),
        tax_behavior=p.enum(opt("tax_behavior", "unspecified"), "tax_behavior", ("exclusive", "inclusive", "unspecified")),
    )


def _product(params: dict) -> tuple[str | None, dict | None]:
    if "product" in params and "product_data" in params:
        raise p.exclusive("product", "product_data")
    if "product" in params:
        return p.string(params["product"], "product"), None
    if "product_data" not in params:
        raise missing("product")
    data = p.hash_(params["product_data"], "product_data")
    p.check_keys(data, _PRODUCT_DATA, "product_data")
    if "name" not in data:
        raise missing("product_data[name]")
    p.string(data["name"], "product_data[name]")
    return None, dict(data)


def _one_of(d: dict, int_key: str, dec_key: str, prefix: str = "") -> Decimal | None:
    """`unit_amount` (int) or `unit_amount_decimal` (≤12 places): "Only one of … can be set"."""
    name = (lambda k: f"{prefix}[{k}]") if prefix else (lambda k: k)
    if int_key in d and dec_key in d:
        raise p.exclusive(name(int_key), name(dec_key))
    if int_key in d:
        return p.amount(d[int_key], name(int_key))
    if dec_key in d:
        return p.decimal_amount(d[dec_key], name(dec_key))
    return None


def _tiers(raw) -> tuple[Tier, ...]:
    items = p.array(raw, "tiers")
    if not items:
        raise missing("tiers")
    out, prev = [], 0
    for i, t in enumerate(items):
        at = f"tiers[{i}]"
        t = p.hash_(t, at)
        p.check_keys(t, _TIER, at)
        if t.get("up_to") in (None, ""):
            raise missing(f"{at}[up_to]")
        last = i == len(items) - 1
        if t["up_to"] == "inf":
            if not last:
                raise invalid(f"{at}[up_to]", "only the last tier can have up_to=inf.")
            up_to = None
        else:
            up_to = p.integer(t["up_to"], f"{at}[up_to]", minimum=1)
            if last:
                raise invalid(f"{at}[up_to]", "the last tier must have up_to=inf (the fallback tier).")
            if up_to <= prev:
                # "The lower bound of a tier is the upper bound of the previous tier adding one."
                raise invalid(f"{at}[up_to]", f"must be greater than the previous tier's up_to ({prev}).")
            prev = up_to
        unit = _one_of(t, "unit_amount", "unit_amount_decimal", at)
        flat = _one_of(t, "flat_amount", "flat_amount_decimal", at)
        if unit is None and flat is None:
            # A tier "can have either a unit_amount or a flat_amount, or both, but it must have at least one".
            raise InvalidRequest("An entry in the tiers array is missing an amount.", param=at, code="parameter_missing")
        out.append(Tier(up_to, unit, flat))
    return tuple(out)


def _transform(raw) -> TransformQuantity:
    t = p.hash_(raw, "transform_quantity")
    p.check_keys(t, {"divide_by", "round"}, "transform_quantity")
    if "divide_by" not in t:
        raise missing("transform_quantity[divide_by]")
    divide_by = p.integer(t["divide_by"], "transform_quantity[divide_by]", minimum=1)
    if "round" not in t:
        raise missing("transform_quantity[round]")
    return TransformQuantity(divide_by, p.enum(t["round"], "transform_quantity[round]", ("up", "down")))


def _recurring(raw) -> Recurring:
    r = p.hash_(raw, "recurring")
    p.check_keys(r, _RECURRING, "recurring")
    if "interval" not in r:
        raise missing("recurring[interval]")
    interval = p.enum(r["interval"], "recurring[interval]", INTERVALS)
    count = p.integer(r.get("interval_count", 1), "recurring[interval_count]", minimum=1)
    if count > MAX_INTERVAL_COUNT[interval]:
        raise invalid("recurring[interval_count]", "the maximum billing interval is three years "
                      "(3 years, 36 months, 156 weeks or 1095 days).")
    usage = p.enum(r.get("usage_type", "licensed"), "recurring[usage_type]", ("licensed", "metered"))
    meter = p.string(r["meter"], "recurring[meter]") if "meter" in r else None
    if usage == "metered" and meter is None:
        # Since 2025-03-31.basil metered prices are always backed by a billing meter.
        raise InvalidRequest("You can no longer create a price with a usage_type of metered without a specified meter.",
                             param="recurring[meter]", code="parameter_missing")
    if usage == "licensed" and meter is not None:
        raise invalid("recurring[meter]", "can only be set when recurring[usage_type] is metered.")
    trial = r.get("trial_period_days")
    if trial is not None:
        trial = p.integer(trial, "recurring[trial_period_days]", minimum=1, maximum=MAX_TRIAL_DAYS)
    return Recurring(interval, count, usage, meter, trial)
