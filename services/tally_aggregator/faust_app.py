"""The aggregator on Kafka: a faust-streaming app that folds `meter-events` into the usage projections.

The agent is a few lines: it takes batches of events (with their partition and offset) and hands them to
`UsageProjector.apply`, which does all the work in one PostgreSQL transaction per batch.

Exactly once rests on the offsets stored in PostgreSQL (`consumer_offsets`), not on Kafka:

* `UsageProjector.apply` writes the projection changes and the next offsets in the same transaction, and
  skips records below the stored offset (row locks on the offset rows serialise two workers that briefly
  both think they own a partition during a rebalance). So a redelivery after a rebalance, a crash or a
  restart counts nothing twice.
* Faust acks a `take_events` batch only after the agent body returns, so the offsets faust commits to
  Kafka never pass what PostgreSQL has applied. The agent never raises out of a batch: faust would ack
  the failed batch anyway and the stream would move on, so the next batch would carry the stored offset
  past records never applied. Instead it retries the transaction until it commits, with capped backoff
  (PostgreSQL restarting). A record the projector cannot fold is quarantined by `UsageProjector.apply`
  (the `dead_letters` table, and the `meter-events.dead-letters` topic through faust's producer) in the
  transaction that moves the stored offset past it, so it never stalls the partition.
* Seeking: done, with one private faust call. On every partition assignment the worker seeks to the
  offsets stored in PostgreSQL. faust sends `app.on_rebalance_complete` just before it seeks the assigned
  partitions to their committed Kafka offsets (`Consumer.perform_seek`); our handler commits the
  PostgreSQL positions as the group's Kafka offsets for the assigned partitions (with
  `Consumer._commit(offsets)`, the transport's commit of explicit offsets, so it carries the current
  group generation) and seeks there (`Consumer.seek`). Both are needed: `perform_seek` would undo a bare
  seek, and it does not seek at all where the committed offset is 0 (aiokafka's `seek_to_committed`
  skips 0). The database is the truth: after a crash the worker resumes where the projection stands, and
  after the usage projection is dropped (`truncate_usage`, offsets gone) it reads the topic again from
  offset 0 though Kafka's group offsets are at the end. If the handler fails (database down, another
  rebalance already started), faust resumes from Kafka's committed offsets, which never pass the stored
  ones, and the projector skips what it has already applied: still exactly once.

No tables, no changelog topics, no leader topic, no web server, in-memory store: faust creates no topic (the
`meter-events` topic is created up front with `create_topics`, as every other process does).

Against tansu (the test broker) faust works as is; two things to know. Tansu answers a JoinGroup only
after half the session timeout, so every (re)join takes `session_timeout / 2`: set
`TALLY_KAFKA_SESSION_TIMEOUT` (seconds, default 10; the tests use 6, Apache Kafka's minimum). And tansu
answers ListOffsets(latest) with the base offset of the last record batch + 1 instead of the high
watermark; faust does not depend on it (fetch responses carry the right high watermark).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faust

from tally_infra.db import create_pool
from tally_infra.embedded import resolve_database_url
from tally_infra.faults import Backoff
from tally_infra.logs.kafka_log import create_topics
from tally_infra.logs.ports import METER_EVENTS, METER_EVENTS_DEAD, TOPICS, LogRecord
from tally_infra.settings import Settings

from .store import SCHEMA as USAGE_SCHEMA, UsageProjector

log = logging.getLogger(__name__)


class _Projection:
    """The projector, created lazily on the worker's event loop and shared by the agent and the rebalance hook."""

    def __init__(self, database_url: str, group_id: str, sink=None):
        self.database_url = database_url
        self.group_id = group_id
        self.sink = sink
        self._projector: UsageProjector | None = None
        self._lock = asyncio.Lock()
        self._backoff = Backoff("applying meter-event records", log)

    async def get(self) -> UsageProjector:
        async with self._lock:
            if self._projector is None:
                pool = await create_pool(self.database_url, schemas=[USAGE_SCHEMA])
                self._projector = UsageProjector(pool, self.group_id, METER_EVENTS, sink=self.sink)
            return self._projector

    async def apply(self, records: list[LogRecord], keys: dict[tuple[int, int], bytes] | None = None) -> int:
        """Apply one batch, retrying until it commits: a batch must never be acked unapplied."""
        while True:
            try:
                done = await (await self.get()).apply(records, keys)
                self._backoff.reset()
                return done
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be restarting; the batch stays ours
                await self._backoff.wait(exc)

    async def close(self) -> None:
        """Close the pool when the agent stops; a transaction cut short rolls back (its offsets with it)."""
        projector, self._projector = self._projector, None
        if projector is not None:
            try:
                await asyncio.wait_for(projector.pool.close(), timeout=5)
            except asyncio.CancelledError:
                projector.pool.terminate()
                raise
            except Exception:  # noqa: BLE001 - shutting down: do not wait on a stuck connection
                projector.pool.terminate()


