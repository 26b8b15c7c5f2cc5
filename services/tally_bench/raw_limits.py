"""The raw limits each figure of `tally bench` stands beside: asyncpg COPY, aiokafka produce and consume, a
keyset SELECT with parsing — what the hardware and drivers give with no tally code in the way. Each is bounded
to 60 s. Also the in-process pre-fill of the Postgres log, the way ingest appends."""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tally_cli.database import open_pool
from tally_infra.logs.kafka_log import create_topics
from tally_infra.logs.ports import METER_EVENTS
from tally_infra.logs.postgres_log import PostgresLog

from .cpu import CpuMeter

RAW_SECONDS = 60.0
LOG_COLUMNS = ("topic", "partition", "offset", "key", "value")


async def raw_copy(url: str, n: int, size: int, cpu: CpuMeter) -> tuple[float, dict]:
    """asyncpg COPY of log_records-shaped rows (same primary key), 20,000 rows per COPY and commit."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("drop table if exists bench_raw_log; "
                           "create table bench_raw_log (like log_records including all)")
        key, value, per = b"acct_bench:cus_00001", b"x" * size, 20_000
        batches = [[("meter-events", (i // per) % 8, i, key, value) for i in range(s, min(n, s + per))]
                   for s in range(0, n, per)]
        snap, t0, done = cpu.snap(), perf_counter(), 0
        for rows in batches:
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw_log", records=rows, columns=LOG_COLUMNS)
            done += len(rows)
            if perf_counter() - t0 > RAW_SECONDS:
                break
        rate = done / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await conn.execute("drop table if exists bench_raw_log")
        await conn.close()


async def raw_produce(bootstrap: str, n: int, size: int, cpu: CpuMeter) -> tuple[float, dict]:
    """aiokafka create_batch/send_batch with KafkaLog's producer settings, ≤32 batches in flight."""
    await create_topics(bootstrap, {"bench-raw": 8})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=1 << 20,
                                max_request_size=8 << 20, enable_idempotence=False)
    await producer.start()
    try:
        key, value = b"acct_bench:cus_00001", b"x" * size
        inflight: deque = deque()
        snap, t0, sent, part = cpu.snap(), perf_counter(), 0, 0
        while sent < n and perf_counter() - t0 < RAW_SECONDS:
            batch = producer.create_batch()
            while sent < n and batch.append(key=key, value=value, timestamp=None) is not None:
                sent += 1
            inflight.append(await producer.send_batch(batch, "bench-raw", partition=part % 8))
            part += 1
            if len(inflight) >= 32:
                await inflight.popleft()
        await asyncio.gather(*inflight)
        rate = sent / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await producer.stop()


async def raw_kafka_consume(bootstrap: str, n: int, cpu: CpuMeter) -> tuple[float, dict]:
    """aiokafka getmany over every partition of meter-events (KafkaLog's consumer settings) + orjson.loads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_bytes=50 << 20, max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        known = consumer.partitions_for_topic(METER_EVENTS) or range(8)
        parts = [TopicPartition(METER_EVENTS, p) for p in sorted(known)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        n = min(n, sum((await consumer.end_offsets(parts)).values()))
        loads = orjson.loads
        snap, t0, got = cpu.snap(), perf_counter(), 0
        while got < n and perf_counter() - t0 < RAW_SECONDS:
            for msgs in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for m in msgs:
                    loads(m.value)
                got += len(msgs)
        rate = got / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await consumer.stop()


async def raw_pg_consume(url: str, n: int, cpu: CpuMeter) -> tuple[float, dict]:
    """Keyset pages of 10,000 log_records per partition + orjson.loads of every value."""
    conn = await asyncpg.connect(url)
    try:
        loads = orjson.loads
        snap, t0, got = cpu.snap(), perf_counter(), 0
        for part in range(8):
            off = 0
            while got < n and perf_counter() - t0 < RAW_SECONDS:
                rows = await conn.fetch('select "offset", value from log_records where topic = $1 and partition = $2 '
                                        'and "offset" >= $3 order by "offset" limit 10000', "meter-events", part, off)
                if not rows:
                    break
                for r in rows:
                    loads(r[1])
                got += len(rows)
                off = rows[-1][0] + 1
        rate = got / (perf_counter() - t0)
        return rate, cpu.since(snap)
    finally:
        await conn.close()


async def prefill_postgres(url: str, items: list[tuple[bytes, bytes]], cpu: CpuMeter) -> tuple[float, dict]:
    """Append records to the Postgres log the way ingest does (PostgresLog.append, 10,000 per call)."""
    pool = await open_pool(url)
    log = PostgresLog(pool, 8)
    try:
        snap, t0 = cpu.snap(), perf_counter()
        for s in range(0, len(items), 10_000):
            await log.append(METER_EVENTS, items[s:s + 10_000])
        return len(items) / (perf_counter() - t0), cpu.since(snap)
    finally:
        await log.close()
        await pool.close()
