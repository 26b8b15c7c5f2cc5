"""The single orjson codec for log records: every record carries `type` and `version`."""

from __future__ import annotations

from decimal import Decimal

import orjson


def _default(obj):
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(record: dict) -> bytes:
    return orjson.dumps(record, default=_default)


def decode(data: bytes | str) -> dict:
    return orjson.loads(data)
