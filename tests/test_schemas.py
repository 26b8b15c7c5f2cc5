"""The committed contracts in schemas/ describe exactly the records the services write."""

import json
from pathlib import Path

import jsonschema
import pytest

from tally_core.meter_events import validate_cancel, validate_event
from tally_core.meters import create_meter
from tally_infra.catalog import catalog_record
from tests.workload import workload

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
METER = create_meter({"display_name": "t", "event_name": "tokens", "default_aggregation": {"formula": "sum"},
                      "dimension_payload_keys": ["model"]}, id="mtr_1", account="acct_1", now=5)


def schema(name):
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def test_recorded_events_match_their_schema():
    record = validate_event({"event_name": "tokens", "payload": {"stripe_customer_id": "c", "value": "-1.5",
                                                                 "model": "m"}},
                            account="acct_1", meters={"tokens": METER}.get, now_s=100, received_ms=100_000,
                            default_identifier="gen")
    jsonschema.validate(record, schema("meter_event.recorded.v1"))


def test_cancellations_match_their_schema():
    record = validate_cancel({"event_name": "tokens", "type": "cancel", "cancel": {"identifier": "x"}},
                             account="acct_1", meters={"tokens": METER}.get, locate=lambda _: ("c", 1),
                             received_ms=2)
    jsonschema.validate(record, schema("meter_event.canceled.v1"))


def test_catalog_records_match_their_schema():
    jsonschema.validate(catalog_record("billing.meter.created", METER, "evt_1"), schema("catalog.meter.v1"))


@pytest.mark.parametrize("record", workload(200, seed=1)[::13], ids=lambda r: r["type"])
def test_test_workloads_follow_the_contracts_too(record):
    name = "meter_event.recorded.v1" if record["type"] == "meter_event.recorded" else "meter_event.canceled.v1"
    jsonschema.validate(record, schema(name))


def test_an_extra_field_breaks_the_contract():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**workload(1)[0], "surprise": 1}, schema("meter_event.recorded.v1"))


def test_billing_commands_and_events_match_their_schemas():
    from tests.tally_core.billing.test_decide import seed_000, ts

    c, _ = seed_000()
    c.usage.add("cus_1", ts(2026, 1, 5), 1500)
    c.advance(ts(2026, 2, 1, 2))
    assert len(c.events) > 8
    for event in c.events:
        jsonschema.validate({**event, "command_offset": [0, 1]}, schema("billing_event.v1"))
    command = {"id": "cmd_1", "type": "subscription.create", "account": "acct_1", "key": "acct_1:cus_1", "at": 5,
               "grace": 3600, "object_id": "sub_1", "params": {"customer": "cus_1"}, "prices": {},
               "request_id": None, "idempotency_key": "k"}
    jsonschema.validate(command, schema("billing_command.v1"))
    jsonschema.validate({"id": "cmd_tick_1", "type": "tick", "account": None, "key": "tick:0", "at": 5,
                         "grace": 3600}, schema("billing_command.v1"))
