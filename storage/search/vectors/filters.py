"""Metadata filters: Pinecone's filter language, checked once into a tree each backend translates.

The accepted subset: ``$eq $ne $in $nin`` on the string fields, ``$eq $gt $gte $lt $lte`` on
``createdAt`` (epoch seconds), ``$and``/``$or`` lists, and the shorthand ``{"field": value}``
for ``$eq``. Several keys in one object are ANDed, as in Pinecone. :func:`parse` rejects anything
else with :class:`FilterError`, so a backend never sees a filter it would read differently. Each
backend module translates the tree (:class:`Compare`, :class:`Combine`) into its own language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STRING_FIELDS = ("userId", "chatId", "messageId", "documentId", "role", "kind")
NUMBER_FIELDS = ("createdAt",)
FIELDS = STRING_FIELDS + NUMBER_FIELDS
STRING_OPS = ("$eq", "$ne", "$in", "$nin")
NUMBER_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
LIST_OPS = ("$in", "$nin")
MAX_VALUES = 1000
MAX_STRING = 512


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Combine:
    op: str  # "$and" | "$or"
    parts: tuple[Filter, ...]


Filter = Compare | Combine


def _check_value(field: str, op: str, value: Any) -> Any:
    if op in LIST_OPS:
        if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
            raise FilterError(f"{field}: {op} takes a list of 1-{MAX_VALUES} values.")
        return tuple(_check_value(field, "$eq", item) for item in value)
    if field in NUMBER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise FilterError(f"{field}: {op} takes a number.")
        return float(value)
    if not isinstance(value, str) or len(value) > MAX_STRING or "\x00" in value:
        raise FilterError(f"{field}: {op} takes a string of at most {MAX_STRING} characters.")
    return value


def _parse_field(field: str, condition: Any) -> Filter:
    if field not in FIELDS:
        raise FilterError(f"Unknown filter field {field!r}; use one of {', '.join(FIELDS)}.")
    if not isinstance(condition, dict):
        condition = {"$eq": condition}
    if not condition:
        raise FilterError(f"{field}: empty condition.")
    allowed = NUMBER_OPS if field in NUMBER_FIELDS else STRING_OPS
    parts = []
    for op, value in condition.items():
        if op not in allowed:
            raise FilterError(f"{field}: operator {op!r} is not supported; use one of {', '.join(allowed)}.")
        parts.append(Compare(field, op, _check_value(field, op, value)))
    return parts[0] if len(parts) == 1 else Combine("$and", tuple(parts))


def parse(spec: Any, depth: int = 0) -> Filter | None:
    """The checked filter tree of a Pinecone-style filter dict (None for no filter)."""
    if spec is None:
        return None
    if depth > 8:
        raise FilterError("Filter nested too deeply.")
    if not isinstance(spec, dict) or not spec:
        raise FilterError("A filter is a non-empty JSON object.")
    parts: list[Filter] = []
    for name, value in spec.items():
        if name in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise FilterError(f"{name} takes a non-empty list of filters.")
            parts.append(Combine(name, tuple(parse(item, depth + 1) for item in value)))  # type: ignore[misc]
        elif name.startswith("$"):
            raise FilterError(f"Operator {name!r} is not supported at this level.")
        else:
            parts.append(_parse_field(name, value))
    return parts[0] if len(parts) == 1 else Combine("$and", tuple(parts))


def all_of(*filters: Filter | None) -> Filter | None:
    present = tuple(f for f in filters if f is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else Combine("$and", present)
