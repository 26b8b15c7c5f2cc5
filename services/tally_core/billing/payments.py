"""The test-mode payment-method model: which test cards and `pm_card_*` ids succeed or decline (no real charges).

Seeds 000/001 card table: 4242424242424242 succeeds; 4000000000000002 (generic) and 4000000000009995 decline.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ApiError, InvalidRequest, ResourceMissing

GENERIC_DECLINE = "Your card was declined."
INSUFFICIENT_FUNDS = "Your card has insufficient funds."
NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. "
    "Please consider adding a default payment method."
)
# Stripe rejects real card numbers in test mode with this decline (decline_code `test_mode_live_card`).
LIVE_CARD_IN_TEST_MODE = (
    "Your card was declined. Your request was in test mode, but used a non test card. "
    "For a list of valid test cards, visit: https://stripe.com/docs/testing."
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a test card answers a charge: None decline_code means it succeeds."""

    decline_code: str | None = None
    message: str | None = None


_OK = Behaviour()
_GENERIC = Behaviour("generic_decline", GENERIC_DECLINE)
_FUNDS = Behaviour("insufficient_funds", INSUFFICIENT_FUNDS)

# Stripe test card numbers (docs "Testing": 4242… Visa succeeds; …0002 generic decline; …9995 insufficient funds).
TEST_CARDS: dict[str, Behaviour] = {
    "4242424242424242": _OK,
    "5555555555554444": _OK,  # Mastercard
    "4000000000000002": _GENERIC,
    "4000000000009995": _FUNDS,
}

# Stripe's predefined test PaymentMethod ids, plus the `pm_card_<last4>` ids minted by `payment_method_from_card`.
TEST_PAYMENT_METHODS: dict[str, Behaviour] = {
    "pm_card_visa": _OK,
    "pm_card_mastercard": _OK,
    "pm_card_chargeDeclined": _GENERIC,
    "pm_card_chargeDeclinedInsufficientFunds": _FUNDS,
    **{f"pm_card_{number[-4:]}": b for number, b in TEST_CARDS.items()},
}


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """The result of one collection attempt; `amount` is what was actually charged (0 when nothing was)."""

    succeeded: bool
    decline_code: str | None = None
    message: str | None = None
    code: str | None = None  # Stripe error code: `card_declined` for declines
    amount: int = 0


class CardError(ApiError):
    """402 `card_error` (Stripe's answer to a declined `/pay`), carrying `decline_code`."""

    http_status = 402
    type = "card_error"

    def __init__(self, message: str, *, code: str | None = "card_declined", decline_code: str | None = None,
                 param: str | None = None):
        super().__init__(message, param=param, code=code)
        self.decline_code = decline_code

    def to_dict(self) -> dict:
        body = super().to_dict()
        if self.decline_code is not None:
            body["error"]["decline_code"] = self.decline_code
        return body


def _digits(number: str) -> str:
    return "".join(ch for ch in str(number) if ch not in " -")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def payment_method_from_card(number: str) -> str:
    """A deterministic test PaymentMethod id (`pm_card_4242`) for a Stripe test card number."""
    digits = _digits(number)
    if not (digits.isascii() and digits.isdigit()) or not 12 <= len(digits) <= 19 or not _luhn_ok(digits):
        raise CardError("Your card number is incorrect.", code="incorrect_number", param="number")
    if digits not in TEST_CARDS:
        raise CardError(LIVE_CARD_IN_TEST_MODE, decline_code="test_mode_live_card", param="number")
    return f"pm_card_{digits[-4:]}"


def is_known(payment_method: str) -> bool:
    """Whether `charge` recognises this payment method id."""
    return payment_method in TEST_PAYMENT_METHODS


def charge(payment_method: str | None, amount: int) -> PaymentOutcome:
    """Attempt to collect `amount` minor units from a test payment method."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"amount must be a non-negative int of minor units, got {amount!r}")
    if amount == 0:
        # An invoice that "doesn't require payment" is paid without a charge (reference §6.5).
        return PaymentOutcome(True)
    if payment_method is None:
        # No Stripe error code is documented for this case, so `code` stays None (no invented code on the wire).
        return PaymentOutcome(False, None, NO_PAYMENT_METHOD)
    behaviour = TEST_PAYMENT_METHODS.get(payment_method)
    if behaviour is None:
        raise ResourceMissing("PaymentMethod", payment_method, param="payment_method")
    if behaviour.decline_code is None:
        return PaymentOutcome(True, amount=amount)
    return PaymentOutcome(False, behaviour.decline_code, behaviour.message, "card_declined")


def card_error(outcome: PaymentOutcome) -> ApiError:
    """The Stripe error a failed outcome surfaces as: 402 card_error for declines, 400 without a payment method."""
    if outcome.succeeded:
        raise ValueError("a succeeded payment has no error")
    if outcome.decline_code is None:
        return InvalidRequest(outcome.message or NO_PAYMENT_METHOD, code=outcome.code)
    return CardError(outcome.message or GENERIC_DECLINE, decline_code=outcome.decline_code)
