"""The ledger keeps one command's failure to that command: refused with a record, the book untouched."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import orjson
import pytest

from tally_core.billing import ledger as ledger_module
from tally_core.billing.ledger import COMMAND_FAILED, STUCK_RETRY, BadCommand, Ledger, decode_command


def command(kind: str, n: int, *, at: int = 1_767_225_600, key: str = "acct_1:cus_1", **params) -> dict:
    return {"id": f"cmd_{n}", "type": kind, "account": "acct_1", "key": key, "at": at, "grace": 3600,
            "object_id": key.split(":")[1], "params": params, "request_id": None, "idempotency_key": None}


def no_usage(*_):
    return Decimal(0)


def test_a_command_that_raises_is_refused_with_a_record_naming_it_and_leaves_the_book_as_it_was():
    ledger = Ledger()
    ledger.handle(0, command("customer.create", 1, email="a@example.com"), no_usage)
    before = ledger.books["acct_1:cus_1"]
    events, (status, body) = ledger.handle(0, command("customer.explode", 2), no_usage)
    assert status == 500 and body["error"]["code"] == "command_failed"
    assert body["error"]["message"].startswith("tally could not decide command cmd_2: ValueError")
    assert [e["type"] for e in events] == [COMMAND_FAILED]
    assert events[0]["data"]["object"]["book"] == "acct_1:cus_1" and events[0]["data"]["object"]["retry_at"] is None
    assert list(events[0])[2:4] == ["type", "version"] and events[0]["version"] == 1  # the one event envelope
    assert ledger.books["acct_1:cus_1"] is before
    # The record follows the billing-events contract, and deciding the command again gives it byte for byte.
    contract = json.loads((Path(__file__).resolve().parents[3] / "schemas" / "billing_event.v1.json").read_text())
    jsonschema.validate({**events[0], "command_offset": [0, 1]}, contract)
    again, _ = Ledger().handle(0, command("customer.explode", 2), no_usage)
    assert orjson.dumps(again) == orjson.dumps(events)


def test_an_event_past_the_integers_json_readers_hold_is_refused_too():
    ledger = Ledger()
    ledger.handle(0, command("customer.create", 1), no_usage)
    events, (status, _) = ledger.handle(0, command("customer.update", 2, balance=str(2**60)), no_usage)
    # Either a rule refuses the value (400) or the event cannot be written: never a half-kept change.
    assert status in (400, 500)
    assert ledger.books["acct_1:cus_1"].customers["cus_1"].balance == 0
    assert all(e["type"] == COMMAND_FAILED for e in events) or not events


def test_a_book_a_tick_fails_on_is_skipped_for_an_hour_of_tick_time(monkeypatch):
    ledger = Ledger()
    ledger.handle(0, command("customer.create", 1, payment_method="pm_card_visa"), no_usage)
    key = "acct_1:cus_1"
    ledger.due[key] = 100  # as if a renewal were due at 100
    real = ledger_module.decide

    def failing(book, cmd, usage):
        raise RuntimeError("boom")

    monkeypatch.setattr(ledger_module, "decide", failing)
    events, result = ledger.handle(0, {"id": "cmd_tick_1", "type": "tick", "account": None, "key": "tick:0",
                                       "at": 200}, no_usage)
    assert result is None and [e["data"]["object"]["retry_at"] for e in events] == [200 + STUCK_RETRY]
    assert ledger.stuck == {key: 200 + STUCK_RETRY}
    assert ledger.due_in(0, 200 + STUCK_RETRY - 1) == []  # (the heal an hour later: tests/tally_billing)
    monkeypatch.setattr(ledger_module, "decide", real)
    ledger.handle(0, command("customer.update", 2, name="changed"), no_usage)  # a change clears the mark
    assert ledger.stuck == {}


@pytest.mark.parametrize("value, why", [
    (b'{"id": ', "not JSON"), (b"[1]", "not a JSON object"), (b'{"type": "tick", "key": "k", "at": 1}', "id"),
    (b'{"id": "c", "type": "tick", "key": "k", "at": 1e30}', "at"),
    (b'{"id": "c", "type": "customer.update", "key": "k", "at": 1}', "account"),
])
def test_records_without_a_command_envelope_are_bad_commands(value, why):
    with pytest.raises(BadCommand, match=why):
        decode_command(value, 0, lambda key: 0)


def test_a_command_on_the_wrong_partition_is_a_bad_command():
    value = orjson.dumps(command("customer.create", 1))
    assert decode_command(value, 0, lambda key: 0)["id"] == "cmd_1"
    with pytest.raises(BadCommand, match="partition"):
        decode_command(value, 1, lambda key: 0)
