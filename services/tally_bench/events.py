"""The load `tally bench` sends: request bodies as the Stripe SDKs send them, and meter-event log records
exactly as ingest writes them (for the in-process aggregation phases and the raw limits' record size)."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone

from tally_core.codec import encode
from tally_core.meter_events import partition_key, validate_event
from tally_core.meters import create_meter
from tally_infra.local import HOST

from .http_client import build_request

EVENT = "bench_tokens"
CUSTOMERS = 1000
STREAM_EVENTS, NDJSON_LINES = 100, 5000


class Events:
    """Request bodies as the Stripe SDKs send them; every event gets a unique identifier."""

    def __init__(self, port: int, key: str, token: str, run: str):
        self.hostport, self.key, self.token, self.run = f"{HOST}:{port}", key, token, run
        self.seq = itertools.count()
        self._iso = (0, "")

    def iso(self) -> str:
        now = int(time.time())
        if self._iso[0] != now:
            self._iso = (now, datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        return self._iso[1]

    def line(self, customer: str | None = None) -> str:
        n = next(self.seq)
        return ('{"event_name":"%s","payload":{"stripe_customer_id":"%s","value":"1"},"identifier":"%s-%d",'
                '"timestamp":"%s"}' % (EVENT, customer or f"cus_{n % CUSTOMERS:05d}", self.run, n, self.iso()))

    def single(self, _i: int) -> tuple[bytes, int]:
        n = next(self.seq)
        body = (f"event_name={EVENT}&identifier={self.run}-{n}&payload%5Bstripe_customer_id%5D=cus_{n % CUSTOMERS:05d}"
                f"&payload%5Bvalue%5D=1&timestamp={int(time.time())}").encode()
        return build_request("POST", "/v1/billing/meter_events", self.hostport, auth=self.key, body=body,
                             ctype="application/x-www-form-urlencoded",
                             headers={"Idempotency-Key": f"{self.run}-k{n}", "Stripe-Version": "2025-03-31.basil",
                                      "User-Agent": "Stripe/v1 PythonBindings/12.0.0"}), 1

    def stream(self, _i: int, marker: str | None = None) -> tuple[bytes, int]:
        lines = [self.line() for _ in range(STREAM_EVENTS - (marker is not None))]
        if marker:
            lines.append(self.line(marker))
        body = ('{"events":[' + ",".join(lines) + "]}").encode()
        return build_request("POST", "/v2/billing/meter_event_stream", self.hostport, auth=self.token, body=body,
                             ctype="application/json"), STREAM_EVENTS

    def ndjson(self, _i: int) -> tuple[bytes, int]:
        body = "\n".join(self.line() for _ in range(NDJSON_LINES)).encode()
        return build_request("POST", "/v2/billing/meter_event_stream", self.hostport, auth=self.token, body=body,
                             ctype="application/x-ndjson"), NDJSON_LINES

    def healthz(self, _i: int) -> tuple[bytes, int]:
        return build_request("GET", "/healthz", self.hostport), 1


def make_records(run: str, n: int) -> list[tuple[bytes, bytes]]:
    """Meter-event log records exactly as ingest writes them (validate_event + the codec)."""
    now = time.time()
    meter = create_meter({"display_name": "Bench", "event_name": EVENT, "default_aggregation": {"formula": "sum"}},
                         id="mtr_bench", account="acct_bench", now=int(now))
    out = []
    for i in range(n):
        raw = {"event_name": EVENT, "identifier": f"{run}-pre-{i}", "timestamp": int(now) - i % 600,
               "payload": {"stripe_customer_id": f"cus_{i % CUSTOMERS:05d}", "value": "1"}}
        r = validate_event(raw, account="acct_bench", meters=lambda _n: meter, now_s=int(now),
                           received_ms=int(now * 1000), default_identifier="x")
        out.append((partition_key(r), encode(r)))
    return out
