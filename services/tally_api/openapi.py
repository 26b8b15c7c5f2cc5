"""An OpenAPI 3.1 document of exactly the routes this process serves, from the routes themselves."""

from __future__ import annotations

import inspect

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "type": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"},
        "param": {"type": "string"}}, "required": ["type", "message"]}},
}


def document(routes) -> dict:
    paths: dict = {}
    for route in routes:
        path = getattr(route, "path", None)
        if not path or path in ("/openapi.json", "/healthz"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            doc = inspect.getdoc(route.endpoint) or route.endpoint.__name__.replace("_", " ")
            op = {
                "operationId": f"{method.lower()}_{route.endpoint.__name__}",
                "summary": doc.splitlines()[0],
                "security": [{"bearer": []}, {"basic": []}],
                "responses": {
                    "200": {"description": "The object, Stripe-shaped.", "content": {"application/json": {}}},
                    "default": {"description": "A Stripe error object.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                },
            }
            params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                      for n in route.param_convertors]
            if params:
                op["parameters"] = params
            if method == "POST":
                op["parameters"] = op.get("parameters", []) + [
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}]
                op["requestBody"] = {"content": {"application/x-www-form-urlencoded": {}, "application/json": {}}}
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
