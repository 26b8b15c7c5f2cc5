"""One catalog, one versioning rule: a refresh that began before a save never undoes it, for meters, products
and prices alike; and what one process saves, another loads."""

from __future__ import annotations

from tally_catalog.catalog import Catalog, _Objects
from tally_cli.database import open_pool
from tally_core.billing.prices import create_price
from tally_core.billing.products import create_product
from tally_core.meters import create_meter
from tally_infra.logs.memory_log import MemoryLog
from tally_infra.logs.ports import CATALOG

ACCT = "acct_1"


def test_a_load_keeps_what_was_written_after_it_began():
    objects: _Objects[str] = _Objects()
    objects.put((ACCT, "a"), "a@1", write=1)
    objects.put((ACCT, "b"), "b@2", write=2)
    objects.put((ACCT, "c"), None, write=3)  # deleted after the load began
    # the load began after write 1: it read "a" (newer than its cache), missed "b", and still saw "c"
    objects.replace({(ACCT, "a"): "a@1", (ACCT, "c"): "c@0"}, since=1)
    assert objects.items == {(ACCT, "a"): "a@1", (ACCT, "b"): "b@2"}
    # a later load that began after every write takes the tables as they are
    objects.replace({(ACCT, "a"): "a@1"}, since=3)
    assert objects.items == {(ACCT, "a"): "a@1"}


async def test_what_one_process_saves_another_loads(db_url):
    pool = await open_pool(db_url)
    log = MemoryLog(2)
    try:
        writer = Catalog(pool, log)
        await writer.load()
        meter = create_meter({"display_name": "Tokens", "event_name": "tokens",
                              "default_aggregation": {"formula": "sum"}}, id="mtr_1", account=ACCT, now=10)
        await writer.save_meter("billing.meter.created", meter, "evt_1")
        product = create_product({"name": "API"}, id="prod_1", account=ACCT, now=11)
        await writer.save_product("product.created", product, "evt_2")
        price = create_price({"product": "prod_1", "currency": "usd", "unit_amount": "5"}, id="price_1", now=12)
        await writer.save_price("price.created", price, ACCT, "evt_3")

        reader = Catalog(pool, log)
        await reader.load()
        assert reader.meter(ACCT, "mtr_1") == writer.meter(ACCT, "mtr_1")
        assert reader.meter_by_event_name(ACCT, "tokens").id == "mtr_1"
        assert [p.id for p in reader.products(ACCT)] == ["prod_1"]
        assert reader.price(ACCT, "price_1").to_stripe()["unit_amount"] == 5
        assert reader.meters("acct_other") == []
        # every change went to the catalog log first, in order
        ends = await log.end_offsets(CATALOG)
        assert sum(ends.values()) == 3
    finally:
        await pool.close()
