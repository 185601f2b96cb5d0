"""Input helpers for API views: validated bodies, query strings and path ids, in the one error format."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from mookti.errors import Invalid
from mookti.ids import check_id


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
