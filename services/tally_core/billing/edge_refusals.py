"""How the API edge collects the refusals of one command (edge.py, subscription_edge.py): every param is
checked, the first refusal is the answer, and all of them are listed (`InvalidCommand.errors`)."""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

from ..errors import InvalidRequest
from ..metadata import check as check_metadata
from . import params as p

# Parameters every command route accepts that no decision reads: `expand` is the API's (it expands the
# answer), `id` is the URL's. They are never carried in the command.
NOT_CARRIED = ("expand", "id")


class InvalidCommand(InvalidRequest):
    """Several refusals of one request: `message`, `param` and `code` are the first's (what Stripe answers),
    `errors` all of them in order; the body lists them under `error.errors`."""

    def __init__(self, errors: list[InvalidRequest]):
        first = errors[0]
        super().__init__(first.message, param=first.param, code=first.code)
        self.http_status = first.http_status
        self.errors = tuple(errors)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["errors"] = [{k: v for k, v in e.to_dict()["error"].items() if k != "type"}
                                   for e in self.errors]
        return body


class Refusals:
    """Collects refusals, one per param (a param refused by two checks is reported once, the first time)."""

    def __init__(self):
        self.errors: list[InvalidRequest] = []

    def run(self, check: Callable, *args, **kwargs):
        try:
            return True, check(*args, **kwargs)
        except InvalidRequest as err:
            if all(e.param != err.param for e in self.errors):
                self.errors.append(err)
            return False, None

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise InvalidCommand(self.errors)


def blank(raw) -> bool:
    return raw is None or raw == ""


def unknown_first(params: Mapping, known: tuple) -> Iterator[str]:
    """Keys in the order the core checks them: unknown ones first (its `check_keys` runs first)."""
    yield from (k for k in params if k not in known)
    yield from (k for k in known if k in params)


def refuse(err: InvalidRequest):
    raise err


def check_carried(refusals: Refusals, params: dict, carried: set[str]) -> None:
    for key in params:
        refusals.run(p.check_keys, {key: None}, carried | set(NOT_CARRIED))


def metadata_value(refusals: Refusals, params: dict, values: dict) -> None:
    if "metadata" in params:
        ok, _ = refusals.run(check_metadata, params["metadata"])
        if ok:
            values["metadata"] = None if blank(params["metadata"]) else dict(params["metadata"])


def boolean_value(refusals: Refusals, params: dict, name: str, values: dict) -> None:
    if name in params:
        ok, flag = refusals.run(p.boolean, params[name], name)
        if ok:
            values[name] = flag


def string_value(refusals: Refusals, raw, param: str, values: dict, key: str, *, max_len: int = 255) -> None:
    """A string param (an id, a price): "" is Stripe's "unset" and gives None."""
    if blank(raw):
        values[key] = None
        return
    ok, text = refusals.run(p.string, raw, param, max_len=max_len)
    if ok:
        values[key] = text
