"""One metadata rule for every object (tally_core/metadata.py), Stripe's: keys merge, an empty value unsets that
key, `metadata=""` unsets all (reference §9). Worked examples, then the limits."""

from __future__ import annotations

import pytest

from tally_core import metadata
from tally_core.errors import InvalidRequest

OLD = {"plan": "pro", "region": "eu"}


@pytest.mark.parametrize(("raw", "merged"), [
    pytest.param({"team": "ml"}, {"plan": "pro", "region": "eu", "team": "ml"}, id="a-new-key-is-added"),
    pytest.param({"plan": "team"}, {"plan": "team", "region": "eu"}, id="a-named-key-is-replaced"),
    pytest.param({"region": ""}, {"plan": "pro"}, id="an-empty-value-unsets-that-key"),
    pytest.param({"region": "", "team": "ml"}, {"plan": "pro", "team": "ml"}, id="unset-one-set-another"),
    pytest.param({"nope": ""}, OLD, id="unsetting-a-missing-key-changes-nothing"),
    pytest.param("", {}, id="metadata-empty-unsets-all"),
    pytest.param({}, OLD, id="an-empty-hash-changes-nothing"),
])
def test_merge(raw, merged):
    assert metadata.merge(OLD, raw) == merged


@pytest.mark.parametrize(("raw", "checked"), [
    pytest.param({"plan": "pro"}, {"plan": "pro"}, id="kept"),
    pytest.param({"plan": "pro", "x": ""}, {"plan": "pro"}, id="an-empty-value-sets-nothing-on-create"),
    pytest.param("", {}, id="metadata-empty-is-none"),
    pytest.param(None, {}, id="absent"),
])
def test_check(raw, checked):
    assert metadata.check(raw) == checked


@pytest.mark.parametrize(("raw", "param"), [
    pytest.param({"k" * 41: "v"}, "metadata[" + "k" * 41 + "]", id="key-41-characters"),
    pytest.param({"k": "v" * 501}, "metadata[k]", id="value-501-characters"),
    pytest.param({f"k{i}": "v" for i in range(51)}, "metadata", id="51-keys"),
    pytest.param({"a[b": "v"}, "metadata[a[b]", id="bracket-in-key"),
    pytest.param({"": "v"}, "metadata", id="empty-key"),
    pytest.param({"k": {"nested": "v"}}, "metadata[k]", id="value-not-a-string"),
    pytest.param("x", "metadata", id="not-a-hash"),
])
def test_limits_name_the_param(raw, param):
    with pytest.raises(InvalidRequest) as err:
        metadata.check(raw)
    assert err.value.param == param
    with pytest.raises(InvalidRequest):
        metadata.merge({}, raw)


def test_limits_are_inclusive_and_apply_to_the_merged_result():
    full = {f"k{i}": "v" * 500 for i in range(49)} | {"k" * 40: "v"}
    assert metadata.check(full) == full
    with pytest.raises(InvalidRequest) as err:
        metadata.merge(full, {"one_more": "v"})  # 51 keys after the merge
    assert err.value.param == "metadata"
    assert len(metadata.merge(full, {"one_more": "v", "k0": ""})) == 50  # one out, one in
