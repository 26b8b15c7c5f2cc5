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

    @property
    def log_backend(self) -> str:
        return "kafka" if self.kafka_bootstrap else "postgres"
