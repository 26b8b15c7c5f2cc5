"""The machinery of tests/tally_api/test_every_parameter.py: the world each trial starts from, the entries
of the walk (`E`, `REFUSED`, `reflects`, ...), and the walker that sends every parameter of a route."""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

from tally_api.contracts import CONTRACTS
from tests.factories import send_event

NOW = 1_767_225_600  # the FakeClock's start, 2026-01-01T00:00:00Z
HOUR = 3600
_serial = itertools.count(1)


def unique(prefix: str) -> Callable:
    return lambda w: f"{prefix}_{next(_serial)}"


AUTO, SKIP = object(), object()


@dataclass
class E:
    """One parameter's walk: `value` (or a function of the world), `sees(answer, value, world)` true when its
    effect is visible; `refused`: tally refuses it (4xx naming it) even with a plausible value."""

    value: Any = None
    sees: Callable | None = None
    refused: bool = False
    bad: Any = AUTO
    extra: dict = field(default_factory=dict)  # other params the trial needs (functions of the world allowed)
    without: tuple = ()  # base params this trial leaves out
    also: dict = field(default_factory=dict)  # the enum's other values → their own E (its `value` unused)
    status: int = 200  # what a valid value answers (402: the card was declined, as asked)


REFUSED = lambda value, **kw: E(value, refused=True, **kw)  # noqa: E731
EXPAND, PAGE = E(), E()  # walked generically (see the module docstring)


def reflects(field_: str, expect=None) -> Callable:
    """The answer's `field_` (dotted path) equals the value sent (or `expect`)."""
    def sees(obj, value, w):
        got = obj
        for part in field_.split("."):
            got = got[int(part)] if isinstance(got, list) else got[part]
        return got == (value if expect is None else expect)
    return sees


def every(pred: Callable) -> Callable:
    """A list filter: the page is not empty and every object on it satisfies `pred(obj, value)`."""
    return lambda obj, value, w: bool(obj["data"]) and all(pred(x, value) for x in obj["data"])


def only(pred: Callable) -> Callable:
    """A list filter for a value the world may hold no object of: whatever is listed satisfies `pred`."""
    return lambda obj, value, w: all(pred(x, value) for x in obj["data"])


def day_of(ts: int) -> int:
    return datetime.fromtimestamp(ts, timezone.utc).day


# --- the world each trial starts from ----------------------------------------------------------------------

class World:
    def __init__(self, api: httpx.AsyncClient, clock=None):
        self.api, self.clock_ = api, clock  # the runtime's FakeClock
        self.cache: dict[str, Any] = {}

    async def post(self, path: str, params: dict) -> dict:
        r = await self.api.post(path, data=form(params))
        assert r.status_code == 200, (path, params, r.text)
        return r.json()

    async def once(self, name: str, make: Callable) -> Any:
        if name not in self.cache:
            self.cache[name] = await make()
        return self.cache[name]

    async def meter(self) -> dict:
        return await self.once("meter", lambda: self.new_meter("walk_tokens", dimension_payload_keys=["region"]))

    async def new_meter(self, event_name: str | None = None, **extra) -> dict:
        return await self.post("/v1/billing/meters", {
            "display_name": "Walk", "event_name": event_name or unique("walk")(self),
            "default_aggregation": {"formula": "sum"}, **extra})

    async def inactive_meter(self) -> dict:
        meter = await self.new_meter()
        return await self.post(f"/v1/billing/meters/{meter['id']}/deactivate", {})

    async def product(self) -> dict:
        return await self.once("product", lambda: self.new_product())

    async def new_product(self, **extra) -> dict:
        return await self.post("/v1/products", {"name": "Walk", **extra})

    async def price(self, name: str = "price", **extra) -> dict:
        async def make():
            params = {"currency": "usd", "unit_amount": 1000, "product": (await self.product())["id"],
                      "recurring": {"interval": "month"}, **extra}
            return await self.post("/v1/prices", {k: v for k, v in params.items() if v is not None})
        return await self.once(name, make)

    async def customer(self, **extra) -> dict:
        return await self.post("/v1/customers", {"name": "Walk", "email": unique("walk")(self) + "@example.com",
                                                 **extra})

    async def clock(self, frozen_time: int = NOW) -> dict:
        return await self.post("/v1/test_helpers/test_clocks", {"frozen_time": frozen_time, "name": "walk"})

    async def subscription(self, customer: dict | None = None, **extra) -> dict:
        customer = customer or await self.customer(payment_method="pm_card_visa")
        items = extra.pop("items", None) or [{"price": (await self.price())["id"]}]
        return await self.post("/v1/subscriptions", {"customer": customer["id"], "items": items, **extra})

    async def two_line_invoice(self) -> str:
        async def make():
            second = await self.price("price2", unit_amount=500)
            sub = await self.subscription(items=[{"price": (await self.price())["id"]}, {"price": second["id"]}])
            return sub["latest_invoice"]
        return await self.once("two_line_invoice", make)

    async def open_invoice(self) -> str:
        """A first invoice whose card was declined: open, the subscription incomplete."""
        sub = await self.subscription(await self.customer(payment_method="pm_card_chargeDeclined"))
        return sub["latest_invoice"]

    async def draft_invoice(self) -> str:
        """A renewal invoice in its grace period: a clock moved just past the first period's end."""
        clock = await self.clock()
        sub = await self.subscription(await self.customer(test_clock=clock["id"], payment_method="pm_card_visa"))
        await self.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
                        {"frozen_time": sub["current_period_end"] + 60})
        await self.ready(clock["id"])
        listed = (await self.api.get("/v1/invoices", params={"subscription": sub["id"], "status": "draft"})).json()
        return listed["data"][0]["id"]

    async def ready(self, clock_id: str) -> None:
        for _ in range(200):
            r = (await self.api.get(f"/v1/test_helpers/test_clocks/{clock_id}")).json()
            if r["status"] == "ready":
                return
        raise AssertionError(f"clock {clock_id} never ready")

    async def usage(self) -> dict:
        """Events on the shared meter: cus_walk 10 (eu) and 5 (us) in the first hour, 7 (eu) in the second."""
        async def make():
            meter = await self.meter()
            t0 = NOW - 3 * HOUR
            for value, region, at in (("10", "eu", t0 + 60), ("5", "us", t0 + 120), ("7", "eu", t0 + HOUR + 60)):
                r = await send_event(self.api, customer="cus_walk", value=value, event_name="walk_tokens",
                                     region=region, timestamp=str(at))
                assert r.status_code == 200, r.text
            await send_event(self.api, customer="cus_other", value="100", event_name="walk_tokens", region="eu",
                             timestamp=str(t0 + 60))
            for _ in range(200):  # the aggregator runs in-process: wait until it has counted all four
                s = (await self.api.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params={
                    "customer": "cus_other", "start_time": t0, "end_time": t0 + 2 * HOUR})).json()
                mine = (await self.api.get(f"/v1/billing/meters/{meter['id']}/event_summaries", params={
                    "customer": "cus_walk", "start_time": t0, "end_time": t0 + 2 * HOUR})).json()
                if s["data"][0]["aggregated_value"] == 100 and mine["data"][0]["aggregated_value"] == 22:
                    return {"meter": meter, "t0": t0}
            raise AssertionError("usage never aggregated")
        return await self.once("usage", make)


