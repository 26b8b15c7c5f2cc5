"""Settings for every process, read once from the environment (prefix TALLY_) in `__main__`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore")

    database_url: str | None = None  # unset: start embedded PostgreSQL in data_dir
    data_dir: Path = Path(".tally-data")
    kafka_bootstrap: str | None = None  # unset: the log lives in PostgreSQL tables
    partitions: int = 8
    host: str = "127.0.0.1"
    port: int = 8080
    consumer_group: str = "tally-aggregator"
    ingest_cache_size: int = 2_000_000  # identifiers kept per ingest process for early duplicate reports
    max_body_bytes: int = 8 * 1024 * 1024
    aggregator_batch: int = 5000
    kafka_session_timeout: float = 10.0  # tansu answers JoinGroup after half of it, so keep it short in tests
    invoice_grace_seconds: int = Field(3600, ge=0, le=72 * 3600)  # cycle invoices stay draft this long (≤ 72 h)
    billing_batch: int = 1000       # billing commands decided per transaction
    billing_tick_seconds: float = 1.0  # how often the worker checks whether a renewal or retry is due
    # Outages: how long before a request gives up on a dependency (answered 503 service_unavailable).
    db_connect_timeout: float = 2.0    # a new PostgreSQL connection (asyncpg's default is 60 s)
    db_command_timeout: float = 60.0   # one statement; 0: no bound
    log_append_timeout: float = 5.0    # Kafka: the broker's acknowledgement of an append
    billing_wait_seconds: float = 60.0  # a billing call waiting for the worker's decision
    unhealthy_wait_seconds: float = 2.0  # the same wait once readiness knows a dependency to be down
    stall_seconds: float = 15.0        # records waiting and no progress this long: the worker is not ready

    @property
    def log_backend(self) -> str:
        return "kafka" if self.kafka_bootstrap else "postgres"
