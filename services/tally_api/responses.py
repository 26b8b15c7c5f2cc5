"""Response schemas for `/openapi.json`: Stripe's example objects (`stripe_shapes.FIELDS`), typed from the
examples, each field required unless listed in `NOT_YET_RETURNED`; lists, deleted objects and tally's own
v2 objects."""

from __future__ import annotations

from .stripe_shapes import FIELDS

_TYPES = {"s": "string", "i": "integer", "b": "boolean", "o": "object", "a": "array"}
# Fields that `expand[]` turns from an id into the object.
_EXPANDABLE = {"default_price", "product", "latest_invoice", "customer", "subscription", "invoice"}
_NUMBERS = {"aggregated_value"}  # Stripe's example shows an integer; the value is any JSON number


# Fields of Stripe's example objects that tally does not return yet (ARCHITECTURE: objects carry every
# top-level field of Stripe's example, null where tally has nothing to say). Every other field is required, so
# the fuzzer holds each answer to it; shrink these lists as the fields are added.
NOT_YET_RETURNED = {
    "product": "type",
    "customer": "next_invoice_sequence",
}


def stripe_object(resource: str, **extra: dict) -> dict:
    """Every field of Stripe's example object, typed from the example and nullable (tally may have nothing to
    say); `object` is fixed. `extra` adds fields tally returns beyond the example (not required)."""
    props: dict = {}
    for item in FIELDS[resource].split():
        name, code = item.split(":")
        if name in _EXPANDABLE and code == "s":
            props[name] = {"type": ["string", "object", "null"]}
        elif name in _NUMBERS:
            props[name] = {"type": ["number", "null"]}
        elif code in _TYPES:
            props[name] = {"type": [_TYPES[code], "null"]}
        else:
            props[name] = {}
    props["object"] = {"const": resource}
    not_yet = set(NOT_YET_RETURNED.get(resource, "").split())
    required = sorted(set(props) - not_yet)
    props.update(extra)
    return {"type": "object", "required": required, "properties": props}


def deleted(resource: str) -> dict:
    return {"type": "object", "required": ["id", "object", "deleted"],
            "properties": {"id": {"type": "string"}, "object": {"const": resource}, "deleted": {"const": True}}}


def list_of(item: dict) -> dict:
    return {"type": "object", "required": ["object", "data", "has_more", "url"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": item},
                           "has_more": {"type": "boolean"}, "url": {"type": "string"}}}


def own(object_name: str, **props: dict) -> dict:
    """A v2 object Stripe's v1 fixtures do not hold."""
    return {"type": "object", "required": ["object", *[k for k in props if k in ("id",)]],
            "properties": {"object": {"const": object_name}, **props}}


S, I, B, O = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "object"}
