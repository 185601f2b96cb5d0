"""The OpenAPI contract's shared pieces: the one error body, the statuses every operation can
answer, strict objects, JSON-first schema and content negotiation.

drf-spectacular infers most of the schema from the serializers; what it cannot infer (or gets
wrong for hand-written ``ViewSet`` lists) is fixed here, once, instead of in every view:

- :class:`AutoSchema`: a response is a list only when its serializer says ``many=True`` (list
  views answer page objects such as ``{"chats": [...], "hasMore": ...}``), and a permission
  with ``anonymous_methods`` adds the anonymous alternative ``{}`` to ``security``;
- :func:`errors`: error responses a view declares on top of the common ones (409, 429 ...);
- :func:`postprocess`: the error responses every operation can answer, ``Retry-After`` on 429,
  ``ETag`` on the answers of conditional GETs (those that document a 304),
  ``additionalProperties: false`` on every serializer object (the API refuses unknown fields).
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import is_list_serializer
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers

from mookti.ids import ID_PATTERN

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_DESCRIPTIONS = {
    400: "Bad input: `fields` names each bad field (unknown fields and parameters are refused too).",
    401: "No, bad, expired or revoked credentials, or `X-Mookti-User` names no user.",
    403: "The credentials may not do this (e.g. a user token on a service-key endpoint).",
    404: "Not found, including someone else's private data and unknown cursors.",
    409: "The id (or email) is taken, or the record kept changing: retry.",
    413: "The body (or a message or document) is too large.",
    415: "The body is not JSON (or multipart where a file is accepted).",
    422: 'The stream is done and its buffer expired (resumable-stream\'s "already done").',
    429: "Rate limited: retry after `Retry-After` seconds.",
    503: "Redis (or the vector store) is unavailable: retry.",
}
ETAG = {
    "ETag": {
        "schema": {"type": "string"},
        "description": "The answer's strong tag: send it back in `If-None-Match` for a 304.",
        "required": True,
    }
}
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds until a retry can pass."}
}


# A bad field's messages: a list of texts, or for nested input the nested fields (an object, a
# list of objects for list items, an object keyed by index for list fields), recursively.
ERROR_FIELD_SCHEMAS = {
    "ErrorFields": {
        "type": "object",
        "description": "The bad input fields, each with its messages (nested for nested input).",
        "additionalProperties": {"$ref": "#/components/schemas/ErrorMessages"},
    },
    "ErrorMessages": {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/ErrorFields"}]}},
            {"$ref": "#/components/schemas/ErrorFields"},
        ]
    },
}


@extend_schema_field({"$ref": "#/components/schemas/ErrorFields"})
class ErrorFieldsField(serializers.DictField):
    pass


ErrorOut = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorDetail",
            {
                "code": serializers.CharField(help_text="`type:surface`, e.g. `not_found:chat`, `rate_limit:chat`."),
                "message": serializers.CharField(),
                "fields": ErrorFieldsField(required=False),
            },
        )
    },
)


# Python's str.strip() whitespace (a wider set than a regex's \\s), and NUL.
_SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
NO_NUL = "^[^\\x00]*$"
NOT_BLANK = f"^[^\\x00]*[^\\x00{_SPACE}][^\\x00]*$"


def errors(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Error responses a view adds to the common ones (e.g. ``**errors(409, 429)``): JSON
    whatever else the view renders (the event stream's errors too)."""
    return {
        (status, "application/json"): OpenApiResponse(ErrorOut, description=ERROR_DESCRIPTIONS[status])
        for status in statuses
    }


def _alternatives(schema: dict[str, Any], alternatives: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf`` of ``required`` lists, as whole objects: each branch is the object with that
    branch's properties required too (generators such as openapi-typescript read a bare
    ``{"required": [...]}`` branch as "any value", which erases the object's type)."""
    branches = []
    for alternative in alternatives:
        required = [
            *schema.get("required", []),
            *(n for n in alternative["required"] if n not in schema.get("required", [])),
        ]
        branches.append({**schema, "required": required, "additionalProperties": False})
    description = schema.get("description")
    # no top-level "type": drf-spectacular drops an object component without properties
    return {"anyOf": branches, **({"description": description} if description else {})}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, told what the views really answer."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        # A ViewSet's ``list`` answers a page object here; a list is only what says ``many=True``.
        if serializer is None:
            serializer = self.get_response_serializers()
        if isinstance(serializer, dict) and serializer:
            serializer = {str(code): s for code, s in serializer.items()}
            serializer = serializer[min(serializer)]
        return is_list_serializer(serializer)

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        # What a serializer's ``validate`` checks across fields (``schema_extra``: anyOf, minProperties).
        result = super()._map_serializer(serializer, direction, bypass_extensions)
        if type(serializer).__doc__ is None:
            result.pop("description", None)  # not the docstring of a base class (StrictSerializer)
        if direction == "request":
            extra = dict(getattr(serializer, "schema_extra", {}))
            alternatives = extra.pop("anyOf", None)
            result.update(extra)
            if alternatives:
                result = _alternatives(result, alternatives)
        return result

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        result = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.ListSerializer | serializers.ListField):
            if not field.allow_empty:
                result.setdefault("minItems", max(1, getattr(field, "min_length", None) or 1))
            if field.max_length is not None:
                result.setdefault("maxItems", field.max_length)
        if direction != "request" or not isinstance(field, serializers.CharField):
            return result
        regex = next((v.regex for v in field.validators if isinstance(v, RegexValidator)), None)
        if regex is not None:
            result["pattern"] = regex.pattern
        elif result.get("type") == "string":
            # DRF refuses NUL characters and, after trimming, blank text where blank is not allowed.
            blank = field.allow_blank or not field.trim_whitespace
            result.setdefault("pattern", NO_NUL if blank else NOT_BLANK)
        return result

    def _get_format_parameters(self) -> list[dict[str, Any]]:
        # No ``?format=``: queries are strict (an unknown parameter is a 400); ``Accept`` chooses.
        return []

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        # Every path id goes through ``path_id``: the id pattern, not the router's ``[^/]+``.
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            parameter["schema"] = {"type": "string", "pattern": ID_PATTERN.pattern, "maxLength": 100}
        return parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        queries = self.get_override_parameters()
        exclusive = [list(group) for query in queries for group in getattr(query, "mutually_exclusive", ())]
        ordered = [list(pair) for query in queries for pair in getattr(query, "ordered", ())]
        if operation is not None and ordered:
            operation["x-ordered"] = ordered  # query parameters: the first not after the second
        spans = [list(rule) for query in queries if hasattr(query, "spans") for rule in query.spans()]
        if operation is not None and spans:
            operation["x-max-span-days"] = spans  # [first, last, days]: last - first < days; last: today
            for parameter in operation.get("parameters", []):
                rule = next((r for r in spans if parameter["name"] == r[0]), None)
                if rule:
                    parameter["description"] = (
                        f"At most {rule[2] - 1} days before {rule[1]} (default today): else a 400."
                    )
        if operation is not None and exclusive:
            operation["x-mutually-exclusive"] = exclusive  # query parameters: at most one of each group
            for parameter in operation.get("parameters", []):
                group = next((g for g in exclusive if parameter["name"] in g), None)
                if group:
                    others = ", ".join(name for name in group if name != parameter["name"])
                    parameter["description"] = f"Not together with {others} (a 400)."
        return operation

    def get_auth(self) -> list[dict[str, list]]:
        auths = super().get_auth()
        anonymous = any(
            self.method in getattr(permission, "anonymous_methods", ()) for permission in self.view.get_permissions()
        )
        if anonymous and {} not in auths:
            auths.append({})
        return auths


