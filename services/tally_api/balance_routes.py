"""`/v1/customers/{id}/balance_transactions`: the customer balance ledger (reference §4.7).

Create (an `adjustment`) and update (description, metadata) are commands to the customer's book, as every
balance change is; retrieve and list read the `billing_balance_transactions` projection, newest first.
"""

from __future__ import annotations


from tally_billing import queries as store
from tally_core.billing import params as p
from tally_core.billing.handlers.balance import KIND
from tally_core.errors import ResourceMissing
from tally_edge.context import Ctx, route

from .billing_routes import _LIST, _find, _page, _submit

_TABLE = "billing_balance_transactions"
_PATH = ("id", "transaction")  # the URL's ids: never carried in the command


def _params(ctx: Ctx) -> dict:
    return {k: v for k, v in ctx.params.items() if k not in _PATH}


async def _customer_key(ctx: Ctx) -> str:
    """The customer's billing key; a deleted customer's ledger is gone with it (404, as for the customer)."""
    _, key, deleted = await _find(ctx, "billing_customers", "customer", ctx.params["id"])
    if deleted:
        raise ResourceMissing("customer", ctx.params["id"])
    return key


async def _transaction(ctx: Ctx) -> tuple[dict, str]:
    """The customer's transaction named by the URL: another customer's is missing here, as Stripe answers."""
    await _customer_key(ctx)
    txn_id = ctx.params["transaction"]
    found = await store.locate(ctx.services.pool, _TABLE, ctx.account, txn_id) if isinstance(txn_id, str) else None
    if found is None or found[0]["customer"] != ctx.params["id"]:
        raise ResourceMissing(KIND, str(txn_id), param="transaction")
    return found[0], found[1]


async def create_balance_transaction(ctx: Ctx) -> dict:
    key = await _customer_key(ctx)
    return await _submit(ctx, key, "customer.balance_transaction.create", ctx.params["id"], _params(ctx))


async def retrieve_balance_transaction(ctx: Ctx) -> dict:
    return (await _transaction(ctx))[0]


async def update_balance_transaction(ctx: Ctx) -> dict:
    obj, key = await _transaction(ctx)
    return await _submit(ctx, key, "customer.balance_transaction.update", obj["id"], _params(ctx))


async def list_balance_transactions(ctx: Ctx) -> dict:
    p.check_keys(ctx.params, _LIST | set(_PATH))
    await _customer_key(ctx)
    # Newest first by place in the log: entries of one finalization share a second, and keep their order.
    return await _page(ctx, _TABLE, f"/v1/customers/{ctx.params['id']}/balance_transactions",
                       {"customer": ctx.params["id"]}, order="log_offset")


routes = [
    route("/v1/customers/{id}/balance_transactions", create_balance_transaction, ["POST"]),
    route("/v1/customers/{id}/balance_transactions", list_balance_transactions, ["GET"]),
    route("/v1/customers/{id}/balance_transactions/{transaction}", retrieve_balance_transaction, ["GET"]),
    route("/v1/customers/{id}/balance_transactions/{transaction}", update_balance_transaction, ["POST"]),
]
