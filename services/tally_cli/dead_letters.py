"""`tally dead-letters`: the records workers quarantined (list, count) and replaying them once fixed."""

from __future__ import annotations

import asyncio

import typer

from tally_infra.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


async def _pool(settings: Settings):
    from tally_infra.embedded import resolve_database_url

    from .database import open_pool as create_pool

    return await create_pool(resolve_database_url(settings.database_url, settings.data_dir))


def _preview(value: bytes, width: int = 160) -> str:
    text = value[:width].decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text + ("…" if len(value) > width else "")


@app.command("list")
def list_cmd(topic: str | None = typer.Option(None, help="only this topic (meter-events, billing-events, "
                                                          "billing-commands)"),
             consumer: str | None = typer.Option(None, help="only this consumer group"),
             limit: int = typer.Option(100, min=1, help="at most this many records")) -> None:
    """Quarantined records in log order: where they were, why, and the start of their value."""
    from tally_infra.dead_letters import list_dead_letters

    async def main() -> None:
        pool = await _pool(Settings())
        try:
            for d in await list_dead_letters(pool, consumer=consumer, topic=topic, limit=limit):
                print(f"{d.consumer} {d.topic}[{d.partition}]@{d.offset}  {d.error}\n    {_preview(d.value)}")
        finally:
            await pool.close()

    asyncio.run(main())


@app.command()
def count(topic: str | None = typer.Option(None, help="only this topic"),
          consumer: str | None = typer.Option(None, help="only this consumer group")) -> None:
    """How many records are quarantined, per consumer and topic (prints 0 when none)."""
    from tally_infra.dead_letters import count_dead_letters

    async def main() -> None:
        pool = await _pool(Settings())
        try:
            counts = await count_dead_letters(pool, consumer=consumer, topic=topic)
        finally:
            await pool.close()
        for (c, t), n in counts.items():
            print(f"{c} {t} {n}")
        print(f"total {sum(counts.values())}")

    asyncio.run(main())


@app.command()
def replay() -> None:
    """Fold the aggregator's quarantined meter events again (TALLY_CONSUMER_GROUP), in log order, each once.

    Records that fail again stay quarantined with their new error. Quarantined billing events are projected
    again by `tally replay billing` (it rebuilds every billing projection from billing-events in log order)."""
    from tally_aggregator.store import UsageProjector

    settings = Settings()

    async def main() -> int:
        pool = await _pool(settings)
        try:
            outcome = await UsageProjector(pool, settings.consumer_group).replay_dead_letters()
        finally:
            await pool.close()
        print(f"replayed {outcome.replayed}, still failing {outcome.still_failing}")
        return 1 if outcome.still_failing else 0

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)
