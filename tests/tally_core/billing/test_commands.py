"""Billing commands as typed models, as worked examples: what a request parses to, what it is refused for
(every bad param, the first one answering), and that the log's normalized params decide exactly as the
raw request did, for new commands and for the raw-string commands already in logs."""

import orjson
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from tally_core.billing import commands
from tally_core.billing.command_params import CustomerCreateParams, SubscriptionCreateParams
from tally_core.billing.commands import load, parse, to_params, to_record
from tally_core.billing.decide import decide
from tally_core.billing.edge import InvalidCommand
from tally_core.errors import InvalidRequest
from tests.tally_core.billing.test_decide import JAN1, PRICES, Clocked, seed_000, ts


def parsed(kind, params, object_id="obj_1"):
    return parse(kind, params, object_id=object_id, account="acct_1", now=JAN1)


def refusal(kind, params) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as err:
        parsed(kind, params)
    return err.value


# --- typed values ----------------------------------------------------------------------------------------------

def test_a_customer_create_parses_to_typed_values():
    c = parsed("customer.create", {"email": "a@example.com", "balance": "-500", "name": "",
                                   "metadata": {"plan": "pro", "old": ""}, "payment_method": "pm_card_visa",
                                   "expand": ["test_clock"]})
    assert isinstance(c, CustomerCreateParams)
    assert (c.email, c.balance, c.default_payment_method) == ("a@example.com", -500, "pm_card_visa")
    assert c.name is None and "name" in c.model_fields_set   # sent empty: Stripe's "unset"
    assert "phone" not in c.model_fields_set                   # not sent
    assert c.metadata == {"plan": "pro", "old": ""}            # the empty value stays: an update unsets `old`
    # The log carries Stripe's own form, normalized: ints, one payment method field, "" for an unset value.
    assert to_params(c) == {"email": "a@example.com", "name": "", "metadata": {"plan": "pro", "old": ""},
                            "balance": -500, "invoice_settings": {"default_payment_method": "pm_card_visa"}}


def test_a_subscription_create_parses_to_typed_values():
    s = parsed("subscription.create", {"customer": "cus_1", "items": {"0": {"price": "price_license", "quantity": "3"},
                                                                     "2": {"price": "price_tokens"}},
                                       "billing_cycle_anchor": str(ts(2026, 1, 15)), "cancel_at_period_end": "true",
                                       "payment_behavior": "default_incomplete"})
    assert isinstance(s, SubscriptionCreateParams)
    assert [(it.price, it.quantity) for it in s.items] == [("price_license", 3), ("price_tokens", None)]
    assert (s.billing_cycle_anchor, s.cancel_at_period_end) == (ts(2026, 1, 15), True)
    assert to_params(s)["items"] == [{"price": "price_license", "quantity": 3}, {"price": "price_tokens"}]


def test_models_are_frozen():
    s = parsed("invoice.pay", {"paid_out_of_band": "true"})
    with pytest.raises(ValidationError):
        s.paid_out_of_band = False
    assert s.paid_out_of_band is True


