"""The test payment-method model: seed 000's card table (4242 succeeds; …0002 and …9995 decline) and Stripe pm ids."""

from __future__ import annotations

import pytest

from tally_core.billing.payments import (
    GENERIC_DECLINE, INSUFFICIENT_FUNDS, NO_PAYMENT_METHOD, CardError, PaymentOutcome, card_error, charge, is_known,
    payment_method_from_card,
)
from tally_core.errors import ResourceMissing


@pytest.mark.parametrize(("pm", "amount", "expected"), [
    pytest.param("pm_card_visa", 16000, PaymentOutcome(True, amount=16000), id="visa-succeeds"),
    pytest.param("pm_card_mastercard", 50, PaymentOutcome(True, amount=50), id="mastercard-succeeds"),
    pytest.param("pm_card_4242", 10000, PaymentOutcome(True, amount=10000), id="seed-card-4242"),
    pytest.param("pm_card_chargeDeclined", 16000,
                 PaymentOutcome(False, "generic_decline", GENERIC_DECLINE, "card_declined"), id="stripe-declined"),
    pytest.param("pm_card_chargeDeclinedInsufficientFunds", 16000,
                 PaymentOutcome(False, "insufficient_funds", INSUFFICIENT_FUNDS, "card_declined"),
                 id="stripe-insufficient-funds"),
    pytest.param("pm_card_0002", 10000,
                 PaymentOutcome(False, "generic_decline", GENERIC_DECLINE, "card_declined"), id="seed-card-0002"),
    pytest.param("pm_card_9995", 10000,
                 PaymentOutcome(False, "insufficient_funds", INSUFFICIENT_FUNDS, "card_declined"), id="seed-card-9995"),
    # No payment method: the attempt fails with Stripe's message and no invented error code.
    pytest.param(None, 10000, PaymentOutcome(False, None, NO_PAYMENT_METHOD, None), id="no-payment-method"),
    # 0 due "doesn't require payment" (reference §6.5): succeeds, charges nothing, whatever the method.
    pytest.param(None, 0, PaymentOutcome(True, amount=0), id="zero-without-method"),
    pytest.param("pm_card_chargeDeclined", 0, PaymentOutcome(True, amount=0), id="zero-on-declining-card"),
])
def test_charge(pm, amount, expected):
    assert charge(pm, amount) == expected


@pytest.mark.parametrize(("number", "pm"), [
    pytest.param("4242424242424242", "pm_card_4242", id="visa"),
    pytest.param("4242 4242 4242 4242", "pm_card_4242", id="spaces"),
    pytest.param("4242-4242-4242-4242", "pm_card_4242", id="dashes"),
    pytest.param("4000000000000002", "pm_card_0002", id="generic-decline"),
    pytest.param("4000000000009995", "pm_card_9995", id="insufficient-funds"),
    pytest.param("5555555555554444", "pm_card_4444", id="mastercard"),
])
def test_payment_method_from_card_is_deterministic_and_known(number, pm):
    assert payment_method_from_card(number) == pm
    assert is_known(pm)


@pytest.mark.parametrize(("number", "succeeded", "decline_code"), [
    pytest.param("4242424242424242", True, None, id="4242-succeeds"),
    pytest.param("4000000000000002", False, "generic_decline", id="0002-declines"),
    pytest.param("4000000000009995", False, "insufficient_funds", id="9995-insufficient"),
])
def test_seed_card_table_end_to_end(number, succeeded, decline_code):
    # given the seed's card mapped to its pm id, when 100 USD (10000¢) is charged
    outcome = charge(payment_method_from_card(number), 10000)
    # then it succeeds or declines as the seed's test table says, charging 10000¢ only on success
    assert (outcome.succeeded, outcome.decline_code, outcome.amount) == (succeeded, decline_code,
                                                                         10000 if succeeded else 0)


@pytest.mark.parametrize(("number", "code", "decline_code"), [
    pytest.param("4242424242424241", "incorrect_number", None, id="luhn-fails"),
    pytest.param("4242", "incorrect_number", None, id="too-short"),
    pytest.param("4242abcd42424242", "incorrect_number", None, id="not-digits"),
    # Luhn-valid but not a Stripe test card: test mode refuses "a non test card".
    pytest.param("4539578763621486", "card_declined", "test_mode_live_card", id="live-card-in-test-mode"),
])
def test_payment_method_from_card_rejects(number, code, decline_code):
    with pytest.raises(CardError) as err:
        payment_method_from_card(number)
    assert (err.value.code, err.value.decline_code, err.value.http_status) == (code, decline_code, 402)


def test_unknown_payment_method_is_missing():
    with pytest.raises(ResourceMissing) as err:
        charge("pm_nope", 100)
    assert err.value.http_status == 404
    assert err.value.to_dict()["error"]["message"] == "No such PaymentMethod: 'pm_nope'"


@pytest.mark.parametrize("amount", [-1, 1.5, True, "100"])
def test_charge_rejects_bad_amounts(amount):
    with pytest.raises(ValueError):
        charge("pm_card_visa", amount)


def test_card_error_for_a_decline_is_a_402_card_error_with_decline_code():
    err = card_error(charge("pm_card_9995", 16000))
    assert err.http_status == 402
    assert err.to_dict() == {"error": {"type": "card_error", "code": "card_declined",
                                       "decline_code": "insufficient_funds", "message": INSUFFICIENT_FUNDS}}


def test_card_error_without_payment_method_is_a_400():
    err = card_error(charge(None, 16000))
    assert err.http_status == 400
    assert err.to_dict() == {"error": {"type": "invalid_request_error", "message": NO_PAYMENT_METHOD}}


def test_card_error_refuses_a_success():
    with pytest.raises(ValueError):
        card_error(charge("pm_card_visa", 100))
