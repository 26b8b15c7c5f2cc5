"""The committed contracts in schemas/ are generated from the models and describe exactly the records the
services write."""

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

from tally_catalog import records as catalog
from tally_cli.schemas import stale
from tally_core.billing.commands import COMMAND, load, parse, to_record
from tally_core.billing.prices import create_price
from tally_core.billing.products import create_product
from tally_core.contracts import events as contracts
from tally_core.contracts.schemas import generate, render
from tally_core.meter_events import validate_cancel, validate_event
from tally_core.meters import create_meter
from tests.workload import workload

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
METER = create_meter({"display_name": "t", "event_name": "tokens", "default_aggregation": {"formula": "sum"},
                      "dimension_payload_keys": ["model"]}, id="mtr_1", account="acct_1", now=5)
CATALOG = TypeAdapter(contracts.CatalogEvent)
BILLING = TypeAdapter(contracts.BillingRecord)


def schema(name):
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def test_the_committed_schemas_are_the_generated_ones():
    assert stale(SCHEMAS) == [], "schemas/ is stale: run `make schemas`"
    for name, generated in generate().items():
        assert (SCHEMAS / f"{name}.json").read_text() == render(generated), "run `make schemas`"


def test_a_changed_model_makes_the_committed_schema_stale(tmp_path):
    for name, generated in generate().items():
        (tmp_path / f"{name}.json").write_text(render(generated))
    assert stale(tmp_path) == []
    (tmp_path / "billing_event.v1.json").write_text(render({**generate()["billing_event.v1"], "title": "old"}))
    (tmp_path / "gone.v1.json").write_text("{}")
    assert stale(tmp_path) == ["billing_event.v1.json", "gone.v1.json"]


def test_recorded_events_match_their_schema():
    record = validate_event({"event_name": "tokens", "payload": {"stripe_customer_id": "c", "value": "-1.5",
                                                                 "model": "m"}},
                            account="acct_1", meters={"tokens": METER}.get, now_s=100, received_ms=100_000,
                            default_identifier="gen")
    jsonschema.validate(record, schema("meter_event.recorded.v1"))
    contracts.MeterEventRecorded.model_validate(record)


def test_cancellations_match_their_schema():
    record = validate_cancel({"event_name": "tokens", "type": "cancel", "cancel": {"identifier": "x"}},
                             account="acct_1", meters={"tokens": METER}.get, locate=lambda _: ("c", 1),
                             received_ms=2)
    jsonschema.validate(record, schema("meter_event.canceled.v1"))
    contracts.MeterEventCanceled.model_validate(record)


def catalog_records():
    product = create_product({"name": "Tokens"}, id="prod_1", account="acct_1", now=5)
    price = create_price({"currency": "usd", "unit_amount": "4", "product": "prod_1",
                          "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_1"}},
                         id="price_1", now=5)
    return ([catalog.meter_record(t, METER, "evt_m") for t in catalog.METER_EVENTS]
            + [catalog.product_record(t, product, "evt_p") for t in catalog.PRODUCT_EVENTS]
            + [catalog.price_record(t, price, "acct_1", "evt_q") for t in catalog.PRICE_EVENTS])


@pytest.mark.parametrize("record", catalog_records(), ids=lambda r: r["type"])
def test_catalog_records_share_the_event_envelope(record):
    jsonschema.validate(record, schema("catalog.v1"))
    event = CATALOG.validate_python(record)
    assert isinstance(event, contracts.Envelope) and event.version == 1


def test_the_contracts_name_every_catalog_event_type_the_catalog_writes():
    assert contracts.METER_EVENTS == catalog.METER_EVENTS
    assert contracts.PRODUCT_EVENTS == catalog.PRODUCT_EVENTS
    assert contracts.PRICE_EVENTS == catalog.PRICE_EVENTS


@pytest.mark.parametrize("record", workload(200, seed=1)[::13], ids=lambda r: r["type"])
def test_test_workloads_follow_the_contracts_too(record):
    name = "meter_event.recorded.v1" if record["type"] == "meter_event.recorded" else "meter_event.canceled.v1"
    jsonschema.validate(record, schema(name))


def test_an_extra_field_breaks_the_contract():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**workload(1)[0], "surprise": 1}, schema("meter_event.recorded.v1"))
    with pytest.raises(ValidationError):
        contracts.MeterEventRecorded.model_validate({**workload(1)[0], "surprise": 1})


def billing_records():
    from tests.tally_core.billing.test_decide import seed_000, ts

    c, _ = seed_000()
    c.usage.add("cus_1", ts(2026, 1, 5), 1500)
    c.advance(ts(2026, 2, 1, 2))
    c.send("subscription.cancel", "sub_1", {"invoice_now": "true"})
    return c.events


def test_every_billing_event_the_core_emits_matches_the_envelope():
    records = billing_records()
    assert len(records) > 8 and {"tally.usage_observed", "invoice.paid"} <= {r["type"] for r in records}
    for record in records:
        written = {**record, "command_offset": [0, 1]}
        jsonschema.validate(written, schema("billing_event.v1"))
        parsed = BILLING.validate_python(written)
        # Every record the core emits carries the envelope's version, right after its type; one written
        # before (without `version`) reads as version 1.
        assert parsed.version == 1 and record["version"] == 1
        assert list(record)[list(record).index("type") + 1] == "version"
        assert BILLING.validate_python({k: v for k, v in written.items() if k != "version"}).version == 1
        if record["type"] == contracts.USAGE_OBSERVED:
            assert isinstance(parsed, contracts.UsageObservation)
        else:
            assert isinstance(parsed, contracts.BillingEvent) and isinstance(parsed, contracts.Envelope)


def test_billing_commands_match_their_schema():
    command = {"id": "cmd_1", "type": "subscription.create", "account": "acct_1", "key": "acct_1:cus_1", "at": 5,
               "grace": 3600, "object_id": "sub_1", "params": {"customer": "cus_1"}, "prices": {},
               "request_id": None, "idempotency_key": "k"}
    jsonschema.validate(command, schema("billing_command.v1"))
    tick = {"id": "cmd_tick_1", "type": "tick", "account": None, "key": "tick:0", "at": 5, "grace": 3600}
    jsonschema.validate(tick, schema("billing_command.v1"))
    # A typed command's record follows the contract and reads back as the same command.
    params = parse("subscription.create", {"customer": "cus_1", "items": [{"price": "price_1", "quantity": "2"}],
                                           "cancel_at_period_end": "false", "metadata": {"a": "1", "b": ""}},
                   object_id="sub_1", account="acct_1", now=5)
    typed = COMMAND.validate_python({**command, "params": params.model_dump(exclude_unset=True)})
    record = to_record(typed)
    jsonschema.validate(record, schema("billing_command.v1"))
    assert record["params"] == {"customer": "cus_1", "items": [{"price": "price_1", "quantity": 2}],
                                "metadata": {"a": "1", "b": ""}, "cancel_at_period_end": False}
    assert load(record) == typed


def test_a_typed_command_record_refuses_a_raw_form_string():
    bad = {"id": "cmd_1", "type": "subscription.update", "account": "acct_1", "key": "acct_1:cus_1", "at": 5,
           "object_id": "sub_1", "params": {"cancel_at_period_end": "maybe"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("billing_command.v1"))