def _is_authenticated(operation: dict[str, Any]) -> bool:
    return any(requirement for requirement in operation.get("security", [{}]))


def _common_statuses(operation: dict[str, Any]) -> list[int]:
    """What any operation can answer: bad input, credentials, not found, body limits, Redis down."""
    statuses = [503]
    has_body = "requestBody" in operation
    if operation.get("parameters") or has_body:
        statuses.append(400)
    if _is_authenticated(operation):
        statuses += [401, 403, 404]
    if has_body:
        statuses += [413, 415]
    return statuses


_BLANK = {"type": "string", "maxLength": 0}


def _strict_objects(components: dict[str, Any]) -> None:
    """Serializer objects have exactly their properties: the API refuses unknown input fields
    and answers no undeclared output fields. A text that may be blank is one string schema
    (drf-spectacular's ``oneOf: [text, ""]`` is invalid for ``""``, which matches both)."""
    for component in components.values():
        if component.get("type") == "object" and "properties" in component:
            component.setdefault("additionalProperties", False)
            for name, prop in component["properties"].items():
                if _BLANK in prop.get("oneOf", []):
                    (text,) = [branch for branch in prop.pop("oneOf") if branch != _BLANK]
                    component["properties"][name] = {**text, **prop}


def _require_needed_bodies(operation: dict[str, Any], result: dict[str, Any]) -> None:
    """A body whose schema needs some property (``required``, ``minProperties``, ``anyOf``) must be sent."""
    body = operation.get("requestBody")
    if not body:
        return
    for media in body.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = result["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
        if schema.get("required") or schema.get("minProperties") or schema.get("anyOf"):
            body["required"] = True


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: error responses everywhere, strict objects."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status in _common_statuses(operation):
                responses.setdefault(
                    str(status),
                    {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    },
                )
            if "429" in responses:
                responses["429"].setdefault("headers", RETRY_AFTER)
            if "304" in responses:  # a conditional GET (storage.api.conditional): tagged either way
                for status in ("200", "304"):
                    responses[status].setdefault("headers", ETAG)
            operation["responses"] = dict(sorted(responses.items()))
            _require_needed_bodies(operation, result)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ERROR_FIELD_SCHEMAS)
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    _strict_objects(schemas)
    return result


TIMESTAMP_OUT = {"type": "string", "format": "date-time", "example": "2025-03-01T12:00:00.000Z"}
TIMESTAMP_IN = {
    "description": "An RFC 3339 timestamp (no offset means UTC) or epoch milliseconds, from year 1684 to 2255.",
    "anyOf": [
        {"type": "string", "format": "date-time", "maxLength": 40},
        {"type": "integer", "minimum": 0, "maximum": 2**53 // 1000},
    ],
}


TIME_WINDOWS = {
    "past": "Not in the future.",
    "recent": "Not in the future, nor older than the backfill window (MOOKTI_GAMIFICATION BACKFILL_DAYS, 7 days).",
    "future": "After the current time.",
}


class TimestampFieldExtension(OpenApiSerializerFieldExtension):
    """Timestamps: RFC 3339 UTC out; RFC 3339 or epoch milliseconds in."""

    target_class = "mookti.api.fields.TimestampField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        if direction == "response":
            return dict(TIMESTAMP_OUT)
        result = dict(TIMESTAMP_IN)
        window = getattr(self.target, "window", None)
        if window is not None:
            result.update(
                description=f"{TIMESTAMP_IN['description']} {TIME_WINDOWS[window]}", **{"x-time-window": window}
            )
        if getattr(self.target, "existing", False):
            result.update(description=f"{result['description']} Names a stored one (else a 404).")
            result["x-names-existing"] = True
        return result