def form(params: dict, prefix: str = "") -> dict:
    """Stripe's form encoding: nested hashes as `a[b]`, lists as `a[0]`, booleans as `true`/`false`."""
    out: dict = {}
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out.update(form(value, name) if value else {name: ""})
        elif isinstance(value, list):
            out.update(form(dict(enumerate(value)), name))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out


# --- what each route is walked on ------------------------------------------------------------------------------

@dataclass
class Walk:
    target: Callable | None = None  # async (world) -> the `{id}` of the path (or {name: id} for several)
    base: Callable | None = None  # async (world) -> the params every trial of this route sends
    params: dict = field(default_factory=dict)
    expand_extra: dict = field(default_factory=dict)  # what an expansion needs to have something to expand
    expand_without: tuple = ()


def wrong_value(schema: dict) -> Any:
    """An obviously wrong value for `schema`: outside its enum, its type, or its length."""
    if "enum" in schema:
        return "bogus"
    kind = schema.get("type")
    if kind in ("integer", "number"):
        return "not-a-number"
    if kind == "boolean":
        return "maybe"
    if kind == "string":
        return "x" * (schema.get("maxLength", 5000) + 1) if "pattern" not in schema else "not-a-decimal"
    if kind == "object":
        return "not-a-hash"
    if kind == "array":
        return [{"not": "a string"}] if schema.get("x-tally-single") else "not-an-array"
    return "not-a-valid-value"


async def _resolve(value, w):
    value = value(w) if callable(value) else value
    return await value if inspect.isawaitable(value) else value


_DROP = object()  # a base parameter a trial leaves out


async def _send(w: World, method: str, path: str, params: dict) -> httpx.Response:
    params = {k: v for k, v in params.items() if v is not _DROP}
    data = form(params)
    if method == "GET":
        return await w.api.get(path, params=data)
    if method == "DELETE":
        return await w.api.request("DELETE", path, params=data)
    if path.startswith("/v2/"):
        return await w.api.post(path, json=params)
    return await w.api.post(path, data=data)


def _expanded(obj: dict, field_: str) -> bool:
    """`x` is an object, not an id; `data.x` on a list: every item's `x` that is set, and at least one."""
    if not field_.startswith("data."):
        return isinstance(obj.get(field_), (dict, list))
    held = [x.get(field_[5:]) for x in obj.get("data", []) if x.get(field_[5:]) is not None]
    return bool(held) and all(isinstance(x, (dict, list)) for x in held)


def _names(r: httpx.Response, param: str) -> bool:
    err = r.json().get("error", {})
    named = err.get("param") or ""
    return 400 <= r.status_code < 500 and (named == param or named.startswith(param + "["))


