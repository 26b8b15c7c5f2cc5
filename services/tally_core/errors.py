"""One exception tree, shaped like Stripe's error objects.

    ApiError (type, code, message, param, http_status, retriable)
    ├── InvalidRequest        400 invalid_request_error
    │   ├── ResourceMissing   404 resource_missing
    │   ├── BodyTooLarge      413 invalid_request_error
    │   └── UnsupportedMediaType 415 invalid_request_error (a body whose Content-Type the route does not take)
    ├── AuthenticationFailed  401 invalid_request_error (Stripe uses this type for bad keys)
    ├── IdempotencyError      400 idempotency_error
    │   └── IdempotencyKeyInUse 409 idempotency_error
    ├── SessionExpired        401 temporary_session_expired (v2 meter event stream)
    ├── InternalError         500 api_error (retriable)
    └── ServiceUnavailable    503 api_error service_unavailable (retriable: a dependency is down)
"""

from __future__ import annotations


class ApiError(Exception):
    http_status = 500
    type = "api_error"
    retriable = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def to_dict(self) -> dict:
        body: dict = {"type": self.type, "message": self.message}
        if self.code is not None:
            body["code"] = self.code
        if self.param is not None:
            body["param"] = self.param
        return {"error": body}


class InvalidRequest(ApiError):
    http_status = 400
    type = "invalid_request_error"


class ResourceMissing(InvalidRequest):
    http_status = 404

    def __init__(self, kind: str, id_: str, *, param: str | None = "id"):
        super().__init__(f"No such {kind}: '{id_}'", param=param, code="resource_missing")


def missing_reference(kind: str, id_: str, param: str) -> ResourceMissing:
    """An object named by a body parameter does not exist: 400, as Stripe answers e.g. `POST /v1/prices`
    with an unknown `product` (a missing object in the URL path is the 404 of ResourceMissing)."""
    err = ResourceMissing(kind, id_, param=param)
    err.http_status = 400
    return err


class BodyTooLarge(InvalidRequest):
    http_status = 413


class UnsupportedMediaType(InvalidRequest):
    http_status = 415


class AuthenticationFailed(ApiError):
    http_status = 401
    type = "invalid_request_error"


class IdempotencyError(ApiError):
    http_status = 400
    type = "idempotency_error"


class IdempotencyKeyInUse(IdempotencyError):
    http_status = 409
    retriable = True


class SessionExpired(ApiError):
    http_status = 401
    type = "temporary_session_expired"


class InternalError(ApiError):
    retriable = True


class ServiceUnavailable(ApiError):
    """PostgreSQL, the broker or the billing worker cannot be reached now; the same request may be retried
    (with the same identifier or Idempotency-Key, so that a retry can never count twice)."""

    http_status = 503
    retriable = True

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "service_unavailable"):
        super().__init__(message, param=param, code=code)


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required param: {param}.", param=param, code="parameter_missing")


def invalid(param: str, why: str, code: str = "parameter_invalid") -> InvalidRequest:
    return InvalidRequest(f"Invalid {param}: {why}", param=param, code=code)


def unknown(param: str) -> InvalidRequest:
    return InvalidRequest(f"Received unknown parameter: {param}", param=param, code="parameter_unknown")
