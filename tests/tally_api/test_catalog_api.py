"""`/v1/products` and `/v1/prices` with the seeds' examples, sent in the exact form encoding of Stripe's curl
examples (`curl -d` sends its argument as is: brackets unescaped, spaces raw)."""

from __future__ import annotations

import httpx
import pytest

from tally_api import catalog_routes
from tally_api.app import create_app
from tally_catalog.catalog import Catalog
from tally_catalog.records import PRICE_EVENTS, PRODUCT_EVENTS, project
from tally_core.codec import decode
from tally_edge.accounts import create_account
from tally_infra.logs.ports import CATALOG
from tests.factories import create_meter

FORM = {"content-type": "application/x-www-form-urlencoded"}


def app_for(services):
    app = create_app(services)
    if not any(getattr(r, "path", None) == "/v1/products" for r in app.router.routes):
        app.router.routes.extend(catalog_routes.routes)
    return app


@pytest.fixture
async def api(runtime):
    """An authenticated client on an app with the catalog routes."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(runtime.services)),
                                 base_url="http://tally.test", auth=(runtime.key, "")) as c:
        yield c


@pytest.fixture
async def other(runtime, api, clock):
    """A client of a second account on the same service."""
    _, key = await create_account(runtime.services.pool, now=int(clock()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(runtime.services)),
                                 base_url="http://tally.test", auth=(key, "")) as c:
        yield c


def curl(*args: str) -> str:
    """The body `curl -d a -d b …` sends: the arguments joined with '&', unencoded."""
    return "&".join(args)


async def post(client, path: str, body: str) -> httpx.Response:
    return await client.post(path, content=body.encode(), headers=FORM)


async def product(client, name="Alpaca AI", **extra) -> dict:
    r = await client.post("/v1/products", data={"name": name, **extra})
    assert r.status_code == 200, r.text
    return r.json()


async def price(client, product_id: str, **extra) -> dict:
    data = {"currency": "usd", "unit_amount": "1000", "product": product_id, **extra}
    r = await client.post("/v1/prices", data=data)
    assert r.status_code == 200, r.text
    return r.json()


def err(r: httpx.Response) -> tuple[int, str | None, str | None]:
    e = r.json()["error"]
    return r.status_code, e.get("param"), e.get("code")


# --- seed 000: usage-based pricing for Alpaca AI ----------------------------------------------------------

async def test_seed_000_graduated_metered_price_with_first_1000_tokens_free(api):
    # given the meter of the guide and the usage product
    meter = await create_meter(api, event_name="alpaca_ai_tokens")
    usage = await product(api, name="Alpaca AI 使用状況")
    assert usage["object"] == "product" and usage["id"].startswith("prod_") and usage["active"] is True
    # when the graduated price is created as in Stripe's curl example
    r = await post(api, "/v1/prices", curl(
        f"product={usage['id']}", "currency=usd", "billing_scheme=tiered", "tiers_mode=graduated",
        "recurring[interval]=month", "recurring[usage_type]=metered", f"recurring[meter]={meter['id']}",
        "tiers[0][up_to]=1000", "tiers[0][unit_amount]=0",
        "tiers[1][up_to]=inf", "tiers[1][unit_amount_decimal]=4", "expand[]=tiers"))
    # then the price is a Stripe price with its tiers expanded
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["object"] == "price" and p["id"].startswith("price_") and p["product"] == usage["id"]
    assert p["type"] == "recurring" and p["billing_scheme"] == "tiered" and p["tiers_mode"] == "graduated"
    assert p["recurring"] == {"interval": "month", "interval_count": 1, "meter": meter["id"],
                              "trial_period_days": None, "usage_type": "metered"}
    assert p["unit_amount"] is None and p["unit_amount_decimal"] is None and p["currency"] == "usd"
    assert p["tiers"] == [
        {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": 0, "unit_amount_decimal": "0", "up_to": 1000},
        {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": 4, "unit_amount_decimal": "4", "up_to": None},
    ]
    # and a retrieve shows tiers only when expanded, as Stripe does
    plain = (await api.get(f"/v1/prices/{p['id']}")).json()
    assert "tiers" not in plain and {k: v for k, v in p.items() if k != "tiers"} == plain
    assert (await api.get(f"/v1/prices/{p['id']}", params={"expand[]": "tiers"})).json() == p


async def test_seed_000_license_fee_of_100_usd_a_month(api):
    # given the license product, created inline with the price (product_data)
    r = await api.post("/v1/prices", data={
        "product_data[name]": "Alpaca AI ライセンス手数料", "unit_amount": "10000", "currency": "usd",
        "recurring[interval]": "month"})
    assert r.status_code == 200, r.text
    fee = r.json()
    # then the price is licensed, 10000 cents a month
    assert fee["unit_amount"] == 10000 and fee["unit_amount_decimal"] == "10000"
    assert fee["recurring"]["usage_type"] == "licensed" and fee["recurring"]["meter"] is None
    # and the product exists in the account
    prod = (await api.get(f"/v1/products/{fee['product']}")).json()
    assert prod["name"] == "Alpaca AI ライセンス手数料" and prod["object"] == "product"
    # and expand[]=product inlines it
    expanded = (await api.get(f"/v1/prices/{fee['id']}", params={"expand[]": "product"})).json()
    assert expanded["product"] == prod


async def test_seed_000_the_guides_flat_fee_in_the_first_tier_variant(api):
    # "(Optional) … set the Flat fee to 100 USD" on the first row of the grid
    meter = await create_meter(api)
    usage = await product(api)
    r = await post(api, "/v1/prices", curl(
        f"product={usage['id']}", "currency=usd", "billing_scheme=tiered", "tiers_mode=graduated",
        "recurring[interval]=month", "recurring[usage_type]=metered", f"recurring[meter]={meter['id']}",
        "tiers[0][up_to]=1000", "tiers[0][unit_amount]=0", "tiers[0][flat_amount]=10000",
        "tiers[1][up_to]=inf", "tiers[1][unit_amount_decimal]=4", "expand[0]=tiers"))
    assert r.status_code == 200, r.text
    assert r.json()["tiers"][0]["flat_amount"] == 10000


async def test_metered_price_needs_an_active_meter_of_the_account(api):
    # given a product and no meter
    usage = await product(api)
    body = [f"product={usage['id']}", "currency=usd", "unit_amount=4", "recurring[interval]=month",
            "recurring[usage_type]=metered"]
    # then a metered price without a meter is refused (since 2025-03-31.basil)
    assert err(await post(api, "/v1/prices", curl(*body))) == (400, "recurring[meter]", "parameter_missing")
    # and one with an unknown meter names recurring[meter]
    r = await post(api, "/v1/prices", curl(*body, "recurring[meter]=mtr_nope"))
    assert err(r) == (400, "recurring[meter]", "resource_missing") and "mtr_nope" in r.json()["error"]["message"]
    # and one with a deactivated meter too
    meter = await create_meter(api)
    await api.post(f"/v1/billing/meters/{meter['id']}/deactivate")
    r = await post(api, "/v1/prices", curl(*body, f"recurring[meter]={meter['id']}"))
    assert err(r) == (400, "recurring[meter]", "parameter_invalid")
    # and after reactivation the same request succeeds
    await api.post(f"/v1/billing/meters/{meter['id']}/reactivate")
    assert (await post(api, "/v1/prices", curl(*body, f"recurring[meter]={meter['id']}"))).status_code == 200


# --- seed 001: several products, per-seat prices, transform_quantity ---------------------------------------

async def test_seed_001_standard_cost_per_5_users(api):
    suite = await product(api, name="Productivity Suite")
    # when the price of the guide is created with its exact curl body
    r = await post(api, "/v1/prices", curl(
        "nickname=Standard Cost Per 5 Users", "transform_quantity[divide_by]=5", "transform_quantity[round]=up",
        "unit_amount=1000", "currency=usd", "recurring[interval]=month", "recurring[usage_type]=licensed",
        f"product={suite['id']}"))
    # then it bills 10 USD per started block of 5 users
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["nickname"] == "Standard Cost Per 5 Users"
    assert p["transform_quantity"] == {"divide_by": 5, "round": "up"}
    assert p["unit_amount"] == 1000 and p["billing_scheme"] == "per_unit" and p["tiers_mode"] is None
    assert p["recurring"]["usage_type"] == "licensed"


async def test_seed_001_metered_emails_needs_a_meter_since_basil(api):
    emails = await product(api, name="Marketing Emails")
    body = ["nickname=Metered Emails", "transform_quantity[divide_by]=1000", "transform_quantity[round]=down",
            "unit_amount=10", "currency=usd", "recurring[interval]=month", "recurring[usage_type]=metered",
            f"product={emails['id']}"]
    # the guide's pre-basil request has no meter: refused, naming the param
    assert err(await post(api, "/v1/prices", curl(*body)))[:2] == (400, "recurring[meter]")
    # with a meter counting sent emails it is accepted: 0.10 USD per full 1000 emails
    meter = await create_meter(api, event_name="emails_sent", formula="count")
    r = await post(api, "/v1/prices", curl(*body, f"recurring[meter]={meter['id']}"))
    assert r.status_code == 200, r.text
    assert r.json()["transform_quantity"] == {"divide_by": 1000, "round": "down"}
    assert r.json()["recurring"]["meter"] == meter["id"]


async def test_seed_001_several_products_and_per_site_hosting(api):
    # given a hosting product at 9.99 USD per site and a volume-tiered seat product
    hosting = await product(api, name="Hosting")
    per_site = await price(api, hosting["id"], unit_amount="999", **{"recurring[interval]": "month"})
    seats = await product(api, name="Seats")
    r = await post(api, "/v1/prices", curl(
        f"product={seats['id']}", "currency=usd", "billing_scheme=tiered", "tiers_mode=volume",
        "recurring[interval]=month", "tiers[0][up_to]=5", "tiers[0][unit_amount]=700",
        "tiers[1][up_to]=10", "tiers[1][unit_amount]=650", "tiers[2][up_to]=inf", "tiers[2][unit_amount]=600",
        "expand[]=tiers"))
    assert r.status_code == 200, r.text
    volume = r.json()
    assert [t["unit_amount"] for t in volume["tiers"]] == [700, 650, 600]
    assert per_site["unit_amount"] == 999 and per_site["unit_amount_decimal"] == "999"
    # then listing by product separates them, newest first overall
    listed = (await api.get("/v1/prices")).json()
    assert [x["id"] for x in listed["data"]] == [volume["id"], per_site["id"]]
    assert listed["url"] == "/v1/prices" and listed["has_more"] is False and "tiers" not in listed["data"][0]
    only = (await api.get("/v1/prices", params={"product": hosting["id"]})).json()["data"]
    assert [x["id"] for x in only] == [per_site["id"]]
    expanded = (await api.get("/v1/prices", params={"expand[]": "data.tiers", "product": seats["id"]})).json()
    assert expanded["data"][0]["tiers"] == volume["tiers"]
    products = (await api.get("/v1/products")).json()["data"]
    assert [x["name"] for x in products] == ["Seats", "Hosting"]


async def test_transform_quantity_cannot_be_combined_with_tiers(api):
    prod = await product(api)
    r = await post(api, "/v1/prices", curl(
        f"product={prod['id']}", "currency=usd", "billing_scheme=tiered", "tiers_mode=volume",
        "recurring[interval]=month", "tiers[0][up_to]=inf", "tiers[0][unit_amount]=700",
        "transform_quantity[divide_by]=5", "transform_quantity[round]=up"))
    assert err(r) == (400, "tiers", "parameters_exclusive")


# --- products: retrieve, update, list, delete --------------------------------------------------------------

async def test_product_retrieve_update_and_unset(api, clock):
    prod = await product(api, name="Suite", description="All apps", **{"metadata[tier]": "gold"})
    assert (await api.get(f"/v1/products/{prod['id']}")).json() == prod
    clock.advance(60)
    r = await post(api, f"/v1/products/{prod['id']}", "name=Suite 2&description=&metadata[tier]=&metadata[owner]=ops")
    updated = r.json()
    assert updated["name"] == "Suite 2" and updated["description"] is None
    assert updated["metadata"] == {"owner": "ops"} and updated["updated"] == prod["updated"] + 60
    assert updated["created"] == prod["created"]
    assert (await api.get(f"/v1/products/{prod['id']}")).json() == updated


async def test_custom_product_id_is_unique(api):
    prod = await product(api, name="Gold", id="gold_plan")
    assert prod["id"] == "gold_plan"
    r = await api.post("/v1/products", data={"name": "Other", "id": "gold_plan"})
    assert err(r) == (400, "id", "resource_already_exists")
    r = await api.post("/v1/prices", data={"currency": "usd", "unit_amount": "1", "product_data[name]": "x",
                                           "product_data[id]": "gold_plan"})
    assert err(r) == (400, "product_data[id]", "resource_already_exists")


async def test_product_list_pages_newest_first_and_filters_active(api):
    ids = [(await product(api, name=f"P{i}"))["id"] for i in range(5)]
    page = (await api.get("/v1/products", params={"limit": 2})).json()
    assert [x["id"] for x in page["data"]] == [ids[4], ids[3]] and page["has_more"] is True
    page = (await api.get("/v1/products", params={"limit": 2, "starting_after": ids[3]})).json()
    assert [x["id"] for x in page["data"]] == [ids[2], ids[1]] and page["has_more"] is True
    page = (await api.get("/v1/products", params={"limit": 2, "starting_after": ids[1]})).json()
    assert [x["id"] for x in page["data"]] == [ids[0]] and page["has_more"] is False
    page = (await api.get("/v1/products", params={"limit": 2, "ending_before": ids[0]})).json()
    assert [x["id"] for x in page["data"]] == [ids[2], ids[1]]
    # when two are archived
    for i in (1, 3):
        assert (await api.post(f"/v1/products/{ids[i]}", data={"active": "false"})).json()["active"] is False
    active = (await api.get("/v1/products", params={"active": "true"})).json()["data"]
    inactive = (await api.get("/v1/products", params={"active": "false"})).json()["data"]
    assert [x["id"] for x in active] == [ids[4], ids[2], ids[0]]
    assert [x["id"] for x in inactive] == [ids[3], ids[1]]
    chosen = (await api.get("/v1/products", params={"ids[0]": ids[0], "ids[1]": ids[2]})).json()["data"]
    assert [x["id"] for x in chosen] == [ids[2], ids[0]]
    assert err(await api.get("/v1/products", params={"active": "yes"})) == (400, "active", "parameter_invalid_boolean")
    assert err(await api.get("/v1/products", params={"color": "red"})) == (400, "color", "parameter_unknown")


async def test_delete_product_only_without_prices(api):
    empty = await product(api, name="Empty")
    r = await api.delete(f"/v1/products/{empty['id']}")
    assert r.status_code == 200 and r.json() == {"id": empty["id"], "object": "product", "deleted": True}
    assert err(await api.get(f"/v1/products/{empty['id']}")) == (404, "id", "resource_missing")
    assert (await api.get("/v1/products")).json()["data"] == []
    # a product with a price (even archived) cannot be deleted
    full = await product(api, name="Full")
    pr = await price(api, full["id"])
    await api.post(f"/v1/prices/{pr['id']}", data={"active": "false"})
    r = await api.delete(f"/v1/products/{full['id']}")
    assert r.status_code == 400 and "user-created prices" in r.json()["error"]["message"]
    assert err(await api.delete("/v1/products/prod_nope"))[:2] == (404, "id")


async def test_default_price_from_data_expand_and_archive_rules(api):
    # given a product created with default_price_data
    r = await api.post("/v1/products", data={
        "name": "Gold", "default_price_data[currency]": "usd", "default_price_data[unit_amount]": "2000",
        "default_price_data[recurring][interval]": "month", "expand[]": "default_price"})
    assert r.status_code == 200, r.text
    gold = r.json()
    default = gold["default_price"]
    assert default["object"] == "price" and default["product"] == gold["id"] and default["unit_amount"] == 2000
    # then the default price cannot be archived
    r = await api.post(f"/v1/prices/{default['id']}", data={"active": "false"})
    assert err(r)[:2] == (400, "active") and "default price" in r.json()["error"]["message"]
    # until another price of the product becomes the default
    yearly = await price(api, gold["id"], unit_amount="20000", **{"recurring[interval]": "year"})
    updated = (await api.post(f"/v1/products/{gold['id']}", data={"default_price": yearly["id"]})).json()
    assert updated["default_price"] == yearly["id"]
    assert (await api.post(f"/v1/prices/{default['id']}", data={"active": "false"})).json()["active"] is False
    # and a price of another product, an archived price or an unknown price cannot be the default
    other_prod = await product(api, name="Other")
    foreign = await price(api, other_prod["id"])
    assert err(await api.post(f"/v1/products/{gold['id']}", data={"default_price": foreign["id"]}))[:2] == \
        (400, "default_price")
    assert err(await api.post(f"/v1/products/{gold['id']}", data={"default_price": default["id"]}))[:2] == \
        (400, "default_price")
    assert err(await api.post(f"/v1/products/{gold['id']}", data={"default_price": "price_nope"})) == \
        (400, "default_price", "resource_missing")
    # and default_price_data errors name the nested param
    r = await api.post("/v1/products", data={"name": "x", "default_price_data[currency]": "usd",
                                             "default_price_data[unit_amount]": "1",
                                             "default_price_data[recurring][interval]": "fortnight"})
    assert err(r) == (400, "default_price_data[recurring][interval]", "parameter_invalid_enum")
    assert [x["name"] for x in (await api.get("/v1/products")).json()["data"]] == ["Other", "Gold"]


# --- prices: retrieve, update, list ---------------------------------------------------------------------

async def test_price_update_only_changes_mutable_fields(api):
    prod = await product(api)
    pr = await price(api, prod["id"], nickname="Basic", **{"metadata[plan]": "basic", "recurring[interval]": "month"})
    r = await post(api, f"/v1/prices/{pr['id']}", "nickname=Basic monthly&metadata[seats]=5&lookup_key=basic_monthly")
    updated = r.json()
    assert updated["nickname"] == "Basic monthly" and updated["lookup_key"] == "basic_monthly"
    assert updated["metadata"] == {"plan": "basic", "seats": "5"}
    assert {k: v for k, v in updated.items() if k not in ("nickname", "lookup_key", "metadata")} == \
        {k: v for k, v in pr.items() if k not in ("nickname", "lookup_key", "metadata")}
    # amounts never change after creation
    r = await api.post(f"/v1/prices/{pr['id']}", data={"unit_amount": "2000"})
    assert err(r) == (400, "unit_amount", "parameter_unknown")
    r = await api.post(f"/v1/prices/{pr['id']}", data={"recurring[interval]": "year"})
    assert err(r) == (400, "recurring", "parameter_unknown")
    assert err(await api.post("/v1/prices/price_nope", data={"nickname": "x"})) == (404, "id", "resource_missing")


async def test_lookup_keys_are_unique_and_can_be_transferred(api):
    prod = await product(api)
    old = await price(api, prod["id"], lookup_key="standard")
    r = await api.post("/v1/prices", data={"currency": "usd", "unit_amount": "1200", "product": prod["id"],
                                           "lookup_key": "standard"})
    assert err(r)[:2] == (400, "lookup_key") and old["id"] in r.json()["error"]["message"]
    new = (await api.post("/v1/prices", data={"currency": "usd", "unit_amount": "1200", "product": prod["id"],
                                              "lookup_key": "standard", "transfer_lookup_key": "true"})).json()
    assert new["lookup_key"] == "standard"
    assert (await api.get(f"/v1/prices/{old['id']}")).json()["lookup_key"] is None
    found = (await api.get("/v1/prices", params={"lookup_keys[]": "standard"})).json()["data"]
    assert [x["id"] for x in found] == [new["id"]]
    # an update can move it back only with transfer_lookup_key
    assert err(await api.post(f"/v1/prices/{old['id']}", data={"lookup_key": "standard"}))[:2] == (400, "lookup_key")
    moved = await api.post(f"/v1/prices/{old['id']}", data={"lookup_key": "standard", "transfer_lookup_key": "true"})
    assert moved.json()["lookup_key"] == "standard"
    assert (await api.get(f"/v1/prices/{new['id']}")).json()["lookup_key"] is None


async def test_price_list_filters(api):
    meter = await create_meter(api)
    prod = await product(api)
    one_time = await price(api, prod["id"])
    monthly = await price(api, prod["id"], **{"recurring[interval]": "month"})
    metered = await price(api, prod["id"], **{"recurring[interval]": "month", "recurring[usage_type]": "metered",
                                              "recurring[meter]": meter["id"]})
    eur = await price(api, prod["id"], currency="EUR", **{"recurring[interval]": "year"})
    await api.post(f"/v1/prices/{monthly['id']}", data={"active": "false"})

    async def ids(**params):
        r = await api.get("/v1/prices", params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    assert await ids() == [eur["id"], metered["id"], monthly["id"], one_time["id"]]
    assert await ids(type="one_time") == [one_time["id"]]
    assert await ids(type="recurring", active="true") == [eur["id"], metered["id"]]
    assert await ids(active="false") == [monthly["id"]]
    assert await ids(**{"recurring[usage_type]": "metered"}) == [metered["id"]]
    assert await ids(**{"recurring[interval]": "year"}) == [eur["id"]]
    assert await ids(**{"recurring[meter]": meter["id"]}) == [metered["id"]]
    assert await ids(currency="eur") == [eur["id"]]
    assert await ids(**{"created[gte]": str(one_time["created"])}) == [eur["id"], metered["id"], monthly["id"],
                                                                     one_time["id"]]
    assert await ids(**{"created[lt]": str(one_time["created"])}) == []
    assert err(await api.get("/v1/prices", params={"type": "sometimes"})) == (400, "type", "parameter_invalid_enum")
    assert err(await api.get("/v1/prices", params={"recurring[color]": "x"})) == \
        (400, "recurring[color]", "parameter_unknown")
    page = (await api.get("/v1/prices", params={"limit": 3})).json()
    assert page["has_more"] is True and len(page["data"]) == 3


# --- validation errors name the param ---------------------------------------------------------------------

@pytest.mark.parametrize("body, param, code", [
    ("currency=usd&unit_amount=100", "product", "parameter_missing"),
    ("currency=usd&unit_amount=100&product=prod_nope", "product", "resource_missing"),
    ("unit_amount=100&product={p}", "currency", "parameter_missing"),
    ("currency=dollars&unit_amount=100&product={p}", "currency", "parameter_invalid"),
    ("currency=usd&product={p}", "unit_amount", "parameter_missing"),
    ("currency=usd&unit_amount=-1&product={p}", "unit_amount", "parameter_invalid_integer"),
    ("currency=usd&unit_amount=1&unit_amount_decimal=1&product={p}", "unit_amount", "parameters_exclusive"),
    ("currency=usd&unit_amount=1&product={p}&recurring[interval]=fortnight", "recurring[interval]",
     "parameter_invalid_enum"),
    ("currency=usd&billing_scheme=tiered&tiers_mode=graduated&product={p}&tiers[0][up_to]=10"
     "&tiers[0][unit_amount]=1", "tiers[0][up_to]", "parameter_invalid"),
    ("currency=usd&unit_amount=1&product={p}&metadata[a]=" + "v" * 501, "metadata[a]", "parameter_invalid"),
    ("currency=usd&unit_amount=1&product={p}&expand[]=customer", "expand", "parameter_invalid"),
    ("currency=usd&unit_amount=1&product_data[description]=x", "product_data[description]", "parameter_unknown"),
    ("currency=usd&unit_amount=1&product_data[active]=true", "product_data[name]", "parameter_missing"),
    ("currency=usd&unit_amount=1&product={p}&product_data[name]=x", "product", "parameters_exclusive"),
    ("currency=usd&unit_amount=1&product={p}&colour=red", "colour", "parameter_unknown"),
])
async def test_price_create_errors_name_the_param(api, body, param, code):
    prod = await product(api)
    r = await post(api, "/v1/prices", body.replace("{p}", prod["id"]))
    assert err(r) == (400, param, code), r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    # and nothing was created
    assert (await api.get("/v1/prices")).json()["data"] == []
    assert len((await api.get("/v1/products")).json()["data"]) == 1


@pytest.mark.parametrize("body, param, code", [
    ("description=x", "name", "parameter_missing"),
    ("name=", "name", "parameter_invalid_empty"),
    ("name=x&unit_label=thirteen-char", "unit_label", "parameter_invalid"),
    ("name=x&statement_descriptor=way too long for a bank", "statement_descriptor", "parameter_invalid"),
    ("name=x&metadata[" + "k" * 41 + "]=v", "metadata[" + "k" * 41 + "]", "parameter_invalid"),
    ("name=x&" + "&".join(f"metadata[k{i}]=v" for i in range(51)), "metadata", "parameter_invalid"),
    ("name=x&active=maybe", "active", "parameter_invalid_boolean"),
    ("name=x&expand[]=tiers", "expand", "parameter_invalid"),
])
async def test_product_create_errors_name_the_param(api, body, param, code):
    r = await post(api, "/v1/products", body)
    assert err(r) == (400, param, code), r.text
    assert (await api.get("/v1/products")).json()["data"] == []


# --- account isolation ------------------------------------------------------------------------------------

async def test_another_account_can_neither_see_nor_use_the_catalog(api, other):
    # given account A's meter, product and metered price
    meter = await create_meter(api)
    prod = await product(api, name="A's product")
    pr = await price(api, prod["id"], **{"recurring[interval]": "month", "recurring[usage_type]": "metered",
                                         "recurring[meter]": meter["id"]})
    # then B lists nothing and cannot read, update or delete them
    assert (await other.get("/v1/products")).json()["data"] == []
    assert (await other.get("/v1/prices")).json()["data"] == []
    assert (await other.get(f"/v1/products/{prod['id']}")).status_code == 404
    assert (await other.get(f"/v1/prices/{pr['id']}")).status_code == 404
    assert (await other.post(f"/v1/products/{prod['id']}", data={"name": "x"})).status_code == 404
    assert (await other.post(f"/v1/prices/{pr['id']}", data={"nickname": "x"})).status_code == 404
    assert (await other.delete(f"/v1/products/{prod['id']}")).status_code == 404
    # and cannot price A's product or use A's meter
    r = await other.post("/v1/prices", data={"currency": "usd", "unit_amount": "1", "product": prod["id"]})
    assert err(r) == (400, "product", "resource_missing")
    own = await product(other, name="B's product")
    r = await other.post("/v1/prices", data={"currency": "usd", "unit_amount": "1", "product": own["id"],
                                             "recurring[interval]": "month", "recurring[usage_type]": "metered",
                                             "recurring[meter]": meter["id"]})
    assert err(r) == (400, "recurring[meter]", "resource_missing")
    # and B may reuse A's custom id and lookup key for itself
    await product(api, name="A gold", id="gold")
    assert (await product(other, name="B gold", id="gold"))["name"] == "B gold"
    await price(api, prod["id"], lookup_key="std")
    assert (await price(other, own["id"], lookup_key="std"))["lookup_key"] == "std"
    assert (await api.get("/v1/products/gold")).json()["name"] == "A gold"


# --- the log is the source of truth -----------------------------------------------------------------------

async def test_catalog_survives_a_restart_and_a_replay_rebuilds_it_row_for_row(api, runtime, clock):
    # given products and prices, changed and one deleted
    meter = await create_meter(api)
    prod = await product(api, name="Alpaca AI")
    usage = (await post(api, "/v1/prices", curl(
        f"product={prod['id']}", "currency=usd", "billing_scheme=tiered", "tiers_mode=graduated",
        "recurring[interval]=month", "recurring[usage_type]=metered", f"recurring[meter]={meter['id']}",
        "tiers[0][up_to]=1000", "tiers[0][unit_amount]=0",
        "tiers[1][up_to]=inf", "tiers[1][unit_amount_decimal]=4"))).json()
    clock.advance(10)
    await api.post(f"/v1/prices/{usage['id']}", data={"nickname": "tokens", "lookup_key": "tokens"})
    gone = await product(api, name="Gone")
    await api.delete(f"/v1/products/{gone['id']}")
    await api.post("/v1/prices", data={"product_data[name]": "Fee", "unit_amount": "10000", "currency": "usd",
                                       "recurring[interval]": "month"})
    pool = runtime.services.pool
    tables = ("products", "prices")

    async def snapshot():
        return {t: [tuple(r) for r in await pool.fetch(f"select account, id, created, data from {t} order by seq")]
                for t in tables}

    before = await snapshot()
    # when another process loads the catalog
    fresh = Catalog(pool, runtime.services.log)
    await fresh.load()
    old = runtime.services.catalog
    assert fresh.products(runtime.account) == old.products(runtime.account)
    assert fresh.prices(runtime.account) == old.prices(runtime.account)
    assert fresh.price(runtime.account, usage["id"]).tiers == old.price(runtime.account, usage["id"]).tiers
    assert fresh.product(runtime.account, gone["id"]) is None
    # and the projections are dropped and rebuilt from the catalog log
    async with pool.acquire() as conn:
        await conn.execute("truncate products, prices")
        handled = 0
        async for records in runtime.services.log.scan(CATALOG):
            for r in records:
                record = decode(r.value)
                handled += record["type"] in PRODUCT_EVENTS + PRICE_EVENTS
                await project(conn, record)
                await project(conn, record)  # idempotent
    # then every row is as before
    assert handled == 7  # 3 products created, 1 deleted, 2 prices created, 1 price updated (and the meter's)
    assert await snapshot() == before


async def test_idempotent_product_create(api):
    data = {"name": "Once"}
    a = await api.post("/v1/products", data=data, headers={"Idempotency-Key": "k1"})
    b = await api.post("/v1/products", data=data, headers={"Idempotency-Key": "k1"})
    assert a.json() == b.json() and b.headers.get("Idempotent-Replayed") == "true"
    assert len((await api.get("/v1/products")).json()["data"]) == 1


# --- the official SDK, in process ---------------------------------------------------------------------

async def test_the_stripe_sdk_creates_lists_and_deletes(runtime, api):
    import stripe

    # given the SDK's async httpx client, pointed at the app in process (only the transport is swapped)
    http = stripe.HTTPXClient()
    await http._client_async.aclose()
    http._client_async = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(runtime.services)))
    client = stripe.StripeClient(runtime.key, base_addresses={"api": "http://tally.test"}, http_client=http)
    meter = await client.v1.billing.meters.create_async({
        "display_name": "Alpaca AI tokens", "event_name": "alpaca_ai_tokens",
        "default_aggregation": {"formula": "sum"}})
    # when the seed-000 pricing model is created the SDK way (it indexes arrays and sends up_to="inf")
    usage = await client.v1.products.create_async({"name": "Alpaca AI usage", "metadata": {"team": "ml"}})
    tiered = await client.v1.prices.create_async({
        "product": usage.id, "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        "tiers": [{"up_to": 1000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": "4"}],
        "expand": ["tiers"]})
    fee = await client.v1.prices.create_async({
        "product_data": {"name": "Alpaca AI license"}, "currency": "usd", "unit_amount": 10000,
        "recurring": {"interval": "month"}})
    # then the objects come back typed and complete
    assert isinstance(tiered, stripe.Price) and tiered.tiers[1].up_to is None and tiered.tiers[1].unit_amount == 4
    assert tiered.recurring.meter == meter.id and fee.unit_amount == 10000
    assert isinstance(usage, stripe.Product) and usage.metadata["team"] == "ml"
    # and auto-pagination walks every page
    for i in range(12):
        await client.v1.prices.create_async({"product": usage.id, "currency": "usd", "unit_amount": i + 1})
    page = await client.v1.prices.list_async({"limit": 5})
    seen = [p.id async for p in page.auto_paging_iter()]
    assert len(seen) == 14 and len(set(seen)) == 14 and seen[-2:] == [fee.id, tiered.id]
    # and errors map to InvalidRequestError with the param
    with pytest.raises(stripe.InvalidRequestError) as exc:
        await client.v1.prices.update_async(tiered.id, {"nickname": "x", "metadata": {"a" * 41: "b"}})
    assert exc.value.param == "metadata[" + "a" * 41 + "]"
    # and a product without prices can be deleted
    spare = await client.v1.products.create_async({"name": "Spare"})
    deleted = await client.v1.products.delete_async(spare.id)
    assert deleted.deleted is True and deleted.id == spare.id
    await http._client_async.aclose()
