"""A bounded schemathesis run over `/openapi.json` against a real `tally run`: no 5xx, every answer in the shape
the document promises, and no request slower than a timeout.

Each operation gets schemathesis' coverage phase (every parameter at and just past its declared bounds, lengths,
enums and types: deterministic), then random positive examples (valid by its contract) and negative ones (broken
on purpose), once with generated path ids and once with the id of a real object of this account, so that
handlers run past their lookups. The random part is bounded by `TALLY_FUZZ_EXAMPLES` per operation and mode
(default 10) and repeatable from `TALLY_FUZZ_SEED`; every finding is listed with its request before the test
fails. After the run, a new customer and a new meter event must still be decided and aggregated.
`TALLY_FUZZ_STRICT=1` adds schemathesis' negative-data-rejection and unsupported-method checks (noisier: query
values are strings on the wire), to find parameters a handler accepts without reading.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import adjust_urlencoded_payload
from schemathesis.specs.openapi.checks import (
    negative_data_rejection, response_schema_conformance, unsupported_method,
)

EXAMPLES = int(os.environ.get("TALLY_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("TALLY_FUZZ_SEED", "7"))
TIMEOUT_S = 5.0
CHECKS = [not_a_server_error, response_schema_conformance]
if os.environ.get("TALLY_FUZZ_STRICT"):
    # Also: data the contract calls invalid gets a 4xx, and an undeclared method a 405 with `Allow`.
    CHECKS += [negative_data_rejection, unsupported_method]
# The stream's NDJSON body is declared as one string (lines of JSON): sent as it is, like text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _seed_objects(c: httpx.Client) -> dict[str, str]:
    """One object of each kind the paths name, so that `{id}` can be a real one."""

    def post(path: str, **data) -> dict:
        r = c.post(path, data=data)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    meter = post("/v1/billing/meters", display_name="Tokens", event_name="fuzz_tokens",
                 **{"default_aggregation[formula]": "sum"})
    product = post("/v1/products", name="Fuzz")
    price = post("/v1/prices", product=product["id"], currency="usd", unit_amount="1000",
                 **{"recurring[interval]": "month"})
    clock = post("/v1/test_helpers/test_clocks", frozen_time=str(int(time.time())))
    customer = post("/v1/customers", name="Fuzz", test_clock=clock["id"])
    sub = post("/v1/subscriptions", customer=customer["id"], **{"items[0][price]": price["id"]})
    events = c.get("/v1/events").json()["data"]
    return {"/v1/billing/meters/": meter["id"], "/v1/products/": product["id"], "/v1/prices/": price["id"],
            "/v1/customers/": customer["id"], "/v1/subscriptions/": sub["id"],
            "/v1/invoices/": sub["latest_invoice"], "/v1/test_helpers/test_clocks/": clock["id"],
            "/v1/subscription_items/": sub["items"]["data"][0]["id"],
            "/v1/events/": events[0]["id"] if events else "evt_none"}


def _still_bills_and_aggregates(c: httpx.Client) -> None:
    """After the run, a healthy request is decided and a new event aggregated as usual: nothing the fuzzer
    sent stopped the billing worker or the aggregator. (A fresh meter: the run may have deactivated its own.)"""
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/customers", data={"name": "After the fuzz"}).status_code == 200
    r = c.post("/v1/billing/meters", data={"display_name": "After", "event_name": "after_the_fuzz",
                                           "default_aggregation[formula]": "sum"})
    assert r.status_code == 200, r.text
    meter = r.json()["id"]
    now = int(time.time())
    r = c.post("/v1/billing/meter_events", data={"event_name": "after_the_fuzz", "timestamp": str(now),
                                                 "payload[stripe_customer_id]": "cus_after", "payload[value]": "5"})
    assert r.status_code == 200, r.text
    query = {"customer": "cus_after", "start_time": now // 60 * 60, "end_time": now // 60 * 60 + 60}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data = c.get(f"/v1/billing/meters/{meter}/event_summaries", params=query).json()["data"]
        if data and data[0]["aggregated_value"] == 5:
            return
        time.sleep(0.2)
    raise AssertionError(f"the event after the fuzz run was not aggregated: {data}")


def _real_id(path: str, ids: dict[str, str]) -> str | None:
    return next((v for prefix, v in ids.items() if path.startswith(prefix) and "{id}" in path), None)


def _repro(case, response) -> str:
    request = response.request if response is not None else None
    body = request.body if request is not None else case.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "backslashreplace")
    url = request.url if request is not None else case.formatted_path
    status = response.status_code if response is not None else "no answer"
    text = response.text[:300] if response is not None else ""
    return f"{case.method} {url}\n  content-type: {case.media_type}\n  body: {str(body)[:2000]}\n  -> {status} {text}"


class Run:
    """Sends cases to the server and keeps what a finding needs: its request and the answer."""

    def __init__(self, base: str, key: str):
        self.base, self.headers = base, {"Authorization": f"Bearer {key}"}
        self.session = requests.Session()
        self.sent: Counter = Counter()
        self.statuses: Counter = Counter()
        self.findings: dict[tuple, str] = {}

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def send(self, case) -> None:
        label = case.operation.label
        self.sent[label] += 1
        try:
            response = case.call(base_url=self.base, session=self.session, headers=self.headers, timeout=TIMEOUT_S)
        except requests.Timeout:
            self.findings.setdefault((label, "hang"), _repro(case, None) + f" (no answer in {TIMEOUT_S}s)")
            return
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failed check is a finding
            kind = "server error" if response.status_code >= 500 else type(exc).__name__
            self.findings.setdefault((label, kind), _repro(case, response) + f"\n  {str(exc)[:300]}")

    def coverage(self, schema, operation, real_id: str | None) -> None:
        """Schemathesis' coverage phase: each parameter at and just past its bounds, lengths, enums and types."""
        config = schema.config.generation_for(operation=operation)
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        for case in schema.iter_coverage_cases(operation, generation_modes=modes, generation_config=config):
            adjust_urlencoded_payload(case)
            if real_id is not None:
                case.path_parameters = {**(case.path_parameters or {}), "id": real_id}
            self.send(case)

    def fuzz(self, operation, mode, path_parameters) -> None:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @seed(SEED)
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=strategy)
        def run(case) -> None:
            self.send(case)

        run()


