import pytest

from tally_core.errors import InvalidRequest
from tally_core.forms import parse_form


@pytest.mark.parametrize("body, expected", [
    ("a=1", {"a": "1"}),
    ("customer_mapping[type]=by_id&customer_mapping[event_payload_key]=cid",
     {"customer_mapping": {"type": "by_id", "event_payload_key": "cid"}}),
    ("items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3",
     {"items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}]}),
    ("expand[]=customer&expand[]=invoice", {"expand": ["customer", "invoice"]}),
    ("metadata[key]=", {"metadata": {"key": ""}}),
    ("payload[stripe_customer_id]=cus_1&payload[value]=25",
     {"payload": {"stripe_customer_id": "cus_1", "value": "25"}}),
    ("payload%5Bvalue%5D=2.5", {"payload": {"value": "2.5"}}),
], ids=["flat", "nested", "indexed-array", "empty-brackets-array", "empty-value", "meter-event", "escaped-brackets"])
def test_parse_form(body, expected):
    assert parse_form(body) == expected


@pytest.mark.parametrize("body", ["a=1&a[b]=2", "a[b]=2&a=1", "a]b=1", "a" + "[x]" * 9 + "=1"],
                         ids=["scalar-then-hash", "hash-then-scalar", "bad-bracket", "too-deep"])
def test_malformed_forms_name_the_parameter(body):
    with pytest.raises(InvalidRequest) as err:
        parse_form(body)
    assert err.value.param
