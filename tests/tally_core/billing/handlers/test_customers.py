"""`customer.update` merges metadata by Stripe's one rule (reference §9), as every other object does."""

from __future__ import annotations

import pytest

from ..test_decide import Clocked


@pytest.mark.parametrize(("raw", "metadata"), [
    pytest.param({"team": "ml"}, {"tier": "gold", "region": "eu", "team": "ml"}, id="keys-merge"),
    pytest.param({"tier": ""}, {"region": "eu"}, id="empty-value-unsets-the-key"),
    pytest.param("", {}, id="metadata-empty-unsets-all"),
])
def test_update_merges_metadata(raw, metadata):
    c = Clocked()
    c.send("customer.create", "cus_1", {"test_clock": "clock_1", "metadata": {"tier": "gold", "region": "eu"}})
    updated = c.send("customer.update", "cus_1", {"metadata": raw, "name": "Jenny"})
    assert updated["metadata"] == metadata and updated["name"] == "Jenny"
    # previous_attributes carries the whole old metadata, as Stripe's does for a changed hash
    event = c.events[-1]
    assert event["data"]["previous_attributes"]["metadata"] == {"tier": "gold", "region": "eu"}
