"""`POST /v1/invoices/create_preview` (reference §4.6): what an invoice would be, decided and thrown away.

Without `subscription_details` the preview is the subscription's next invoice with the usage so far. With
them, the change they describe is decided exactly as the update (or, with `cancel_now`, the cancel) would be
decided now, on a copy of the book, and the preview shows what that change invoices:
- a change invoiced at once (`always_invoice`, or a reset of the period, §4.2) previews that invoice;
- otherwise the next invoice, which takes the change's prorations first (§4.6: "Prorations in a preview =
  lines with … proration == true").
Nothing is saved and no event leaves the preview, so a preview can never differ from the change because
of a second code path: there is none.
"""

from __future__ import annotations

from .advance import advance
from .book import Book
from .commands import load
from .context import Run, UsageReader, command_time
from .decide import decide
from .handlers.invoices import upcoming


def preview(book: Book, subscription_id: str, now: int, usage: UsageReader, change: dict | None = None) -> dict:
    """The preview invoice object (no id, Stripe's previews have none). `change`: the command record
    (`subscription.update` or `subscription.cancel`) that `subscription_details` describe."""
    # Time first, so that every invoice the change's decision creates is the change's own.
    run = Run(book, load({"id": f"preview/{subscription_id}/{now}", "type": "tick", "key": book.key, "at": now}),
              usage)
    advance(run, command_time(book, now))
    if change is not None:
        decision = decide(run.book, change, usage)
        if decision.error is not None:
            raise decision.error
        created = [e["data"]["object"] for e in decision.events if e["type"] == "invoice.created"]
        if created:
            return {**created[0], "id": None}  # the change's invoice as drafted (before it was finalized)
        run = Run(decision.book, run.command, usage)
    return {**upcoming(run, subscription_id), "id": None}
