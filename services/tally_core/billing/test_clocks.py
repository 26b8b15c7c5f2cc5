"""Test clocks (`clock_`, reference §7): simulated time for the customers attached to them.

A clock and all its customers share one billing key, so an advance is one ordered record that moves every
subscription on the clock through the same time (ARCHITECTURE decision 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import invalid, missing
from . import params as p

DELETES_AFTER = 30 * 86_400  # "Auto-deleted 30 days after creation" (§7)
NO_SUBSCRIPTION_LIMIT = 2 * 366 * 86_400  # "it cannot be more than two years in the future" without subscriptions


@dataclass(frozen=True, slots=True)
class TestClock:
    __test__ = False  # not a pytest class

    id: str
    created: int
    frozen_time: int
    name: str | None = None
    status: str = "ready"  # advancing | ready
    target: int | None = None
    deleted: bool = False

    def to_stripe(self) -> dict:
        if self.deleted:
            return {"id": self.id, "object": "test_helpers.test_clock", "deleted": True}
        return {
            "id": self.id, "object": "test_helpers.test_clock", "created": self.created,
            "deletes_after": self.created + DELETES_AFTER, "frozen_time": self.frozen_time, "livemode": False,
            "name": self.name, "status": self.status,
            "status_details": {"advancing": {"target_frozen_time": self.target}} if self.status == "advancing" else {},
        }

    @classmethod
    def from_stripe(cls, obj: dict) -> "TestClock":
        if obj.get("deleted"):
            return cls(id=obj["id"], created=0, frozen_time=0, deleted=True)
        return cls(id=obj["id"], created=obj["created"], frozen_time=obj["frozen_time"], name=obj.get("name"),
                   status=obj["status"], target=(obj.get("status_details") or {}).get("advancing", {}).get(
                       "target_frozen_time"))


def create_test_clock(params: dict, *, id: str, now: int) -> TestClock:
    """The API edge's check of `POST /v1/test_helpers/test_clocks` (`frozen_time` may be in the past or the
    future); the worker builds the clock from the typed params (handlers/test_clocks.py)."""
    p.check_keys(params, {"frozen_time", "name", "expand"})
    if params.get("frozen_time") in (None, ""):
        raise missing("frozen_time")
    frozen = p.timestamp(params["frozen_time"], "frozen_time")
    name = p.string(params["name"], "name", max_len=300) if params.get("name") else None
    return TestClock(id=id, created=now, frozen_time=frozen, name=name)


def advance_target(clock: TestClock, target: int, *, max_step: int | None) -> int:
    """Check `POST …/advance` against the clock (its `frozen_time` is checked at the edge, edge.py): forward
    only, at most two of the shortest subscription's intervals at once.

    `max_step`: seconds covered by two intervals of the shortest subscription on the clock, None without any.
    """
    if clock.status == "advancing":
        raise invalid("frozen_time", "the test clock is still advancing; wait until its status is `ready`.")
    if target <= clock.frozen_time:
        raise invalid("frozen_time", f"must be after the test clock's current frozen time ({clock.frozen_time}).")
    limit = NO_SUBSCRIPTION_LIMIT if max_step is None else max_step
    if target - clock.frozen_time > limit:
        what = "two intervals of the shortest subscription on this test clock" if max_step else "two years"
        raise invalid("frozen_time", f"cannot be more than {what} in the future "
                                     f"(at most {clock.frozen_time + limit}).")
    return target
