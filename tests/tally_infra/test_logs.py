"""One contract for the log port, run against both backends: what is appended is read back, in order."""

import uuid

import pytest

from tally_infra.db import create_pool
from tally_infra.logs.kafka_log import KafkaLog, create_topics
from tally_infra.logs.postgres_log import PostgresLog


class LogContract:
    """Subclasses provide a `log_and_topic` fixture for their backend."""

    async def test_appended_records_are_read_back_in_order_per_key(self, log_and_topic):
        log, topic = log_and_topic
        try:
            # given multi-record appends (batches), then single ones
            for n in (50, 60, 1, 1):
                await log.append(topic, [(f"cus_{i % 7}".encode(), f"{n}-{i}".encode()) for i in range(n)])
            # when the topic is scanned
            ends = await log.end_offsets(topic)
            records = [r async for batch in log.scan(topic, batch=13) for r in batch]
            # then everything is there, each partition in offset order, each key on one partition
            assert sum(ends.values()) == len(records) == 112
            for p in ends:
                offsets = [r.offset for r in records if r.partition == p]
                assert offsets == list(range(ends[p]))
            # and a scan from a position returns only what follows it
            later = [r async for batch in log.scan(topic, start=dict(ends)) for r in batch]
            assert later == []
        finally:
            await log.close()


class TestPostgresLog(LogContract):
    @pytest.fixture
    async def log_and_topic(self, db_url):
        pool = await create_pool(db_url)
        yield PostgresLog(pool, 4), "contract"
        await pool.close()


@pytest.mark.kafka
class TestKafkaLog(LogContract):
    @pytest.fixture
    async def log_and_topic(self, kafka_bootstrap):
        topic = "contract-" + uuid.uuid4().hex[:8]
        await create_topics(kafka_bootstrap, {topic: 4})
        return await KafkaLog(kafka_bootstrap, 4).start(), topic
