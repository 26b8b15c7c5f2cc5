"""Closing the Kafka log never hangs on a broker that stops answering (a CI run once hung in a teardown, the
event loop idle, its clients' connections to the broker still open)."""

from __future__ import annotations

import asyncio
import time

from tally_infra.logs import kafka_log
from tally_infra.logs.kafka_log import KafkaLog


class Silent:
    """A client whose stop() waits for an answer that never comes."""

    def __init__(self):
        self.asked = False

    async def stop(self):
        self.asked = True
        await asyncio.Event().wait()


class Polite:
    def __init__(self):
        self.stopped = False

    async def stop(self):
        self.stopped = True


async def test_a_client_that_never_stops_is_left_behind_and_the_others_still_stop(monkeypatch):
    monkeypatch.setattr(kafka_log, "CLOSE_TIMEOUT", 0.2)
    log = KafkaLog("127.0.0.1:9", 4)
    silent, ends, producer = Silent(), Polite(), Polite()
    log._pollers = {"meter-events": (silent, {})}
    log._ends_consumer, log._producer = ends, producer
    started = time.monotonic()
    await asyncio.wait_for(log.close(), 5)  # without the bound, close would wait forever
    assert time.monotonic() - started < 2
    assert silent.asked and ends.stopped and producer.stopped
    assert log._producer is None and log._ends_consumer is None and not log._pollers
