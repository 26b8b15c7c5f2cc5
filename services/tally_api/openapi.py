"""An OpenAPI 3.1 document of exactly the routes this process serves, from their contracts (`contracts.py`):
the same declarations that refuse unknown or misshapen parameters at the edge."""

from __future__ import annotations

import copy
import inspect

from .contracts import contract_for

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "properties": {
        "type": {"type": "string"}, "code": {"type": ["string", "null"]}, "message": {"type": "string"},
        "param": {"type": ["string", "null"]}}, "required": ["type", "message"]}},
}
_FORM = "application/x-www-form-urlencoded"


def _body_schema(contract) -> dict:
    schema: dict = {"type": "object", "properties": copy.deepcopy(contract.params), "additionalProperties": False}
    if contract.required:
        schema["required"] = list(contract.required)
    return schema


def _query_parameters(contract) -> list[dict]:
    out = []
    for name, schema in contract.params.items():
        param = {"name": name, "in": "query", "required": name in contract.required, "schema": schema}
        if schema.get("type") == "object" or "anyOf" in schema:
            param.update(style="deepObject", explode=True)  # `created[gte]=…`, `dimension_filters[k]=v`
        out.append(param)
    return out


def _request_body(contract) -> dict:
    content: dict = {}
    schema = _body_schema(contract)
    for media in contract.content_types:
        if media == _FORM:
            # Stripe's bracket notation is OpenAPI's deepObject for hashes.
            encoding = {k: {"style": "deepObject", "explode": True}
                        for k, v in contract.params.items() if v.get("type") == "object"}
            content[media] = {"schema": schema, **({"encoding": encoding} if encoding else {})}
        elif media == "application/json":
            content[media] = {"schema": schema}
        else:
            content[media] = {"schema": {"type": "string"}}  # one JSON object per line, each a meter event
    return {"required": bool(contract.required), "content": content}


def document(routes) -> dict:
    paths: dict = {}
    for route in routes:
        path = getattr(route, "path", None)
        if not path or not path.startswith(("/v1/", "/v2/")):
            continue  # /healthz, /readyz and this document are not Stripe's API
        for method in sorted((route.methods or set()) - {"HEAD"}):
            contract = contract_for(route.endpoint, method)
            doc = inspect.getdoc(route.endpoint) or route.endpoint.__name__.replace("_", " ")
            ok = {"description": "The object, Stripe-shaped.", "content": {"application/json": {}}}
            if contract is not None:
                ok["content"]["application/json"]["schema"] = contract.response
            op = {
                "operationId": f"{method.lower()}_{route.endpoint.__name__}",
                "summary": doc.splitlines()[0],
                "security": [{"bearer": []}, {"basic": []}],
                "responses": {
                    "200": ok,
                    "default": {"description": "A Stripe error object.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            }
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 255}}
                      for n in route.param_convertors]
            if method == "POST":
                params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": {"type": "string", "maxLength": 255}})
                if contract is not None:
                    op["requestBody"] = _request_body(contract)
            elif contract is not None:
                params += _query_parameters(contract)
            if params:
                op["parameters"] = params
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "tally: Stripe-compatible metering and billing", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
        },
    }
