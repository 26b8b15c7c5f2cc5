"""The customer balance ledger through the official `stripe` SDK against a running `tally run` (reference §4.7):
`customers.balance_transactions` create, retrieve, update and list, changing only the base URL and key."""

import pytest
import stripe


@pytest.fixture
def client(server):
    base, key = server
    return stripe.StripeClient(key, base_addresses={"api": base})


def test_the_sdk_credits_a_customer_and_reads_the_ledger(client):
    # given a customer credited 5.00, then debited 1.50
    cus = client.v1.customers.create({"name": "Ledger"})
    credit = client.v1.customers.balance_transactions.create(cus.id, {"amount": -500, "currency": "usd",
                                                                      "metadata": {"why": "goodwill"}})
    debit = client.v1.customers.balance_transactions.create(cus.id, {"amount": 150, "currency": "usd"})
    # then each entry carries the balance it left, and the customer holds the sum
    assert (credit.object, credit.type, credit.amount, credit.ending_balance) == (
        "customer_balance_transaction", "adjustment", -500, -500)
    assert (debit.amount, debit.ending_balance) == (150, -350)
    assert client.v1.customers.retrieve(cus.id).balance == -350
    # only description and metadata change
    renamed = client.v1.customers.balance_transactions.update(cus.id, credit.id, {"description": "Sorry!"})
    assert (renamed.description, renamed.metadata.to_dict(), renamed.amount) == ("Sorry!", {"why": "goodwill"}, -500)
    assert client.v1.customers.balance_transactions.retrieve(cus.id, credit.id).description == "Sorry!"
    # the list is newest first
    listed = client.v1.customers.balance_transactions.list(cus.id)
    assert [t.id for t in listed.data] == [debit.id, credit.id]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.balance_transactions.create(cus.id, {"amount": 0, "currency": "usd"})
    assert err.value.param == "amount"