# --- refusals --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, params, param, code", [
    ("customer.create", {"balance": "lots"}, "balance", "parameter_invalid_integer"),
    ("customer.create", {"email": "x" * 513}, "email", "parameter_invalid"),
    ("customer.create", {"address": {"planet": "Mars"}}, "address[planet]", "parameter_unknown"),
    ("customer.create", {"metadata": {"k": 5}}, "metadata[k]", "parameter_invalid"),
    ("customer.create", {"colour": "red"}, "colour", "parameter_unknown"),
    ("customer.update", {"test_clock": "clock_1"}, "test_clock", "parameter_unknown"),
    ("customer.update", {"balance": str(10**12)}, "balance", "parameter_invalid_integer"),
    ("subscription.create", {"items": [{"price": "price_license"}]}, "customer", "parameter_missing"),
    ("subscription.create", {"customer": "cus_1"}, "items", "parameter_missing"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p", "quantity": "-1"}]},
     "items[0][quantity]", "parameter_invalid_integer"),
    ("subscription.create", {"customer": "cus_1", "items": [{"quantity": "1"}]}, "items[0][price]",
     "parameter_missing"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p", "metadata": {"a": 5}}]},
     "items[0][metadata][a]", "parameter_invalid"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "cancel_at_period_end": "yes"},
     "cancel_at_period_end", "parameter_invalid_boolean"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "payment_behavior": "hope"},
     "payment_behavior", "parameter_invalid_enum"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "billing_cycle_anchor": "soon"},
     "billing_cycle_anchor", "parameter_invalid_integer"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "billing_cycle_anchor": "5",
                             "billing_cycle_anchor_config": {"day_of_month": "3"}},
     "billing_cycle_anchor", "parameters_exclusive"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}],
                             "billing_cycle_anchor_config": {"day_of_month": "32"}},
     "billing_cycle_anchor_config[day_of_month]", "parameter_invalid_integer"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "collection_method": "send_invoice"},
     "collection_method", "parameter_invalid"),
    ("subscription.create", {"customer": "cus_1", "items": [{"price": "p"}], "default_payment_method": "pm_1"},
     "default_payment_method", "parameter_invalid"),
    ("subscription.update", {"items": [{"quantity": "2"}]}, "items[0][price]", "parameter_missing"),
    ("subscription.update", {"items": [{"id": "si_1", "quantity": "x"}]}, "items[0][quantity]",
     "parameter_invalid_integer"),
    ("subscription.update", {"pause_collection": "now"}, "pause_collection", "parameter_unknown"),
    ("subscription.cancel", {"invoice_now": "maybe"}, "invoice_now", "parameter_invalid_boolean"),
    ("invoice.finalize", {"auto_advance": "1"}, "auto_advance", "parameter_invalid_boolean"),
    ("invoice.pay", {"paid_out_of_band": "yes"}, "paid_out_of_band", "parameter_invalid_boolean"),
    ("invoice.pay", {"payment_method": "p" * 256}, "payment_method", "parameter_invalid"),
    ("test_clock.create", {}, "frozen_time", "parameter_missing"),
    ("test_clock.create", {"frozen_time": "tomorrow"}, "frozen_time", "parameter_invalid_integer"),
    ("test_clock.create", {"frozen_time": "5", "name": "n" * 301}, "name", "parameter_invalid"),
    ("test_clock.advance", {"frozen_time": ""}, "frozen_time", "parameter_missing"),
    ("test_clock.advance", {"frozen_time": str(10**13)}, "frozen_time", "parameter_invalid_integer"),
])
def test_each_invalid_param_is_refused_naming_it(kind, params, param, code):
    err = refusal(kind, params)
    assert (err.param, err.code) == (param, code)


def test_a_single_refusal_is_exactly_the_cores_error():
    err = refusal("customer.create", {"balance": "lots"})
    assert type(err) is InvalidRequest
    assert err.to_dict() == {"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer",
                                       "param": "balance", "message": "Invalid balance: 'lots' is not an integer."}}


def test_several_bad_params_are_all_reported_the_first_answering():
    err = refusal("subscription.create", {
        "customer": "cus_1", "metadata": "oops", "items": [{"price": "p", "quantity": "x"}, {"price": "q"}],
        "cancel_at_period_end": "bogus", "payment_behavior": "hope", "colour": "red"})
    assert isinstance(err, InvalidCommand)
    # The answer is the refusal a client got before (the edge checked metadata first), the others follow.
    assert (err.param, err.message) == ("metadata", "Invalid metadata: must be a hash.")
    assert [e.param for e in err.errors] == ["metadata", "items[0][quantity]", "payment_behavior", "colour",
                                             "cancel_at_period_end"]
    body = err.to_dict()["error"]
    assert body["param"] == "metadata" and [e["param"] for e in body["errors"]] == [e.param for e in err.errors]
    assert body["errors"][1] == {"code": "parameter_invalid_integer", "param": "items[0][quantity]",
                                 "message": "Invalid items[0][quantity]: 'x' is not an integer."}


