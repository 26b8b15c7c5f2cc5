"""`/v1/invoiceitems` over HTTP with the billing worker in-process (reference §4.4, §6.1): a one-off charge and
a credit wait for the renewal on a test clock, which takes them first; an item goes onto a draft at once; an
item changes or goes away only while pending or on a draft; the list filters and pages; `replay billing`
rebuilds the items' projection row for row, and re-deciding gives the same events."""

from __future__ import annotations


import jsonschema
import pytest

from tally_api.contracts import CONTRACTS

from tests.factories import assert_rebuilt_and_redecided
from tests.tally_api.test_billing_api import ok, ts


@pytest.fixture
def api(billing_client):
    return billing_client


async def _customer_on_a_clock(api) -> tuple[dict, dict, dict]:
    """A 100 USD monthly license on a clock at Mar 1 2026, its first invoice paid."""
    fee = await ok(await api.post("/v1/prices", data={"currency": "usd", "unit_amount": "10000",
                                                      "product_data[name]": "License", "recurring[interval]": "month"}))
    clock = await ok(await api.post("/v1/test_helpers/test_clocks", data={"frozen_time": ts(2026, 3, 1)}))
    cus = await ok(await api.post("/v1/customers", data={"test_clock": clock["id"], "payment_method": "pm_card_visa"}))
    sub = await ok(await api.post("/v1/subscriptions", data={"customer": cus["id"], "items[0][price]": fee["id"]}))
    return clock, cus, sub


async def _advance(api, clock: dict, to: int) -> None:
    await ok(await api.post(f"/v1/test_helpers/test_clocks/{clock['id']}/advance", data={"frozen_time": to}))


