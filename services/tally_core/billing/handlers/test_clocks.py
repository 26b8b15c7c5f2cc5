"""`test_clock.create`, `test_clock.advance`, `test_clock.delete` (reference §7)."""

from __future__ import annotations

from dataclasses import replace

from ...errors import InvalidRequest, ResourceMissing
from ..advance import advance
from ..context import Run
from ..periods import add_interval
from ..subscriptions import ENDED
from ..test_clocks import TestClock, advance_target
from .customers import delete_customer


def clock_create(run: Run, now: int) -> dict:
    if run.book.clock is not None:
        raise InvalidRequest(f"Test clock {run.book.clock.id} already exists.")
    clock = TestClock(id=run.command.object_id, created=now, frozen_time=run.params.frozen_time,
                      name=run.params.name or None)
    run.emit("test_helpers.test_clock.created", clock.to_stripe(), now)
    return clock.to_stripe()


def _live_clock(run: Run) -> TestClock:
    clock = run.book.clock
    if clock is None or clock.deleted or clock.id != run.command.object_id:
        raise ResourceMissing("test_helpers.test_clock", run.command.object_id, param="id")
    return clock


def _max_step(run: Run, now: int) -> int | None:
    """Seconds in two intervals of the clock's shortest live subscription (Stripe's advance limit, §7)."""
    steps = [add_interval(now, *sub.interval, 2) - now for sub in run.book.subscriptions.values()
             if sub.status not in ENDED]
    return min(steps) if steps else None


def clock_advance(run: Run, now: int) -> dict:
    clock = _live_clock(run)
    target = advance_target(clock, run.params.frozen_time, max_step=_max_step(run, clock.frozen_time))
    moving = replace(clock, status="advancing", target=target)
    run.emit("test_helpers.test_clock.advancing", moving.to_stripe(), target)
    run.caused = False  # what the advance sets off is time's doing, as in Stripe (events with request null)
    advance(run, target)
    run.caused = True
    run.emit("test_helpers.test_clock.ready", replace(clock, frozen_time=target).to_stripe(), target)
    return moving.to_stripe()


def clock_delete(run: Run, now: int) -> dict:
    clock = _live_clock(run)
    # "deleting a clock deletes its customers and cancels their subscriptions" (§7).
    for cus_id in sorted(run.book.customers):
        if not run.book.customers[cus_id].deleted:
            delete_customer(run, run.book.customers[cus_id], now)
    run.emit("test_helpers.test_clock.deleted", clock.to_stripe(), now)
    return run.book.clock.to_stripe()
