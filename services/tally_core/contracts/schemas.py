"""The JSON Schemas in schemas/, generated from the models: one file per contract (`tally schemas --write`
writes them, from tally_cli/schemas.py; tests/test_schemas.py fails when a committed file is stale)."""

from __future__ import annotations

import json

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from ..billing.commands import AnyCommand
from .events import BillingRecord, CatalogEvent, MeterEventCanceled, MeterEventRecorded

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# name → (type, title, description): the file is schemas/{name}.json.
CONTRACTS = {
    "billing_command.v1": (AnyCommand, "billing-commands record, v1", (
        "What the API (or the worker's ticker) asks the billing worker to do, one model per command type "
        "(tally_core/billing/commands.py). Records written before the typed commands carry the request's "
        "params as received (form strings); the worker reads both (`commands.load`).")),
    "billing_event.v1": (BillingRecord, "billing-events record, v1", (
        "One decision: a Stripe Event plus the log envelope, or a `tally.usage_observed` record (a usage value "
        "a decision read).")),
    "catalog.v1": (CatalogEvent, "catalog record, v1 (topic catalog, key \"{account}\")", (
        "A Stripe-shaped event carrying the whole meter, product or price after the change, so projecting it "
        "is an idempotent upsert.")),
    "meter_event.recorded.v1": (MeterEventRecorded, None, None),
    "meter_event.canceled.v1": (MeterEventCanceled, None, None),
}


class _Generate(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:
        return False  # "Account" for `account` says nothing

    def generate(self, schema, mode="validation"):
        out = super().generate(schema, mode=mode)
        return {"$schema": DRAFT, **out}


def generate() -> dict[str, dict]:
    """Every contract's JSON Schema, by file name (without `.json`)."""
    out = {}
    for name, (kind, title, description) in CONTRACTS.items():
        schema = TypeAdapter(kind).json_schema(schema_generator=_Generate)
        head = {"$schema": schema.pop("$schema"), "$id": name}
        if title:
            head["title"] = title
        if description:
            head["description"] = description
        out[name] = {**head, **{k: v for k, v in schema.items() if k not in head}}
    return out


def render(schema: dict) -> str:
    """A schema file's text (what is committed, byte for byte)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
