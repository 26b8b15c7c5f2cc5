"""A seeded random workload of meter-event log records: duplicates, out-of-order timestamps, dimensions,
cancellations (some too late), several formulas and customers, receipts spread over three days."""

from __future__ import annotations

import random

from tally_core.meter_events import CANCELED, RECORDED

METERS = [("mtr_sum", "sum", "tokens", ("model", "region")), ("mtr_count", "count", "calls", ()),
          ("mtr_last", "last", "seats", ("plan",))]
DAY_MS = 86_400_000


def workload(n: int, *, account: str = "acct_w", seed: int = 7, start_s: int = 1_767_225_600,
             customers: int = 60) -> list[dict]:
    rng = random.Random(seed)
    received = start_s * 1000
    records: list[dict] = []
    sent: list[dict] = []
    for i in range(n):
        received += rng.randint(0, 2 * 3 * DAY_MS // n)  # ~3 days of receipts in all
        roll = rng.random()
        if roll < 0.04 and sent:  # a duplicate: same customer and identifier, maybe another value
            prior = rng.choice(sent[-5000:] if rng.random() < 0.8 else sent)
            records.append(dict(prior, received_at=received, value=str(rng.randint(1, 9))))
            continue
        if roll < 0.05 and sent:  # a cancellation, sometimes of an event older than 24 h
            prior = rng.choice(sent[-3000:] if rng.random() < 0.7 else sent)
            records.append({"type": CANCELED, "version": 1, "account": account, "event_name": prior["event_name"],
                            "customer": prior["customer"], "identifier": prior["identifier"],
                            "received_at": received})
            continue
        meter, formula, event_name, dims = rng.choice(METERS)
        now_s = received // 1000
        ts = now_s - rng.randint(0, 35 * 86400 if rng.random() < 0.1 else 7200)  # mostly recent, out of order
        value = rng.choice([str(rng.randint(0, 500)), f"{rng.randint(-50, 50)}.{rng.randint(0, 999):03d}",
                            str(rng.randint(1, 3))])
        dimensions = {d: rng.choice(["a", "b", "c"]) for d in dims}
        customer = f"cus_{rng.randint(1, customers)}"
        rec = {"type": RECORDED, "version": 1, "account": account, "meter": meter, "formula": formula,
               "event_name": event_name, "customer": customer, "value": value, "timestamp": ts,
               "identifier": f"id-{i}", "dimensions": dimensions,
               "payload": {"stripe_customer_id": customer, "value": value, **dimensions}, "received_at": received}
        records.append(rec)
        sent.append(rec)
    return records
