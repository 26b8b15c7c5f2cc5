"""What the API's and ingest's handlers reach through `ctx.services`: each part only where the process runs it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from tally_billing.clock_times import ClockTimes
from tally_catalog.catalog import Catalog
from tally_edge.context import Edge
from tally_infra.logs.ports import EventLog
from tally_infra.settings import Settings
from tally_ingest.ingestor import Ingestor

from .billing_gateway import BillingGateway


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    log: EventLog
    catalog: Catalog
    edge: Edge
    billing: BillingGateway | None = None      # api: appends billing commands, waits for their results
    ingestor: Ingestor | None = None           # ingest
    session_secret: bytes = b""                # ingest: v2 meter event sessions
    clock_times: ClockTimes | None = None      # ingest: a test clock customer's "now"; api keeps it current