def test_schemathesis_finds_no_server_errors_schema_violations_or_hangs(server, capsys):
    base, key = server
    # Every connection is closed before the server stops, so that no keep-alive connection delays its exit.
    with httpx.Client(base_url=base, auth=(key, ""), timeout=30) as client, Run(base, key) as run:
        ids = _seed_objects(client)
        schema = schemathesis.openapi.from_url(base + "/openapi.json", timeout=30)
        started = time.monotonic()
        for result in schema.get_all_operations():
            operation = result.ok()
            real = _real_id(operation.path, ids)
            run.coverage(schema, operation, real)
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                run.fuzz(operation, mode, None)
                if real is not None:
                    run.fuzz(operation, mode, {"id": real})
        elapsed = time.monotonic() - started
        with capsys.disabled():
            print(f"\nschemathesis: {sum(run.sent.values())} requests over {len(run.sent)} operations in "
                  f"{elapsed:.0f}s (coverage phase + seed {SEED}, {EXAMPLES} examples per operation and mode); "
                  f"statuses {dict(sorted(run.statuses.items()))}; {len(run.findings)} findings")
        _still_bills_and_aggregates(client)
    assert len(run.sent) >= 40, run.sent
    assert run.statuses[200] > len(run.sent), run.statuses  # the run gets past validation, not only refused
    assert not run.findings, "\n\n".join(f"[{label}: {kind}]\n{text}"
                                         for (label, kind), text in sorted(run.findings.items()))


@pytest.mark.parametrize(("path", "kwargs", "param"), [
    # A digit as a top-level form name once turned the whole body into a list (500 ValueError).
    ("/v1/customers", {"content": b"0=null", "headers": {"content-type": "application/x-www-form-urlencoded"}}, "0"),
    # A non-string cancel identifier once reached a database lookup (500 DataError / TypeError).
    ("/v1/billing/meter_event_adjustments",
     {"json": {"type": "cancel", "event_name": "tokens", "cancel": {"identifier": 5}}}, "cancel[identifier]"),
    ("/v2/billing/meter_event_adjustments",
     {"json": {"type": "cancel", "event_name": "tokens", "cancel": {"identifier": ["a"]}}}, "cancel[identifier]"),
], ids=["digit-form-name", "v1-cancel-int-identifier", "v2-cancel-list-identifier"])
async def test_what_the_fuzzer_found_is_a_400_naming_the_parameter(client, path, kwargs, param):
    await client.post("/v1/billing/meters", data={"display_name": "T", "event_name": "tokens",
                                                  "default_aggregation[formula]": "sum"})
    r = await client.post(path, **kwargs)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
