"""`/v1/customers/{id}/balance_transactions` over HTTP (reference §4.7), with the billing worker in-process:
create, retrieve, update, list, and the entries an invoice writes, in Stripe's shapes."""

from __future__ import annotations

import pytest

from tally_api.responses import stripe_object
from tests.tally_api.test_billing_api import ok

FIXTURE_FIELDS = set(stripe_object("customer_balance_transaction")["properties"])


@pytest.fixture
def api(billing_client):
    return billing_client


async def customer(api, **extra) -> str:
    return (await ok(await api.post("/v1/customers", data={"payment_method": "pm_card_visa", **extra})))["id"]


async def test_an_adjustment_credits_the_customer_and_the_next_invoice_uses_it(api):
    # given a customer credited 5.00
    cus = await customer(api)
    txn = await ok(await api.post(f"/v1/customers/{cus}/balance_transactions", data={
        "amount": "-500", "currency": "usd", "description": "goodwill", "metadata[ticket]": "T-1"}))
    # then Stripe's object, every fixture field, and the customer's balance
    assert set(txn) == FIXTURE_FIELDS
    assert (txn["object"], txn["type"], txn["amount"], txn["ending_balance"], txn["invoice"]) == (
        "customer_balance_transaction", "adjustment", -500, -500, None)
    assert (txn["customer"], txn["description"], txn["metadata"]) == (cus, "goodwill", {"ticket": "T-1"})
    got = await ok(await api.get(f"/v1/customers/{cus}"))
    assert (got["balance"], got["currency"]) == (-500, "usd")
    # when a 20.00 subscription starts, its first invoice takes the credit: 15.00 due
    price = await ok(await api.post("/v1/prices", data={
        "currency": "usd", "unit_amount": "2000", "product_data[name]": "Plan", "recurring[interval]": "month"}))
    sub = await ok(await api.post("/v1/subscriptions", data={
        "customer": cus, "items[0][price]": price["id"], "expand[]": "latest_invoice"}))
    inv = sub["latest_invoice"]
    assert (inv["amount_due"], inv["starting_balance"], inv["ending_balance"]) == (1500, -500, 0)
    # then the ledger lists the invoice's entry first (newest first)
    ledger = await ok(await api.get(f"/v1/customers/{cus}/balance_transactions"))
    assert (ledger["object"], ledger["url"], ledger["has_more"]) == (
        "list", f"/v1/customers/{cus}/balance_transactions", False)
    assert [(t["type"], t["amount"], t["ending_balance"], t["invoice"]) for t in ledger["data"]] == [
        ("applied_to_invoice", 500, 0, inv["id"]), ("adjustment", -500, -500, None)]
    # and no event names the entries (Stripe sends none for them)
    events = await ok(await api.get("/v1/events", params={"limit": 100}))
    assert all(e["type"] != "tally.balance_transaction" for e in events["data"])
    assert any(e["type"] == "customer.updated" and e["data"]["previous_attributes"] == {"balance": -500}
               for e in events["data"])


async def test_retrieve_update_and_page(api):
    cus = await customer(api)
    made = [await ok(await api.post(f"/v1/customers/{cus}/balance_transactions",
                                    data={"amount": str(a), "currency": "usd", "metadata[a]": "1"}))
            for a in (-100, -200, 300)]
    assert [t["ending_balance"] for t in made] == [-100, -300, 0]
    path = f"/v1/customers/{cus}/balance_transactions/{made[0]['id']}"
    assert await ok(await api.get(path)) == made[0]
    # only description and metadata change; metadata merges, "" unsets
    new = await ok(await api.post(path, data={"description": "renamed", "metadata[a]": "", "metadata[b]": "2"}))
    assert (new["description"], new["metadata"], new["amount"]) == ("renamed", {"b": "2"}, -100)
    assert await ok(await api.get(path)) == new
    r = await api.post(path, data={"amount": "5"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "amount")
    # paging, newest first, an update keeps an entry's place
    page = await ok(await api.get(f"/v1/customers/{cus}/balance_transactions", params={"limit": 2}))
    assert ([t["id"] for t in page["data"]], page["has_more"]) == ([made[2]["id"], made[1]["id"]], True)
    rest = await ok(await api.get(f"/v1/customers/{cus}/balance_transactions",
                                  params={"starting_after": made[1]["id"]}))
    assert [t["id"] for t in rest["data"]] == [made[0]["id"]]


async def test_refusals_name_their_parameter(api):
    cus = await customer(api)
    base = f"/v1/customers/{cus}/balance_transactions"
    for data, param in (({"currency": "usd"}, "amount"), ({"amount": "0", "currency": "usd"}, "amount"),
                        ({"amount": "-5"}, "currency"), ({"amount": "-5", "currency": "usd", "type": "initial"},
                                                         "type")):
        r = await api.post(base, data=data)
        assert (r.status_code, r.json()["error"]["param"]) == (400, param), r.text
    await ok(await api.post(base, data={"amount": "-5", "currency": "usd"}))
    r = await api.post(base, data={"amount": "-5", "currency": "eur"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "currency")
    # missing customers and transactions are 404s; another customer's transaction is missing here
    assert (await api.post("/v1/customers/cus_nope/balance_transactions",
                           data={"amount": "-5", "currency": "usd"})).status_code == 404
    assert (await api.get(f"{base}/cbtxn_nope")).status_code == 404
    other = await customer(api)
    theirs = await ok(await api.post(f"/v1/customers/{other}/balance_transactions",
                                     data={"amount": "-5", "currency": "usd"}))
    assert (await api.get(f"{base}/{theirs['id']}")).status_code == 404
    assert (await api.get("/v1/customers/cus_nope/balance_transactions")).status_code == 404
