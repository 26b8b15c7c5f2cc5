"""The billing projections' read side: pages that never skip or repeat an object."""

from __future__ import annotations

import orjson

from tally_billing.queries import list_page
from tally_cli.database import open_pool


async def test_events_of_one_second_on_several_partitions_page_each_once(db_url):
    # Offsets are per partition: three events of the same second, all at offset 0 of their partition, tie on
    # (created, log_offset); only (created, partition, log_offset) orders them.
    pool = await open_pool(db_url)
    try:
        rows = [("acct_1", f"evt_{p}{o}", "customer.created", 100 + (o > 0), p, o,
                 orjson.dumps({"id": f"evt_{p}{o}"}).decode()) for p in range(3) for o in range(2)]
        await pool.executemany("insert into billing_events values ($1, $2, $3, $4, $5, $6, $7)", rows)
        seen, after = [], None
        while True:
            page, more, found = await list_page(pool, "billing_events", "acct_1", {}, limit=1, after=after,
                                                before=None)
            assert found
            seen += [o["id"] for o in page]
            if not more:
                break
            after = page[-1]["id"]
        assert seen == ["evt_21", "evt_11", "evt_01", "evt_20", "evt_10", "evt_00"]  # newest first
        back, before = [], seen[-1]
        while before:
            page, more, _ = await list_page(pool, "billing_events", "acct_1", {}, limit=2, after=None,
                                            before=before)
            back = [o["id"] for o in page] + back
            before = page[0]["id"] if more else None
        assert back == seen[:-1]
    finally:
        await pool.close()
