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


async def test_an_item_is_found_in_the_subscription_holding_it_now(db_url):
    # /v1/subscription_items/{id}: the item lives inside its subscription's object (jsonb containment).
    from tally_billing.queries import locate_item

    def sub(account, sub_id, *items):
        data = {"id": sub_id, "items": {"object": "list", "data": [{"id": i, "quantity": 1} for i in items]}}
        return (account, sub_id, f"{account}:cus_1", "cus_1", "active", None, 100, orjson.dumps(data).decode())

    pool = await open_pool(db_url)
    try:
        await pool.executemany("insert into billing_subscriptions (account, id, key, customer, status, test_clock, "
                               "created, data) values ($1, $2, $3, $4, $5, $6, $7, $8)",
                               [sub("acct_1", "sub_a", "si_1", "si_2"), sub("acct_1", "sub_b", "si_3"),
                                sub("acct_2", "sub_c", "si_4")])
        found = await locate_item(pool, "acct_1", "si_2")
        assert (found[0]["id"], found[1]) == ("sub_a", "acct_1:cus_1")
        assert await locate_item(pool, "acct_1", "si_4") is None  # another account's
        assert await locate_item(pool, "acct_1", "si_") is None  # ids match whole, never as a prefix
    finally:
        await pool.close()