def create_app(settings: Settings, database_url: str, *, session_timeout: float = 10.0) -> faust.App:
    """The faust app: one agent over `meter-events`, consumer group = `settings.consumer_group`."""
    assert settings.kafka_bootstrap, "the faust aggregator needs TALLY_KAFKA_BOOTSTRAP"
    app = faust.App(
        settings.consumer_group,  # the app id is the Kafka consumer group
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str((settings.data_dir / "faust").resolve()),
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # tansu answers a JoinGroup after half the session timeout; Kafka's minimum (6 s) keeps rebalances short.
        broker_session_timeout=session_timeout,
        broker_heartbeat_interval=min(3.0, session_timeout / 6),
        broker_rebalance_timeout=max(30.0, session_timeout),
        stream_buffer_maxsize=max(4096, settings.aggregator_batch * 2),
        logging_config=None,
    )
    topic = app.topic(METER_EVENTS, key_type=bytes, value_type=bytes, key_serializer="raw",
                      value_serializer="raw", internal=False)

    async def dead_letter_sink(items: list[tuple[bytes, bytes]]) -> None:
        """Quarantined records to the dead-letter topic, acknowledged by the broker before the commit."""
        sent = [await app.producer.send(METER_EVENTS_DEAD, key=k, value=v, partition=None, timestamp=None,
                                        headers=None) for k, v in items]
        await asyncio.gather(*sent)

    projection = _Projection(database_url, settings.consumer_group, dead_letter_sink)

    @app.agent(topic, concurrency=1)
    async def aggregate(stream: faust.StreamT) -> None:
        try:
            async for events in stream.take_events(settings.aggregator_batch, within=0.2):
                records = [LogRecord(e.message.partition, e.message.offset, e.value) for e in events]
                keys = {(e.message.partition, e.message.offset): e.message.key for e in events
                        if isinstance(e.message.key, bytes)}
                await projection.apply(records, keys)
        finally:
            await projection.close()

    @app.on_rebalance_complete.connect
    async def seek_to_stored_offsets(sender: Any, **kwargs: Any) -> None:
        """Make the group's Kafka offsets the PostgreSQL ones; faust seeks to them right after this."""
        consumer = app.consumer
        assigned = {tp for tp in consumer.assignment() if tp.topic == METER_EVENTS}
        if not assigned:
            return
        try:
            stored = await (await projection.get()).positions()
            offsets = {tp: stored.get(tp.partition, 0) for tp in assigned}
            # `_commit` is the transport's commit of explicit offsets (faust's own `commit()` commits acks). Both
            # steps are needed: faust's `perform_seek` that follows would undo a bare seek, and it does not
            # seek at all where the committed offset is 0 (aiokafka's `seek_to_committed` skips 0).
            await consumer._commit(offsets)  # noqa: SLF001
            for tp, offset in offsets.items():
                await consumer.seek(tp, offset)
            log.info("seeking %s to stored offsets %s", METER_EVENTS, {tp.partition: o for tp, o in offsets.items()})
        except Exception:  # noqa: BLE001 - skipping by stored offsets still keeps exactly-once
            log.exception("could not seek to the stored offsets; relying on skipping by stored offsets")

    return app


def run_worker(settings: Settings) -> None:
    """Run the faust worker until SIGTERM/SIGINT (`tally aggregator` with TALLY_KAFKA_BOOTSTRAP set)."""
    database_url = resolve_database_url(settings.database_url, settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust keeps its (empty) datadir under it
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(create_topics(settings.kafka_bootstrap, {t: settings.partitions for t in TOPICS}))
    app = create_app(settings, database_url,
                     session_timeout=settings.kafka_session_timeout)
    worker = faust.Worker(app, loop=loop, loglevel=os.environ.get("TALLY_LOG_LEVEL", "WARNING"), quiet=True,
                          redirect_stdouts=False)
    worker.execute_from_commandline()
