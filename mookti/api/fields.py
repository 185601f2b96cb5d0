"""Serializer building blocks every app's API shares: strict input, ids fit for key names, timestamps."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import cache
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import _UnvalidatedField  # the child of a ListField/DictField without one
from rest_framework.utils import html

from mookti.ids import ID_PATTERN, iso, to_us

MAX_TIMESTAMP_US = 2**53


@cache
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimestampField(serializers.Field):
    """Microseconds since the epoch inside, ISO-8601 UTC (``...Z``) outside.

    Accepts an ISO-8601 string (an offset is converted to UTC; no offset means UTC) or a
    number of milliseconds since the epoch, as JavaScript's ``Date.getTime()``.
    """

    default_error_messages = {
        "invalid": "Use an ISO-8601 timestamp or epoch milliseconds.",
        "range": "Timestamps go from 1684 to 2255 (exact in a sorted-set score).",
    }

    def __init__(self, *, window: str | None = None, existing: bool = False, **kwargs: Any) -> None:
        """``window``: what the server also checks against the current time, for the schema
        (``x-time-window``): ``past`` (not in the future), ``recent`` (the last days; the
        backfill window), ``future``. ``existing``: the timestamp names a stored record (a
        document version), else a 404 (``x-names-existing``)."""
        self.window = window
        self.existing = existing
        super().__init__(**kwargs)

    def to_representation(self, value: int | None) -> str | None:
        return iso(value)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str) and data.isdigit() and len(data) <= 14:
            data = int(data)  # epoch milliseconds in a query string
        if isinstance(data, int | float):
            if data < 0 or (isinstance(data, float) and not data.is_integer()):  # whole milliseconds
                self.fail("invalid")
            return self._in_range(int(data) * 1000)
        if isinstance(data, str) and len(data) <= 40:
            try:
                value = to_us(datetime.fromisoformat(data.replace("Z", "+00:00")))
            except (ValueError, OverflowError):
                self.fail("invalid")
            return self._in_range(value)
        self.fail("invalid")

    def _in_range(self, value: int) -> int:
        """Microseconds a ZSET score holds exactly (|value| <= 2**53), so stored times never round."""
        if not -MAX_TIMESTAMP_US <= value <= MAX_TIMESTAMP_US:
            self.fail("range")
        return value


class IdField(serializers.RegexField):
    """An id that may go into a Redis key name."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {"invalid": "Use 1-100 letters, digits, '-', '_' or '.' (e.g. a UUID)."})
        super().__init__(ID_PATTERN, max_length=100, **kwargs)


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so typos are errors, not silently ignored, and values of
    another JSON type where text is expected (DRF's CharField would store ``123`` as ``"123"``)."""

    def to_internal_value(self, data: Any) -> Any:
        if html.is_html_input(data):  # a form (multipart): its values as sent, "" included (HTML
            data = data.dict()  # forms' "empty means absent, take the default" is not the schema's)
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
            not_text = [
                name
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and name in data
                and data[name] is not None
                and not isinstance(data[name], str)
            ]
            if not_text:
                raise serializers.ValidationError({name: ["Not a valid string."] for name in not_text})
        return super().to_internal_value(data)


class OutputSerializer(serializers.Serializer):
    """An output serializer for the hot paths: a dict with every field present is rendered by
    calling each declared field's ``to_representation`` directly, without DRF binding a deep copy
    of the fields per request and looking each value up through ``get_attribute`` (a page of 50
    messages spent a fifth of its time there, issue 16). The answer is the same; anything else
    (an object, a missing key) goes through DRF's own path."""

    @classmethod
    def _output_plan(cls) -> tuple[tuple[str, Any], ...] | None:
        """(name, render) per readable field; None if a field is not a plain key of the dict."""
        if "_plan" not in cls.__dict__:
            fields = [(name, f) for name, f in cls._declared_fields.items() if not f.write_only]
            plain = all(
                f.source in (None, name) and not isinstance(f, serializers.SerializerMethodField) for name, f in fields
            )
            cls._plan = tuple((name, _renderer(f)) for name, f in fields) if plain else None
        return cls._plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out = self._render(self._output_plan(), instance)
        return super().to_representation(instance) if out is None else out

    @staticmethod
    def _render(plan: tuple[tuple[str, Any], ...] | None, instance: Any) -> dict[str, Any] | None:
        if plan is None or type(instance) is not dict:
            return None
        out = {}
        for name, render in plan:
            try:
                value = instance[name]
            except KeyError:
                return None
            out[name] = value if value is None or render is None else render(value)
        return out

    @classmethod
    def render(cls, instance: Any) -> dict[str, Any]:
        """``cls(instance).data`` without building a serializer (the hot reads)."""
        out = cls._render(cls._output_plan(), instance)
        return cls(instance).data if out is None else out

    @classmethod
    def render_many(cls, instances: list[Any]) -> list[dict[str, Any]]:
        """``cls(instances, many=True).data`` without building serializers (the hot reads)."""
        plan = cls._output_plan()
        out = [cls._render(plan, instance) for instance in instances]
        return cls(instances, many=True).data if None in out else out


def _copies_json(child: serializers.Field) -> bool:
    """A child whose output is its input for values decoded from JSON: an untyped value, or a dict
    of untyped values (a JSON object's keys are strings already)."""
    if isinstance(child, _UnvalidatedField):
        return True
    return (
        isinstance(child, serializers.DictField)
        and isinstance(child.child, _UnvalidatedField)
        and type(child).to_representation is serializers.DictField.to_representation
    )


def _renderer(field: serializers.Field) -> Any:
    """``field.to_representation``, or None where it would only copy a value decoded from JSON
    (a list or dict field without a child type) or return the same string."""
    if isinstance(field, serializers.ListField | serializers.DictField) and _copies_json(field.child):
        return None
    if type(field) is serializers.CharField:
        return str
    return field.to_representation


@extend_schema_field(
    {"type": "string", "format": "iana-time-zone", "maxLength": 64, "example": "Europe/Berlin",
     "description": "An IANA time zone name (tz database), e.g. Europe/Berlin or UTC."}
)  # fmt: skip
class TimezoneField(serializers.CharField):
    """An IANA time zone name the server knows (``zoneinfo``)."""

    default_error_messages = {"zone": "Unknown IANA time zone."}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in known_timezones():
            self.fail("zone")
        return value