def test_a_customer_with_several_bad_fields_reports_each():
    err = refusal("customer.update", {"email": "", "phone": "1" * 21, "balance": "x", "colour": "red"})
    assert [e.param for e in err.errors] == ["colour", "phone", "balance"]  # `email=` unsets: not an error


def test_state_dependent_rules_stay_with_the_worker():
    # The anchor may be before the request's time (a test clock can be in the past) and the price may be
    # metered or inactive: the edge cannot know, the worker decides.
    s = parsed("subscription.create", {"customer": "cus_1", "items": [{"price": "price_tokens", "quantity": "2"}],
                                       "billing_cycle_anchor": "5"})
    assert s.billing_cycle_anchor == 5 and s.items[0].quantity == 2


# --- the log's params decide as the raw ones did ----------------------------------------------------------------

class Normalized(Clocked):
    """The same book, but every command carries `to_params(parse(raw))`, as the API will write it."""

    def send(self, kind, object_id, params, **extra):
        return super().send(kind, object_id, to_params(parsed(kind, params, object_id)), **extra)


class Loaded(Clocked):
    """The same book, but every command is read back through `load` (the worker's side)."""

    def send(self, kind, object_id, params, **extra):
        record = {"id": f"cmd_{self.n + 1}", "type": kind, "account": "acct_1", "key": self.book.key, "at": 0,
                  "object_id": object_id, "params": params, **extra}
        return super().send(kind, object_id, to_params(load(record)), **extra)


def scenario(c: Clocked) -> list[dict]:
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "payment_method": "pm_card_visa",
                                        "email": "a@example.com", "balance": "-2500",
                                        "metadata": {"plan": "pro", "none": ""}, "expand": ["test_clock"]})
    c.send("subscription.create", "sub_1", {"customer": "cus_1", "items": [{"price": "price_license", "quantity": "2"},
                                                                         {"price": "price_tokens"}],
                                            "cancel_at_period_end": "false", "metadata": {"team": "a"},
                                            "payment_behavior": "allow_incomplete"}, prices=PRICES)
    c.usage.add("cus_1", ts(2026, 1, 10), 1200)
    item = c.book.subscriptions["sub_1"].items[0].id
    c.send("subscription.update", "sub_1", {"items": [{"id": item, "quantity": "3"}], "metadata": {"team": ""},
                                            "proration_behavior": "none"})
    c.send("customer.update", "cus_1", {"name": "Ada", "metadata": {"plan": ""}, "phone": ""})
    c.advance(ts(2026, 2, 1, 2))
    c.send("subscription.update", "sub_1", {"items": [{"id": item, "deleted": "true"}],
                                            "proration_behavior": "create_prorations"})
    c.send("subscription.cancel", "sub_1", {"invoice_now": "true", "prorate": "false"})
    return c.events


def test_normalized_params_decide_exactly_as_the_raw_request():
    raw = scenario(Clocked())
    assert len(raw) > 15
    assert orjson.dumps(scenario(Normalized())) == orjson.dumps(raw)


def test_a_v1_command_with_raw_strings_loads_to_typed_values():
    record = {"id": "cmd_7", "type": "subscription.update", "account": "acct_1", "key": "acct_1:cus_1", "at": 5,
              "grace": 3600, "object_id": "sub_1",
              "params": {"cancel_at_period_end": "true", "items": [{"id": "si_1", "quantity": "5"}], "metadata": ""}}
    command = load(record)
    assert isinstance(command, commands.SubscriptionUpdate) and command.version == 1
    assert command.params.cancel_at_period_end is True and command.params.items[0].quantity == 5
    assert command.params.metadata is None  # `metadata=`: unset them all
    assert to_params(command) == {"cancel_at_period_end": True, "items": [{"id": "si_1", "quantity": 5}],
                                  "metadata": ""}
    assert to_record(command) == {**record, "version": 1, "params": to_params(command)}


