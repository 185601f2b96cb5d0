"""Input helpers for API views: validated bodies, query strings and path ids, in the one error format."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from mookti.api.fields import IdField
from mookti.errors import Invalid
from mookti.ids import check_id, is_valid_id


def validated(serializer_class: type, data: Any, **context: Any) -> dict[str, Any]:
    """Validated input, or a 400 naming the fields (the one error format)."""
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def query(request: Request, serializer_class: type) -> dict[str, Any]:
    return validated(serializer_class, request.query_params.dict())


def path_id(value: str, field: str = "id") -> str:
    """Validate an id from the URL before it goes into a key name."""
    try:
        return check_id(value, field)
    except ValueError as exc:
        raise Invalid(str(exc), {field: [str(exc)]}) from None


def quick_query(serializer_class: type, params: dict[str, str]) -> dict[str, Any] | None:
    """The validated query of a hot read without running the serializer, when every value is in
    its plain form: digits for an integer in range, a valid id, one of the choices, and no group
    of ``mutually_exclusive`` fields given together. Anything else is None: the caller runs
    :func:`query` (the serializer), which accepts what DRF accepts or answers the 400. What this
    accepts, the serializer accepts with the same values (tests/storage/test_hot_reads.py)."""
    fields = serializer_class._declared_fields
    out: dict[str, Any] = {}
    for name, raw in params.items():
        field = fields.get(name)
        if type(field) is serializers.IntegerField:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
                return None
            value: Any = int(raw)
            if (field.min_value is not None and value < field.min_value) or (
                field.max_value is not None and value > field.max_value
            ):
                return None
        elif type(field) is IdField:
            if not is_valid_id(raw):
                return None
            value = raw
        elif type(field) is serializers.ChoiceField:
            if raw not in field.choice_strings_to_values:
                return None
            value = field.choice_strings_to_values[raw]
        else:
            return None
        out[name] = value
    for name, field in fields.items():
        if name not in out:
            if field.required:
                return None
            if field.default is not empty:
                out[name] = field.get_default()
    for group in getattr(serializer_class, "mutually_exclusive", ()):
        if sum(name in out for name in group) > 1:
            return None
    return out