async def walk_route(w: World, method: str, path: str, walk: Walk, all_problems: list[str]) -> None:
    contract = CONTRACTS[(method, path)]

    async def target() -> str:
        if not walk.target:
            return path
        # A path with several ids (`…/{id}/balance_transactions/{transaction}`): the target names each one.
        got = await walk.target(w)
        concrete = path
        for name, value in (got if isinstance(got, dict) else {"id": got}).items():
            concrete = concrete.replace("{" + name + "}", value)
        return concrete

    async def trial(params: dict, concrete: str | None = None) -> tuple[httpx.Response, str]:
        concrete = concrete or await target()
        base = await walk.base(w) if walk.base else {}
        return await _send(w, method, concrete, {**base, **params}), concrete

    async def one(name: str, entry: E, problems: list[str]) -> None:
        where = f"{method} {path} {name}"
        if entry is EXPAND:
            allowed = contract.params["expand"]["items"].get("enum", [])
            extra = {k: await _resolve(v, w) for k, v in walk.expand_extra.items()}
            extra.update({k: _DROP for k in walk.expand_without})
            for field_ in allowed:
                r, _ = await trial({**extra, "expand": [field_]})
                if not (r.status_code == 200 and _expanded(r.json(), field_)):
                    problems.append(f"{where}={field_}: not expanded ({r.status_code} {r.text[:200]})")
            r, _ = await trial({"expand": ["not_expandable"]})
            if not _names(r, "expand"):
                problems.append(f"{where}=not_expandable: {r.status_code} {r.text[:200]}")
            return
        if entry is PAGE:
            await _page(name, problems)
            return
        await attempt(name, entry.value, entry, problems)
        for value, alternative in entry.also.items():
            await attempt(name, value, alternative, problems)
        base_extra = {k: await _resolve(v, w) for k, v in entry.extra.items()}
        if entry.bad is SKIP:
            return
        bad = wrong_value(contract.params[name]) if entry.bad is AUTO else entry.bad
        r, _ = await trial({**base_extra, name: bad, **{k: _DROP for k in entry.without}})
        if not _names(r, name):
            problems.append(f"{where}={bad!r} (wrong): expected a 4xx naming {name}, got {r.status_code} "
                            f"{r.text[:200]}")

    async def attempt(name: str, value, entry: E, problems: list[str]) -> None:
        """One plausible value: its effect shows, or (`refused`) a 4xx names the parameter."""
        where = f"{method} {path} {name}"
        concrete = w.cache["path"] = await target()  # first: a value may name what the target made
        value = await _resolve(value, w)
        base_extra = {k: await _resolve(v, w) for k, v in entry.extra.items()}
        r, _ = await trial({**base_extra, name: value, **{k: _DROP for k in entry.without}}, concrete)
        if entry.refused:
            if not _names(r, name):
                problems.append(f"{where}={value!r}: should be refused naming it, got {r.status_code} "
                                f"{r.text[:200]}")
        elif r.status_code != entry.status:
            problems.append(f"{where}={value!r}: {r.status_code} {r.text[:300]}")
        elif not await _resolve(lambda _w: entry.sees(r.json(), value, w), w):
            problems.append(f"{where}={value!r}: {r.status_code} but its effect does not show: {r.text[:300]}")

    async def _page(name: str, problems: list[str]) -> None:
        where = f"{method} {path} {name}"
        extra = {"value_grouping_window": "hour"} if path.endswith("event_summaries") else {}
        full, _ = await trial(extra)
        data = full.json()["data"]
        ids = [x["id"] for x in data]
        if len(ids) < 2:
            problems.append(f"{where}: the world has fewer than two objects to page: {full.text[:200]}")
            return
        if name == "limit":
            r, _ = await trial({**extra, "limit": 1})
            ok = r.status_code == 200 and [x["id"] for x in r.json()["data"]] == ids[:1] and r.json()["has_more"]
            bad = "0"
        elif name == "starting_after":
            r, _ = await trial({**extra, "starting_after": ids[0]})
            ok = r.status_code == 200 and [x["id"] for x in r.json()["data"]][:1] == ids[1:2]
            bad = "obj_not_in_this_list"
        else:
            r, _ = await trial({**extra, "ending_before": ids[1]})
            ok = r.status_code == 200 and [x["id"] for x in r.json()["data"]] == ids[:1]
            bad = "obj_not_in_this_list"
        if not ok:
            problems.append(f"{where}: does not page: {r.status_code} {r.text[:300]}")
        r, _ = await trial({**extra, name: bad})
        if not _names(r, name):
            problems.append(f"{where}={bad!r} (wrong): {r.status_code} {r.text[:200]}")

    for name, entry in walk.params.items():
        found: list[str] = []
        try:
            await one(name, entry, found)
        except Exception as exc:  # noqa: BLE001 - every route is walked; the failures are listed together
            found.append(f"{method} {path} {name}: the walk itself failed: {type(exc).__name__}: {exc}")
        all_problems.extend(found)


