"""`/openapi.json` comes from the same contracts that refuse unknown or misshapen parameters at the edge."""

from __future__ import annotations

import jsonschema
import pytest

from tally_api.app import create_app
from tally_api.contracts import CONTRACTS, check
from tally_core.errors import InvalidRequest


async def test_every_served_route_declares_its_contract(runtime):
    app = create_app(runtime.services)
    assert app.state.undeclared == []
    served = {(m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or set()) - {"HEAD"}
              if r.path.startswith(("/v1/", "/v2/"))}
    assert served == set(CONTRACTS), "a contract for a route that is not served, or the reverse"


def test_the_edge_refuses_unknown_names_and_wrong_shapes_naming_the_param():
    contract = CONTRACTS[("POST", "/v1/customers")]
    # Accepted shapes: `""` unsets, one string stands for a one-element `expand`, and a hash with gaps in its
    # indexes (`expand[1]=x`) is left to the core, which names the exact index.
    check(contract, {"name": "Ada", "metadata": {"k": "v"}, "expand": "test_clock", "balance": ""})
    check(contract, {"expand": {"1": "test_clock"}})
    for params, param, code in [
        ({"nmae": "Ada"}, "nmae", "parameter_unknown"),
        ({"name": {"first": "Ada"}}, "name", "parameter_invalid"),
        ({"balance": ["1", "2"]}, "balance", "parameter_invalid"),
        ({"metadata": "k"}, "metadata", "parameter_invalid"),
    ]:
        with pytest.raises(InvalidRequest) as err:
            check(contract, params)
        assert (err.value.param, err.value.code) == (param, code)
    with pytest.raises(InvalidRequest) as err:
        check(CONTRACTS[("POST", "/v1/subscriptions")], {"items": "price_1"})
    assert (err.value.param, err.value.code) == ("items", "parameter_invalid_array")


async def test_the_document_declares_parameters_bodies_and_response_schemas(client):
    doc = (await client.get("/openapi.json")).json()
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["Error"])
    summaries = doc["paths"]["/v1/billing/meters/{id}/event_summaries"]["get"]
    names = {p["name"]: p for p in summaries["parameters"]}
    assert names["customer"]["required"] and names["start_time"]["schema"]["maximum"] == 253_402_300_799
    assert names["dimension_filters"]["style"] == "deepObject"
    create = doc["paths"]["/v1/customers"]["post"]["requestBody"]["content"]
    form = create["application/x-www-form-urlencoded"]
    assert form["schema"]["additionalProperties"] is False
    assert form["schema"]["properties"]["metadata"]["maxProperties"] == 50
    assert form["encoding"]["metadata"] == {"style": "deepObject", "explode": True}
    assert set(doc["paths"]["/v2/billing/meter_events"]["post"]["requestBody"]["content"]) == {"application/json"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            jsonschema.Draft202012Validator.check_schema(schema)
            for body in op.get("requestBody", {}).get("content", {}).values():
                jsonschema.Draft202012Validator.check_schema(body["schema"])

    # A real answer conforms to the schema the document promises for it.
    def promised(path: str, method: str) -> dict:
        return doc["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]

    created = await client.post("/v1/billing/meters", data={"display_name": "Tokens", "event_name": "tokens",
                                                            "default_aggregation[formula]": "sum"})
    assert created.status_code == 200, created.text
    jsonschema.validate(created.json(), promised("/v1/billing/meters", "post"))
    assert promised("/v1/billing/meters", "post")["properties"]["object"] == {"const": "billing.meter"}
    jsonschema.validate((await client.get("/v1/billing/meters")).json(), promised("/v1/billing/meters", "get"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**created.json(), "created": "yesterday"}, promised("/v1/billing/meters", "post"))


async def test_an_unknown_parameter_is_a_400_before_the_handler_runs(client):
    r = await client.post("/v1/billing/meters", data={"display_name": "x", "event_name": "x",
                                                      "default_aggregation[formula]": "sum", "colour": "red"})
    assert r.status_code == 400
    assert r.json()["error"] == {"type": "invalid_request_error", "code": "parameter_unknown", "param": "colour",
                                 "message": r.json()["error"]["message"]}
    r = await client.get("/v1/customers", params={"email[x]": "a"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "email"


def test_the_fields_not_yet_returned_are_fields_of_stripes_examples():
    """Each answer must carry every field of Stripe's example object except these, listed to shrink."""
    from tally_api.responses import NOT_YET_RETURNED
    from tally_api.stripe_shapes import FIELDS

    for resource, names in NOT_YET_RETURNED.items():
        known = {item.split(":")[0] for item in FIELDS[resource].split()}
        assert set(names.split()) <= known, resource


def test_a_contract_out_of_step_with_the_cores_parameter_set_is_refused_at_import():
    from tally_api.contracts import _keys, string

    assert list(_keys({"name", "email"}, email=string(), name=string())) == ["email", "name"]
    with pytest.raises(AssertionError, match="missing {'email'}"):
        _keys({"name", "email"}, name=string())
    with pytest.raises(AssertionError, match="surplus {'phone'}"):
        _keys({"name"}, name=string(), phone=string())
