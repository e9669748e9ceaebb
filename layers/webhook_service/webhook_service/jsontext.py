"""JSON text with exact numbers: what the API answers, what an event's delivery carries and
how an event's data is stored.

An event's data keeps each number as its publisher gave it. A float is a float, written as
Python writes it (its shortest repr: 1.5, 0.1, 2.0, 1e+20); a number that has no float of
the same text (1.50, 12345678901234567890.5) is a `Decimal`, written as `str()` writes it.
Reading the text back (`loads`) gives each number the type that writes it the same way
again, so stored, answered and delivered bytes show the same number text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any


class _ExactWriterNeededError(Exception):
    """json's C encoder met a Decimal, which it cannot write as a number."""


def number_from_text(text: str) -> float | Decimal:
    """A JSON number with a fraction or exponent: the float whose repr is this very text,
    else a Decimal (which keeps every digit and writes them back)."""
    value = float(text)
    if math.isfinite(value) and repr(value) == text:
        return value
    return Decimal(text)


def loads(text: str | bytes) -> Any:
    """Parse JSON, keeping numbers exact (see number_from_text)."""
    return json.loads(text, parse_float=number_from_text)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text of `value`, compact (or indented), non-ASCII as is, Decimals as numbers.

    Without a Decimal inside this is json.dumps itself (its C encoder); with one, the same
    text written by `_write`."""
    try:
        return json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            indent=indent,
            separators=(",", ": ") if indent is not None else (",", ":"),
            default=_not_json,
        )
    except _ExactWriterNeededError:
        return "".join(_write(value, indent, 0))


def _not_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        raise _ExactWriterNeededError
    raise TypeError(f"{type(value).__name__} is not JSON")


def _scalar(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not JSON")
        return str(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_not_json)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if key is None or isinstance(key, bool | int | float):  # as json.dumps turns them into keys
        return json.dumps(json.dumps(key))
    raise TypeError(f"keys must be str, not {type(key).__name__}")


def _write(value: Any, indent: int | None, level: int) -> Iterator[str]:
    if isinstance(value, dict):
        opening, closing, items = "{", "}", list(value.items())
    elif isinstance(value, list | tuple):
        opening, closing, items = "[", "]", [(None, item) for item in value]
    else:
        yield _scalar(value)
        return
    if not items:
        yield opening + closing
        return
    inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
    yield opening
    for n, (key, item) in enumerate(items):
        yield ("," if n else "") + inner
        if opening == "{":
            yield _key(key) + (":" if indent is None else ": ")
        yield from _write(item, indent, level + 1)
    yield "" if indent is None else "\n" + " " * (indent * level)
    yield closing
