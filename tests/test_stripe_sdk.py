"""The official `stripe` SDK against a running service, changing only the base URL and key."""

import time

import pytest
import stripe



def test_meters_events_and_summaries_through_the_sdk(server):
    base, key = server
    client = stripe.StripeClient(key, base_addresses={"api": base, "meter_events": base})
    # the usage-based pricing guide (seed 000): a sum meter for alpaca_ai_tokens
    meter = client.v1.billing.meters.create({
        "display_name": "Alpaca AI tokens", "event_name": "alpaca_ai_tokens",
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "value_settings": {"event_payload_key": "value"}})
    assert meter.id.startswith("mtr_") and meter.default_aggregation.formula == "sum"
    assert [m.id for m in client.v1.billing.meters.list({"status": "active"}).data] == [meter.id]
    now = int(time.time())
    event = client.v1.billing.meter_events.create({
        "event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_sdk", "value": "25"},
        "timestamp": now})
    assert event.identifier and event.payload["value"] == "25"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create({
            "event_name": "alpaca_ai_tokens", "identifier": event.identifier,
            "payload": {"stripe_customer_id": "cus_sdk", "value": "25"}})
    assert "already exists" in str(err.value)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create({
            "event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_sdk", "value": "25"},
            "timestamp": now - 36 * 86400})
    assert err.value.param == "timestamp"
    # the v2 high-volume path: a session, then a stream client on its token
    session = client.v2.billing.meter_event_session.create()
    stream = stripe.StripeClient(session.authentication_token, base_addresses={"api": base, "meter_events": base})
    stream.v2.billing.meter_event_stream.create({"events": [
        {"event_name": "alpaca_ai_tokens", "payload": {"stripe_customer_id": "cus_sdk", "value": "75"}}]})
    # the aggregator is asynchronous, as Stripe's: poll the summaries
    start = now - now % 86400
    deadline = time.time() + 20
    value = None
    while time.time() < deadline:
        summaries = client.v1.billing.meters.event_summaries.list(
            meter.id, {"customer": "cus_sdk", "start_time": start, "end_time": start + 86400})
        value = summaries.data[0].aggregated_value
        if value == 100:
            break
        time.sleep(0.2)
    assert value == 100
    updated = client.v1.billing.meters.update(meter.id, {"display_name": "Tokens"})
    assert updated.display_name == "Tokens"
    assert client.v1.billing.meters.deactivate(meter.id).status == "inactive"
    assert client.v1.billing.meters.reactivate(meter.id).status == "active"
    adj = client.v1.billing.meter_event_adjustments.create({
        "event_name": "alpaca_ai_tokens", "type": "cancel", "cancel": {"identifier": event.identifier}})
    assert adj.status == "pending"


def test_wrong_key_raises_authentication_error(server):
    base, _ = server
    client = stripe.StripeClient("sk_test_not_a_real_key_0000", base_addresses={"api": base})
    with pytest.raises(stripe.AuthenticationError):
        client.v1.billing.meters.list()