def test_load_trusts_the_log_and_keeps_what_it_cannot_type():
    # A value an old worker refused stays as it was, so re-deciding refuses it again; an unknown key too.
    command = load({"id": "cmd_8", "type": "invoice.pay", "account": "acct_1", "key": "k", "at": 5,
                    "object_id": "in_1", "params": {"paid_out_of_band": "maybe", "tip": "5"}})
    assert to_params(command) == {"paid_out_of_band": "maybe", "tip": "5"}
    # No rule is checked again: a quantity beyond today's bound still loads.
    big = load({"id": "cmd_9", "type": "subscription.update", "account": "acct_1", "key": "k", "at": 5,
                "params": {"items": [{"id": "si_1", "quantity": str(10**12)}]}})
    assert big.params.items[0].quantity == 10**12
    with pytest.raises(ValueError):
        load({"id": "cmd_10", "type": "customer.explode", "account": "acct_1", "key": "k", "at": 5})


def test_loaded_v1_commands_decide_exactly_as_the_raw_ones():
    raw = scenario(Clocked())
    assert orjson.dumps(scenario(Loaded())) == orjson.dumps(raw)


def test_a_tick_loads_without_params_or_account():
    tick = load({"id": "cmd_tick_1", "type": "tick", "account": None, "key": "tick:0", "at": 200})
    assert isinstance(tick, commands.Tick) and tick.account is None and to_params(tick) == {}


# --- the same, for any request ---------------------------------------------------------------------------------

VALUES = st.sampled_from(["", "true", "false", "0", "7", "-2500", "x", "pm_card_visa", "clock_1", "9" * 25, None, 5,
                          True, {"a": "1"}, {"a": ""}, {"line1": "1 Main St"}, ["x"], [{"id": "si_x"}]])
KEYS = {
    "customer.create": ["email", "name", "phone", "balance", "metadata", "address", "payment_method",
                        "invoice_settings", "test_clock", "expand", "colour"],
    "customer.update": ["email", "description", "balance", "metadata", "address", "payment_method",
                        "invoice_settings", "test_clock"],
    "subscription.update": ["cancel_at_period_end", "metadata", "proration_behavior", "items", "colour"],
    "subscription.cancel": ["invoice_now", "prorate", "cancellation_details"],
    "invoice.finalize": ["auto_advance"],
    "invoice.pay": ["payment_method", "paid_out_of_band", "off_session"],
    "test_clock.advance": ["frozen_time"],
}
OBJECTS = {"customer.create": "cus_2", "customer.update": "cus_1", "subscription.update": "sub_1",
           "subscription.cancel": "sub_1", "test_clock.advance": "clock_1"}


def decided(book_of, kind, object_id, params):
    c = book_of()
    d = decide(c.book, {"id": "cmd_x", "type": kind, "account": "acct_1", "key": c.book.key, "at": 0,
                        "object_id": object_id, "params": params}, c.usage)
    return orjson.dumps([d.events, d.result, d.error.to_dict() if d.error else None])


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(KEYS)), data=st.data())
def test_any_request_the_edge_accepts_decides_the_same_from_its_normalized_params(kind, data):
    params = data.draw(st.dictionaries(st.sampled_from(KEYS[kind]), VALUES, max_size=4))
    book_of = lambda: seed_000()[0]  # noqa: E731 - a fresh book each time (deciding does not mutate it)
    object_id = OBJECTS.get(kind) or book_of().book.subscriptions["sub_1"].latest_invoice
    try:
        typed = parsed(kind, params, object_id)
    except InvalidRequest as err:
        # Refused at the edge, the request never enters the log: the worker checks no state-free rule again
        # (ARCHITECTURE decision 10). The answer is the first refusal, naming a param of the request.
        first = err.errors[0] if isinstance(err, InvalidCommand) else err
        assert (err.param, err.code) == (first.param, first.code) and (first.param.split("[")[0] in params or first.code == "parameter_missing")
        return
    assert decided(book_of, kind, object_id, to_params(typed)) == decided(book_of, kind, object_id, params)


