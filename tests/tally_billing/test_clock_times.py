"""ClockTimes: which customers are on a test clock and what time that clock shows, for ingest."""

import asyncio

import asyncpg

from tally_billing.clock_times import ClockTimes

T0 = 1_767_225_600


def test_a_customer_is_at_its_clocks_time():
    times = ClockTimes()
    times.set_clock_time("acct_1", "clock_a", T0)
    times.set_customer_clock("acct_1", "cus_1", "clock_a")
    assert times.now_for("acct_1", "cus_1") == T0
    # not on a clock, another account, or an unknown customer: no clock time
    assert times.now_for("acct_1", "cus_2") is None
    assert times.now_for("acct_2", "cus_1") is None


def test_advancing_a_clock_moves_all_its_customers():
    times = ClockTimes()
    times.set_customer_clock("acct_1", "cus_1", "clock_a")  # attached before the time is known
    assert times.now_for("acct_1", "cus_1") is None
    times.set_customer_clock("acct_1", "cus_2", "clock_a")
    times.set_clock_time("acct_1", "clock_a", T0)
    times.set_clock_time("acct_1", "clock_a", T0 + 86400)
    assert times.now_for("acct_1", "cus_1") == times.now_for("acct_1", "cus_2") == T0 + 86400
    # a same-named clock in another account is another clock
    times.set_clock_time("acct_2", "clock_a", 5)
    assert times.now_for("acct_1", "cus_1") == T0 + 86400


def test_moving_and_forgetting():
    times = ClockTimes()
    times.set_clock_time("acct_1", "clock_a", T0)
    times.set_clock_time("acct_1", "clock_b", T0 + 10)
    times.set_customer_clock("acct_1", "cus_1", "clock_a")
    times.set_customer_clock("acct_1", "cus_2", "clock_a")
    # a customer moved to another clock follows that one only
    times.set_customer_clock("acct_1", "cus_1", "clock_b")
    times.set_clock_time("acct_1", "clock_a", T0 + 99)
    assert times.now_for("acct_1", "cus_1") == T0 + 10 and times.now_for("acct_1", "cus_2") == T0 + 99
    # a forgotten customer is on no clock
    times.forget_customer("acct_1", "cus_2")
    assert times.now_for("acct_1", "cus_2") is None
    times.set_clock_time("acct_1", "clock_a", T0 + 200)
    assert times.now_for("acct_1", "cus_2") is None
    # a forgotten clock takes its customers off it
    times.forget_clock("acct_1", "clock_b")
    assert times.now_for("acct_1", "cus_1") is None
    times.set_clock_time("acct_1", "clock_b", T0)
    assert times.now_for("acct_1", "cus_1") is None
    times.forget_customer("acct_1", "nobody")  # forgetting the unknown is harmless
    times.forget_clock("acct_1", "nothing")


async def test_load_reads_the_tables_and_tolerates_their_absence(db_url):
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    try:
        # given no tables yet: the map is empty (and what was there is replaced)
        times = ClockTimes()
        times.set_clock_time("acct_1", "stale", T0)
        times.set_customer_clock("acct_1", "cus_stale", "stale")
        await times.load(pool)
        assert times.now_for("acct_1", "cus_stale") is None

        # given the tables, as the billing side creates them, with clocks and customers
        await pool.execute("""
            create table billing_customers (account text not null, id text not null, test_clock text null,
                                            data jsonb, primary key (account, id));
            create table test_clocks (account text not null, id text not null, frozen_time bigint not null,
                                      status text, primary key (account, id));
            insert into test_clocks values ('acct_1', 'clock_a', 1767225600, 'ready'),
                                           ('acct_1', 'clock_b', 1800000000, 'ready'),
                                           ('acct_2', 'clock_a', 1700000000, 'ready');
            insert into billing_customers values ('acct_1', 'cus_1', 'clock_a', null),
                                                 ('acct_1', 'cus_2', 'clock_b', null),
                                                 ('acct_1', 'cus_plain', null, null),
                                                 ('acct_2', 'cus_1', 'clock_a', null);
        """)
        # when loaded
        await times.load(pool)
        # then each customer on a clock is at its clock's time, the others on none
        assert times.now_for("acct_1", "cus_1") == T0
        assert times.now_for("acct_1", "cus_2") == 1_800_000_000
        assert times.now_for("acct_2", "cus_1") == 1_700_000_000
        assert times.now_for("acct_1", "cus_plain") is None
        assert times.now_for("acct_1", "cus_stale") is None
        # and the loaded clocks keep following later changes
        times.set_clock_time("acct_1", "clock_b", 1_800_086_400)
        assert times.now_for("acct_1", "cus_2") == 1_800_086_400

        # a change made while a load is reading is not undone by the older rows it read
        async with pool.acquire() as blocker:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("lock table test_clocks in access exclusive mode")  # the load's read waits
            loading = asyncio.ensure_future(times.load(pool))
            await asyncio.sleep(0.2)
            times.set_clock_time("acct_1", "clock_a", T0 + 3600)  # advanced in memory while the load waits
            await tx.rollback()
            await loading
        assert times.now_for("acct_1", "cus_1") == T0 + 3600
    finally:
        await pool.close()
