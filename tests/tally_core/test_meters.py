import pytest

from tally_core.errors import InvalidRequest
from tally_core.meters import Formula, MeterStatus, create_meter, deactivate, reactivate, update_meter

BASE = {"display_name": "Alpaca AI tokens", "event_name": "alpaca_ai_tokens", "default_aggregation": {"formula": "sum"}}


def make(**overrides):
    return create_meter({**BASE, **overrides}, id="mtr_1", account="acct_1", now=100)


def test_create_with_stripe_defaults():
    meter = make()
    obj = meter.to_stripe()
    assert obj["customer_mapping"] == {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    assert obj["value_settings"] == {"event_payload_key": "value"}
    assert obj["status"] == "active" and obj["status_transitions"] == {"deactivated_at": None}
    assert meter.formula is Formula.SUM


def test_custom_keys_and_dimensions_round_trip():
    meter = make(customer_mapping={"type": "by_id", "event_payload_key": "cid"},
                 value_settings={"event_payload_key": "tokens"}, dimension_payload_keys=["model", "region"])
    assert meter.dimension_keys == ("model", "region")
    assert type(meter).from_stripe(meter.to_stripe(), "acct_1") == meter


@pytest.mark.parametrize("params, param", [
    ({"display_name": None}, "display_name"),
    ({"event_name": None}, "event_name"),
    ({"event_name": "x" * 101}, "event_name"),
    ({"display_name": "x" * 251}, "display_name"),
    ({"default_aggregation": {}}, "default_aggregation[formula]"),
    ({"default_aggregation": {"formula": "max"}}, "default_aggregation[formula]"),
    ({"customer_mapping": {"type": "by_email", "event_payload_key": "c"}}, "customer_mapping[type]"),
    ({"customer_mapping": {"type": "by_id"}}, "customer_mapping[event_payload_key]"),
    ({"value_settings": {"event_payload_key": "bad key!"}}, "value_settings[event_payload_key]"),
    ({"event_time_window": "week"}, "event_time_window"),
    ({"dimension_payload_keys": ["a", "a"]}, "dimension_payload_keys"),
    ({"dimension_payload_keys": ["value"]}, "dimension_payload_keys"),
    ({"dimension_payload_keys": [f"d{i}" for i in range(11)]}, "dimension_payload_keys"),
    ({"colour": "red"}, "colour"),
], ids=["no-display-name", "no-event-name", "long-event-name", "long-display-name", "no-formula", "max-formula",
        "mapping-type", "mapping-key-missing", "bad-value-key", "bad-window", "dup-dims", "dim-is-value",
        "too-many-dims", "unknown-param"])
def test_invalid_create_names_the_field(params, param):
    with pytest.raises(InvalidRequest) as err:
        make(**params)
    assert err.value.param == param


def test_only_display_name_can_change():
    meter = make()
    assert update_meter(meter, {"display_name": "Tokens"}, now=200).display_name == "Tokens"
    with pytest.raises(InvalidRequest) as err:
        update_meter(meter, {"event_name": "other"}, now=200)
    assert err.value.param == "event_name"


@pytest.mark.parametrize("params, param, code", [
    ({"display_name": ""}, "display_name", "parameter_invalid_empty"),  # cannot be unset: refused, not ignored
    ({"display_name": None}, "display_name", "parameter_invalid_empty"),  # JSON null reads like an empty form value
    ({"expand": ["data.customer"]}, "expand", "parameter_invalid"),  # a meter has nothing to expand
])
def test_update_refuses_what_it_cannot_do(params, param, code):
    with pytest.raises(InvalidRequest) as err:
        update_meter(make(), params, now=200)
    assert (err.value.param, err.value.code) == (param, code)


def test_deactivate_then_reactivate():
    meter = deactivate(make(), now=300)
    assert meter.status is MeterStatus.INACTIVE and meter.deactivated_at == 300
    with pytest.raises(InvalidRequest):
        deactivate(meter, now=301)
    again = reactivate(meter, now=400)
    assert again.status is MeterStatus.ACTIVE and again.deactivated_at is None
