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


@pytest.mark.parametrize("body, expected", [
    ("x[00]=1", {"x": {"00": "1"}}),
    ("x[²]=1", {"x": {"²": "1"}}),
    ("metadata[٠]=1", {"metadata": {"٠": "1"}}),
    ("x[1]=a&x[0]=b", {"x": ["b", "a"]}),
    ("x[0]=a&x[2]=b", {"x": {"0": "a", "2": "b"}}),
    ("x[]=a&x[][b]=1", {"x": ["a", {"b": "1"}]}),
    ("x[0]=a&x[]=b", {"x": ["a", "b"]}),
    ("a+b=c+d&e=%2B", {"a b": "c d", "e": "+"}),
    ("name=%EF%BF%BD", {"name": "\ufffd"}),
    ("&&a=1&", {"a": "1"}),
    ("flag", {"flag": ""}),
], ids=["leading-zero-stays-a-key", "superscript-stays-a-key", "arabic-digit-stays-a-key", "any-order",
        "gap-stays-a-hash", "append-after-append", "append-after-index", "plus-is-space", "real-fffd-is-text",
        "empty-pairs", "no-equals"])
def test_only_ascii_indexes_0_to_n_make_a_list(body, expected):
    assert parse_form(body) == expected


@pytest.mark.parametrize("body, param", [
    (b"x[5]=a&x[][b]=1", "x[][b]"),
    (b"x[a]=1&x[]=2", "x[]"),
    (b"name=%ff%fe", "name"),
    (b"name=\xc3\x28", "name"),
    (b"name=%ed%a0%80", "name"),  # an encoded lone surrogate is not UTF-8 either
], ids=["index-then-append", "name-then-append", "percent-invalid-utf8", "raw-invalid-utf8", "encoded-surrogate"])
def test_refused_forms_name_the_key(body, param):
    with pytest.raises(InvalidRequest) as err:
        parse_form(body)
    assert err.value.param == param


def test_an_undecodable_key_is_refused_not_repaired():
    with pytest.raises(InvalidRequest) as err:
        parse_form(b"na%ffme=1")
    assert err.value.http_status == 400 and "UTF-8" in err.value.message
