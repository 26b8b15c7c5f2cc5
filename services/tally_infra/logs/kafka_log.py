"""The distributed log: Apache Kafka through aiokafka (tansu in tests).

`append` waits for the broker's acknowledgement of every record before returning. Tansu has no idempotent
producer or transactions, so exactly-once comes from the consumer side (offsets stored with projections,
dedup by identifier), not from Kafka.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from .ports import BILLING_COMMANDS, CATALOG, METER_EVENTS, LogRecord

log = logging.getLogger(__name__)
CLOSE_TIMEOUT = 10.0  # seconds each client may take to stop (KafkaLog.close)


async def create_topics(bootstrap: str, topics: dict[str, int]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items() if t not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in new]
    finally:
        await admin.close()


class KafkaLog:
    """While the broker is unreachable aiokafka keeps a record queued and retries for `request_timeout_ms`
    (40 s), so a request would hang that long. Instead an append to a topic requests write (`REQUEST_TOPICS`)
    gives up after `append_timeout` seconds, and once one has failed (or `ping` has), every later append first
    asks the broker for metadata (bounded by `probe_timeout`) and fails at once while it does not answer.

    A record given up on may still be delivered when the broker returns: the caller was told to retry, and
    meter events are deduplicated by identifier. `billing-events` is never given up on early: its single writer,
    the billing worker, must know whether its events landed (its recovery reads them back), so it waits for
    aiokafka's own delivery timeout."""

    REQUEST_TOPICS = frozenset({METER_EVENTS, CATALOG, BILLING_COMMANDS})

    def __init__(self, bootstrap: str, partitions: int, *, append_timeout: float = 5.0, probe_timeout: float = 1.0):
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.append_timeout, self.probe_timeout = append_timeout, probe_timeout
        self._unreachable = False
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, list[int]] = {}
        self._partitioner = DefaultPartitioner()
        self._pollers: dict[str, tuple[AIOKafkaConsumer, dict[int, int]]] = {}
        self._ends_consumer: AIOKafkaConsumer | None = None
        self._ends_lock = asyncio.Lock()

    async def start(self) -> "KafkaLog":
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=2,
            max_batch_size=1 << 20, max_request_size=8 << 20, enable_idempotence=False,
        )
        await self._producer.start()
        return self

    async def ping(self) -> None:
        """Raises unless the broker answers a metadata request within `probe_timeout` (readiness, probes)."""
        assert self._producer is not None, "KafkaLog.start() first"
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), self.probe_timeout)
        except asyncio.TimeoutError:
            self._unreachable = True
            raise KafkaTimeoutError(f"the broker did not answer within {self.probe_timeout:g} s") from None
        except Exception:
            self._unreachable = True
            raise
        self._unreachable = False

    async def append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        assert self._producer is not None, "KafkaLog.start() first"
        if self._unreachable:
            try:
                await self.ping()
            except Exception as exc:
                raise KafkaConnectionError(f"the broker at {self.bootstrap} is unreachable") from exc
        bound = self.append_timeout if topic in self.REQUEST_TOPICS else None
        try:
            await asyncio.wait_for(self._append(topic, items), bound)
        except asyncio.TimeoutError:
            self._unreachable = True
            raise KafkaTimeoutError(f"the broker did not acknowledge within {self.append_timeout:g} s") from None
        except KafkaConnectionError:
            self._unreachable = True
            raise

    async def _append(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        assert self._producer is not None
        if len(items) == 1:
            await (await self._producer.send(topic, value=items[0][1], key=items[0][0]))
            return
        # Batches built per partition: aiokafka's per-record `send` path costs more than the broker does.
        # Keys are partitioned with Kafka's murmur2, exactly as `send` (and every other client) would.
        parts = self._partitions.get(topic)
        if parts is None:
            await self._producer.client.force_metadata_update()
            parts = self._partitions[topic] = sorted(self._producer.client.cluster.partitions_for_topic(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in items:
            by_partition.setdefault(self._partitioner(key, parts, parts), []).append((key, value))
        futures = []
        for partition, records in by_partition.items():
            batch = self._producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    async def _consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            fetch_max_bytes=50 << 20, max_partition_fetch_bytes=16 << 20,
        )
        await consumer.start()
        return consumer

    async def _ends(self, consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        """True end offsets, from the high watermark of a fetch.

        ListOffsets(latest) is not enough: tansu answers it with the last record batch's base offset + 1, which
        is short of the end whenever that batch holds more than one record. Fetch responses carry the right
        high watermark on every broker, so read one fetch per partition from just before the listed end.
        """
        listed = await consumer.end_offsets(parts)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        deadline = asyncio.get_running_loop().time() + 30
        while any(consumer.highwater(tp) is None for tp in parts):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no high watermark from the broker within 30 s")
            await consumer.getmany(*parts, timeout_ms=200, max_records=1)
        return {tp: max(listed[tp], consumer.highwater(tp)) for tp in parts}

    def _parts(self, consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or range(self.partitions))]

    async def end_offsets(self, topic: str) -> dict[int, int]:
        # One consumer kept for this: the billing worker asks before every usage read.
        async with self._ends_lock:
            if self._ends_consumer is None:
                self._ends_consumer = await self._consumer()
            consumer = self._ends_consumer
            ends = await self._ends(consumer, self._parts(consumer, topic))
            return {tp.partition: off for tp, off in ends.items()}

    async def scan(self, topic: str, start: dict[int, int] | None = None, batch: int = 10_000):
        consumer = await self._consumer()
        try:
            parts = self._parts(consumer, topic)
            ends = await self._ends(consumer, parts)
            for tp in parts:
                consumer.seek(tp, (start or {}).get(tp.partition, 0))
            remaining = {tp for tp in parts if (start or {}).get(tp.partition, 0) < ends[tp]}
            while remaining:
                got = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
                out = []
                for tp, msgs in got.items():
                    out.extend(LogRecord(tp.partition, m.offset, m.value) for m in msgs if m.offset < ends[tp])
                    if msgs and msgs[-1].offset + 1 >= ends[tp]:
                        remaining.discard(tp)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                if out:
                    yield out
        finally:
            await consumer.stop()

    def partition_of(self, key: bytes) -> int:
        parts = list(range(self.partitions))
        return self._partitioner(key, parts, parts)

    async def poll(self, topic: str, positions: dict[int, int], limit: int, timeout: float) -> list[LogRecord]:
        """A long-lived consumer per topic, re-seeked only when the caller's positions differ from its own."""
        if topic not in self._pollers:
            consumer = await self._consumer()
            consumer.assign([TopicPartition(topic, p) for p in positions])
            self._pollers[topic] = (consumer, {})
        consumer, at = self._pollers[topic]
        for p, off in positions.items():
            if at.get(p) != off:
                consumer.seek(TopicPartition(topic, p), off)
                at[p] = off
        got = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=limit * max(1, len(positions)))
        out = []
        for tp, msgs in got.items():
            # The port bounds each partition; aiokafka's max_records bounds the total, so one partition may
            # bring more than `limit`: the rest is read again by the next poll (seek back to it).
            kept = msgs[:limit]
            out.extend(LogRecord(tp.partition, m.offset, m.value) for m in kept)
            if kept:
                at[tp.partition] = kept[-1].offset + 1
                if len(msgs) > len(kept):
                    consumer.seek(tp, at[tp.partition])
        return out

    async def close(self) -> None:
        """Stop every client, each within CLOSE_TIMEOUT: a broker that stops answering (a LeaveGroup or a flush
        never acknowledged) must not hold a shutting-down process forever. Whatever a client had not sent by
        then was never acknowledged, so no caller was told it was written."""
        clients = [consumer for consumer, _ in self._pollers.values()]
        clients += [c for c in (self._ends_consumer, self._producer) if c is not None]
        self._pollers.clear()
        self._ends_consumer = self._producer = None
        for client in clients:
            try:
                await asyncio.wait_for(client.stop(), CLOSE_TIMEOUT)
            except (asyncio.TimeoutError, KafkaConnectionError) as exc:
                log.warning("a Kafka client did not stop cleanly within %.0f s: %r", CLOSE_TIMEOUT, exc)