async def test_pending_items_are_billed_first_on_the_renewal(api):
    clock, cus, sub = await _customer_on_a_clock(api)
    setup = await ok(await api.post("/v1/invoiceitems", data={
        "customer": cus["id"], "amount": "5000", "currency": "usd", "description": "Setup fee",
        "metadata[order]": "42"}))
    assert (setup["object"], setup["invoice"], setup["test_clock"], setup["metadata"]) == (
        "invoiceitem", None, clock["id"], {"order": "42"})
    # every field of Stripe's example invoiceitem, with its type (responses.stripe_object)
    jsonschema.validate(setup, CONTRACTS[("POST", "/v1/invoiceitems")].response)
    one_time = await ok(await api.post("/v1/prices", data={"currency": "usd", "unit_amount_decimal": "333.5",
                                                           "product_data[name]": "Training"}))
    training = await ok(await api.post("/v1/invoiceitems", data={
        "customer": cus["id"], "pricing[price]": one_time["id"], "quantity": "3", "subscription": sub["id"]}))
    assert training["amount"] == 1001  # 1000.5 rounds half-up once
    credit = await ok(await api.post("/v1/invoiceitems", data={"customer": cus["id"], "amount": "-1500"}))
    assert (credit["discountable"], credit["currency"]) == (False, "usd")
    # update while pending: a new quantity of the same price
    training = await ok(await api.post(f"/v1/invoiceitems/{training['id']}", data={"quantity": "2"}))
    assert (training["amount"], training["quantity"]) == (667, 2)
    assert (await ok(await api.get(f"/v1/invoiceitems/{training['id']}")))["amount"] == 667
    pending = await ok(await api.get("/v1/invoiceitems", params={"customer": cus["id"], "pending": "true"}))
    assert {i["id"] for i in pending["data"]} == {setup["id"], training["id"], credit["id"]}

    await _advance(api, clock, ts(2026, 4, 1, 2))
    invoices = await ok(await api.get("/v1/invoices", params={"subscription": sub["id"]}))
    cycle = invoices["data"][0]
    assert cycle["total"] == 10000 + 5000 + 667 - 1500 and cycle["status"] == "paid"
    items = [line["parent"]["invoice_item_details"]["invoice_item"] if line["parent"]["invoice_item_details"]
             else line["parent"]["subscription_item_details"]["invoice_item"] for line in cycle["lines"]["data"]]
    assert set(items[:3]) == {setup["id"], training["id"], credit["id"]} and items[3] is None  # items first
    on_it = await ok(await api.get("/v1/invoiceitems", params={"invoice": cycle["id"]}))
    assert {i["id"] for i in on_it["data"]} == set(items[:3])
    assert (await ok(await api.get("/v1/invoiceitems", params={"customer": cus["id"], "pending": "true"})))[
        "data"] == []
    # the invoice is paid: the items can no longer change
    r = await api.post(f"/v1/invoiceitems/{setup['id']}", data={"amount": "1"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invoice_not_editable")
    r = await api.delete(f"/v1/invoiceitems/{setup['id']}")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invoice_not_editable")
    events = await ok(await api.get("/v1/events", params={"type": "invoiceitem.created", "limit": 10}))
    assert len(events["data"]) == 3
    types = {e["type"] for e in (await ok(await api.get("/v1/events", params={"limit": 100})))["data"]}
    assert "tally.invoiceitem_updated" not in types  # an update is no Stripe event (§8.3)


async def test_an_item_onto_a_draft_and_delete(api, runtime):
    clock, cus, sub = await _customer_on_a_clock(api)
    await _advance(api, clock, ts(2026, 4, 1) + 60)  # the renewal draft's grace hour
    draft = (await ok(await api.get("/v1/invoices", params={"subscription": sub["id"], "status": "draft"})))[
        "data"][0]
    late = await ok(await api.post("/v1/invoiceitems", data={"customer": cus["id"], "amount": "700",
                                                             "invoice": draft["id"]}))
    assert late["invoice"] == draft["id"]
    inv = await ok(await api.get(f"/v1/invoices/{draft['id']}"))
    assert inv["total"] == draft["total"] + 700
    assert inv["lines"]["data"][-1]["parent"]["invoice_item_details"]["invoice_item"] == late["id"]
    gone = await ok(await api.delete(f"/v1/invoiceitems/{late['id']}"))
    assert gone == {"id": late["id"], "object": "invoiceitem", "deleted": True}
    assert (await ok(await api.get(f"/v1/invoices/{draft['id']}")))["total"] == draft["total"]
    assert (await api.get(f"/v1/invoiceitems/{late['id']}")).status_code == 404
    # pending items on the customer, then the list pages newest first
    made = [await ok(await api.post("/v1/invoiceitems", data={"customer": cus["id"], "amount": str(n)}))
            for n in (1, 2, 3)]
    page = await ok(await api.get("/v1/invoiceitems", params={"customer": cus["id"], "limit": 2}))
    assert page["has_more"] and len(page["data"]) == 2
    rest = await ok(await api.get("/v1/invoiceitems", params={"customer": cus["id"],
                                                              "starting_after": page["data"][-1]["id"]}))
    assert {i["id"] for i in page["data"] + rest["data"]} == {i["id"] for i in made}
    # the list of everything omits a test clock's objects (reference §7)
    assert (await ok(await api.get("/v1/invoiceitems")))["data"] == []
    # refusals name their parameter
    for data, param in (({"customer": cus["id"]}, "amount"),
                        ({"customer": cus["id"], "amount": "1", "unit_amount_decimal": "1"}, "amount"),
                        ({"customer": cus["id"], "amount": "100000000"}, "amount"),
                        ({"customer": "cus_nope", "amount": "1"}, "customer"),
                        ({"customer": cus["id"], "amount": "1", "invoice": sub["latest_invoice"]}, "invoice"),
                        ({"customer": cus["id"], "amount": "1", "currency": "eur"}, "currency"),
                        ({"customer": cus["id"], "price": "price_nope"}, "price"),
                        ({"customer": cus["id"], "amount": "1", "period[start]": "5", "period[end]": "4"},
                         "period[end]")):
        r = await api.post("/v1/invoiceitems", data=data)
        assert (r.status_code, r.json()["error"]["param"]) == (400, param), (data, r.text)

    # replay rebuilds the items' rows (and every other projection) row for row; re-deciding gives the same
    await assert_rebuilt_and_redecided(runtime)