# Mostly values the edge accepts (so that the decisions are compared), some it refuses.
ITEM = st.fixed_dictionaries({"price": st.sampled_from(["price_license", "price_tokens", "price_nope"])},
                             optional={"quantity": st.sampled_from(["1", "3", "0", "", 2, "x"])})
SUBSCRIPTION = st.fixed_dictionaries({"customer": st.just("cus_1"), "items": st.lists(ITEM, min_size=1, max_size=3)},
                                     optional={
    "cancel_at_period_end": st.sampled_from(["true", "false", True, "maybe"]),
    "billing_cycle_anchor": st.sampled_from(["", str(JAN1 + 86_400), str(JAN1 + 90 * 86_400), str(JAN1 - 5)]),
    "billing_cycle_anchor_config": st.sampled_from(["", {"day_of_month": "15"}, {"day_of_month": 31}]),
    "payment_behavior": st.sampled_from(["allow_incomplete", "default_incomplete", "error_if_incomplete"]),
    "collection_method": st.just("charge_automatically"), "default_payment_method": st.just(""),
    "metadata": st.sampled_from(["", {"a": "1"}, {"a": "", "b": "2"}]),
    "proration_behavior": st.sampled_from(["none", "create_prorations", "always_invoice"])})


@settings(max_examples=200, deadline=None)
@given(params=SUBSCRIPTION)
def test_any_subscription_the_edge_accepts_decides_the_same_from_its_normalized_params(params):
    c = seed_000()[0]

    def decided_with(p):
        d = decide(c.book, {"id": "cmd_x", "type": "subscription.create", "account": "acct_1", "key": c.book.key,
                            "at": 0, "object_id": "sub_2", "params": p, "prices": PRICES}, c.usage)
        return orjson.dumps([d.events, d.result, d.error.to_dict() if d.error else None])

    try:
        typed = parsed("subscription.create", params, "sub_2")
    except InvalidRequest:
        return
    assert decided_with(to_params(typed)) == decided_with(params)


def test_a_record_no_model_can_hold_is_refused_as_the_edge_refuses_it():
    # Never one the API wrote (the edge refuses it): a hand-written record, decided as the worker then did.
    c, sub = seed_000()
    d = decide(c.book, {"id": "cmd_x", "type": "invoice.pay", "account": "acct_1", "key": c.book.key, "at": 0,
                        "object_id": sub["latest_invoice"], "params": {"paid_out_of_band": "maybe"}}, c.usage)
    assert (d.error.param, d.error.code, d.events) == ("paid_out_of_band", "parameter_invalid_boolean", [])
    d = decide(c.book, {"id": "cmd_y", "type": "test_clock.advance", "account": "acct_1", "key": c.book.key, "at": 0,
                        "object_id": "clock_1", "params": {}}, c.usage)
    assert (d.error.param, d.error.code, d.events) == ("frozen_time", "parameter_missing", [])


def test_a_record_the_edge_rules_pass_but_no_field_holds_is_refused_before_any_handler():
    # `items[0][price]` a number: no string rule refuses it, yet no price id is a number.
    c, _ = seed_000()
    d = decide(c.book, {"id": "cmd_z", "type": "subscription.create", "account": "acct_1", "key": c.book.key,
                        "at": 0, "object_id": "sub_2", "params": {"customer": "cus_1", "items": [{"price": 5}]},
                        "prices": PRICES}, c.usage)
    assert (d.error.param, d.events) == ("items[0][price]", [])

