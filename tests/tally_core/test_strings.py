"""The edge's rules for strings and numbers (`tally_core.strings`), and the typed bounds built on them."""

import pytest

from tally_core.billing import params as p
from tally_core.errors import InvalidRequest
from tally_core.strings import INT64_MAX, INT64_MIN, MAX_DEPTH, MAX_ID, MAX_STRING, check_params, check_path_params


@pytest.mark.parametrize("params, param", [
    ({"name": "a\x00b"}, "name"),
    ({"name": "bell\x07"}, "name"),
    ({"name": "esc\x1b[0m"}, "name"),
    ({"name": "lone \ud800 surrogate"}, "name"),
    ({"metadata": {"k\x00": "v"}}, "metadata[k\x00]"),
    ({"payload": {"stripe_customer_id": "x\x00"}}, "payload[stripe_customer_id]"),
    ({"items": [{"price": "p"}, {"price": "p\x01"}]}, "items[1][price]"),
    ({"description": "d" * (MAX_STRING + 1)}, "description"),
    ({"customer": "c" * (MAX_ID + 1)}, "customer"),
    ({"items": [{"price": "p" * (MAX_ID + 1)}]}, "items[0][price]"),
    ({"balance": INT64_MAX + 1}, "balance"),
    ({"balance": INT64_MIN - 1}, "balance"),
    ({"items": [{"quantity": 2**70}]}, "items[0][quantity]"),
    ({"value": float("inf")}, "value"),
    ({"value": float("nan")}, "value"),
], ids=["nul", "bell", "escape", "lone-surrogate", "nul-in-a-key", "nul-in-payload", "nested-list",
        "5001-chars", "long-id", "long-nested-id", "int64-max+1", "int64-min-1", "2**70", "inf", "nan"])
def test_refused_values_are_named_by_their_bracketed_path(params, param):
    with pytest.raises(InvalidRequest) as err:
        check_params(params)
    assert err.value.param == param and err.value.http_status == 400


def test_allowed_text_and_numbers_pass_unchanged():
    params = {"description": "tab\tnewline\ncr\r, emoji 🦙, U+FFFD \ufffd", "balance": INT64_MIN, "q": INT64_MAX,
              "ratio": 0.5, "flag": True, "none": None, "metadata": {"customer": "x" * 500},
              "customer": "c" * MAX_ID, "payload": {"id": "y" * 400}}
    assert check_params(params) is params


def test_nesting_is_bounded_without_recursion():
    deep: dict = {"x": "leaf"}
    for _ in range(10_000):  # far past Python's recursion limit: the walk is iterative and stops at MAX_DEPTH
        deep = {"a": deep}
    with pytest.raises(InvalidRequest) as err:
        check_params({"metadata": deep})
    assert err.value.param == "metadata" + "[a]" * MAX_DEPTH
    check_params({"events": [{"a": {"b": "c"}}]}, skip=frozenset({"events"}))
    with pytest.raises(InvalidRequest):
        check_params({"events": [deep]}, skip=frozenset({"events"}))


def test_a_batch_prefix_names_the_event():
    with pytest.raises(InvalidRequest) as err:
        check_params({"payload": {"v": "\x00"}}, prefix="events[3]")
    assert err.value.param == "events[3][payload][v]"


def test_path_ids():
    assert check_path_params({"id": "cus_123"}) == {"id": "cus_123"}
    for bad in ("cus_\x01", "c" * 256):
        with pytest.raises(InvalidRequest) as err:
            check_path_params({"id": bad})
        assert err.value.param == "id"


@pytest.mark.parametrize("raw, ok", [
    ("0", True), ("253402300799", True), (253402300799, True), ("-1", False), ("253402300800", False),
    ("9300000000000000000", False), ("100000000000000000000", False), ("9" * 5000, False), ("٣", False),
    ("１", False), ("²", False), (1.0, False), (True, False), ("0x10", False), (" 1", False),
], ids=lambda v: repr(v)[:20])
def test_timestamps_are_1970_to_9999_in_ascii_digits(raw, ok):
    if ok:
        assert p.timestamp(raw, "frozen_time") == int(raw)
    else:
        with pytest.raises(InvalidRequest) as err:
            p.timestamp(raw, "frozen_time")
        assert err.value.param == "frozen_time" and err.value.code == "parameter_invalid_integer"


def test_integers_default_to_int64_and_amounts_to_stripes_bounds():
    assert p.integer(str(INT64_MAX), "n") == INT64_MAX and p.integer(str(INT64_MIN), "n") == INT64_MIN
    assert p.integer("-0000000000000000000000001", "n") == -1  # leading zeros are digits, not magnitude
    for raw in (str(INT64_MAX + 1), str(INT64_MIN - 1), "1" * 30):
        with pytest.raises(InvalidRequest):
            p.integer(raw, "n")
    assert p.amount("99999999", "unit_amount") == 99_999_999
    assert str(p.decimal_amount("99999999.999999999999", "unit_amount_decimal")) == "99999999.999999999999"
    assert p.quantity("1000000000", "quantity") == 1_000_000_000
    assert p.balance("-99999999999") == -99_999_999_999
    for call in (lambda: p.amount("100000000", "unit_amount"), lambda: p.decimal_amount("100000000", "d"),
                 lambda: p.quantity("1000000001", "quantity"), lambda: p.quantity("-1", "quantity"),
                 lambda: p.balance("100000000000"), lambda: p.decimal_amount("١", "d")):
        with pytest.raises(InvalidRequest):
            call()
    # The bounds keep every derived total in int64: unit amount × quantity × 20 items.
    assert p.MAX_UNIT_AMOUNT * p.MAX_QUANTITY * 20 + p.MAX_BALANCE < INT64_MAX
