"""Products (Stripe `product`, id `prod_…`) and the update rules of products and prices.

Pure: validation of `POST /v1/products`, `POST /v1/products/{id}`, `price_data`-style inline creation
(`product_data` on a price, `default_price_data` on a product) and `POST /v1/prices/{id}`. Checks that need
the catalog (does the product / meter / lookup key exist?) are the caller's.

Limits are Stripe's documented ones (`params/_product_create_params.py`): name and id ≤ 5000 characters,
description ≤ 40000, statement_descriptor ≤ 22 and none of < > \\ " ', up to 8 images and 15 marketing
features. unit_label ≤ 12 is Stripe's dashboard/API rule as commonly documented ("may be up to 12 characters").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .. import metadata as _metadata
from ..errors import InvalidRequest, invalid, missing
from . import params as p
from .prices import Price

MAX_NAME = 5000
MAX_ID = 5000
MAX_DESCRIPTION = 40000
MAX_STATEMENT_DESCRIPTOR = 22
MAX_UNIT_LABEL = 12
MAX_IMAGES = 8
MAX_MARKETING_FEATURES = 15
MAX_FEATURE_NAME = 80
# Our own rule: a custom id travels in URL paths (`/v1/products/{id}`), so no '/', '?', '#', spaces or
# control characters. Stripe only documents the length.
_CUSTOM_ID = re.compile(r"^[^\s/?#%\x00-\x1f]+$")
_DESCRIPTOR_FORBIDDEN = set('<>\\"\'')


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    account: str
    name: str
    active: bool = True
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    default_price: str | None = None
    images: tuple[str, ...] = ()
    marketing_features: tuple[str, ...] = ()
    shippable: bool | None = None
    statement_descriptor: str | None = None
    tax_code: str | None = None
    unit_label: str | None = None
    url: str | None = None

    def to_stripe(self) -> dict:
        return {
            "id": self.id,
            "object": "product",
            "active": self.active,
            "created": self.created,
            "default_price": self.default_price,
            "description": self.description,
            "images": list(self.images),
            "livemode": False,
            "marketing_features": [{"name": n} for n in self.marketing_features],
            "metadata": dict(self.metadata),
            "name": self.name,
            "package_dimensions": None,
            "shippable": self.shippable,
            "statement_descriptor": self.statement_descriptor,
            "tax_code": self.tax_code,
            "unit_label": self.unit_label,
            "updated": self.updated,
            "url": self.url,
        }

    @classmethod
    def from_stripe(cls, obj: dict, account: str) -> Product:
        return cls(
            id=obj["id"], account=account, name=obj["name"], active=obj["active"],
            description=obj.get("description"), metadata=dict(obj.get("metadata") or {}),
            created=obj["created"], updated=obj["updated"], default_price=obj.get("default_price"),
            images=tuple(obj.get("images") or ()),
            marketing_features=tuple(f["name"] for f in obj.get("marketing_features") or ()),
            shippable=obj.get("shippable"), statement_descriptor=obj.get("statement_descriptor"),
            tax_code=obj.get("tax_code"), unit_label=obj.get("unit_label"), url=obj.get("url"),
        )


_CREATE = {
    "active", "default_price_data", "description", "expand", "id", "images", "marketing_features", "metadata",
    "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code", "tax_details", "type",
    "unit_label", "url",
}
# `product_data` on `POST /v1/prices` (reference [PY] `params/_price_create_params.py`).
_PRODUCT_DATA = {"active", "id", "metadata", "name", "statement_descriptor", "tax_code", "tax_details", "unit_label"}
_UPDATE = {
    "active", "default_price", "description", "expand", "images", "marketing_features", "metadata", "name",
    "package_dimensions", "shippable", "statement_descriptor", "tax_code", "tax_details", "unit_label", "url",
}
_UNSUPPORTED = ("package_dimensions", "tax_details")


def _at(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def create_product(params: dict, *, id: str, account: str, now: int, prefix: str = "") -> Product:
    """Validate `POST /v1/products` params (or a price's `product_data` with prefix="product_data").

    `id` is the generated id, used unless the params carry their own `id`. `default_price_data` is not read
    here: the caller turns it into a price with `default_price_params` and sets `default_price`.
    """
    p.check_keys(params, _PRODUCT_DATA if prefix else _CREATE, prefix)
    at = lambda k: _at(prefix, k)  # noqa: E731
    for name in _UNSUPPORTED:
        if name in params:
            raise invalid(at(name), "is not supported by this server.")
    if "name" not in params:
        raise missing(at("name"))
    name = p.string(params["name"], at("name"), max_len=MAX_NAME)
    if "id" in params:
        id = _custom_id(params["id"], at("id"))
    if "type" in params:
        # Legacy (good|service); accepted for old integrations, not part of the current object.
        p.enum(params["type"], at("type"), ("good", "service"))
    fields = _optional_fields(params, prefix, creating=True)
    return Product(id=id, account=account, name=name, created=now, updated=now,
                   metadata=check_metadata(params.get("metadata"), at("metadata")), **fields)


def update_product(product: Product, params: dict, *, now: int) -> Product:
    """`POST /v1/products/{id}`: every given field is set; `x=` unsets a nullable one. Returns `product`
    itself when nothing changes. Whether `default_price` names a price of this product is the caller's check."""
    p.check_keys(params, _UPDATE)
    for name in _UNSUPPORTED:
        if name in params:
            raise invalid(name, "is not supported by this server.")
    changes = _optional_fields(params, "", creating=False)
    if "name" in params:
        changes["name"] = p.string(params["name"], "name", max_len=MAX_NAME)
    if "metadata" in params:
        changes["metadata"] = merge_metadata(product.metadata, params["metadata"])
    if "default_price" in params:
        raw = params["default_price"]
        changes["default_price"] = None if raw == "" else p.string(raw, "default_price")
    updated = replace(product, **changes)
    if updated == product:
        return product
    return replace(updated, updated=now)


def _optional_fields(params: dict, prefix: str, *, creating: bool) -> dict:
    """The fields create and update share; on update `x=` clears a nullable field."""
    at = lambda k: _at(prefix, k)  # noqa: E731
    out: dict = {}

    def text(key: str, max_len: int) -> str | None:
        raw = params[key]
        if raw == "" and not creating:
            return None
        return p.string(raw, at(key), max_len=max_len)

    if "active" in params:
        out["active"] = p.boolean(params["active"], at("active"))
    if "description" in params:
        out["description"] = text("description", MAX_DESCRIPTION)
    if "statement_descriptor" in params:
        sd = text("statement_descriptor", MAX_STATEMENT_DESCRIPTOR)
        if sd is not None:
            if set(sd) & _DESCRIPTOR_FORBIDDEN:
                raise invalid(at("statement_descriptor"), "may not include <, >, \\, \" or ' characters.")
            if not any(c.isalpha() for c in sd):
                raise invalid(at("statement_descriptor"), "must contain at least one letter.")
        out["statement_descriptor"] = sd
    if "unit_label" in params:
        out["unit_label"] = text("unit_label", MAX_UNIT_LABEL)
    if "tax_code" in params:
        out["tax_code"] = text("tax_code", 5000)
    if "url" in params:
        out["url"] = text("url", 5000)
    if "shippable" in params:
        raw = params["shippable"]
        out["shippable"] = None if raw == "" and not creating else p.boolean(raw, at("shippable"))
    if "images" in params:
        raw = params["images"]
        items = [] if raw == "" and not creating else p.array(raw, at("images"))
        if len(items) > MAX_IMAGES:
            raise invalid(at("images"), f"can have at most {MAX_IMAGES} URLs.")
        out["images"] = tuple(p.string(u, f"{at('images')}[{i}]", max_len=2048) for i, u in enumerate(items))
    if "marketing_features" in params:
        raw = params["marketing_features"]
        items = [] if raw == "" and not creating else p.array(raw, at("marketing_features"))
        if len(items) > MAX_MARKETING_FEATURES:
            raise invalid(at("marketing_features"), f"can have at most {MAX_MARKETING_FEATURES} features.")
        names = []
        for i, f in enumerate(items):
            fat = f"{at('marketing_features')}[{i}]"
            f = p.hash_(f, fat)
            p.check_keys(f, {"name"}, fat)
            if "name" not in f:
                raise missing(f"{fat}[name]")
            names.append(p.string(f["name"], f"{fat}[name]", max_len=MAX_FEATURE_NAME))
        out["marketing_features"] = tuple(names)
    return out


def _custom_id(raw, param: str) -> str:
    value = p.string(raw, param, max_len=MAX_ID)
    if not _CUSTOM_ID.match(value):
        raise invalid(param, "may not contain whitespace, '/', '?', '#' or '%'.")
    return value


# --- metadata ---------------------------------------------------------------------------------------------
# One rule for every object (tally_core/metadata.py); these names stay for the catalog routes.

def check_metadata(raw, param: str = "metadata") -> dict[str, str]:
    """Create-time metadata: Stripe's limits (reference §9), no `[`/`]` in keys, no empty keys."""
    return _metadata.check(raw, param)


def merge_metadata(current: Mapping[str, str], raw, param: str = "metadata") -> dict[str, str]:
    """Update-time metadata: given keys are set, `metadata[k]=` removes one key, `metadata=` removes all."""
    return _metadata.merge(current, raw, param)


# --- default_price_data (product create) ------------------------------------------------------------------

_DEFAULT_PRICE_DATA = {
    "currency", "currency_options", "custom_unit_amount", "metadata", "recurring", "tax_behavior", "unit_amount",
    "unit_amount_decimal",
}


def default_price_params(raw, product_id: str) -> dict:
    """Turn `default_price_data` into `POST /v1/prices` params for `create_price` (wrap its errors with
    `nested_error(err, "default_price_data")`). Only `interval` and `interval_count` are allowed in its
    `recurring`, as in Stripe."""
    data = p.hash_(raw, "default_price_data")
    p.check_keys(data, _DEFAULT_PRICE_DATA, "default_price_data")
    if "recurring" in data:
        p.check_keys(p.hash_(data["recurring"], "default_price_data[recurring]"), {"interval", "interval_count"},
                     "default_price_data[recurring]")
    if "metadata" in data and isinstance(data["metadata"], dict):
        _metadata.check(data["metadata"], "default_price_data[metadata]")
    return {**data, "product": product_id}


def nested_error(err: InvalidRequest, prefix: str) -> InvalidRequest:
    """Re-name the param of an error raised on nested params: `recurring[interval]` → `prefix[recurring][interval]`."""
    if err.param is None or err.param.startswith(prefix + "["):
        return err
    head, bracket, rest = err.param.partition("[")
    new = f"{prefix}[{head}]" + (bracket + rest if bracket else "")
    out = InvalidRequest(err.message.replace(err.param, new), param=new, code=err.code)
    out.http_status = err.http_status
    return out


# --- price updates ----------------------------------------------------------------------------------------
# `POST /v1/prices/{id}` (kept here beside the product rules; `prices.py` holds creation). Stripe never
# changes a price's amounts, currency, tiers, recurring or transform after creation: only these fields.

_PRICE_UPDATE = {"active", "currency_options", "expand", "lookup_key", "metadata", "nickname", "tax_behavior",
                 "transfer_lookup_key"}
TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")


def update_price(price: Price, params: dict, *, now: int) -> Price:
    """Apply an update's fields; returns `price` itself when nothing changes. Lookup-key uniqueness (and
    `transfer_lookup_key`) and "not the product's default price when archiving" need the catalog: the caller's."""
    for key in params:
        if key not in _PRICE_UPDATE:
            raise InvalidRequest(
                f"Received unknown parameter: {key}. A price's amounts cannot change after creation; "
                "create a new price and archive this one (active=false).", param=key, code="parameter_unknown")
    if "currency_options" in params:
        raise invalid("currency_options", "is not supported by this server.")
    changes: dict = {}
    if "active" in params:
        changes["active"] = p.boolean(params["active"], "active")
    if "nickname" in params:
        changes["nickname"] = None if params["nickname"] == "" else p.string(params["nickname"], "nickname")
    if "lookup_key" in params:
        raw = params["lookup_key"]
        changes["lookup_key"] = None if raw == "" else p.string(raw, "lookup_key", max_len=200)
    if "transfer_lookup_key" in params:
        p.boolean(params["transfer_lookup_key"], "transfer_lookup_key")
    if "metadata" in params:
        changes["metadata"] = merge_metadata(price.metadata, params["metadata"])
    if "tax_behavior" in params:
        tb = p.enum(params["tax_behavior"], "tax_behavior", TAX_BEHAVIORS)
        if price.tax_behavior != "unspecified" and tb != price.tax_behavior:
            # "Once specified as either inclusive or exclusive, it cannot be changed."
            raise invalid("tax_behavior", f"is already {price.tax_behavior} and cannot be changed.")
        changes["tax_behavior"] = tb
    updated = replace(price, **changes)
    return price if updated == price else updated


def expand_of(params: dict) -> set[str]:
    """The `expand[]` list of a request as a set (form lists, a JSON list, or one string)."""
    raw = params.get("expand")
    if raw in (None, ""):
        return set()
    if isinstance(raw, str):
        return {raw}
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise invalid("expand", "must be an array of strings.")
    return set(raw)


def check_expand(expand: Iterable[str], allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    for e in expand:
        if e not in allowed:
            raise InvalidRequest(f"This property cannot be expanded ({e}).", param="expand", code="parameter_invalid")
