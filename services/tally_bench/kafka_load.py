"""Kafka: `tally serve api+ingest` with TALLY_KAFKA_BOOTSTRAP on the bench's tansu broker (the HTTP phases
beside the raw produce limit), then aggregation and replay of the meter-events topic in-process."""

from __future__ import annotations

from tally_infra.logs.kafka_log import KafkaLog
from tally_infra.logs.ports import METER_EVENTS

from .aggregation import measure_drain, measure_replay
from .http_load import CONNS_SINGLE, http_phases, make_account, setup_api
from .raw_limits import raw_kafka_consume, raw_produce
from .report import Row, console
from .session import Bench


async def kafka_backend(bench: Bench) -> None:
    console.rule("Kafka: `tally serve api+ingest` with TALLY_KAFKA_BOOTSTRAP (tansu)")
    raw = await raw_produce(bench.infra.bootstrap, bench.sz.raw_records, bench.record_size, bench.cpu)
    bench.add(Row("raw limit: aiokafka send_batch produce (acks=all)", raw[0], "msg/s", cpu=raw[1],
                  note=f"{bench.sz.raw_records:,} × {bench.record_size} B over 8 partitions"))
    url = await bench.new_database("kafka")
    key = await make_account(url)
    srv = bench.server("kafka", ["serve", "api+ingest"], url, kafka_bootstrap=bench.infra.bootstrap)
    await srv.start()
    bench.cpu.track("server", srv.proc.pid)
    try:
        ev, _ = await setup_api(bench, srv, key)
        trivial, cpu = await bench.load(srv, ev.healthz, CONNS_SINGLE)
        bench.add(Row("trivial endpoint GET /healthz [kafka server]", trivial.req_rate, "req/s", cpu=cpu,
                      note=f"{CONNS_SINGLE} connections"))
        await http_phases(bench, srv, ev, "kafka", trivial.req_rate, raw=raw[0], raw_what="raw produce",
                          batch_target=100_000, batch_ratio=0.5)
    finally:
        await srv.stop()
        bench.cpu.track("server", None)
    bench.notes.append("Kafka lag is not measured: the Kafka aggregator (faust) is a separate process not started "
                       "here; Kafka aggregation below drains the topic with KafkaLog.scan + UsageProjector.apply "
                       "in-process, the code the faust agent calls.")
    console.rule("aggregation and replay on Kafka (in-process: KafkaLog.scan + UsageProjector.apply)")
    log = await KafkaLog(bench.infra.bootstrap, 8).start()
    try:
        total = sum((await log.end_offsets(METER_EVENTS)).values())
        n = min(total, bench.sz.agg_events)
        raw_c = await raw_kafka_consume(bench.infra.bootstrap, n, bench.cpu)
        bench.add(Row("raw limit: aiokafka consume + orjson.loads", raw_c[0], "rec/s", cpu=raw_c[1],
                      note=f"first {n:,} of {total:,} records in meter-events"))
        for figure, fn in ((f"aggregation: drain pre-filled meter-events topic ({n:,})", measure_drain),
                           (f"replay_usage on Kafka (first {n:,} records)", measure_replay)):
            rate, cpu, _sql, check, profile = await fn(url, log, n, bench.cpu,
                                                       profile_if_below=(100_000, 0.5 * raw_c[0]),
                                                       profile_cap=n // 3)
            bench.add(Row(figure, rate, "ev/s", raw_c[0], "raw consume + parse", 100_000, 0.5, cpu=cpu, note=check))
            if profile:
                bench.profiles[figure] = _sql + [""] + profile
    finally:
        await log.close()
