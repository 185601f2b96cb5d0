"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.contract.hooks``): what the schema says in words
but JSON Schema cannot, taught to the data generator.

- Timestamps are ``format: date-time`` from year 1684 to 2255 (a sorted-set score holds them
  exactly), dates (stats, due dates) from 2000 to 2199: generated inside those ranges.
- Emails are ``format: email``; Django's validator is stricter than RFC 5322 (no quoted local
  parts, no IP literals): generated as plain addresses.
- Time zones are ``format: iana-time-zone``: drawn from the tz database.
- ISO weeks are ``format: iso-week``: drawn from real weeks (W53 only where a year has one).
- ``Idempotency-Key`` headers are ``format: idempotency-key``: a key names one request (the same
  key with another body is a 422), so each generated request gets a new one, as a client makes them.
- ``startingAfter`` and ``endingBefore`` exclude each other (the operations say so in
  ``x-mutually-exclusive``): a generated pair keeps one.
"""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import schemathesis
from hypothesis import strategies as st

_TIMESTAMPS = st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2250, 1, 1), timezones=st.just(UTC))
schemathesis.openapi.format("date-time", _TIMESTAMPS.map(lambda value: value.isoformat().replace("+00:00", "Z")))
schemathesis.openapi.format("date", st.dates(date(2000, 1, 1), date(2199, 12, 31)).map(date.isoformat))
_LOCAL = st.from_regex(r"\A[a-z0-9][a-z0-9._+-]{0,30}\Z")
schemathesis.openapi.format("email", st.builds("{}@{}.example.com".format, _LOCAL, st.from_regex(r"\A[a-z]{1,20}\Z")))
schemathesis.openapi.format("idempotency-key", st.builds(lambda: uuid.uuid4().hex))


def _in_window(window: str) -> str:
    """A timestamp the server takes for ``x-time-window`` (checked against its clock)."""
    now = datetime.now(UTC)
    moment = {"past": now - timedelta(days=400), "recent": now - timedelta(days=2), "future": now + timedelta(days=30)}
    return moment[window].isoformat().replace("+00:00", "Z")


def _apply_constraints(schema: dict, value: object) -> None:
    """Make schema-valid data meet the documented cross-field rules (``x-unique-by``,
    ``x-max-items-by``, ``x-ordered``, ``x-excludes``, ``x-less-than``, ``x-time-window``) that
    JSON Schema cannot state."""
    if not isinstance(value, dict):
        return
    for array, key in schema.get("x-unique-by", {}).items():
        seen: set = set()
        items = value.get(array)
        if isinstance(items, list):
            value[array] = [
                i for i in items if not (isinstance(i, dict) and key in i and (i[key] in seen or seen.add(i[key])))
            ]
    for array, limit in schema.get("x-max-items-by", {}).items():
        if isinstance(value.get(limit), int) and isinstance(value.get(array), list):
            value[array] = value[array][: value[limit]]
    for name, child in schema.get("properties", {}).items():
        upload = getattr(value.get(name), "data", None)
        if "text/plain; charset=utf-8" in child.get("x-content-types", []) and isinstance(upload, bytes):
            text = upload.decode("utf-8", "replace").removeprefix("%PDF-")  # random bytes: as UTF-8 text
            value[name] = type(value[name])(text.encode())
        window = child.get("x-time-window")
        if window and value.get(name) is not None:
            value[name] = _in_window(window)
        if child.get("x-names-existing"):  # optional; generated values name nothing stored (a 404)
            value.pop(name, None)
    for name, excluded in schema.get("x-excludes", {}).items():
        if value.get(name) is not None:
            for other in excluded:
                value.pop(other, None)
    for low, high in schema.get("x-less-than", []):
        if isinstance(value.get(low), int) and isinstance(value.get(high), int) and value[low] >= value[high]:
            value[low] = value[high] - 1
    ordered = schema.get("x-ordered", [])
    if ordered and all(name in value for name in ordered):
        value.pop(ordered[0])  # generated bounds come in any order: keep the upper one
    for name, child in schema.get("properties", {}).items():
        child = _resolve(child)
        items = value.get(name)
        if child.get("type") == "array" and isinstance(items, list):
            for item in items:
                _apply_constraints(_resolve(child.get("items", {})), item)


_COMPONENTS: dict = {}


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref", "")
    return _COMPONENTS.get(ref.rsplit("/", 1)[-1], schema) if ref else schema


_WEEKS = st.dates(date(1900, 1, 1), date(2199, 12, 31)).map(lambda day: day.isocalendar())
schemathesis.openapi.format("iso-week", _WEEKS.map(lambda week: f"{week.year}-W{week.week:02d}"))
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(zoneinfo.available_timezones())))


@schemathesis.hook
def before_add_examples(ctx, examples):
    for case in examples:
        _fit(case)


@schemathesis.hook
def map_case(ctx, case):
    if case.meta is None or case.meta.generation.mode.is_positive:
        _fit(case)
    return case


def _fit_span(query: dict, low: str, high: str, days: int) -> None:
    """``x-max-span-days``: ``low`` at most ``days - 1`` days before ``high`` (today when absent; a
    day of margin for the user's time zone)."""
    if low not in query:
        return
    try:
        first = date.fromisoformat(str(query[low]))
        last = date.fromisoformat(str(query[high])) if high in query else datetime.now(UTC).date() - timedelta(days=1)
    except ValueError:
        return
    if (last - first).days + 1 > days - 1:
        query[low] = (last - timedelta(days=days - 2)).isoformat()


def _fit(case) -> None:
    """A positive case, made to meet the rules the schema states in its ``x-`` extensions."""
    raw = case.operation.definition.raw
    _COMPONENTS.update(case.operation.schema.raw_schema.get("components", {}).get("schemas", {}))
    if isinstance(case.query, dict):
        for group in raw.get("x-mutually-exclusive", []):
            for name in [name for name in group if name in case.query][1:]:
                case.query.pop(name)
        for low, high in raw.get("x-ordered", []):
            if low in case.query and high in case.query:
                case.query.pop(low)
        for low, high, days in raw.get("x-max-span-days", []):
            _fit_span(case.query, low, high, days)
    content = raw.get("requestBody", {}).get("content", {})
    media = content.get(getattr(case, "media_type", None) or "") or next(iter(content.values()), {})
    body_schema = _resolve(media.get("schema", {}))
    _apply_constraints(body_schema, case.body)
